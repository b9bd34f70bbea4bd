// Package storetest gives every package's tests an isolated, real
// PostgreSQL database.
//
// Where PostgreSQL comes from, in order:
//  1. TEST_DATABASE_URL, when set;
//  2. postgres://postgres@127.0.0.1:5432/test?sslmode=disable, when something
//     answers on 127.0.0.1:5432 (STORETEST_PROBE_ADDR overrides the probed
//     address, which is how the next path is tested);
//  3. a throwaway cluster started from the local PostgreSQL binaries (initdb
//     and postgres, found in PATH or /usr/lib/postgresql/*/bin) in a temporary
//     folder on a free port, once per test process. Wrap TestMain with Main so
//     it is stopped and removed at the end; it also dies with the test process,
//     and a folder left by a process killed hard is removed by the next start.
//
// Each New or URL call creates its own database (CREATE DATABASE t_<random>)
// and drops it at cleanup, so parallel tests never see each other's rows.
// When no PostgreSQL can be had the test is skipped, except under CI=true
// where it fails.
//
// Use it like this:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(storetest.M(m)) }
//	func TestX(t *testing.T) { st := storetest.New(t); ... }
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/store"
)

// New returns a migrated Store on a database of its own, closed and dropped
// when the test ends.
func New(tb testing.TB) *store.Store {
	tb.Helper()
	dsn := URL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A small pool: many parallel tests share one server's max_connections.
	st, err := store.Open(ctx, withParam(dsn, "pool_max_conns", "4"), nil)
	if err != nil {
		tb.Fatalf("storetest: open test database: %v", err)
	}
	tb.Cleanup(st.Close) // runs before the drop registered by URL
	if _, err := st.Migrate(ctx); err != nil {
		tb.Fatalf("storetest: migrate test database: %v", err)
	}
	return st
}

// URL returns the DSN of a new, empty database of its own, dropped (with
// any connections still open to it) when the test ends.
func URL(tb testing.TB) string {
	tb.Helper()
	admin := server.adminURL(tb)
	name := "t_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := adminExec(ctx, admin, "create database "+name); err != nil {
		tb.Fatalf("storetest: create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := adminExec(ctx, admin, "drop database if exists "+name+" with (force)"); err != nil {
			tb.Errorf("storetest: drop test database %s: %v", name, err)
		}
	})
	return withDatabase(admin, name)
}

// M wraps m so that its Run also stops the throwaway cluster, if one was
// started; it fits goleak.VerifyTestMain(storetest.M(m)).
func M(m *testing.M) interface{ Run() int } { return mainWrapper{m} }

type mainWrapper struct{ m *testing.M }

func (w mainWrapper) Run() int { return Main(w.m) }

// Main runs the tests and then stops and removes the throwaway cluster, if
// one was started: func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	if err := server.stop(); err != nil {
		fmt.Fprintf(os.Stderr, "storetest: stop throwaway PostgreSQL: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// adminExec runs one statement on a short-lived connection: no pool, so no
// background goroutines for goleak to find between tests.
func adminExec(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

func withDatabase(dsn, db string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		panic(fmt.Sprintf("storetest: admin DSN is not a URL: %v", err)) // ours, validated earlier
	}
	u.Path = "/" + db
	return u.String()
}

func withParam(dsn, key, value string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	if q.Get(key) == "" {
		q.Set(key, value)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// reachable reports whether something accepts TCP connections at addr.
func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// unavailable skips the test, or fails it under CI where a missing database
// is a broken setup, not an excuse.
func unavailable(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("storetest: no PostgreSQL for tests (CI=true, so this fails): %v", err)
	}
	tb.Skipf("storetest: no PostgreSQL for tests, skipping (set TEST_DATABASE_URL): %v", err)
}
