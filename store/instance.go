package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// instanceLockKey is the session advisory lock one running daemon holds on its database. Two
// daemons on one database would hold two gateway sessions and post twice; and holding it lets
// the daemon take back, at start, rows a crashed predecessor left in flight.
const instanceLockKey int64 = 0x7265736f6e697466 // "resonitf"

// ErrInstanceLockLost means the connection holding the instance lock died: another daemon may
// have started since, so this one must stop.
var ErrInstanceLockLost = errors.New("store: lost the instance lock (the database connection holding it died)")

// InstanceLock is the held instance lock, on a connection of its own (never returned to the
// pool, where the lock would stay held by nobody).
type InstanceLock struct {
	mu   sync.Mutex
	conn *pgx.Conn
}

// AcquireInstanceLock takes the instance lock, waiting (and saying so through waiting, called
// once) while another daemon holds it, until ctx ends.
func (s *Store) AcquireInstanceLock(ctx context.Context, poll time.Duration, waiting func()) (*InstanceLock, error) {
	if poll <= 0 {
		poll = 2 * time.Second
	}
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: instance lock: acquire a connection: %w", err)
	}
	conn := pc.Hijack()
	told := false
	for {
		var got bool
		if err := conn.QueryRow(ctx, `select pg_try_advisory_lock($1)`, instanceLockKey).Scan(&got); err != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("store: instance lock: %w", err)
		}
		if got {
			return &InstanceLock{conn: conn}, nil
		}
		if !told && waiting != nil {
			told = true
			waiting()
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			_ = conn.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("store: waiting for the instance lock: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Check pings the lock's connection; ErrInstanceLockLost when it is gone.
func (l *InstanceLock) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return ErrInstanceLockLost
	}
	if err := l.conn.Ping(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		_ = l.conn.Close(context.WithoutCancel(ctx))
		l.conn = nil
		return fmt.Errorf("%w: %w", ErrInstanceLockLost, err)
	}
	return nil
}

// Release gives the lock up by closing its connection.
func (l *InstanceLock) Release(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		_ = l.conn.Close(ctx)
		l.conn = nil
	}
}

// RescueAllInFlight returns every in-flight row to pending, due now, without counting an attempt.
// Only the holder of the instance lock may call it, before it claims anything: the rows are then
// a crashed predecessor's, whose leases would otherwise hold them back until they expire.
func (s *Store) RescueAllInFlight(ctx context.Context, _ *InstanceLock) (int, error) {
	tag, err := s.pool.Exec(ctx, `update relay_messages
		set state = 'pending', lease_until = null, next_attempt_at = least(next_attempt_at, now()), updated_at = now()
		where state = 'in_flight'`)
	if err != nil {
		return 0, fmt.Errorf("store: rescue in-flight messages: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
