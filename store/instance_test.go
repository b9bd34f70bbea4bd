package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/store"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

// openOn opens a store on dsn (no migration: the lock needs none), closed at cleanup.
func openOn(t *testing.T, dsn string) *store.Store {
	t.Helper()
	st, err := store.Open(ctxT(t), dsn+"&pool_max_conns=2", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// lockHolders counts the sessions holding an advisory lock in dsn's database, asked on a fresh
// connection (the pool's idle ones died with the server).
func lockHolders(t *testing.T, dsn string) int {
	t.Helper()
	conn, err := pgx.Connect(ctxT(t), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(ctxT(t), `select count(*) from pg_locks
		where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestInstanceLockSurvivesRestart: the server restarts (every session ends, the lock goes with
// ours); nobody else wants it, so Reacquire takes it back, and it is exclusive again.
func TestInstanceLockSurvivesRestart(t *testing.T) {
	t.Parallel()
	cl := storetest.NewCluster(t)
	st := openOn(t, cl.URL())
	lock, err := st.AcquireInstanceLock(ctxT(t), 10*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release(ctxT(t))

	cl.Restart()
	if err := lock.Check(ctxT(t)); !errors.Is(err, store.ErrInstanceLockLost) {
		t.Fatalf("Check after a restart = %v, want ErrInstanceLockLost", err)
	}
	if lock.Held() {
		t.Error("Held after the connection died")
	}
	if got, err := lock.Reacquire(ctxT(t)); !got || err != nil {
		t.Fatalf("Reacquire after the restart = %v, %v; want true", got, err)
	}
	if err := lock.Check(ctxT(t)); err != nil || !lock.Held() {
		t.Fatalf("Check after Reacquire = %v (held %v)", err, lock.Held())
	}
	if got, err := lock.Reacquire(ctxT(t)); !got || err != nil {
		t.Errorf("Reacquire of a held lock = %v, %v; want true", got, err)
	}
	if n := lockHolders(t, cl.URL()); n != 1 {
		t.Errorf("%d sessions hold the lock, want 1", n)
	}

	// A 10 s style outage: while the server is down Reacquire fails (and says why), and takes
	// the lock once the server is back.
	cl.Stop()
	if err := lock.Check(ctxT(t)); !errors.Is(err, store.ErrInstanceLockLost) {
		t.Fatalf("Check while the server is down = %v, want ErrInstanceLockLost", err)
	}
	if got, err := lock.Reacquire(ctxT(t)); got || err == nil {
		t.Fatalf("Reacquire while the server is down = %v, %v; want false and an error", got, err)
	}
	cl.Start()
	if got, err := lock.Reacquire(ctxT(t)); !got || err != nil {
		t.Fatalf("Reacquire after the outage = %v, %v; want true", got, err)
	}

	// Still exclusive: a second daemon waits.
	other := openOn(t, cl.URL())
	ctx, cancel := context.WithCancel(ctxT(t))
	waiting := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		l, err := other.AcquireInstanceLock(ctx, 10*time.Millisecond, func() { close(waiting) })
		if l != nil {
			l.Release(context.Background())
		}
		done <- err
	}()
	<-waiting
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("the second daemon's wait ended with %v, want its cancellation", err)
	}

	lock.Release(ctxT(t))
	if got, err := lock.Reacquire(ctxT(t)); got || err == nil {
		t.Errorf("Reacquire after Release = %v, %v; want false and an error", got, err)
	}
}

// TestInstanceLockTakenDuringOutage: while the first daemon's connection is down, a second one
// takes the lock; the first's Reacquire then reports false (no error), and keeps reporting it
// while the second holds it.
func TestInstanceLockTakenDuringOutage(t *testing.T) {
	t.Parallel()
	cl := storetest.NewCluster(t)
	first, second := openOn(t, cl.URL()), openOn(t, cl.URL())
	lock, err := first.AcquireInstanceLock(ctxT(t), 10*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release(ctxT(t))

	cl.Stop()
	// A daemon waiting for the lock rides out the outage and takes the lock when it is back.
	got := make(chan *store.InstanceLock, 1)
	go func() {
		l, err := second.AcquireInstanceLock(ctxT(t), 10*time.Millisecond, nil)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	if err := lock.Check(ctxT(t)); !errors.Is(err, store.ErrInstanceLockLost) {
		t.Fatalf("Check while the server is down = %v, want ErrInstanceLockLost", err)
	}
	cl.Start()
	l2 := <-got
	if l2 == nil {
		t.Fatal("the second daemon did not get the lock after the outage")
	}
	defer l2.Release(ctxT(t))

	for i := 0; i < 2; i++ {
		if ok, err := lock.Reacquire(ctxT(t)); ok || err != nil {
			t.Fatalf("Reacquire while another daemon holds the lock = %v, %v; want false, nil", ok, err)
		}
	}
	if lock.Held() {
		t.Error("the first daemon believes it holds the lock")
	}
	if err := l2.Check(ctxT(t)); err != nil {
		t.Errorf("the second daemon's lock: %v", err)
	}
	if n := lockHolders(t, cl.URL()); n != 1 {
		t.Errorf("%d sessions hold the lock, want 1", n)
	}
}
