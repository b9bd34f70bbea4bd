package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// GuildQueueStats is QueueStats of one guild's pairings only: /status shows a server its own.
func (s *Store) GuildQueueStats(ctx context.Context, guildID string) (QueueStats, error) {
	if guildID == "" {
		return QueueStats{}, fmt.Errorf("store: queue stats of a guild: no guild id")
	}
	return s.queueStats(ctx, guildID)
}

// queueStats counts rows per state and direction and finds the latest error, of the guild's
// pairings when guildID is not empty.
func (s *Store) queueStats(ctx context.Context, guildID string) (QueueStats, error) {
	st := QueueStats{
		Pending:  map[core.Direction]int{core.ToResonite: 0, core.ToDiscord: 0},
		InFlight: map[core.Direction]int{core.ToResonite: 0, core.ToDiscord: 0},
		Failed:   map[core.Direction]int{core.ToResonite: 0, core.ToDiscord: 0},
	}
	rows, _ := s.pool.Query(ctx, `select direction, state, count(*) from relay_messages
		where state <> 'delivered' and ($1 = '' or pairing_id in (select id from pairings where guild_id = $1))
		group by direction, state`, guildID)
	var (
		dir   core.Direction
		state core.State
		n     int
	)
	_, err := pgx.ForEachRow(rows, []any{&dir, &state, &n}, func() error {
		switch state {
		case core.StatePending:
			st.Pending[dir] = n
		case core.StateInFlight:
			st.InFlight[dir] = n
		case core.StateFailed:
			st.Failed[dir] = n
		}
		return nil
	})
	if err != nil {
		return QueueStats{}, fmt.Errorf("store: queue stats: %w", err)
	}
	var at time.Time
	err = s.pool.QueryRow(ctx, `select last_error, updated_at from relay_messages
		where last_error is not null and last_error <> ''
			and ($1 = '' or pairing_id in (select id from pairings where guild_id = $1))
		order by updated_at desc limit 1`, guildID).Scan(&st.LastError, &at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return QueueStats{}, fmt.Errorf("store: queue stats: last error: %w", err)
	default:
		st.LastErrorAt = &at
	}
	return st, nil
}
