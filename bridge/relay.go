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
// the bot or the pairing's webhook, is stored before anything else and then sent to Resonite by
// the outbox worker. Messages in channels that are not paired are ignored.
func (b *Bridge) HandleDiscordMessage(ctx context.Context, m core.DiscordMessage) error {
	if m.FromSelf || m.ID == "" {
		return nil
	}
	p, err := b.o.Store.PairingByChannel(ctx, m.ChannelID)
	if errors.Is(err, core.ErrNotFound) {
		return nil
	}
	if err != nil {
		// A message we could not store is recovered by catching the channel up later.
		b.catchUp.requestChannel(m.ChannelID)
		b.noteError("looking up the pairing of a Discord message", err)
		return fmt.Errorf("bridge: looking up pairing of channel %s: %w", m.ChannelID, err)
	}
	if err := b.ingestDiscord(ctx, p, m, false); err != nil {
		b.catchUp.requestChannel(m.ChannelID)
		return err
	}
	return nil
}

// ingestDiscord stores one Discord message of a paired channel; duplicates are no-ops.
// fromHistory counts a stored message as recovered by a catch-up.
func (b *Bridge) ingestDiscord(ctx context.Context, p core.Pairing, m core.DiscordMessage, fromHistory bool) error {
	if m.FromSelf || m.ID == "" || (m.WebhookID != "" && m.WebhookID == p.WebhookID) {
		return nil
	}
	if m.WebhookID != "" {
		// A post of ours through a webhook the pairing no longer uses (it was deleted and made
		// again); catch-up reads such posts back from the history.
		if _, err := b.o.Store.MessageByTarget(ctx, core.ToDiscord, m.ID); err == nil {
			return nil
		}
	}
	text := FormatForResonite(m)
	if text == "" {
		return nil
	}
	payload, err := core.EncodeToResonite(core.ToResonitePayload{ChannelID: m.ChannelID, MessageID: m.ID, Text: text, AuthorName: m.AuthorName})
	if err != nil {
		return fmt.Errorf("bridge: encoding Discord message %s: %w", m.ID, err)
	}
	created := m.Timestamp
	if created.IsZero() {
		created = time.Now()
	}
	_, inserted, err := b.o.Store.Enqueue(ctx, core.OutboxRow{
		Direction:     core.ToResonite,
		SourceID:      m.ID,
		PairingID:     p.ID,
		TargetID:      ResoniteMessageID(m.ID),
		Payload:       payload,
		State:         core.StatePending,
		NextAttemptAt: time.Now(),
		SourceTime:    created,
	})
	if err != nil {
		b.noteError("storing a Discord message", err)
		return fmt.Errorf("bridge: storing Discord message %s: %w", m.ID, err)
	}
	if inserted {
		if fromHistory {
			b.stats.recovered(1)
		}
		signal(b.wake[core.ToResonite])
	}
	return nil
}

// ingestResonite stores one message received from a contact, once per pairing of the contact.
// History read by a catch-up skips what is older than the pairing; a live push never does,
// since its sendTime is the sender's clock and may lag behind the moment of pairing.
func (b *Bridge) ingestResonite(ctx context.Context, m core.ContactMessage, fromHistory bool) error {
	if m.ID == "" || m.SenderID == "" || m.SenderID == b.o.Resonite.UserID() {
		return nil
	}
	pairings, err := b.o.Store.PairingsByContact(ctx, m.SenderID)
	if err != nil {
		b.noteError("looking up the pairings of a Resonite contact", err)
		return fmt.Errorf("bridge: looking up pairings of contact %s: %w", m.SenderID, err)
	}
	if len(pairings) == 0 {
		return nil
	}
	payload, err := core.EncodeToDiscord(m)
	if err != nil {
		return fmt.Errorf("bridge: encoding Resonite message %s: %w", m.ID, err)
	}
	created := m.SentAt
	if created.IsZero() {
		created = time.Now()
	}
	stored := false
	for _, p := range pairings {
		if fromHistory && !m.SentAt.IsZero() && m.SentAt.Before(p.CreatedAt) {
			continue // older than the pairing: catch-up must not relay a whole history
		}
		src := m.ID + ":" + strconv.FormatInt(p.ID, 10)
		_, inserted, err := b.o.Store.Enqueue(ctx, core.OutboxRow{
			Direction:     core.ToDiscord,
			SourceID:      src,
			PairingID:     p.ID,
			Payload:       payload,
			State:         core.StatePending,
			NextAttemptAt: time.Now(),
			SourceTime:    created,
		})
		if err != nil {
			b.noteError("storing a Resonite message", err)
			return fmt.Errorf("bridge: storing Resonite message %s: %w", m.ID, err)
		}
		if inserted {
			stored = true
			if fromHistory {
				b.stats.recovered(1)
			}
		}
	}
	if stored {
		signal(b.wake[core.ToDiscord])
	}
	return nil
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
