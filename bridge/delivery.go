package bridge

import (
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

// The delivery engine. A worker per direction claims batches from the store: per pairing, the
// run of due rows at the head of its queue, in (source time, id) order, never two batches of one
// pairing at once. A batch is delivered in order and its outcomes are stored together in one
// transaction. What must survive a crash lives in the rows, not here: how many parts of a long
// message were posted (PartsPosted, FirstTargetID), and which rows went out inside another's
// post (CoalescedInto).

// runWorker claims batches of one direction and delivers them concurrently (one goroutine per
// pairing in flight, at most Concurrency), until ctx ends; then it waits for the batches in
// flight for at most DrainTimeout before cancelling them.
func (b *Bridge) runWorker(ctx context.Context, dir core.Direction) {
	deliverCtx, cancelDeliver := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDeliver()
	var wg sync.WaitGroup
	sem := make(chan struct{}, b.o.Concurrency)
	wake := b.wake[dir]
	timer := time.NewTimer(0)
	defer timer.Stop()

	for ctx.Err() == nil {
		held, fenced := b.hold(ctx, dir)
		if free := b.o.Concurrency - len(sem); free > 0 && !held {
			rows, err := b.o.Store.ClaimBatch(ctx, dir, free, b.o.BatchSize, b.o.Lease, fenced)
			if err != nil && ctx.Err() == nil {
				b.noteError("claiming "+string(dir)+" messages", err)
			}
			batches := byPairing(rows)
			for _, batch := range batches {
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					b.deliverBatch(deliverCtx, batch)
					<-sem
					signal(wake) // the pairing's next rows may be claimable now
				}()
			}
			if len(batches) == free {
				continue // there may be more
			}
		}
		sleep := b.o.PollInterval
		if t, ok, err := b.o.Store.NextDue(ctx, dir); err == nil && ok {
			// A due row that the claim did not return waits for its pairing's batch in flight
			// or for a fence; both signal wake when they end, so do not spin on it.
			if d := time.Until(t); d > 0 && d < sleep {
				sleep = d
			}
		}
		timer.Reset(sleep)
		select {
		case <-ctx.Done():
		case <-wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}

	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	drain := time.NewTimer(b.o.DrainTimeout)
	defer drain.Stop()
	select {
	case <-done:
	case <-drain.C:
		b.log.Warn("drain timeout: cancelling deliveries in flight", "direction", dir)
		cancelDeliver()
		<-done
	}
}

// byPairing splits claimed rows, which come grouped by pairing in delivery order, into batches.
func byPairing(rows []core.OutboxRow) [][]core.OutboxRow {
	var out [][]core.OutboxRow
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].PairingID == rows[i].PairingID {
			j++
		}
		out = append(out, rows[i:j])
		i = j
	}
	return out
}

// storeCtx outlives a cancelled delivery so that its outcome still reaches the store.
func storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// deliverBatch delivers one pairing's batch in order and stores every outcome at once. The
// first failure ends the batch: the failed row is retried, postponed or given up, the rows
// behind it go back unchanged (no attempt counted), so order holds.
func (b *Bridge) deliverBatch(ctx context.Context, batch []core.OutboxRow) {
	var out []core.Settlement
	var err error
	var failed core.OutboxRow
	pairing, perr := b.rowPairing(ctx, batch[0])
	switch {
	case perr != nil:
		err, failed = perr, batch[0]
	case batch[0].Direction == core.ToResonite:
		out, failed, err = b.sendToResonite(ctx, pairing, batch)
	case batch[0].Direction == core.ToDiscord:
		out, failed, err = b.postToDiscord(ctx, pairing, batch)
	default:
		err, failed = core.Permanent(fmt.Errorf("unknown direction %q", batch[0].Direction)), batch[0]
	}
	var f core.Settlement
	if err != nil {
		f = b.failure(ctx, failed, err)
		out = append(out, f)
		for _, r := range batch {
			if !settled(out, r.ID) {
				out = append(out, core.Settlement{RowID: r.ID, Kind: core.Postpone, Until: time.Now()})
			}
		}
	}
	b.settle(ctx, batch, out)
	if f.Kind == core.Fail && failed.Direction == core.ToResonite {
		sctx, cancel := storeCtx(ctx)
		defer cancel()
		b.warnUndelivered(sctx, pairing, failed, err)
	}
	if f.Kind == core.Fail && failed.Direction == core.ToDiscord && perr == nil {
		sctx, cancel := storeCtx(ctx)
		defer cancel()
		b.warnContact(sctx, pairing, failed, err)
	}
}

func settled(out []core.Settlement, id int64) bool {
	return slices.ContainsFunc(out, func(s core.Settlement) bool { return s.RowID == id })
}

// failure decides what becomes of a row whose delivery failed with err.
func (b *Bridge) failure(ctx context.Context, m core.OutboxRow, err error) core.Settlement {
	reason := Shorten(err.Error(), 300)
	wait, postpone := core.Wait(err)
	switch {
	case ctx.Err() != nil && !core.IsPermanent(err):
		// Shutdown interrupted the delivery: due again at next start, not counted as an attempt.
		return core.Settlement{RowID: m.ID, Kind: core.Postpone, Until: time.Now()}
	case postpone:
		b.stats.add(m.Direction, func(s *DirectionStats) { s.Postponed++ })
		return core.Settlement{RowID: m.ID, Kind: core.Postpone, Until: time.Now().Add(wait)}
	case core.IsPermanent(err) || m.Attempts+1 >= b.o.MaxAttempts:
		if !core.IsPermanent(err) {
			err = fmt.Errorf("gave up after %d attempts: %w", m.Attempts+1, err)
			reason = Shorten(err.Error(), 300)
		}
		b.stats.add(m.Direction, func(s *DirectionStats) { s.Failed++ })
		b.noteError(fmt.Sprintf("delivering %s message %d (given up)", m.Direction, m.ID), err)
		return core.Settlement{RowID: m.ID, Kind: core.Fail, Reason: reason}
	default:
		b.stats.add(m.Direction, func(s *DirectionStats) { s.Retried++ })
		b.noteError(fmt.Sprintf("delivering %s message %d (will retry)", m.Direction, m.ID), err)
		return core.Settlement{RowID: m.ID, Kind: core.Retry, Reason: reason}
	}
}

// settleRetry is how long settle keeps trying to store a batch's outcomes while the database
// is unreachable: well inside the lease, so that the rows are not handed out again meanwhile.
const settleRetry = 30 * time.Second

// settle stores a batch's outcomes in one transaction. The deliveries already happened, so an
// outcome that could not be stored would make a retry post again: settle keeps trying through a
// database outage (bounded by settleRetry, and by shutdown's drain).
func (b *Bridge) settle(ctx context.Context, batch []core.OutboxRow, out []core.Settlement) {
	// Counted first: the deliveries happened whether or not their outcomes get stored, and a
	// reader who sees a row delivered in the store sees it counted.
	for _, s := range out {
		if s.Kind != core.Delivered {
			continue
		}
		b.stats.add(batch[0].Direction, func(st *DirectionStats) {
			st.Delivered++
			if s.CoalescedInto != 0 {
				st.Coalesced++
			}
		})
	}
	deadline := time.Now().Add(min(settleRetry, b.o.Lease/2))
	wait := 100 * time.Millisecond
	for {
		sctx, cancel := storeCtx(ctx)
		err := b.o.Store.Settle(sctx, out)
		cancel()
		if err == nil || errors.Is(err, core.ErrConflict) {
			if err != nil {
				b.noteError("storing delivery outcomes", err) // rows settled meanwhile: nothing to redo
			}
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			b.noteError("storing delivery outcomes (given up; these rows may be delivered again)", err)
			return
		}
		b.log.Warn("storing delivery outcomes failed; trying again", "rows", len(out), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop() // shutdown cancelled the drain: one last try right away
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// sendToResonite sends a batch of Discord messages to the contact, back to back, each under
// its derived id (so a retry never sends a second copy).
func (b *Bridge) sendToResonite(ctx context.Context, pairing core.Pairing, batch []core.OutboxRow) ([]core.Settlement, core.OutboxRow, error) {
	var out []core.Settlement
	for _, m := range batch {
		p, err := core.DecodeToResonite(m.Payload)
		if err != nil {
			return out, m, core.Permanent(err)
		}
		id := m.TargetID
		if id == "" {
			id = ResoniteMessageID(m.SourceID)
		}
		if err := b.o.Resonite.SendText(ctx, id, pairing.ContactID, p.Text); err != nil {
			return out, m, fmt.Errorf("sending to %s: %w", pairing.ContactID, err)
		}
		out = append(out, core.Settlement{RowID: m.ID, Kind: core.Delivered, TargetID: id})
	}
	return out, core.OutboxRow{}, nil
}

// postGroup is one or more rows that go out as the same post(s): a run of text rows of one
// sender whose lines fit one Discord message together, or one row of any other kind.
type postGroup struct {
	rows  []core.OutboxRow
	msg   core.ContactMessage // of rows[0]
	posts []core.Post
	texts []string // of a joined text group: what each row adds ("" for a blank one)
}

// joined reports whether g is one plain text post that rows may have been joined into.
func (g postGroup) joined() bool {
	return isText(g.msg) && len(g.posts) == 1 && len(g.posts[0].Embeds) == 0
}

func claimedBefore(rows []core.OutboxRow) bool {
	return slices.ContainsFunc(rows, func(r core.OutboxRow) bool { return r.Claims > 1 })
}

// postToDiscord posts a batch of a contact's messages into the paired channel: text rows are
// joined into as few posts as fit DiscordMaxLen, in order; other kinds go alone; a long text
// takes several posts, and its progress is stored after each so that a retry goes on from the
// first post not made, even after a crash.
func (b *Bridge) postToDiscord(ctx context.Context, pairing core.Pairing, batch []core.OutboxRow) ([]core.Settlement, core.OutboxRow, error) {
	return b.postRows(ctx, pairing, batch, true)
}

// postRows posts rows in order, joining text rows when join is set.
func (b *Bridge) postRows(ctx context.Context, pairing core.Pairing, batch []core.OutboxRow, join bool) ([]core.Settlement, core.OutboxRow, error) {
	groups, bad := b.groupPosts(pairing, batch, join)
	var out []core.Settlement
	for _, g := range groups {
		head := g.rows[0]
		if g.joined() && head.PartsPosted == 0 && claimedBefore(g.rows) {
			// Taken before by a process that crashed, or by a try that timed out: a post of
			// some of these rows may have landed without being recorded.
			if id, n := b.coveredBefore(ctx, pairing, g); n > 0 {
				out = append(out, b.delivered(g, n, id)...)
				if n < len(g.rows) {
					more, failed, err := b.postRows(ctx, pairing, batch[len(out):], join)
					return append(out, more...), failed, err
				}
				continue
			}
		}
		first, err := b.postGroup(ctx, pairing, g)
		if err != nil && core.IsPermanent(err) && len(g.rows) > 1 {
			// Discord refused the joined post for good: one of its rows is at fault, and
			// only that one must fail. Post them one by one, then go on with the rest.
			sub, failed, err := b.postRows(ctx, pairing, g.rows, false)
			out = append(out, sub...)
			if err != nil {
				return out, failed, err
			}
			more, failed, err := b.postRows(ctx, pairing, batch[len(out):], true)
			return append(out, more...), failed, err
		}
		if err != nil {
			return out, head, err
		}
		out = append(out, b.delivered(g, len(g.rows), first)...)
	}
	if bad != nil {
		return out, *bad, core.Permanent(errors.New("the stored message cannot be read"))
	}
	return out, core.OutboxRow{}, nil
}

// delivered settles the first n rows of g as carried by the post target, and queues their
// read receipts.
func (b *Bridge) delivered(g postGroup, n int, target string) []core.Settlement {
	out := make([]core.Settlement, 0, n)
	for i, r := range g.rows[:n] {
		s := core.Settlement{RowID: r.ID, Kind: core.Delivered, TargetID: target}
		if i > 0 {
			s.CoalescedInto = g.rows[0].ID
		}
		out = append(out, s)
		id, _, _ := strings.Cut(r.SourceID, ":") // "<Resonite message id>:<pairing id>"
		b.reads.add(g.msg.SenderID, id)
	}
	return out
}

// groupPosts renders a batch into post groups, stopping at a row whose payload cannot be read
// (returned as bad: the rows before it still go out).
func (b *Bridge) groupPosts(pairing core.Pairing, batch []core.OutboxRow, join bool) ([]postGroup, *core.OutboxRow) {
	var groups []postGroup
	for i := range batch {
		r := batch[i]
		m, err := core.DecodeToDiscord(r.Payload)
		if err != nil {
			return groups, &batch[i]
		}
		name, avatar := b.presence.contactLook(m.SenderID, pairing.ContactUsername)
		posts := RenderForDiscord(m, name, avatar)
		if n := len(groups); join && n > 0 && joinable(groups[n-1], r, m, posts) {
			g := &groups[n-1]
			g.rows = append(g.rows, r)
			text := ""
			if len(posts) == 1 { // blank text adds no line
				text = posts[0].Content
				g.posts[0].Content += "\n" + text
			}
			g.texts = append(g.texts, text)
			continue
		}
		g := postGroup{rows: []core.OutboxRow{r}, msg: m, posts: posts}
		if len(posts) == 1 {
			g.texts = []string{posts[0].Content}
		}
		groups = append(groups, g)
	}
	return groups, nil
}

// joinable reports whether row r (message m, rendered as posts) can go out inside group g's
// post: both plain one-post text of the same sender, never posted in part, fitting together.
func joinable(g postGroup, r core.OutboxRow, m core.ContactMessage, posts []core.Post) bool {
	head := g.rows[0]
	if g.msg.SenderID != m.SenderID || !isText(g.msg) || !isText(m) || len(g.posts) != 1 || len(posts) > 1 ||
		head.PartsPosted > 0 || r.PartsPosted > 0 || len(g.posts[0].Embeds) > 0 {
		return false
	}
	if len(posts) == 0 {
		return true // blank: delivered with the group, nothing to show
	}
	return utf8.RuneCountInString(g.posts[0].Content)+1+utf8.RuneCountInString(posts[0].Content) <= DiscordMaxLen
}

func isText(m core.ContactMessage) bool { return m.Kind == core.KindText || m.Kind == "" }

// postGroup makes a group's posts from the first one not made yet and returns the id of the
// first post (empty when there was nothing to show).
func (b *Bridge) postGroup(ctx context.Context, pairing core.Pairing, g postGroup) (string, error) {
	head := g.rows[0]
	first := head.FirstTargetID
	var before []string
	if head.PartsPosted == 0 && !g.joined() && claimedBefore(g.rows) {
		// Taken before by a process that crashed, or by a try that timed out: its posts may
		// have landed without being recorded. Look before posting again.
		before = b.postedBefore(ctx, pairing, head, g.posts)
	}
	for i := head.PartsPosted; i < len(g.posts); i++ {
		if i < len(before) && before[i] != "" {
			if first == "" {
				first = before[i]
			}
			continue
		}
		id, err := b.postOne(ctx, pairing.ChannelID, g.msg, g.posts[i])
		if err != nil {
			return "", fmt.Errorf("posting part %d of %d into channel %s: %w", i+1, len(g.posts), pairing.ChannelID, err)
		}
		if first == "" {
			first = id
		}
		if len(g.posts) > 1 && i < len(g.posts)-1 {
			sctx, cancel := storeCtx(ctx)
			if err := b.o.Store.SetProgress(sctx, head.ID, i+1, first); err != nil {
				b.noteError("recording the progress of a long message", err)
			}
			cancel()
		}
	}
	return first, nil
}

// coveredBefore finds a post of the bridge in the channel that an earlier try of g's rows made
// without its outcome being stored: one whose text is that of g's first n rows joined (the try
// may have joined fewer rows than g has now). It returns the post's id and n, or 0 when there is
// none or the history cannot be read (then the rows are posted again: a rare duplicate beats a
// lost message).
func (b *Bridge) coveredBefore(ctx context.Context, pairing core.Pairing, g postGroup) (string, int) {
	head := g.rows[0]
	since := head.EnqueuedAt
	if since.IsZero() {
		since = head.SourceTime
	}
	history, err := b.ourPostsSince(ctx, pairing, since)
	if err != nil {
		b.log.Warn("cannot check for an earlier post of redelivered messages; posting them again", "row", head.ID, "err", err)
		return "", 0
	}
	for _, h := range history {
		content := h.Content
		if h.WebhookID == "" { // the bot's own post without a webhook: "**Name**: text"
			if _, rest, ok := strings.Cut(content, "**: "); ok && strings.HasPrefix(content, "**") {
				content = rest
			}
		}
		n := coverage(content, g.texts)
		if n == 0 {
			continue
		}
		if row, err := b.o.Store.MessageByTarget(ctx, core.ToDiscord, h.ID); err == nil && row.ID != head.ID && row.CoalescedInto != head.ID {
			continue // another message's post with the same text
		}
		b.log.Info("redelivered messages were posted before; not posting them again", "row", head.ID, "rows", n)
		return h.ID, n
	}
	return "", 0
}

// coverage is how many leading texts, joined by newlines, make up content exactly; 0 for none.
func coverage(content string, texts []string) int {
	var joined strings.Builder
	n := 0
	for i, t := range texts {
		if t != "" {
			if joined.Len() > 0 {
				joined.WriteByte('\n')
			}
			joined.WriteString(t)
		}
		if joined.Len() > 0 && joined.String() == content {
			n = i + 1
		}
		if joined.Len() > len(content) {
			break
		}
	}
	return n
}

// redeliveryWindow is how much history before a row's enqueue time the redelivery checks read
// (clocks differ); redeliveryPages bounds how far forward they page: a busy channel may hold
// many members' messages between the row's enqueue time and the post an earlier try made.
const (
	redeliveryWindow = time.Minute
	redeliveryPages  = 20
)

// ourPostsSince reads the channel's history from a little before since, page by page to the
// end (at most redeliveryPages pages), and keeps the bridge's own posts: the bot's, and those
// of the pairing's webhook.
func (b *Bridge) ourPostsSince(ctx context.Context, pairing core.Pairing, since time.Time) ([]core.DiscordMessage, error) {
	after := snowflakeAt(since.Add(-redeliveryWindow))
	var ours []core.DiscordMessage
	for range redeliveryPages {
		page, err := b.o.Discord.History(ctx, pairing.ChannelID, after, maxPageSize)
		if err != nil {
			return nil, err
		}
		for _, h := range page {
			if h.FromSelf || (h.WebhookID != "" && h.WebhookID == pairing.WebhookID) {
				ours = append(ours, h)
			}
			if compareSnowflakes(h.ID, after) > 0 {
				after = h.ID
			}
		}
		if len(page) < maxPageSize {
			break
		}
	}
	return ours, nil
}

// postedBefore finds, for each post, the id of an identical post of the bridge already in the
// channel that no other row claims: made by an earlier try of m whose outcome was not stored.
// When the history cannot be read it returns nothing, and m is posted again: a rare duplicate
// beats a lost message.
func (b *Bridge) postedBefore(ctx context.Context, pairing core.Pairing, m core.OutboxRow, posts []core.Post) []string {
	since := m.EnqueuedAt
	if since.IsZero() {
		since = m.SourceTime
	}
	history, err := b.ourPostsSince(ctx, pairing, since)
	if err != nil {
		b.log.Warn("cannot check for an earlier post of a redelivered message; posting it again", "row", m.ID, "err", err)
		return nil
	}
	found := make([]string, len(posts))
	used := map[string]bool{}
	for i, p := range posts {
		for _, h := range history {
			if used[h.ID] || (h.Content != p.Content && !strings.HasSuffix(h.Content, "**: "+p.Content)) {
				continue
			}
			if row, err := b.o.Store.MessageByTarget(ctx, core.ToDiscord, h.ID); err == nil && row.ID != m.ID && row.CoalescedInto != m.ID {
				continue // another message's post with the same text
			}
			found[i], used[h.ID] = h.ID, true
			break
		}
	}
	if slices.ContainsFunc(found, func(id string) bool { return id != "" }) {
		b.log.Info("a redelivered message was posted before; posting only what is missing", "row", m.ID)
	}
	return found
}

// rowPairing looks up the pairing a row belongs to; a pairing that is gone fails the row for
// good.
func (b *Bridge) rowPairing(ctx context.Context, m core.OutboxRow) (core.Pairing, error) {
	p, err := b.pairingByID(ctx, m.PairingID)
	if errors.Is(err, core.ErrNotFound) {
		return core.Pairing{}, core.Permanent(errors.New("the channel is no longer paired"))
	}
	if err != nil {
		return core.Pairing{}, fmt.Errorf("looking up pairing %d: %w", m.PairingID, err)
	}
	return p, nil
}

// warnUndelivered leaves a short ⚠ reply under the Discord message that did not reach Resonite.
// It names the contact (pairing is zero when its pairing could not be read): in a group channel
// the message may have reached the others.
func (b *Bridge) warnUndelivered(ctx context.Context, pairing core.Pairing, m core.OutboxRow, cause error) {
	p, err := core.DecodeToResonite(m.Payload)
	if err != nil || p.ChannelID == "" {
		return
	}
	to := "Resonite"
	if pairing.ContactID != "" {
		to = "**" + EscapeMarkdown(Shorten(nameOr(pairing.ContactUsername), 64)) + "** in Resonite"
	}
	text := "⚠ Not delivered to " + to + ": " + Shorten(cause.Error(), 150)
	if err := b.o.Discord.Reply(ctx, p.ChannelID, p.MessageID, text); err != nil {
		b.noteError("replying with a delivery warning", err)
	}
}
