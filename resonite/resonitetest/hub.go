package resonitetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// The fake hub speaks the ASP.NET Core SignalR JSON hub protocol (version 1) itself, over
// WebSockets, instead of using the Go library's server: that server sends every push from a
// goroutine of its own (so pushes leave shuffled), answers id-less invocations of unknown
// methods, and sends two completions when a method fails. What the fake does, as ASP.NET Core
// does (DefaultHubDispatcher, JsonHubProtocol, HubConnectionHandler):
//
//   - handshake: the first record is {"protocol":"json","version":1}; anything else is
//     answered with {"error":…} and a close. Records behind it in the same message count.
//   - invocations run one after the other in arrival order (MaximumParallelInvocationsPerClient
//     is 1); streaming invocations run beside them. An invocation without invocationId is
//     never answered, whatever happens to it (unknown method, wrong arguments, failure).
//   - a streaming method called with Invocation, or a plain method with StreamInvocation, gets a
//     Completion with an error; so do unknown methods and argument mismatches that carry an id.
//   - pushes go out in the order Push was called, one connection at a time.
//   - the server ends a connection with a Close message and a WebSocket close frame (1000).
//   - malformed records end the connection with {"type":7,"error":"Connection closed with an error."}.

const (
	hubKeepAlive        = 2 * time.Second // the fake pings more often than ASP.NET's 15 s: tests are short
	hubHandshakeTimeout = 15 * time.Second
	hubWriteTimeout     = 10 * time.Second
	hubReadLimit        = 4 << 20
)

// Hub protocol message types.
const (
	msgInvocation       = 1
	msgStreamItem       = 2
	msgCompletion       = 3
	msgStreamInvocation = 4
	msgCancelInvocation = 5
	msgPing             = 6
	msgClose            = 7
)

// hubState is the hub side's own state (connections, refusal windows).
type hubState struct {
	mu          sync.Mutex
	conns       map[string]*fakeConn // connection id -> connection, from handshake to end
	changed     chan struct{}        // closed and replaced when conns change
	serving     sync.WaitGroup       // one per WebSocket being served
	closed      bool                 // the fake is closing: no new connection is served
	refuseUntil time.Time
	failTo      map[string]bool // SendMessage to these recipients fails
	noEchoTo    map[string]bool // SendMessage to these recipients is stored but not echoed
	statuses    map[string]resonite.UserStatus
	connects    []HubConnect
	noNegotiate bool                     // /hub/negotiate answers 404
	failMethod  map[string]bool          // lower-case hub method -> answers a hub error
	stallMethod map[string]chan struct{} // lower-case hub method -> calls wait until it is closed
	negotiated  map[string]string        // connection token -> connection id, until its WebSocket comes
}

// HubConnect is one HTTP request to the hub endpoints (negotiate or WebSocket upgrade).
type HubConnect struct {
	Path          string
	Query         url.Values // the WebSocket's ?id=<connectionToken> after a negotiate
	Authorization string
	UserID        string // empty when the header was refused
	Status        int    // the status the fake answered before the hub took over (0 = accepted)
	At            time.Time
}

type userKey struct{}

func (f *Fake) mountHub(mux *http.ServeMux) {
	f.hub.conns = map[string]*fakeConn{}
	f.hub.changed = make(chan struct{})
	f.hub.failTo = map[string]bool{}
	f.hub.noEchoTo = map[string]bool{}
	f.hub.statuses = map[string]resonite.UserStatus{}
	f.hub.failMethod = map[string]bool{}
	f.hub.stallMethod = map[string]chan struct{}{}
	f.hub.negotiated = map[string]string{}
	mux.Handle("/hub", f.hubAuth(http.HandlerFunc(f.serveHubSocket)))
	mux.Handle("/hub/negotiate", f.hubAuth(http.HandlerFunc(f.negotiate)))
}

// hubAuth checks the Authorization header and the refusal window before the hub sees the
// request, and hands the user id to the hub through the request context.
func (f *Fake) hubAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := HubConnect{Path: r.URL.Path, Query: r.URL.Query(), Authorization: r.Header.Get("Authorization"), At: time.Now()}
		f.hub.mu.Lock()
		refused := time.Now().Before(f.hub.refuseUntil)
		noNegotiate := f.hub.noNegotiate && strings.HasSuffix(r.URL.Path, "/negotiate")
		f.hub.mu.Unlock()
		uid, ok := f.authenticate(r.Header)
		switch {
		case noNegotiate:
			c.Status = http.StatusNotFound
		case refused:
			c.Status = http.StatusServiceUnavailable
		case !ok:
			c.Status = http.StatusUnauthorized
		default:
			c.UserID = uid
		}
		f.hub.mu.Lock()
		f.hub.connects = append(f.hub.connects, c)
		f.hub.mu.Unlock()
		if c.Status != 0 {
			http.Error(w, http.StatusText(c.Status), c.Status)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, uid)))
	})
}

type negotiateTransport struct {
	Transport       string   `json:"transport"`
	TransferFormats []string `json:"transferFormats"`
}

type negotiateResponse struct {
	ConnectionID        string               `json:"connectionId"`
	ConnectionToken     string               `json:"connectionToken,omitempty"`
	NegotiateVersion    int                  `json:"negotiateVersion"`
	AvailableTransports []negotiateTransport `json:"availableTransports"`
}

// negotiate answers POST /hub/negotiate as ASP.NET Core does: a connection id, with
// negotiateVersion=1 also a connection token, which the WebSocket must then present as ?id=.
func (f *Fake) negotiate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "negotiate is POST", http.StatusMethodNotAllowed)
		return
	}
	resp := negotiateResponse{
		ConnectionID:        randomHex(16),
		AvailableTransports: []negotiateTransport{{Transport: "WebSockets", TransferFormats: []string{"Text", "Binary"}}},
	}
	key := resp.ConnectionID
	if r.URL.Query().Get("negotiateVersion") == "1" {
		resp.NegotiateVersion = 1
		resp.ConnectionToken = randomHex(16)
		key = resp.ConnectionToken
	}
	f.hub.mu.Lock()
	f.hub.negotiated[key] = resp.ConnectionID
	f.hub.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// serveHubSocket upgrades GET /hub to a WebSocket and serves the hub on it until either side
// ends it. Without ?id= it is a connection that skipped negotiate (ASP.NET Core accepts those);
// an id that no negotiate handed out gets 404.
func (f *Fake) serveHubSocket(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "the hub is a WebSocket", http.StatusBadRequest)
		return
	}
	connID := randomHex(16)
	if tok := r.URL.Query().Get("id"); tok != "" {
		f.hub.mu.Lock()
		id, ok := f.hub.negotiated[tok]
		delete(f.hub.negotiated, tok)
		f.hub.mu.Unlock()
		if !ok {
			http.Error(w, "No Connection with that ID", http.StatusNotFound)
			return
		}
		connID = id
	}
	f.hub.mu.Lock()
	if f.hub.closed {
		f.hub.mu.Unlock()
		http.Error(w, "the fake is closing", http.StatusServiceUnavailable)
		return
	}
	f.hub.serving.Add(1) // Close waits for it: the connection's goroutines end before the fake
	f.hub.mu.Unlock()
	defer f.hub.serving.Done()
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept has answered the request
	}
	ws.SetReadLimit(hubReadLimit)
	uid, _ := r.Context().Value(userKey{}).(string)
	ctx, cancel := context.WithCancel(f.ctx)
	c := &fakeConn{
		f: f, id: connID, userID: uid, ws: ws, ctx: ctx, cancel: cancel,
		wake:    make(chan struct{}, 1),
		jobs:    make(chan hubJob, 1024),
		streams: map[string]context.CancelFunc{},
	}
	c.serve()
}

// fakeConn is the server's side of one hub connection.
type fakeConn struct {
	f      *Fake
	id     string
	userID string
	ws     *websocket.Conn
	ctx    context.Context // ends the connection: DropConnections, Fake.Close, the client leaving
	cancel context.CancelFunc

	mu       sync.Mutex
	out      [][]byte // records to write, in order
	wake     chan struct{}
	closeMsg []byte // the Close message to send when the server ends the connection
	ended    bool
	streams  map[string]context.CancelFunc // running stream invocations by id

	jobs  chan hubJob    // invocations, executed one after the other
	calls sync.WaitGroup // stream invocations
}

// hubJob is one invocation record, decoded.
type hubJob struct {
	typ          int
	invocationID string
	target       string
	args         []json.RawMessage
}

// serve runs the connection: handshake, then the reader here and a writer and an executor
// beside it, until either side ends it.
func (c *fakeConn) serve() {
	defer c.cancel()
	rest, ok := c.handshake()
	if !ok {
		return
	}
	c.f.hub.mu.Lock()
	c.f.hub.conns[c.id] = c
	c.f.hubChanged()
	c.f.hub.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.write() }()
	go func() { defer wg.Done(); c.execute() }()
	c.read(rest)
	c.end(nil) // the reader stopped: the client left, or the writer closed the socket
	c.unregister()
	wg.Wait()
	c.calls.Wait()
}

func (c *fakeConn) unregister() {
	c.f.hub.mu.Lock()
	if c.f.hub.conns[c.id] == c {
		delete(c.f.hub.conns, c.id)
		c.f.hubChanged()
	}
	c.f.hub.mu.Unlock()
}

type handshakeRequest struct {
	Protocol string `json:"protocol"`
	Version  *int   `json:"version"`
}

// handshake reads the handshake request and answers it; it returns the bytes that followed
// the request in the same message(s), and whether the connection may go on.
func (c *fakeConn) handshake() (rest []byte, ok bool) {
	ctx, cancel := context.WithTimeout(c.ctx, hubHandshakeTimeout)
	defer cancel()
	var buf []byte
	for {
		i := indexRS(buf)
		if i >= 0 {
			rest = buf[i+1:]
			buf = buf[:i]
			break
		}
		_, data, err := c.ws.Read(ctx)
		if err != nil {
			_ = c.ws.CloseNow()
			return nil, false
		}
		buf = append(buf, data...)
	}
	var req handshakeRequest
	var problem string
	switch err := json.Unmarshal(buf, &req); {
	case err != nil:
		problem = "An unexpected error occurred during connection handshake. InvalidDataException: the handshake request is not valid JSON."
	case req.Protocol != "json":
		problem = fmt.Sprintf("The protocol '%s' is not supported.", req.Protocol)
	case req.Version == nil:
		problem = "An unexpected error occurred during connection handshake. InvalidDataException: Missing required property 'version'."
	case *req.Version != 1:
		problem = fmt.Sprintf("The server does not support version %d of the 'json' protocol.", *req.Version)
	}
	if problem != "" {
		answer, _ := json.Marshal(map[string]string{"error": problem})
		_ = c.writeNow(append(answer, 0x1e))
		_ = c.ws.Close(websocket.StatusNormalClosure, "")
		return nil, false
	}
	if err := c.writeNow([]byte("{}\x1e")); err != nil {
		_ = c.ws.CloseNow()
		return nil, false
	}
	return rest, true
}

func indexRS(b []byte) int {
	for i, x := range b {
		if x == 0x1e {
			return i
		}
	}
	return -1
}

func (c *fakeConn) writeNow(p []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), hubWriteTimeout)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, p)
}

// read handles the records in arrival order until the socket ends. Its context is not the
// connection's: cancelling a Read would tear the socket down without the close handshake,
// which the writer performs instead.
func (c *fakeConn) read(pending []byte) {
	for {
		for {
			i := indexRS(pending)
			if i < 0 {
				break
			}
			rec := pending[:i]
			pending = pending[i+1:]
			if !c.handle(rec) {
				return
			}
		}
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			return
		}
		pending = append(pending, data...)
	}
}

type wireRecord struct {
	Type         *int              `json:"type"`
	InvocationID string            `json:"invocationId"`
	Target       *string           `json:"target"`
	Arguments    []json.RawMessage `json:"arguments"`
	StreamIDs    []string          `json:"streamIds"`
}

// handle dispatches one record; it reports false when the connection is over.
func (c *fakeConn) handle(rec []byte) bool {
	if len(rec) == 0 {
		return true
	}
	var m wireRecord
	var hasArgs struct {
		Arguments json.RawMessage `json:"arguments"`
	}
	if json.Unmarshal(rec, &m) != nil || m.Type == nil || json.Unmarshal(rec, &hasArgs) != nil {
		c.end(closeWithError("Connection closed with an error."))
		return false
	}
	switch *m.Type {
	case msgInvocation, msgStreamInvocation:
		if m.Target == nil || hasArgs.Arguments == nil || (*m.Type == msgStreamInvocation && m.InvocationID == "") {
			c.end(closeWithError("Connection closed with an error."))
			return false
		}
		if m.Arguments == nil {
			m.Arguments = []json.RawMessage{}
		}
		job := hubJob{typ: *m.Type, invocationID: m.InvocationID, target: *m.Target, args: m.Arguments}
		if len(m.StreamIDs) > 0 { // client-to-server streams: no method of this hub takes one
			job.args = nil
		}
		if meth, ok := hubMethods[strings.ToLower(job.target)]; ok && job.args != nil && len(job.args) == meth.args && (*m.Type == msgStreamInvocation) == meth.stream {
			c.f.recordHubCall(meth.name, c.userID, job.args) // recorded on arrival, even when it then waits
		}
		select {
		case c.jobs <- job:
		case <-c.ctx.Done():
			return false
		}
	case msgCancelInvocation:
		c.mu.Lock()
		stop := c.streams[m.InvocationID]
		c.mu.Unlock()
		if stop != nil {
			stop()
		}
	case msgClose:
		c.end(nil) // the client is leaving: no Close message back, just the close frame
		return false
	default:
		// pings, and completions or stream items for calls the hub never made, are ignored;
		// so are message types of later protocol versions (ASP.NET Core does the same)
	}
	return true
}

func closeWithError(msg string) []byte {
	b, _ := json.Marshal(struct {
		Type  int    `json:"type"`
		Error string `json:"error"`
	}{msgClose, msg})
	return append(b, 0x1e)
}

// end ends the connection; closeMsg (nil: none) is the last record the writer sends before
// the close frame. The first call decides.
func (c *fakeConn) end(closeMsg []byte) {
	c.mu.Lock()
	if !c.ended {
		c.ended = true
		c.closeMsg = closeMsg
	}
	c.mu.Unlock()
	c.cancel()
}

// send queues one record (with its separator) for the writer.
func (c *fakeConn) send(rec []byte) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.out = append(c.out, rec)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *fakeConn) sendJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("resonitetest: encoding a hub record: %v", err)) // the fake's own values: a bug
	}
	c.send(append(b, 0x1e))
}

// write sends the queued records in order and a ping when the connection was idle, and, once
// the connection ends, the Close message and the close frame.
func (c *fakeConn) write() {
	ping := time.NewTicker(hubKeepAlive)
	defer ping.Stop()
	for {
		c.mu.Lock()
		batch := c.out
		c.out = nil
		c.mu.Unlock()
		for _, rec := range batch {
			if c.ctx.Err() != nil {
				break
			}
			if err := c.writeNow(rec); err != nil {
				c.end(nil)
				break
			}
		}
		if len(batch) > 0 {
			ping.Reset(hubKeepAlive)
		}
		select {
		case <-c.wake:
		case <-ping.C:
			c.send([]byte(`{"type":6}` + "\x1e"))
		case <-c.ctx.Done():
			c.mu.Lock()
			msg := c.closeMsg
			c.mu.Unlock()
			if msg != nil {
				_ = c.writeNow(msg)
			}
			_ = c.ws.Close(websocket.StatusNormalClosure, "")
			return
		}
	}
}

// execute runs the invocations one after the other, as ASP.NET Core does by default;
// streaming invocations start here and then run beside the others.
func (c *fakeConn) execute() {
	for {
		select {
		case job := <-c.jobs:
			c.run(job)
		case <-c.ctx.Done():
			return
		}
	}
}

type completion struct {
	Type         int    `json:"type"`
	InvocationID string `json:"invocationId"`
	Result       any    `json:"result,omitempty"`
	Error        string `json:"error,omitempty"`
}

// completionWithResult always carries "result", null included, as ASP.NET Core's does.
type completionWithResult struct {
	Type         int    `json:"type"`
	InvocationID string `json:"invocationId"`
	Result       any    `json:"result"`
}

func (c *fakeConn) fail(id, msg string) {
	if id == "" {
		return // non-blocking: no answer, whatever went wrong
	}
	c.sendJSON(completion{Type: msgCompletion, InvocationID: id, Error: msg})
}

func (c *fakeConn) run(job hubJob) {
	meth, ok := hubMethods[strings.ToLower(job.target)]
	switch {
	case !ok:
		c.fail(job.invocationID, fmt.Sprintf("Unknown hub method '%s'", job.target))
		return
	case job.args == nil || len(job.args) != meth.args:
		c.fail(job.invocationID, fmt.Sprintf("Failed to invoke '%s' due to an error on the server.", job.target))
		return
	case meth.stream && job.typ == msgInvocation:
		c.fail(job.invocationID, fmt.Sprintf("The client attempted to invoke the streaming '%s' method with a non-streaming invocation.", job.target))
		return
	case !meth.stream && job.typ == msgStreamInvocation:
		c.fail(job.invocationID, fmt.Sprintf("The client attempted to invoke the non-streaming '%s' method with a streaming invocation.", job.target))
		return
	}
	call := &hubCall{f: c.f, c: c, ctx: c.ctx}
	defer c.f.settled() // what the call changed is visible to waiters now
	if meth.stream {
		c.stream(call, meth, job)
		return
	}
	result, err := c.gate(call, meth, func() (any, error) { return meth.run(call, job.args) })
	switch {
	case err != nil:
		c.fail(job.invocationID, fmt.Sprintf("An unexpected error occurred invoking '%s' on the server. HubException: %v", job.target, err))
	case job.invocationID != "":
		c.sendJSON(completionWithResult{Type: msgCompletion, InvocationID: job.invocationID, Result: result})
	}
}

// gate holds a call that StallHubMethod stalls and fails one that FailHubMethod fails.
func (c *fakeConn) gate(call *hubCall, meth hubMethod, run func() (any, error)) (any, error) {
	m := strings.ToLower(meth.name)
	c.f.hub.mu.Lock()
	failing := c.f.hub.failMethod[m]
	stall := c.f.hub.stallMethod[m]
	c.f.hub.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-call.ctx.Done():
			return nil, fmt.Errorf("connection ended during %s", meth.name)
		}
	}
	if failing {
		return nil, fmt.Errorf("%s failed (injected)", meth.name)
	}
	return run()
}

func (c *fakeConn) stream(call *hubCall, meth hubMethod, job hubJob) {
	ctx, stop := context.WithCancel(c.ctx)
	c.mu.Lock()
	if _, dup := c.streams[job.invocationID]; dup {
		c.mu.Unlock()
		stop()
		c.fail(job.invocationID, fmt.Sprintf("Invocation ID '%s' is already in use.", job.invocationID))
		return
	}
	c.streams[job.invocationID] = stop
	c.mu.Unlock()
	call.ctx = ctx
	c.calls.Add(1)
	go func() {
		defer c.calls.Done()
		defer func() {
			stop()
			c.mu.Lock()
			delete(c.streams, job.invocationID)
			c.mu.Unlock()
		}()
		items, err := c.gate(call, meth, func() (any, error) { return meth.run(call, job.args) })
		if err != nil {
			c.fail(job.invocationID, fmt.Sprintf("An unexpected error occurred invoking '%s' on the server. HubException: %v", job.target, err))
			return
		}
		list, _ := items.([]any)
		for _, it := range list {
			if ctx.Err() != nil {
				break // cancelled by the client: the completion follows, without error
			}
			c.sendJSON(struct {
				Type         int    `json:"type"`
				InvocationID string `json:"invocationId"`
				Item         any    `json:"item"`
			}{msgStreamItem, job.invocationID, it})
		}
		c.sendJSON(completion{Type: msgCompletion, InvocationID: job.invocationID})
	}()
}

// closeHub ends every connection with a Close message, stops the handshakes in progress (by
// cancelling the fake's context) and waits until every connection's goroutines are done.
func (f *Fake) closeHub() {
	f.hub.mu.Lock()
	f.hub.closed = true
	f.hub.mu.Unlock()
	f.endConnections(false)
	f.cancel()
	f.hub.serving.Wait()
}

// HubConnects returns every request made to the hub endpoints, in arrival order.
func (f *Fake) HubConnects() []HubConnect {
	f.hub.mu.Lock()
	defer f.hub.mu.Unlock()
	return append([]HubConnect(nil), f.hub.connects...)
}

// Push invokes target on every hub connection of userID, without invocation id (as the
// real hub pushes events). Pushes leave in the order of the Push calls; Push does not wait
// for them to be written.
func (f *Fake) Push(userID, target string, args ...any) {
	rec := pushRecord(target, args...)
	for _, c := range f.conns(userID) {
		c.send(rec)
	}
}

// pushRecord is an invocation without invocation id: the hub's way to push an event.
func pushRecord(target string, args ...any) []byte {
	if args == nil {
		args = []any{}
	}
	rec, err := json.Marshal(struct {
		Type      int    `json:"type"`
		Target    string `json:"target"`
		Arguments []any  `json:"arguments"`
	}{msgInvocation, target, args})
	if err != nil {
		panic(fmt.Sprintf("resonitetest: pushing %s: encoding the arguments: %v", target, err)) // a test's bad value
	}
	return append(rec, 0x1e)
}

// PushMessage stores m in to's mailbox and pushes it to to's connections as ReceiveMessage.
// AddMessage stores without pushing.
func (f *Fake) PushMessage(to string, m resonite.Message) {
	f.AddMessage(to, m)
	m.OwnerID = to
	f.Push(to, "ReceiveMessage", m)
}

// DropConnections ends every hub connection from the server's side, as a server restart
// does: a Close message that allows reconnecting, then the WebSocket close frame.
func (f *Fake) DropConnections() { f.endConnections(true) }

func (f *Fake) endConnections(allowReconnect bool) {
	msg := []byte(`{"type":7}` + "\x1e") // CloseMessage.Empty
	if allowReconnect {
		msg = []byte(`{"type":7,"allowReconnect":true}` + "\x1e")
	}
	f.hub.mu.Lock()
	conns := make([]*fakeConn, 0, len(f.hub.conns))
	for _, c := range f.hub.conns {
		conns = append(conns, c)
	}
	f.hub.mu.Unlock()
	for _, c := range conns {
		c.end(msg)
	}
}

// RefuseConnections makes the hub endpoints answer 503 for d.
func (f *Fake) RefuseConnections(d time.Duration) {
	f.hub.mu.Lock()
	f.hub.refuseUntil = time.Now().Add(d)
	f.hub.mu.Unlock()
}

// OfferNegotiate makes POST /hub/negotiate work (on, the default) or answer 404 (off), as a
// server without the negotiate endpoint does; WebSockets dialled directly work either way.
func (f *Fake) OfferNegotiate(on bool) {
	f.hub.mu.Lock()
	f.hub.noNegotiate = !on
	f.hub.mu.Unlock()
}

// FailHubMethod makes every call of the hub method (case-insensitive, e.g. "InitializeContacts")
// answer a hub error (on) or work again (off). The call is still recorded.
func (f *Fake) FailHubMethod(method string, on bool) {
	f.hub.mu.Lock()
	f.hub.failMethod[strings.ToLower(method)] = on
	f.hub.mu.Unlock()
}

// StallHubMethod makes calls of the hub method (case-insensitive) hang without an answer (on)
// until StallHubMethod(method, false), the connection ends or the fake closes: a hub that took
// the call and went quiet. The call is recorded when it arrives; later plain invocations on
// the same connection wait behind it, as on ASP.NET Core.
func (f *Fake) StallHubMethod(method string, on bool) {
	m := strings.ToLower(method)
	f.hub.mu.Lock()
	defer f.hub.mu.Unlock()
	ch, stalled := f.hub.stallMethod[m]
	switch {
	case on && !stalled:
		f.hub.stallMethod[m] = make(chan struct{})
	case !on && stalled:
		close(ch)
		delete(f.hub.stallMethod, m)
	}
}

// FailSendMessageTo makes SendMessage to recipientID answer a hub error (on) or work again.
func (f *Fake) FailSendMessageTo(recipientID string, on bool) {
	f.hub.mu.Lock()
	f.hub.failTo[recipientID] = on
	f.hub.mu.Unlock()
}

// SkipEchoTo makes SendMessage to recipientID store the message but never echo MessageSent.
func (f *Fake) SkipEchoTo(recipientID string, on bool) {
	f.hub.mu.Lock()
	f.hub.noEchoTo[recipientID] = on
	f.hub.mu.Unlock()
}

// Status returns the last status userID broadcast on the hub.
func (f *Fake) Status(userID string) (resonite.UserStatus, bool) {
	f.hub.mu.Lock()
	defer f.hub.mu.Unlock()
	s, ok := f.hub.statuses[userID]
	return s, ok
}

// Connections returns how many hub connections userID has now (handshake done, not ended).
func (f *Fake) Connections(userID string) int {
	return len(f.conns(userID))
}

// WaitConnected waits until userID has at least n hub connections.
func (f *Fake) WaitConnected(ctx context.Context, userID string, n int) error {
	return f.waitConnections(ctx, userID, fmt.Sprintf("at least %d", n), func(have int) bool { return have >= n })
}

// WaitConnections waits until userID has exactly n hub connections (0: all are gone).
func (f *Fake) WaitConnections(ctx context.Context, userID string, n int) error {
	return f.waitConnections(ctx, userID, fmt.Sprintf("exactly %d", n), func(have int) bool { return have == n })
}

func (f *Fake) waitConnections(ctx context.Context, userID, what string, ok func(int) bool) error {
	for {
		f.hub.mu.Lock()
		have := 0
		for _, c := range f.hub.conns {
			if c.userID == userID {
				have++
			}
		}
		ch := f.hub.changed
		f.hub.mu.Unlock()
		if ok(have) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("resonitetest: waiting for %s hub connections of %s (have %d): %w", what, userID, have, ctx.Err())
		}
	}
}

// WaitHubCalls waits until the hub received at least n calls of method (case-insensitive)
// and returns them all.
func (f *Fake) WaitHubCalls(ctx context.Context, method string, n int) ([]Call, error) {
	return f.waitCalls(ctx, "hub", method, "", n)
}

func (f *Fake) conns(userID string) []*fakeConn {
	f.hub.mu.Lock()
	defer f.hub.mu.Unlock()
	var out []*fakeConn
	for _, c := range f.hub.conns {
		if c.userID == userID {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (f *Fake) hubChanged() {
	close(f.hub.changed)
	f.hub.changed = make(chan struct{})
}

// recordHubCall keeps the exact wire arguments as the call's Body.
func (f *Fake) recordHubCall(method, userID string, args []json.RawMessage) {
	body, _ := json.Marshal(args)
	f.record(Call{Kind: "hub", Method: method, Body: body, UserID: userID})
}

// hubCall is one invocation's view of the fake.
type hubCall struct {
	f   *Fake
	c   *fakeConn
	ctx context.Context
}

func (h *hubCall) user() string { return h.c.userID }

// hubMethod is a method of the fake hub. A streaming method's run returns its items ([]any).
type hubMethod struct {
	name   string
	args   int
	stream bool
	run    func(h *hubCall, args []json.RawMessage) (any, error)
}

// hubMethods are the fake's IHubServer, by lower-case name (method names match
// case-insensitively, as on ASP.NET Core).
var hubMethods = map[string]hubMethod{}

func init() {
	for _, m := range []hubMethod{
		{"SendMessage", 1, false, (*hubCall).sendMessage},
		{"MarkMessagesRead", 1, false, (*hubCall).markMessagesRead},
		{"BroadcastStatus", 2, false, (*hubCall).broadcastStatus},
		{"UpdateContact", 1, false, (*hubCall).updateContact},
		{"ListenOnContact", 1, false, nothing},
		{"ListenOnKey", 1, false, nothing},
		{"RequestStatus", 2, false, nothing},
		{"InitializeStatus", 0, false, (*hubCall).initializeStatus},
		{"InitializeContacts", 0, true, (*hubCall).initializeContacts},
		{"BroadcastSession", 2, false, nothing},
		{"BroadcastSessionEnded", 3, false, nothing},
		{"Ping", 1, false, (*hubCall).ping},
	} {
		hubMethods[strings.ToLower(m.name)] = m
	}
}

func nothing(*hubCall, []json.RawMessage) (any, error) { return nil, nil }

func decode(raw json.RawMessage, v any, what string) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("resonitetest hub: bad %s: %w", what, err)
	}
	return nil
}

func (h *hubCall) sendMessage(args []json.RawMessage) (any, error) {
	var m resonite.Message
	if err := decode(args[0], &m, "message"); err != nil {
		return nil, err
	}
	f, sender := h.f, h.user()
	f.hub.mu.Lock()
	failing, noEcho := f.hub.failTo[m.RecipientID], f.hub.noEchoTo[m.RecipientID]
	f.hub.mu.Unlock()
	if failing {
		return nil, fmt.Errorf("sending to %s failed (injected)", m.RecipientID)
	}
	if m.SenderID != sender {
		return nil, fmt.Errorf("senderId %q is not the caller %q", m.SenderID, sender)
	}
	m.LastUpdateTime = resonite.NewTime(time.Now())
	f.AddMessage(sender, withOther(m, m.RecipientID))
	f.mu.Lock()
	_, known := f.users[m.RecipientID]
	f.mu.Unlock()
	if known && m.RecipientID != sender {
		f.AddMessage(m.RecipientID, withOther(m, sender))
	}
	if !noEcho {
		echo := m
		echo.OwnerID = sender
		f.Push(sender, "MessageSent", echo)
	}
	if m.RecipientID != sender {
		in := m
		in.OwnerID = m.RecipientID
		f.Push(m.RecipientID, "ReceiveMessage", in)
	}
	return nil, nil
}

func withOther(m resonite.Message, other string) resonite.Message {
	m.OtherID = other
	return m
}

func (h *hubCall) markMessagesRead(args []json.RawMessage) (any, error) {
	var b resonite.MarkReadBatch
	if err := decode(args[0], &b, "batch"); err != nil {
		return nil, err
	}
	f, reader := h.f, h.user()
	ids := map[string]bool{}
	for _, id := range b.IDs {
		ids[id] = true
	}
	rt := b.ReadTime
	f.mu.Lock()
	senders := map[string]bool{}
	for i, m := range f.messages[reader] {
		if ids[m.ID] && m.RecipientID == reader {
			f.messages[reader][i].ReadTime = &rt
			senders[m.SenderID] = true
		}
	}
	for s := range senders {
		for i, m := range f.messages[s] {
			if ids[m.ID] {
				f.messages[s][i].ReadTime = &rt
			}
		}
	}
	f.mu.Unlock()
	for s := range senders {
		if s != reader {
			f.Push(s, "MessagesRead", resonite.ReadMessageBatch{RecipientID: reader, IDs: b.IDs, ReadTime: rt})
		}
	}
	return nil, nil
}

func (h *hubCall) broadcastStatus(args []json.RawMessage) (any, error) {
	var s resonite.UserStatus
	if err := decode(args[0], &s, "status"); err != nil {
		return nil, err
	}
	var t resonite.BroadcastTarget
	if err := decode(args[1], &t, "target"); err != nil {
		return nil, err
	}
	h.f.hub.mu.Lock()
	h.f.hub.statuses[h.user()] = s
	h.f.hub.mu.Unlock()
	return nil, nil
}

func (h *hubCall) updateContact(args []json.RawMessage) (any, error) {
	var c resonite.Contact
	if err := decode(args[0], &c, "contact"); err != nil {
		return nil, err
	}
	if c.ID == "" {
		return nil, fmt.Errorf("contact without id")
	}
	owner := h.user()
	h.f.AddContact(owner, c)
	c.OwnerID = owner
	h.f.Push(owner, "ContactAddedOrUpdated", c)
	return true, nil
}

func (h *hubCall) initializeStatus([]json.RawMessage) (any, error) {
	return resonite.StatusInitializationResult{Contacts: nonNil(h.f.Contacts(h.user()))}, nil
}

// initializeContacts streams the caller's contacts (a server stream, as the real hub).
func (h *hubCall) initializeContacts([]json.RawMessage) (any, error) {
	contacts := h.f.Contacts(h.user())
	items := make([]any, len(contacts))
	for i, c := range contacts {
		items[i] = c
	}
	return items, nil
}

// ping answers Pong(index) to the caller.
func (h *hubCall) ping(args []json.RawMessage) (any, error) {
	var i int
	if err := decode(args[0], &i, "index"); err != nil {
		return nil, err
	}
	h.c.send(pushRecord("Pong", i)) // Clients.Caller: this connection only
	return nil, nil
}

func nonNil(c []resonite.Contact) []resonite.Contact {
	if c == nil {
		return []resonite.Contact{}
	}
	return c
}
