package bot

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// eventQueue runs the bridge's callbacks one after another in gateway order. push never blocks
// (the gateway reader must not wait for PostgreSQL); the queue is unbounded, and its growth is
// logged.
type eventQueue struct {
	mu      sync.Mutex
	items   []func(context.Context)
	busy    bool
	stopped bool
	changed chan struct{} // closed and replaced on every change
}

// queueWarnAt is the backlog at which the queue says that the bridge is not keeping up.
const queueWarnAt = 1000

func newEventQueue() *eventQueue { return &eventQueue{changed: make(chan struct{})} }

func (q *eventQueue) notifyLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

func (q *eventQueue) push(f func(context.Context)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(q.items, f)
	q.notifyLocked()
}

// run executes queued callbacks until ctx ends; a panicking callback is logged and skipped.
func (q *eventQueue) run(ctx context.Context, log *slog.Logger) {
	warned := false
	defer func() {
		q.mu.Lock()
		q.stopped = true
		q.notifyLocked()
		q.mu.Unlock()
	}()
	for {
		q.mu.Lock()
		for len(q.items) == 0 {
			ch := q.changed
			q.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-ch:
			}
			q.mu.Lock()
		}
		f := q.items[0]
		q.items[0] = nil
		q.items = q.items[1:]
		backlog := len(q.items)
		q.busy = true
		q.mu.Unlock()

		switch {
		case backlog >= queueWarnAt && !warned:
			warned = true
			log.Warn("Discord events are queueing up: the bridge is slow (is PostgreSQL reachable?)", "queued", backlog)
		case backlog == 0 && warned:
			warned = false
			log.Info("Discord event queue caught up")
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					log.Error("panic in a Discord event handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				}
			}()
			f(ctx)
		}()

		q.mu.Lock()
		q.busy = false
		q.notifyLocked()
		q.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
	}
}

// drain waits until every queued callback ran, or the worker stopped.
func (q *eventQueue) drain() {
	for {
		q.mu.Lock()
		if q.stopped || (len(q.items) == 0 && !q.busy) {
			q.mu.Unlock()
			return
		}
		ch := q.changed
		q.mu.Unlock()
		<-ch
	}
}

// relayedTypes are the message types that carry chat; joins, pins, boosts and the like are not
// relayed.
var relayedTypes = map[discordgo.MessageType]bool{
	discordgo.MessageTypeDefault: true,
	discordgo.MessageTypeReply:   true,
}

// convert turns a Discord message into what the bridge relays; ok is false for messages that
// are not chat (system messages, DMs).
func (b *Bot) convert(m *discordgo.Message) (core.DiscordMessage, bool) {
	if m.GuildID == "" && m.ChannelID == "" || !relayedTypes[m.Type] || m.Author == nil {
		return core.DiscordMessage{}, false
	}
	guildID := m.GuildID
	if guildID == "" {
		if ch, err := b.s.State.Channel(m.ChannelID); err == nil {
			guildID = ch.GuildID
		}
	}
	out := core.DiscordMessage{
		ID:              m.ID,
		ChannelID:       m.ChannelID,
		GuildID:         guildID,
		AuthorID:        m.Author.ID,
		AuthorName:      b.displayName(guildID, m.Author, m.Member),
		AuthorAvatarURL: m.Author.AvatarURL("128"),
		WebhookID:       m.WebhookID,
		FromSelf:        b.fromSelf(m),
		Content:         b.renderContent(guildID, m),
		Timestamp:       m.Timestamp,
	}
	for _, a := range m.Attachments {
		if a != nil && a.URL != "" {
			out.Attachments = append(out.Attachments, a.URL)
		}
	}
	out.Files = attachmentsOf(m)
	if m.EditedTimestamp != nil {
		out.EditedAt = *m.EditedTimestamp
	}
	for _, s := range m.StickerItems {
		if s != nil && s.Name != "" {
			out.Stickers = append(out.Stickers, s.Name)
		}
	}
	if r := m.ReferencedMessage; r != nil && r.Author != nil {
		out.ReplyTo = &core.DiscordReply{
			AuthorName: b.displayName(guildID, r.Author, r.Member),
			Content:    b.renderContent(guildID, r),
		}
	}
	return out, true
}

// fromSelf: the bot's own messages and those of webhooks it posts through are never relayed.
func (b *Bot) fromSelf(m *discordgo.Message) bool {
	if m.Author != nil && m.Author.ID != "" && m.Author.ID == b.selfID() {
		return true
	}
	return m.WebhookID != "" && b.hooks.isOurs(m.WebhookID)
}

// displayName is what a person is called in the server: nickname, global name, username.
func (b *Bot) displayName(guildID string, u *discordgo.User, member *discordgo.Member) string {
	if member != nil && member.Nick != "" {
		return member.Nick
	}
	if guildID != "" && u.ID != "" {
		if mem, err := b.s.State.Member(guildID, u.ID); err == nil && mem.Nick != "" {
			return mem.Nick
		}
	}
	if u.GlobalName != "" {
		return u.GlobalName
	}
	if u.Username != "" {
		return u.Username
	}
	return "someone"
}

var (
	userMention    = regexp.MustCompile(`<@!?(\d+)>`)
	roleMention    = regexp.MustCompile(`<@&(\d+)>`)
	channelMention = regexp.MustCompile(`<#(\d+)>`)
	customEmoji    = regexp.MustCompile(`<a?:(\w{1,32}):\d+>`)
	timestampTag   = regexp.MustCompile(`<t:(-?\d{1,13})(?::[tTdDfFR])?>`)
)

// renderContent replaces Discord's markup that reads badly elsewhere: mentions become names,
// custom emoji their :name:, timestamps a UTC date.
func (b *Bot) renderContent(guildID string, m *discordgo.Message) string {
	s := m.Content
	if !strings.Contains(s, "<") {
		return s
	}
	users := map[string]*discordgo.User{}
	for _, u := range m.Mentions {
		if u != nil {
			users[u.ID] = u
		}
	}
	s = userMention.ReplaceAllStringFunc(s, func(tag string) string {
		id := userMention.FindStringSubmatch(tag)[1]
		if u, ok := users[id]; ok {
			return "@" + b.displayName(guildID, u, nil)
		}
		if guildID != "" {
			if mem, err := b.s.State.Member(guildID, id); err == nil && mem.User != nil {
				return "@" + b.displayName(guildID, mem.User, mem)
			}
		}
		return "@someone"
	})
	s = roleMention.ReplaceAllStringFunc(s, func(tag string) string {
		id := roleMention.FindStringSubmatch(tag)[1]
		if guildID != "" {
			if r, err := b.s.State.Role(guildID, id); err == nil && r.Name != "" {
				return "@" + r.Name
			}
		}
		return "@role"
	})
	s = channelMention.ReplaceAllStringFunc(s, func(tag string) string {
		id := channelMention.FindStringSubmatch(tag)[1]
		// Only a channel of the same server is named: the bot's cache holds every server's.
		for _, c := range m.MentionChannels {
			if c != nil && c.ID == id && sameGuildChannel(c, guildID) {
				return "#" + c.Name
			}
		}
		if c, err := b.s.State.Channel(id); err == nil && sameGuildChannel(c, guildID) {
			return "#" + c.Name
		}
		return "#channel"
	})
	s = customEmoji.ReplaceAllString(s, ":$1:")
	s = timestampTag.ReplaceAllStringFunc(s, func(tag string) string {
		sec, err := strconv.ParseInt(timestampTag.FindStringSubmatch(tag)[1], 10, 64)
		if err != nil {
			return tag
		}
		return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04 UTC")
	})
	return s
}
