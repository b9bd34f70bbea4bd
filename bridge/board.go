package bridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// CommunityStore keeps the boards and follows, and knows which contacts consented in a guild;
// *store.Store has it. Lookups of missing rows return core.ErrNotFound.
type CommunityStore interface {
	StartBoard(ctx context.Context, b core.Board) (created bool, err error)
	StopBoard(ctx context.Context, channelID string) (core.Board, error)
	Boards(ctx context.Context) ([]core.Board, error)
	SetBoardMessage(ctx context.Context, channelID, messageID string) error
	// ConsentedContacts returns the Resonite user ids of the contacts that consented in guildID.
	ConsentedContacts(ctx context.Context, guildID string) ([]string, error)

	ToggleFollow(ctx context.Context, f core.Follow) (on bool, err error)
	FollowsForContact(ctx context.Context, contactID string) ([]core.Follow, error)
	FollowFailed(ctx context.Context, ids []int64, told bool, dropAfter int) (dropped int, err error)
	FollowDelivered(ctx context.Context, ids []int64) error
}

// CommunityDiscord is what the board and the follows ask of Discord; the bot has it. Board
// messages are the bot's own messages (no webhook needed).
type CommunityDiscord interface {
	// PostBoard posts a board message and returns its id.
	PostBoard(ctx context.Context, channelID, content string) (messageID string, err error)
	// EditBoard replaces the content of a board message; core.ErrNotFound when it is gone.
	EditBoard(ctx context.Context, channelID, messageID, content string) error
	// DeleteBoard deletes a board message; one that is gone already is no error.
	DeleteBoard(ctx context.Context, channelID, messageID string) error
	// DirectMessage sends content to a member; core.ErrDMClosed when the member does not
	// accept direct messages from the bot.
	DirectMessage(ctx context.Context, userID, content string) error
	// Mention posts content into a channel, pinging userID and nobody else.
	Mention(ctx context.Context, channelID, userID, content string) error
}

// Clock is the time source of the board's throttle; tests inject a fake one (bridge/clocktest)
// so that they never wait the 15 s.
type Clock interface {
	Now() time.Time
	// At returns a channel that receives once the clock reads t or later. An instant, not a
	// duration: a fake clock advanced between Now and At must not push the deadline back.
	At(t time.Time) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                  { return time.Now() }
func (realClock) At(t time.Time) <-chan time.Time { return time.After(time.Until(t)) }

// The board's shape, within Discord's 2,000 characters per message.
const (
	boardMaxLen   = DiscordMaxLen
	boardFooter   = "\n-# updated <t:%d:R>"
	boardFooterMx = 40 // the longest the footer gets
	// boardWriteTimeout bounds one write of a board (a post and storing its id).
	boardWriteTimeout = 5 * time.Second
)

// boardState is the bridge's view of one board; its fields are guarded by boards.mu.
type boardState struct {
	board core.Board
	// lastWrite is the clock's time of the board's last post or edit; zero: not written by
	// this run (it is due at once, so that a restart refreshes the board).
	lastWrite time.Time
	// shown is the body (without the "updated" footer) last written; "" when unknown.
	shown string
	dirty bool
	// busy marks the board while the loop writes it, so that StopBoard deletes the message the
	// write made.
	busy bool
}

// boards is the set of live boards.
type boards struct {
	mu     sync.Mutex
	states map[string]*boardState // by channel
	wake   chan struct{}
	probe  func(idle bool) // Options.BoardProbe; called with mu held
}

func newBoards(probe func(idle bool)) *boards {
	return &boards{states: map[string]*boardState{}, wake: make(chan struct{}, 1), probe: probe}
}

// wakeLocked tells the loop to look at the boards. Under mu, so that the probe's "busy" and
// "idle" are in the order of the changes they speak of.
func (bs *boards) wakeLocked() {
	signal(bs.wake)
	if bs.probe != nil {
		bs.probe(false)
	}
}

// idle reports to the probe that the loop looked at every change, unless one came meanwhile.
func (bs *boards) idle() {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.probe != nil && len(bs.wake) == 0 {
		bs.probe(true)
	}
}

// touch marks every board for a look: the presence model changed. Cheap, so every status
// calls it; the loop renders at most once per board and interval.
func (bs *boards) touch() {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for _, st := range bs.states {
		st.dirty = true
	}
	bs.wakeLocked()
}

func (b *Bridge) communityOn() bool { return b.o.Community != nil && b.o.CommunityDiscord != nil }

// StartBoard starts a board in b.ChannelID; created is false when the channel has one. The
// board's message is posted by the board loop at once.
func (b *Bridge) StartBoard(ctx context.Context, board core.Board) (bool, error) {
	if !b.communityOn() {
		return false, errNoCommunity
	}
	board.MessageID = ""
	created, err := b.o.Community.StartBoard(ctx, board)
	if err != nil || !created {
		return false, err
	}
	b.boards.mu.Lock()
	if _, ok := b.boards.states[board.ChannelID]; !ok {
		b.boards.states[board.ChannelID] = &boardState{board: board, dirty: true}
	}
	b.boards.wakeLocked()
	b.boards.mu.Unlock()
	return true, nil
}

// StopBoard ends the channel's board and deletes its message; stopped is false when the channel
// had none.
func (b *Bridge) StopBoard(ctx context.Context, channelID string) (bool, error) {
	if !b.communityOn() {
		return false, errNoCommunity
	}
	board, err := b.o.Community.StopBoard(ctx, channelID)
	if errors.Is(err, core.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	b.boards.mu.Lock()
	st := b.boards.states[channelID]
	delete(b.boards.states, channelID)
	if st != nil && st.board.MessageID != "" {
		board.MessageID = st.board.MessageID
	}
	busy := st != nil && st.busy
	b.boards.mu.Unlock()
	// A write in progress deletes what it posted itself once it sees the board gone.
	if board.MessageID != "" && !busy {
		if err := b.o.CommunityDiscord.DeleteBoard(ctx, channelID, board.MessageID); err != nil {
			b.log.Warn("deleting the message of a stopped board failed", "channel", channelID, "err", err)
		}
	}
	return true, nil
}

// ToggleFollow turns a member's direct messages about a contact on or off.
func (b *Bridge) ToggleFollow(ctx context.Context, f core.Follow) (bool, error) {
	if !b.communityOn() {
		return false, errNoCommunity
	}
	return b.o.Community.ToggleFollow(ctx, f)
}

var errNoCommunity = errors.New("bridge: boards and follows are not configured")

// OnDiscordMessageDeleted takes a deleted Discord message: a deleted board is posted again.
func (b *Bridge) OnDiscordMessageDeleted(_ context.Context, channelID, messageID string) {
	b.boards.mu.Lock()
	st := b.boards.states[channelID]
	gone := st != nil && messageID != "" && st.board.MessageID == messageID
	if gone {
		st.board.MessageID, st.shown, st.dirty = "", "", true
		b.boards.wakeLocked()
	}
	b.boards.mu.Unlock()
}

// runBoards loads the boards and keeps them up to date until ctx ends: a board is looked at
// when the presence model changed, rendered at most once per BoardInterval and written only
// when its body changed.
func (b *Bridge) runBoards(ctx context.Context) {
	retry := b.o.CatchUpRetry
	for {
		list, err := b.o.Community.Boards(ctx)
		if err == nil {
			b.boards.mu.Lock()
			for _, board := range list {
				if _, ok := b.boards.states[board.ChannelID]; !ok {
					b.boards.states[board.ChannelID] = &boardState{board: board, dirty: true}
				}
			}
			b.boards.mu.Unlock()
			break
		}
		if ctx.Err() != nil {
			return
		}
		b.noteError("loading the boards", err)
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		retry = min(2*retry, time.Minute)
	}
	for {
		next, wait := b.boardPass(ctx)
		var due <-chan time.Time
		if wait {
			due = b.o.BoardClock.At(next)
		}
		b.boards.idle()
		select {
		case <-ctx.Done():
			return
		case <-b.boards.wake:
		case <-due:
		}
	}
}

// boardWork is a board to render, copied out of its state.
type boardWork struct {
	st        *boardState
	board     core.Board
	shown     string
	lastWrite time.Time
}

// boardPass renders and writes the boards that are dirty and due; it returns when the next
// dirty board is due, and whether there is one. Before the hub's first connection nothing is
// due: the presence model is empty then, and a board would show everyone offline.
func (b *Bridge) boardPass(ctx context.Context) (time.Time, bool) {
	if !b.presence.isConnected() {
		return time.Time{}, false // HandleConnected touches the boards
	}
	now := b.o.BoardClock.Now()
	interval := b.o.BoardInterval
	var work []boardWork
	var next time.Time
	waiting := false
	b.boards.mu.Lock()
	for _, st := range b.boards.states {
		if !st.dirty {
			continue
		}
		if !st.lastWrite.IsZero() {
			if due := st.lastWrite.Add(interval); due.After(now) {
				if !waiting || due.Before(next) {
					next, waiting = due, true
				}
				continue
			}
		}
		st.dirty, st.busy = false, true
		work = append(work, boardWork{st: st, board: st.board, shown: st.shown, lastWrite: st.lastWrite})
	}
	b.boards.mu.Unlock()
	slices.SortFunc(work, func(x, y boardWork) int { return strings.Compare(x.board.ChannelID, y.board.ChannelID) })

	consent := map[string][]string{} // per guild, for this pass
	for _, w := range work {
		ids, ok := consent[w.board.GuildID]
		if !ok {
			var err error
			if ids, err = b.o.Community.ConsentedContacts(ctx, w.board.GuildID); err != nil {
				b.noteError("listing the contacts that consented for a board", err)
				b.boardDone(w, w.board.MessageID, w.shown, now, true)
				continue
			}
			consent[w.board.GuildID] = ids
		}
		body := b.renderBoard(ids)
		if body == w.shown && w.board.MessageID != "" {
			b.boardDone(w, w.board.MessageID, w.shown, w.lastWrite, false)
			continue
		}
		content := body + fmt.Sprintf(boardFooter, now.Unix())
		// A write that started finishes, and its message id is stored, even when the bridge
		// stops meanwhile: cut off, the message could be posted but unknown, and the next run
		// would post a second board.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), boardWriteTimeout)
		id, err := b.writeBoard(wctx, w.board, content)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				b.noteError("writing the board of channel "+w.board.ChannelID, err)
			}
			// Tried again after the interval: a failing channel must not spin.
			b.boardDone(w, w.board.MessageID, w.shown, now, true)
			continue
		}
		b.boardDone(w, id, body, now, false)
	}
	if len(work) > 0 {
		// What became dirty or due while the pass wrote is looked at once more.
		b.boards.mu.Lock()
		again := false
		for _, st := range b.boards.states {
			again = again || st.dirty
		}
		if again {
			b.boards.wakeLocked()
		}
		b.boards.mu.Unlock()
	}
	return next, waiting
}

// writeBoard edits the board's message, or posts it when there is none or it was deleted, and
// returns the message id.
func (b *Bridge) writeBoard(ctx context.Context, board core.Board, content string) (string, error) {
	d := b.o.CommunityDiscord
	if board.MessageID != "" {
		err := d.EditBoard(ctx, board.ChannelID, board.MessageID, content)
		if err == nil {
			return board.MessageID, nil
		}
		if !errors.Is(err, core.ErrNotFound) {
			return "", err
		}
		b.log.Info("the board's message was deleted; posting it again", "channel", board.ChannelID)
	}
	id, err := d.PostBoard(ctx, board.ChannelID, content)
	if err != nil {
		return "", err
	}
	if err := b.o.Community.SetBoardMessage(ctx, board.ChannelID, id); err != nil {
		if errors.Is(err, core.ErrNotFound) { // stopped meanwhile
			return id, nil
		}
		// The message stays in memory; a restart would post another board.
		b.noteError("storing the message id of a board", err)
	}
	return id, nil
}

// boardDone stores the result of a write in the board's state. A board that was stopped while
// it was written loses the message the write made.
func (b *Bridge) boardDone(w boardWork, messageID, shown string, at time.Time, failed bool) {
	b.boards.mu.Lock()
	st := w.st
	st.busy = false
	stopped := b.boards.states[w.board.ChannelID] != st
	if !stopped {
		// A deletion seen during the write cleared the id: keep it cleared.
		if st.board.MessageID == w.board.MessageID {
			st.board.MessageID = messageID
			st.shown = shown
		}
		st.lastWrite = at
		if failed {
			st.dirty = true
		}
	}
	b.boards.mu.Unlock()
	if stopped && messageID != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.o.CommunityDiscord.DeleteBoard(ctx, w.board.ChannelID, messageID); err != nil {
			b.log.Warn("deleting the message of a stopped board failed", "channel", w.board.ChannelID, "err", err)
		}
	}
}

// isConnected reports whether the hub connected once: from then on the model holds the
// contacts' statuses.
func (p *presence) isConnected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.connectedAt.IsZero()
}

// boardEntry is one online contact on a board.
type boardEntry struct {
	name    string
	status  core.OnlineStatus
	kind    core.DeviceKind
	session *core.Session
}

// renderBoard is a board's body: the consenting contacts who are online (Invisible counts as
// offline), most present first, then by name; cut with "and N more" within Discord's limit.
func (b *Bridge) renderBoard(consented []string) string {
	var online []boardEntry
	for _, id := range consented {
		status, dev, known := b.presence.contactPresence(id)
		if !known || !status.Visible() {
			continue
		}
		name, _ := b.presence.contactLook(id, "")
		e := boardEntry{name: name, status: status, kind: dev.Kind}
		if s, ok := b.o.Sessions.Session(dev.SessionHint); ok {
			e.session = &s
		}
		online = append(online, e)
	}
	slices.SortFunc(online, func(x, y boardEntry) int {
		if c := cmp.Compare(y.status.Rank(), x.status.Rank()); c != 0 {
			return c
		}
		return cmp.Compare(strings.ToLower(x.name), strings.ToLower(y.name))
	})
	var sb strings.Builder
	fmt.Fprintf(&sb, "**Online in Resonite**: %d of %d", len(online), len(consented))
	if len(online) == 0 {
		sb.WriteString("\nNobody is online right now.")
	}
	// Room for the "and N more" line and the footer.
	limit := boardMaxLen - boardFooterMx - len("\n…and 10000 more")
	for i, e := range online {
		line := "\n" + boardLine(e)
		if utf8.RuneCountInString(sb.String())+utf8.RuneCountInString(line) > limit {
			fmt.Fprintf(&sb, "\n…and %d more", len(online)-i)
			break
		}
		sb.WriteString(line)
	}
	return neutralizeMentions(sb.String())
}

// boardLine is "emoji **Name** · device · [Session](<link>)".
func boardLine(e boardEntry) string {
	parts := []string{StatusEmoji(e.status) + " **" + EscapeMarkdown(Shorten(e.name, 64)) + "**"}
	if e.kind != core.DeviceUnknown {
		parts = append(parts, string(e.kind))
	}
	if s := e.session; s != nil {
		name := strings.TrimSpace(strings.ReplaceAll(s.Name, "\n", " "))
		if name == "" {
			name = "a session"
		}
		name = EscapeMarkdown(Shorten(name, 80))
		if strings.HasPrefix(s.URL, "https://") {
			// <…> keeps Discord from unfurling every session into a preview.
			name = "[" + name + "](<" + s.URL + ">)"
		}
		parts = append(parts, name)
	}
	return strings.Join(parts, " · ")
}
