package discordtest

import (
	"sync"
	"testing"
	"time"
)

// Signal tells waiters that something changed: Changed returns a channel that the next Notify
// closes; each Notify closes the current channel and installs a new one. The zero value is
// ready to use. Tests give their own recorders one to wait on with Await.
type Signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// Notify wakes everyone waiting on a channel from Changed.
func (s *Signal) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil // the next Changed makes a fresh one
	}
}

// Changed returns the channel the next Notify closes.
func (s *Signal) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Await waits until cond holds, checking it first and then each time the channel that changed
// returns is closed. It fails the test after WaitTimeout: a safety net for a broken bot, not an
// assertion on speed.
func Await(t testing.TB, what string, changed func() <-chan struct{}, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(WaitTimeout(t))
	defer deadline.Stop()
	for {
		ch := changed() // before cond: a change between the two still wakes the wait
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("discordtest: gave up waiting for %s", what)
		}
	}
}

// WaitTimeout is the safety net of a wait in test t: waitLimit, or less when the test's
// deadline (go test -timeout) comes sooner, leaving a second to report the failure.
func WaitTimeout(t testing.TB) time.Duration {
	limit := waitLimit
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			limit = min(limit, time.Until(dl)-time.Second)
		}
	}
	return max(limit, 0)
}
