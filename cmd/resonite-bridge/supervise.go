package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
)

// task is one long-running part of the daemon. run blocks until ctx is done and returns nil on
// a clean stop; any error, or returning before ctx is done, is fatal to the whole daemon.
type task struct {
	name string
	run  func(ctx context.Context) error
}

// errDrainTimeout reports that some tasks did not stop within the shutdown timeout.
var errDrainTimeout = errors.New("shutdown timed out")

// supervise runs every task in its own goroutine until ctx is done or one task fails, then
// cancels the rest and waits up to drain for them. It returns the first fatal error (nil when
// ctx ended the run), or an error wrapping errDrainTimeout naming the tasks that did not stop;
// those are abandoned because the process is about to exit.
func supervise(ctx context.Context, log *slog.Logger, drain time.Duration, tasks []task) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(tasks)) // buffered: a late task never blocks on send
	var mu sync.Mutex
	running := map[string]bool{}
	var wg sync.WaitGroup
	for _, t := range tasks {
		running[t.name] = true // filled before any task starts, so no lock is needed here
	}
	for _, t := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := runGuarded(ctx, log, t)
			if err == nil && ctx.Err() == nil {
				err = errors.New("stopped before shutdown was requested")
			}
			mu.Lock()
			delete(running, t.name)
			mu.Unlock()
			results <- result{t.name, err}
		}()
	}

	var fatal error
	pending := len(tasks)
	if pending > 0 {
		select {
		case <-ctx.Done():
			log.Info("stopping", "reason", "signal")
		case r := <-results:
			pending--
			fatal = fmt.Errorf("%s: %w", r.name, r.err)
			log.Error("stopping", "reason", "fatal error", "part", r.name, "err", r.err)
		}
	}
	cancel()

	timer := time.NewTimer(drain)
	defer timer.Stop()
	for pending > 0 {
		select {
		case r := <-results:
			pending--
			if r.err != nil && !errors.Is(r.err, context.Canceled) {
				log.Warn("stopped with error", "part", r.name, "err", r.err)
			} else {
				log.Debug("stopped", "part", r.name)
			}
		case <-timer.C:
			mu.Lock()
			names := make([]string, 0, len(running))
			for n := range running {
				names = append(names, n)
			}
			mu.Unlock()
			slices.Sort(names)
			log.Error("shutdown timed out; exiting anyway", "timeout", drain, "still_running", names)
			err := fmt.Errorf("%w after %s: still running: %s", errDrainTimeout, drain, strings.Join(names, ", "))
			return errors.Join(fatal, err)
		}
	}
	wg.Wait() // every goroutine has sent its result, so this returns at once
	return fatal
}

// runGuarded runs t and turns a panic into an error, so a bug in one part stops the daemon
// cleanly (draining the others) instead of killing it mid-write.
func runGuarded(ctx context.Context, log *slog.Logger, t task) (err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("panic", "part", t.name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return t.run(ctx)
}
