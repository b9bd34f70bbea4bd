package store_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/store"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

// claimBatch calls ClaimBatch and returns the source ids per pairing, in the
// order the groups came, checking that groups are contiguous and every row
// is in flight.
func claimBatch(t testing.TB, st *store.Store, maxPairings, maxRows int, skip ...int64) ([]core.OutboxRow, [][]string) {
	t.Helper()
	msgs, err := st.ClaimBatch(ctxT(t), core.ToResonite, maxPairings, maxRows, time.Minute, skip)
	if err != nil {
		t.Fatalf("ClaimBatch(%d, %d, skip %v): %v", maxPairings, maxRows, skip, err)
	}
	return msgs, groups(t, msgs)
}

func groups(t testing.TB, msgs []core.OutboxRow) [][]string {
	t.Helper()
	var out [][]string
	seen := map[int64]bool{}
	for i, m := range msgs {
		if m.State != core.StateInFlight {
			t.Fatalf("claimed row %d is %s, want in_flight", m.ID, m.State)
		}
		if i == 0 || msgs[i-1].PairingID != m.PairingID {
			if seen[m.PairingID] {
				t.Fatalf("pairing %d comes in two groups: %+v", m.PairingID, msgs)
			}
			seen[m.PairingID] = true
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], m.SourceID)
	}
	return out
}

func settleAll(t testing.TB, st *store.Store, msgs []core.OutboxRow) {
	t.Helper()
	s := make([]core.Settlement, len(msgs))
	for i, m := range msgs {
		s[i] = core.Settlement{RowID: m.ID, Kind: core.Delivered, TargetID: "T-" + m.SourceID}
	}
	if err := st.Settle(ctxT(t), s); err != nil {
		t.Fatalf("Settle: %v", err)
	}
}

// openStores opens n migrated Stores on the database at dsn, each with a pool
// of its own of up to maxConns connections, closed when the test ends.
func openStores(t testing.TB, dsn string, n, maxConns int) []*store.Store {
	t.Helper()
	var sts []*store.Store
	for range n {
		st, err := store.Open(ctxT(t), fmt.Sprintf("%s&pool_max_conns=%d", dsn, maxConns), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		if _, err := st.Migrate(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		sts = append(sts, st)
	}
	return sts
}

// TestClaimBatchBoundaries covers where a batch ends and which pairings get one.
func TestClaimBatchBoundaries(t *testing.T) {
	t.Parallel()
	later := time.Now().Add(time.Hour)
	type row struct {
		p      int // pairing 0, 1, 2
		src    string
		sec    int
		notDue bool
		state  core.State // set after enqueue: delivered or failed
	}
	tests := []struct {
		name                 string
		rows                 []row
		maxPairings, maxRows int
		skip                 []int // pairings
		want                 [][]string
	}{
		{"the head and the rows behind it, in order", []row{{0, "c", 3, false, ""}, {0, "a", 1, false, ""}, {0, "b", 2, false, ""}},
			10, 10, nil, [][]string{{"a", "b", "c"}}},
		{"a row not yet due ends the batch", []row{{0, "a", 1, false, ""}, {0, "b", 2, false, ""}, {0, "c", 3, true, ""}, {0, "d", 4, false, ""}},
			10, 10, nil, [][]string{{"a", "b"}}},
		{"a head not yet due holds back its pairing only", []row{{0, "a", 1, true, ""}, {0, "b", 2, false, ""}, {1, "x", 5, false, ""}},
			10, 10, nil, [][]string{{"x"}}},
		{"failed rows block nothing", []row{{0, "a", 1, false, core.StateFailed}, {0, "b", 2, false, ""}, {0, "c", 3, false, core.StateFailed}, {0, "d", 4, false, ""}},
			10, 10, nil, [][]string{{"b", "d"}}},
		{"delivered rows are passed", []row{{0, "a", 1, false, ""}, {0, "b", 2, false, core.StateDelivered}, {0, "c", 3, false, ""}},
			10, 10, nil, [][]string{{"a", "c"}}},
		{"equal source times go by id", []row{{0, "first", 1, false, ""}, {0, "second", 1, false, ""}, {0, "third", 0, false, ""}},
			10, 10, nil, [][]string{{"third", "first", "second"}}},
		{"maxRows", []row{{0, "a", 1, false, ""}, {0, "b", 2, false, ""}, {0, "c", 3, false, ""}, {1, "x", 1, false, ""}, {1, "y", 2, false, ""}},
			10, 2, nil, [][]string{{"x", "y"}, {"a", "b"}}}, // pairing 1 is due first
		{"maxPairings, earliest due heads first", []row{{0, "a", 1, false, ""}, {1, "x", 2, false, ""}, {2, "m", 3, false, ""}},
			2, 10, nil, [][]string{{"m"}, {"x"}}}, // by due time (pairing 2 is due first), not source time
		{"skip fences pairings", []row{{0, "a", 1, false, ""}, {1, "x", 2, false, ""}, {2, "m", 3, false, ""}},
			10, 10, []int{0, 2}, [][]string{{"x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			st := storetest.New(t)
			ps := []int64{mustPair(t, st, "c0").ID, mustPair(t, st, "c1").ID, mustPair(t, st, "c2").ID}
			now := time.Now()
			for i, r := range tt.rows {
				m := core.OutboxRow{SourceID: r.src, PairingID: ps[r.p], SourceTime: at(r.sec),
					// Due times in reverse order of the pairings: pairing 2 is due first.
					NextAttemptAt: now.Add(-time.Duration(r.p+1) * time.Minute).Add(time.Duration(i) * time.Millisecond)}
				if r.notDue {
					m.NextAttemptAt = later
				}
				id := enqueue(t, st, m)
				switch r.state {
				case core.StateDelivered:
					deliver(t, st, id)
				case core.StateFailed:
					if err := st.Fail(ctx, id, "x"); err != nil {
						t.Fatal(err)
					}
				}
			}
			want := tt.want
			var skip []int64
			for _, p := range tt.skip {
				skip = append(skip, ps[p])
			}
			first, got := claimBatch(t, st, tt.maxPairings, tt.maxRows, skip...)
			if !slices.EqualFunc(got, want, slices.Equal) {
				t.Fatalf("claimed %v, want %v", got, want)
			}
			// Nothing more comes of those pairings while their batches are out.
			more, _ := claimBatch(t, st, 10, 10, skip...)
			for _, m := range more {
				if slices.ContainsFunc(first, func(f core.OutboxRow) bool { return f.PairingID == m.PairingID }) {
					t.Fatalf("pairing %d got a second batch (%s) while one is out", m.PairingID, m.SourceID)
				}
			}
		})
	}
}

// TestClaimBatchOlderRowWaitsForTheBatch: a row enqueued with an older source
// time while a batch is out is not claimed until the whole batch is settled,
// then goes first; a partly settled batch still holds its pairing.
func TestClaimBatchOlderRowWaitsForTheBatch(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c1")
	for i, src := range []string{"a", "b", "c", "d"} {
		enqueue(t, st, core.OutboxRow{SourceID: src, PairingID: p.ID, SourceTime: at(10 + i)})
	}
	batch, got := claimBatch(t, st, 10, 3)
	if !slices.EqualFunc(got, [][]string{{"a", "b", "c"}}, slices.Equal) {
		t.Fatalf("claimed %v", got)
	}
	enqueue(t, st, core.OutboxRow{SourceID: "older", PairingID: p.ID, SourceTime: at(1)})
	if _, got := claimBatch(t, st, 10, 10); len(got) != 0 {
		t.Fatalf("claimed %v while a batch is out", got)
	}
	if msgs, err := st.Claim(ctx, core.ToResonite, 10, time.Minute); err != nil || len(msgs) != 0 {
		t.Fatalf("Claim = %v, %v while a batch is out", msgs, err)
	}
	settleAll(t, st, batch[:2])
	if _, got := claimBatch(t, st, 10, 10); len(got) != 0 {
		t.Fatalf("claimed %v while a row of the batch is still out", got)
	}
	if msgs, err := st.Claim(ctx, core.ToResonite, 10, time.Minute); err != nil || len(msgs) != 0 {
		t.Fatalf("Claim = %v, %v while a row of the batch is still out", msgs, err)
	}
	settleAll(t, st, batch[2:])
	if _, got := claimBatch(t, st, 10, 10); !slices.EqualFunc(got, [][]string{{"older", "d"}}, slices.Equal) {
		t.Fatalf("after the batch claimed %v, want the older row first", got)
	}
}

// TestClaimBatchRaceWithOlderEnqueue starts, many times over, two batch
// claimers, a single-row claimer and the enqueue of a row older than the
// pairing's pending rows at the same moment. Each round at most one of them
// may get rows of the pairing, and the older row, when it is not in that
// batch, must come next.
func TestClaimBatchRaceWithOlderEnqueue(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	dsn := storetest.URL(t)
	sts := openStores(t, dsn, 3, 2) // every claimer on a pool of its own: separate connections for sure
	p := mustPair(t, sts[0], "c1")
	const rounds = 150
	for round := range rounds {
		for k := range 3 {
			enqueue(t, sts[0], core.OutboxRow{SourceID: fmt.Sprintf("r%d-%d", round, k), PairingID: p.ID, SourceTime: at(100 + k)})
		}
		older := fmt.Sprint("older-", round)
		start := make(chan struct{})
		errs := make([]error, 4)
		got := make([][]core.OutboxRow, 3)
		var wg sync.WaitGroup
		wg.Go(func() {
			<-start
			_, _, errs[3] = sts[0].Enqueue(ctx, core.OutboxRow{Direction: core.ToResonite, SourceID: older, PairingID: p.ID, SourceTime: at(1)})
		})
		for i := range 3 {
			wg.Go(func() {
				<-start
				if i == 2 {
					got[i], errs[i] = sts[i].Claim(ctx, core.ToResonite, 10, time.Minute)
				} else {
					got[i], errs[i] = sts[i].ClaimBatch(ctx, core.ToResonite, 10, 10, time.Minute, nil)
				}
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var winner []core.OutboxRow
		for _, g := range got {
			if len(g) > 0 {
				if winner != nil {
					t.Fatalf("round %d: two batches of one pairing out: %v and %v", round, groups(t, winner), groups(t, g))
				}
				winner = g
			}
		}
		var out int
		if err := sts[0].Pool().QueryRow(ctx, `select count(*) from relay_messages where state = 'in_flight'`).Scan(&out); err != nil || out != len(winner) {
			t.Fatalf("round %d: %d rows in flight (%v), the claimers got %d", round, out, err, len(winner))
		}
		inBatch := slices.ContainsFunc(winner, func(m core.OutboxRow) bool { return m.SourceID == older })
		settleAll(t, sts[0], winner)
		if !inBatch {
			next, err := sts[1].ClaimBatch(ctx, core.ToResonite, 10, 1, time.Minute, nil)
			if err != nil || len(next) != 1 || next[0].SourceID != older {
				t.Fatalf("round %d: after the batch %v claimed %v, %v; want %s first", round, groups(t, winner), next, err, older)
			}
		}
		mustExec(t, sts[0], `update relay_messages set state = 'delivered', lease_until = null where state <> 'delivered'`)
	}
}

func TestSettle(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	ps := mustPairs(t, st, "c", 6)
	// Pairing 0: a batch of three, the head carrying the other two's text.
	head := enqueue(t, st, core.OutboxRow{SourceID: "head", PairingID: ps[0], SourceTime: at(1)})
	carried1 := enqueue(t, st, core.OutboxRow{SourceID: "carried1", PairingID: ps[0], SourceTime: at(2)})
	carried2 := enqueue(t, st, core.OutboxRow{SourceID: "carried2", PairingID: ps[0], SourceTime: at(3)})
	retried := enqueue(t, st, core.OutboxRow{SourceID: "retried", PairingID: ps[1], SourceTime: at(1)})
	postponed := enqueue(t, st, core.OutboxRow{SourceID: "postponed", PairingID: ps[2], SourceTime: at(1)})
	failed := enqueue(t, st, core.OutboxRow{SourceID: "failed", PairingID: ps[3], SourceTime: at(1)})
	msgs, _ := claimBatch(t, st, 10, 10)
	if len(msgs) != 6 {
		t.Fatalf("claimed %d rows, want 6", len(msgs))
	}
	// Not claimed: a late echo of a pending row, and rows already finished.
	echo := enqueue(t, st, core.OutboxRow{SourceID: "echo", PairingID: ps[4], SourceTime: at(1), NextAttemptAt: time.Now().Add(time.Hour)})
	wasDelivered := enqueue(t, st, core.OutboxRow{SourceID: "was-delivered", PairingID: ps[5], SourceTime: at(1)})
	deliver(t, st, wasDelivered)
	wasFailed := enqueue(t, st, core.OutboxRow{SourceID: "was-failed", PairingID: ps[5], SourceTime: at(2)})
	if err := st.Fail(ctx, wasFailed, "earlier"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, st, `update relay_messages set attempts = 3 where id = $1`, retried)
	before := message(t, st, wasDelivered)
	until := time.Now().Add(time.Hour).Round(time.Microsecond)
	missing := failed + 10_000

	err := st.Settle(ctx, []core.Settlement{
		{RowID: head, Kind: core.Delivered, TargetID: "D-head"},
		{RowID: carried1, Kind: core.Delivered, TargetID: "D-head", CoalescedInto: head},
		{RowID: carried2, Kind: core.Delivered, TargetID: "D-head", CoalescedInto: head},
		{RowID: retried, Kind: core.Retry, Reason: "502"},
		{RowID: postponed, Kind: core.Postpone, Until: until},
		{RowID: failed, Kind: core.Fail, Reason: "blocked"},
		{RowID: echo, Kind: core.Delivered, TargetID: "D-echo"},
		{RowID: wasDelivered, Kind: core.Delivered, TargetID: "D-other"}, // again: accepted, changes nothing
		{RowID: wasFailed, Kind: core.Postpone, Until: until},
		{RowID: missing, Kind: core.Retry, Reason: "x"},
	})
	var se *store.SettleError
	if !errors.As(err, &se) || !errors.Is(err, core.ErrConflict) || !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("Settle = %v; want a *SettleError matching ErrConflict and ErrNotFound", err)
	}
	if want := map[int64]core.State{wasFailed: core.StateFailed, missing: ""}; !mapsEqual(se.Refused, want) {
		t.Fatalf("refused %v, want %v (error %q)", se.Refused, want, err)
	}

	for _, id := range []int64{head, carried1, carried2} {
		m := message(t, st, id)
		wantInto := head
		if id == head {
			wantInto = 0
		}
		if m.State != core.StateDelivered || m.TargetID != "D-head" || m.CoalescedInto != wantInto || m.DeliveredAt == nil {
			t.Errorf("row %s = %+v; want delivered as D-head, coalesced into %d", m.SourceID, m, wantInto)
		}
	}
	m := message(t, st, retried)
	if d := time.Until(m.NextAttemptAt); m.State != core.StatePending || m.Attempts != 4 || m.LastError != "502" ||
		d < 6*time.Second || d > 10*time.Second { // 1 s · 2^3 ± 20 %
		t.Errorf("retried row = %+v (due in %v); want pending, attempt 4, due in 8 s ± 20 %%", m, d)
	}
	if m := message(t, st, postponed); m.State != core.StatePending || m.Attempts != 0 || !m.NextAttemptAt.Equal(until) {
		t.Errorf("postponed row = %+v; want pending until %v, no attempt", m, until)
	}
	if m := message(t, st, failed); m.State != core.StateFailed || m.LastError != "blocked" {
		t.Errorf("failed row = %+v", m)
	}
	if m := message(t, st, echo); m.State != core.StateDelivered || m.TargetID != "D-echo" {
		t.Errorf("late echo row = %+v; want delivered", m)
	}
	if m := message(t, st, wasDelivered); m.TargetID != before.TargetID || !m.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("delivering again changed the row: %+v → %+v", before, m)
	}
	if m := message(t, st, wasFailed); m.State != core.StateFailed || m.LastError != "earlier" {
		t.Errorf("refused postpone changed the failed row: %+v", m)
	}
	stats, err := st.QueueStats(ctx)
	if err != nil || stats.InFlight[core.ToResonite] != 0 {
		t.Errorf("after Settle: %+v, %v; want nothing in flight", stats, err)
	}

	// Malformed calls store nothing.
	fresh := enqueue(t, st, core.OutboxRow{SourceID: "fresh", PairingID: ps[4], SourceTime: at(9)})
	for name, s := range map[string][]core.Settlement{
		"a row twice":            {{RowID: fresh, Kind: core.Fail}, {RowID: fresh, Kind: core.Delivered}},
		"postpone without until": {{RowID: fresh, Kind: core.Fail}, {RowID: postponed, Kind: core.Postpone}},
		"unknown kind":           {{RowID: fresh, Kind: core.Fail}, {RowID: postponed, Kind: 99}},
	} {
		if err := st.Settle(ctx, s); err == nil || errors.Is(err, core.ErrConflict) {
			t.Errorf("Settle with %s = %v; want a plain error", name, err)
		}
		if m := message(t, st, fresh); m.State != core.StatePending {
			t.Errorf("Settle with %s changed a row: %+v", name, m)
		}
	}
	if err := st.Settle(ctx, nil); err != nil {
		t.Errorf("Settle(nil) = %v", err)
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestSetProgress(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c1")
	id := enqueue(t, st, core.OutboxRow{SourceID: "long", PairingID: p.ID, SourceTime: at(1)})
	if err := st.SetProgress(ctx, id, 1, "D-1"); !errors.Is(err, core.ErrConflict) {
		t.Fatalf("SetProgress on a pending row = %v, want ErrConflict", err)
	}
	claimBatch(t, st, 1, 1)
	steps := []struct {
		parts      int
		first      string
		wantParts  int
		wantFirst  string
		wantErrIs  error
		rowID      int64
		afterClaim bool
	}{
		{parts: 1, first: "D-1", wantParts: 1, wantFirst: "D-1"},
		{parts: 2, first: "", wantParts: 2, wantFirst: "D-1"}, // empty keeps the first
		{parts: 3, first: "D-1", wantParts: 3, wantFirst: "D-1"},
	}
	for _, s := range steps {
		if err := st.SetProgress(ctx, id, s.parts, s.first); err != nil {
			t.Fatalf("SetProgress(%d, %q): %v", s.parts, s.first, err)
		}
		if m := message(t, st, id); m.PartsPosted != s.wantParts || m.FirstTargetID != s.wantFirst {
			t.Fatalf("after SetProgress(%d, %q): parts %d, first %q", s.parts, s.first, m.PartsPosted, m.FirstTargetID)
		}
	}
	// The progress survives a retry and comes with the next claim.
	if err := st.Settle(ctx, []core.Settlement{{RowID: id, Kind: core.Postpone, Until: time.Now().Add(-time.Second)}}); err != nil {
		t.Fatal(err)
	}
	msgs, _ := claimBatch(t, st, 1, 1)
	if len(msgs) != 1 || msgs[0].PartsPosted != 3 || msgs[0].FirstTargetID != "D-1" || msgs[0].Claims != 2 {
		t.Fatalf("claimed again: %+v; want parts 3 from D-1, second claim", msgs)
	}
	settleAll(t, st, msgs)
	if err := st.SetProgress(ctx, id, 4, "D-1"); !errors.Is(err, core.ErrConflict) {
		t.Errorf("SetProgress on a delivered row = %v, want ErrConflict", err)
	}
	if err := st.SetProgress(ctx, id+1000, 1, "x"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("SetProgress on a missing row = %v, want ErrNotFound", err)
	}
	if err := st.SetProgress(ctx, id, -1, "x"); err == nil {
		t.Errorf("SetProgress with negative parts = nil")
	}
}

// TestBatchLeaseExpiry: an expired lease returns the whole batch, and the
// rescues leave no claim behind that would hold the pairing.
func TestBatchLeaseExpiry(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p1, p2 := mustPair(t, st, "c1"), mustPair(t, st, "c2")
	for i := range 3 {
		enqueue(t, st, core.OutboxRow{SourceID: fmt.Sprint("a", i), PairingID: p1.ID, SourceTime: at(i)})
		enqueue(t, st, core.OutboxRow{SourceID: fmt.Sprint("b", i), PairingID: p2.ID, SourceTime: at(i)})
	}
	msgs, got := claimBatch(t, st, 10, 10)
	if len(msgs) != 6 || len(got) != 2 {
		t.Fatalf("claimed %v", got)
	}
	if stats, err := st.QueueStats(ctx); err != nil || stats.InFlight[core.ToResonite] != 6 {
		t.Fatalf("QueueStats = %+v, %v; want 6 in flight", stats, err)
	}
	if _, ok, err := st.NextDue(ctx, core.ToResonite); err != nil || ok {
		t.Fatalf("NextDue with both pairings out = %v, %v; want none", ok, err)
	}
	// One row of p1's batch runs out (the batch shares one lease; any row will do).
	mustExec(t, st, `update relay_messages set lease_until = now() - interval '1 second' where source_id = 'a1'`)
	if n, err := st.RescueExpired(ctx); err != nil || n != 3 {
		t.Fatalf("RescueExpired = %d, %v; want p1's whole batch of 3", n, err)
	}
	if _, ok, err := st.NextDue(ctx, core.ToResonite); err != nil || !ok {
		t.Fatalf("NextDue after the rescue = %v, %v; want p1's head", ok, err)
	}
	again, got := claimBatch(t, st, 10, 10)
	if !slices.EqualFunc(got, [][]string{{"a0", "a1", "a2"}}, slices.Equal) {
		t.Fatalf("after the rescue claimed %v, want p1's batch again", got)
	}
	for _, m := range again {
		if m.Claims != 2 || m.Attempts != 0 {
			t.Errorf("reclaimed row %s: claims %d attempts %d; want 2 and 0", m.SourceID, m.Claims, m.Attempts)
		}
	}
	// A restart takes everything back; both pairings can be claimed at once.
	if n, err := st.RescueAllInFlight(ctx, nil); err != nil || n != 6 {
		t.Fatalf("RescueAllInFlight = %d, %v; want 6", n, err)
	}
	if _, got := claimBatch(t, st, 10, 10); len(got) != 2 || len(got[0])+len(got[1]) != 6 {
		t.Fatalf("after RescueAllInFlight claimed %v, want both batches", got)
	}
}

func TestEnqueueBatch(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	p := mustPair(t, st, "c1")
	existing := enqueue(t, st, core.OutboxRow{SourceID: "old", PairingID: p.ID, SourceTime: at(1)})
	before := time.Now()
	rows := []core.OutboxRow{
		{Direction: core.ToResonite, SourceID: "n1", PairingID: p.ID, SourceTime: at(5), TargetID: "MSG-n1", Payload: []byte(`{"x":1}`)},
		{Direction: core.ToResonite, SourceID: "old", PairingID: p.ID, SourceTime: at(9)},
		{Direction: core.ToDiscord, SourceID: "n2", PairingID: p.ID},  // defaults: now, due now
		{Direction: core.ToResonite, SourceID: "n1", PairingID: p.ID}, // repeated in the batch
		{Direction: core.ToResonite, SourceID: "lost", PairingID: p.ID + 1000},
		{Direction: core.ToResonite, SourceID: "n3", PairingID: p.ID, SourceTime: at(5)},
	}
	res, err := st.EnqueueBatch(ctx, rows)
	if !errors.Is(err, core.ErrNotFound) || len(res) != len(rows) {
		t.Fatalf("EnqueueBatch = %v, %v; want results and ErrNotFound for the unknown pairing", res, err)
	}
	if !res[0].Inserted || res[1] != (store.EnqueueResult{ID: existing}) || !res[2].Inserted ||
		res[3] != (store.EnqueueResult{ID: res[0].ID}) || res[4] != (store.EnqueueResult{}) || !res[5].Inserted {
		t.Fatalf("results %+v", res)
	}
	if !(res[0].ID < res[2].ID && res[2].ID < res[5].ID) {
		t.Fatalf("ids %+v do not follow the input order", res)
	}
	m := message(t, st, res[0].ID)
	if m.TargetID != "MSG-n1" || string(m.Payload) != `{"x":1}` || !m.SourceTime.Equal(at(5)) || m.State != core.StatePending {
		t.Fatalf("stored row = %+v", m)
	}
	if m := message(t, st, res[2].ID); m.Direction != core.ToDiscord || m.SourceTime.Before(before.Add(-time.Minute)) || m.Payload != nil {
		t.Fatalf("row with defaults = %+v", m)
	}
	if m := message(t, st, existing); !m.SourceTime.Equal(at(1)) {
		t.Fatalf("the existing row changed: %+v", m)
	}
	// Again: everything is there, nothing new.
	res2, err := st.EnqueueBatch(ctx, rows[:4])
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res2 {
		if r.Inserted || r.ID != res[i].ID {
			t.Errorf("second EnqueueBatch row %d = %+v, want %d not inserted", i, r, res[i].ID)
		}
	}
	for name, bad := range map[string]core.OutboxRow{
		"no direction": {SourceID: "z", PairingID: p.ID},
		"no source id": {Direction: core.ToResonite, PairingID: p.ID},
	} {
		if _, err := st.EnqueueBatch(ctx, []core.OutboxRow{{Direction: core.ToResonite, SourceID: "ok-" + name, PairingID: p.ID}, bad}); err == nil {
			t.Errorf("EnqueueBatch with %s = nil error", name)
		}
		if _, err := st.MessageBySource(ctx, core.ToResonite, "ok-"+name); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("EnqueueBatch with %s stored the valid row: %v", name, err)
		}
	}
	if res, err := st.EnqueueBatch(ctx, nil); err != nil || len(res) != 0 {
		t.Errorf("EnqueueBatch(nil) = %v, %v", res, err)
	}
}
