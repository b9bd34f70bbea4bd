package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stubDB stands in for the store.
type stubDB struct {
	pingErr      atomic.Value // error wrapper; nil or *errBox
	depth        int64
	depthCalls   atomic.Int32
	secondDepth  chan struct{} // closed on the second Backlog call: the first result is set by then
	validSession bool
	migrateErr   error
	closed       atomic.Bool
	migrated     atomic.Bool
}

type errBox struct{ err error }

func newStubDB() *stubDB {
	return &stubDB{depth: 42, secondDepth: make(chan struct{})}
}

func (d *stubDB) setPingErr(err error) { d.pingErr.Store(&errBox{err}) }

func (d *stubDB) Migrate(context.Context) ([]string, error) {
	d.migrated.Store(true)
	if d.migrateErr != nil {
		return nil, d.migrateErr
	}
	return []string{"001_initial.sql", "002_more.sql"}, nil
}

func (d *stubDB) Ping(context.Context) error {
	if b, ok := d.pingErr.Load().(*errBox); ok {
		return b.err
	}
	return nil
}

func (d *stubDB) Backlog(context.Context) (backlog, error) {
	if d.depthCalls.Add(1) == 2 {
		close(d.secondDepth)
	}
	return backlog{toDiscord: d.depth - 2, toResonite: 2}, nil
}

func (d *stubDB) HasValidSession(context.Context) (bool, error) { return d.validSession, nil }
func (d *stubDB) Close()                                        { d.closed.Store(true) }

// stubComponent blocks until its context ends, unless told to fail; it runs under the same
// runner the daemon's own periodic parts use.
type stubComponent struct {
	*runner
	name    string
	mu      sync.Mutex
	ready   bool
	why     string
	fail    chan error // a value sent here is returned by Run
	started chan struct{}
	stopped chan struct{}
	early   bool // return nil at once, as a buggy component would
	panics  bool
}

func newStubComponent(name string, ready bool, why string) *stubComponent {
	c := &stubComponent{name: name, ready: ready, why: why, fail: make(chan error, 1),
		started: make(chan struct{}), stopped: make(chan struct{})}
	c.runner = newRunner(name, c.Run)
	return c
}

func (c *stubComponent) Run(ctx context.Context) error {
	defer close(c.stopped)
	close(c.started)
	if c.panics {
		panic("boom from " + c.name)
	}
	if c.early {
		return nil
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-c.fail:
		return err
	}
}

func (c *stubComponent) Ready() (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ready, c.why
}

func (c *stubComponent) setReady(ok bool, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready, c.why = ok, why
}

// daemonHarness runs runWith in a goroutine with stub hooks.
type daemonHarness struct {
	db      *stubDB
	comps   []*stubComponent
	metrics chan *metrics
	addr    chan net.Addr
	code    chan int
	stderr  *lockedBuffer
	cancel  context.CancelFunc
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var baseEnv = []string{
	"DISCORD_TOKEN=tok",
	"RESONITE_USERNAME=bridge",
	"RESONITE_PASSWORD=pw",
	"HTTP_ADDR=127.0.0.1:0",
	"LOG_LEVEL=debug",
}

func startDaemon(t *testing.T, env []string, db *stubDB, comps ...*stubComponent) *daemonHarness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &daemonHarness{db: db, comps: comps, metrics: make(chan *metrics, 1), addr: make(chan net.Addr, 1),
		code: make(chan int, 1), stderr: &lockedBuffer{}, cancel: cancel}
	hk := hooks{
		openDB: func(context.Context, *Config, *slog.Logger) (database, error) { return db, nil },
		components: func(_ context.Context, d deps) ([]component, error) {
			h.metrics <- d.Metrics
			out := make([]component, len(comps))
			for i, c := range comps {
				out[i] = c
			}
			return out, nil
		},
		queuePoll: time.Millisecond,
		listening: func(a net.Addr) { h.addr <- a },
	}
	go func() { h.code <- runWith(ctx, []string{"-env-file", noDotenv(t)}, env, io.Discard, h.stderr, hk) }()
	t.Cleanup(func() {
		cancel()
		<-h.code // never leave the daemon running past the test; the code was consumed if needed
	})
	return h
}

// wait returns the exit code once the daemon has stopped; the cleanup then sees a closed path.
func (h *daemonHarness) wait() int {
	code := <-h.code
	h.code <- code // keep it for the cleanup
	return code
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func TestDaemonServesHealthReadinessMetricsAndDrains(t *testing.T) {
	t.Parallel()
	db := newStubDB()
	hub := newStubComponent("resonite-hub", false, "connecting to wss://api.resonite.com/hub")
	bot := newStubComponent("discord-bot", true, "")
	h := startDaemon(t, baseEnv, db, hub, bot)
	base := "http://" + (<-h.addr).String()
	m := <-h.metrics
	<-hub.started
	<-bot.started

	if code, body := httpGet(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}

	// Not ready: the hub says why, the database is down; the ready bot is not listed.
	db.setPingErr(errors.New("connection refused"))
	code, body := httpGet(t, base+"/readyz")
	if code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d, want 503", code)
	}
	for _, want := range []string{"resonite-hub: connecting to wss://api.resonite.com/hub", "database: connection refused"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz body lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "discord-bot") {
		t.Errorf("/readyz lists a ready component:\n%s", body)
	}

	// Database back, hub connected: ready.
	db.setPingErr(nil)
	hub.setReady(true, "")
	if code, body := httpGet(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d %q, want 200", code, body)
	}

	// Metrics: what components report, the polled queue depth, and Go/process collectors.
	m.MessageRelayed(DirectionDiscordToResonite)
	m.MessageRelayed(DirectionDiscordToResonite)
	m.DeliveryFailed(DirectionResoniteToDiscord)
	m.SetHubConnected(true)
	m.SetGatewayConnected(false)
	<-db.secondDepth
	code, body = httpGet(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`resonite_bridge_messages_relayed_total{direction="discord_to_resonite"} 2`,
		`resonite_bridge_messages_relayed_total{direction="resonite_to_discord"} 0`,
		`resonite_bridge_delivery_failures_total{direction="resonite_to_discord"} 1`,
		"resonite_bridge_queue_depth 42",
		"resonite_bridge_hub_connected 1",
		"resonite_bridge_discord_gateway_connected 0",
		`resonite_bridge_build_info{version=`,
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// SIGTERM equivalent: everything drains and the exit code is 0.
	h.cancel()
	if code := h.wait(); code != exitOK {
		t.Errorf("exit %d after cancel, want 0; log:\n%s", code, h.stderr.String())
	}
	<-hub.stopped
	<-bot.stopped
	if !db.closed.Load() {
		t.Error("database not closed on stop")
	}
	log := h.stderr.String()
	if !strings.Contains(log, "msg=backlog component=daemon to_discord=40 to_resonite=2") {
		t.Errorf("log lacks the backlog per direction:\n%s", log)
	}
	for _, want := range []string{"migrated 2", "listening on", "started", "stopping", "msg=stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "pw ") || strings.Contains(log, "=pw") {
		t.Errorf("log leaks the password:\n%s", log)
	}
}

func TestDaemonFatalComponentStopsEverything(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		breakIt func(c *stubComponent)
		wantLog string
	}{
		{"error", func(c *stubComponent) { c.fail <- errors.New("hub rejected login") }, "hub rejected login"},
		{"returns early", func(c *stubComponent) { c.early = true }, "stopped before shutdown was requested"},
		{"panics", func(c *stubComponent) { c.panics = true }, "boom from resonite-hub"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub := newStubComponent("resonite-hub", true, "")
			bot := newStubComponent("discord-bot", true, "")
			tt.breakIt(hub)
			h := startDaemon(t, baseEnv, newStubDB(), hub, bot)
			if code := h.wait(); code != exitFailure {
				t.Errorf("exit %d, want 1", code)
			}
			<-bot.stopped // the healthy component was cancelled
			if log := h.stderr.String(); !strings.Contains(log, tt.wantLog) || !strings.Contains(log, "resonite-hub") {
				t.Errorf("log does not name the failing part and cause %q:\n%s", tt.wantLog, log)
			}
		})
	}
}

func TestDaemonStartFailures(t *testing.T) {
	t.Parallel()
	noCreds := []string{"DISCORD_TOKEN=tok", "HTTP_ADDR=127.0.0.1:0"}
	tests := []struct {
		name    string
		env     []string
		db      func() *stubDB
		code    int
		wantLog string
	}{
		{"no credentials and no stored session", noCreds, newStubDB, exitFailure,
			"RESONITE_USERNAME and RESONITE_PASSWORD are not set and no valid stored Resonite session exists"},
		{"migration fails", baseEnv, func() *stubDB { d := newStubDB(); d.migrateErr = errors.New("syntax error in 002"); return d },
			exitFailure, "migrating database: syntax error in 002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := startDaemon(t, tt.env, tt.db())
			if code := h.wait(); code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if !strings.Contains(h.stderr.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, h.stderr.String())
			}
		})
	}
}

func TestDaemonStartsFromStoredSession(t *testing.T) {
	t.Parallel()
	db := newStubDB()
	db.validSession = true
	c := newStubComponent("resonite-hub", true, "")
	h := startDaemon(t, []string{"DISCORD_TOKEN=tok", "HTTP_ADDR=127.0.0.1:0"}, db, c)
	<-c.started
	h.cancel()
	if code := h.wait(); code != exitOK {
		t.Errorf("exit %d, want 0; log:\n%s", code, h.stderr.String())
	}
}

func TestDaemonHTTPAddrInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	env := append([]string{}, baseEnv...)
	env = append(env, "HTTP_ADDR="+ln.Addr().String())
	h := startDaemon(t, env, newStubDB())
	if code := h.wait(); code != exitFailure {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(h.stderr.String(), "listening on HTTP_ADDR") {
		t.Errorf("log does not explain the bind failure:\n%s", h.stderr.String())
	}
}

func TestDaemonOpenErrorHidesPassword(t *testing.T) {
	t.Parallel()
	hk := hooks{openDB: func(_ context.Context, cfg *Config, _ *slog.Logger) (database, error) {
		return nil, fmt.Errorf("connect %s: refused", cfg.DatabaseURL) // a careless store
	}}
	var stderr bytes.Buffer
	env := append([]string{"DATABASE_URL=postgres://u:OpenSecret1@db/x"}, baseEnv...)
	code := runWith(context.Background(), []string{"-env-file", noDotenv(t)}, env, io.Discard, &stderr, hk)
	if code != exitFailure {
		t.Errorf("exit %d, want 1", code)
	}
	if strings.Contains(stderr.String(), "OpenSecret1") || !strings.Contains(stderr.String(), "opening database") {
		t.Errorf("bad log:\n%s", stderr.String())
	}
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		db      *stubDB
		code    int
		wantLog string
	}{
		{"ok", newStubDB(), exitOK, "migrated 2"},
		{"fails", &stubDB{migrateErr: errors.New("lock timeout")}, exitFailure, "lock timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hk := hooks{openDB: func(context.Context, *Config, *slog.Logger) (database, error) { return tt.db, nil }}
			var stdout, stderr bytes.Buffer
			// No DISCORD_TOKEN: migrate needs only the database.
			code := runWith(context.Background(), []string{"-env-file", noDotenv(t), "migrate"}, nil, &stdout, &stderr, hk)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %s", code, tt.code, stderr.String())
			}
			if !tt.db.migrated.Load() || !strings.Contains(stderr.String(), tt.wantLog) {
				t.Errorf("migrate not run or log lacks %q:\n%s", tt.wantLog, stderr.String())
			}
			if tt.code == exitOK && !tt.db.closed.Load() {
				t.Error("database left open")
			}
		})
	}
}

func TestShutdownTimeoutNamesWhatDidNotStop(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logBuf lockedBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	stopped := make(chan string, 3) // the order parts stopped in
	err := runComponents(ctx, log, 2*time.Second, []component{
		newRunner("stubborn", func(context.Context) error { defer close(done); <-release; return nil }),
		newRunner("polite", func(ctx context.Context) error { <-ctx.Done(); stopped <- "polite"; return nil }),
		// Shutdown is asked for once everything runs.
		newRunner("trigger", func(ctx context.Context) error { cancel(); <-ctx.Done(); stopped <- "trigger"; return nil }),
	})
	close(release)
	<-done
	if !errors.Is(err, errDrainTimeout) || !strings.Contains(err.Error(), "still running: [stubborn]") {
		t.Errorf("err = %v, want a drain timeout naming only stubborn", err)
	}
	if strings.Contains(err.Error(), "polite") {
		t.Errorf("err names a part that stopped: %v", err)
	}
	if first, second := <-stopped, <-stopped; first != "trigger" || second != "polite" {
		t.Errorf("stop order = %s, %s; want the reverse of the start order (trigger, polite)", first, second)
	}
	if !strings.Contains(logBuf.String(), "shutdown timed out") {
		t.Errorf("log lacks the timeout:\n%s", logBuf.String())
	}
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		writeText(w, 200, "ok\n")
	}))
	t.Cleanup(ok.Close)
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeText(w, 503, "down\n")
	}))
	t.Cleanup(sick.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	okAddr := strings.TrimPrefix(ok.URL, "http://")
	tests := []struct {
		name string
		args []string
		env  []string
		code int
	}{
		{"healthy by url", []string{"healthcheck", "-url", ok.URL + "/healthz"}, nil, exitOK},
		{"healthy via HTTP_ADDR", []string{"healthcheck"}, []string{"HTTP_ADDR=" + okAddr}, exitOK},
		{"unhealthy", []string{"healthcheck", "-url", sick.URL + "/healthz"}, nil, exitFailure},
		{"unreachable", []string{"healthcheck", "-url", closedURL + "/healthz"}, nil, exitFailure},
		{"bad HTTP_ADDR", []string{"healthcheck"}, []string{"HTTP_ADDR=nope"}, exitUsage},
		{"extra args", []string{"healthcheck", "x"}, nil, exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			args := append([]string{"-env-file", noDotenv(t)}, tt.args...)
			if code := runWith(context.Background(), args, tt.env, &stdout, &stderr, hooks{}); code != tt.code {
				t.Errorf("exit %d, want %d; stderr %s", code, tt.code, stderr.String())
			}
		})
	}
}

func TestHealthURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ addr, want string }{
		{"", "http://localhost:9464/healthz"},
		{"0.0.0.0:9464", "http://127.0.0.1:9464/healthz"},
		{":8080", "http://127.0.0.1:8080/healthz"},
		{"[::]:9464", "http://[::1]:9464/healthz"},
		{"10.0.0.5:9464", "http://10.0.0.5:9464/healthz"},
	}
	for _, tt := range tests {
		env := map[string]string{}
		if tt.addr != "" {
			env["HTTP_ADDR"] = tt.addr
		}
		got, err := healthURL(env, noDotenv(t))
		if err != nil || got != tt.want {
			t.Errorf("healthURL(%q) = %q, %v; want %q", tt.addr, got, err, tt.want)
		}
	}
}
