package bridge

import (
	"context"
	"sync"
	"time"
)

// taskQueue holds slow side work (notifications, contact acceptance) that event handlers must
// not wait for; runTasks executes it in order. It never drops.
type taskQueue struct {
	mu    sync.Mutex
	tasks []func(context.Context)
	wake  chan struct{}
}

func newTaskQueue() *taskQueue { return &taskQueue{wake: make(chan struct{}, 1)} }

func (q *taskQueue) push(f func(context.Context)) {
	q.mu.Lock()
	q.tasks = append(q.tasks, f)
	q.mu.Unlock()
	signal(q.wake)
}

func (q *taskQueue) pop() (func(context.Context), bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.tasks) == 0 {
		return nil, false
	}
	f := q.tasks[0]
	q.tasks[0] = nil
	q.tasks = q.tasks[1:]
	return f, true
}

func (b *Bridge) runTasks(ctx context.Context) {
	for {
		for {
			f, ok := b.tasks.pop()
			if !ok || ctx.Err() != nil {
				break
			}
			f(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-b.tasks.wake:
		}
	}
}

// readBatcher collects the ids of relayed messages per sender for MarkMessagesRead.
type readBatcher struct {
	mu      sync.Mutex
	pending map[string][]string
	seen    map[string]bool // "sender/id" in pending
	wake    chan struct{}
}

// maxReadBatch is the official client's batch limit.
const maxReadBatch = 512

func newReadBatcher() *readBatcher {
	return &readBatcher{pending: map[string][]string{}, seen: map[string]bool{}, wake: make(chan struct{}, 1)}
}

func (r *readBatcher) add(sender, id string) {
	if sender == "" || id == "" {
		return
	}
	r.mu.Lock()
	// A contact paired with several channels delivers the same message more than once.
	if key := sender + "/" + id; !r.seen[key] {
		r.seen[key] = true
		r.pending[sender] = append(r.pending[sender], id)
	}
	r.mu.Unlock()
	signal(r.wake)
}

func (r *readBatcher) take() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending
	r.pending, r.seen = map[string][]string{}, map[string]bool{}
	return p
}

// runReads marks relayed messages read, batching what arrives within MarkReadDelay; at
// shutdown it flushes what is left.
func (b *Bridge) runReads(ctx context.Context) {
	timer := time.NewTimer(b.o.MarkReadDelay)
	timer.Stop()
	defer timer.Stop()
	flush := func(ctx context.Context) {
		for sender, ids := range b.reads.take() {
			for len(ids) > 0 {
				n := min(len(ids), maxReadBatch)
				if err := b.o.Resonite.MarkRead(ctx, sender, ids[:n]); err != nil {
					// Read receipts are cosmetic: the messages are relayed either way.
					b.log.Warn("marking messages read", "sender", sender, "count", n, "err", err)
				}
				ids = ids[n:]
			}
		}
	}
	armed := false // the first id of a batch starts the window; later ones do not extend it
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := storeCtx(ctx)
			flush(fctx)
			cancel()
			return
		case <-b.reads.wake:
			if !armed {
				timer.Reset(b.o.MarkReadDelay)
				armed = true
			}
		case <-timer.C:
			armed = false
			flush(ctx)
		}
	}
}
