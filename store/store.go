// Package store is the PostgreSQL persistence of the bridge: pairings,
// subscriptions, the relay outbox (which doubles as the id map between
// Discord and Resonite), catch-up cursors and the Resonite account state.
// Every method takes a context first and wraps its errors with what it was
// doing. It speaks the bridge's own types (bridge/core): rows that do not
// exist are core.ErrNotFound, rows in the way core.ErrConflict, both matched
// with errors.Is.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resonite-bridge/resonite-bridge/migrations"
)

// Store is the bridge's database. It is safe for concurrent use.
type Store struct {
	pool     *pgxpool.Pool
	logger   *slog.Logger
	watchers pairingWatchers // see WatchPairings
	// secrets seals tokens at rest; nil keeps them plain (see UseSecretKey).
	secrets atomic.Pointer[sealer]
}

// Open connects to databaseURL with pool limits suited to a long-running
// daemon and checks the connection. It does not migrate: call Migrate.
// A pool_max_conns (and the other pool_* keys) in the URL win over the defaults.
// The returned error never contains the password. logger (nil: discard) is
// used as given, so the caller names the component (log.With("component",
// "store")); errors, should the store ever log one, go under the key "err".
func Open(ctx context.Context, databaseURL string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, redact(fmt.Errorf("store: parse database URL: %w", err), passwordOf(databaseURL, ""))
	}
	password := passwordOf(databaseURL, cfg.ConnConfig.Password)
	if !strings.Contains(databaseURL, "pool_max_conns") {
		cfg.MaxConns = 10
	}
	if !strings.Contains(databaseURL, "pool_min_idle_conns") {
		cfg.MinIdleConns = 1
	}
	cfg.MaxConnLifetime = 30 * time.Minute
	cfg.MaxConnLifetimeJitter = 5 * time.Minute
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 30 * time.Second
	cfg.PingTimeout = 2 * time.Second
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "resonite-bridge"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, redact(fmt.Errorf("store: create pool: %w", err), password)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, redact(fmt.Errorf("store: connect to %s: %w", describe(cfg), err), password)
	}
	return &Store{pool: pool, logger: logger}, nil
}

// Close closes every connection. The Store must not be used afterwards.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers (readiness probes).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Pool exposes the pool for the few callers that need raw access (tests,
// leader election on a hijacked connection).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Migrate applies the migrations embedded in the binary; see the function Migrate.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	applied, err := Migrate(ctx, s.pool, migrations.FS)
	for _, v := range applied {
		s.logger.Info("applied database migration", slog.String("version", v))
	}
	return applied, err
}

// describe names the database without credentials, for error messages.
func describe(cfg *pgxpool.Config) string {
	return fmt.Sprintf("database %q on %s:%d as %q", cfg.ConnConfig.Database, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.User)
}

// passwordOf finds the password in a URL-form DSN when parsing failed before
// pgx could tell us; known wins when set.
func passwordOf(dsn, known string) string {
	if known != "" {
		return known
	}
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		p, _ := u.User.Password()
		return p
	}
	return ""
}

// redactedError keeps the error chain for errors.Is/As but prints a text
// from which the password has been removed. pgx already redacts in the cases
// we know of; this is the safety net.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

func redact(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), password, "xxxxx")
	msg = strings.ReplaceAll(msg, url.QueryEscape(password), "xxxxx")
	return &redactedError{msg: msg, cause: err}
}

// isUniqueViolation reports a unique_violation (23505).
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// isForeignKeyViolation reports a foreign_key_violation (23503).
func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

// isDeadlock reports a deadlock_detected (40P01).
// retryDeadlocks runs try until it ends in something other than a deadlock (40P01: PostgreSQL
// aborted it for a concurrent transaction that took the same rows in another order; the next
// try sees that one's result), at most claimTries times, and returns its last error.
func retryDeadlocks(try func() error) error {
	var err error
	for range claimTries {
		if err = try(); !isDeadlock(err) {
			break
		}
	}
	return err
}

func isDeadlock(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "40P01"
}
