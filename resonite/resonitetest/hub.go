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
	"github.com/philippseith/signalr"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// hubState is the hub side's own state (connections, refusal windows).
type hubState struct {
	srv signalr.Server

	mu          sync.Mutex
	conns       map[string]*fakeConn // connection id -> connection
	changed     chan struct{}        // closed and replaced when conns change
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

type fakeConn struct {
	id     string
	userID string
	hub    *fakeHub // the instance that saw OnConnected: its context aborts the connection
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

// nopKit silences the library's logger (it prints to stderr by default).
type nopKit struct{}

func (nopKit) Log(...any) error { return nil }

func (f *Fake) mountHub(ctx context.Context, mux *http.ServeMux) {
	f.hub.conns = map[string]*fakeConn{}
	f.hub.changed = make(chan struct{})
	f.hub.failTo = map[string]bool{}
	f.hub.noEchoTo = map[string]bool{}
	f.hub.statuses = map[string]resonite.UserStatus{}
	f.hub.failMethod = map[string]bool{}
	f.hub.stallMethod = map[string]chan struct{}{}
	f.hub.negotiated = map[string]string{}
	srv, err := signalr.NewServer(ctx,
		signalr.HubFactory(func() signalr.HubInterface { return &fakeHub{f: f} }),
		signalr.Logger(nopKit{}, false),
		signalr.MaximumReceiveMessageSize(4<<20),
		signalr.KeepAliveInterval(2*time.Second),
	)
	if err != nil {
		panic(fmt.Sprintf("resonitetest: creating the fake hub: %v", err)) // static options: a bug here, not input
	}
	f.hub.srv = srv
	// The fake serves negotiate and the WebSocket itself rather than through the library's
	// MapHTTP: it needs to own the connection to send exactly one completion per invocation
	// (see hubWire), to answer 404 for negotiate on demand, and to check connection tokens.
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
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept has answered the request
	}
	ws.SetReadLimit(4 << 20)
	// The request context carries the user id; the fake's context ends every connection on Close.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(f.ctx, cancel)
	defer stop()
	conn := &hubWire{Connection: signalr.NewNetConnection(ctx, websocket.NetConn(ctx, ws, websocket.MessageText)), completed: map[string]bool{}}
	conn.SetConnectionID(connID)
	_ = f.hub.srv.Serve(conn)
}

// hubWire is the server's side of one connection. The library answers an invocation whose
// method panicked (its only way to send a hub error, see fail) with the error completion and
// then with a second, empty one; the real hub sends one, and a client library drops the
// connection on a completion for an id it no longer knows. hubWire lets only the first through.
type hubWire struct {
	signalr.Connection
	mu        sync.Mutex
	completed map[string]bool
}

func (c *hubWire) Write(p []byte) (int, error) {
	var m struct {
		Type         int    `json:"type"`
		InvocationID string `json:"invocationId"`
	}
	if len(p) > 0 && p[len(p)-1] == 0x1e && json.Unmarshal(p[:len(p)-1], &m) == nil && m.Type == 3 && m.InvocationID != "" {
		c.mu.Lock()
		dup := c.completed[m.InvocationID]
		c.completed[m.InvocationID] = true
		c.mu.Unlock()
		if dup {
			return len(p), nil
		}
	}
	return c.Connection.Write(p)
}

func (f *Fake) closeHub() {
	f.DropConnections()
}

// HubConnects returns every request made to the hub endpoints, in arrival order.
func (f *Fake) HubConnects() []HubConnect {
	f.hub.mu.Lock()
	defer f.hub.mu.Unlock()
	return append([]HubConnect(nil), f.hub.connects...)
}

// Push invokes target on every hub connection of userID, without invocation id (as the
// real hub pushes events). Like the real library server, it does not wait for delivery.
func (f *Fake) Push(userID, target string, args ...any) {
	for _, id := range f.connIDs(userID) {
		f.hub.srv.HubClients().Client(id).Send(target, args...)
	}
}

// PushMessage stores m in to's mailbox and pushes it to to's connections as ReceiveMessage.
// AddMessage stores without pushing.
func (f *Fake) PushMessage(to string, m resonite.Message) {
	f.AddMessage(to, m)
	m.OwnerID = to
	f.Push(to, "ReceiveMessage", m)
}

// DropConnections aborts every hub connection (clients see the connection drop).
func (f *Fake) DropConnections() {
	f.hub.mu.Lock()
	var hubs []*fakeHub
	for _, c := range f.hub.conns {
		hubs = append(hubs, c.hub)
	}
	f.hub.mu.Unlock()
	for _, h := range hubs {
		h.Abort()
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
// the call and went quiet. The call is recorded when it arrives.
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

// Connections returns how many hub connections userID has now.
func (f *Fake) Connections(userID string) int {
	return len(f.connIDs(userID))
}

// WaitConnected waits until userID has at least n hub connections.
func (f *Fake) WaitConnected(ctx context.Context, userID string, n int) error {
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
		if have >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("resonitetest: waiting for %d hub connections of %s (have %d): %w", n, userID, have, ctx.Err())
		}
	}
}

// WaitHubCalls waits until the hub received at least n calls of method (case-insensitive)
// and returns them all.
func (f *Fake) WaitHubCalls(ctx context.Context, method string, n int) ([]Call, error) {
	return f.waitCalls(ctx, "hub", method, n)
}

func (f *Fake) waitCalls(ctx context.Context, kind, method string, n int) ([]Call, error) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		var got []Call
		for _, c := range f.CallsTo(method, "") {
			if c.Kind == kind {
				got = append(got, c)
			}
		}
		if len(got) >= n {
			return got, nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return got, fmt.Errorf("resonitetest: waiting for %d %s calls of %s (have %d): %w", n, kind, method, len(got), ctx.Err())
		}
	}
}

// Eventually polls cond until it holds or ctx ends; for tests that wait on state without sleeps.
func Eventually(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("resonitetest: condition not met: %w", ctx.Err())
		}
	}
	return nil
}

func (f *Fake) connIDs(userID string) []string {
	f.hub.mu.Lock()
	defer f.hub.mu.Unlock()
	var ids []string
	for id, c := range f.hub.conns {
		if c.userID == userID {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func (f *Fake) hubChanged() {
	close(f.hub.changed)
	f.hub.changed = make(chan struct{})
}

// fakeHub is one invocation's hub instance (the library makes one per call); the state is
// the Fake's.
type fakeHub struct {
	signalr.Hub
	f *Fake
}

func (h *fakeHub) user() string {
	uid, _ := h.Context().Value(userKey{}).(string)
	return uid
}

// OnConnected registers the connection until its context ends. The library calls
// OnConnected and OnDisconnected on goroutines of their own, so OnDisconnected may even run
// first; the connection's context is the reliable end signal.
func (h *fakeHub) OnConnected(id string) {
	f, ctx := h.f, h.Context()
	f.hub.mu.Lock()
	if ctx.Err() != nil {
		f.hub.mu.Unlock()
		return
	}
	f.hub.conns[id] = &fakeConn{id: id, userID: h.user(), hub: h}
	f.hubChanged()
	f.hub.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.hub.mu.Lock()
		delete(f.hub.conns, id)
		f.hubChanged()
		f.hub.mu.Unlock()
	}()
}

// record keeps the exact wire arguments as the call's Body, then holds or fails the call when
// StallHubMethod or FailHubMethod asked for it.
func (h *fakeHub) record(method string, args ...json.RawMessage) {
	if args == nil {
		args = []json.RawMessage{}
	}
	body, _ := json.Marshal(args)
	h.f.record(Call{Kind: "hub", Method: method, Body: body, UserID: h.user()})
	h.f.hub.mu.Lock()
	failing := h.f.hub.failMethod[strings.ToLower(method)]
	stall := h.f.hub.stallMethod[strings.ToLower(method)]
	h.f.hub.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-h.Context().Done():
		case <-h.f.ctx.Done():
		}
	}
	if failing {
		fail("%s failed (injected)", method)
	}
}

// fail makes the library answer the invocation with a hub error: a panic in a hub method is
// its only way to send one (it recovers and completes with the message).
func fail(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

func decode(raw json.RawMessage, v any, what string) {
	if err := json.Unmarshal(raw, v); err != nil {
		fail("resonitetest hub: bad %s: %v", what, err)
	}
}

func (h *fakeHub) SendMessage(raw json.RawMessage) {
	h.record("SendMessage", raw)
	var m resonite.Message
	decode(raw, &m, "message")
	f, sender := h.f, h.user()
	f.hub.mu.Lock()
	failing, noEcho := f.hub.failTo[m.RecipientID], f.hub.noEchoTo[m.RecipientID]
	f.hub.mu.Unlock()
	if failing {
		fail("sending to %s failed (injected)", m.RecipientID)
	}
	if m.SenderID != sender {
		fail("senderId %q is not the caller %q", m.SenderID, sender)
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
}

func withOther(m resonite.Message, other string) resonite.Message {
	m.OtherID = other
	return m
}

func (h *fakeHub) MarkMessagesRead(raw json.RawMessage) {
	h.record("MarkMessagesRead", raw)
	var b resonite.MarkReadBatch
	decode(raw, &b, "batch")
	f, reader := h.f, h.user()
	ids := map[string]bool{}
	for _, id := range b.IDs {
		ids[id] = true
	}
	rt := b.ReadTime
	f.mu.Lock()
	senders := map[string]bool{}
	for _, owner := range []string{reader} {
		for i, m := range f.messages[owner] {
			if ids[m.ID] && m.RecipientID == reader {
				f.messages[owner][i].ReadTime = &rt
				senders[m.SenderID] = true
			}
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
}

func (h *fakeHub) BroadcastStatus(rawStatus, rawTarget json.RawMessage) {
	h.record("BroadcastStatus", rawStatus, rawTarget)
	var s resonite.UserStatus
	decode(rawStatus, &s, "status")
	var t resonite.BroadcastTarget
	decode(rawTarget, &t, "target")
	h.f.hub.mu.Lock()
	h.f.hub.statuses[h.user()] = s
	h.f.hub.mu.Unlock()
}

func (h *fakeHub) UpdateContact(raw json.RawMessage) bool {
	h.record("UpdateContact", raw)
	var c resonite.Contact
	decode(raw, &c, "contact")
	if c.ID == "" {
		fail("contact without id")
	}
	owner := h.user()
	h.f.AddContact(owner, c)
	c.OwnerID = owner
	h.f.Push(owner, "ContactAddedOrUpdated", c)
	return true
}

func (h *fakeHub) ListenOnContact(raw json.RawMessage) { h.record("ListenOnContact", raw) }
func (h *fakeHub) ListenOnKey(raw json.RawMessage)     { h.record("ListenOnKey", raw) }

func (h *fakeHub) RequestStatus(rawUser, rawInvisible json.RawMessage) {
	h.record("RequestStatus", rawUser, rawInvisible)
}

func (h *fakeHub) InitializeStatus() resonite.StatusInitializationResult {
	h.record("InitializeStatus")
	return resonite.StatusInitializationResult{Contacts: nonNil(h.f.Contacts(h.user()))}
}

// InitializeContacts streams the caller's contacts (a server stream, as the real hub).
func (h *fakeHub) InitializeContacts() <-chan resonite.Contact {
	h.record("InitializeContacts")
	contacts := h.f.Contacts(h.user())
	ch := make(chan resonite.Contact, len(contacts))
	for _, c := range contacts {
		ch <- c
	}
	close(ch)
	return ch
}

func (h *fakeHub) BroadcastSession(rawSession, rawTarget json.RawMessage) {
	h.record("BroadcastSession", rawSession, rawTarget)
}

func (h *fakeHub) BroadcastSessionEnded(rawID, rawTime, rawTarget json.RawMessage) {
	h.record("BroadcastSessionEnded", rawID, rawTime, rawTarget)
}

func (h *fakeHub) Ping(raw json.RawMessage) {
	h.record("Ping", raw)
	var i int
	decode(raw, &i, "index")
	h.Clients().Caller().Send("Pong", i)
}

func nonNil(c []resonite.Contact) []resonite.Contact {
	if c == nil {
		return []resonite.Contact{}
	}
	return c
}
