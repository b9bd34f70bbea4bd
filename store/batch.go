package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// Batched delivery: ClaimBatch hands out runs of rows per pairing, Settle
// stores their outcomes together, EnqueueBatch stores many new rows at once,
// and SetProgress keeps how far a long message got.
//
// One batch in flight per pairing and direction. A row of relay_claims per
// (direction, pairing) (made with the pairing, see migration 002) is the
// pairing's claim lock. ClaimBatch runs two statements in one transaction:
//
//  1. lockPairings picks candidate pairings (head pending and due, nothing in
//     flight, not fenced) from its snapshot and locks their relay_claims rows
//     FOR UPDATE SKIP LOCKED, up to maxPairings;
//  2. claimRuns, on a new snapshot (READ COMMITTED takes one per statement),
//     checks each locked pairing again (nothing in flight; the head and the
//     rows behind it pending and due) and puts the run in flight.
//
// Why this is race-free: rows become in_flight only in step 2 (Claim is
// ClaimBatch too), under the pairing's lock, which is held until commit. A
// claimer gets the lock only after the previous holder committed or rolled
// back, so step 2's snapshot, taken after the lock was granted, contains
// every in-flight row any earlier claimer made: "nothing in flight" is
// exact, and a pairing never has two batches out. Leaving in_flight needs no
// lock (Settle, the single-row methods, RescueExpired and RescueAllInFlight
// only update rows), so nothing ever has to release a claim. A row enqueued
// with an older source_time that step 2's snapshot does not see is simply
// not in the batch; being older than rows in flight it waits (the pairing is
// in flight) and is the head once the batch is settled. The one thing a
// snapshot can still miss is a row of the run changed by a concurrent
// settle between the snapshot and the update (a late Postpone of a rescued
// row): the update re-checks each row on its newest version and may leave
// it out, which would hand out the rows behind it early. Step 2 returns how
// many rows it meant to claim; on a shortfall the transaction is rolled back
// and the claim tried again.
//
// Why not a claim id column with a constraint: "one claim id per pairing
// among in-flight rows" is an exclusion constraint (btree_gist), and rows
// settled one by one would leave a batch without the row that carries it.
// Why not a claims table whose row lives while the batch is out: every way
// out of in_flight would have to delete it, RescueAllInFlight included.

// lockPairings is step 1 of ClaimBatch: $1 direction, $2 maxPairings, $3
// fenced pairing ids. Earliest due heads first.
const lockPairings = `select c.pairing_id from (` + headsOf + `) h
	join relay_claims c on c.direction = $1 and c.pairing_id = h.pairing_id
	where h.next_attempt_at <= now() and h.pairing_id <> all($3::bigint[])
	order by h.next_attempt_at, h.id
	limit $2
	for update of c skip locked`

// claimRuns is step 2 of ClaimBatch: $1 direction, $2 locked pairing ids,
// $3 maxRows, $4 lease. Per pairing, its first $3 open rows in delivery
// order, kept while every row up to and including it is pending and due,
// and only when nothing of the pairing is in flight (an in-flight row may
// sort after pending ones: a row enqueued late with an older source_time).
// The last column is the number of rows meant, for the shortfall check.
const claimRuns = `with run as (
		select o.id as run_id from unnest($2::bigint[]) l (pid)
		cross join lateral (
			select w.id, bool_and(w.state = 'pending' and w.next_attempt_at <= now())
				over (order by w.source_time, w.id) as ok
			from (select m.id, m.state, m.next_attempt_at, m.source_time from relay_messages m
				where m.direction = $1 and m.pairing_id = l.pid and m.state in ('pending', 'in_flight')
				order by m.source_time, m.id
				limit $3) w) o
		where o.ok and not exists (
			select 1 from relay_messages f
			where f.direction = $1 and f.pairing_id = l.pid and f.state = 'in_flight')),
	claimed as (
		update relay_messages r
		set state = 'in_flight', lease_until = now() + $4::interval, updated_at = now(), claims = r.claims + 1
		from run where r.id = run.run_id and r.state = 'pending' and r.next_attempt_at <= now()
		returning ` + messageColumns + `)
	select claimed.*, (select count(*) from run) from claimed`

// errShortRun: claimRuns claimed fewer rows than it meant to; see ClaimBatch.
var errShortRun = errors.New("a row of a run changed while it was claimed")

// ClaimBatch takes, for up to maxPairings pairings of direction dir, a run
// of rows for delivery: the pairing's head (the oldest undelivered row by
// (source_time, id); failed rows do not count) and the rows right behind it
// in that order, as long as each is pending and due, up to maxRows. So a row
// that is not yet due ends the run and no row is ever skipped. A pairing
// takes part only when its head is pending and due, nothing of it is in
// flight, and its id is not in skip (pairings the caller fences). Among
// pairings, the earliest due heads go first. Every claimed row gets state
// in_flight, the lease and one more claim; all in one transaction.
//
// The rows come grouped by pairing, each group in delivery order. A pairing
// never has two batches in flight, also under concurrent ClaimBatch and
// Claim calls and concurrent Enqueue of older rows (see the comment at the
// top of this file): a row enqueued with an older source_time while a batch
// is out waits until every row of the batch is settled, then goes first.
// A batch's rows share their lease, so RescueExpired returns them together.
func (s *Store) ClaimBatch(ctx context.Context, dir core.Direction, maxPairings, maxRows int, lease time.Duration, skip []int64) ([]core.OutboxRow, error) {
	if maxPairings <= 0 || maxRows <= 0 {
		return nil, nil
	}
	if skip == nil {
		skip = []int64{} // <> all(null) is null: nothing would pass
	}
	var (
		msgs []core.OutboxRow
		err  error
	)
	for range claimTries {
		msgs, err = s.claimBatch(ctx, dir, maxPairings, maxRows, lease, skip)
		if err == nil {
			return msgs, nil
		}
		if !errors.Is(err, errShortRun) && !isDeadlock(err) {
			break
		}
	}
	return nil, fmt.Errorf("store: claim %s batches: %w", dir, err)
}

// claimTries bounds the tries of a claim that lost a race (errShortRun, a
// deadlock with a concurrent settle); the next try sees the winner's rows.
const claimTries = 5

func (s *Store) claimBatch(ctx context.Context, dir core.Direction, maxPairings, maxRows int, lease time.Duration, skip []int64) ([]core.OutboxRow, error) {
	var msgs []core.OutboxRow
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		if dir == core.ToResonite {
			// A to_resonite claim commits without waiting for the WAL flush (one flush less on
			// the way of every message to Resonite). One lost in a crash of PostgreSQL leaves its
			// rows pending with the claim not counted, though they may have been sent: claimed
			// again, they go out again under the same id derived from the Discord message,
			// which Resonite keeps once. Nothing reads a to_resonite row's claim count; the
			// redelivery checks of to_discord rows do, so those claims stay synchronous. A
			// settle cannot outlive its claim: WAL is flushed in order.
			b.Queue(asyncCommit)
		}
		b.Queue(lockPairings, dir, maxPairings, skip)
		br := tx.SendBatch(ctx, b)
		var err error
		if dir == core.ToResonite {
			_, err = br.Exec()
		}
		var locked []int64
		if err == nil {
			rows, _ := br.Query()
			locked, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil || len(locked) == 0 {
			return err
		}
		rows, _ := tx.Query(ctx, claimRuns, dir, locked, maxRows, lease)
		var meant int64
		msgs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (core.OutboxRow, error) {
			var m core.OutboxRow
			err := row.Scan(append(messageFields(&m), &meant)...)
			return m, err
		})
		if err != nil {
			return err
		}
		// meant is read with the rows: when none came, nothing was handed out, so nothing
		// can be out of order either.
		if len(msgs) > 0 && int64(len(msgs)) != meant {
			return errShortRun
		}
		rank := make(map[int64]int, len(locked))
		for i, p := range locked {
			rank[p] = i
		}
		slices.SortFunc(msgs, func(a, b core.OutboxRow) int {
			return cmp.Or(cmp.Compare(rank[a.PairingID], rank[b.PairingID]),
				a.SourceTime.Compare(b.SourceTime), cmp.Compare(a.ID, b.ID))
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return msgs, nil
}

// settleSQL applies settlements given as parallel arrays: $1 row ids, $2
// kinds, $3 target ids, $4 coalesced-into ids, $5 reasons, $6 untils, $7
// jitters; $8-$10 the backoff (base seconds, cap, cap seconds). The rules are
// those of MarkDelivered, Retry, Postpone and Fail; it returns the ids it did
// not change.
const settleSQL = `with s (id, kind, target, coalesced, reason, until, jit) as (
		select * from unnest($1::bigint[], $2::int[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[], $7::float8[])),
	done as (
		update relay_messages r set
			state = case s.kind when 1 then 'delivered' when 4 then 'failed' else 'pending' end,
			lease_until = null,
			updated_at = case when s.kind = 1 and r.state = 'delivered' then r.updated_at else now() end,
			target_id = case when s.kind = 1 then coalesce(r.target_id, nullif(s.target, '')) else r.target_id end,
			delivered_at = case when s.kind = 1 then coalesce(r.delivered_at, now()) else r.delivered_at end,
			coalesced_into = case when s.kind = 1 and r.state <> 'delivered'
				then coalesce(r.coalesced_into, nullif(s.coalesced, 0)) else r.coalesced_into end,
			attempts = r.attempts + case when s.kind = 2 then 1 else 0 end,
			last_error = case when s.kind in (2, 4) then s.reason else r.last_error end,
			next_attempt_at = case s.kind
				when 2 then now() + least($9::interval,
					make_interval(secs => least($10::float8, $8::float8 * power(2, least(r.attempts, 30))) * (1 + s.jit)))
				when 3 then s.until
				else r.next_attempt_at end
		from s
		where r.id = s.id and (s.kind = 1 or r.state in ('pending', 'in_flight'))
		returning r.id)
	select s.id from s where s.id not in (select id from done)`

// asyncCommit makes the transaction it runs in commit without waiting for its WAL record to
// reach the disk (synchronous_commit = off for that transaction only). Settle uses it: the
// outcome of a delivery is then lost only if PostgreSQL itself crashes (not on a clean restart,
// not when the daemon dies) within a few hundred milliseconds, and a lost settle leaves the rows
// in flight with their claim counted (claims are committed synchronously), so they come back
// after the lease as rows claimed before, whose redelivery checks (the derived Resonite id; the
// look through the channel's history for an earlier post) keep them from being posted twice.
// WAL is flushed in order, so a later synchronous commit makes every earlier settle durable too.
// New rows (EnqueueBatch) and to_discord claims keep synchronous commits: a lost row is a lost
// message, a lost to_discord claim a redelivery without the check (see claimBatch).
const asyncCommit = `select set_config('synchronous_commit', 'off', true)`

// Settle stores the outcomes of claimed rows, all in one transaction, each
// by the rules of the single-row method of its kind: Delivered as
// MarkDelivered (from any state, so late echoes of pending rows too; the
// first target id and coalesced-into stored win), Retry as Retry (one more
// attempt, the store's backoff), Postpone as Postpone (due at Until, no
// attempt counted), Fail as Fail (with Reason). Retry, Postpone and Fail
// change only pending and in-flight rows. It decides per row: the rows it
// refuses (already delivered or failed, or gone) are named in a
// *SettleError, which matches core.ErrConflict (and core.ErrNotFound when a
// row is gone) with errors.Is, while the others are stored. A settlement that
// is malformed (unknown kind, a row twice, Postpone without Until) fails the
// whole call before anything is stored.
func (s *Store) Settle(ctx context.Context, settlements []core.Settlement) error {
	if len(settlements) == 0 {
		return nil
	}
	n := len(settlements)
	var (
		ids       = make([]int64, n)
		kinds     = make([]int32, n)
		targets   = make([]string, n)
		coalesced = make([]int64, n)
		reasons   = make([]string, n)
		untils    = make([]*time.Time, n)
		jitters   = make([]float64, n)
		seen      = make(map[int64]bool, n)
	)
	for i, st := range settlements {
		if seen[st.RowID] {
			return fmt.Errorf("store: settle: row %d settled twice in one call", st.RowID)
		}
		seen[st.RowID] = true
		switch st.Kind {
		case core.Delivered, core.Retry, core.Fail:
		case core.Postpone:
			if st.Until.IsZero() {
				return fmt.Errorf("store: settle: postpone of row %d without a time", st.RowID)
			}
			untils[i] = &settlements[i].Until
		default:
			return fmt.Errorf("store: settle: row %d: unknown outcome kind %d", st.RowID, st.Kind)
		}
		ids[i], kinds[i], targets[i], coalesced[i], reasons[i] = st.RowID, int32(st.Kind), st.TargetID, st.CoalescedInto, st.Reason
		jitters[i] = jitter * (rand.Float64()*2 - 1)
	}
	var refused []int64
	err := retryDeadlocks(func() error { // two settles of the same rows in another order
		// One round trip, one implicit transaction (a batch ends in one Sync), committed
		// without waiting for the WAL flush: see asyncCommit.
		b := &pgx.Batch{}
		b.Queue(asyncCommit)
		b.Queue(settleSQL, ids, kinds, targets, coalesced, reasons, untils, jitters,
			baseBackoff.Seconds(), maxBackoff, maxBackoff.Seconds())
		br := s.pool.SendBatch(ctx, b)
		_, err := br.Exec()
		if err == nil {
			rows, _ := br.Query()
			refused, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store: settle %d rows: %w", n, err)
	}
	if len(refused) == 0 {
		return nil
	}
	return s.refusal(ctx, refused)
}

// SettleError names the rows Settle refused, with the state each was in
// (empty: the row does not exist).
type SettleError struct {
	Refused map[int64]core.State
}

func (e *SettleError) Error() string {
	ids := slices.Sorted(func(yield func(int64) bool) {
		for id := range e.Refused {
			if !yield(id) {
				return
			}
		}
	})
	parts := make([]string, len(ids))
	for i, id := range ids {
		if st := e.Refused[id]; st == "" {
			parts[i] = fmt.Sprintf("%d (not found)", id)
		} else {
			parts[i] = fmt.Sprintf("%d (already %s)", id, st)
		}
	}
	return "store: settle: refused rows " + strings.Join(parts, ", ")
}

// Unwrap makes errors.Is match core.ErrConflict (a row already delivered or
// failed) and core.ErrNotFound (a row that is gone), whichever apply.
func (e *SettleError) Unwrap() []error {
	var conflict, missing bool
	for _, st := range e.Refused {
		if st == "" {
			missing = true
		} else {
			conflict = true
		}
	}
	var errs []error
	if conflict {
		errs = append(errs, core.ErrConflict)
	}
	if missing {
		errs = append(errs, core.ErrNotFound)
	}
	return errs
}

// refusal reads the states of refused rows for the error, after the fact
// (they are final states, or the row is gone).
func (s *Store) refusal(ctx context.Context, refused []int64) error {
	e := &SettleError{Refused: make(map[int64]core.State, len(refused))}
	for _, id := range refused {
		e.Refused[id] = ""
	}
	rows, _ := s.pool.Query(ctx, `select id, state from relay_messages where id = any($1)`, refused)
	var (
		id    int64
		state core.State
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &state}, func() error {
		e.Refused[id] = state
		return nil
	}); err != nil {
		return fmt.Errorf("store: settle: %d rows refused; reading their states: %w", len(refused), err)
	}
	return e
}

// SetProgress records that partsPosted posts of the in-flight row's message
// are made, the first of them as firstTargetID (empty keeps the one stored),
// so that a retry, even after a crash, goes on from there. One statement: it
// runs after every part. A row that is not in flight is core.ErrConflict,
// one that does not exist core.ErrNotFound.
func (s *Store) SetProgress(ctx context.Context, rowID int64, partsPosted int, firstTargetID string) error {
	if partsPosted < 0 {
		return fmt.Errorf("store: set progress of message %d: negative parts %d", rowID, partsPosted)
	}
	tag, err := s.pool.Exec(ctx, `update relay_messages
		set parts_posted = $2, first_target_id = coalesce(nullif($3, ''), first_target_id), updated_at = now()
		where id = $1 and state = 'in_flight'`, rowID, partsPosted, firstTargetID)
	if err != nil {
		return fmt.Errorf("store: set progress of message %d: %w", rowID, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var state core.State
	if err := s.pool.QueryRow(ctx, `select state from relay_messages where id = $1`, rowID).Scan(&state); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: set progress of message %d: %w", rowID, core.ErrNotFound)
		}
		return fmt.Errorf("store: set progress of message %d: %w", rowID, err)
	}
	return fmt.Errorf("store: set progress of message %d: it is %s, not in flight: %w", rowID, state, core.ErrConflict)
}

// EnqueueResult is what EnqueueBatch did with one row: its id, and whether
// it is new (false: the source id was there already, or its pairing is not).
// It is the bridge's own type, so that the bridge's Store interface needs no
// import of this package.
type EnqueueResult = core.EnqueueResult

// enqueueSQL inserts rows given as parallel arrays ($1 position, $2
// direction, $3 source id, $4 pairing, $5 payload, $6 next attempt, $7
// source time, $8 target id) in the given order, skipping those whose source
// id is there already or whose pairing is not. It returns the positions of
// the rows it inserted with their ids, and those of unknown pairings with id
// 0. The rows it skipped for their source id are looked up afterwards (and
// only when there are any): a join with relay_messages here would read the
// whole table, and would not see rows a concurrent transaction inserted.
const enqueueSQL = `with input as (
		select * from unnest($1::int[], $2::text[], $3::text[], $4::bigint[], $5::bytea[], $6::timestamptz[],
			$7::timestamptz[], $8::text[]) as i (ord, direction, source_id, pairing_id, payload, next_attempt_at, source_time, target_id)),
	known as (
		select i.*, exists (select 1 from pairings p where p.id = i.pairing_id) as paired from input i),
	ins as (
		insert into relay_messages (direction, source_id, pairing_id, payload, next_attempt_at, source_time, target_id)
		select direction, source_id, pairing_id, payload, coalesce(next_attempt_at, now()), coalesce(source_time, now()),
			nullif(target_id, '')
		from known where paired
		order by ord
		on conflict (direction, source_id) do nothing
		returning id, direction, source_id)
	select k.ord, ins.id from known k join ins on ins.direction = k.direction and ins.source_id = k.source_id
	union all
	select k.ord, 0 from known k where not k.paired`

// EnqueueBatch stores many rows as Enqueue does, in one transaction, in the
// given order (so rows of equal source time keep it), and returns a result
// per row at its position. It is idempotent per row: a source id already
// stored (or given twice) gets the existing row's id with Inserted false.
// Rows of an unknown pairing are not stored: their results are zero and the
// error, which matches core.ErrNotFound, names them, while the other rows are
// stored. An invalid row (direction, empty source id) fails the whole call
// before anything is stored.
func (s *Store) EnqueueBatch(ctx context.Context, rows []core.OutboxRow) ([]EnqueueResult, error) {
	type key struct {
		dir core.Direction
		src string
	}
	first := make(map[key]int, len(rows)) // the position that stands for each source id
	var (
		ords      []int32
		dirs      []string
		srcs      []string
		pairings  []int64
		payloads  [][]byte
		nexts     []*time.Time
		times     []*time.Time
		targetIDs []string
	)
	for i := range rows {
		m := &rows[i]
		if m.Direction != core.ToResonite && m.Direction != core.ToDiscord {
			return nil, fmt.Errorf("store: enqueue batch: row %d (%q): invalid direction %q", i, m.SourceID, m.Direction)
		}
		if m.SourceID == "" {
			return nil, fmt.Errorf("store: enqueue batch: row %d: empty source id", i)
		}
		k := key{m.Direction, m.SourceID}
		if _, dup := first[k]; dup {
			continue
		}
		first[k] = i
		var next, st *time.Time
		if !m.NextAttemptAt.IsZero() {
			next = &m.NextAttemptAt
		}
		if !m.SourceTime.IsZero() {
			st = &m.SourceTime
		}
		ords = append(ords, int32(i))
		dirs = append(dirs, string(m.Direction))
		srcs = append(srcs, m.SourceID)
		pairings = append(pairings, m.PairingID)
		payloads = append(payloads, m.Payload)
		nexts = append(nexts, next)
		times = append(times, st)
		targetIDs = append(targetIDs, m.TargetID)
	}
	res := make([]EnqueueResult, len(rows))
	if len(ords) == 0 {
		return res, nil
	}
	q, _ := s.pool.Query(ctx, enqueueSQL, ords, dirs, srcs, pairings, payloads, nexts, times, targetIDs)
	var (
		ord  int32
		id   int64
		seen = make([]bool, len(rows))
	)
	var unpaired []string
	_, err := pgx.ForEachRow(q, []any{&ord, &id}, func() error {
		seen[ord] = true
		if id == 0 {
			unpaired = append(unpaired, fmt.Sprintf("%s (pairing %d)", rows[ord].SourceID, rows[ord].PairingID))
			return nil
		}
		res[ord] = EnqueueResult{ID: id, Inserted: true}
		return nil
	})
	if isForeignKeyViolation(err) { // a pairing deleted while we inserted: nothing was stored
		return nil, fmt.Errorf("store: enqueue batch of %d rows: a pairing is gone: %w", len(rows), core.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: enqueue batch of %d rows: %w", len(rows), err)
	}
	// The rows that were there already.
	var existing []int32
	for _, o := range ords {
		if !seen[o] {
			existing = append(existing, o)
		}
	}
	if len(existing) > 0 {
		eDirs, eSrcs := make([]string, len(existing)), make([]string, len(existing))
		for i, o := range existing {
			eDirs[i], eSrcs[i] = string(rows[o].Direction), rows[o].SourceID
		}
		q, _ := s.pool.Query(ctx, `select e.ord, m.id
			from unnest($1::int[], $2::text[], $3::text[]) e (ord, direction, source_id)
			join relay_messages m on m.direction = e.direction and m.source_id = e.source_id`, existing, eDirs, eSrcs)
		_, err := pgx.ForEachRow(q, []any{&ord, &id}, func() error {
			seen[ord] = true
			res[ord] = EnqueueResult{ID: id}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("store: enqueue batch: read existing rows: %w", err)
		}
		for _, o := range existing {
			if !seen[o] { // deleted by pruning or unpairing in between: see Enqueue
				return nil, fmt.Errorf("store: enqueue batch: %s %s: the existing row vanished", rows[o].Direction, rows[o].SourceID)
			}
		}
	}
	for i := range rows { // repeated source ids: the row stored for the first
		if j := first[key{rows[i].Direction, rows[i].SourceID}]; j != i {
			res[i] = EnqueueResult{ID: res[j].ID}
		}
	}
	if len(unpaired) > 0 {
		return res, fmt.Errorf("store: enqueue batch: rows of unknown pairings not stored: %s: %w",
			strings.Join(unpaired, ", "), core.ErrNotFound)
	}
	return res, nil
}
