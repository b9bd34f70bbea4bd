package bridge

import (
	"sync"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"time"
	"unicode/utf8"
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

// Stats returns a snapshot of the counters and the last error.
func (b *Bridge) Stats() Stats {
	b.stats.mu.Lock()
	defer b.stats.mu.Unlock()
	return b.stats.s
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
