package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// database is what the daemon itself needs from package store; wire.go adapts *store.Store.
type database interface {
	// Migrate applies pending migrations and returns the names of those it applied.
	Migrate(ctx context.Context) ([]string, error)
	Ping(ctx context.Context) error
	// Backlog counts messages stored and not yet delivered, per direction.
	Backlog(ctx context.Context) (backlog, error)
	// HasValidSession reports whether a stored Resonite session can still be used, which lets
	// the daemon start without RESONITE_USERNAME and RESONITE_PASSWORD.
	HasValidSession(ctx context.Context) (bool, error)
	Close()
}

// hooks connect the daemon to the real packages; tests replace them with stubs.
type hooks struct {
	openDB     func(ctx context.Context, cfg *Config, log *slog.Logger) (database, error)
	components func(ctx context.Context, deps deps) ([]component, error)

	// tune adjusts the options of the real parts before they are built (tests shorten
	// intervals with it); nil in production.
	tune func(*partOptions)

	shutdownTimeout time.Duration       // 0: defaultShutdownTimeout
	queuePoll       time.Duration       // 0: defaultQueuePoll
	listening       func(addr net.Addr) // called once the HTTP listener is bound; may be nil
}

// deps is what component constructors get.
type deps struct {
	Config  *Config
	Logger  *slog.Logger
	Metrics *metrics
	DB      database
	Tune    func(*partOptions)
}

const (
	defaultShutdownTimeout = 10 * time.Second
	defaultQueuePoll       = 15 * time.Second
	readyPingTimeout       = 2 * time.Second
)

// errNoCredentials is returned when neither credentials nor a stored session are available.
var errNoCredentials = errors.New("RESONITE_USERNAME and RESONITE_PASSWORD are not set and no valid stored Resonite session exists: set both (plus RESONITE_TOTP_SECRET or RESONITE_TOTP if the account uses 2FA)")

// runDaemon opens and migrates the database, builds the components and runs them with the
// HTTP server and the queue poller until ctx is done or one of them fails.
func runDaemon(ctx context.Context, cfg *Config, base *slog.Logger, m *metrics, h hooks) error {
	// The parts get the base logger and name themselves; the daemon's own lines say "daemon".
	log := base.With("component", "daemon")
	if h.shutdownTimeout <= 0 {
		h.shutdownTimeout = defaultShutdownTimeout
	}
	if h.queuePoll <= 0 {
		h.queuePoll = defaultQueuePoll
	}

	db, err := openAndMigrate(ctx, cfg, base, h)
	if err != nil {
		return err
	}
	defer db.Close()

	if cfg.NeedsStoredSession() {
		ok, err := db.HasValidSession(ctx)
		if err != nil {
			return fmt.Errorf("checking for a stored Resonite session: %w", err)
		}
		if !ok {
			return errNoCredentials
		}
		log.Info("no Resonite credentials configured; using the stored session")
	}

	var comps []component
	if h.components != nil {
		comps, err = h.components(ctx, deps{Config: cfg, Logger: base, Metrics: m, DB: db, Tune: h.tune})
		if err != nil {
			return fmt.Errorf("building components: %w", err)
		}
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listening on HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	log.Info("listening on", "addr", ln.Addr().String(), "paths", "/healthz /readyz /metrics")
	if h.listening != nil {
		h.listening(ln.Addr())
	}

	// stopping flips /readyz to 503 as soon as shutdown starts.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	handler := newHTTPHandler(httpDeps{
		db:         db,
		components: comps,
		metrics:    m,
		stopping:   func() bool { return runCtx.Err() != nil },
	})

	// The HTTP server starts first and stops last, so /readyz answers through the whole drain.
	parts := append([]component{
		newRunner("http", func(ctx context.Context) error { return serveHTTP(ctx, ln, handler) }),
		newRunner("queue-poller", func(ctx context.Context) error { return pollQueue(ctx, db, m, h.queuePoll, log) }),
	}, comps...)
	err = runComponents(runCtx, log, h.shutdownTimeout, parts)
	if err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

func openAndMigrate(ctx context.Context, cfg *Config, base *slog.Logger, h hooks) (database, error) {
	log := base.With("component", "daemon")
	if h.openDB == nil {
		return nil, errors.New("opening database: no store is wired into this build")
	}
	db, err := h.openDB(ctx, cfg, base)
	if err != nil {
		// The store's errors must not carry the password; scrub anyway, it costs nothing.
		return nil, errors.New(scrubSecrets(fmt.Sprintf("opening database %s: %v", redactDSN(cfg.DatabaseURL), err), dsnPasswords(cfg.DatabaseURL)))
	}
	log.Info("database connected", "url", redactDSN(cfg.DatabaseURL))
	applied, err := db.Migrate(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrating database: %w", err)
	}
	log.Info(fmt.Sprintf("migrated %d", len(applied)), "applied", applied)
	return db, nil
}

// backlog is what waits for delivery, per direction.
type backlog struct{ toDiscord, toResonite int64 }

// pollQueue refreshes the queue depth gauge now and then every interval, and logs the backlog
// per direction while there is one (and once when it is gone).
func pollQueue(ctx context.Context, db database, m *metrics, interval time.Duration, log *slog.Logger) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last backlog
	for {
		b, err := db.Backlog(ctx)
		switch {
		case err == nil:
			m.SetQueueDepth(b.toDiscord + b.toResonite)
			if b != last && (b != backlog{} || last != backlog{}) {
				log.Info("backlog", "to_discord", b.toDiscord, "to_resonite", b.toResonite)
			}
			last = b
		case ctx.Err() == nil:
			log.Warn("reading the backlog", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
