// Package clocktest is a manual clock for tests of time-driven code (bridge.Clock): time moves
// only when the test calls Advance, and a test can wait until the code under test is waiting
// on the clock.
package clocktest

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Clock is a manual clock. The zero value is not usable: create it with New.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	// afters counts After calls, so that a test can tell that the code went back to waiting.
	afters  int
	changed chan struct{} // closed and replaced on every After and Advance
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// New returns a clock that reads start until advanced.
func New(start time.Time) *Clock { return &Clock{now: start, changed: make(chan struct{})} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives the clock's time once it was advanced by d or more.
// Waiters nobody reads any more are dropped when they fire (the channel holds one value).
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.afters++
	if d <= 0 {
		ch <- c.now
	} else {
		c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	}
	c.notifyLocked()
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
	c.notifyLocked()
}

// Afters returns how many times After was called so far.
func (c *Clock) Afters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.afters
}

// Pending returns how many waiters have not fired yet.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

func (c *Clock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Changed returns a channel closed on the clock's next After or Advance.
func (c *Clock) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// WaitAfters waits until After was called more than n times in all, or ctx ends.
func (c *Clock) WaitAfters(ctx context.Context, n int) error {
	for {
		ch := c.Changed()
		if c.Afters() > n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("clocktest: waiting for call %d of After: %w", n+1, ctx.Err())
		}
	}
}
