package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// Edits and deletions of relayed Discord messages. Each goes through the outbox like a
// message, under an idempotency key of its own version (the message id and the edit's
// edited_timestamp, or the deletion), in (source time, id) order with the pairing's other rows:
// an edit stands at its edit time, a deletion at the time it was seen.

// Versions stores the later versions of relayed Discord messages; *store.Store has it.
type Versions interface {
	// MessageBySource returns the row of a source id, or core.ErrNotFound.
	MessageBySource(ctx context.Context, dir core.Direction, sourceID string) (core.OutboxRow, error)
	// EnqueueVersion stores row, a later version of Discord message messageID, only when it is
	// newer than every version stored for it: an edit (editedAt set) later than the last edit
	// stored, a deletion (editedAt zero) once. After a deletion nothing is newer. It reports
	// whether row was stored; storing the same version again stores nothing.
	EnqueueVersion(ctx context.Context, messageID string, editedAt time.Time, row core.OutboxRow) (bool, error)
}

// HandleDiscordEdit relays a MESSAGE_UPDATE of a relayed message as "Name (edited): text",
// only when its edited_timestamp is newer than the last version relayed: an update without
// one (Discord adding a link preview) is not an edit.
func (b *Bridge) HandleDiscordEdit(ctx context.Context, m core.DiscordMessage) error {
	if b.o.Versions == nil || m.FromSelf || m.ID == "" || m.EditedAt.IsZero() {
		return nil
	}
	p, orig, ok, err := b.relayedOriginal(ctx, m.ChannelID, m.ID)
	if err != nil || !ok || (m.WebhookID != "" && m.WebhookID == p.WebhookID) {
		return err
	}
	if !m.EditedAt.After(orig.SourceTime) {
		return nil
	}
	text := FormatEditForResonite(m)
	if text == "" {
		return nil
	}
	src := m.ID + ":edit:" + m.EditedAt.UTC().Format(time.RFC3339Nano)
	return b.enqueueVersion(ctx, p, m.ID, m.EditedAt, src, m.EditedAt, core.ToResonitePayload{
		ChannelID: m.ChannelID, MessageID: m.ID, Text: text, AuthorName: m.AuthorName,
	})
}

// HandleDiscordDelete relays a MESSAGE_DELETE of a relayed message as "Name deleted a
// message.", never with its text.
func (b *Bridge) HandleDiscordDelete(ctx context.Context, channelID, messageID string) error {
	if b.o.Versions == nil || messageID == "" {
		return nil
	}
	p, orig, ok, err := b.relayedOriginal(ctx, channelID, messageID)
	if err != nil || !ok {
		return err
	}
	name := ""
	if op, err := core.DecodeToResonite(orig.Payload); err == nil {
		name = op.AuthorName // empty for a pruned or older payload: "someone"
	}
	// After the message and its edits, whatever the clocks say.
	at := time.Now()
	if !at.After(orig.SourceTime) {
		at = orig.SourceTime.Add(time.Millisecond)
	}
	return b.enqueueVersion(ctx, p, messageID, time.Time{}, messageID+":delete", at, core.ToResonitePayload{
		ChannelID: channelID, MessageID: messageID, Text: DeletionForResonite(name), AuthorName: name,
	})
}

// relayedOriginal finds the pairing of a channel and the row of a message relayed from it;
// ok is false when the channel is not paired or the message was never relayed (or given up).
func (b *Bridge) relayedOriginal(ctx context.Context, channelID, messageID string) (core.Pairing, core.OutboxRow, bool, error) {
	p, err := b.pairingByChannel(ctx, channelID)
	if errors.Is(err, core.ErrNotFound) {
		return core.Pairing{}, core.OutboxRow{}, false, nil
	}
	if err != nil {
		b.noteError("looking up the pairing of an edited or deleted Discord message", err)
		return core.Pairing{}, core.OutboxRow{}, false, fmt.Errorf("bridge: looking up pairing of channel %s: %w", channelID, err)
	}
	// The original may still wait in the ingester (an edit right after the message): stored
	// first, it is found, and the version row comes after it.
	if err := b.flush(ctx); err != nil {
		return p, core.OutboxRow{}, false, fmt.Errorf("bridge: storing messages before Discord message %s's new version: %w", messageID, err)
	}
	orig, err := b.o.Versions.MessageBySource(ctx, core.ToResonite, messageID)
	if errors.Is(err, core.ErrNotFound) {
		return p, core.OutboxRow{}, false, nil
	}
	if err != nil {
		b.noteError("looking up an edited or deleted Discord message", err)
		return p, core.OutboxRow{}, false, fmt.Errorf("bridge: looking up Discord message %s: %w", messageID, err)
	}
	if orig.PairingID != p.ID || orig.State == core.StateFailed {
		return p, orig, false, nil
	}
	return p, orig, true, nil
}

func (b *Bridge) enqueueVersion(ctx context.Context, p core.Pairing, messageID string, editedAt time.Time, src string, at time.Time, payload core.ToResonitePayload) error {
	enc, err := core.EncodeToResonite(payload)
	if err != nil {
		return fmt.Errorf("bridge: encoding a version of Discord message %s: %w", messageID, err)
	}
	inserted, err := b.o.Versions.EnqueueVersion(ctx, messageID, editedAt, core.OutboxRow{
		Direction:     core.ToResonite,
		SourceID:      src,
		PairingID:     p.ID,
		TargetID:      ResoniteMessageID(src),
		Payload:       enc,
		State:         core.StatePending,
		NextAttemptAt: time.Now(),
		SourceTime:    at,
	})
	if err != nil {
		b.noteError("storing an edit or deletion of a Discord message", err)
		return fmt.Errorf("bridge: storing a version of Discord message %s: %w", messageID, err)
	}
	if inserted {
		signal(b.wake[core.ToResonite])
	}
	return nil
}
