package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// component is one long-running part of the daemon (the Resonite connection, the bridge, the
// Resonite event loop, the Discord bot, the periodic jobs, the HTTP server). Every part has the
// same shape, so that one owner starts and stops them all in order.
type component interface {
	Name() string
	// Start launches the part and returns once it runs; an error means it could not start.
	// ctx carries values and bounds Start itself; the part runs until Stop.
	Start(ctx context.Context) error
	// Stop ends the part and returns when nothing it started still runs, or with ctx's error
	// when ctx ends first.
	Stop(ctx context.Context) error
	// Ready reports whether the part can do its job now and, if not, why (shown by /readyz).
	Ready() (bool, string)
}

// failer is a component that can fail on its own after Start (a fatal gateway close, a lost
// instance lock, a panic in a runner): the daemon then stops everything.
type failer interface {
	Failed() <-chan error
}

// drainer is a part whose Stop ends with a tail that needs nothing from the other parts and
// only waits (the Discord gateway's close handshake, a second in discordgo): Drain is the rest
// of its Stop. The owner drains it in its turn and stops it after all the others, so that the
// tail runs alongside their stops instead of before them.
type drainer interface {
	Drain(ctx context.Context) error
}

// errDrainTimeout reports that some parts did not stop within the shutdown timeout.
var errDrainTimeout = errors.New("shutdown timed out")

// runComponents starts the parts in order, runs until ctx ends or one of them fails, then stops
// the started ones in reverse order, all within the drain budget. Reverse order is what makes
// shutdown safe: parts that bring in new work are started last and stopped first, the bridge
// drains its deliveries while the connections it needs are still up, and the connections close
// after it. It returns the fatal error (nil when ctx ended the run) joined with errDrainTimeout
// naming the parts that did not stop in time.
func runComponents(ctx context.Context, log *slog.Logger, drain time.Duration, parts []component) error {
	var fatal error
	started := 0
	for _, p := range parts {
		if ctx.Err() != nil {
			break
		}
		if err := startGuarded(ctx, p); err != nil {
			fatal = fmt.Errorf("%s: %w", p.Name(), err)
			log.Error("stopping", "reason", "start failed", "part", p.Name(), "err", err)
			break
		}
		started++
	}
	if started == len(parts) {
		names := make([]string, len(parts))
		for i, p := range parts {
			names[i] = p.Name()
		}
		log.Info("started", "components", names)
	}

	if fatal == nil && ctx.Err() == nil {
		failed := make(chan error, 1)
		stopWatch := make(chan struct{})
		var watchers sync.WaitGroup
		for _, p := range parts[:started] {
			f, ok := p.(failer)
			if !ok {
				continue
			}
			watchers.Add(1)
			go func() {
				defer watchers.Done()
				select {
				case err := <-f.Failed():
					select {
					case failed <- fmt.Errorf("%s: %w", p.Name(), err):
					default:
					}
				case <-stopWatch:
				}
			}()
		}
		select {
		case <-ctx.Done():
			log.Info("stopping", "reason", "signal")
		case fatal = <-failed:
			log.Error("stopping", "reason", "fatal error", "err", fatal)
		}
		close(stopWatch)
		watchers.Wait()
	}

	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
	defer cancel()
	var stuck []string
	stopped := func(p component, began time.Time, err error) {
		switch {
		case err != nil && stopCtx.Err() != nil:
			stuck = append(stuck, p.Name())
			log.Error("part did not stop in time", "part", p.Name(), "err", err)
		case err != nil:
			log.Warn("stopped with error", "part", p.Name(), "err", err)
		default:
			log.Debug("stopped", "part", p.Name(), "took", time.Since(began).Round(time.Millisecond))
		}
	}
	type tail struct {
		p     component
		began time.Time
	}
	var tails []tail
	for i := started - 1; i >= 0; i-- {
		p := parts[i]
		began := time.Now()
		if d, ok := p.(drainer); ok {
			if err := drainGuarded(stopCtx, p, d); err != nil {
				stopped(p, began, err)
				continue
			}
			log.Debug("drained", "part", p.Name(), "took", time.Since(began).Round(time.Millisecond))
			tails = append(tails, tail{p, began})
			continue
		}
		stopped(p, began, stopGuarded(stopCtx, p))
	}
	for _, t := range tails {
		stopped(t.p, t.began, stopGuarded(stopCtx, t.p))
	}
	if len(stuck) > 0 {
		log.Error("shutdown timed out; exiting anyway", "timeout", drain, "still_running", stuck)
		return errors.Join(fatal, fmt.Errorf("%w after %s: still running: %v", errDrainTimeout, drain, stuck))
	}
	return fatal
}

// startGuarded and stopGuarded turn a panic into an error, so a bug in one part stops the
// daemon cleanly (stopping the others) instead of killing it mid-write.
func startGuarded(ctx context.Context, p component) (err error) {
	defer recoverInto(&err, p.Name())
	return p.Start(ctx)
}

func stopGuarded(ctx context.Context, p component) (err error) {
	defer recoverInto(&err, p.Name())
	return p.Stop(ctx)
}

func drainGuarded(ctx context.Context, p component, d drainer) (err error) {
	defer recoverInto(&err, p.Name())
	return d.Drain(ctx)
}

func recoverInto(err *error, name string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("panic in %s: %v\n%s", name, r, debug.Stack())
	}
}

// runner is a component made of one function that runs until its context ends: Start runs it
// in a goroutine, Stop cancels it and waits. The function returning early, with an error or by
// a panic, fails the daemon.
type runner struct {
	name  string
	run   func(ctx context.Context) error
	ready func() (bool, string) // nil: always ready

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	failed chan error
	err    error // what run returned after Stop; read once done is closed
}

func newRunner(name string, run func(ctx context.Context) error) *runner {
	return &runner{name: name, run: run, failed: make(chan error, 1)}
}

func (r *runner) Name() string { return r.name }

func (r *runner) Ready() (bool, string) {
	if r.ready == nil {
		return true, ""
	}
	return r.ready()
}

func (r *runner) Failed() <-chan error { return r.failed }

func (r *runner) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		return errors.New("started already")
	}
	ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		var err error
		func() {
			defer recoverInto(&err, r.name)
			err = r.run(ctx)
		}()
		if err == nil && ctx.Err() == nil {
			err = errors.New("stopped before shutdown was requested")
		}
		if err != nil && ctx.Err() == nil {
			r.failed <- err // buffered: the first failure is kept for the owner
			return
		}
		r.err = err
	}()
	return nil
}

func (r *runner) Stop(ctx context.Context) error {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
