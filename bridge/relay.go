package bridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// queuedRow is a to_discord row this process enqueued, kept for coalescing.
type queuedRow struct {
	id        int64
	sourceID  string
	createdAt time.Time
	msg       core.ContactMessage
}

// compareQueued is the store's delivery order: (CreatedAt, ID).
func compareQueued(a, b queuedRow) int {
	if c := a.createdAt.Compare(b.createdAt); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// remember adds a row to the coalescing memory of its pairing, in delivery order: a message
// that is stored late (catch-up) goes before the newer ones already queued, so that coalescing
// never posts a row ahead of an older one.
func (b *Bridge) remember(pairingID int64, r queuedRow) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queued[pairingID]
	i := len(q)
	for i > 0 && compareQueued(q[i-1], r) > 0 {
		i--
	}
	b.queued[pairingID] = slices.Insert(q, i, r)
}

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
	payload, err := core.EncodeToResonite(core.ToResonitePayload{ChannelID: m.ChannelID, MessageID: m.ID, Text: text})
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
	any := false
	for _, p := range pairings {
		if fromHistory && !m.SentAt.IsZero() && m.SentAt.Before(p.CreatedAt) {
			continue // older than the pairing: catch-up must not relay a whole history
		}
		src := m.ID + ":" + strconv.FormatInt(p.ID, 10)
		id, inserted, err := b.o.Store.Enqueue(ctx, core.OutboxRow{
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
			any = true
			if fromHistory {
				b.stats.recovered(1)
			}
			b.remember(p.ID, queuedRow{id: id, sourceID: src, createdAt: created, msg: m})
		}
	}
	if any {
		signal(b.wake[core.ToDiscord])
	}
	return nil
}

// runWorker claims due rows of one direction and delivers them concurrently (at most one per
// pairing, which the store guarantees), until ctx ends; then it waits for in-flight deliveries
// for at most DrainTimeout.
func (b *Bridge) runWorker(ctx context.Context, dir core.Direction) {
	deliverCtx, cancelDeliver := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDeliver()
	var wg sync.WaitGroup
	sem := make(chan struct{}, b.o.Concurrency)
	wake := b.wake[dir]
	timer := time.NewTimer(0)
	defer timer.Stop()

	for ctx.Err() == nil {
		claimed := 0
		held, fenced := b.fences.hold(dir == core.ToDiscord)
		// TODO(batch): skip only the fenced pairings once the store claims with a skip list.
		if free := b.o.Concurrency - len(sem); free > 0 && !held && len(fenced) == 0 {
			msgs, err := b.o.Store.Claim(ctx, dir, free, b.o.Lease)
			if err != nil && ctx.Err() == nil {
				b.noteError("claiming "+string(dir)+" messages", err)
			}
			for _, m := range msgs {
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					b.deliver(deliverCtx, m)
					<-sem
					signal(wake) // the pairing's next row may be claimable now
				}()
			}
			claimed = len(msgs)
			if claimed == free {
				continue // there may be more
			}
		}
		sleep := b.o.PollInterval
		if t, ok, err := b.o.Store.NextDue(ctx, dir); err == nil && ok {
			// A due row that Claim did not return waits for its pairing's row in flight; the
			// end of that delivery signals wake, so do not spin on it.
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

// deliver sends one claimed row and records the outcome.
func (b *Bridge) deliver(ctx context.Context, m core.OutboxRow) {
	var err error
	switch m.Direction {
	case core.ToResonite:
		err = b.deliverToResonite(ctx, m)
	case core.ToDiscord:
		err = b.deliverToDiscord(ctx, m)
	default:
		err = core.Permanent(fmt.Errorf("unknown direction %q", m.Direction))
	}
	if err != nil {
		b.settleFailure(ctx, m, err)
	}
}

// storeCtx outlives a cancelled delivery so that its outcome still reaches the store.
func storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// settleFailure retries, postpones or fails a row after a delivery error.
func (b *Bridge) settleFailure(ctx context.Context, m core.OutboxRow, err error) {
	sctx, cancel := storeCtx(ctx)
	defer cancel()
	reason := Shorten(err.Error(), 300)
	wait, postpone := core.Wait(err)
	switch {
	case ctx.Err() != nil && !core.IsPermanent(err):
		// Shutdown interrupted the delivery: due again at next start, not counted as an attempt.
		if perr := b.o.Store.Postpone(sctx, m.ID, time.Now()); perr != nil {
			b.noteError("postponing an interrupted delivery", perr)
		}
	case postpone:
		if m.Direction == core.ToDiscord {
			b.mu.Lock()
			b.limited[m.PairingID] = true
			b.mu.Unlock()
		}
		b.stats.add(m.Direction, func(s *DirectionStats) { s.Postponed++ })
		if perr := b.o.Store.Postpone(sctx, m.ID, time.Now().Add(wait)); perr != nil {
			b.noteError("postponing a rate-limited delivery", perr)
		}
	case core.IsPermanent(err) || m.Attempts+1 >= b.o.MaxAttempts:
		if !core.IsPermanent(err) {
			err = fmt.Errorf("gave up after %d attempts: %w", m.Attempts+1, err)
			reason = Shorten(err.Error(), 300)
		}
		b.stats.add(m.Direction, func(s *DirectionStats) { s.Failed++ })
		b.noteError(fmt.Sprintf("delivering %s message %d (given up)", m.Direction, m.ID), err)
		if ferr := b.o.Store.Fail(sctx, m.ID, reason); ferr != nil {
			b.noteError("marking a message failed", ferr)
		}
		b.forget(m.PairingID, m.ID)
		if m.Direction == core.ToResonite {
			b.warnUndelivered(sctx, m, err)
		}
	default:
		b.stats.add(m.Direction, func(s *DirectionStats) { s.Retried++ })
		b.noteError(fmt.Sprintf("delivering %s message %d (will retry)", m.Direction, m.ID), err)
		if _, rerr := b.o.Store.Retry(sctx, m.ID, reason); rerr != nil {
			b.noteError("scheduling a retry", rerr)
		}
	}
}

// warnUndelivered leaves a short ⚠ reply under the Discord message that did not reach Resonite.
func (b *Bridge) warnUndelivered(ctx context.Context, m core.OutboxRow, cause error) {
	p, err := core.DecodeToResonite(m.Payload)
	if err != nil || p.ChannelID == "" {
		return
	}
	text := "⚠ Not delivered to Resonite: " + Shorten(cause.Error(), 150)
	if err := b.o.Discord.Reply(ctx, p.ChannelID, p.MessageID, text); err != nil {
		b.noteError("replying with a delivery warning", err)
	}
}

// rowPairing looks up the pairing a row belongs to; a pairing that is gone fails the row for
// good.
func (b *Bridge) rowPairing(ctx context.Context, m core.OutboxRow) (core.Pairing, error) {
	p, err := b.o.Store.PairingByID(ctx, m.PairingID)
	if errors.Is(err, core.ErrNotFound) {
		return core.Pairing{}, core.Permanent(errors.New("the channel is no longer paired"))
	}
	if err != nil {
		return core.Pairing{}, fmt.Errorf("looking up pairing %d: %w", m.PairingID, err)
	}
	return p, nil
}

// deliverToResonite sends a Discord message to the paired contact under its derived id.
func (b *Bridge) deliverToResonite(ctx context.Context, m core.OutboxRow) error {
	p, err := core.DecodeToResonite(m.Payload)
	if err != nil {
		return core.Permanent(err)
	}
	pairing, err := b.rowPairing(ctx, m)
	if err != nil {
		return err
	}
	id := m.TargetID
	if id == "" {
		id = ResoniteMessageID(m.SourceID)
	}
	if err := b.o.Resonite.SendText(ctx, id, pairing.ContactID, p.Text); err != nil {
		return fmt.Errorf("sending to %s: %w", pairing.ContactID, err)
	}
	sctx, cancel := storeCtx(ctx)
	defer cancel()
	if err := b.o.Store.MarkDelivered(sctx, m.ID, id); err != nil {
		b.noteError("marking a message delivered", err)
		return nil // sent; a retry would resend the same id, which Resonite keeps once
	}
	b.stats.add(core.ToResonite, func(s *DirectionStats) { s.Delivered++ })
	return nil
}

// deliverToDiscord posts a Resonite message into the paired channel through its webhook. After
// a rate limit, the rows queued behind it from the same sender are coalesced into one post.
func (b *Bridge) deliverToDiscord(ctx context.Context, m core.OutboxRow) error {
	rm, err := core.DecodeToDiscord(m.Payload)
	if err != nil {
		return core.Permanent(err)
	}
	pairing, err := b.rowPairing(ctx, m)
	if err != nil {
		return err
	}
	name, avatar := b.presence.contactLook(rm.SenderID, pairing.ContactUsername)
	posts := RenderForDiscord(rm, name, avatar)

	var extra []queuedRow
	if b.isLimited(m.PairingID) && len(posts) == 1 && len(posts[0].Embeds) == 0 {
		posts[0], extra = b.coalesce(ctx, m, rm.SenderID, posts[0])
	}

	// A long text is several posts; after a failure in the middle, the retry goes on from the
	// first post not made (within this process) instead of repeating the ones made.
	b.mu.Lock()
	done, known := b.partial[m.ID]
	b.mu.Unlock()
	var before []string
	if m.Claims > 1 && !known {
		// Taken before by a process that crashed, or by a try that timed out: its posts may
		// have landed without being recorded. Look before posting again.
		before = b.postedBefore(ctx, pairing, m, posts)
	}
	first := done.first // stays empty when there is nothing to show (blank text)
	for i := done.posted; i < len(posts); i++ {
		if i < len(before) && before[i] != "" {
			if first == "" {
				first = before[i]
			}
			continue
		}
		id, err := b.o.Discord.Post(ctx, pairing.ChannelID, posts[i])
		if err != nil {
			if i > 0 {
				b.mu.Lock()
				b.partial[m.ID] = partialPost{posted: i, first: first}
				b.mu.Unlock()
			}
			return fmt.Errorf("posting part %d of %d into channel %s: %w", i+1, len(posts), pairing.ChannelID, err)
		}
		if first == "" {
			first = id
		}
	}
	b.mu.Lock()
	delete(b.limited, m.PairingID)
	delete(b.partial, m.ID)
	b.mu.Unlock()

	sctx, cancel := storeCtx(ctx)
	defer cancel()
	// Rows behind first: once m is delivered, the next row of the pairing becomes claimable.
	for _, q := range extra {
		if err := b.o.Store.MarkDelivered(sctx, q.id, first); err != nil {
			b.noteError("marking a coalesced message delivered", err)
			continue
		}
		b.stats.add(core.ToDiscord, func(s *DirectionStats) { s.Delivered++; s.Coalesced++ })
		b.forget(m.PairingID, q.id)
		b.reads.add(q.msg.SenderID, q.msg.ID)
	}
	if err := b.o.Store.MarkDelivered(sctx, m.ID, first); err != nil {
		b.noteError("marking a message delivered", err)
	} else {
		b.stats.add(core.ToDiscord, func(s *DirectionStats) { s.Delivered++ })
	}
	b.forget(m.PairingID, m.ID)
	b.reads.add(rm.SenderID, rm.ID)
	return nil
}

// redeliveryWindow is how much history before a row's enqueue time postedBefore reads.
const redeliveryWindow = time.Minute

// postedBefore finds, for each post, the id of an identical post of the bridge already in the
// channel that no other row claims: made by an earlier try of m whose outcome was not stored.
// When the history cannot be read it returns nothing, and m is posted again: a rare duplicate
// beats a lost message.
func (b *Bridge) postedBefore(ctx context.Context, pairing core.Pairing, m core.OutboxRow, posts []core.Post) []string {
	since := m.EnqueuedAt
	if since.IsZero() {
		since = m.SourceTime
	}
	history, err := b.o.Discord.History(ctx, pairing.ChannelID, snowflakeAt(since.Add(-redeliveryWindow)), 100)
	if err != nil {
		b.log.Warn("cannot check for an earlier post of a redelivered message; posting it again", "row", m.ID, "err", err)
		return nil
	}
	found := make([]string, len(posts))
	used := map[string]bool{}
	for i, p := range posts {
		for _, h := range history {
			ours := h.FromSelf || (h.WebhookID != "" && h.WebhookID == pairing.WebhookID)
			if used[h.ID] || !ours || (h.Content != p.Content && !strings.HasSuffix(h.Content, "**: "+p.Content)) {
				continue
			}
			if row, err := b.o.Store.MessageByTarget(ctx, core.ToDiscord, h.ID); err == nil && row.ID != m.ID {
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

func (b *Bridge) isLimited(pairingID int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.limited[pairingID]
}

// partialPost is how far the posts of a long message got before a failure.
type partialPost struct {
	posted int    // posts made
	first  string // id of the first one
}

// forget drops a settled row from the coalescing and partial-post memories.
func (b *Bridge) forget(pairingID, rowID int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.partial, rowID)
	q := b.queued[pairingID]
	for i, r := range q {
		if r.id == rowID {
			q = append(q[:i], q[i+1:]...)
			break
		}
	}
	if len(q) == 0 {
		delete(b.queued, pairingID)
	} else {
		b.queued[pairingID] = q
	}
}

// coalesce appends to post the text of the rows queued right behind m from the same sender,
// while they are still pending and the whole fits in one Discord message.
func (b *Bridge) coalesce(ctx context.Context, m core.OutboxRow, sender string, post core.Post) (core.Post, []queuedRow) {
	b.mu.Lock()
	var behind []queuedRow
	q := b.queued[m.PairingID]
	for i, r := range q {
		if r.id == m.ID {
			behind = append(behind, q[i+1:]...)
			break
		}
	}
	b.mu.Unlock()

	var taken []queuedRow
	content := post.Content
	for _, r := range behind {
		if r.msg.SenderID != sender || (r.msg.Kind != core.KindText && r.msg.Kind != "") {
			break
		}
		text := neutralizeMentions(r.msg.Text)
		blank := strings.TrimSpace(text) == ""
		if !blank && utf8.RuneCountInString(content)+1+utf8.RuneCountInString(text) > DiscordMaxLen {
			break
		}
		row, err := b.o.Store.MessageBySource(ctx, core.ToDiscord, r.sourceID)
		if err != nil || row.State != core.StatePending {
			break
		}
		if !blank {
			content += "\n" + text
		}
		taken = append(taken, r)
	}
	post.Content = content
	return post, taken
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
