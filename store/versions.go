package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// EnqueueVersion stores row, a later version of Discord message messageID in row's pairing (an edit when
// editedAt is set, a deletion when it is zero), only when it is newer than every version of the
// message stored before: an edit later than the last edit, a deletion once, nothing after a
// deletion. The version and the row are stored in one transaction, so a crash keeps both or
// neither. It reports whether row was stored.
func (s *Store) EnqueueVersion(ctx context.Context, messageID string, editedAt time.Time, row core.OutboxRow) (bool, error) {
	if row.SourceID == "" || row.Direction != core.ToResonite {
		return false, fmt.Errorf("store: enqueue version of %s: want a to_resonite row with a source id", messageID)
	}
	var edited *time.Time
	if !editedAt.IsZero() {
		edited = &editedAt
	}
	stored := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var ok bool
		err := tx.QueryRow(ctx, `insert into discord_versions (message_id, pairing_id, edited_at, deleted)
			values ($1, $2, $3, $3::timestamptz is null)
			on conflict (message_id, pairing_id) do update set
				edited_at = coalesce(excluded.edited_at, discord_versions.edited_at),
				deleted = excluded.deleted, updated_at = now()
			where not discord_versions.deleted
				and (excluded.deleted or discord_versions.edited_at is null or discord_versions.edited_at < excluded.edited_at)
			returning true`, messageID, row.PairingID, edited).Scan(&ok)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // not newer
		}
		if err != nil {
			return err
		}
		var id int64
		err = tx.QueryRow(ctx, `insert into relay_messages
				(direction, source_id, pairing_id, payload, next_attempt_at, source_time, target_id)
			values ($1, $2, $3, $4, now(), $5, nullif($6, ''))
			on conflict (direction, source_id) do nothing returning id`,
			row.Direction, row.SourceID, row.PairingID, row.Payload, row.SourceTime, row.TargetID).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		stored = err == nil
		return err
	})
	if isForeignKeyViolation(err) {
		return false, fmt.Errorf("store: enqueue version of %s: pairing %d: %w", messageID, row.PairingID, core.ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("store: enqueue version of Discord message %s: %w", messageID, err)
	}
	return stored, nil
}
