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

// HandleDiscordEdit relays a MESSAGE_UPDATE of a relayed message as "Name (edited): text" to
// each contact it reached, only when its edited_timestamp is newer than the last version
// relayed: an update without one (Discord adding a link preview) is not an edit.
func (b *Bridge) HandleDiscordEdit(ctx context.Context, m core.DiscordMessage) error {
	if b.o.Versions == nil || m.FromSelf || m.ID == "" || m.EditedAt.IsZero() {
		return nil
	}
	relayed, err := b.relayedOriginals(ctx, m.ChannelID, m.ID)
	if err != nil || len(relayed) == 0 {
		return err // the bridge's own webhook posts were never relayed: they have no row
	}
	text := FormatEditForResonite(m)
	if text == "" {
		return nil
	}
	payload := core.ToResonitePayload{ChannelID: m.ChannelID, MessageID: m.ID, Text: text, AuthorName: m.AuthorName}
	src := m.ID + ":edit:" + m.EditedAt.UTC().Format(time.RFC3339Nano)
	var errs []error
	for _, r := range relayed {
		if !m.EditedAt.After(r.orig.SourceTime) {
			continue
		}
		errs = append(errs, b.enqueueVersion(ctx, r.pairing, m.ID, m.EditedAt, src, m.EditedAt, payload))
	}
	return errors.Join(errs...)
}

// HandleDiscordDelete relays a MESSAGE_DELETE of a relayed message as "Name deleted a
// message." to each contact it reached, never with its text.
func (b *Bridge) HandleDiscordDelete(ctx context.Context, channelID, messageID string) error {
	if b.o.Versions == nil || messageID == "" {
		return nil
	}
	relayed, err := b.relayedOriginals(ctx, channelID, messageID)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range relayed {
		name := ""
		if op, err := core.DecodeToResonite(r.orig.Payload); err == nil {
			name = op.AuthorName // empty for a pruned or older payload: "someone"
		}
		// After the message and its edits, whatever the clocks say.
		at := time.Now()
		if !at.After(r.orig.SourceTime) {
			at = r.orig.SourceTime.Add(time.Millisecond)
		}
		errs = append(errs, b.enqueueVersion(ctx, r.pairing, messageID, time.Time{}, messageID+":delete", at, core.ToResonitePayload{
			ChannelID: channelID, MessageID: messageID, Text: DeletionForResonite(name), AuthorName: name,
		}))
	}
	return errors.Join(errs...)
}

// relayedMessage is a Discord message's row in one pairing of its channel.
type relayedMessage struct {
	pairing core.Pairing
	orig    core.OutboxRow
}

// relayedOriginals finds the rows of a message relayed from a channel, one per pairing it
// reached (given-up ones left out); none when the channel is not paired or the message was
// never relayed.
func (b *Bridge) relayedOriginals(ctx context.Context, channelID, messageID string) ([]relayedMessage, error) {
	ps, err := b.pairingsByChannel(ctx, channelID)
	if err != nil {
		b.noteError("looking up the pairing of an edited or deleted Discord message", err)
		return nil, fmt.Errorf("bridge: looking up pairings of channel %s: %w", channelID, err)
	}
	if len(ps) == 0 {
		return nil, nil
	}
	// The original may still wait in the ingester (an edit right after the message): stored
	// first, it is found, and the version row comes after it.
	if err := b.flush(ctx); err != nil {
		return nil, fmt.Errorf("bridge: storing messages before Discord message %s's new version: %w", messageID, err)
	}
	var out []relayedMessage
	for _, p := range ps {
		orig, err := b.o.Versions.MessageBySource(ctx, core.ToResonite, core.RowSourceID(messageID, p.ID))
		if errors.Is(err, core.ErrNotFound) {
			continue
		}
		if err != nil {
			b.noteError("looking up an edited or deleted Discord message", err)
			return nil, fmt.Errorf("bridge: looking up Discord message %s: %w", messageID, err)
		}
		if orig.State != core.StateFailed { // the source id names the pairing
			out = append(out, relayedMessage{p, orig})
		}
	}
	return out, nil
}

func (b *Bridge) enqueueVersion(ctx context.Context, p core.Pairing, messageID string, editedAt time.Time, src string, at time.Time, payload core.ToResonitePayload) error {
	enc, err := core.EncodeToResonite(payload)
	if err != nil {
		return fmt.Errorf("bridge: encoding a version of Discord message %s: %w", messageID, err)
	}
	inserted, err := b.o.Versions.EnqueueVersion(ctx, messageID, editedAt, toResoniteRow(src, p, enc, at))
	if err != nil {
		b.noteError("storing an edit or deletion of a Discord message", err)
		return fmt.Errorf("bridge: storing a version of Discord message %s: %w", messageID, err)
	}
	if inserted {
		signal(b.wake[core.ToResonite])
	}
	return nil
}
