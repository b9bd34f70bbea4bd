// Package clocktest is a manual clock for tests of time-driven code (bridge.Clock): time moves
// only when the test calls Advance, so a 15 s throttle is tested without waiting 15 s.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a manual clock. The zero value is not usable: create it with New.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// New returns a clock that reads start until advanced.
func New(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// At returns a channel that receives the clock's time once it reads t or later (at once when
// it does already). The channel holds the value, so a waiter nobody reads any more is dropped
// when it fires.
func (c *Clock) At(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if t.After(c.now) {
		c.waiters = append(c.waiters, waiter{at: t, ch: ch})
	} else {
		ch <- c.now
	}
	return ch
}

// Advance moves the clock forward by d and fires the waiters that are due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	clear(c.waiters[len(kept):])
	c.waiters = kept
}
