package store_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

// TestWatchPairings: the watch reports that it listens, every pairing write of the store
// before the write returns, and a change made around the store by its notification.
func TestWatchPairings(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	p := mustPair(t, st, "c1")
	ctx, cancel := context.WithCancel(ctxT(t))
	var calls atomic.Int64
	called := make(chan struct{}, 100)
	done := make(chan error, 1)
	go func() {
		done <- st.WatchPairings(ctx, func() {
			calls.Add(1)
			select {
			case called <- struct{}{}:
			default:
			}
		})
	}()
	// waitCalls waits for the watch to have been called more than n times.
	waitCalls := func(what string, n int64) {
		t.Helper()
		for calls.Load() <= n {
			select {
			case <-called:
			case <-ctx.Done():
				t.Fatalf("the watch never heard of %s", what)
			}
		}
	}
	waitCalls("its start", 0)

	// Another writer: the trigger's notification reaches the watch.
	before := calls.Load()
	mustExec(t, st, `update pairings set contact_username = 'renamed' where id = $1`, p.ID)
	waitCalls("a change made in SQL", before)

	// The store's own writes are reported before they return. Without the trigger, so that no
	// notification can stand in for that.
	mustExec(t, st, `drop trigger pairings_changed on pairings`)
	for _, w := range []struct {
		name  string
		write func() error
	}{
		{"CreatePairing", func() error { mustPair(t, st, "c2"); return nil }},
		{"SetPairingWebhook", func() error { return st.SetPairingWebhook(ctx, "c2", "W-2", "token") }},
		{"DeletePairings", func() error { _, err := st.DeletePairings(ctx, "c2", ""); return err }},
	} {
		before := calls.Load()
		if err := w.write(); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		if calls.Load() == before {
			t.Errorf("%s returned before the watch heard of it", w.name)
		}
	}

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("WatchPairings after cancel = %v, want context.Canceled", err)
	}
}
