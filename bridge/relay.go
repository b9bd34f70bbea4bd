package bridge

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// HandleDiscordMessage relays a MESSAGE_CREATE: a message in a paired channel, from anyone but
// the bot or the pairing's webhook, is stored before anything else (submitted behind the
// earlier ones and committed with them, see ingest.go; it returns before the commit) and then
// sent to Resonite by the outbox worker. Messages in channels that are not paired are ignored.
func (b *Bridge) HandleDiscordMessage(ctx context.Context, m core.DiscordMessage) error {
	if m.FromSelf || m.ID == "" {
		return nil
	}
	p, err := b.pairingByChannel(ctx, m.ChannelID)
	if errors.Is(err, core.ErrNotFound) {
		return nil
	}
	if err != nil {
		// A message we could not store is recovered by catching the channel up later.
		b.catchUp.requestChannel(m.ChannelID)
		b.noteError("looking up the pairing of a Discord message", err)
		return fmt.Errorf("bridge: looking up pairing of channel %s: %w", m.ChannelID, err)
	}
	// Not waited for (see ingest.go): a row that cannot be stored asks for the channel's
	// catch-up itself.
	if _, err := b.ingestDiscord(ctx, p, m, false); err != nil {
		b.catchUp.requestChannel(m.ChannelID)
		return err
	}
	return nil
}

// ingestDiscord decides whether a Discord message of a paired channel is relayed and submits its
// row for storing (duplicates are no-ops); the job is nil when there is nothing to store. A live
// message whose row cannot be stored asks for its channel's catch-up; fromHistory counts a
// stored message as recovered by a catch-up, which waits for the job itself.
func (b *Bridge) ingestDiscord(ctx context.Context, p core.Pairing, m core.DiscordMessage, fromHistory bool) (*ingestJob, error) {
	if m.FromSelf || m.ID == "" || (m.WebhookID != "" && m.WebhookID == p.WebhookID) {
		return nil, nil
	}
	if m.WebhookID != "" {
		// A post of ours through a webhook the pairing no longer uses (it was deleted and made
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
	row := core.OutboxRow{
		Direction:     core.ToResonite,
		SourceID:      m.ID,
		PairingID:     p.ID,
		TargetID:      ResoniteMessageID(m.ID),
		Payload:       payload,
		State:         core.StatePending,
		NextAttemptAt: time.Now(),
		SourceTime:    created,
	}
	return b.submit([]core.OutboxRow{row}, func(inserted []bool, err error) {
		if err != nil {
			b.noteError("storing a Discord message", fmt.Errorf("bridge: storing Discord message %s: %w", m.ID, err))
			if !fromHistory {
				b.catchUp.requestChannel(m.ChannelID)
			}
			return
		}
		if fromHistory && inserted[0] {
			b.stats.recovered(1)
		}
	}), nil
}

// ingestResonite decides which pairings of the contact a received message goes to and submits
// one row per pairing for storing, like ingestDiscord; a live message whose rows cannot be
// stored asks for a Resonite catch-up. History read by a catch-up skips what is older than the
// pairing; a live push never does, since its sendTime is the sender's clock and may lag behind
// the moment of pairing.
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
	var rows []core.OutboxRow
	for _, p := range pairings {
		if fromHistory && !m.SentAt.IsZero() && m.SentAt.Before(p.CreatedAt) {
			continue // older than the pairing: catch-up must not relay a whole history
		}
		rows = append(rows, core.OutboxRow{
			Direction:     core.ToDiscord,
			SourceID:      m.ID + ":" + strconv.FormatInt(p.ID, 10),
			PairingID:     p.ID,
			Payload:       payload,
			State:         core.StatePending,
			NextAttemptAt: time.Now(),
			SourceTime:    created,
		})
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
			for _, in := range inserted {
				if in {
					b.stats.recovered(1)
				}
			}
		}
	}), nil
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
