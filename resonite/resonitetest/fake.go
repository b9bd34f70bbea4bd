// Package resonitetest is an in-process fake of the Resonite cloud for tests: the REST API on
// httptest and a SignalR hub speaking the real JSON hub protocol, seeded with users, contacts,
// sessions and messages, recording every call, with controls to push events, drop connections,
// expire tokens, require 2FA and answer 429.
//
// fake.go holds the shared state; rest.go serves the REST routes and hub.go the hub.
package resonitetest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// Call is one request the fake received, REST or hub.
type Call struct {
	// Kind is "rest" or "hub".
	Kind string
	// Method and Path for REST ("GET", "/sessions"); Method is the hub target for hub calls
	// ("SendMessage") and Path is empty.
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	// Body is the raw REST body, or the JSON array of a hub invocation's arguments.
	Body   []byte
	UserID string // the authenticated caller, when there was one
	At     time.Time
}

type token struct {
	userID string
	expire time.Time
}

// Fake is the fake cloud. Create it with New; all methods are safe for concurrent use.
type Fake struct {
	// URL is the REST base to give resonite.Client; HubURL the hub address.
	URL    string
	HubURL string

	srv    *httptest.Server
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	users     map[string]resonite.User      // by id
	passwords map[string]string             // by user id
	totp      map[string]string             // user id -> base32 secret; 2FA required when present
	tokens    map[string]token              // token -> owner
	contacts  map[string][]resonite.Contact // owner id -> contacts
	sessions  []resonite.SessionInfo
	messages  map[string][]resonite.Message // owner id -> mailbox, oldest first
	messageAt map[string]map[string]int     // owner id -> message id -> index in its mailbox
	calls     []Call
	callsSeen chan struct{} // closed and replaced on every recorded call
	changes   chan struct{} // closed and replaced once a call's effects are stored
	now       func() time.Time
	assets    map[string]asset // by file name; see assets.go

	rest restState // owned by rest.go
	hub  hubState  // owned by hub.go
}

// New starts a fake cloud and stops it when the test ends.
func New(tb testing.TB) *Fake {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &Fake{
		ctx:       ctx,
		cancel:    cancel,
		users:     map[string]resonite.User{},
		passwords: map[string]string{},
		totp:      map[string]string{},
		tokens:    map[string]token{},
		contacts:  map[string][]resonite.Contact{},
		messages:  map[string][]resonite.Message{},
		messageAt: map[string]map[string]int{},
		callsSeen: make(chan struct{}),
		changes:   make(chan struct{}),
		now:       time.Now,
	}
	mux := http.NewServeMux()
	f.mountREST(mux)
	f.mountHub(mux)
	f.mountAssets(mux)
	f.srv = httptest.NewServer(mux)
	f.URL = f.srv.URL
	f.HubURL = f.srv.URL + "/hub"
	tb.Cleanup(f.Close)
	return f
}

// Close stops the servers; it is called by the test's cleanup and may be called earlier.
func (f *Fake) Close() {
	f.closeHub() // cancels the fake's context too
	f.srv.CloseClientConnections()
	f.srv.Close()
}

// AddUser seeds an account; password may be empty for users that never log in.
func (f *Fake) AddUser(u resonite.User, password string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if u.NormalizedUsername == "" {
		u.NormalizedUsername = strings.ToLower(u.Username)
	}
	f.users[u.ID] = u
	if password != "" {
		f.passwords[u.ID] = password
	}
}

// AddContact seeds or replaces a contact of owner.
func (f *Fake) AddContact(owner string, c resonite.Contact) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.OwnerID = owner
	list := f.contacts[owner]
	for i := range list {
		if list[i].ID == c.ID {
			list[i] = c
			return
		}
	}
	f.contacts[owner] = append(list, c)
}

// Contacts returns owner's contacts as the fake holds them now.
func (f *Fake) Contacts(owner string) []resonite.Contact {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]resonite.Contact(nil), f.contacts[owner]...)
}

// AddSession seeds or replaces a session in the public listing.
func (f *Fake) AddSession(s resonite.SessionInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.sessions {
		if f.sessions[i].SessionID == s.SessionID {
			f.sessions[i] = s
			return
		}
	}
	f.sessions = append(f.sessions, s)
}

// AddMessage stores m in owner's mailbox (REST history) without pushing it on the hub. A
// message id is a key, as in the cloud: storing the same id again replaces the message (so a
// resend under the same id is one message, not two).
func (f *Fake) AddMessage(owner string, m resonite.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m.OwnerID = owner
	// An index, not a scan of the mailbox: load tests store thousands of messages.
	at := f.messageAt[owner]
	if at == nil {
		at = map[string]int{}
		f.messageAt[owner] = at
	}
	if i, ok := at[m.ID]; ok { // only non-empty ids are indexed
		f.messages[owner][i] = m
		return
	}
	if m.ID != "" {
		at[m.ID] = len(f.messages[owner])
	}
	f.messages[owner] = append(f.messages[owner], m)
}

// Messages returns owner's mailbox, oldest first.
func (f *Fake) Messages(owner string) []resonite.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]resonite.Message(nil), f.messages[owner]...)
}

// RequireTOTP makes logins of userID need a current code of the base32 secret.
func (f *Fake) RequireTOTP(userID, secret string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.totp[userID] = secret
}

// ExpireTokens invalidates every issued token: REST answers 403 and hub connects are refused.
func (f *Fake) ExpireTokens() {
	f.mu.Lock()
	f.tokens = map[string]token{}
	f.mu.Unlock()
}

// IssueToken creates a valid token for userID, as if it had logged in earlier (for tests that
// start with a stored session).
func (f *Fake) IssueToken(userID string, ttl time.Duration) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := "tok-" + userID + "-" + randomHex(12)
	f.tokens[t] = token{userID: userID, expire: f.now().Add(ttl)}
	return t
}

// Calls returns every call received so far, in arrival order.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// CallsTo returns the calls whose Method (HTTP verb or hub target) and Path match; an empty
// path matches any.
func (f *Fake) CallsTo(method, path string) []Call {
	var out []Call
	for _, c := range f.Calls() {
		if strings.EqualFold(c.Method, method) && (path == "" || c.Path == path) {
			out = append(out, c)
		}
	}
	return out
}

func (f *Fake) record(c Call) {
	c.At = time.Now()
	f.mu.Lock()
	f.calls = append(f.calls, c)
	close(f.callsSeen)
	f.callsSeen = make(chan struct{})
	f.mu.Unlock()
}

// Changed returns a channel that is closed once the next REST call or hub invocation has been
// handled, so that what it changed (messages sent, read, contacts) can be read. A test waits on
// it and checks its condition again, instead of polling.
func (f *Fake) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changes
}

func (f *Fake) settled() {
	f.mu.Lock()
	close(f.changes)
	f.changes = make(chan struct{})
	f.mu.Unlock()
}

// WaitCalls waits until the fake received at least n REST calls matching method and path (as
// CallsTo) and returns them all.
func (f *Fake) WaitCalls(ctx context.Context, method, path string, n int) ([]Call, error) {
	return f.waitCalls(ctx, "rest", method, path, n)
}

func (f *Fake) waitCalls(ctx context.Context, kind, method, path string, n int) ([]Call, error) {
	for {
		f.mu.Lock()
		var got []Call
		for _, c := range f.calls {
			if c.Kind == kind && strings.EqualFold(c.Method, method) && (path == "" || c.Path == path) {
				got = append(got, c)
			}
		}
		seen := f.callsSeen
		f.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		select {
		case <-seen:
		case <-ctx.Done():
			return got, fmt.Errorf("resonitetest: waiting for %d %s calls of %s %s (have %d): %w", n, kind, method, path, len(got), ctx.Err())
		}
	}
}

// authenticate checks an "Authorization: res <userId>:<token>" header against issued tokens.
func (f *Fake) authenticate(h http.Header) (userID string, ok bool) {
	v := h.Get("Authorization")
	rest, found := strings.CutPrefix(v, "res ")
	if !found {
		return "", false
	}
	uid, tok, found := strings.Cut(rest, ":")
	if !found {
		return "", false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t, known := f.tokens[tok]
	if !known || t.userID != uid || f.now().After(t.expire) {
		return "", false
	}
	return uid, true
}
