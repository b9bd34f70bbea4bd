package resonite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/philippseith/signalr"
)

// HubAuth supplies the hub's Authorization header; *Client implements it.
type HubAuth interface {
	// HubAuthorization returns "res <userId>:<token>" for the next connect.
	HubAuthorization(ctx context.Context) (string, error)
	// Relogin is called after the hub refused staleHeader (401/403 on connect).
	Relogin(ctx context.Context, staleHeader string) error
	// TokenRenewed signals that the token changed; the hub reconnects with the new header.
	TokenRenewed() <-chan struct{}
}

// HubOptions configures NewHub. Zero values mean the documented defaults.
type HubOptions struct {
	URL           string // e.g. https://api.resonite.com/hub (http(s) or ws(s))
	Auth          HubAuth
	Logger        *slog.Logger
	SkipNegotiate bool // dial the WebSocket directly; default false = try negotiate, fall back to direct
	EventBuffer   int  // default 1024
	// Status is the template for the bot's own broadcast: userId, sessionType Bot and
	// onlineStatus Online are filled in when empty.
	Status           UserStatus
	RebroadcastEvery time.Duration // default 90 s (must be ≤ 120 s)
	IdleTimeout      time.Duration // read watchdog, default 45 s
	// ConfirmTimeout bounds SendMessage from the moment the hub is connected: the call and
	// the wait for the MessageSent echo; default 30 s.
	ConfirmTimeout time.Duration
}

// ConnState is the hub connection's state.
type ConnState string

const (
	ConnConnecting   ConnState = "connecting"
	ConnConnected    ConnState = "connected"
	ConnDisconnected ConnState = "disconnected"
	ConnClosed       ConnState = "closed"
)

// HubState is a snapshot for health checks.
type HubState struct {
	State      ConnState
	Since      time.Time
	LastError  string
	Reconnects int // successful connections after the first
}

var (
	// ErrHubNotConnected: the call could not be made (or its answer not received) because the
	// hub is not connected; retry later.
	ErrHubNotConnected = errors.New("resonite: hub not connected")
	// ErrHubClosed: Close was called.
	ErrHubClosed = errors.New("resonite: hub closed")
	// ErrNotConfirmed: the hub did not echo MessageSent in time; the message may or may not
	// have been delivered, and sending it again with the same id is the retry.
	ErrNotConfirmed = errors.New("resonite: message not confirmed by the hub")
	// ErrHubAuth: the hub refused the Authorization header.
	ErrHubAuth = errors.New("resonite: hub refused the credentials")
)

// HubError is the hub's error answer to a call: the call reached the hub and failed there
// (unlike ErrHubNotConnected, where it may not have).
type HubError struct {
	Method  string // the hub method, e.g. "SendMessage"
	Message string // the hub's error text
}

func (e *HubError) Error() string { return "resonite: hub " + e.Method + ": " + e.Message }

const (
	defaultEventBuffer    = 1024
	defaultRebroadcast    = 90 * time.Second
	maxRebroadcast        = 120 * time.Second
	defaultIdleTimeout    = 45 * time.Second
	defaultConfirmTimeout = 30 * time.Second
)

// Hub is a client of Resonite's SignalR hub that stays connected until Close: it reconnects
// with backoff, re-runs the start-up sequence after every connect, keeps the bot's status
// broadcast, and delivers the pushes in order on Events.
type Hub struct {
	o      HubOptions
	log    *slog.Logger
	httpU  *url.URL   // http(s) form, for negotiate
	wsU    *url.URL   // ws(s) form
	events chan Event // q.out
	q      *eventQueue

	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	started   bool
	closed    bool
	state     HubState
	cur       *hubConn
	changed   chan struct{} // closed and replaced on every state change
	self      string        // user id from the last header
	sessionID string        // the bot's userSessionId, stable for the Hub's life
	statusAt  Time          // the bot's lastStatusChange
	// keys are the session broadcast keys to listen on after every connect (key -> its
	// session id, "" while unknown); keySession maps a session id back to its key, so that
	// the key can be dropped when the session ends. Both are bounded (hub_order.go).
	keys       *recentMap[string]
	keySession *recentMap[string]
	pending    map[string]chan struct{} // message id -> closed on MessageSent echo
	lastStatus *recentMap[Time]         // userId/userSessionId -> last delivered lastStatusChange
	renewed    chan struct{}            // wakes the backoff wait after a token renewal
	done       chan struct{}            // closed by Close
}

// NewHub checks the options; nothing connects before Start.
func NewHub(o HubOptions) (*Hub, error) {
	if o.Auth == nil {
		return nil, errors.New("resonite: NewHub: Auth is required")
	}
	if o.URL == "" {
		return nil, errors.New("resonite: NewHub: URL is required")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("resonite: NewHub: parsing URL: %w", err)
	}
	httpU, wsU := *u, *u
	switch strings.ToLower(u.Scheme) {
	case "http", "ws":
		httpU.Scheme, wsU.Scheme = "http", "ws"
	case "https", "wss":
		httpU.Scheme, wsU.Scheme = "https", "wss"
	default:
		return nil, fmt.Errorf("resonite: NewHub: URL scheme %q is not http(s) or ws(s)", u.Scheme)
	}
	if o.EventBuffer <= 0 {
		o.EventBuffer = defaultEventBuffer
	}
	if o.RebroadcastEvery <= 0 {
		o.RebroadcastEvery = defaultRebroadcast
	}
	if o.RebroadcastEvery > maxRebroadcast {
		return nil, fmt.Errorf("resonite: NewHub: RebroadcastEvery %s exceeds %s (contacts would see the bot drop offline)", o.RebroadcastEvery, maxRebroadcast)
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = defaultIdleTimeout
	}
	if o.ConfirmTimeout <= 0 {
		o.ConfirmTimeout = defaultConfirmTimeout
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	lg = lg.With("component", "resonite.hub")
	q := newEventQueue(o.EventBuffer, lg)
	h := &Hub{
		o:          o,
		log:        lg,
		httpU:      &httpU,
		wsU:        &wsU,
		events:     q.out,
		q:          q,
		changed:    make(chan struct{}),
		sessionID:  o.Status.UserSessionID,
		keys:       newRecentMap[string](maxBroadcastKeys, broadcastKeyTTL),
		keySession: newRecentMap[string](maxBroadcastKeys, broadcastKeyTTL),
		pending:    map[string]chan struct{}{},
		lastStatus: newRecentMap[Time](maxStatusMemory, statusMemoryTTL),
		renewed:    make(chan struct{}, 1),
		done:       make(chan struct{}),
		state:      HubState{State: ConnDisconnected, Since: time.Now()},
	}
	if h.sessionID == "" {
		h.sessionID = uuid.NewString()
	}
	return h, nil
}

// Start launches the connect loop and returns at once; it does not wait for the first
// connection (use WaitConnected or the Connected event). ctx bounds the hub's life like Close.
func (h *Hub) Start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrHubClosed
	}
	if h.started {
		return errors.New("resonite: hub already started")
	}
	h.started = true
	h.ctx, h.cancel = context.WithCancel(ctx)
	h.wg.Add(2)
	go func() { defer h.wg.Done(); h.watchRenewals(h.ctx) }()
	go func() {
		defer h.wg.Done()
		// run is the only producer's owner: every connection's reader and start-up goroutine
		// is done when it returns, so nothing sends on Events after this close.
		defer close(h.events)
		h.run(h.ctx)
	}()
	return nil
}

// Events delivers the hub's pushes in order; it is closed after Close. The consumer must keep
// reading: when it falls behind, the hub logs the back-pressure and, past IdleTimeout,
// reconnects (the Connected{Reconnect:true} that follows is the cue to catch up).
func (h *Hub) Events() <-chan Event { return h.events }

// Close stops the connection and every goroutine the hub started, waiting for them until ctx ends.
func (h *Hub) Close(ctx context.Context) error {
	h.mu.Lock()
	wasStarted := h.started
	if !h.closed {
		close(h.done)
	}
	h.closed = true
	if h.cancel != nil {
		h.cancel()
	}
	h.mu.Unlock()
	if !wasStarted {
		h.closeEventsOnce()
		h.setState(ConnClosed, nil)
		return nil
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		h.setState(ConnClosed, nil)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("resonite: closing hub: %w", ctx.Err())
	}
}

func (h *Hub) closeEventsOnce() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.started && h.events != nil {
		close(h.events)
		h.started = true // Start after Close must not reopen
	}
}

// State returns the connection state for health checks.
func (h *Hub) State() HubState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state
}

// WaitConnected returns once the hub connection is up (the start-up sequence may still run;
// the Connected event marks its end).
func (h *Hub) WaitConnected(ctx context.Context) error {
	for {
		h.mu.Lock()
		st, ch := h.state.State, h.changed
		h.mu.Unlock()
		switch st {
		case ConnConnected:
			return nil
		case ConnClosed:
			return ErrHubClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrHubNotConnected, ctx.Err())
		}
	}
}

func (h *Hub) setState(s ConnState, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state.State == ConnClosed {
		return
	}
	if h.state.State != s {
		h.state.State = s
		h.state.Since = time.Now()
	}
	if err != nil {
		h.state.LastError = err.Error()
	}
	close(h.changed)
	h.changed = make(chan struct{})
}

// selfID is the bridge account's user id, taken from the Authorization header.
func (h *Hub) selfID(ctx context.Context) (string, error) {
	h.mu.Lock()
	id := h.self
	h.mu.Unlock()
	if id != "" {
		return id, nil
	}
	hdr, err := h.o.Auth.HubAuthorization(ctx)
	if err != nil {
		return "", fmt.Errorf("resonite: getting hub credentials: %w", err)
	}
	id = userFromHeader(hdr)
	if id == "" {
		return "", errors.New("resonite: hub Authorization header is not \"res <userId>:<token>\"")
	}
	h.mu.Lock()
	h.self = id
	h.mu.Unlock()
	return id, nil
}

func userFromHeader(hdr string) string {
	rest, ok := strings.CutPrefix(hdr, "res ")
	if !ok {
		return ""
	}
	id, _, ok := strings.Cut(rest, ":")
	if !ok {
		return ""
	}
	return id
}

// client returns the live connection, waiting for one until ctx ends.
func (h *Hub) client(ctx context.Context) (*hubConn, error) {
	for {
		h.mu.Lock()
		closed, c, ch := h.closed, h.cur, h.changed
		h.mu.Unlock()
		if closed {
			return nil, ErrHubClosed
		}
		if c != nil {
			return c, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrHubNotConnected, ctx.Err())
		}
	}
}

// invoke calls a hub method on the current connection and decodes a value result into out
// (nil for void methods).
func (h *Hub) invoke(ctx context.Context, out any, method string, args ...any) error {
	c, err := h.client(ctx)
	if err != nil {
		return fmt.Errorf("resonite: hub %s: %w", method, err)
	}
	return h.invokeOn(ctx, c, out, method, args...)
}

func (h *Hub) invokeOn(ctx context.Context, c *hubConn, out any, method string, args ...any) error {
	ch := c.client.Invoke(method, args...)
	for {
		select {
		case r, ok := <-ch:
			if !ok {
				if c.ctx.Err() != nil {
					return fmt.Errorf("resonite: hub %s: %w (connection lost)", method, ErrHubNotConnected)
				}
				return nil
			}
			if r.Error != nil {
				h.drain(ch)
				if c.ctx.Err() != nil || lostConnection(r.Error) {
					return fmt.Errorf("resonite: hub %s: %w: %v", method, ErrHubNotConnected, r.Error)
				}
				return &HubError{Method: method, Message: strings.TrimSpace(r.Error.Error())}
			}
			if r.Value != nil && out != nil {
				h.drain(ch)
				b, err := json.Marshal(r.Value)
				if err == nil {
					err = json.Unmarshal(b, out)
				}
				if err != nil {
					return fmt.Errorf("resonite: hub %s: decoding result: %w", method, err)
				}
				return nil
			}
		case <-ctx.Done():
			h.drain(ch)
			return fmt.Errorf("resonite: hub %s: %w", method, ctx.Err())
		}
	}
}

// lostConnection recognises the error the library gives pending calls when its message loop
// ends (loop.go cancelAllInvokes), which can arrive before our connection context is cancelled.
func lostConnection(err error) bool { return err.Error() == "message loop ended" }

// drain reads an abandoned result channel to its end: the library's forwarding goroutines
// block on unbuffered sends otherwise and would outlive the call.
func (h *Hub) drain(ch <-chan signalr.InvokeResult) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for range ch {
		}
	}()
}

// SendMessage sends m and waits for the hub's MessageSent echo with the same id. Empty id,
// senderId, ownerId, messageType, senderUserSessionId (the bot status' userSessionId) and
// sendTime are filled in. A missing echo gives ErrNotConfirmed (retry with the same id).
func (h *Hub) SendMessage(ctx context.Context, m Message) error {
	self, err := h.selfID(ctx)
	if err != nil {
		return err
	}
	if m.ID == "" {
		m.ID = "MSG-" + uuid.NewString()
	}
	if m.SenderID == "" {
		m.SenderID = self
	}
	if m.OwnerID == "" {
		m.OwnerID = self
	}
	if m.MessageType == "" {
		m.MessageType = MessageText
	}
	if m.SenderUserSessionID == nil {
		sid := h.sessionID // what the official client sends: its status' userSessionId
		m.SenderUserSessionID = &sid
	}
	if m.SendTime.IsZero() {
		m.SendTime = NewTime(time.Now())
	}
	if m.LastUpdateTime.IsZero() {
		m.LastUpdateTime = m.SendTime
	}
	echo := make(chan struct{})
	h.mu.Lock()
	if _, dup := h.pending[m.ID]; dup {
		h.mu.Unlock()
		return fmt.Errorf("resonite: sending message %s: already being sent", m.ID)
	}
	h.pending[m.ID] = echo
	h.mu.Unlock()
	// giveUp ends the wait for the echo and returns err, or nil when the echo came first: the
	// check and the removal are one step under h.mu, so an echo that confirm reported as
	// awaited always makes this call return nil.
	giveUp := func(err error) error {
		h.mu.Lock()
		waiting := h.pending[m.ID] == echo
		if waiting {
			delete(h.pending, m.ID)
		}
		h.mu.Unlock()
		if !waiting {
			return nil
		}
		return err
	}
	c, err := h.client(ctx)
	if err != nil { // nothing was sent
		return giveUp(fmt.Errorf("resonite: sending message %s: hub SendMessage: %w", m.ID, err))
	}
	// From here the message may reach the hub: the call and the echo share ConfirmTimeout, and
	// any give-up is ErrNotConfirmed (a retry with the same id is safe).
	cctx, cancel := context.WithTimeout(ctx, h.o.ConfirmTimeout)
	defer cancel()
	err = h.invokeOn(cctx, c, nil, "SendMessage", m)
	select {
	case <-echo:
		return nil // delivered, whatever became of the call's answer
	default:
	}
	var hubErr *HubError
	switch {
	case err == nil:
	case errors.As(err, &hubErr), errors.Is(err, ErrHubNotConnected), cctx.Err() == nil:
		return giveUp(fmt.Errorf("resonite: sending message %s: %w", m.ID, err))
	default:
		return giveUp(h.notConfirmed(ctx, m.ID))
	}
	select {
	case <-echo:
		return nil
	case <-cctx.Done():
		return giveUp(h.notConfirmed(ctx, m.ID))
	case <-h.done:
		return giveUp(fmt.Errorf("resonite: sending message %s: %w: %w", m.ID, ErrNotConfirmed, ErrHubClosed))
	}
}

func (h *Hub) notConfirmed(ctx context.Context, id string) error {
	if ctx.Err() != nil {
		return fmt.Errorf("resonite: sending message %s: %w: %w", id, ErrNotConfirmed, ctx.Err())
	}
	return fmt.Errorf("resonite: sending message %s: %w (no MessageSent echo within %s)", id, ErrNotConfirmed, h.o.ConfirmTimeout)
}

// confirm is called for every MessageSent echo, before ordering, so confirmation adds no latency.
// It reports whether a SendMessage was waiting for the echo.
func (h *Hub) confirm(id string) bool {
	h.mu.Lock()
	ch, ok := h.pending[id]
	if ok {
		delete(h.pending, id)
	}
	h.mu.Unlock()
	if ok {
		close(ch)
	}
	return ok
}

// MarkMessagesRead marks messages of b.SenderID as read (readTime now when zero).
func (h *Hub) MarkMessagesRead(ctx context.Context, b MarkReadBatch) error {
	if b.ReadTime.IsZero() {
		b.ReadTime = NewTime(time.Now())
	}
	if b.IDs == nil {
		b.IDs = []string{}
	}
	return h.invoke(ctx, nil, "MarkMessagesRead", b)
}

// BroadcastStatus sends a status to the target.
func (h *Hub) BroadcastStatus(ctx context.Context, s UserStatus, t BroadcastTarget) error {
	return h.invoke(ctx, nil, "BroadcastStatus", s, t)
}

// UpdateContact adds, accepts, ignores or resets a contact; the hub answers whether it worked.
func (h *Hub) UpdateContact(ctx context.Context, c Contact) (bool, error) {
	var ok bool
	if c.OwnerID == "" {
		self, err := h.selfID(ctx)
		if err != nil {
			return false, err
		}
		c.OwnerID = self
	}
	if err := h.invoke(ctx, &ok, "UpdateContact", c); err != nil {
		return false, err
	}
	return ok, nil
}

// ListenOnContact subscribes to a contact's statuses.
func (h *Hub) ListenOnContact(ctx context.Context, userID string) error {
	return h.invoke(ctx, nil, "ListenOnContact", userID)
}

// ListenOnKey subscribes to session updates for a broadcast key.
func (h *Hub) ListenOnKey(ctx context.Context, key string) error {
	return h.invoke(ctx, nil, "ListenOnKey", key)
}

// RequestStatus asks userID (nil: every contact) to send its status again.
func (h *Hub) RequestStatus(ctx context.Context, userID *string, invisible bool) error {
	return h.invoke(ctx, nil, "RequestStatus", userID, invisible)
}

// InitializeStatus returns the contacts with their statuses (the older start-up call).
func (h *Hub) InitializeStatus(ctx context.Context) (StatusInitializationResult, error) {
	var r StatusInitializationResult
	err := h.invoke(ctx, &r, "InitializeStatus")
	return r, err
}

// InitializeContacts streams the contact list.
func (h *Hub) InitializeContacts(ctx context.Context) ([]Contact, error) {
	c, err := h.client(ctx)
	if err != nil {
		return nil, fmt.Errorf("resonite: hub InitializeContacts: %w", err)
	}
	return h.initializeContactsOn(ctx, c)
}

// initializeContactsOn runs the InitializeContacts stream on c. The stream goes through
// frameConn rather than the library's PullStream: that one leaves a goroutine blocked for
// good when the connection ends while items are still buffered (its forwarder stops at the
// first error and the producer's sends do not watch the context).
func (h *Hub) initializeContactsOn(ctx context.Context, c *hubConn) ([]Contact, error) {
	s, err := c.fc.startStream("InitializeContacts")
	if err != nil {
		return nil, fmt.Errorf("resonite: hub InitializeContacts: %w: %w", ErrHubNotConnected, err)
	}
	select {
	case <-s.done:
	case <-c.ctx.Done():
		c.fc.dropStream(s.id, false)
		return nil, fmt.Errorf("resonite: hub InitializeContacts: %w (connection lost)", ErrHubNotConnected)
	case <-ctx.Done():
		c.fc.dropStream(s.id, true)
		return nil, fmt.Errorf("resonite: hub InitializeContacts: %w", ctx.Err())
	}
	if s.err != "" {
		return nil, &HubError{Method: "InitializeContacts", Message: strings.TrimSpace(s.err)}
	}
	out := []Contact{}
	for _, item := range s.items {
		if string(item) == "null" {
			continue // a null item is no contact
		}
		var ct Contact
		if err := json.Unmarshal(item, &ct); err != nil {
			h.log.Warn("hub: skipping an undecodable contact of InitializeContacts", "err", err)
			continue
		}
		out = append(out, ct)
	}
	return out, nil
}

// BroadcastSession announces a hosted session.
func (h *Hub) BroadcastSession(ctx context.Context, s SessionInfo, t BroadcastTarget) error {
	return h.invoke(ctx, nil, "BroadcastSession", s, t)
}

// BroadcastSessionEnded announces that a hosted session ended.
func (h *Hub) BroadcastSessionEnded(ctx context.Context, sessionID string, ts time.Time, t BroadcastTarget) error {
	return h.invoke(ctx, nil, "BroadcastSessionEnded", sessionID, NewTime(ts), t)
}

// ownStatus is the bot's status as broadcast now.
func (h *Hub) ownStatus() UserStatus {
	s := h.o.Status
	h.mu.Lock()
	if s.UserID == "" {
		s.UserID = h.self
	}
	if h.statusAt.IsZero() {
		h.statusAt = NewTime(time.Now())
	}
	if s.LastStatusChange.IsZero() {
		s.LastStatusChange = h.statusAt
	}
	h.mu.Unlock()
	if s.UserSessionID == "" {
		s.UserSessionID = h.sessionID
	}
	if s.SessionType == "" {
		s.SessionType = SessionTypeBot
	}
	if s.OnlineStatus == "" {
		s.OnlineStatus = StatusOnline
	}
	if s.OutputDevice == "" {
		s.OutputDevice = DeviceUnknown
	}
	if len(s.Sessions) == 0 {
		s.Sessions = []UserSessionMetadata{}
		s.CurrentSessionIndex = -1
	}
	now := NewTime(time.Now())
	s.LastPresenceTimestamp = &now
	return s
}
