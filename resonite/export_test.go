package resonite

import (
	"context"
	"time"
)

// Test hooks for the external test package: a fake sleep records waits instead of waiting, and
// a fake clock moves token expiry and back-off windows.

// SetSleep replaces the client's sleep (retry and Retry-After waits).
func SetSleep(c *Client, fn func(ctx context.Context, d time.Duration) error) { c.sleep = fn }

// SetNow replaces the client's clock.
func SetNow(c *Client, now func() time.Time) { c.now = now }

// MaxTagLen is exported for the rich-text fuzz oracle.
const MaxTagLen = maxTagLen

// HubBackoffIntervals draws the first n waits of a fresh hub reconnect back-off; ok is false
// when the policy gave up (backoff.Stop) before n.
func HubBackoffIntervals(n int) (waits []time.Duration, ok bool) {
	b := newHubBackoff()
	for range n {
		d := b.NextBackOff()
		if d < 0 {
			return waits, false
		}
		waits = append(waits, d)
	}
	return waits, true
}
