package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Cluster is a throwaway PostgreSQL server of one test's own, which the test may stop, start
// and restart (database outages, restarts) without disturbing the shared server the other
// tests use. It is started from the local binaries like the shared throwaway cluster (as the
// postgres user when run as root), and removed when the test ends. Without binaries the test
// is skipped (failed under CI=true).
type Cluster struct {
	tb testing.TB
	mu sync.Mutex
	c  *cluster
}

// NewCluster starts a new throwaway cluster for tb.
func NewCluster(tb testing.TB) *Cluster {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := startCluster(ctx)
	if err != nil {
		unavailable(tb, fmt.Errorf("no throwaway cluster: %w", err))
	}
	cl := &Cluster{tb: tb, c: c}
	tb.Cleanup(func() {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		if err := cl.c.stop(); err != nil {
			tb.Errorf("storetest: removing the cluster: %v", err)
		}
	})
	return cl
}

// URL is the DSN of the cluster's postgres database (superuser postgres, no password). It
// stays valid across Stop, Start and Restart: the server comes back on the same port.
func (c *Cluster) URL() string { return c.c.dsn }

// Stop shuts the server down in fast mode, as an administrator's restart does: every session
// is ended (its advisory locks released) and new connections are refused until Start.
func (c *Cluster) Stop() {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.c.stopServer(); err != nil {
		c.tb.Fatalf("storetest: stopping the cluster: %v", err)
	}
}

// Start starts the stopped server again on the same port and data, and returns once it
// accepts connections.
func (c *Cluster) Start() {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.c.startServer(ctx); err != nil {
		c.tb.Fatalf("storetest: starting the cluster: %v", err)
	}
}

// Restart is Stop then Start.
func (c *Cluster) Restart() {
	c.tb.Helper()
	c.Stop()
	c.Start()
}
