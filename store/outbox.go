package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// Retry backoff: 1 s · 2^(attempts-1), at most maxBackoff, then jittered by
// ±20 % so that rows failing together do not retry together; the jittered
// delay is clamped to maxBackoff again, so the cap holds exactly.
const (
	baseBackoff = time.Second
	maxBackoff  = 10 * time.Minute
	jitter      = 0.2
)

const messageColumns = `id, direction, source_id, pairing_id, coalesce(target_id, '') as target_id, payload, source_time,
	claims, state, attempts, next_attempt_at, coalesce(last_error, '') as last_error, created_at, updated_at, delivered_at,
	parts_posted, coalesce(first_target_id, '') as first_target_id, coalesce(coalesced_into, 0) as coalesced_into`

// messageFields are the scan targets of messageColumns in m.
func messageFields(m *core.OutboxRow) []any {
	return []any{&m.ID, &m.Direction, &m.SourceID, &m.PairingID, &m.TargetID, &m.Payload, &m.SourceTime,
		&m.Claims, &m.State, &m.Attempts, &m.NextAttemptAt, &m.LastError, &m.EnqueuedAt, &m.UpdatedAt, &m.DeliveredAt,
		&m.PartsPosted, &m.FirstTargetID, &m.CoalescedInto}
}

func scanMessage(row pgx.CollectableRow) (core.OutboxRow, error) {
	var m core.OutboxRow
	err := row.Scan(messageFields(&m)...)
	return m, err
}

// headsOf selects, for every pairing, its head in direction $1: the oldest
// undelivered (pending or in-flight) row by (source_time, id). Only heads that
// are pending and whose pairing has nothing in flight (a row enqueued with an
// earlier source_time than one already in flight becomes the head while the
// other is still out) are kept: pairing_id, id, next_attempt_at. The caller
// checks due-ness.
//
// It walks relay_messages_open_idx from one pairing's head to the next (a
// loose index scan: the first open row after the previous pairing is the next
// pairing's head), so it costs one probe per pairing that has open rows, and
// nothing for the idle ones: a claim no longer grows with the number of
// pairings (1,000 mostly quiet pairings made every claim and every NextDue
// probe each of them).
const headsOf = `with recursive heads as (
		(select m.pairing_id, m.id, m.state, m.next_attempt_at from relay_messages m
		where m.direction = $1 and m.state in ('pending', 'in_flight')
		order by m.pairing_id, m.source_time, m.id
		limit 1)
		union all
		select n.pairing_id, n.id, n.state, n.next_attempt_at from heads h
		cross join lateral (
			select m.pairing_id, m.id, m.state, m.next_attempt_at from relay_messages m
			where m.direction = $1 and m.state in ('pending', 'in_flight') and m.pairing_id > h.pairing_id
			order by m.pairing_id, m.source_time, m.id
			limit 1) n)
	select h.pairing_id, h.id, h.next_attempt_at from heads h
	where h.state = 'pending'
	  and not exists (
		select 1 from relay_messages f
		where f.direction = $1 and f.pairing_id = h.pairing_id and f.state = 'in_flight')`

// Enqueue stores a pending message due now (or at m.NextAttemptAt when set),
// with m.SourceTime (now when zero) and m.TargetID (when not empty), and
// returns its id. It is idempotent on (Direction, SourceID): enqueueing a
// source id again returns the existing row's id with inserted false and
// changes nothing. Rows of one pairing are delivered in (SourceTime, ID)
// order, so a message enqueued late with an earlier source time (catch-up)
// still goes before the rows behind it that are not yet claimed. An unknown
// pairing is core.ErrNotFound.
func (s *Store) Enqueue(ctx context.Context, m core.OutboxRow) (int64, bool, error) {
	if m.Direction != core.ToResonite && m.Direction != core.ToDiscord {
		return 0, false, fmt.Errorf("store: enqueue %q: invalid direction %q", m.SourceID, m.Direction)
	}
	if m.SourceID == "" {
		return 0, false, fmt.Errorf("store: enqueue: empty source id")
	}
	var next, sourceTime *time.Time
	if !m.NextAttemptAt.IsZero() {
		next = &m.NextAttemptAt
	}
	if !m.SourceTime.IsZero() {
		sourceTime = &m.SourceTime
	}
	var id int64
	err := s.pool.QueryRow(ctx, `insert into relay_messages
			(direction, source_id, pairing_id, payload, next_attempt_at, source_time, target_id)
		values ($1, $2, $3, $4, coalesce($5, now()), coalesce($6, now()), nullif($7, ''))
		on conflict (direction, source_id) do nothing returning id`,
		m.Direction, m.SourceID, m.PairingID, m.Payload, next, sourceTime, m.TargetID).Scan(&id)
	if err == nil {
		return id, true, nil
	}
	if isForeignKeyViolation(err) {
		return 0, false, fmt.Errorf("store: enqueue %s %s: pairing %d: %w", m.Direction, m.SourceID, m.PairingID, core.ErrNotFound)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, false, fmt.Errorf("store: enqueue %s %s: %w", m.Direction, m.SourceID, err)
	}
	// Already there. Rows are deleted only by pruning or unpairing, so a
	// vanishing row here means one of those raced us: report it plainly.
	err = s.pool.QueryRow(ctx, `select id from relay_messages where direction = $1 and source_id = $2`,
		m.Direction, m.SourceID).Scan(&id)
	if err != nil {
		return 0, false, fmt.Errorf("store: enqueue %s %s: read existing row: %w", m.Direction, m.SourceID, err)
	}
	return id, false, nil
}

// Claim takes up to limit due messages of one direction for delivery: per
// pairing only its head, the oldest undelivered (pending or in-flight) row by
// (source_time, id), and only when that head is pending and due and nothing
// else of the pairing is in flight. So a pairing never has two rows in
// flight, a head that is not yet due holds back the rows behind it (order
// beats throughput), and failed rows block nothing. Among pairings, the
// earliest due heads go first. Claimed rows are in flight until
// MarkDelivered, Retry, Postpone or Fail, or until lease runs out and
// RescueExpired returns them. Attempts are counted by Retry, not here.
// Concurrent claimers never get the same row. It is ClaimBatch with batches
// of one row, so the two can be used side by side.
func (s *Store) Claim(ctx context.Context, dir core.Direction, limit int, lease time.Duration) ([]core.OutboxRow, error) {
	return s.ClaimBatch(ctx, dir, limit, 1, lease, nil)
}

// MarkDelivered records that the message arrived on the other side, as
// targetID there. It works from any state: in flight (the usual case),
// pending (a row delivered without being claimed: coalesced posts, late
// echoes), delivered or failed (a redelivery after a lease expiry). The first
// target id stored wins: one set at enqueue, or by an earlier MarkDelivered,
// is kept, and marking a delivered message again changes nothing.
func (s *Store) MarkDelivered(ctx context.Context, id int64, targetID string) error {
	// updated_at is the age Prune goes by, so a repeated mark does not renew it.
	tag, err := s.pool.Exec(ctx, `update relay_messages
		set target_id = coalesce(target_id, nullif($2, '')),
		    updated_at = case when state = 'delivered' then updated_at else now() end,
		    state = 'delivered', lease_until = null, delivered_at = coalesce(delivered_at, now())
		where id = $1`, id, targetID)
	if err != nil {
		return fmt.Errorf("store: mark message %d delivered: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: mark message %d delivered: %w", id, core.ErrNotFound)
	}
	return nil
}

// Retry records a failed attempt and schedules the next one with backoff and
// jitter; it returns when that will be. The row stays the head of its
// pairing, so later rows wait for it.
func (s *Store) Retry(ctx context.Context, id int64, reason string) (time.Time, error) {
	var next time.Time
	j := jitter * (rand.Float64()*2 - 1)
	// SET expressions see the old attempts, so 2^attempts(old) = 2^(attempts-1) of the new count.
	err := s.pool.QueryRow(ctx, `update relay_messages
		set state = 'pending', attempts = attempts + 1, lease_until = null, last_error = $2, updated_at = now(),
		    next_attempt_at = now() + least($4::interval,
		        make_interval(secs => least($5::float8, $3::float8 * power(2, least(attempts, 30))) * (1 + $6::float8)))
		where id = $1 and state in ('pending', 'in_flight')
		returning next_attempt_at`,
		id, reason, baseBackoff.Seconds(), maxBackoff, maxBackoff.Seconds(), j).Scan(&next)
	if err != nil {
		return time.Time{}, s.finalStateError(ctx, err, id, "retry")
	}
	return next, nil
}

// Postpone puts the message back to pending until the given time without
// counting an attempt (rate limits, the other side being down). The pairing
// waits for it.
func (s *Store) Postpone(ctx context.Context, id int64, until time.Time) error {
	var dummy int64
	err := s.pool.QueryRow(ctx, `update relay_messages
		set state = 'pending', lease_until = null, next_attempt_at = $2, updated_at = now()
		where id = $1 and state in ('pending', 'in_flight') returning id`, id, until).Scan(&dummy)
	if err != nil {
		return s.finalStateError(ctx, err, id, "postpone")
	}
	return nil
}

// Fail gives up on the message with a reason. It no longer blocks its pairing.
func (s *Store) Fail(ctx context.Context, id int64, reason string) error {
	var dummy int64
	err := s.pool.QueryRow(ctx, `update relay_messages
		set state = 'failed', lease_until = null, last_error = $2, updated_at = now()
		where id = $1 and state in ('pending', 'in_flight') returning id`, id, reason).Scan(&dummy)
	if err != nil {
		return s.finalStateError(ctx, err, id, "fail")
	}
	return nil
}

// finalStateError explains why an update of an open row touched nothing:
// core.ErrNotFound, or core.ErrConflict when the row is already delivered or failed.
func (s *Store) finalStateError(ctx context.Context, err error, id int64, doing string) error {
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store: %s message %d: %w", doing, id, err)
	}
	var state core.State
	if err := s.pool.QueryRow(ctx, `select state from relay_messages where id = $1`, id).Scan(&state); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: %s message %d: %w", doing, id, core.ErrNotFound)
		}
		return fmt.Errorf("store: %s message %d: %w", doing, id, err)
	}
	return fmt.Errorf("store: %s message %d: it is already %s: %w", doing, id, state, core.ErrConflict)
}

// RescueExpired returns in-flight rows whose lease ran out (a worker crashed
// or hung) to pending, due now, without counting an attempt. A batch goes
// back whole: every in-flight row of a pairing that has an expired one (the
// rows of a batch share their lease anyway). Run it at start and
// periodically.
func (s *Store) RescueExpired(ctx context.Context) (int, error) {
	tag, err := s.pool.Exec(ctx, `update relay_messages
		set state = 'pending', lease_until = null, next_attempt_at = least(next_attempt_at, now()), updated_at = now()
		where state = 'in_flight' and (direction, pairing_id) in (
			select direction, pairing_id from relay_messages where state = 'in_flight' and lease_until < now())`)
	if err != nil {
		return 0, fmt.Errorf("store: rescue expired messages: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// IDMapRetentionFactor: finished rows lose their payload after the Prune
// age, and the rows themselves (the id map) go after this many times that age.
//
// Why: payloads are the bulk and are useless once delivered; the id map is
// small and is what catch-up deduplicates against (catch-up reads back from
// the cursors, so it only needs recent ids) and what reply quoting and loop
// checks map back through, which are worth keeping well beyond the payload.
const IDMapRetentionFactor = 10

// Prune clears the payload and error of delivered and failed rows last
// changed more than olderThan ago, and deletes them entirely after
// IDMapRetentionFactor × olderThan once catch-up cannot read their source
// again (it is behind the side's cursor), with the edit history
// (discord_versions) of the Discord messages whose rows went. It returns the
// number of rows touched. Pending and in-flight rows are never pruned.
func (s *Store) Prune(ctx context.Context, olderThan time.Duration) (int, error) {
	if olderThan <= 0 {
		return 0, fmt.Errorf("store: prune: retention must be positive, got %s", olderThan)
	}
	// A huge retention must not overflow into a negative age that deletes everything.
	idMapAge := time.Duration(math.MaxInt64)
	if olderThan < idMapAge/IDMapRetentionFactor {
		idMapAge = olderThan * IDMapRetentionFactor
	}
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// A row also stays while its side's catch-up can still read its source again: a
		// Discord message after its pairing's cursor, a Resonite message near or after the
		// account's cursor (a cursor that has not moved for long keeps its rows). Source ids
		// are "<source>:<pairing>" (see core.RowSourceID); a to_resonite row whose source is
		// no snowflake is a contact's message relayed into a group channel's other contacts.
		del, err := tx.Exec(ctx, `delete from relay_messages m
			where state in ('delivered', 'failed') and updated_at < now() - $1::interval
			  and case
			    when m.direction = 'to_resonite' and split_part(m.source_id, ':', 1) ~ '^[0-9]{1,20}$' then exists (
			      select 1 from discord_cursors c
			      where c.pairing_id = m.pairing_id and split_part(m.source_id, ':', 1)::numeric <= c.message_id::numeric)
			    else m.source_time < (select min(last_seen) from resonite_cursors) - interval '1 day'
			  end`, idMapAge)
		if err != nil {
			return err
		}
		// updated_at is left alone so that the row's age keeps counting.
		clr, err := tx.Exec(ctx, `update relay_messages set payload = null, last_error = null
			where state in ('delivered', 'failed') and updated_at < now() - $1::interval
			  and (payload is not null or last_error is not null)`, olderThan)
		if err != nil {
			return err
		}
		// The last version relayed of a Discord message matters only while an edit can still
		// find the message's row (bridge: relayedOriginals); once the row is gone, so is it.
		ver, err := tx.Exec(ctx, `delete from discord_versions v
			where not exists (select 1 from relay_messages m
				where m.source_id = v.message_id || ':' || v.pairing_id and m.direction = 'to_resonite')`)
		if err != nil {
			return err
		}
		n = del.RowsAffected() + clr.RowsAffected() + ver.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune relayed messages: %w", err)
	}
	return int(n), nil
}

// MessageBySource finds a message by its source id, or core.ErrNotFound.
func (s *Store) MessageBySource(ctx context.Context, dir core.Direction, sourceID string) (core.OutboxRow, error) {
	rows, _ := s.pool.Query(ctx, `select `+messageColumns+` from relay_messages where direction = $1 and source_id = $2`, dir, sourceID)
	return oneMessage(rows, fmt.Sprintf("find %s message by source %s", dir, sourceID))
}

// MessageByTarget finds a message by its id on the other side, in any state
// (a target id set at enqueue is there before delivery), or core.ErrNotFound.
// Several rows can share one target id (coalesced posts); the newest wins.
func (s *Store) MessageByTarget(ctx context.Context, dir core.Direction, targetID string) (core.OutboxRow, error) {
	rows, _ := s.pool.Query(ctx, `select `+messageColumns+` from relay_messages
		where direction = $1 and target_id = $2 order by id desc limit 1`, dir, targetID)
	return oneMessage(rows, fmt.Sprintf("find %s message by target %s", dir, targetID))
}

// MessageByID returns a message or core.ErrNotFound.
func (s *Store) MessageByID(ctx context.Context, id int64) (core.OutboxRow, error) {
	rows, _ := s.pool.Query(ctx, `select `+messageColumns+` from relay_messages where id = $1`, id)
	return oneMessage(rows, fmt.Sprintf("get message %d", id))
}

// NextDue returns the earliest next attempt among the heads Claim could hand
// out by time alone (pending, nothing else of the pairing in flight), so a
// worker can sleep until then; ok is false when there is none. Rows held
// back behind a head or an in-flight row do not count: their time comes
// once the row before them settles, which the worker learns by itself.
func (s *Store) NextDue(ctx context.Context, dir core.Direction) (time.Time, bool, error) {
	var t *time.Time
	err := s.pool.QueryRow(ctx, `select min(next_attempt_at) from (`+headsOf+`) heads`, dir).Scan(&t)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: next due %s message: %w", dir, err)
	}
	if t == nil {
		return time.Time{}, false, nil
	}
	return *t, true, nil
}

// QueueStats is the outbox at a glance, for /status and metrics.
type QueueStats struct {
	Pending, InFlight, Failed map[core.Direction]int
	LastError                 string     // the most recent error recorded on any row still holding one
	LastErrorAt               *time.Time // when it was recorded
}

// QueueStats counts rows per state and direction and finds the latest error.
func (s *Store) QueueStats(ctx context.Context) (QueueStats, error) { return s.queueStats(ctx, "") }

func oneMessage(rows pgx.Rows, doing string) (core.OutboxRow, error) {
	m, err := pgx.CollectExactlyOneRow(rows, scanMessage)
	if errors.Is(err, pgx.ErrNoRows) {
		return core.OutboxRow{}, fmt.Errorf("store: %s: %w", doing, core.ErrNotFound)
	}
	if err != nil {
		return core.OutboxRow{}, fmt.Errorf("store: %s: %w", doing, err)
	}
	return m, nil
}
