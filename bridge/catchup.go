package bridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// catchUpState is the set of catch-ups asked for and not done yet, and the fences they lift.
// A request for a catch-up after a gap raises its fence under the same lock that take reads
// the requests with, so a catch-up's generation (see fences) always covers exactly the
// requests it took.
type catchUpState struct {
	mu         sync.Mutex
	fences     *fences
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
	// at is the fence generation when the jobs were taken.
	at uint64
}

func newCatchUpState(f *fences) *catchUpState {
	return &catchUpState{fences: f, guilds: map[string]bool{}, channels: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// requestResonite asks for a Resonite catch-up after a gap (a start, a hub drop, a message that
// could not be stored): every to_discord row waits for it.
func (c *catchUpState) requestResonite() {
	c.mu.Lock()
	c.fences.raiseResonite()
	c.resonite = true
	c.mu.Unlock()
	signal(c.wake)
}

// gapResonite raises the Resonite fence without asking for a catch-up yet: the hub dropped,
// and only a catch-up after it reconnected covers the gap.
func (c *catchUpState) gapResonite() {
	c.mu.Lock()
	c.fences.raiseResonite()
	c.mu.Unlock()
}

// pollResonite asks for a Resonite catch-up that is no gap (the periodic mailbox read): nothing
// waits for it.
func (c *catchUpState) pollResonite() {
	c.mu.Lock()
	c.resonite = true
	c.mu.Unlock()
	signal(c.wake)
}

func (c *catchUpState) requestAllDiscord() {
	c.mu.Lock()
	c.fences.raiseDiscord()
	c.allDiscord = true
	c.mu.Unlock()
	signal(c.wake)
}

func (c *catchUpState) requestGuild(id string) {
	c.mu.Lock()
	c.fences.raiseDiscord()
	c.guilds[id] = true
	c.mu.Unlock()
	signal(c.wake)
}

func (c *catchUpState) requestChannel(id string) {
	c.mu.Lock()
	c.fences.raiseDiscord()
	c.mu.Unlock()
	c.requeue(catchUpJobs{channels: map[string]bool{id: true}})
	signal(c.wake)
}

// requeue asks again for jobs that failed, without waking runCatchUp: they wait for its
// backoff, while a wake-up means a new request that must not wait for it.
func (c *catchUpState) requeue(j catchUpJobs) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resonite = c.resonite || j.resonite
	c.allDiscord = c.allDiscord || j.allDiscord
	for g := range j.guilds {
		c.guilds[g] = true
	}
	for ch := range j.channels {
		c.channels[ch] = true
	}
}

func (c *catchUpState) take() catchUpJobs {
	c.mu.Lock()
	defer c.mu.Unlock()
	j := catchUpJobs{resonite: c.resonite, allDiscord: c.allDiscord, guilds: c.guilds, channels: c.channels, at: c.fences.now()}
	c.resonite, c.allDiscord = false, false
	c.guilds, c.channels = map[string]bool{}, map[string]bool{}
	select {
	case <-c.wake: // the signal of what is taken now; only later requests should wake
	default:
	}
	return j
}

func (j catchUpJobs) discord() bool {
	return j.allDiscord || len(j.guilds) > 0 || len(j.channels) > 0
}

// progressEvery is how many channels a catch-up reads between progress lines in the log.
const progressEvery = 100

// maxCatchUpBackoff bounds the wait between attempts of a failing catch-up; maxHeldBackoff
// bounds it while messages wait for the catch-up behind a fence.
const (
	maxCatchUpBackoff = 5 * time.Minute
	maxHeldBackoff    = 10 * time.Second
)

// runCatchUp performs the requested catch-ups one after another. A failed one is asked for
// again and retried after a growing delay (or the rate limit's own), so a gap is never left.
func (b *Bridge) runCatchUp(ctx context.Context) {
	backoff := b.o.CatchUpRetry
	for {
		jobs := b.catchUp.take()
		began := time.Now()
		recoveredBefore := b.Stats().CatchUp.Recovered
		b.stats.catchUp(func(p *CatchUpProgress) {
			*p = CatchUpProgress{Running: true, Since: began, ResoniteDone: !jobs.resonite, Recovered: p.Recovered}
		})
		var failed []error
		if jobs.resonite {
			if err := b.catchUpResonite(ctx); err != nil {
				failed = append(failed, err)
				b.catchUp.requeue(catchUpJobs{resonite: true})
			} else if err := b.flush(ctx); err == nil { // what arrived live meanwhile is stored too
				b.fences.clearResonite(jobs.at)
				signal(b.wake[core.ToDiscord])
				signal(b.wake[core.ToResonite]) // group channels' relays between contacts
			}
		}
		b.stats.catchUp(func(p *CatchUpProgress) { p.ResoniteDone = true })
		if jobs.discord() {
			failed = append(failed, b.catchUpDiscord(ctx, jobs)...)
		}
		st := b.Stats().CatchUp
		b.stats.catchUp(func(p *CatchUpProgress) { p.Running = false })
		if ctx.Err() != nil {
			return
		}
		if found := st.Recovered - recoveredBefore; found > 0 || len(failed) > 0 || time.Since(began) > time.Second {
			b.log.Info("catch-up finished", "channels", st.PairingsTotal, "recovered", found,
				"failed", len(failed), "took", time.Since(began).Round(time.Millisecond))
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
		limit := maxCatchUpBackoff
		if toDiscord, pairings, unresolved := b.fences.counts(); toDiscord || pairings > 0 || unresolved {
			// Messages wait for this catch-up: keep trying often, since what failed (the
			// database, the other side's history) is usually back soon.
			limit = maxHeldBackoff
		}
		wait := min(backoff, limit)
		for _, err := range failed {
			b.noteError("catching up", err)
			if d, ok := core.Wait(err); ok && d > wait {
				wait = d
			}
		}
		backoff = min(backoff*2, limit)
		// A new request (a hub or gateway reconnect) does not wait for the backoff of an old
		// failure, such as a channel whose history the bot may not read.
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-b.catchUp.wake:
			t.Stop()
		}
	}
}

// catchUpDiscord relays the messages of the requested paired channels posted after the last
// relayed id; a failed channel is asked for again.
func (b *Bridge) catchUpDiscord(ctx context.Context, jobs catchUpJobs) []error {
	pairings, err := b.o.Store.Pairings(ctx)
	if err != nil {
		b.catchUp.requeue(catchUpJobs{allDiscord: jobs.allDiscord, guilds: jobs.guilds, channels: jobs.channels})
		return []error{fmt.Errorf("listing pairings: %w", err)}
	}
	var affected []core.Pairing
	var affectedIDs, all []int64
	for _, p := range pairings {
		all = append(all, p.ID)
		if jobs.allDiscord || jobs.guilds[p.GuildID] || jobs.channels[p.ChannelID] {
			affected = append(affected, p)
			affectedIDs = append(affectedIDs, p.ID)
		}
	}
	// From here the gap holds back only the pairings it concerns.
	b.fences.resolveDiscord(jobs.at, affectedIDs, all)
	signal(b.wake[core.ToResonite])
	b.stats.catchUp(func(p *CatchUpProgress) { p.PairingsTotal = len(affected) })
	var failed []error
	done := 0
	for _, group := range GroupByChannel(affected) {
		err := b.catchUpChannel(ctx, group)
		done += len(group)
		b.stats.catchUp(func(p *CatchUpProgress) { p.PairingsDone = done })
		if done/progressEvery != (done-len(group))/progressEvery {
			b.log.Info("catching up", "pairings_done", done, "pairings", len(affected), "recovered", b.Stats().CatchUp.Recovered)
		}
		if err != nil {
			failed = append(failed, err)
			b.catchUp.requeue(catchUpJobs{channels: map[string]bool{group[0].ChannelID: true}})
			continue
		}
		if err := b.flush(ctx); err != nil { // what arrived live meanwhile is stored too
			return append(failed, err)
		}
		for _, p := range group {
			b.fences.clearDiscord(p.ID, jobs.at)
		}
		signal(b.wake[core.ToResonite])
	}
	return failed
}

// catchUpChannel pages through a channel's history after its pairings' cursors, oldest first,
// storing each message for the pairings it is new to before their cursors move past it.
func (b *Bridge) catchUpChannel(ctx context.Context, ps []core.Pairing) error {
	channelID := ps[0].ChannelID
	cursors := make([]string, len(ps))
	after := ""
	for i, p := range ps {
		c, err := b.o.Store.DiscordCursor(ctx, p.ID)
		if err != nil && !errors.Is(err, core.ErrNotFound) {
			return fmt.Errorf("reading the Discord cursor of pairing %d: %w", p.ID, err)
		}
		if c == "" {
			c = snowflakeAt(p.CreatedAt) // a new pairing relays nothing older than itself
		}
		cursors[i] = c
		if i == 0 || compareSnowflakes(c, after) < 0 {
			after = c
		}
	}
	for {
		msgs, err := b.o.Discord.History(ctx, channelID, after, b.o.CatchUpPageSize)
		if err != nil {
			return fmt.Errorf("reading the history of channel %s: %w", channelID, err)
		}
		if len(msgs) == 0 {
			return nil
		}
		// Discord itself answers newest first; do not let an adapter that forgets to reverse
		// move the cursor back to the oldest message of the page.
		slices.SortStableFunc(msgs, func(x, y core.DiscordMessage) int { return compareSnowflakes(x.ID, y.ID) })
		jobs := make([]*ingestJob, 0, len(msgs))
		for _, m := range msgs {
			var to []core.Pairing
			for i, p := range ps {
				if compareSnowflakes(m.ID, cursors[i]) > 0 {
					to = append(to, p)
				}
			}
			j, err := b.ingestDiscord(ctx, to, m, true)
			if err != nil {
				return err
			}
			jobs = append(jobs, j)
		}
		if err := b.stored(ctx, jobs); err != nil {
			return err
		}
		newest := msgs[len(msgs)-1].ID
		if compareSnowflakes(newest, after) <= 0 {
			return nil // nothing after the cursor: the page repeats what we have
		}
		after = newest
		for i, p := range ps {
			if compareSnowflakes(newest, cursors[i]) <= 0 {
				continue
			}
			if err := b.o.Store.AdvanceDiscordCursor(ctx, p.ID, newest); err != nil {
				return fmt.Errorf("advancing the Discord cursor of pairing %d: %w", p.ID, err)
			}
			cursors[i] = newest
		}
		if len(msgs) < b.o.CatchUpPageSize {
			return nil
		}
	}
}

// compareSnowflakes orders decimal snowflakes numerically (shorter is smaller).
func compareSnowflakes(a, b string) int {
	if len(a) != len(b) {
		return cmp.Compare(len(a), len(b))
	}
	return strings.Compare(a, b)
}

// catchUpOverlap re-reads a little before the cursor: clocks differ and timestamps tie, and
// relaying is idempotent.
const catchUpOverlap = time.Minute

// catchUpResonite relays the messages received since the last seen time, oldest first, and
// moves the cursor only after they are stored.
func (b *Bridge) catchUpResonite(ctx context.Context) error {
	me := b.o.Resonite.UserID()
	cursor, err := b.o.Store.ResoniteCursor(ctx, me)
	if err != nil && !errors.Is(err, core.ErrNotFound) {
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
	since := cursor.Add(-catchUpOverlap)
	msgs, err := b.o.Resonite.Messages(ctx, since, b.o.CatchUpPageSize)
	if err != nil {
		return fmt.Errorf("reading Resonite messages since %s: %w", since.Format(time.RFC3339), err)
	}
	if len(msgs) >= b.o.CatchUpPageSize {
		// The cloud answers the newest max messages since a time and cannot page further
		// back: a full page may hide older messages, so ask for all of them (-1).
		if msgs, err = b.o.Resonite.Messages(ctx, since, -1); err != nil {
			return fmt.Errorf("reading all Resonite messages since %s: %w", since.Format(time.RFC3339), err)
		}
	}
	slices.SortStableFunc(msgs, func(x, y core.ContactMessage) int {
		if c := x.SentAt.Compare(y.SentAt); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	latest := cursor
	jobs := make([]*ingestJob, 0, len(msgs))
	for _, m := range msgs {
		j, err := b.ingestResonite(ctx, m, true)
		if err != nil {
			return err
		}
		jobs = append(jobs, j)
		if m.SentAt.After(latest) {
			latest = m.SentAt
		}
	}
	if err := b.stored(ctx, jobs); err != nil {
		return err
	}
	// A sender's clock may run ahead; never move the cursor past our own now.
	if now := time.Now(); latest.After(now) {
		latest = now
	}
	if latest.After(cursor) {
		if err := b.o.Store.AdvanceResoniteCursor(ctx, me, latest); err != nil {
			return fmt.Errorf("advancing the Resonite cursor: %w", err)
		}
	}
	return nil
}

// stored waits until the submitted jobs (nil ones stand for messages with nothing to store) and
// everything submitted before them are stored, and returns the first failure.
func (b *Bridge) stored(ctx context.Context, jobs []*ingestJob) error {
	if err := b.flush(ctx); err != nil {
		return err
	}
	for _, j := range jobs {
		if j != nil && j.err != nil {
			return j.err
		}
	}
	return nil
}
