package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationLockKey is the pg_advisory_xact_lock key that serialises migrators
// (two daemons starting together). Any constant unlikely to collide will do.
const migrationLockKey int64 = 0x7265736f6e697465 // "resonite"

// ErrDatabaseNewer is returned by Migrate when the database has a migration
// this binary does not know: it was migrated by a newer release, and running
// older code against it could corrupt data.
type ErrDatabaseNewer struct {
	Version string // the unknown version found in the database
	Latest  string // the newest version this binary knows
}

func (e *ErrDatabaseNewer) Error() string {
	return fmt.Sprintf("store: database has migration %q which this binary does not know (its newest is %q): the database is newer than the binary, run a newer release", e.Version, e.Latest)
}

// Migrate applies the pending *.sql files at the root of fsys in lexical
// order and returns the versions (file names without .sql) it applied. Each
// file runs in its own transaction together with its bookkeeping row, under a
// transaction-level advisory lock, so concurrent migrators apply each file
// exactly once and a failure leaves no half-applied file. A database holding a
// version unknown to fsys is refused with *ErrDatabaseNewer.
func Migrate(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS) ([]string, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("store: list migrations: %w", err)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("store: no migrations found")
	}
	known := make(map[string]bool, len(names))
	for _, n := range names {
		known[strings.TrimSuffix(n, ".sql")] = true
	}
	latest := strings.TrimSuffix(names[len(names)-1], ".sql")

	// First transaction: refuse a newer database before touching anything.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if err := lockMigrations(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "select version from schema_migrations order by version")
		if err != nil {
			return fmt.Errorf("read applied versions: %w", err)
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("read applied versions: %w", err)
		}
		for _, v := range applied {
			if !known[v] {
				return &ErrDatabaseNewer{Version: v, Latest: latest}
			}
		}
		return nil
	})
	if err != nil {
		var newer *ErrDatabaseNewer
		if errors.As(err, &newer) {
			return nil, err
		}
		return nil, fmt.Errorf("store: migrate: %w", err)
	}

	var done []string
	for _, name := range names {
		version := strings.TrimSuffix(name, ".sql")
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return done, fmt.Errorf("store: read migration %s: %w", path.Base(name), err)
		}
		var ran bool
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if err := lockMigrations(ctx, tx); err != nil {
				return err
			}
			var exists bool
			if err := tx.QueryRow(ctx, "select exists(select 1 from schema_migrations where version = $1)", version).Scan(&exists); err != nil {
				return fmt.Errorf("check version: %w", err)
			}
			if exists {
				return nil
			}
			// No arguments: pgx uses the simple protocol, which accepts several statements.
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "insert into schema_migrations (version) values ($1)", version); err != nil {
				return fmt.Errorf("record version: %w", err)
			}
			ran = true
			return nil
		})
		if err != nil {
			return done, fmt.Errorf("store: apply migration %s: %w", version, err)
		}
		if ran {
			done = append(done, version)
		}
	}
	return done, nil
}

// lockMigrations takes the migration lock for the rest of tx and only then
// creates the bookkeeping table: concurrent CREATE TABLE IF NOT EXISTS races
// in PostgreSQL (duplicate key on pg_type), so it must happen under the lock.
func lockMigrations(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "select pg_advisory_xact_lock($1)", migrationLockKey); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `create table if not exists schema_migrations (
		version    text primary key,
		applied_at timestamptz not null default now())`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	return nil
}
