package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
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
	// SteppedDown: the daemon ran before and stood down (another instance took the instance
	// lock); now it waits for the lock again.
	SteppedDown bool
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

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listening on HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	log.Info("listening on", "addr", ln.Addr().String(), "paths", "/healthz /readyz /metrics")
	if h.listening != nil {
		h.listening(ln.Addr())
	}

	// stopping flips /readyz to 503 as soon as shutdown starts. The handler is the current run's:
	// /readyz lists that run's parts, or says that the daemon is waiting.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var current atomic.Pointer[http.Handler]
	serve := func(comps []component) {
		hd := newHTTPHandler(httpDeps{db: db, components: comps, metrics: m, stopping: func() bool { return runCtx.Err() != nil }})
		current.Store(&hd)
	}
	serve([]component{waitingPart{"daemon", "starting"}})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*current.Load()).ServeHTTP(w, r) })

	// The HTTP server and the queue poller run for the whole life of the daemon, through every
	// run of the parts: the server starts first and stops last, so /readyz answers through the
	// whole drain and while the daemon stands by.
	always := []component{
		newRunner("http", func(ctx context.Context) error { return serveHTTP(ctx, ln, handler) }),
		newRunner("queue-poller", func(ctx context.Context) error { return pollQueue(ctx, db, m, h.queuePoll, log) }),
	}
	started := 0
	var fatal error
	for _, p := range always {
		if err := startGuarded(runCtx, p); err != nil {
			fatal = fmt.Errorf("%s: %w", p.Name(), err)
			break
		}
		started++
	}
	// A failure of one of them ends the current run like a signal does, and then the daemon.
	partsCtx, stopParts := context.WithCancel(runCtx)
	defer stopParts()
	alwaysFailed := make(chan error, len(always))
	var watchers sync.WaitGroup
	stopWatch := make(chan struct{})
	for _, p := range always[:started] {
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			select {
			case err := <-p.(failer).Failed():
				alwaysFailed <- fmt.Errorf("%s: %w", p.Name(), err)
				stopParts()
			case <-stopWatch:
			}
		}()
	}

	// Each run: build the parts (production: take the instance lock first, waiting while
	// another instance holds it) and run them until shutdown, a fatal error, or a step-down
	// (another instance took the lock while the database was unreachable), after which the
	// parts are stopped in order and the daemon waits for the lock again, as at start.
	steppedDown := false
	for fatal == nil && partsCtx.Err() == nil {
		var comps []component
		if h.components != nil {
			comps, err = h.components(partsCtx, deps{Config: cfg, Logger: base, Metrics: m, DB: db, Tune: h.tune, SteppedDown: steppedDown})
			if err != nil {
				if partsCtx.Err() != nil { // shutdown while waiting for the lock
					log.Info("stopping", "reason", "signal")
					break
				}
				fatal = fmt.Errorf("building components: %w", err)
				break
			}
		}
		serve(comps)
		err = runComponents(partsCtx, log, h.shutdownTimeout, comps)
		if errors.Is(err, errStepDown) && !errors.Is(err, errDrainTimeout) && partsCtx.Err() == nil {
			log.Warn("stood down: every part stopped; waiting for the instance lock")
			serve([]component{waitingPart{"instance-lock", "standing by: another instance holds the instance lock"}})
			steppedDown = true
			continue
		}
		fatal = err
	}
	close(stopWatch)
	watchers.Wait()
	close(alwaysFailed)
	var errs []error
	for err := range alwaysFailed {
		errs = append(errs, err)
	}
	stopCtx, cancelStop := context.WithTimeout(context.WithoutCancel(ctx), h.shutdownTimeout)
	defer cancelStop()
	for i := started - 1; i >= 0; i-- {
		if err := stopGuarded(stopCtx, always[i]); err != nil {
			log.Warn("stopped with error", "part", always[i].Name(), "err", err)
		}
	}
	if err := errors.Join(append(errs, fatal)...); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// errStepDown ends a run of the parts without ending the daemon: another instance holds the
// instance lock, so this one must stop delivering and wait for the lock.
var errStepDown = errors.New("another instance holds the instance lock")

// waitingPart stands in /readyz for the parts while there are none: at start and in standby.
type waitingPart struct{ name, why string }

func (w waitingPart) Name() string              { return w.name }
func (w waitingPart) Ready() (bool, string)     { return false, w.why }
func (waitingPart) Start(context.Context) error { return nil }
func (waitingPart) Stop(context.Context) error  { return nil }

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
