package store_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/store"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

// base is a fixed source time in the past; rows get base plus a few seconds so
// that their order is explicit.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }

func enqueue(t testing.TB, st *store.Store, m core.OutboxRow) int64 {
	t.Helper()
	if m.Direction == "" {
		m.Direction = core.ToResonite
	}
	id, inserted, err := st.Enqueue(ctxT(t), m)
	if err != nil || !inserted {
		t.Fatalf("Enqueue(%s %s) = %d, %v, %v; want a new row", m.Direction, m.SourceID, id, inserted, err)
	}
	return id
}

func claim(t testing.TB, st *store.Store, dir core.Direction, limit int) []int64 {
	t.Helper()
	msgs, err := st.Claim(ctxT(t), dir, limit, time.Minute)
	if err != nil {
		t.Fatalf("Claim(%s, %d): %v", dir, limit, err)
	}
	ids := make([]int64, len(msgs))
	for i, m := range msgs {
		if m.State != core.StateInFlight {
			t.Fatalf("claimed row %d is %s, want in_flight", m.ID, m.State)
		}
		ids[i] = m.ID
	}
	slices.Sort(ids)
	return ids
}

func message(t testing.TB, st *store.Store, id int64) core.OutboxRow {
	t.Helper()
	m, err := st.MessageByID(ctxT(t), id)
	if err != nil {
		t.Fatalf("MessageByID(%d): %v", id, err)
	}
	return m
}

func deliver(t testing.TB, st *store.Store, id int64) {
	t.Helper()
	if err := st.MarkDelivered(ctxT(t), id, fmt.Sprintf("target-%d", id)); err != nil {
		t.Fatalf("MarkDelivered(%d): %v", id, err)
	}
}

func sorted(ids ...int64) []int64 { return slices.Sorted(slices.Values(ids)) }

func TestEnqueueIdempotent(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c1")

	first := core.OutboxRow{Direction: core.ToResonite, SourceID: "111", PairingID: p.ID, TargetID: "MSG-111",
		Payload: []byte(`{"text":"hello"}`), SourceTime: at(1)}
	id := enqueue(t, st, first)
	again := first
	again.Payload, again.SourceTime, again.TargetID = []byte(`{"text":"changed"}`), at(99), "MSG-other"
	id2, inserted, err := st.Enqueue(ctx, again)
	if err != nil || inserted || id2 != id {
		t.Fatalf("second Enqueue of the same source = %d, %v, %v; want %d, false, nil", id2, inserted, err, id)
	}
	got := message(t, st, id)
	if string(got.Payload) != `{"text":"hello"}` || !got.SourceTime.Equal(at(1)) || got.TargetID != "MSG-111" ||
		got.State != core.StatePending || got.PairingID != p.ID || got.Attempts != 0 {
		t.Fatalf("row after a duplicate enqueue = %+v; want the first call's fields, pending", got)
	}

	other := first
	other.Direction = core.ToDiscord
	if otherID := enqueue(t, st, other); otherID == id {
		t.Fatalf("the same source id in the other direction got the same row %d", id)
	}
	var n int
	if err := st.Pool().QueryRow(ctx, `select count(*) from relay_messages`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows = %d, %v; want 2 (one per direction)", n, err)
	}

	bad := []struct {
		name     string
		m        core.OutboxRow
		notFound bool
	}{
		{"unknown pairing", core.OutboxRow{Direction: core.ToResonite, SourceID: "x1", PairingID: p.ID + 1000}, true},
		{"no pairing", core.OutboxRow{Direction: core.ToResonite, SourceID: "x2"}, true},
		{"invalid direction", core.OutboxRow{Direction: "sideways", SourceID: "x3", PairingID: p.ID}, false},
		{"empty source id", core.OutboxRow{Direction: core.ToDiscord, PairingID: p.ID}, false},
	}
	for _, tt := range bad {
		_, _, err := st.Enqueue(ctx, tt.m)
		if err == nil || errors.Is(err, core.ErrNotFound) != tt.notFound {
			t.Errorf("%s: Enqueue = %v; want an error, ErrNotFound %v", tt.name, err, tt.notFound)
		}
	}
	if _, err := st.MessageBySource(ctx, core.ToResonite, "x1"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("a refused enqueue left a row: %v", err)
	}
}

func TestEnqueueDefaults(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c1")

	id := enqueue(t, st, core.OutboxRow{Direction: core.ToDiscord, SourceID: "R-1:1", PairingID: p.ID})
	m := message(t, st, id)
	// One statement, one now(): zero times become the insert's own time.
	if m.SourceTime.IsZero() || !m.SourceTime.Equal(m.EnqueuedAt) || !m.NextAttemptAt.Equal(m.EnqueuedAt) {
		t.Fatalf("zero SourceTime/NextAttemptAt stored as %v/%v, want now() = created_at %v", m.SourceTime, m.NextAttemptAt, m.EnqueuedAt)
	}
	if m.TargetID != "" || m.Payload != nil || m.DeliveredAt != nil {
		t.Fatalf("empty fields stored as %+v", m)
	}
	if _, err := st.MessageByTarget(ctx, core.ToDiscord, ""); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("MessageByTarget(\"\") = %v, want ErrNotFound (empty target ids are not stored)", err)
	}

	later := time.Now().Add(time.Hour).Round(time.Microsecond)
	id = enqueue(t, st, core.OutboxRow{Direction: core.ToDiscord, SourceID: "R-2:1", PairingID: p.ID, NextAttemptAt: later})
	if m := message(t, st, id); !m.NextAttemptAt.Equal(later) {
		t.Fatalf("NextAttemptAt stored as %v, want %v", m.NextAttemptAt, later)
	}
}

func TestEnqueueConcurrentSameSource(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c1")

	const callers = 10
	ids := make([]int64, callers)
	inserted := make([]bool, callers)
	errs := make([]error, callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			<-start
			ids[i], inserted[i], errs[i] = st.Enqueue(ctx, core.OutboxRow{Direction: core.ToResonite, SourceID: "same", PairingID: p.ID})
		})
	}
	close(start)
	wg.Wait()
	winners := 0
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("callers got ids %v, want one id", ids)
		}
		if inserted[i] {
			winners++
		}
	}
	var n int
	if err := st.Pool().QueryRow(ctx, `select count(*) from relay_messages`).Scan(&n); err != nil || n != 1 || winners != 1 {
		t.Fatalf("%d rows (%v), %d callers told inserted; want 1 and 1", n, err, winners)
	}
}

// TestClaimFindsEveryHead: among many pairings, most of them idle, a claim finds the head of
// every pairing that has one due, wherever its rows lie among other pairings' and the other
// direction's rows, and skips the pairings whose head is in flight or not yet due.
func TestClaimFindsEveryHead(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	ps := mustPairs(t, st, "c-heads-", 30)
	var want []int64
	for i, p := range ps {
		switch i % 5 {
		case 0: // idle in this direction, busy in the other
			enqueue(t, st, core.OutboxRow{Direction: core.ToDiscord, SourceID: fmt.Sprint("d", i), PairingID: p})
		case 1: // a due head and a row behind it
			want = append(want, enqueue(t, st, core.OutboxRow{SourceID: fmt.Sprint("h", i), PairingID: p, SourceTime: at(i)}))
			enqueue(t, st, core.OutboxRow{SourceID: fmt.Sprint("b", i), PairingID: p, SourceTime: at(i + 1)})
		case 2: // a head not yet due
			enqueue(t, st, core.OutboxRow{SourceID: fmt.Sprint("n", i), PairingID: p, SourceTime: at(i), NextAttemptAt: time.Now().Add(time.Hour)})
		case 3: // delivered only
			deliver(t, st, enqueue(t, st, core.OutboxRow{SourceID: fmt.Sprint("x", i), PairingID: p}))
		}
	}
	// The first of them has its head in flight: it is skipped.
	mustExec(t, st, `update relay_messages set state = 'in_flight', lease_until = now() + interval '1 minute' where id = $1`, want[0])
	want = want[1:]
	msgs, err := st.ClaimBatch(ctx, core.ToResonite, len(ps), 1, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, m := range msgs {
		got = append(got, m.ID)
	}
	if slices.Sort(got); !slices.Equal(got, want) {
		t.Fatalf("claimed %v, want the due heads %v", got, want)
	}
	if due, ok, err := st.NextDue(ctx, core.ToResonite); err != nil || !ok || time.Until(due) < 59*time.Minute {
		t.Fatalf("NextDue = %v, %v, %v; want the heads not yet due, in an hour", due, ok, err)
	}
}

// TestClaimOrder covers which rows Claim hands out, one scenario per store.
func TestClaimOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, st *store.Store, p1, p2 int64)
	}{
		{"one head per pairing, by source time", func(t *testing.T, st *store.Store, p1, p2 int64) {
			a2 := enqueue(t, st, core.OutboxRow{SourceID: "a2", PairingID: p1, SourceTime: at(2)})
			a1 := enqueue(t, st, core.OutboxRow{SourceID: "a1", PairingID: p1, SourceTime: at(1)}) // enqueued late, older
			b1 := enqueue(t, st, core.OutboxRow{SourceID: "b1", PairingID: p2, SourceTime: at(5)})
			if got := claim(t, st, core.ToResonite, 10); !slices.Equal(got, sorted(a1, b1)) {
				t.Fatalf("claimed %v, want the heads %v", got, sorted(a1, b1))
			}
			if got := claim(t, st, core.ToResonite, 10); len(got) != 0 {
				t.Fatalf("claimed %v while both pairings are in flight, want nothing", got)
			}
			deliver(t, st, a1)
			if got := claim(t, st, core.ToResonite, 10); !slices.Equal(got, []int64{a2}) {
				t.Fatalf("after delivering a1 claimed %v, want a2 %d", got, a2)
			}
		}},
		{"equal source times go by id", func(t *testing.T, st *store.Store, p1, _ int64) {
			first := enqueue(t, st, core.OutboxRow{SourceID: "x", PairingID: p1, SourceTime: at(1)})
			second := enqueue(t, st, core.OutboxRow{SourceID: "y", PairingID: p1, SourceTime: at(1)})
			for _, want := range []int64{first, second} {
				got := claim(t, st, core.ToResonite, 10)
				if !slices.Equal(got, []int64{want}) {
					t.Fatalf("claimed %v, want %d", got, want)
				}
				deliver(t, st, want)
			}
		}},
		{"a head not yet due holds back its pairing only", func(t *testing.T, st *store.Store, p1, p2 int64) {
			head := enqueue(t, st, core.OutboxRow{SourceID: "h", PairingID: p1, SourceTime: at(1), NextAttemptAt: time.Now().Add(time.Hour)})
			enqueue(t, st, core.OutboxRow{SourceID: "behind", PairingID: p1, SourceTime: at(2)})
			other := enqueue(t, st, core.OutboxRow{SourceID: "o", PairingID: p2, SourceTime: at(3)})
			if got := claim(t, st, core.ToResonite, 10); !slices.Equal(got, []int64{other}) {
				t.Fatalf("claimed %v, want only the other pairing's row %d", got, other)
			}
			if err := st.Postpone(ctxT(t), head, time.Now().Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
			if got := claim(t, st, core.ToResonite, 10); !slices.Equal(got, []int64{head}) {
				t.Fatalf("once due, claimed %v, want the head %d", got, head)
			}
		}},
		{"a retried head holds back its pairing", func(t *testing.T, st *store.Store, p1, _ int64) {
			head := enqueue(t, st, core.OutboxRow{SourceID: "h", PairingID: p1, SourceTime: at(1)})
			enqueue(t, st, core.OutboxRow{SourceID: "behind", PairingID: p1, SourceTime: at(2)})
			claim(t, st, core.ToResonite, 10)
			// Enough attempts spent for a backoff of minutes: the test does not race the clock.
			mustExec(t, st, `update relay_messages set attempts = 10 where id = $1`, head)
			if _, err := st.Retry(ctxT(t), head, "boom"); err != nil {
				t.Fatal(err)
			}
			if got := claim(t, st, core.ToResonite, 10); len(got) != 0 {
				t.Fatalf("claimed %v while the head waits for its retry, want nothing", got)
			}
		}},
		{"a failed head no longer blocks", func(t *testing.T, st *store.Store, p1, _ int64) {
			head := enqueue(t, st, core.OutboxRow{SourceID: "h", PairingID: p1, SourceTime: at(1)})
			next := enqueue(t, st, core.OutboxRow{SourceID: "n", PairingID: p1, SourceTime: at(2)})
			claim(t, st, core.ToResonite, 10)
			if err := st.Fail(ctxT(t), head, "permanent"); err != nil {
				t.Fatal(err)
			}
			if got := claim(t, st, core.ToResonite, 10); !slices.Equal(got, []int64{next}) {
				t.Fatalf("after failing the head claimed %v, want %d", got, next)
			}
		}},
		{"a row delivered unclaimed is skipped", func(t *testing.T, st *store.Store, p1, _ int64) {
			head := enqueue(t, st, core.OutboxRow{SourceID: "h", PairingID: p1, SourceTime: at(1)})
			coalesced := enqueue(t, st, core.OutboxRow{SourceID: "c", PairingID: p1, SourceTime: at(2)})
			last := enqueue(t, st, core.OutboxRow{SourceID: "l", PairingID: p1, SourceTime: at(3)})
			claim(t, st, core.ToResonite, 10)
			deliver(t, st, coalesced) // pending, never claimed: posted together with the head
			deliver(t, st, head)
			if got := claim(t, st, core.ToResonite, 10); !slices.Equal(got, []int64{last}) {
				t.Fatalf("claimed %v, want %d", got, last)
			}
		}},
		{"an older row enqueued while one is in flight waits for it", func(t *testing.T, st *store.Store, p1, _ int64) {
			out := enqueue(t, st, core.OutboxRow{SourceID: "out", PairingID: p1, SourceTime: at(5)})
			claim(t, st, core.ToResonite, 10)
			late := enqueue(t, st, core.OutboxRow{SourceID: "late", PairingID: p1, SourceTime: at(1)})
			if got := claim(t, st, core.ToResonite, 10); len(got) != 0 {
				t.Fatalf("claimed %v while %d is in flight, want nothing: two rows of a pairing in flight", got, out)
			}
			deliver(t, st, out)
			if got := claim(t, st, core.ToResonite, 10); !slices.Equal(got, []int64{late}) {
				t.Fatalf("claimed %v, want %d", got, late)
			}
		}},
		{"directions do not block each other", func(t *testing.T, st *store.Store, p1, _ int64) {
			toR := enqueue(t, st, core.OutboxRow{Direction: core.ToResonite, SourceID: "r", PairingID: p1, SourceTime: at(2)})
			toD := enqueue(t, st, core.OutboxRow{Direction: core.ToDiscord, SourceID: "d", PairingID: p1, SourceTime: at(1)})
			if got := claim(t, st, core.ToResonite, 10); !slices.Equal(got, []int64{toR}) {
				t.Fatalf("to_resonite claimed %v, want %d", got, toR)
			}
			if got := claim(t, st, core.ToDiscord, 10); !slices.Equal(got, []int64{toD}) {
				t.Fatalf("to_discord claimed %v, want %d", got, toD)
			}
		}},
		{"limit, earliest due first", func(t *testing.T, st *store.Store, p1, p2 int64) {
			now := time.Now()
			late := enqueue(t, st, core.OutboxRow{SourceID: "a", PairingID: p1, SourceTime: at(1), NextAttemptAt: now.Add(-time.Minute)})
			early := enqueue(t, st, core.OutboxRow{SourceID: "b", PairingID: p2, SourceTime: at(2), NextAttemptAt: now.Add(-time.Hour)})
			if got := claim(t, st, core.ToResonite, 0); len(got) != 0 {
				t.Fatalf("Claim(limit 0) = %v", got)
			}
			if got := claim(t, st, core.ToResonite, 1); !slices.Equal(got, []int64{early}) {
				t.Fatalf("Claim(limit 1) = %v, want the earliest due %d", got, early)
			}
			if got := claim(t, st, core.ToResonite, 1); !slices.Equal(got, []int64{late}) {
				t.Fatalf("second Claim(limit 1) = %v, want %d", got, late)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := storetest.New(t)
			tt.run(t, st, mustPair(t, st, "c1").ID, mustPair(t, st, "c2").ID)
		})
	}
}

func TestClaimReturnsFullRows(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	p := mustPair(t, st, "c1")
	id := enqueue(t, st, core.OutboxRow{SourceID: "42", PairingID: p.ID, TargetID: "MSG-42", Payload: []byte(`{"a":1}`), SourceTime: at(7)})
	msgs, err := st.Claim(ctxT(t), core.ToResonite, 5, time.Minute)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Claim = %v, %v", msgs, err)
	}
	m := msgs[0]
	if m.ID != id || m.SourceID != "42" || m.TargetID != "MSG-42" || string(m.Payload) != `{"a":1}` ||
		!m.SourceTime.Equal(at(7)) || m.PairingID != p.ID || m.Direction != core.ToResonite || m.Attempts != 0 {
		t.Fatalf("claimed row = %+v", m)
	}
}

// inFlightTracker records, on the test's side, which pairing has a row out,
// to catch two rows of one pairing handed out at once. It also tells waiting
// workers when the outbox changed, so that nobody polls.
type inFlightTracker struct {
	mu      sync.Mutex
	out     map[int64]int64 // pairing → row
	claimed map[int64]bool  // every row ever handed out
	order   map[int64][]int64
	changed chan struct{} // closed (and replaced) by notify
}

func newTracker() *inFlightTracker {
	return &inFlightTracker{out: map[int64]int64{}, claimed: map[int64]bool{}, order: map[int64][]int64{},
		changed: make(chan struct{})}
}

func (tr *inFlightTracker) take(m core.OutboxRow) error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.claimed[m.ID] {
		return fmt.Errorf("row %d handed out twice", m.ID)
	}
	if other, ok := tr.out[m.PairingID]; ok {
		return fmt.Errorf("pairing %d got row %d while row %d is in flight", m.PairingID, m.ID, other)
	}
	tr.claimed[m.ID] = true
	tr.out[m.PairingID] = m.ID
	tr.order[m.PairingID] = append(tr.order[m.PairingID], m.ID)
	return nil
}

// release is called just before MarkDelivered: from then on the store may
// hand out the pairing's next row.
func (tr *inFlightTracker) release(m core.OutboxRow) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	delete(tr.out, m.PairingID)
}

func (tr *inFlightTracker) count() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.claimed)
}

// changes returns a channel closed by the next notify. Take it before looking
// at the outbox, so that a change made in between is not missed.
func (tr *inFlightTracker) changes() <-chan struct{} {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.changed
}

// notify wakes everyone waiting on changes: rows were delivered (their pairing's
// next row may be claimed now) or enqueued.
func (tr *inFlightTracker) notify() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	close(tr.changed)
	tr.changed = make(chan struct{})
}

// work runs claim/deliver loops until total rows were claimed or a worker
// fails; it returns the first error. sending, when not nil, stands for the
// other side: it runs while the rows it is given are out (claimed, not yet
// delivered), the window in which no second row of their pairings may be
// handed out, and may return rows it claimed itself in that window, which are
// then out too, go through sending in turn and are delivered with the rest.
// A worker that finds nothing to claim waits until rows are delivered or
// enqueued (tr.notify), never for a time.
func work(t *testing.T, st *store.Store, tr *inFlightTracker, workers, total int,
	sending func([]core.OutboxRow) ([]core.OutboxRow, error), stop <-chan struct{}) error {
	t.Helper()
	ctx := ctxT(t)
	errs := make(chan error, workers)
	failed := make(chan struct{}) // a worker that failed leaves rows in flight: stop all
	var once sync.Once
	fail := func(err error) {
		errs <- err
		once.Do(func() { close(failed) })
	}
	takeAll := func(msgs []core.OutboxRow) error {
		for _, m := range msgs {
			if err := tr.take(m); err != nil {
				return err
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				changed := tr.changes() // before the count: the last row's notify is not missed
				if tr.count() >= total {
					return
				}
				select {
				case <-stop:
					return
				case <-failed:
					return
				default:
				}
				msgs, err := st.Claim(ctx, core.ToDiscord, 3, time.Minute)
				if err == nil {
					err = takeAll(msgs)
				}
				for batch := msgs; err == nil && len(batch) > 0 && sending != nil; {
					if batch, err = sending(batch); err == nil {
						err = takeAll(batch)
						msgs = append(msgs, batch...)
					}
				}
				if err != nil {
					fail(err)
					return
				}
				for _, m := range msgs {
					tr.release(m)
					if err := st.MarkDelivered(ctx, m.ID, fmt.Sprint("D-", m.ID)); err != nil {
						fail(err)
						return
					}
				}
				if len(msgs) > 0 {
					tr.notify()
					continue
				}
				// Nothing to claim: the other workers hold the heads, or the rows are yet to come.
				select {
				case <-changed:
				case <-stop:
					return
				case <-failed:
					return
				case <-ctx.Done():
					fail(ctx.Err())
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func TestClaimConcurrentKeepsPairingOrder(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	const pairings, perPairing, workers = 20, 50, 4

	type row struct {
		pairing int64
		src     string
		time    time.Time
		id      int64
	}
	var rows []*row
	for i := range pairings {
		p := mustPair(t, st, fmt.Sprint("c", i))
		for k := range perPairing {
			// Pairs of equal source times, so the id tie-break counts too.
			rows = append(rows, &row{pairing: p.ID, src: fmt.Sprintf("R-%d-%d", i, k), time: at(k / 2)})
		}
	}
	// Insert order is random, also within a pairing: ids do not follow source time.
	rand.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	for _, r := range rows {
		r.id = enqueue(t, st, core.OutboxRow{Direction: core.ToDiscord, SourceID: r.src, PairingID: r.pairing, SourceTime: r.time})
	}
	want := map[int64][]int64{}
	slices.SortFunc(rows, func(a, b *row) int {
		return cmp.Or(a.time.Compare(b.time), cmp.Compare(a.id, b.id))
	})
	for _, r := range rows {
		want[r.pairing] = append(want[r.pairing], r.id)
	}

	tr := newTracker()
	if err := work(t, st, tr, workers, len(rows), nil, nil); err != nil {
		t.Fatal(err)
	}
	for p, ids := range want {
		if !slices.Equal(tr.order[p], ids) {
			t.Errorf("pairing %d delivered in order %v, want %v", p, tr.order[p], ids)
		}
	}
	stats, err := st.QueueStats(ctx)
	if err != nil || stats.Pending[core.ToDiscord] != 0 || stats.InFlight[core.ToDiscord] != 0 {
		t.Fatalf("after the run: %+v, %v; want nothing left", stats, err)
	}
}

// TestClaimConcurrentLateOlderRows enqueues rows older than the ones being
// delivered while workers claim: such a row becomes its pairing's head while
// another row of the pairing may be in flight or being claimed by a worker
// that saw the old head. A pairing must still never have two rows out, and
// Claim must not fail on that race.
func TestClaimConcurrentLateOlderRows(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	const pairings, perPairing, late, workers = 4, 40, 40, 4
	var ps []int64
	for i := range pairings {
		ps = append(ps, mustPair(t, st, fmt.Sprint("c", i)).ID)
	}
	for k := range perPairing {
		for i, p := range ps {
			enqueue(t, st, core.OutboxRow{Direction: core.ToDiscord, SourceID: fmt.Sprintf("R-%d-%d", i, k), PairingID: p, SourceTime: at(1000 + k)})
		}
	}
	ctx := ctxT(t)
	lateRow := func(k int) core.OutboxRow {
		return core.OutboxRow{Direction: core.ToDiscord, SourceID: fmt.Sprint("late-", k), PairingID: ps[k%pairings], SourceTime: at(k)}
	}
	tr := newTracker()

	// Half of the late rows (even k) land while a row of their pairing is out:
	// the worker holding it enqueues one on every spacing-th row of the pairing
	// it gets (the first perPairing come for sure, so every one is enqueued),
	// and claims again in that same window, which must hold the late row back.
	var mu sync.Mutex
	inWindow := map[int64][]int{} // pairing → even k still to enqueue
	seen := map[int64]int{}       // pairing → its rows handed out so far
	most := 0
	for k := 0; k < late; k += 2 {
		p := ps[k%pairings]
		inWindow[p] = append(inWindow[p], k)
		most = max(most, len(inWindow[p]))
	}
	spacing := perPairing / most
	sending := func(out []core.OutboxRow) ([]core.OutboxRow, error) {
		var ks []int
		mu.Lock()
		for _, m := range out {
			p := m.PairingID
			if seen[p]%spacing == 0 && len(inWindow[p]) > 0 {
				ks = append(ks, inWindow[p][0])
				inWindow[p] = inWindow[p][1:]
			}
			seen[p]++
		}
		mu.Unlock()
		if len(ks) == 0 {
			return nil, nil
		}
		for _, k := range ks {
			if _, _, err := st.Enqueue(ctx, lateRow(k)); err != nil {
				return nil, fmt.Errorf("late enqueue in the window: %w", err)
			}
		}
		tr.notify()
		return st.Claim(ctx, core.ToDiscord, 3, time.Minute)
	}

	// The other half (odd k) land at any moment, also while another worker is
	// claiming the pairing's previous head: one after every spread rows handed
	// out, woken by the workers' progress.
	const spread = pairings * perPairing / (late / 2)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var err error
		defer func() { done <- err }()
		for j, k := 0, 1; k < late; j, k = j+1, k+2 {
			for {
				changed := tr.changes()
				if tr.count() >= j*spread {
					break
				}
				select {
				case <-changed:
				case <-ctx.Done():
					err = ctx.Err()
					close(stop)
					return
				}
			}
			if _, _, err = st.Enqueue(ctx, lateRow(k)); err != nil {
				close(stop)
				return
			}
			tr.notify()
		}
	}()
	if err := work(t, st, tr, workers, pairings*perPairing+late, sending, stop); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("late enqueue: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for p, ks := range inWindow {
		if len(ks) > 0 {
			t.Errorf("pairing %d: late rows %v never enqueued while a row of it was out", p, ks)
		}
	}
}

// TestClaimRaceWithOlderEnqueue starts, many times over, two claimers and the
// enqueue of a row older than the pairing's pending head at the same moment,
// so that one claimer's snapshot has the old head and the other's the new
// one. Each round must end with at most one row of the pairing in flight and
// no Claim error.
func TestClaimRaceWithOlderEnqueue(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c1")
	const rounds = 300
	for round := range rounds {
		enqueue(t, st, core.OutboxRow{SourceID: fmt.Sprint("head-", round), PairingID: p.ID, SourceTime: at(10)})
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, 3)
		wg.Go(func() {
			<-start
			_, _, errs[0] = st.Enqueue(ctx, core.OutboxRow{Direction: core.ToResonite, SourceID: fmt.Sprint("older-", round), PairingID: p.ID, SourceTime: at(1)})
		})
		for i := 1; i <= 2; i++ {
			wg.Go(func() {
				<-start
				_, errs[i] = st.Claim(ctx, core.ToResonite, 10, time.Minute)
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var out int
		if err := st.Pool().QueryRow(ctx, `select count(*) from relay_messages where state = 'in_flight'`).Scan(&out); err != nil {
			t.Fatal(err)
		}
		if out > 1 {
			t.Fatalf("round %d: %d rows of one pairing in flight", round, out)
		}
		mustExec(t, st, `update relay_messages set state = 'delivered', lease_until = null where state <> 'delivered'`)
	}
}

func TestRetryBackoff(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c1")

	tests := []struct {
		before int           // attempts already spent
		delay  time.Duration // un-jittered delay of attempt before+1
	}{
		{0, time.Second},
		{1, 2 * time.Second},
		{4, 16 * time.Second},
		{9, 512 * time.Second}, // +20 % would pass the cap
		{10, 10 * time.Minute}, // 1024 s, capped
		{40, 10 * time.Minute}, // far past the cap, no overflow
		{1 << 30, 10 * time.Minute},
	}
	var delays []time.Duration
	for i, tt := range tests {
		id := enqueue(t, st, core.OutboxRow{SourceID: fmt.Sprint("r", i), PairingID: p.ID})
		mustExec(t, st, `update relay_messages set attempts = $2 where id = $1`, id, tt.before)
		if i%2 == 0 { // from in flight, and from pending
			mustExec(t, st, `update relay_messages set state = 'in_flight', lease_until = now() + interval '1 minute' where id = $1`, id)
		}
		next, err := st.Retry(ctx, id, fmt.Sprint("timeout ", i))
		if err != nil {
			t.Fatalf("Retry after %d attempts: %v", tt.before, err)
		}
		m := message(t, st, id)
		// One statement: updated_at is the now() the delay was added to.
		d := m.NextAttemptAt.Sub(m.UpdatedAt)
		lo := time.Duration(float64(tt.delay) * 0.8)
		hi := min(time.Duration(float64(tt.delay)*1.2), 10*time.Minute)
		if d < lo || d > hi {
			t.Errorf("attempt %d: delay %v, want within [%v, %v]", tt.before+1, d, lo, hi)
		}
		if !next.Equal(m.NextAttemptAt) || m.Attempts != tt.before+1 || m.State != core.StatePending ||
			m.LastError != fmt.Sprint("timeout ", i) {
			t.Errorf("attempt %d: Retry returned %v, row %+v; want pending, attempts %d, the error kept", tt.before+1, next, m, tt.before+1)
		}
		delays = append(delays, d)
	}
	// Jitter: ten first retries do not all wait the same.
	seen := map[time.Duration]bool{}
	for i := range 10 {
		id := enqueue(t, st, core.OutboxRow{SourceID: fmt.Sprint("j", i), PairingID: p.ID})
		if _, err := st.Retry(ctx, id, "x"); err != nil {
			t.Fatal(err)
		}
		m := message(t, st, id)
		seen[m.NextAttemptAt.Sub(m.UpdatedAt)] = true
	}
	if len(seen) < 2 {
		t.Fatalf("ten first retries all wait %v: no jitter", delays[0])
	}
}

func TestPostponeAndFail(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c1")

	id := enqueue(t, st, core.OutboxRow{SourceID: "a", PairingID: p.ID})
	claim(t, st, core.ToResonite, 1)
	until := time.Now().Add(90 * time.Second).Round(time.Microsecond)
	if err := st.Postpone(ctx, id, until); err != nil {
		t.Fatal(err)
	}
	m := message(t, st, id)
	if m.State != core.StatePending || m.Attempts != 0 || !m.NextAttemptAt.Equal(until) {
		t.Fatalf("postponed row = %+v; want pending, no attempt spent, due at %v", m, until)
	}
	if got := claim(t, st, core.ToResonite, 1); len(got) != 0 {
		t.Fatalf("claimed postponed row: %v", got)
	}
	if due, ok, err := st.NextDue(ctx, core.ToResonite); err != nil || !ok || !due.Equal(until) {
		t.Fatalf("NextDue = %v, %v, %v; want %v", due, ok, err, until)
	}

	if err := st.Fail(ctx, id, "contact blocked us"); err != nil {
		t.Fatal(err)
	}
	if m := message(t, st, id); m.State != core.StateFailed || m.LastError != "contact blocked us" {
		t.Fatalf("failed row = %+v", m)
	}
}

func TestSettleFinishedOrMissingRow(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c1")
	delivered := enqueue(t, st, core.OutboxRow{SourceID: "d", PairingID: p.ID})
	deliver(t, st, delivered)
	failed := enqueue(t, st, core.OutboxRow{SourceID: "f", PairingID: p.ID})
	if err := st.Fail(ctx, failed, "gone"); err != nil {
		t.Fatal(err)
	}

	ops := map[string]func(id int64) error{
		"Retry":    func(id int64) error { _, err := st.Retry(ctx, id, "again"); return err },
		"Postpone": func(id int64) error { return st.Postpone(ctx, id, time.Now().Add(time.Hour)) },
		"Fail":     func(id int64) error { return st.Fail(ctx, id, "again") },
	}
	rows := []struct {
		name string
		id   int64
		want error
	}{
		{"delivered", delivered, core.ErrConflict},
		{"failed", failed, core.ErrConflict},
		{"missing", failed + 1000, core.ErrNotFound},
	}
	for name, op := range ops {
		for _, r := range rows {
			if err := op(r.id); !errors.Is(err, r.want) {
				t.Errorf("%s on a %s row = %v, want %v", name, r.name, err, r.want)
			}
		}
	}
	if m := message(t, st, delivered); m.State != core.StateDelivered || m.Attempts != 0 || m.LastError != "" {
		t.Fatalf("refused operations changed the delivered row: %+v", m)
	}
	if m := message(t, st, failed); m.State != core.StateFailed || m.LastError != "gone" {
		t.Fatalf("refused operations changed the failed row: %+v", m)
	}
	if err := st.MarkDelivered(ctx, failed+1000, "x"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("MarkDelivered on a missing row = %v, want ErrNotFound", err)
	}
}

func TestMarkDelivered(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)

	tests := []struct {
		name       string
		enqueued   string // target id given at enqueue
		claimFirst bool
		marks      []string
		wantTarget string
	}{
		{"in flight, target on delivery", "", true, []string{"D-1"}, "D-1"},
		{"pending, never claimed", "", false, []string{"D-2"}, "D-2"},
		{"target from enqueue kept", "MSG-3", false, []string{"MSG-3"}, "MSG-3"},
		{"target from enqueue wins over another", "MSG-4", true, []string{"D-other"}, "MSG-4"},
		{"marked twice keeps the first target", "", true, []string{"D-5", "D-5b"}, "D-5"},
		{"empty target stores none", "", false, []string{""}, ""},
		{"empty target after a real one", "", true, []string{"D-7", ""}, "D-7"},
	}
	for i, tt := range tests {
		dir := core.ToDiscord
		pairing := mustPair(t, st, fmt.Sprint("m", i)) // its own pairing, so each row is a head
		id := enqueue(t, st, core.OutboxRow{Direction: dir, SourceID: fmt.Sprint("s", i), PairingID: pairing.ID, TargetID: tt.enqueued})
		if tt.claimFirst {
			if got := claim(t, st, dir, 1); !slices.Equal(got, []int64{id}) {
				t.Fatalf("%s: claimed %v, want %d", tt.name, got, id)
			}
		}
		var first core.OutboxRow
		for j, target := range tt.marks {
			if err := st.MarkDelivered(ctx, id, target); err != nil {
				t.Fatalf("%s: MarkDelivered: %v", tt.name, err)
			}
			if j == 0 {
				first = message(t, st, id)
			}
		}
		m := message(t, st, id)
		if m.State != core.StateDelivered || m.TargetID != tt.wantTarget || m.DeliveredAt == nil {
			t.Errorf("%s: row = %+v; want delivered as %q", tt.name, m, tt.wantTarget)
		}
		if !m.UpdatedAt.Equal(first.UpdatedAt) || !m.DeliveredAt.Equal(*first.DeliveredAt) {
			t.Errorf("%s: marking again moved updated_at/delivered_at %v/%v → %v/%v", tt.name, first.UpdatedAt, *first.DeliveredAt, m.UpdatedAt, *m.DeliveredAt)
		}
		if tt.wantTarget != "" {
			if got, err := st.MessageByTarget(ctx, dir, tt.wantTarget); err != nil || got.ID != id {
				t.Errorf("%s: MessageByTarget(%s) = %d, %v; want %d", tt.name, tt.wantTarget, got.ID, err, id)
			}
		}
	}
}

func TestMessageLookups(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c1")
	toR := enqueue(t, st, core.OutboxRow{Direction: core.ToResonite, SourceID: "111", PairingID: p.ID, TargetID: "MSG-111"})
	toD := enqueue(t, st, core.OutboxRow{Direction: core.ToDiscord, SourceID: "MSG-9:1", PairingID: p.ID})
	// Two Resonite messages posted as one Discord message (coalesced).
	c1 := enqueue(t, st, core.OutboxRow{Direction: core.ToDiscord, SourceID: "MSG-10:1", PairingID: p.ID, SourceTime: at(1)})
	c2 := enqueue(t, st, core.OutboxRow{Direction: core.ToDiscord, SourceID: "MSG-11:1", PairingID: p.ID, SourceTime: at(2)})
	deliver(t, st, c1)
	if err := st.MarkDelivered(ctx, c2, "target-"+fmt.Sprint(c1)); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		lookup func() (core.OutboxRow, error)
		want   int64 // 0: ErrNotFound
	}{
		{"by source", func() (core.OutboxRow, error) { return st.MessageBySource(ctx, core.ToResonite, "111") }, toR},
		{"by source, other direction", func() (core.OutboxRow, error) { return st.MessageBySource(ctx, core.ToDiscord, "111") }, 0},
		{"by source, to_discord", func() (core.OutboxRow, error) { return st.MessageBySource(ctx, core.ToDiscord, "MSG-9:1") }, toD},
		{"by unknown source", func() (core.OutboxRow, error) { return st.MessageBySource(ctx, core.ToResonite, "nope") }, 0},
		{"by target while still pending", func() (core.OutboxRow, error) { return st.MessageByTarget(ctx, core.ToResonite, "MSG-111") }, toR},
		{"by target, other direction", func() (core.OutboxRow, error) { return st.MessageByTarget(ctx, core.ToDiscord, "MSG-111") }, 0},
		{"by shared target: the newest", func() (core.OutboxRow, error) {
			return st.MessageByTarget(ctx, core.ToDiscord, "target-"+fmt.Sprint(c1))
		}, c2},
		{"by unknown target", func() (core.OutboxRow, error) { return st.MessageByTarget(ctx, core.ToResonite, "MSG-0") }, 0},
		{"by id", func() (core.OutboxRow, error) { return st.MessageByID(ctx, toD) }, toD},
		{"by unknown id", func() (core.OutboxRow, error) { return st.MessageByID(ctx, c2+1000) }, 0},
	}
	for _, tt := range tests {
		m, err := tt.lookup()
		switch {
		case tt.want == 0 && !errors.Is(err, core.ErrNotFound):
			t.Errorf("%s = %+v, %v; want ErrNotFound", tt.name, m, err)
		case tt.want != 0 && (err != nil || m.ID != tt.want):
			t.Errorf("%s = row %d, %v; want row %d", tt.name, m.ID, err, tt.want)
		}
	}
	if m := message(t, st, toR); m.State != core.StatePending || m.SourceID != "111" || m.Direction != core.ToResonite {
		t.Fatalf("row read back = %+v", m)
	}
}

func TestRescueExpired(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p1, p2 := mustPair(t, st, "c1"), mustPair(t, st, "c2")
	expired := enqueue(t, st, core.OutboxRow{SourceID: "e", PairingID: p1.ID})
	live := enqueue(t, st, core.OutboxRow{SourceID: "l", PairingID: p2.ID})
	mustExec(t, st, `update relay_messages set attempts = 2 where id = $1`, expired)
	claim(t, st, core.ToResonite, 10)
	mustExec(t, st, `update relay_messages set lease_until = now() - interval '1 second' where id = $1`, expired)

	n, err := st.RescueExpired(ctx)
	if err != nil || n != 1 {
		t.Fatalf("RescueExpired = %d, %v; want 1", n, err)
	}
	m := message(t, st, expired)
	if m.State != core.StatePending || m.Attempts != 2 || m.NextAttemptAt.After(m.UpdatedAt) {
		t.Fatalf("rescued row = %+v; want pending, due now, attempts unchanged", m)
	}
	if m := message(t, st, live); m.State != core.StateInFlight {
		t.Fatalf("row with a live lease = %s, want still in flight", m.State)
	}
	if got := claim(t, st, core.ToResonite, 10); !slices.Equal(got, []int64{expired}) {
		t.Fatalf("after rescue claimed %v, want %d again", got, expired)
	}
	if n, err := st.RescueExpired(ctx); err != nil || n != 0 {
		t.Fatalf("second RescueExpired = %d, %v; want 0", n, err)
	}
}

func TestRescueExpiredTinyLease(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c1")
	id := enqueue(t, st, core.OutboxRow{SourceID: "a", PairingID: p.ID})
	if _, err := st.Claim(ctx, core.ToResonite, 1, time.Microsecond); err != nil {
		t.Fatal(err)
	}
	// The lease is 1 µs from the claim's now() (not rounded away to nothing), and the
	// server's own clock says when it is over: wait for exactly that, then one rescue.
	var lease time.Duration
	if err := st.Pool().QueryRow(ctx, `select lease_until - updated_at from relay_messages where id = $1`, id).Scan(&lease); err != nil || lease != time.Microsecond {
		t.Fatalf("lease stored as %v, %v; want 1µs", lease, err)
	}
	mustExec(t, st, `select pg_sleep_until(lease_until + interval '1 microsecond') from relay_messages where id = $1`, id)
	if n, err := st.RescueExpired(ctx); err != nil || n != 1 {
		t.Fatalf("RescueExpired after the 1 µs lease ran out = %d, %v; want 1", n, err)
	}
	if m := message(t, st, id); m.State != core.StatePending || m.Attempts != 0 {
		t.Fatalf("rescued row = %+v", m)
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c1")
	const olderThan = time.Hour // rows go entirely after IDMapRetentionFactor hours

	type row struct {
		name         string
		state        core.State
		age          time.Duration
		wantGone     bool
		wantCleared  bool
		id           int64
		payloadAfter string
	}
	rows := []*row{
		{name: "ancient delivered, its source after the catch-up cursor", state: core.StateDelivered, age: 100 * time.Hour, wantCleared: true},
		{name: "fresh delivered", state: core.StateDelivered, age: time.Minute},
		{name: "old delivered", state: core.StateDelivered, age: 2 * time.Hour, wantCleared: true},
		{name: "ancient delivered", state: core.StateDelivered, age: store.IDMapRetentionFactor*time.Hour + time.Minute, wantGone: true},
		{name: "old failed", state: core.StateFailed, age: 2 * time.Hour, wantCleared: true},
		{name: "ancient failed", state: core.StateFailed, age: 100 * time.Hour, wantGone: true},
		{name: "ancient pending", state: core.StatePending, age: 100 * time.Hour},
		{name: "ancient in flight", state: core.StateInFlight, age: 100 * time.Hour},
	}
	// Discord message ids 1000… are behind the pairing's cursor (2000), except the first row's.
	mustExec(t, st, `insert into discord_cursors (pairing_id, message_id) values ($1, '2000')`, p.ID)
	for i, r := range rows {
		src := fmt.Sprint(1000 + i)
		if i == 0 {
			src = "99999"
		}
		r.id = enqueue(t, st, core.OutboxRow{SourceID: src, PairingID: p.ID, Payload: []byte(`{"n":1}`)})
		mustExec(t, st, `update relay_messages set state = $2, last_error = 'err', target_id = 'T-'||id,
			updated_at = now() - $3::interval where id = $1`, r.id, r.state, r.age)
	}
	n, err := st.Prune(ctx, olderThan)
	if err != nil || n != 5 {
		t.Fatalf("Prune = %d, %v; want 5 rows touched", n, err)
	}
	for _, r := range rows {
		m, err := st.MessageByID(ctx, r.id)
		switch {
		case r.wantGone:
			if !errors.Is(err, core.ErrNotFound) {
				t.Errorf("%s: still there (%v)", r.name, err)
			}
		case err != nil:
			t.Errorf("%s: %v", r.name, err)
		case r.wantCleared && (m.Payload != nil || m.LastError != ""):
			t.Errorf("%s: payload %q, error %q; want both cleared", r.name, m.Payload, m.LastError)
		case r.wantCleared:
			// The id map survives the payload.
			if got, err := st.MessageByTarget(ctx, core.ToResonite, m.TargetID); err != nil || got.ID != r.id {
				t.Errorf("%s: MessageByTarget after clearing = %d, %v", r.name, got.ID, err)
			}
		case !r.wantCleared && (string(m.Payload) != `{"n":1}` || m.LastError != "err" || m.State != r.state):
			t.Errorf("%s: row = %+v; want untouched", r.name, m)
		}
	}
	if n, err := st.Prune(ctx, olderThan); err != nil || n != 0 {
		t.Fatalf("second Prune = %d, %v; want 0", n, err)
	}
	// A retention so long that ×IDMapRetentionFactor overflows (to a negative
	// age, for 100 years) must prune nothing.
	if n, err := st.Prune(ctx, 100*365*24*time.Hour); err != nil || n != 0 {
		t.Fatalf("Prune(100 years) = %d, %v; want 0", n, err)
	}
	for _, bad := range []time.Duration{0, -time.Hour} {
		if _, err := st.Prune(ctx, bad); err == nil {
			t.Errorf("Prune(%v) accepted", bad)
		}
	}
}

func TestQueueStats(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	empty, err := st.QueueStats(ctx)
	if err != nil || empty.Pending[core.ToResonite] != 0 || empty.LastError != "" || empty.LastErrorAt != nil {
		t.Fatalf("QueueStats of an empty outbox = %+v, %v", empty, err)
	}

	var ps []int64
	for i := range 4 {
		ps = append(ps, mustPair(t, st, fmt.Sprint("c", i)).ID)
	}
	// to_resonite: 2 in flight (heads of p0, p1), 3 pending, 1 failed, 1 delivered.
	for i, p := range []int64{ps[0], ps[0], ps[1], ps[1], ps[2]} {
		enqueue(t, st, core.OutboxRow{Direction: core.ToResonite, SourceID: fmt.Sprint("r", i), PairingID: p, SourceTime: at(i)})
	}
	claimed := claim(t, st, core.ToResonite, 2)
	f := enqueue(t, st, core.OutboxRow{Direction: core.ToResonite, SourceID: "rf", PairingID: ps[3]})
	if err := st.Fail(ctx, f, "older error"); err != nil {
		t.Fatal(err)
	}
	deliver(t, st, enqueue(t, st, core.OutboxRow{Direction: core.ToResonite, SourceID: "rd", PairingID: ps[3]}))
	// to_discord: 1 pending that failed an attempt, most recently.
	d := enqueue(t, st, core.OutboxRow{Direction: core.ToDiscord, SourceID: "d", PairingID: ps[0]})
	mustExec(t, st, `update relay_messages set updated_at = now() - interval '1 minute' where id = $1`, f)
	if _, err := st.Retry(ctx, d, "429 rate limited"); err != nil {
		t.Fatal(err)
	}

	got, err := st.QueueStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]int{ // state → {to_resonite, to_discord}
		"pending":   {5 - len(claimed), 1},
		"in_flight": {len(claimed), 0},
		"failed":    {1, 0},
	}
	for state, counts := range map[string]map[core.Direction]int{"pending": got.Pending, "in_flight": got.InFlight, "failed": got.Failed} {
		if counts[core.ToResonite] != want[state][0] || counts[core.ToDiscord] != want[state][1] {
			t.Errorf("%s = %v, want to_resonite %d, to_discord %d", state, counts, want[state][0], want[state][1])
		}
	}
	if len(claimed) != 2 {
		t.Errorf("claimed %v, want the heads of two pairings", claimed)
	}
	if got.LastError != "429 rate limited" || got.LastErrorAt == nil || !got.LastErrorAt.Equal(message(t, st, d).UpdatedAt) {
		t.Errorf("last error = %q at %v; want the retry's error at its time", got.LastError, got.LastErrorAt)
	}
}

func TestNextDue(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p1, p2 := mustPair(t, st, "c1"), mustPair(t, st, "c2")
	if _, ok, err := st.NextDue(ctx, core.ToResonite); err != nil || ok {
		t.Fatalf("NextDue of an empty outbox = %v, %v; want none", ok, err)
	}
	now := time.Now().Round(time.Microsecond)
	inHour, inMinute := now.Add(time.Hour), now.Add(time.Minute)
	head := enqueue(t, st, core.OutboxRow{SourceID: "h", PairingID: p1.ID, SourceTime: at(1), NextAttemptAt: inHour})
	// Due sooner, but held back behind the head: not a reason to wake up.
	enqueue(t, st, core.OutboxRow{SourceID: "b", PairingID: p1.ID, SourceTime: at(2), NextAttemptAt: now})
	enqueue(t, st, core.OutboxRow{Direction: core.ToDiscord, SourceID: "d", PairingID: p1.ID, NextAttemptAt: now})

	steps := []struct {
		name string
		do   func()
		want time.Time // zero: none
	}{
		{"head not due yet", func() {}, inHour},
		{"another pairing due sooner", func() {
			enqueue(t, st, core.OutboxRow{SourceID: "o", PairingID: p2.ID, NextAttemptAt: inMinute})
		}, inMinute},
		{"that pairing's head in flight", func() {
			mustExec(t, st, `update relay_messages set next_attempt_at = now() - interval '1 second' where source_id = 'o'`)
			claim(t, st, core.ToResonite, 1)
		}, inHour},
		{"head failed", func() {
			if err := st.Fail(ctx, head, "x"); err != nil {
				t.Fatal(err)
			}
		}, now},
		{"all settled", func() {
			mustExec(t, st, `update relay_messages set state = 'delivered' where direction = 'to_resonite'`)
		}, time.Time{}},
	}
	for _, s := range steps {
		s.do()
		due, ok, err := st.NextDue(ctx, core.ToResonite)
		if err != nil || ok != !s.want.IsZero() || (ok && !due.Equal(s.want)) {
			t.Fatalf("%s: NextDue = %v, %v, %v; want %v", s.name, due, ok, err, s.want)
		}
	}
}

func TestDeletePairingTakesItsRows(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	gone, kept := mustPair(t, st, "c1"), mustPair(t, st, "c2")
	for i, p := range []int64{gone.ID, gone.ID, kept.ID} {
		enqueue(t, st, core.OutboxRow{SourceID: fmt.Sprint("m", i), PairingID: p})
	}
	claim(t, st, core.ToResonite, 10) // an in-flight row goes too
	if _, err := st.DeletePairings(ctx, "c1", ""); err != nil {
		t.Fatal(err)
	}
	var left []string
	rows, err := st.Pool().Query(ctx, `select source_id from relay_messages order by id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		left = append(left, s)
	}
	if err := rows.Err(); err != nil || !slices.Equal(left, []string{"m2"}) {
		t.Fatalf("rows left after unpairing = %v, %v; want only the other pairing's m2", left, err)
	}
	if _, _, err := st.Enqueue(ctx, core.OutboxRow{Direction: core.ToResonite, SourceID: "m9", PairingID: gone.ID}); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("Enqueue to a deleted pairing = %v, want ErrNotFound", err)
	}
}

// TestUnpairWhileClaiming: removing a pairing while a claim of its messages is between its two
// steps (the pairing's claim lock taken, its rows not yet in flight) waits for the claim instead
// of deadlocking with it (40P01: an /unlink or a withdrawal failed under load).
func TestUnpairWhileClaiming(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		remove func(context.Context, *store.Store, core.Pairing) error
	}{
		{"DeletePairings", func(ctx context.Context, st *store.Store, p core.Pairing) error {
			_, err := st.DeletePairings(ctx, p.ChannelID, "")
			return err
		}},
		{"WithdrawConsent", func(ctx context.Context, st *store.Store, p core.Pairing) error {
			_, err := st.WithdrawConsent(ctx, p.ContactID)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			st := storetest.New(t)
			p := mustPair(t, st, "c-unpair")
			for i := range 3 {
				enqueue(t, st, core.OutboxRow{SourceID: fmt.Sprint("m", i), PairingID: p.ID})
			}
			claimer, err := st.Pool().Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = claimer.Rollback(ctx) }()
			// ClaimBatch's first step: the pairing's claim lock.
			if _, err := claimer.Exec(ctx, `select 1 from relay_claims where pairing_id = $1 for update`, p.ID); err != nil {
				t.Fatal(err)
			}
			removed := make(chan error, 1)
			go func() { removed <- tc.remove(ctx, st, p) }()
			waitForLockWaiter(t, st)
			// Its second step: the pairing's rows go in flight.
			if _, err := claimer.Exec(ctx, `update relay_messages set state = 'in_flight', lease_until = now() + interval '1 minute'
				where pairing_id = $1`, p.ID); err != nil {
				t.Fatalf("the claim, with the removal waiting: %v", err)
			}
			if err := claimer.Commit(ctx); err != nil {
				t.Fatalf("committing the claim: %v", err)
			}
			if err := <-removed; err != nil {
				t.Fatalf("removing the pairing while it was being claimed: %v", err)
			}
			var left int
			if err := st.Pool().QueryRow(ctx, `select count(*) from relay_messages`).Scan(&left); err != nil || left != 0 {
				t.Fatalf("%d rows left (%v), want the pairing's rows gone with it", left, err)
			}
		})
	}
}

// waitForLockWaiter returns once a session of st's database waits for a row lock.
func waitForLockWaiter(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := ctxT(t)
	for {
		var n int
		if err := st.Pool().QueryRow(ctx, `select count(*) from pg_stat_activity
			where datname = current_database() and wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatalf("watching for a session waiting on a lock: %v", err)
		}
		if n > 0 {
			return
		}
	}
}

// TestClaimsCountEveryTake: the bridge checks the other side before redelivering a row that was
// taken before (a crash or a timeout may have delivered it without the outcome being stored).
func TestClaimsCountEveryTake(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	p := mustPair(t, st, "c-claims")
	id := enqueue(t, st, core.OutboxRow{SourceID: "claims-1", PairingID: p.ID, SourceTime: at(1)})
	if m := message(t, st, id); m.Claims != 0 {
		t.Fatalf("a new row has Claims=%d", m.Claims)
	}
	claim(t, st, core.ToResonite, 1)
	if m := message(t, st, id); m.Claims != 1 {
		t.Errorf("after the first claim Claims=%d, want 1", m.Claims)
	}
	if err := st.Postpone(ctxT(t), id, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	claim(t, st, core.ToResonite, 1)
	// A crash: the next process takes every in-flight row back.
	lock, err := st.AcquireInstanceLock(ctxT(t), time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release(ctxT(t))
	if n, err := st.RescueAllInFlight(ctxT(t), lock); err != nil || n != 1 {
		t.Fatalf("RescueAllInFlight = %d, %v; want the one row", n, err)
	}
	msgs, err := st.Claim(ctxT(t), core.ToResonite, 1, time.Minute)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Claim after the rescue = %v, %v", msgs, err)
	}
	if msgs[0].Claims != 3 || msgs[0].Attempts != 0 {
		t.Errorf("third claim returned Claims=%d Attempts=%d, want 3 and 0 (postpone and rescue spend no attempt)", msgs[0].Claims, msgs[0].Attempts)
	}
}

// TestInstanceLockIsExclusive: a second daemon waits for the first one's lock, and gets it once
// the first is gone.
func TestInstanceLockIsExclusive(t *testing.T) {
	t.Parallel()
	dsn := storetest.URL(t)
	open := func() *store.Store {
		st, err := store.Open(ctxT(t), dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		if _, err := st.Migrate(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		return st
	}
	first, second := open(), open()
	lock, err := first.AcquireInstanceLock(ctxT(t), 10*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	got := make(chan *store.InstanceLock, 1)
	go func() {
		l, err := second.AcquireInstanceLock(ctxT(t), 10*time.Millisecond, func() { close(waiting) })
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	<-waiting // its first try failed, and it tries again until the lock is free
	select {
	case <-got:
		t.Fatal("the second daemon got the lock while the first held it")
	default:
	}
	// PostgreSQL agrees: one session holds it.
	var holders int
	if err := first.Pool().QueryRow(ctxT(t), `select count(*) from pg_locks
		where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())`).Scan(&holders); err != nil || holders != 1 {
		t.Fatalf("advisory lock holders = %d (%v); want 1", holders, err)
	}
	if err := lock.Check(ctxT(t)); err != nil {
		t.Errorf("Check of a held lock: %v", err)
	}
	lock.Release(ctxT(t))
	l2 := <-got
	if l2 == nil {
		t.Fatal("the second daemon did not get the lock")
	}
	defer l2.Release(ctxT(t))
	if err := lock.Check(ctxT(t)); !errors.Is(err, store.ErrInstanceLockLost) {
		t.Errorf("Check of a released lock = %v, want ErrInstanceLockLost", err)
	}
}

// TestPruneKeepsWhatResoniteCatchUpCanSeeAgain: a to_discord row goes only once its message is
// well behind the Resonite cursor.
func TestPruneKeepsWhatResoniteCatchUpCanSeeAgain(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c-prune-r")
	now := time.Now()
	old := enqueue(t, st, core.OutboxRow{Direction: core.ToDiscord, SourceID: "MSG-old:1", PairingID: p.ID, SourceTime: now.Add(-72 * time.Hour), Payload: []byte(`{}`)})
	recent := enqueue(t, st, core.OutboxRow{Direction: core.ToDiscord, SourceID: "MSG-recent:1", PairingID: p.ID, SourceTime: now.Add(-2 * time.Hour), Payload: []byte(`{}`)})
	mustExec(t, st, `update relay_messages set state = 'delivered', updated_at = now() - interval '100 hours'`)
	if n, err := st.Prune(ctx, time.Hour); err != nil || n != 2 {
		t.Fatalf("Prune without a cursor = %d, %v; want only the two payloads cleared", n, err)
	}
	for _, id := range []int64{old, recent} {
		if _, err := st.MessageByID(ctx, id); err != nil {
			t.Errorf("row %d deleted although no catch-up cursor covers it: %v", id, err)
		}
	}
	if err := st.AdvanceResoniteCursor(ctx, "U-Bridge", now.Add(-3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Prune(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := st.MessageByID(ctx, old); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("the row a day and more behind the cursor is still there: %v", err)
	}
	if _, err := st.MessageByID(ctx, recent); err != nil {
		t.Errorf("the row after the cursor was deleted: %v", err)
	}
}
