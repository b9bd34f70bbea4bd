package bridge

import (
	"context"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// warnContact answers the contact in Resonite when a message of theirs was given up on the way
// to Discord (refused for good, or out of attempts), so that the sender is never left
// believing it arrived. The answer's id derives from the row, so a retry sends no second one.
func (b *Bridge) warnContact(ctx context.Context, pairing core.Pairing, m core.OutboxRow, cause error) {
	if pairing.ContactID == "" {
		return
	}
	text := "⚠ not delivered to Discord: " + Shorten(cause.Error(), 150)
	if err := b.o.Resonite.SendText(ctx, ResoniteMessageID("undelivered:"+m.SourceID), pairing.ContactID, text); err != nil {
		b.noteError("telling a contact that a message was not delivered", err)
	}
}
