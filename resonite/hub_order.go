package resonite

import (
	"container/heap"
	"context"
	"log/slog"
	"sync"
	"time"
)

// The library runs every incoming invocation on its own goroutine and its server (our fake)
// sends each push from its own goroutine, so pushes can reach us out of order. Events go
// through a hold-back queue: each waits up to the reorder window and leaves in order of its
// own timestamp (messages by sendTime then id, statuses by lastStatusChange; events without
// a timestamp by arrival). An event waits at most the window; anything that arrives later
// than that behind a newer one is delivered anyway and logged.

type orderItem struct {
	ev    Event
	key   time.Time
	id    string
	seq   uint64
	due   time.Time
	class string // "message", "status" or "" (no ordering promise across classes)
	done  bool
}

type orderHeap []*orderItem

func (q orderHeap) Len() int { return len(q) }
func (q orderHeap) Less(i, j int) bool {
	a, b := q[i], q[j]
	if !a.key.Equal(b.key) {
		return a.key.Before(b.key)
	}
	if a.id != b.id {
		return a.id < b.id
	}
	return a.seq < b.seq
}
func (q orderHeap) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *orderHeap) Push(x any)   { *q = append(*q, x.(*orderItem)) }
func (q *orderHeap) Pop() any {
	old := *q
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return it
}

type orderer struct {
	window time.Duration
	limit  int
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	heap    orderHeap
	fifo    []*orderItem // arrival order, for the due times
	seq     uint64
	wake    chan struct{} // cap 1: something was added
	space   chan struct{} // closed and replaced when items leave
	lastKey map[string]time.Time
	stalled bool
	stallAt time.Time
}

func newOrderer(window time.Duration, limit int, log *slog.Logger) *orderer {
	return &orderer{
		window:  window,
		limit:   limit,
		log:     log,
		now:     time.Now,
		wake:    make(chan struct{}, 1),
		space:   make(chan struct{}),
		lastKey: map[string]time.Time{},
	}
}

// add queues an event. When the queue is full it waits for room (the connection's reader is
// paused: back-pressure, logged) until ctx ends; it reports whether the event was queued.
func (o *orderer) add(ctx context.Context, ev Event, key time.Time, id, class string) bool {
	for {
		o.mu.Lock()
		if len(o.heap) < o.limit {
			now := o.now()
			if key.IsZero() {
				key = now
			}
			if o.stalled {
				o.stalled = false
				o.log.Info("hub: event queue has room again; hub reader resumed", "paused", now.Sub(o.stallAt).Round(time.Millisecond))
			}
			o.seq++
			it := &orderItem{ev: ev, key: key, id: id, seq: o.seq, due: now.Add(o.window), class: class}
			heap.Push(&o.heap, it)
			o.fifo = append(o.fifo, it)
			o.mu.Unlock()
			select {
			case o.wake <- struct{}{}:
			default:
			}
			return true
		}
		if !o.stalled {
			o.stalled = true
			o.stallAt = o.now()
			o.log.Warn("hub: back-pressure: event queue full, the consumer of Events is slow; pausing the hub reader",
				"queued", len(o.heap), "limit", o.limit)
		}
		space := o.space
		o.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			o.log.Error("hub: event not queued: connection ended while the consumer was stalled; it will be caught up after the reconnect",
				"event", eventName(ev))
			return false
		}
	}
}

// ready pops the events that may leave now, in order, and reports when to look again.
func (o *orderer) ready() (out []*orderItem, next time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	for len(o.fifo) > 0 {
		front := o.fifo[0]
		if front.done {
			o.fifo[0] = nil
			o.fifo = o.fifo[1:]
			continue
		}
		if now.Before(front.due) {
			next = front.due.Sub(now)
			break
		}
		// Everything ordered before the due event leaves with it.
		for !front.done {
			it := heap.Pop(&o.heap).(*orderItem)
			it.done = true
			out = append(out, it)
		}
	}
	if len(o.fifo) == 0 {
		o.fifo = nil
		next = -1
	}
	if len(out) > 0 {
		close(o.space)
		o.space = make(chan struct{})
	}
	for _, it := range out {
		if it.class == "" {
			continue
		}
		if last, ok := o.lastKey[it.class]; ok && it.key.Before(last) {
			o.log.Warn("hub: event arrived later than the reorder window behind a newer one; delivered out of order",
				"event", eventName(it.ev), "window", o.window)
			continue
		}
		o.lastKey[it.class] = it.key
	}
	return out, next
}

// pump moves due events to out until ctx ends, then closes out. A full out is the consumer
// being slow: that is logged once per episode, never dropped.
func (o *orderer) pump(ctx context.Context, out chan<- Event) {
	defer close(out)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	slow, slowSince := false, time.Time{}
	for {
		items, next := o.ready()
		for _, it := range items {
			select {
			case out <- it.ev:
				if slow {
					slow = false
					o.log.Info("hub: the consumer of Events caught up", "after", o.now().Sub(slowSince).Round(time.Millisecond))
				}
				continue
			default:
			}
			if !slow {
				slow, slowSince = true, o.now()
				o.log.Warn("hub: back-pressure: Events channel full, waiting for the consumer", "buffer", cap(out))
			}
			select {
			case out <- it.ev:
			case <-ctx.Done():
				return
			}
		}
		if len(items) > 0 {
			continue
		}
		var tc <-chan time.Time
		if next >= 0 {
			timer.Reset(next)
			tc = timer.C
		}
		select {
		case <-o.wake:
		case <-tc:
		case <-ctx.Done():
			return
		}
	}
}
