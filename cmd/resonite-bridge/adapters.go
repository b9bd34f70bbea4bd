package main

import (
	"context"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/resonite"
	"github.com/resonite-bridge/resonite-bridge/store"
)

// sessionStore persists the Resonite login in the account row, so that a restart reuses a
// live token instead of logging in again.
type sessionStore struct{ s *store.Store }

var _ resonite.SessionStore = sessionStore{}

func (ss sessionStore) LoadSession(ctx context.Context) (*resonite.UserSession, error) {
	userID, token, expire, ok, err := ss.s.AccountSession(ctx)
	if err != nil || !ok {
		return nil, err
	}
	// The bridge always logs in with rememberMe, so an extension pushes the expiry by 30 days.
	return &resonite.UserSession{UserID: userID, Token: token, Expire: resonite.NewTime(expire), RememberMe: true}, nil
}

func (ss sessionStore) SaveSession(ctx context.Context, u resonite.UserSession) error {
	return ss.s.SaveAccountSession(ctx, u.UserID, u.Token, u.Expire.Time)
}

func (ss sessionStore) ClearSession(ctx context.Context) error { return ss.s.ClearAccountSession(ctx) }

// dbAdapter is the daemon's own view of the store (migrate, ping, queue depth, stored session),
// and the owner of the instance lock once wire took it.
type dbAdapter struct {
	s         *store.Store
	lock      *store.InstanceLock
	secretKey string // BRIDGE_SECRET_KEY
}

var _ database = (*dbAdapter)(nil)

// Migrate migrates, then takes BRIDGE_SECRET_KEY into use before anything reads a token: a key
// that does not open what is stored (or none for a sealed database) stops the start here.
func (d *dbAdapter) Migrate(ctx context.Context) ([]string, error) {
	applied, err := d.s.Migrate(ctx)
	if err != nil {
		return applied, err
	}
	return applied, d.s.UseSecretKey(ctx, d.secretKey)
}
func (d *dbAdapter) Ping(ctx context.Context) error { return d.s.Ping(ctx) }

// Close gives the instance lock up and closes the pool.
func (d *dbAdapter) Close() {
	if d.lock != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d.lock.Release(ctx)
		cancel()
	}
	d.s.Close()
}

func (d *dbAdapter) Backlog(ctx context.Context) (backlog, error) {
	st, err := d.s.QueueStats(ctx)
	if err != nil {
		return backlog{}, err
	}
	return backlog{
		toDiscord:  int64(st.Pending[core.ToDiscord] + st.InFlight[core.ToDiscord]),
		toResonite: int64(st.Pending[core.ToResonite] + st.InFlight[core.ToResonite]),
	}, nil
}

// minSessionLife is how long a stored session must still be valid to start without credentials.
const minSessionLife = time.Hour

func (d *dbAdapter) HasValidSession(ctx context.Context) (bool, error) {
	_, _, expire, ok, err := d.s.AccountSession(ctx)
	if err != nil {
		return false, err
	}
	return ok && time.Until(expire) > minSessionLife, nil
}
