package bridge

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// catchUpState is the set of catch-ups asked for and not done yet.
type catchUpState struct {
	mu         sync.Mutex
	resonite   bool
	allDiscord bool
	guilds     map[string]bool
	channels   map[string]bool
	wake       chan struct{}
}

type catchUpJobs struct {
	resonite   bool
	allDiscord bool
	guilds     map[string]bool
	channels   map[string]bool
}

func newCatchUpState() *catchUpState {
	return &catchUpState{guilds: map[string]bool{}, channels: map[string]bool{}, wake: make(chan struct{}, 1)}
}

func (c *catchUpState) requestResonite() {
	c.mu.Lock()
	c.resonite = true
	c.mu.Unlock()
	signal(c.wake)
}

func (c *catchUpState) requestAllDiscord() {
	c.mu.Lock()
	c.allDiscord = true
	c.mu.Unlock()
	signal(c.wake)
}

func (c *catchUpState) requestGuild(id string) {
	c.mu.Lock()
	c.guilds[id] = true
	c.mu.Unlock()
	signal(c.wake)
}

func (c *catchUpState) requestChannel(id string) {
	c.mu.Lock()
	c.channels[id] = true
	c.mu.Unlock()
	signal(c.wake)
}

func (c *catchUpState) take() catchUpJobs {
	c.mu.Lock()
	defer c.mu.Unlock()
	j := catchUpJobs{resonite: c.resonite, allDiscord: c.allDiscord, guilds: c.guilds, channels: c.channels}
	c.resonite, c.allDiscord = false, false
	c.guilds, c.channels = map[string]bool{}, map[string]bool{}
	return j
}

func (j catchUpJobs) discord() bool {
	return j.allDiscord || len(j.guilds) > 0 || len(j.channels) > 0
}

// maxCatchUpBackoff bounds the wait between attempts of a failing catch-up.
const maxCatchUpBackoff = 5 * time.Minute

// runCatchUp performs the requested catch-ups one after another. A failed one is asked for
// again and retried after a growing delay (or the rate limit's own), so a gap is never left.
func (b *Bridge) runCatchUp(ctx context.Context) {
	backoff := b.o.CatchUpRetry
	for {
		jobs := b.catchUp.take()
		var failed []error
		if jobs.resonite {
			if err := b.catchUpResonite(ctx); err != nil {
				failed = append(failed, err)
				b.catchUp.requestResonite()
			}
		}
		if jobs.discord() {
			failed = append(failed, b.catchUpDiscord(ctx, jobs)...)
		}
		if ctx.Err() != nil {
			return
		}
		if len(failed) == 0 {
			backoff = b.o.CatchUpRetry
			select {
			case <-ctx.Done():
				return
			case <-b.catchUp.wake:
			}
			continue
		}
		wait := backoff
		for _, err := range failed {
			b.noteError("catching up", err)
			if d, ok := b.o.RetryAfter(err); ok && d > wait {
				wait = d
			}
		}
		backoff = min(backoff*2, maxCatchUpBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// catchUpDiscord relays the messages of the requested paired channels posted after the last
// relayed id; a failed channel is asked for again.
func (b *Bridge) catchUpDiscord(ctx context.Context, jobs catchUpJobs) []error {
	pairings, err := b.o.Store.Pairings(ctx)
	if err != nil {
		b.catchUp.mu.Lock()
		b.catchUp.allDiscord = b.catchUp.allDiscord || jobs.allDiscord
		for g := range jobs.guilds {
			b.catchUp.guilds[g] = true
		}
		for c := range jobs.channels {
			b.catchUp.channels[c] = true
		}
		b.catchUp.mu.Unlock()
		return []error{fmt.Errorf("listing pairings: %w", err)}
	}
	var failed []error
	for _, p := range pairings {
		if !jobs.allDiscord && !jobs.guilds[p.GuildID] && !jobs.channels[p.ChannelID] {
			continue
		}
		if err := b.catchUpChannel(ctx, p); err != nil {
			failed = append(failed, err)
			b.catchUp.requestChannel(p.ChannelID)
		}
	}
	return failed
}

// catchUpChannel pages through a channel's history after its cursor, oldest first, storing
// each message before the cursor moves past it.
func (b *Bridge) catchUpChannel(ctx context.Context, p Pairing) error {
	after, err := b.o.Store.DiscordCursor(ctx, p.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("reading the Discord cursor of pairing %d: %w", p.ID, err)
	}
	if after == "" {
		after = snowflakeAt(p.CreatedAt) // a new pairing relays nothing older than itself
	}
	for {
		msgs, err := b.o.Discord.History(ctx, p.ChannelID, after, b.o.CatchUpPageSize)
		if err != nil {
			return fmt.Errorf("reading the history of channel %s: %w", p.ChannelID, err)
		}
		if len(msgs) == 0 {
			return nil
		}
		for _, m := range msgs {
			if err := b.ingestDiscord(ctx, p, m); err != nil {
				return err
			}
		}
		after = msgs[len(msgs)-1].ID
		if err := b.o.Store.AdvanceDiscordCursor(ctx, p.ID, after); err != nil {
			return fmt.Errorf("advancing the Discord cursor of pairing %d: %w", p.ID, err)
		}
		if len(msgs) < b.o.CatchUpPageSize {
			return nil
		}
	}
}

// catchUpOverlap re-reads a little before the cursor: clocks differ and timestamps tie, and
// relaying is idempotent.
const catchUpOverlap = time.Minute

// maxCatchUpPages bounds one Resonite catch-up; what is left is fetched at the next one.
const maxCatchUpPages = 50

// catchUpResonite relays the messages received since the last seen time, oldest first, and
// moves the cursor only after they are stored.
func (b *Bridge) catchUpResonite(ctx context.Context) error {
	me := b.o.History.UserID()
	cursor, err := b.o.Store.ResoniteCursor(ctx, me)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("reading the Resonite cursor: %w", err)
	}
	if cursor.IsZero() {
		// First run: nothing older than the oldest pairing is relayed anyway.
		pairings, err := b.o.Store.Pairings(ctx)
		if err != nil {
			return fmt.Errorf("listing pairings: %w", err)
		}
		cursor = time.Now()
		for _, p := range pairings {
			if p.CreatedAt.Before(cursor) {
				cursor = p.CreatedAt
			}
		}
	}
	from := cursor.Add(-catchUpOverlap)
	for range maxCatchUpPages {
		msgs, err := b.o.History.Messages(ctx, MessageQuery{MaxItems: b.o.CatchUpPageSize, FromTime: from})
		if err != nil {
			return fmt.Errorf("reading Resonite messages since %s: %w", from.Format(time.RFC3339), err)
		}
		sort.SliceStable(msgs, func(i, j int) bool { return msgs[i].SendTime.Before(msgs[j].SendTime.Time) })
		latest := from
		for _, m := range msgs {
			if err := b.ingestResonite(ctx, m); err != nil {
				return err
			}
			if m.SendTime.After(latest) {
				latest = m.SendTime.Time
			}
		}
		// A sender's clock may run ahead; never move the cursor past our own now.
		if now := time.Now(); latest.After(now) {
			latest = now
		}
		if latest.After(cursor) {
			if err := b.o.Store.AdvanceResoniteCursor(ctx, me, latest); err != nil {
				return fmt.Errorf("advancing the Resonite cursor: %w", err)
			}
			cursor = latest
		}
		if len(msgs) < b.o.CatchUpPageSize || !latest.After(from) {
			return nil
		}
		from = latest
	}
	return nil
}
