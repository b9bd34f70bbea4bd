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

// HubBroadcastKeys returns the broadcast keys the hub would listen on after a reconnect.
func HubBroadcastKeys(h *Hub) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.keys.live(time.Now())
}

// HubCacheSizes reports how many broadcast keys, key-to-session links and device status
// times the hub holds.
func HubCacheSizes(h *Hub) (keys, sessions, statuses int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.keys.len(), h.keySession.len(), h.lastStatus.len()
}

// SetHubCacheLimit lowers the bound of the hub's per-session and per-device maps; call it
// before Start.
func SetHubCacheLimit(h *Hub, n int) {
	h.keys.max, h.keySession.max, h.lastStatus.max = n, n, n
}
