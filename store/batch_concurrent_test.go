package store_test

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/store"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

// batchRun is the test's own record of a concurrent batch run: what was
// enqueued (and when, on a logical clock), which pairings have a batch out,
// and the order in which each pairing's rows were delivered.
type batchRun struct {
	clock atomic.Int64 // ticks after every enqueue returns and before every claim starts

	mu        sync.Mutex
	rows      map[int64]runRow // every row enqueued
	out       map[int64]bool   // pairing → a batch of it is out
	delivered map[int64][]int64
	done      int
	changed   chan struct{} // closed (and replaced) by notify
}

type runRow struct {
	pairing  int64
	time     time.Time
	enqueued int64 // clock when its Enqueue had returned; 0: before the run
	// claimedAt is the clock when the claim that delivered it started.
	claimedAt int64
}

func (r *batchRun) less(a, b int64) bool {
	ra, rb := r.rows[a], r.rows[b]
	return cmp.Or(ra.time.Compare(rb.time), cmp.Compare(a, b)) < 0
}

func (r *batchRun) added(id, pairing int64, t time.Time, at int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows[id] = runRow{pairing: pairing, time: t, enqueued: at}
}

// take records batches handed out by a claim that started at clock start.
func (r *batchRun) take(msgs []core.OutboxRow) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, m := range msgs {
		if i > 0 && msgs[i-1].PairingID == m.PairingID {
			continue
		}
		if r.out[m.PairingID] {
			return fmt.Errorf("pairing %d got a batch from row %d on while another batch of it is out", m.PairingID, m.ID)
		}
		r.out[m.PairingID] = true
	}
	return nil
}

// settle records the outcome of one pairing's batch, just before Settle
// stores it: from then on the store may hand out the pairing's next batch.
func (r *batchRun) settle(group []core.OutboxRow, delivered int, start int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := group[0].PairingID
	for _, m := range group[:delivered] {
		if slices.Contains(r.delivered[p], m.ID) {
			return fmt.Errorf("row %d delivered twice", m.ID)
		}
		row := r.rows[m.ID]
		row.claimedAt = start
		r.rows[m.ID] = row
		r.delivered[p] = append(r.delivered[p], m.ID)
	}
	r.done += delivered
	delete(r.out, p)
	return nil
}

func (r *batchRun) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

func (r *batchRun) changes() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

func (r *batchRun) notify() {
	r.mu.Lock()
	defer r.mu.Unlock()
	close(r.changed)
	r.changed = make(chan struct{})
}

// TestClaimBatchConcurrentOrder runs batch workers (and single-row Claim
// workers) on two pools against one outbox while rows older than queued ones
// are enqueued. It checks that a pairing never has two batches out and that
// each pairing sees its rows in (source_time, id) order:
//   - "window" pairings get their late rows while a batch of theirs is out,
//     timed right after the batch's last row, so they are older than
//     everything queued behind the batch: their delivered order must equal
//     the (source_time, id) order of everything enqueued for them;
//   - "free" pairings get late rows at any moment and any older time, also
//     older than rows already out or delivered; a row can only be required
//     to come before the rows claimed after its Enqueue returned, so that is
//     what is checked for them.
//
// Settlements mix deliveries with postponed tails, progress is recorded, and
// nobody sleeps: idle workers wait for the next change.
func TestClaimBatchConcurrentOrder(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	dsn := storetest.URL(t)
	sts := openStores(t, dsn, 2, 4)
	const (
		pairings, perPairing, windowLate, freeLate, workers = 8, 24, 5, 30, 8
		dir                                                 = core.ToDiscord
	)
	run := &batchRun{rows: map[int64]runRow{}, out: map[int64]bool{}, delivered: map[int64][]int64{}, changed: make(chan struct{})}
	var ps, window, free []int64
	for i := range pairings {
		p := mustPair(t, sts[0], fmt.Sprint("c", i)).ID
		ps = append(ps, p)
		if i%2 == 0 {
			window = append(window, p)
		} else {
			free = append(free, p)
		}
	}
	var base []core.OutboxRow
	for i, p := range ps {
		for k := range perPairing {
			// Pairs of equal source times, so the id tie-break counts too.
			base = append(base, core.OutboxRow{Direction: dir, SourceID: fmt.Sprintf("R-%d-%d", i, k), PairingID: p, SourceTime: at(10 * (1 + k/2))})
		}
	}
	rand.Shuffle(len(base), func(i, j int) { base[i], base[j] = base[j], base[i] })
	res, err := sts[0].EnqueueBatch(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		run.added(r.ID, base[i].PairingID, base[i].SourceTime, 0)
	}
	total := len(base) + windowLate*len(window) + freeLate

	var quotaMu sync.Mutex
	quota := map[int64]int{}
	for _, p := range window {
		quota[p] = windowLate
	}
	isWindow := func(p int64) bool { return slices.Contains(window, p) }
	seq := atomic.Int64{}
	enqueueLate := func(st *store.Store, p int64, t0 time.Time) error {
		src := fmt.Sprint("late-", seq.Add(1))
		id, _, err := st.Enqueue(ctx, core.OutboxRow{Direction: dir, SourceID: src, PairingID: p, SourceTime: t0})
		if err != nil {
			return err
		}
		run.added(id, p, t0, run.clock.Add(1))
		run.notify()
		return nil
	}

	errs := make(chan error, workers+1)
	failed := make(chan struct{})
	var once sync.Once
	fail := func(err error) {
		errs <- err
		once.Do(func() { close(failed) })
	}
	claimer := func(st *store.Store, single bool) ([]core.OutboxRow, int64, error) {
		start := run.clock.Add(1)
		var msgs []core.OutboxRow
		var err error
		if single {
			msgs, err = st.Claim(ctx, dir, 3, time.Minute)
		} else {
			msgs, err = st.ClaimBatch(ctx, dir, 3, 4, time.Minute, nil)
		}
		if err == nil {
			err = run.take(msgs)
		}
		return msgs, start, err
	}
	// settle delivers each group, or its head part with the tail postponed (due at once).
	settle := func(st *store.Store, msgs []core.OutboxRow, start int64) error {
		var s []core.Settlement
		for _, g := range splitGroups(msgs) {
			n := len(g)
			if rand.IntN(4) == 0 {
				n = rand.IntN(len(g))
			}
			if err := st.SetProgress(ctx, g[0].ID, 1, fmt.Sprint("D-", g[0].ID)); err != nil {
				return err
			}
			if err := run.settle(g, n, start); err != nil {
				return err
			}
			for i, m := range g {
				if i < n {
					s = append(s, core.Settlement{RowID: m.ID, Kind: core.Delivered, TargetID: fmt.Sprint("D-", m.ID)})
				} else {
					s = append(s, core.Settlement{RowID: m.ID, Kind: core.Postpone, Until: time.Now().Add(-time.Second)})
				}
			}
		}
		return st.Settle(ctx, s)
	}

	var wg sync.WaitGroup
	for w := range workers {
		st := sts[w%2]
		single := w%4 == 3
		wg.Go(func() {
			for {
				changed := run.changes()
				if run.count() >= total {
					return
				}
				select {
				case <-failed:
					return
				default:
				}
				msgs, start, err := claimer(st, single)
				if err != nil {
					fail(err)
					return
				}
				if len(msgs) == 0 {
					select {
					case <-changed:
					case <-failed:
						return
					case <-ctx.Done():
						fail(ctx.Err())
						return
					}
					continue
				}
				// The window: window pairings' batches are out; rows older than those
				// behind them come in now, and a claim in the window must not touch
				// them. What that claim gets is out too and may bring more late rows.
				claims := [][]core.OutboxRow{msgs}
				starts := []int64{start}
				for cur := msgs; len(cur) > 0; {
					late := false
					for _, g := range splitGroups(cur) {
						p := g[0].PairingID
						quotaMu.Lock()
						ok := isWindow(p) && quota[p] > 0
						if ok {
							quota[p]--
						}
						quotaMu.Unlock()
						if ok {
							t0 := g[len(g)-1].SourceTime.Add(time.Duration(1+rand.IntN(9000)) * time.Millisecond)
							if err := enqueueLate(st, p, t0); err != nil {
								fail(err)
								return
							}
							late = true
						}
					}
					if !late {
						break
					}
					if cur, start, err = claimer(st, false); err != nil {
						fail(err)
						return
					}
					claims, starts = append(claims, cur), append(starts, start)
				}
				for i, c := range claims {
					if err := settle(st, c, starts[i]); err != nil {
						fail(err)
						return
					}
				}
				run.notify()
			}
		})
	}
	// Free late rows: one after every spread deliveries, at a random older time.
	wg.Go(func() {
		spread := len(base) / freeLate
		for j := range freeLate {
			for {
				changed := run.changes()
				if run.count() >= j*spread {
					break
				}
				select {
				case <-changed:
				case <-failed:
					return
				case <-ctx.Done():
					fail(ctx.Err())
					return
				}
			}
			t0 := at(0).Add(time.Duration(rand.IntN(10*perPairing/2*1000)) * time.Millisecond)
			if err := enqueueLate(sts[j%2], free[j%len(free)], t0); err != nil {
				fail(err)
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}

	run.mu.Lock()
	defer run.mu.Unlock()
	all := map[int64][]int64{}
	for id, r := range run.rows {
		all[r.pairing] = append(all[r.pairing], id)
	}
	for p, ids := range all {
		got := run.delivered[p]
		if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(ids))) {
			t.Errorf("pairing %d: delivered %d rows %v, enqueued %d %v", p, len(got), got, len(ids), ids)
			continue
		}
		if isWindow(p) {
			want := slices.SortedFunc(slices.Values(ids), func(a, b int64) int {
				if run.less(a, b) {
					return -1
				}
				return 1
			})
			if !slices.Equal(got, want) {
				t.Errorf("window pairing %d delivered in order %v, want %v", p, got, want)
			}
			continue
		}
		for i, x := range got {
			for _, l := range got[i+1:] {
				if run.less(l, x) && run.rows[l].enqueued < run.rows[x].claimedAt {
					t.Errorf("free pairing %d: row %d delivered before the older row %d, which was enqueued (clock %d) before %d's claim started (clock %d)",
						p, x, l, run.rows[l].enqueued, x, run.rows[x].claimedAt)
				}
			}
		}
	}
	stats, err := sts[0].QueueStats(ctx)
	if err != nil || stats.Pending[dir] != 0 || stats.InFlight[dir] != 0 {
		t.Fatalf("after the run: %+v, %v; want nothing left", stats, err)
	}
	if n := len(run.rows); n != total {
		t.Fatalf("%d rows enqueued, want %d: some late rows never came", n, total)
	}
}

// splitGroups cuts ClaimBatch's result into its pairings' batches.
func splitGroups(msgs []core.OutboxRow) [][]core.OutboxRow {
	var out [][]core.OutboxRow
	for i, m := range msgs {
		if i == 0 || msgs[i-1].PairingID != m.PairingID {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], m)
	}
	return out
}
