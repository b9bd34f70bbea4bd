package bridge

import (
	"sync"
	"time"
	"unicode/utf8"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// DirectionStats counts what happened to rows of one direction since start.
type DirectionStats struct {
	Delivered uint64 // rows marked delivered
	Retried   uint64 // retryable errors (row retried later)
	Postponed uint64 // rate limits
	Failed    uint64 // permanent failures
	Coalesced uint64 // rows delivered as part of another row's post
}

// Stats is the bridge's health summary for /status and metrics.
type Stats struct {
	ToResonite    DirectionStats
	ToDiscord     DirectionStats
	Notifications uint64 // friend-online posts made
	LastError     string // what was being done and why it failed; never contains secrets the adapters keep out of errors
	LastErrorAt   time.Time
	CatchUp       CatchUpProgress
}

// CatchUpProgress is what the catch-up after a gap is doing, and what it found so far.
type CatchUpProgress struct {
	Running       bool
	Since         time.Time // when the running catch-up started
	ResoniteDone  bool      // the Resonite mailbox part of the running catch-up is done (or not asked for)
	PairingsDone  int       // channels caught up in the running catch-up
	PairingsTotal int       // channels the running catch-up reads
	Recovered     uint64    // messages found in history and stored, since start
	// Held says what waits for a catch-up: every to_discord row (HeldToDiscord), the rows of
	// HeldPairings paired channels going to Resonite.
	HeldToDiscord bool
	HeldPairings  int
}

type statsCollector struct {
	mu sync.Mutex
	s  Stats
}

func (c *statsCollector) dir(d core.Direction) *DirectionStats {
	if d == core.ToResonite {
		return &c.s.ToResonite
	}
	return &c.s.ToDiscord
}

func (c *statsCollector) add(d core.Direction, f func(*DirectionStats)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c.dir(d))
}

func (c *statsCollector) recovered(n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.CatchUp.Recovered += n
}

// catchUp updates the running catch-up's progress.
func (c *statsCollector) catchUp(f func(*CatchUpProgress)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.s.CatchUp)
}

func (c *statsCollector) notified() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Notifications++
}

func (c *statsCollector) lastError(msg string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.LastError = msg
	c.s.LastErrorAt = at
}

// Stats returns a snapshot of the counters, the last error and the catch-up's progress.
func (b *Bridge) Stats() Stats {
	b.stats.mu.Lock()
	s := b.stats.s
	b.stats.mu.Unlock()
	held, pairings, unresolved := b.fences.counts()
	s.CatchUp.HeldToDiscord = held
	s.CatchUp.HeldPairings = pairings
	if unresolved {
		s.CatchUp.HeldPairings = -1 // every channel, until the catch-up lists them
	}
	return s
}

// noteError logs an error and keeps it as the last error shown by /status.
func (b *Bridge) noteError(doing string, err error) {
	msg := Shorten(doing+": "+err.Error(), 300)
	b.log.Warn("bridge error", "doing", doing, "err", err)
	b.stats.lastError(msg, time.Now())
}

// shorten cuts s to at most n runes, with an ellipsis.
func Shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
