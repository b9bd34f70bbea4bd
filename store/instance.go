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

// ErrInstanceLockLost means the connection holding the instance lock died, so the server has
// released the lock: another daemon may take it from now on. The holder stops delivering or, to
// ride out a database restart, takes the lock again with Reacquire.
var ErrInstanceLockLost = errors.New("store: lost the instance lock (the database connection holding it died)")

// InstanceLock is the held instance lock, on a connection of its own (never returned to the
// pool, where the lock would stay held by nobody). It survives database restarts through
// Reacquire: the connection dies with the server, and a new one takes the lock again unless
// another daemon took it in between.
type InstanceLock struct {
	mu       sync.Mutex
	conn     *pgx.Conn // nil while the lock is not held
	cfg      *pgx.ConnConfig
	released bool
}

// AcquireInstanceLock takes the instance lock, waiting (and saying so through waiting, called
// once) while another daemon holds it, until ctx ends. While it waits it also rides out the
// database being unreachable: a failed attempt is logged and tried again every poll.
func (s *Store) AcquireInstanceLock(ctx context.Context, poll time.Duration, waiting func()) (*InstanceLock, error) {
	if poll <= 0 {
		poll = 2 * time.Second
	}
	l := &InstanceLock{cfg: s.pool.Config().ConnConfig}
	var conn *pgx.Conn // kept between polls while it works
	defer func() {
		if conn != nil {
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}()
	told, failing := false, false
	for {
		var got bool
		var err error
		conn, got, err = l.try(ctx, conn)
		switch {
		case got:
			if failing {
				s.logger.Info("the database answers again; took the instance lock")
			}
			return l, nil
		case err != nil && ctx.Err() == nil:
			if !failing {
				s.logger.Warn("taking the instance lock failed; trying again", "err", err, "every", poll)
			}
			failing = true
		case err == nil:
			failing = false
			if !told && waiting != nil {
				told = true
				waiting()
			}
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("store: waiting for the instance lock: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// try tries the lock once on conn, or on a fresh connection when conn is nil (never an idle
// pooled one, which a server restart leaves dead). When it got the lock the connection becomes
// the lock's and try returns nil for it; otherwise it returns the connection to try again on
// (nil after an error, which closes it).
func (l *InstanceLock) try(ctx context.Context, conn *pgx.Conn) (*pgx.Conn, bool, error) {
	if conn == nil {
		var err error
		if conn, err = pgx.ConnectConfig(ctx, l.cfg.Copy()); err != nil {
			return nil, false, fmt.Errorf("store: instance lock: connect: %w", err)
		}
	}
	var got bool
	if err := conn.QueryRow(ctx, `select pg_try_advisory_lock($1)`, instanceLockKey).Scan(&got); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, false, fmt.Errorf("store: instance lock: %w", err)
	}
	if !got {
		return conn, false, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, false, errLockReleased
	}
	l.conn = conn
	return nil, true, nil
}

var errLockReleased = errors.New("store: the instance lock was released")

// Check pings the lock's connection; ErrInstanceLockLost when it is gone (or was gone
// already). A ping that only ran out of ctx's time returns ctx's error and keeps the lock.
func (l *InstanceLock) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return ErrInstanceLockLost
	}
	if err := l.conn.Ping(ctx); err != nil {
		if ctx.Err() != nil && !l.conn.IsClosed() {
			return ctx.Err()
		}
		_ = l.conn.Close(context.WithoutCancel(ctx))
		l.conn = nil
		return fmt.Errorf("%w: %w", ErrInstanceLockLost, err)
	}
	return nil
}

// Held reports whether the lock's connection is believed alive (Check last succeeded, or the
// lock was just taken); it does not ask the database.
func (l *InstanceLock) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn != nil
}

// Reacquire takes the lock again after its connection died (Check returned
// ErrInstanceLockLost): it opens a new connection and tries pg_try_advisory_lock once.
//
//   - (true, nil): the lock is ours again; also when it was still held. Nobody held it in
//     between, so the rows this daemon left in flight are still its own: it must NOT rescue
//     them as a crashed predecessor's (RescueAllInFlight); its deliveries just go on.
//   - (false, nil): another session holds the lock. Another daemon took it while the
//     connection was down and treats this daemon's in-flight rows as a crashed predecessor's;
//     this daemon must stop delivering at once and may only wait for the lock afresh
//     (AcquireInstanceLock), as a newly started daemon does. (The holder may also be this
//     daemon's own old session, when the server has not noticed yet that it died: waiting
//     afresh is right then too.)
//   - (false, err): the database could not be asked (still down); try again later.
//
// Reacquire after Release fails.
func (l *InstanceLock) Reacquire(ctx context.Context) (bool, error) {
	l.mu.Lock()
	released, conn := l.released, l.conn
	l.mu.Unlock()
	if released {
		return false, errLockReleased
	}
	if conn != nil {
		err := l.Check(ctx)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, ErrInstanceLockLost) {
			return false, err
		}
	}
	conn, got, err := l.try(ctx, nil)
	if conn != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
	}
	return got, err
}

// Release gives the lock up by closing its connection.
func (l *InstanceLock) Release(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released = true
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
