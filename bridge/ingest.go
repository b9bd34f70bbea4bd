package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// Group commit of new rows. Both sides hand the bridge their events one at a time from a single
// goroutine (the gateway's event queue, the hub's event loop), so a handler that waited for its
// own commit would cost one fsync'd transaction per message and nothing could ever be joined.
// Handlers therefore decide and submit; the ingester goroutine stores every submission waiting
// at that moment in one EnqueueBatch transaction, in submission order, while the next ones
// queue up behind it.
//
// Delivery rule 1 still holds: a row is delivered only once the worker claimed it from the
// store, and nothing is acknowledged to either side before that (read receipts follow the
// delivery; the catch-up cursors move only after the catch-up's own rows are committed, and a
// catch-up waits for them). A crash loses only submissions not yet committed, which are after
// both cursors and so come back through the start-up catch-up, like messages that arrive while
// the daemon is down. A failed commit asks for the catch-up itself before the next batch is
// stored, so its fence holds back the newer rows of that pairing (rule 2).

// maxIngestRows bounds one transaction; a larger queue takes several, in order.
const maxIngestRows = 1000

// ingestJob is one submission: rows stored together, and what to do once they are.
type ingestJob struct {
	rows []core.OutboxRow
	// after runs on the ingester's goroutine when the rows are stored or failed, before the
	// next batch is stored and before done closes.
	after func(inserted []bool, err error)

	done     chan struct{}
	inserted []bool // per row, once done
	err      error  // once done
}

// wait returns once the job is stored, with its error; ctx only bounds the waiting.
func (j *ingestJob) wait(ctx context.Context) error {
	select {
	case <-j.done:
		return j.err
	case <-ctx.Done():
		return fmt.Errorf("waiting for messages to be stored: %w", ctx.Err())
	}
}

// ingester queues submissions for runIngest.
type ingester struct {
	mu      sync.Mutex
	queue   []*ingestJob
	running bool // runIngest takes submissions; otherwise submit stores them itself
	wake    chan struct{}
}

func newIngester() *ingester { return &ingester{wake: make(chan struct{}, 1)} }

// submit stores rows in order behind everything submitted before; after (may be nil) runs once
// they are stored. Before Start and after Stop the rows are stored on the caller's goroutine
// before submit returns.
func (b *Bridge) submit(rows []core.OutboxRow, after func(inserted []bool, err error)) *ingestJob {
	j := &ingestJob{rows: rows, after: after, done: make(chan struct{})}
	in := b.ingest
	in.mu.Lock()
	if in.running {
		in.queue = append(in.queue, j)
		in.mu.Unlock()
		signal(in.wake)
		return j
	}
	in.mu.Unlock()
	ctx, cancel := storeCtx(context.Background())
	defer cancel()
	b.storeJobs(ctx, []*ingestJob{j})
	return j
}

// flush returns once everything submitted before it is stored (or failed).
func (b *Bridge) flush(ctx context.Context) error {
	j := b.submit(nil, nil)
	return j.wait(ctx)
}

// take removes up to maxIngestRows rows' worth of jobs (at least one job) from the queue.
func (in *ingester) take() []*ingestJob {
	in.mu.Lock()
	defer in.mu.Unlock()
	n, rows := 0, 0
	for n < len(in.queue) && (n == 0 || rows+len(in.queue[n].rows) <= maxIngestRows) {
		rows += len(in.queue[n].rows)
		n++
	}
	jobs := in.queue[:n:n]
	in.queue = in.queue[n:]
	return jobs
}

// runIngest stores submissions until ctx ends, then stores what is still queued and hands later
// submissions back to their callers.
func (b *Bridge) runIngest(ctx context.Context) {
	in := b.ingest
	for {
		if jobs := in.take(); len(jobs) > 0 {
			sctx, cancel := storeCtx(ctx) // a batch taken is stored, also during shutdown
			b.storeJobs(sctx, jobs)
			cancel()
			continue
		}
		select {
		case <-in.wake:
			continue
		case <-ctx.Done():
		}
		in.mu.Lock()
		in.running = false
		rest := in.queue
		in.queue = nil
		in.mu.Unlock()
		sctx, cancel := storeCtx(ctx)
		b.storeJobs(sctx, rest)
		cancel()
		return
	}
}

// storeJobs stores the jobs' rows in one transaction and completes each job: its own rows'
// outcome, an unknown pairing failing only the job that has it.
func (b *Bridge) storeJobs(ctx context.Context, jobs []*ingestJob) {
	var rows []core.OutboxRow
	for _, j := range jobs {
		rows = append(rows, j.rows...)
	}
	var res []core.EnqueueResult
	var err error
	if len(rows) > 0 {
		res, err = b.o.Store.EnqueueBatch(ctx, rows)
	}
	// Rows of a pairing that is gone are the only partial failure; the other rows are stored.
	partial := errors.Is(err, core.ErrNotFound) && len(res) == len(rows)
	woken := map[core.Direction]bool{}
	at := 0
	for _, j := range jobs {
		j.inserted = make([]bool, len(j.rows))
		switch {
		case len(j.rows) == 0: // a flush: the failure of others is not its own
		case err != nil && !partial:
			j.err = err
		default:
			for i := range j.rows {
				r := res[at+i]
				j.inserted[i] = r.Inserted
				if r.Inserted {
					woken[j.rows[i].Direction] = true
				}
				if r.ID == 0 && partial {
					j.err = fmt.Errorf("storing %s message %s: pairing %d: %w", j.rows[i].Direction, j.rows[i].SourceID, j.rows[i].PairingID, core.ErrNotFound)
				}
			}
		}
		at += len(j.rows)
	}
	// The callbacks first: a failed job raises its catch-up's fence before a worker looks.
	for _, j := range jobs {
		if j.after != nil {
			j.after(j.inserted, j.err)
		}
	}
	for dir := range woken {
		signal(b.wake[dir])
	}
	for _, j := range jobs {
		close(j.done)
	}
}
