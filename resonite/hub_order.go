package resonite

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Wire order.
//
// The library runs every invocation it dispatches on a goroutine of its own, so the order in
// which its handlers run is not the order of the socket. No push therefore reaches its
// dispatcher: frameConn, the Connection the library reads from, is read by one goroutine (the
// library's reader, one Read at a time) and sees the records in socket order. It decodes every
// invocation record right there and turns it into its event before it returns the next record
// to the library; an invocation that expects an answer (it carries an invocationId) is
// rewritten into a call of the receiver's no-op Ack so that the library still sends the
// completion, and everything else (handshake answer, pings, completions, stream items, close)
// goes to the library untouched. Hence:
//
//   - the events of one connection are produced by one goroutine, in read order, and sent on
//     one channel (Events, FIFO): no stamp, window or sort is needed, and none can be wrong
//     however loaded the machine is;
//   - a frame that makes no event (ping, completion, unknown target, a filtered status) holds
//     back nothing: there is nothing to wait for;
//   - connections do not interleave: connectOnce closes the frameConn (which waits for a
//     dispatch in progress) before the next connection starts, and the start-up goroutine
//     that sends Connected belongs to its connection and is waited for too.
//
// Back-pressure: when Events is full the send blocks the reader, so the socket is no longer
// read (nothing is dropped); the watchdog reconnects when that lasts beyond IdleTimeout.

// eventQueue sends events to the consumer and logs back-pressure episodes.
type eventQueue struct {
	out chan Event
	log *slog.Logger

	mu      sync.Mutex
	stalled bool
	stallAt time.Time
}

func newEventQueue(buffer int, log *slog.Logger) *eventQueue {
	return &eventQueue{out: make(chan Event, buffer), log: log}
}

// add delivers ev, waiting for room while the consumer is behind, until ctx ends; it reports
// whether ev was delivered.
func (q *eventQueue) add(ctx context.Context, ev Event) bool {
	select {
	case q.out <- ev:
		return true
	default:
	}
	q.mu.Lock()
	if !q.stalled {
		q.stalled, q.stallAt = true, time.Now()
		q.log.Warn("hub: back-pressure: Events channel full, the consumer is slow; pausing the hub reader",
			"buffer", cap(q.out), "event", eventName(ev))
	}
	q.mu.Unlock()
	select {
	case q.out <- ev:
		q.mu.Lock()
		if q.stalled {
			q.stalled = false
			q.log.Info("hub: the consumer of Events caught up; hub reader resumed", "paused", time.Since(q.stallAt).Round(time.Millisecond))
		}
		q.mu.Unlock()
		return true
	case <-ctx.Done():
		q.log.Error("hub: event not delivered: connection ended while the consumer was stalled; it will be caught up after the reconnect",
			"event", eventName(ev))
		return false
	}
}

// isStalled reports whether a send is waiting for the consumer (for the watchdog's reason).
func (q *eventQueue) isStalled() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stalled
}

// Bounds of the hub's per-user and per-session memory. Sessions and devices come and go
// for as long as the daemon runs; without a bound these maps would only grow.
const (
	maxBroadcastKeys = 4096
	broadcastKeyTTL  = 24 * time.Hour // a key not seen in a status or session update for this long is dropped
	maxStatusMemory  = 8192
	statusMemoryTTL  = time.Hour // how long a device's last status time is kept for the stale check
)

// recentMap is a map whose entries expire ttl after they were last put, and which drops its
// least recently put entries when it grows past max. Not safe for concurrent use.
type recentMap[V any] struct {
	max int
	ttl time.Duration
	m   map[string]recentEntry[V]
}

type recentEntry[V any] struct {
	v    V
	seen time.Time
}

func newRecentMap[V any](max int, ttl time.Duration) *recentMap[V] {
	return &recentMap[V]{max: max, ttl: ttl, m: map[string]recentEntry[V]{}}
}

// put stores v under k and returns the keys it evicted to stay within bounds.
func (r *recentMap[V]) put(k string, v V, now time.Time) (evicted []string) {
	r.m[k] = recentEntry[V]{v: v, seen: now}
	if len(r.m) > r.max {
		evicted = r.prune(now)
	}
	return evicted
}

func (r *recentMap[V]) get(k string, now time.Time) (V, bool) {
	e, ok := r.m[k]
	if !ok || now.Sub(e.seen) > r.ttl {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (r *recentMap[V]) delete(k string) { delete(r.m, k) }

func (r *recentMap[V]) len() int { return len(r.m) }

// live returns the keys that have not expired, sorted.
func (r *recentMap[V]) live(now time.Time) []string {
	out := make([]string, 0, len(r.m))
	for k, e := range r.m {
		if now.Sub(e.seen) <= r.ttl {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// prune drops the expired entries, then the oldest until a quarter of max is free, so that
// the sort is paid once per max/4 insertions.
func (r *recentMap[V]) prune(now time.Time) (evicted []string) {
	for k, e := range r.m {
		if now.Sub(e.seen) > r.ttl {
			delete(r.m, k)
			evicted = append(evicted, k)
		}
	}
	keep := r.max - r.max/4
	if len(r.m) <= keep {
		return evicted
	}
	type aged struct {
		k    string
		seen time.Time
	}
	all := make([]aged, 0, len(r.m))
	for k, e := range r.m {
		all = append(all, aged{k, e.seen})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].seen.Before(all[j].seen) })
	for _, a := range all[:len(all)-keep] {
		delete(r.m, a.k)
		evicted = append(evicted, a.k)
	}
	return evicted
}
