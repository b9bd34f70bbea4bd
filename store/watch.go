package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// closeTimeout bounds closing the watch connection.
const closeTimeout = 2 * time.Second

// pairingWatchers are the callbacks of the WatchPairings calls running on a Store.
type pairingWatchers struct {
	mu   sync.Mutex
	next int
	fns  map[int]func()
}

func (w *pairingWatchers) add(f func()) (remove func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fns == nil {
		w.fns = map[int]func(){}
	}
	id := w.next
	w.next++
	w.fns[id] = f
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.fns, id)
	}
}

// notify calls every watcher, on the caller's goroutine.
func (w *pairingWatchers) notify() {
	w.mu.Lock()
	fns := make([]func(), 0, len(w.fns))
	for _, f := range w.fns {
		fns = append(fns, f)
	}
	w.mu.Unlock()
	for _, f := range fns {
		f()
	}
}

// pairingsChanged tells this process's watchers of a committed change to the pairings, before
// the writing method returns; other processes hear of it through the notification.
func (s *Store) pairingsChanged() { s.watchers.notify() }

// WatchPairings calls changed whenever the pairings may have changed, until ctx ends or the
// connection it listens on fails (it returns that error; ctx's when ctx ended). It calls
// changed once as soon as it listens, since anything may have changed before; from then on a
// change made by this Store's methods calls it before the method returns, and one made by any
// other writer (migration 003's trigger) as soon as its notification arrives. It holds a
// connection of its own, outside the pool.
func (s *Store) WatchPairings(ctx context.Context, changed func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return redact(fmt.Errorf("store: watch pairings: connect: %w", err), s.pool.Config().ConnConfig.Password)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "listen pairings_changed"); err != nil {
		return fmt.Errorf("store: watch pairings: listen: %w", err)
	}
	remove := s.watchers.add(changed)
	defer remove()
	changed()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("store: watch pairings: %w", err)
		}
		changed()
	}
}
