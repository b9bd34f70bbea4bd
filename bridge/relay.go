package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// HandleDiscordMessage relays a MESSAGE_CREATE: a message in a paired channel, from anyone but
// the bot or the channel's webhook, is stored before anything else, one row per contact of the
// channel (submitted behind the earlier ones and committed with them, see ingest.go; it returns
// before the commit) and then sent to Resonite by the outbox worker. Messages in channels that
// are not paired are ignored.
func (b *Bridge) HandleDiscordMessage(ctx context.Context, m core.DiscordMessage) error {
	if m.FromSelf || m.ID == "" {
		return nil
	}
	ps, err := b.pairingsByChannel(ctx, m.ChannelID)
	if err != nil {
		// A message we could not store is recovered by catching the channel up later.
		b.catchUp.requestChannel(m.ChannelID)
		b.noteError("looking up the pairing of a Discord message", err)
		return fmt.Errorf("bridge: looking up pairings of channel %s: %w", m.ChannelID, err)
	}
	if len(ps) == 0 {
		return nil
	}
	// Not waited for (see ingest.go): a row that cannot be stored asks for the channel's
	// catch-up itself.
	if _, err := b.ingestDiscord(ctx, ps, m, false); err != nil {
		b.catchUp.requestChannel(m.ChannelID)
		return err
	}
	return nil
}

// postedByBridge reports whether a message came through the webhook of one of the channel's
// pairings (they share it): the bridge's own post of a contact's message.
func postedByBridge(ps []core.Pairing, m core.DiscordMessage) bool {
	return m.WebhookID != "" && slices.ContainsFunc(ps, func(p core.Pairing) bool { return p.WebhookID == m.WebhookID })
}

// ingestDiscord decides whether a Discord message of a paired channel is relayed and submits a
// row for each of the given pairings of its channel (duplicates are no-ops); the job is nil when
// there is nothing to store. A live message whose rows cannot be stored asks for its channel's
// catch-up; fromHistory counts a stored message as recovered by a catch-up, which waits for the
// job itself.
func (b *Bridge) ingestDiscord(ctx context.Context, ps []core.Pairing, m core.DiscordMessage, fromHistory bool) (*ingestJob, error) {
	if m.FromSelf || m.ID == "" || len(ps) == 0 || postedByBridge(ps, m) {
		return nil, nil
	}
	if m.WebhookID != "" {
		// A post of ours through a webhook the channel no longer uses (it was deleted and made
		// again); catch-up reads such posts back from the history.
		if _, err := b.o.Store.MessageByTarget(ctx, core.ToDiscord, m.ID); err == nil {
			return nil, nil
		}
	}
	text := FormatForResonite(m)
	if text == "" {
		return nil, nil
	}
	payload, err := core.EncodeToResonite(core.ToResonitePayload{ChannelID: m.ChannelID, MessageID: m.ID, Text: text, AuthorName: m.AuthorName})
	if err != nil {
		return nil, fmt.Errorf("bridge: encoding Discord message %s: %w", m.ID, err)
	}
	created := m.Timestamp
	if created.IsZero() {
		created = time.Now()
	}
	rows := make([]core.OutboxRow, 0, len(ps))
	for _, p := range ps {
		rows = append(rows, toResoniteRow(m.ID, p, payload, created))
	}
	return b.submit(rows, func(inserted []bool, err error) {
		if err != nil {
			b.noteError("storing a Discord message", fmt.Errorf("bridge: storing Discord message %s: %w", m.ID, err))
			if !fromHistory {
				b.catchUp.requestChannel(m.ChannelID)
			}
			return
		}
		if fromHistory && slices.Contains(inserted, true) {
			b.stats.recovered(1)
		}
	}), nil
}

// ingestResonite decides where a received message goes and submits its rows for storing, like
// ingestDiscord: one row per pairing of the contact, to Discord, and in a group channel one row
// per other contact of the channel, to Resonite as "Name: text" (once per contact, however many
// groups they share). A live message whose rows cannot be stored asks for a Resonite catch-up.
// History read by a catch-up skips what is older than a pairing; a live push never does, since
// its sendTime is the sender's clock and may lag behind the moment of pairing.
func (b *Bridge) ingestResonite(ctx context.Context, m core.ContactMessage, fromHistory bool) (*ingestJob, error) {
	if m.ID == "" || m.SenderID == "" || m.SenderID == b.o.Resonite.UserID() {
		return nil, nil
	}
	// A contact's "link NNNNNN", !links and !unlink are for the bridge, never relayed.
	if isCommand, err := b.handleContactCommand(ctx, m); isCommand {
		return nil, err
	}
	pairings, err := b.pairingsByContact(ctx, m.SenderID)
	if err != nil {
		b.noteError("looking up the pairings of a Resonite contact", err)
		return nil, fmt.Errorf("bridge: looking up pairings of contact %s: %w", m.SenderID, err)
	}
	if len(pairings) == 0 {
		return nil, nil
	}
	payload, err := core.EncodeToDiscord(m)
	if err != nil {
		return nil, fmt.Errorf("bridge: encoding Resonite message %s: %w", m.ID, err)
	}
	created := m.SentAt
	if created.IsZero() {
		created = time.Now()
	}
	tooOld := func(p core.Pairing) bool { return fromHistory && !m.SentAt.IsZero() && m.SentAt.Before(p.CreatedAt) }
	var rows []core.OutboxRow
	relayedTo := map[string]bool{m.SenderID: true}
	for _, p := range pairings {
		if tooOld(p) {
			continue // older than the pairing: catch-up must not relay a whole history
		}
		rows = append(rows, core.OutboxRow{
			Direction:     core.ToDiscord,
			SourceID:      core.RowSourceID(m.ID, p.ID),
			PairingID:     p.ID,
			Payload:       payload,
			State:         core.StatePending,
			NextAttemptAt: time.Now(),
			SourceTime:    created,
		})
		group, err := b.groupRows(ctx, p, m, created, relayedTo, tooOld)
		if err != nil {
			return nil, err
		}
		rows = append(rows, group...)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return b.submit(rows, func(inserted []bool, err error) {
		if err != nil {
			b.noteError("storing a Resonite message", fmt.Errorf("bridge: storing Resonite message %s: %w", m.ID, err))
			if !fromHistory {
				b.catchUp.requestResonite()
			}
			return
		}
		if fromHistory {
			for i, in := range inserted {
				if in && rows[i].Direction == core.ToDiscord {
					b.stats.recovered(1)
				}
			}
		}
	}), nil
}

// groupRows are the to_resonite rows that carry a contact's message m, posted in the channel of
// the contact's pairing from, to the channel's other contacts not in relayedTo (which it
// extends); none outside a group channel or for a message that has no words to show.
func (b *Bridge) groupRows(ctx context.Context, from core.Pairing, m core.ContactMessage, created time.Time,
	relayedTo map[string]bool, tooOld func(core.Pairing) bool) ([]core.OutboxRow, error) {
	members, err := b.pairingsByChannel(ctx, from.ChannelID)
	if err != nil {
		b.noteError("looking up the contacts of a group channel", err)
		return nil, fmt.Errorf("bridge: looking up pairings of channel %s: %w", from.ChannelID, err)
	}
	if len(members) < 2 {
		return nil, nil
	}
	text := FormatContactForResonite(from.ContactUsername, m)
	if text == "" {
		return nil, nil
	}
	payload, err := core.EncodeToResonite(core.ToResonitePayload{MessageID: m.ID, Text: text,
		AuthorName: from.ContactUsername, FromContactID: m.SenderID})
	if err != nil {
		return nil, fmt.Errorf("bridge: encoding Resonite message %s for a group: %w", m.ID, err)
	}
	var rows []core.OutboxRow
	for _, q := range members {
		if relayedTo[q.ContactID] || tooOld(q) {
			continue
		}
		relayedTo[q.ContactID] = true
		rows = append(rows, toResoniteRow(m.ID, q, payload, created))
	}
	return rows, nil
}

// toResoniteRow is the pending row of source message id in pairing p, sent under an id
// derived from both, so that a retry never sends a second copy.
func toResoniteRow(id string, p core.Pairing, payload []byte, created time.Time) core.OutboxRow {
	src := core.RowSourceID(id, p.ID)
	return core.OutboxRow{
		Direction:     core.ToResonite,
		SourceID:      src,
		PairingID:     p.ID,
		TargetID:      ResoniteMessageID(src),
		Payload:       payload,
		State:         core.StatePending,
		NextAttemptAt: time.Now(),
		SourceTime:    created,
	}
}

// handleMessageSent settles a to_resonite row whose SendMessage timed out but whose echo
// arrived later.
func (b *Bridge) handleMessageSent(ctx context.Context, id string) error {
	if !strings.HasPrefix(id, "MSG-") {
		return nil
	}
	row, err := b.o.Store.MessageByTarget(ctx, core.ToResonite, id)
	if errors.Is(err, core.ErrNotFound) {
		return nil // sent by another client of the account
	}
	if err != nil {
		return fmt.Errorf("bridge: looking up sent message %s: %w", id, err)
	}
	if row.State == core.StateDelivered || row.State == core.StateFailed || row.State == core.StateInFlight {
		return nil // an in-flight row is settled by its own SendMessage
	}
	if err := b.o.Store.MarkDelivered(ctx, row.ID, id); err != nil {
		return fmt.Errorf("bridge: marking message %d delivered: %w", row.ID, err)
	}
	b.stats.add(core.ToResonite, func(s *DirectionStats) { s.Delivered++ })
	signal(b.wake[core.ToResonite])
	return nil
}
