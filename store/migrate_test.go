package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resonite-bridge/resonite-bridge/migrations"
	"github.com/resonite-bridge/resonite-bridge/store"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

func newPool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(ctxT(t), dsn+"&pool_max_conns=2")
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func embeddedVersions(t *testing.T) []string {
	t.Helper()
	entries, err := migrations.FS.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			vs = append(vs, strings.TrimSuffix(e.Name(), ".sql"))
		}
	}
	return vs
}

func TestMigrateEmptyThenNoop(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	pool := newPool(t, storetest.URL(t))
	applied, err := store.Migrate(ctx, pool, migrations.FS)
	if err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	if want := embeddedVersions(t); !slices.Equal(applied, want) {
		t.Fatalf("first Migrate applied %v, want %v", applied, want)
	}
	again, err := store.Migrate(ctx, pool, migrations.FS)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Migrate = %v, %v; want nothing applied", again, err)
	}
	// The schema is really there.
	var n int
	if err := pool.QueryRow(ctx, "select count(*) from pairings").Scan(&n); err != nil {
		t.Fatalf("pairings table missing after migration: %v", err)
	}
}

func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	dsn := storetest.URL(t)
	const migrators = 5
	pools := make([]*pgxpool.Pool, migrators)
	for i := range pools {
		pools[i] = newPool(t, dsn) // one pool each: separate daemons
	}
	results := make([][]string, migrators)
	errs := make([]error, migrators)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range pools {
		wg.Go(func() {
			<-start
			results[i], errs[i] = store.Migrate(ctx, pools[i], migrations.FS)
		})
	}
	close(start)
	wg.Wait()
	var all []string
	for i := range errs {
		if errs[i] != nil {
			t.Errorf("migrator %d: %v", i, errs[i])
		}
		all = append(all, results[i]...)
	}
	slices.Sort(all)
	if want := embeddedVersions(t); !slices.Equal(all, want) {
		t.Fatalf("versions applied across migrators = %v, want each of %v exactly once", all, want)
	}
	var rows int
	if err := pools[0].QueryRow(ctx, "select count(*) from schema_migrations").Scan(&rows); err != nil || rows != len(all) {
		t.Fatalf("schema_migrations rows = %d, %v; want %d", rows, err, len(all))
	}
}

func TestMigrateRefusesNewerDatabase(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	pool := newPool(t, storetest.URL(t))
	if _, err := store.Migrate(ctx, pool, migrations.FS); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "insert into schema_migrations (version) values ('999_from_the_future')"); err != nil {
		t.Fatal(err)
	}
	_, err := store.Migrate(ctx, pool, migrations.FS)
	var newer *store.ErrDatabaseNewer
	if !errors.As(err, &newer) {
		t.Fatalf("Migrate on a newer database = %v, want *ErrDatabaseNewer", err)
	}
	if newer.Version != "999_from_the_future" || !strings.Contains(err.Error(), "999_from_the_future") {
		t.Fatalf("error does not name the unknown version: %v", err)
	}
}

func TestMigrateAppliesInOrderAndStopsAtFailure(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	pool := newPool(t, storetest.URL(t))
	fsys := fstest.MapFS{
		"002_b.sql":  {Data: []byte("insert into a values (2);")},
		"001_a.sql":  {Data: []byte("create table a (n int primary key); insert into a values (1);")},
		"003_c.sql":  {Data: []byte("create table c (n int); insert into nowhere values (1);")},
		"README.txt": {Data: []byte("not a migration")},
	}
	applied, err := store.Migrate(ctx, pool, fsys)
	if err == nil || !strings.Contains(err.Error(), "003_c") {
		t.Fatalf("Migrate with a broken 003 = %v, want an error naming 003_c", err)
	}
	if !slices.Equal(applied, []string{"001_a", "002_b"}) {
		t.Fatalf("applied = %v, want [001_a 002_b]", applied)
	}
	var c bool
	if err := pool.QueryRow(ctx, "select to_regclass('c') is not null").Scan(&c); err != nil || c {
		t.Fatalf("table c exists = %v (%v): the failed file must be rolled back", c, err)
	}
	// Fix the file: only it is applied now.
	fsys["003_c.sql"] = &fstest.MapFile{Data: []byte("create table c (n int);")}
	applied, err = store.Migrate(ctx, pool, fsys)
	if err != nil || !slices.Equal(applied, []string{"003_c"}) {
		t.Fatalf("after fixing: applied %v, %v; want [003_c]", applied, err)
	}
}

func TestOpenErrorHidesPassword(t *testing.T) {
	t.Parallel()
	const pw = "Sup3rSecretPw"
	for _, dsn := range []string{
		"postgres://bridge:" + pw + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", // nothing listens
		"postgres://bridge:" + pw + "@127.0.0.1:notaport/db",                            // unparsable
		"host=127.0.0.1 port=1 user=bridge password=" + pw + " dbname=db sslmode=disable connect_timeout=2",
	} {
		st, err := store.Open(context.Background(), dsn, nil)
		if err == nil {
			st.Close()
			t.Fatalf("Open(%q) succeeded, want an error", strings.ReplaceAll(dsn, pw, "…"))
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("Open error leaks the password: %v", err)
		}
	}
}
