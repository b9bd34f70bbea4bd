package bridge

import (
	"context"
	"fmt"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// Assets downloads what a contact's message refers to; the Resonite adapter has it.
type Assets interface {
	// FetchSound downloads a voice message's audio, within a size cap and a timeout.
	FetchSound(ctx context.Context, m core.ContactMessage) (core.File, error)
}

// postOne makes one post of a contact's message. A voice message's audio is fetched and
// uploaded with it, so that it plays in Discord; when the audio cannot be fetched, or Discord
// refuses the file, the post goes out with the link alone, as it reads anyway.
func (b *Bridge) postOne(ctx context.Context, channelID string, m core.ContactMessage, p core.Post) (string, error) {
	if m.Kind != core.KindSound || m.Unreadable || b.o.Assets == nil {
		return b.o.Discord.Post(ctx, channelID, p)
	}
	f, err := b.o.Assets.FetchSound(ctx, m)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("fetching the voice message's audio: %w", err)
		}
		b.log.Info("the voice message's audio cannot be fetched; posting its link", "message", m.ID, "err", err)
		return b.o.Discord.Post(ctx, channelID, p)
	}
	withFile := p
	withFile.Files = []core.File{f}
	id, err := b.o.Discord.Post(ctx, channelID, withFile)
	if err != nil && core.IsPermanent(err) {
		b.log.Info("Discord refused the voice message's audio; posting its link", "message", m.ID, "err", err)
		return b.o.Discord.Post(ctx, channelID, p)
	}
	return id, err
}
