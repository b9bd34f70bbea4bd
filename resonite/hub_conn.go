package resonite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/coder/websocket"
	"github.com/philippseith/signalr"
)

const (
	hubReadLimit      = 4 << 20 // the library's 32 KiB default drops the connection on bigger pushes
	hubDialTimeout    = 15 * time.Second
	hubHandshakeLimit = 15 * time.Second
	hubKeepAlive      = 10 * time.Second
	hubStepTimeout    = 30 * time.Second // one start-up call
	maxPartialFrame   = 16 << 20
)

var (
	errTokenRenewed = errors.New("token renewed: reconnecting with the new header")
	// errNoNegotiate marks negotiate answers that mean "not offered here": dial directly.
	errNoNegotiate = errors.New("negotiate not offered")
)

// hubConn is one live connection: its library client and the goroutines working for it.
type hubConn struct {
	client   signalr.Client
	ctx      context.Context
	cancel   context.CancelCauseFunc
	listened map[string]bool // broadcast keys subscribed on this connection (guarded by Hub.mu)
	fc       *frameConn

	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

// goWork runs f for this connection; it ends with the connection.
func (c *hubConn) goWork(f func(ctx context.Context)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f(c.ctx)
	}()
}

// stop waits for the connection's goroutines; the connection must be cancelled already.
func (c *hubConn) stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.wg.Wait()
}

func newHubBackoff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 500 * time.Millisecond // with the default ±50 % jitter: first retry within 0.75 s
	b.MaxInterval = 60 * time.Second
	b.MaxElapsedTime = 0 // never give up (the library's default stops after 15 min)
	b.Reset()
	return b
}

// run is the connect loop: connect, serve until the connection ends, back off, repeat.
func (h *Hub) run(ctx context.Context) {
	b := newHubBackoff()
	connects := 0
	for ctx.Err() == nil {
		h.setState(ConnConnecting, nil)
		up, err := h.connectOnce(ctx, connects)
		if ctx.Err() != nil {
			return
		}
		if up {
			connects++
			b.Reset()
			// connectOnce returned after the connection's last event was queued, so this
			// comes after all of them and before anything of the next connection.
			if !h.q.add(ctx, Disconnected{Err: err}) {
				return
			}
		}
		h.setState(ConnDisconnected, err)
		if errors.Is(err, errTokenRenewed) {
			select {
			case <-h.renewed: // this renewal's wake-up; left in, it would skip the next back-off
			default:
			}
			h.log.Info("hub: reconnecting after a token renewal")
			continue
		}
		wait := b.NextBackOff()
		h.log.Warn("hub: disconnected; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-h.renewed:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// watchRenewals turns token renewals into a reconnect with the new header.
func (h *Hub) watchRenewals(ctx context.Context) {
	for {
		ch := h.o.Auth.TokenRenewed()
		if ch == nil {
			return
		}
		select {
		case _, ok := <-ch:
			if !ok {
				if h.o.Auth.TokenRenewed() == ch {
					return // closed for good: nothing more to watch
				}
				continue
			}
		case <-ctx.Done():
			return
		}
		h.mu.Lock()
		c := h.cur
		h.mu.Unlock()
		if c != nil {
			c.cancel(errTokenRenewed) // run reconnects at once
			continue
		}
		select { // between connections: cut the back-off wait short
		case h.renewed <- struct{}{}:
		default:
		}
	}
}

// connectOnce dials, serves the connection until it ends, and reports whether it got up.
func (h *Hub) connectOnce(ctx context.Context, connects int) (up bool, err error) {
	hdr, err := h.o.Auth.HubAuthorization(ctx)
	if err != nil {
		return false, fmt.Errorf("resonite: getting hub credentials: %w", err)
	}
	if id := userFromHeader(hdr); id != "" {
		h.mu.Lock()
		h.self = id
		h.mu.Unlock()
	}
	connCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ws, err := h.dial(connCtx, hdr)
	if err != nil {
		if errors.Is(err, ErrHubAuth) {
			rctx, rcancel := context.WithTimeout(ctx, hubStepTimeout)
			rerr := h.o.Auth.Relogin(rctx, hdr)
			rcancel()
			if rerr != nil {
				return false, fmt.Errorf("%w; relogin failed: %w", err, rerr)
			}
		}
		return false, err
	}
	c := &hubConn{ctx: connCtx, cancel: cancel, listened: map[string]bool{}}
	fc := newFrameConn(connCtx, cancel, ws, h, c)
	c.fc = fc
	defer fc.close() // after it, no event of this connection can be sent
	var watch sync.WaitGroup
	watch.Add(1)
	go func() { defer watch.Done(); fc.watchdog(h.o.IdleTimeout, h.q) }()
	defer watch.Wait()

	client, err := signalr.NewClient(connCtx,
		signalr.WithConnection(fc),
		signalr.WithReceiver(hubReceiver{}),
		signalr.Logger(slogKit{h.log}, false),
		signalr.MaximumReceiveMessageSize(1<<20),
		signalr.KeepAliveInterval(hubKeepAlive),
		signalr.HandshakeTimeout(hubHandshakeLimit),
		signalr.TimeoutInterval(2*h.o.IdleTimeout), // never fires in v0.7.0; the watchdog does the job
		signalr.ChanReceiveTimeout(hubStepTimeout),
	)
	if err != nil {
		cancel(err)
		return false, fmt.Errorf("resonite: creating hub client: %w", err)
	}
	c.client = client
	client.Start()
	defer client.Stop()

	hctx, hcancel := context.WithTimeout(connCtx, hubHandshakeLimit+time.Second)
	err = <-client.WaitForState(hctx, signalr.ClientConnected)
	hcancel()
	if err != nil {
		if cause := context.Cause(connCtx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		}
		cancel(err)
		c.stop()
		return false, fmt.Errorf("resonite: hub handshake: %w", err)
	}

	h.mu.Lock()
	h.cur = c
	if connects > 0 {
		h.state.Reconnects++
	}
	h.mu.Unlock()
	h.setState(ConnConnected, nil)
	h.log.Info("hub: connected", "reconnect", connects > 0)
	c.goWork(func(ctx context.Context) { h.startup(ctx, c, connects > 0) })

	select {
	case <-client.WaitForState(connCtx, signalr.ClientClosed):
		if e := client.Err(); e != nil {
			cancel(fmt.Errorf("resonite: hub connection closed: %w", e))
		} else {
			cancel(errors.New("resonite: hub closed the connection"))
		}
	case <-connCtx.Done():
	}
	h.mu.Lock()
	if h.cur == c {
		h.cur = nil
	}
	h.mu.Unlock()
	c.stop()
	return true, context.Cause(connCtx)
}

// startup is the fact sheet's start-up sequence, run after every connect; Connected follows.
func (h *Hub) startup(ctx context.Context, c *hubConn, reconnect bool) {
	step := func(name string, f func(ctx context.Context) error) error {
		sctx, cancel := context.WithTimeout(ctx, hubStepTimeout)
		defer cancel()
		err := f(sctx)
		if err != nil && ctx.Err() == nil {
			h.log.Warn("hub: start-up step failed", "step", name, "err", err)
		}
		return err
	}
	var contacts []Contact
	if step("InitializeContacts", func(ctx context.Context) error {
		var err error
		contacts, err = h.initializeContactsOn(ctx, c)
		return err
	}) != nil {
		if ctx.Err() != nil {
			return
		}
		_ = step("InitializeStatus", func(ctx context.Context) error {
			var r StatusInitializationResult
			err := h.invokeOn(ctx, c, &r, "InitializeStatus")
			if err == nil {
				contacts = r.Contacts
			}
			return err
		})
	}
	// The contacts' keys join those of earlier connections; all are subscribed below, before
	// Connected, so that a consumer seeing Connected knows the start-up calls are done.
	for _, ct := range contacts {
		if ct.UserStatus != nil {
			h.noteKeys(*ct.UserStatus)
		}
	}
	_ = step("RequestStatus", func(ctx context.Context) error {
		return h.invokeOn(ctx, c, nil, "RequestStatus", nil, false)
	})
	_ = step("BroadcastStatus", func(ctx context.Context) error {
		return h.invokeOn(ctx, c, nil, "BroadcastStatus", h.ownStatus(), AllContacts())
	})
	// Keys of the contacts and of earlier connections (whose subscriptions died with them).
	h.mu.Lock()
	var keys []string
	for _, k := range h.keys.live(time.Now()) {
		if !c.listened[k] {
			c.listened[k] = true
			keys = append(keys, k)
		}
	}
	h.mu.Unlock()
	slices.Sort(keys)
	for _, k := range keys {
		_ = step("ListenOnKey", func(ctx context.Context) error { return h.invokeOn(ctx, c, nil, "ListenOnKey", k) })
	}
	if ctx.Err() != nil {
		return
	}
	h.q.add(ctx, Connected{Reconnect: reconnect, Contacts: contacts})

	t := time.NewTicker(h.o.RebroadcastEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = step("BroadcastStatus", func(ctx context.Context) error {
				return h.invokeOn(ctx, c, nil, "BroadcastStatus", h.ownStatus(), AllContacts())
			})
		case <-ctx.Done():
			return
		}
	}
}

// dial opens the hub's WebSocket: through negotiate unless SkipNegotiate, falling back to a
// direct connection when negotiate is not offered. 401/403 give ErrHubAuth.
func (h *Hub) dial(ctx context.Context, authz string) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, hubDialTimeout)
	defer cancel()
	hdr := http.Header{}
	hdr.Set("Authorization", authz)
	hdr.Set("User-Agent", "resonite-bridge")
	target := *h.wsU
	if !h.o.SkipNegotiate {
		token, err := h.negotiate(dctx, hdr)
		switch {
		case err == nil:
			q := target.Query()
			q.Set("id", token)
			target.RawQuery = q.Encode()
		case errors.Is(err, errNoNegotiate):
			h.log.Debug("hub: negotiate not usable; connecting directly", "err", err)
		default: // refused, overloaded or unreachable: a direct dial would fare no better
			return nil, err
		}
	}
	ws, resp, err := websocket.Dial(dctx, target.String(), &websocket.DialOptions{HTTPHeader: hdr})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return nil, fmt.Errorf("resonite: connecting to the hub: %w (%d)", ErrHubAuth, resp.StatusCode)
		}
		if resp != nil {
			return nil, fmt.Errorf("resonite: connecting to the hub: %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
		}
		return nil, fmt.Errorf("resonite: connecting to the hub: %w", err)
	}
	ws.SetReadLimit(hubReadLimit)
	return ws, nil
}

type negotiateReply struct {
	ConnectionID        string `json:"connectionId"`
	ConnectionToken     string `json:"connectionToken"`
	NegotiateVersion    int    `json:"negotiateVersion"`
	URL                 string `json:"url"`
	Error               string `json:"error"`
	AvailableTransports []struct {
		Transport string `json:"transport"`
	} `json:"availableTransports"`
}

func (h *Hub) negotiate(ctx context.Context, hdr http.Header) (string, error) {
	u := *h.httpU
	u.Path = joinPath(u.Path, "negotiate")
	q := u.Query()
	q.Set("negotiateVersion", "1")
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("resonite: hub negotiate: %w", err)
	}
	req.Header = hdr.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("resonite: hub negotiate: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return "", fmt.Errorf("resonite: hub negotiate: %w (%d)", ErrHubAuth, resp.StatusCode)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		return "", fmt.Errorf("resonite: hub negotiate: %d %s: %w", resp.StatusCode, http.StatusText(resp.StatusCode), errNoNegotiate)
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("resonite: hub negotiate: %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	var r negotiateReply
	if err := json.Unmarshal(body, &r); err != nil {
		return "", fmt.Errorf("resonite: hub negotiate: decoding reply: %w (%w)", err, errNoNegotiate)
	}
	if r.Error != "" {
		return "", fmt.Errorf("resonite: hub negotiate: %s", excerpt(r.Error, 200))
	}
	if r.URL != "" {
		return "", fmt.Errorf("resonite: hub negotiate: redirects (Azure SignalR) are not supported: %w", errNoNegotiate)
	}
	ws := false
	for _, t := range r.AvailableTransports {
		ws = ws || t.Transport == "WebSockets"
	}
	if !ws {
		return "", fmt.Errorf("resonite: hub negotiate: WebSockets not offered: %w", errNoNegotiate)
	}
	if r.NegotiateVersion >= 1 && r.ConnectionToken != "" {
		return r.ConnectionToken, nil
	}
	if r.ConnectionID == "" {
		return "", fmt.Errorf("resonite: hub negotiate: no connection id: %w", errNoNegotiate)
	}
	return r.ConnectionID, nil
}

func joinPath(base, elem string) string {
	if len(base) > 0 && base[len(base)-1] == '/' {
		return base + elem
	}
	return base + "/" + elem
}

// frameConn sits between the WebSocket and the library. It hands the library one record per
// Read (so that the library's handshake reader cannot swallow the records behind the
// handshake answer), turns every invocation into its event itself, in read order (see
// hub_order.go for why that is the wire order), and records when data last arrived for the
// watchdog. Read is only ever called by one goroutine at a time: first the library's
// handshake reader, then its receive loop.
type frameConn struct {
	signalr.Connection
	h        *Hub
	hc       *hubConn
	cancel   context.CancelCauseFunc
	buf      []byte
	partial  []byte
	frames   [][]byte
	cur      []byte
	lastRead atomic.Int64

	dmu    sync.Mutex // held while a record is dispatched; close waits for it
	closed bool

	smu        sync.Mutex
	streams    map[string]*hubStream // our stream invocations by id, until their completion
	nextStream atomic.Uint64
}

// hubStream is a server stream the hub client runs itself (see Hub.initializeContactsOn):
// the reader collects its items and closes done at its completion.
type hubStream struct {
	id    string
	items []json.RawMessage
	size  int
	err   string // the completion's error, or why the stream was given up
	done  chan struct{}
}

// streamPrefix marks the invocation ids of our own streams; the library numbers its own.
const streamPrefix = "rb-stream-"

const maxStreamBytes = 64 << 20

// startStream registers a stream and sends its StreamInvocation. The library's writes are
// whole records too, and the WebSocket serializes messages, so the two cannot interleave.
func (c *frameConn) startStream(target string) (*hubStream, error) {
	s := &hubStream{id: fmt.Sprintf("%s%d", streamPrefix, c.nextStream.Add(1)), done: make(chan struct{})}
	c.smu.Lock()
	c.streams[s.id] = s
	c.smu.Unlock()
	rec, err := json.Marshal(frameEnvelope{Type: 4, InvocationID: s.id, Target: target, Arguments: []json.RawMessage{}})
	if err == nil {
		_, err = c.Connection.Write(append(rec, 0x1e))
	}
	if err != nil {
		c.dropStream(s.id, false)
		return nil, fmt.Errorf("sending the %s stream invocation: %w", target, err)
	}
	return s, nil
}

// dropStream forgets a stream whose caller gave up, and asks the hub to stop it when cancel.
func (c *frameConn) dropStream(id string, cancel bool) {
	c.smu.Lock()
	delete(c.streams, id)
	c.smu.Unlock()
	if cancel {
		rec, err := json.Marshal(struct {
			Type         int    `json:"type"`
			InvocationID string `json:"invocationId"`
		}{5, id})
		if err == nil {
			_, _ = c.Connection.Write(append(rec, 0x1e)) // best effort: the items are dropped anyway
		}
	}
}

type streamEnvelope struct {
	Type         int             `json:"type"`
	InvocationID string          `json:"invocationId"`
	Item         json.RawMessage `json:"item"`
	Error        string          `json:"error"`
}

// streamRecord takes a stream item or completion of one of our streams; it reports whether
// the record was one (the library must not see those: it knows no such invocation).
func (c *frameConn) streamRecord(body []byte) bool {
	if !bytes.Contains(body, []byte(streamPrefix)) {
		return false
	}
	var env streamEnvelope
	if err := json.Unmarshal(body, &env); err != nil || !strings.HasPrefix(env.InvocationID, streamPrefix) || (env.Type != 2 && env.Type != 3) {
		return false
	}
	c.smu.Lock()
	defer c.smu.Unlock()
	s, ok := c.streams[env.InvocationID]
	if !ok {
		return true // a stream given up: its late records are dropped
	}
	finish := func(err string) {
		s.err = err
		delete(c.streams, s.id)
		close(s.done)
	}
	if env.Type == 3 {
		finish(env.Error)
		return true
	}
	s.size += len(env.Item)
	if s.size > maxStreamBytes {
		finish(fmt.Sprintf("stream larger than %d bytes; given up", maxStreamBytes))
		return true
	}
	s.items = append(s.items, env.Item)
	return true
}

func newFrameConn(ctx context.Context, cancel context.CancelCauseFunc, ws *websocket.Conn, h *Hub, hc *hubConn) *frameConn {
	fc := &frameConn{
		Connection: signalr.NewNetConnection(ctx, websocket.NetConn(ctx, ws, websocket.MessageText)),
		h:          h,
		hc:         hc,
		cancel:     cancel,
		buf:        make([]byte, 64<<10),
		streams:    map[string]*hubStream{},
	}
	fc.lastRead.Store(time.Now().UnixNano())
	return fc
}

var errFrameConnClosed = errors.New("resonite: hub connection finished")

// close ends the connection and waits for a dispatch in progress, so that no event of this
// connection is sent after it returns (the next connection's come after).
func (c *frameConn) close() {
	c.cancel(errFrameConnClosed) // a no-op when a cause is set already; unblocks a waiting send
	c.dmu.Lock()
	c.closed = true
	c.dmu.Unlock()
}

func (c *frameConn) Read(p []byte) (int, error) {
	for len(c.cur) == 0 {
		if len(c.frames) > 0 {
			c.cur, c.frames = c.frames[0], c.frames[1:]
			break
		}
		n, err := c.Connection.Read(c.buf)
		if n > 0 {
			c.lastRead.Store(time.Now().UnixNano())
			if ferr := c.feed(c.buf[:n]); ferr != nil {
				c.cancel(ferr)
				return 0, ferr
			}
		}
		if err != nil && len(c.frames) == 0 {
			c.cancel(fmt.Errorf("resonite: reading from the hub: %w", err))
			return 0, err
		}
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	return n, nil
}

// feed splits data into records (0x1E-terminated) and queues each for the library after its
// event, if any, is out.
func (c *frameConn) feed(b []byte) error {
	c.partial = append(c.partial, b...)
	for {
		i := bytes.IndexByte(c.partial, 0x1e)
		if i < 0 {
			break
		}
		frame := c.partial[:i+1]
		c.partial = c.partial[i+1:]
		if out := c.intercept(frame); out != nil {
			c.frames = append(c.frames, out)
		}
	}
	if len(c.partial) == 0 {
		c.partial = nil
	} else if len(c.partial) > maxPartialFrame {
		return fmt.Errorf("resonite: hub frame larger than %d bytes", maxPartialFrame)
	}
	return nil
}

type frameEnvelope struct {
	Type         int               `json:"type"`
	InvocationID string            `json:"invocationId"`
	Target       string            `json:"target"`
	Arguments    []json.RawMessage `json:"arguments"`
}

// ackTarget is the receiver's no-op method that an answered invocation is rewritten to.
const ackTarget = "Ack"

// intercept dispatches an invocation record (with its 0x1E) and returns what the library
// should read instead: nil for a push (nothing to answer), a call of Ack with the same
// invocation id for an invocation that wants a completion, the record itself otherwise.
func (c *frameConn) intercept(whole []byte) []byte {
	body := whole[:len(whole)-1]
	if c.streamRecord(body) {
		return nil
	}
	if !bytes.Contains(body, []byte(`"target"`)) && !bytes.Contains(body, []byte(`"Target"`)) {
		return whole // handshake answer, ping, completion, …: cheap check before decoding
	}
	var env frameEnvelope
	if err := json.Unmarshal(body, &env); err != nil || env.Type != 1 {
		return whole // the library reports what it cannot parse; type 4 it answers itself
	}
	c.dmu.Lock()
	if !c.closed {
		c.h.dispatch(c.hc, env.Target, env.Arguments)
	}
	c.dmu.Unlock()
	if env.InvocationID == "" {
		return nil
	}
	ack, err := json.Marshal(frameEnvelope{Type: 1, InvocationID: env.InvocationID, Target: ackTarget, Arguments: []json.RawMessage{}})
	if err != nil { // cannot happen for these types; keep the record rather than lose the answer
		return whole
	}
	return append(ack, 0x1e)
}

// watchdog ends the connection when nothing was read for idle (v0.7.0's own timeout never
// fires against a silent server).
func (c *frameConn) watchdog(idle time.Duration, q *eventQueue) {
	tick := idle / 4
	if tick < 5*time.Millisecond {
		tick = 5 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	ctx := c.Context()
	for {
		select {
		case <-t.C:
			silent := time.Since(time.Unix(0, c.lastRead.Load()))
			if silent <= idle {
				continue
			}
			if q.isStalled() {
				c.cancel(fmt.Errorf("resonite: the consumer of hub events stalled for over %s; reconnecting (catch up after Connected)", idle))
			} else {
				c.cancel(fmt.Errorf("resonite: no data from the hub for %s (silent server); reconnecting", silent.Round(time.Millisecond)))
			}
			return
		case <-ctx.Done():
			return
		}
	}
}

// slogKit adapts slog to the library's go-kit logger; its lines are debug detail.
type slogKit struct{ l *slog.Logger }

func (k slogKit) Log(keyvals ...any) error {
	if !k.l.Enabled(context.Background(), slog.LevelDebug) {
		return nil
	}
	for i := 0; i+1 < len(keyvals); i += 2 {
		if keyvals[i] == "error" { // the package logs errors under "err"
			keyvals[i] = "err"
		}
	}
	k.l.Debug("signalr", keyvals...)
	return nil
}
