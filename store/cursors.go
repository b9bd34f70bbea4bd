package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// DiscordCursor returns the id of the last Discord message relayed from the
// pairing's channel, or "" when none has been.
func (s *Store) DiscordCursor(ctx context.Context, pairingID int64) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `select message_id from discord_cursors where pairing_id = $1`, pairingID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: read Discord cursor of pairing %d: %w", pairingID, err)
	}
	return id, nil
}

// AdvanceDiscordCursor moves the pairing's cursor to messageID if that is
// newer; snowflakes are compared as numbers, so an older id is ignored.
// core.ErrNotFound when the pairing does not exist.
func (s *Store) AdvanceDiscordCursor(ctx context.Context, pairingID int64, messageID string) error {
	if !isSnowflake(messageID) {
		return fmt.Errorf("store: advance Discord cursor of pairing %d: %q is not a snowflake", pairingID, messageID)
	}
	_, err := s.pool.Exec(ctx, `insert into discord_cursors (pairing_id, message_id) values ($1, $2)
		on conflict (pairing_id) do update set message_id = excluded.message_id, updated_at = now()
		where discord_cursors.message_id::numeric < excluded.message_id::numeric`, pairingID, messageID)
	if isForeignKeyViolation(err) {
		return fmt.Errorf("store: advance Discord cursor of pairing %d: %w", pairingID, core.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: advance Discord cursor of pairing %d: %w", pairingID, err)
	}
	return nil
}

func isSnowflake(id string) bool {
	if id == "" || len(id) > 20 {
		return false
	}
	for _, c := range id {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ResoniteCursor returns the time of the newest Resonite message seen by the
// account, or the zero time when none has been.
func (s *Store) ResoniteCursor(ctx context.Context, accountID string) (time.Time, error) {
	var t time.Time
	err := s.pool.QueryRow(ctx, `select last_seen from resonite_cursors where account_id = $1`, accountID).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("store: read Resonite cursor of %s: %w", accountID, err)
	}
	return t, nil
}

// AdvanceResoniteCursor moves the account's cursor to t if that is later.
// PostgreSQL keeps microseconds, so a cursor read back may be up to 1 µs
// earlier than t: catch-up then sees that message again and deduplicates it.
func (s *Store) AdvanceResoniteCursor(ctx context.Context, accountID string, t time.Time) error {
	_, err := s.pool.Exec(ctx, `insert into resonite_cursors (account_id, last_seen) values ($1, $2)
		on conflict (account_id) do update set last_seen = excluded.last_seen, updated_at = now()
		where resonite_cursors.last_seen < excluded.last_seen`, accountID, t)
	if err != nil {
		return fmt.Errorf("store: advance Resonite cursor of %s: %w", accountID, err)
	}
	return nil
}
