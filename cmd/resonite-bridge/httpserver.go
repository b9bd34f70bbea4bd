package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

type httpDeps struct {
	db         interface{ Ping(context.Context) error }
	components []component
	metrics    *metrics
	stopping   func() bool
}

// newHTTPHandler serves /healthz (the process is alive), /readyz (database and every component
// ready) and /metrics.
func newHTTPHandler(d httpDeps) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		notReady := readiness(r.Context(), d)
		if len(notReady) > 0 {
			writeText(w, http.StatusServiceUnavailable, "not ready:\n"+strings.Join(notReady, "\n")+"\n")
			return
		}
		writeText(w, http.StatusOK, "ready\n")
	})
	mux.Handle("GET /metrics", d.metrics.handler())
	return mux
}

// readiness lists every part that is not ready, one "name: why" line each.
func readiness(ctx context.Context, d httpDeps) []string {
	var notReady []string
	if d.stopping != nil && d.stopping() {
		notReady = append(notReady, "daemon: shutting down")
	}
	ctx, cancel := context.WithTimeout(ctx, readyPingTimeout)
	defer cancel()
	if err := d.db.Ping(ctx); err != nil {
		notReady = append(notReady, "database: "+oneLine(err.Error()))
	}
	for _, c := range d.components {
		if ok, why := c.Ready(); !ok {
			if why == "" {
				why = "not ready"
			}
			notReady = append(notReady, c.Name()+": "+oneLine(why))
		}
	}
	return notReady
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

const httpShutdownTimeout = 5 * time.Second

// serveHTTP serves h on ln until ctx is done, then shuts the server down gracefully.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	shCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(shCtx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		return fmt.Errorf("shutting down HTTP: %w", err)
	}
	return nil
}
