package storetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// server is the PostgreSQL these tests use, found or started on first need.
// Package-level because a test binary has one of it; it only ever holds the
// result of that one lookup and the throwaway cluster to stop.
var server = &pgServer{}

type pgServer struct {
	mu       sync.Mutex
	resolved bool
	admin    string // DSN of a database we may CREATE DATABASE from
	err      error
	cluster  *cluster
}

func (s *pgServer) adminURL(tb testing.TB) string {
	tb.Helper()
	s.mu.Lock()
	if !s.resolved {
		s.admin, s.cluster, s.err = resolve()
		s.resolved = true
	}
	admin, err := s.admin, s.err
	s.mu.Unlock()
	if err != nil {
		unavailable(tb, err)
	}
	return admin
}

func (s *pgServer) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cluster == nil {
		return nil
	}
	err := s.cluster.stop()
	s.cluster = nil
	s.resolved, s.admin, s.err = true, "", errors.New("storetest: the throwaway cluster was stopped by Main")
	return err
}

const defaultProbeAddr = "127.0.0.1:5432"

func resolve() (string, *cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if dsn := os.Getenv("TEST_DATABASE_URL"); dsn != "" {
		if err := check(ctx, dsn); err != nil {
			return "", nil, fmt.Errorf("TEST_DATABASE_URL: %w", err)
		}
		return dsn, nil, nil
	}
	addr := os.Getenv("STORETEST_PROBE_ADDR")
	if addr == "" {
		addr = defaultProbeAddr
	}
	if reachable(addr) {
		dsn := "postgres://postgres@" + addr + "/test?sslmode=disable"
		err := check(ctx, dsn)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // no database "test": use the maintenance one
			dsn = withDatabase(dsn, "postgres")
			err = check(ctx, dsn)
		}
		if err != nil {
			return "", nil, fmt.Errorf("PostgreSQL at %s: %w", addr, err)
		}
		return dsn, nil, nil
	}
	c, err := startCluster(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("nothing answers on %s and no throwaway cluster: %w", addr, err)
	}
	return c.dsn, c, nil
}

func check(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// cluster is a throwaway PostgreSQL server: a postgres child process (not
// daemonised by pg_ctl, so the kernel can kill it with us via Pdeathsig) on
// a data folder in a temporary directory, which the next cluster's start
// removes should we die before Main removes it.
type cluster struct {
	dir   string
	owner *os.File // holds the folder's owner lock while we live; see sweepStale
	cmd   *exec.Cmd
	dsn   string

	bin  string              // folder of the server binaries
	cred *syscall.Credential // nil: run as ourselves
	port int
}

// clusterPrefix names the throwaway clusters' folders in the temporary directory.
const clusterPrefix = "storetest-pg-"

// ownerLock is the file in a cluster folder that its test process holds an
// exclusive flock on. The kernel drops the lock when that process dies however
// it dies (SIGKILL, a test timeout's panic), so a folder whose lock can be taken
// is a leftover: Main never got to remove it.
const ownerLock = "owner.lock"

// sweepStale removes the cluster folders that dead test processes left behind.
// Their servers are gone already (Pdeathsig); a folder without an owner lock is
// not touched (made before this check existed, or by someone else).
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), clusterPrefix+"*"))
	for _, dir := range dirs {
		f, err := os.OpenFile(filepath.Join(dir, ownerLock), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			_ = os.RemoveAll(dir)
		}
		_ = f.Close()
	}
}

// lockOwner takes dir's owner lock for this process. The lock file is locked
// under another name and only then renamed into place, so a concurrent
// sweepStale never finds it unlocked.
func lockOwner(dir string) (*os.File, error) {
	tmp := filepath.Join(dir, ownerLock+".new")
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create owner lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("take owner lock: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ownerLock)); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("place owner lock: %w", err)
	}
	return f, nil
}

// startCluster creates a throwaway cluster and starts its server.
func startCluster(ctx context.Context) (*cluster, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	sweepStale()
	dir, err := os.MkdirTemp("", clusterPrefix)
	if err != nil {
		return nil, fmt.Errorf("create temp folder: %w", err)
	}
	c := &cluster{dir: dir, bin: bin, cred: cred}
	ok := false
	defer func() {
		if !ok {
			_ = c.stop()
		}
	}()
	if c.owner, err = lockOwner(dir); err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("give %s to the postgres user: %w", dir, err)
		}
	}
	logFile, err := os.Create(c.logPath())
	if err != nil {
		return nil, fmt.Errorf("create server log: %w", err)
	}
	defer logFile.Close()

	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", c.dataDir(), "-A", "trust", "-U", "postgres",
		"-E", "UTF8", "--no-locale", "--no-sync")
	initdb.Stdout, initdb.Stderr = logFile, logFile
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := initdb.Run(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, tail(c.logPath()))
	}

	if c.port, err = freePort(); err != nil {
		return nil, err
	}
	c.dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
	if err := c.startServer(ctx); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

func (c *cluster) logPath() string { return filepath.Join(c.dir, "server.log") }
func (c *cluster) dataDir() string { return filepath.Join(c.dir, "data") }

// startServer starts the server on the cluster's port and waits until it accepts connections.
func (c *cluster) startServer(ctx context.Context) error {
	if c.cmd != nil {
		return errors.New("postgres runs already")
	}
	logFile, err := os.OpenFile(c.logPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	defer logFile.Close()
	// Durability is pointless for a throwaway cluster; speed is not.
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), "-D", c.dataDir(), "-p", strconv.Itoa(c.port), "-k", c.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=300")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.cmd = cmd
	for {
		if exited(c.cmd) {
			c.cmd = nil
			return fmt.Errorf("postgres exited at start: %s", tail(c.logPath()))
		}
		if err := check(ctx, c.dsn); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres did not accept connections: %w: %s", ctx.Err(), tail(c.logPath()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stopServer shuts the server down in fast mode (as a restart does: every session ends, its
// locks go) and waits until it exited; the data folder stays.
func (c *cluster) stopServer() error {
	if c.cmd == nil || c.cmd.Process == nil {
		c.cmd = nil
		return nil
	}
	var err error
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	deadline := time.Now().Add(30 * time.Second)
	for !exited(c.cmd) {
		if time.Now().After(deadline) {
			_ = c.cmd.Process.Kill()
			err = errors.New("postgres did not stop within 30s; killed")
			deadline = time.Now().Add(time.Hour)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.cmd = nil
	return err
}

// stop shuts the server down (fast mode) and removes its folder.
func (c *cluster) stop() error {
	var errs []error
	if err := c.stopServer(); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", c.dir, err))
	}
	if c.owner != nil {
		_ = c.owner.Close() // after the removal: until then the folder is ours
		c.owner = nil
	}
	return errors.Join(errs...)
}

// exited reaps the child without blocking (no goroutine left waiting on it).
func exited(cmd *exec.Cmd) bool {
	var ws syscall.WaitStatus
	pid, err := syscall.Wait4(cmd.Process.Pid, &ws, syscall.WNOHANG, nil)
	return pid == cmd.Process.Pid || errors.Is(err, syscall.ECHILD)
}

// findBinaries returns the folder holding initdb and postgres.
func findBinaries() (string, error) {
	var candidates []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		candidates = append(candidates, filepath.Dir(p))
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major first; "9.6" < "10" needs a numeric sort.
	slices.SortFunc(found, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	candidates = append(candidates, found...)
	for _, dir := range candidates {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, postgres) in PATH or /usr/lib/postgresql/*/bin")
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// credential: PostgreSQL refuses to run as root, so as root the cluster runs
// as the postgres user; otherwise as ourselves.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL needs a non-root user: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("postgres user ids: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the end of the server log for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}
