package bot

import (
	"context"
	"sync"

	"github.com/bwmarrin/discordgo"
)

// Threads and forum posts are linked like channels: the pairing holds the thread's id, and
// the thread's messages, history and catch-up are the thread's own. Webhooks belong to the
// parent channel, so a post into a thread goes through the parent's webhook with thread_id.

// threadParents remembers the parent channel of each thread posted in ("" for a channel that
// is no thread); a thread never moves to another parent.
type threadParents struct {
	mu     sync.Mutex
	parent map[string]string
}

func newThreadParents() *threadParents { return &threadParents{parent: map[string]string{}} }

// webhookChannel returns the channel whose webhook posts into channelID, and the thread id to
// post with ("" for a plain channel).
func (b *Bot) webhookChannel(ctx context.Context, channelID string) (hookChannel, threadID string, err error) {
	t := b.threads
	t.mu.Lock()
	parent, ok := t.parent[channelID]
	t.mu.Unlock()
	if !ok {
		ch, err := b.s.State.Channel(channelID)
		if err != nil {
			if ch, err = b.s.Channel(channelID, discordgo.WithContext(ctx)); err != nil {
				return "", "", wrap("looking up channel "+channelID, err)
			}
		}
		if ch.IsThread() && ch.ParentID != "" {
			parent = ch.ParentID
		}
		t.mu.Lock()
		t.parent[channelID] = parent
		t.mu.Unlock()
	}
	if parent == "" {
		return channelID, "", nil
	}
	return parent, channelID, nil
}
