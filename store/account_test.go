package store_test

import (
	"context"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/store"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

func TestAccountIdentityGeneratedOnceAndStable(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	dsn := storetest.URL(t)
	open := func() *store.Store {
		st, err := store.Open(ctx, dsn+"&pool_max_conns=3", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		return st
	}
	a, b := open(), open()
	if _, err := a.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Two daemons asking at once must agree on one identity.
	var got [8]store.Account
	var wg sync.WaitGroup
	for i := range got {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Go(func() {
			var err error
			if got[i], err = st.Account(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	first := got[0]
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{128}$`).MatchString(first.SecretMachineID) {
		t.Fatalf("generated secretMachineId %q is not 128 URL-safe characters", first.SecretMachineID)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(first.UID) {
		t.Fatalf("generated UID %q is not 64 hex digits", first.UID)
	}
	for i, g := range got {
		if g.SecretMachineID != first.SecretMachineID || g.UID != first.UID {
			t.Fatalf("call %d got a different identity", i)
		}
	}
	// A restart (a new Store) keeps it.
	if again, err := open().Account(ctx); err != nil || again.UID != first.UID || again.SecretMachineID != first.SecretMachineID {
		t.Fatalf("identity changed across stores: %v", err)
	}
}

func TestAccountIdentityConfiguredWins(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	gen, err := st.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		machine, uid         string
		wantMachine, wantUID string
	}{
		{"", "", gen.SecretMachineID, gen.UID},       // nothing configured: generated kept
		{"machine-1", "", "machine-1", gen.UID},      // configured machine id wins
		{"", "UID-1", "machine-1", "UID-1"},          // configured UID wins, machine id kept
		{"machine-2", "UID-2", "machine-2", "UID-2"}, // reconfigured
	}
	for _, s := range steps {
		if err := st.SetAccountIdentity(ctx, s.machine, s.uid); err != nil {
			t.Fatal(err)
		}
		a, err := st.Account(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if a.SecretMachineID != s.wantMachine || a.UID != s.wantUID {
			t.Fatalf("SetAccountIdentity(%q, %q): got (%q, %q), want (%q, %q)", s.machine, s.uid, a.SecretMachineID, a.UID, s.wantMachine, s.wantUID)
		}
	}
}

func TestAccountSession(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	st := storetest.New(t)
	if _, _, _, ok, err := st.AccountSession(ctx); err != nil || ok {
		t.Fatalf("fresh AccountSession ok=%v err=%v; want none", ok, err)
	}
	exp := time.Date(2026, 12, 27, 8, 0, 0, 0, time.UTC)
	if err := st.SaveAccountSession(ctx, "U-bridge", "tok-1", exp); err != nil {
		t.Fatal(err)
	}
	before, _ := st.Account(ctx)
	user, token, expire, ok, err := st.AccountSession(ctx)
	if err != nil || !ok || user != "U-bridge" || token != "tok-1" || !expire.Equal(exp) {
		t.Fatalf("AccountSession = %q %q %v %v %v", user, token, expire, ok, err)
	}
	if err := st.ClearAccountSession(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok, err := st.AccountSession(ctx); err != nil || ok {
		t.Fatalf("after clear AccountSession ok=%v err=%v; want none", ok, err)
	}
	after, _ := st.Account(ctx)
	if after.UID != before.UID || after.SecretMachineID != before.SecretMachineID || after.Token != "" {
		t.Fatalf("clearing the session changed the identity or kept the token")
	}
	_ = context.Background
}
