// Package resonite is a client of the Resonite cloud: the REST API (login and token upkeep,
// sessions, users, contacts, messages, statistics) and the SignalR hub, with the models both
// speak and a few display helpers.
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
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Version is the version of this module, sent in the User-Agent.
const Version = "0.1.0"

// DefaultBaseURL is the Resonite REST API.
const DefaultBaseURL = "https://api.resonite.com"

// DefaultUserAgent names the project so that Resonite's operators know who is calling.
const DefaultUserAgent = "resonite-bridge/" + Version + " (+https://github.com/resonite-bridge/resonite-bridge)"

// Defaults of the retry and back-off knobs; Options can shorten them (tests do).
const (
	defaultRetryBackoff      = 200 * time.Millisecond
	defaultMaxRetryAfter     = 60 * time.Second
	defaultReloginBackoff    = time.Minute
	defaultReloginBackoffMax = 30 * time.Minute
	maxRetries               = 3
	maxBodyBytes             = 64 << 20 // a full session listing is a few MB; anything bigger is broken
)

// Options configure a Client. Only Credentials and UID are needed to log in; the rest has
// defaults.
type Options struct {
	BaseURL         string       // default "https://api.resonite.com"
	HTTPClient      *http.Client // default: a client with a 30 s timeout
	UserAgent       string       // default DefaultUserAgent
	Credentials     Credentials
	UID             string // UID header; required for Login
	SecretMachineID string
	SessionStore    SessionStore // optional
	Logger          *slog.Logger // default: discard

	// RetryBackoff is the first wait before retrying a failed GET (doubling each time) and
	// before retrying a 429 without Retry-After. Default 200 ms.
	RetryBackoff time.Duration
	// MaxRetryAfter caps the wait a 429's Retry-After may impose. Default 60 s.
	MaxRetryAfter time.Duration
	// ReloginBackoff is the window after a re-login during which no other re-login is tried;
	// it doubles on each consecutive re-login up to ReloginBackoffMax. Defaults 1 min, 30 min.
	ReloginBackoff, ReloginBackoffMax time.Duration
}

// Client talks to the Resonite REST API as one account. It is safe for concurrent use.
type Client struct {
	base      string
	hc        *http.Client
	ua        string
	creds     Credentials
	uid       string
	machineID string
	store     SessionStore
	log       *slog.Logger

	retryBackoff      time.Duration
	maxRetryAfter     time.Duration
	reloginBackoff    time.Duration
	reloginBackoffMax time.Duration
	// now and sleep are replaced by tests.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	// loginMu serialises everything that may log in, so that concurrent auth failures cause
	// one login, not one each.
	loginMu     sync.Mutex
	storeLoaded bool // guarded by loginMu

	mu            sync.Mutex
	sess          UserSession
	hasSess       bool
	lastToken     string    // survives Logout so that a later login still counts as a change
	reloginNext   time.Time // no re-login before this
	reloginWindow time.Duration
	renewed       chan struct{}
}

// NewClient checks the options and builds a Client. It does not contact the cloud.
func NewClient(o Options) (*Client, error) {
	base := o.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("resonite: base URL %q is not an absolute http(s) URL", base)
	}
	c := &Client{
		base:              strings.TrimRight(base, "/"),
		hc:                o.HTTPClient,
		ua:                o.UserAgent,
		creds:             o.Credentials,
		uid:               o.UID,
		machineID:         o.SecretMachineID,
		store:             o.SessionStore,
		log:               o.Logger,
		retryBackoff:      orDefault(o.RetryBackoff, defaultRetryBackoff),
		maxRetryAfter:     orDefault(o.MaxRetryAfter, defaultMaxRetryAfter),
		reloginBackoff:    orDefault(o.ReloginBackoff, defaultReloginBackoff),
		reloginBackoffMax: orDefault(o.ReloginBackoffMax, defaultReloginBackoffMax),
		now:               time.Now,
		sleep:             sleepCtx,
		renewed:           make(chan struct{}, 1),
	}
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 30 * time.Second}
	}
	if c.ua == "" {
		c.ua = DefaultUserAgent
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "resonite.client")
	if c.reloginBackoffMax < c.reloginBackoff {
		c.reloginBackoffMax = c.reloginBackoff
	}
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// SessionQuery filters GET /sessions. Empty fields are not sent.
type SessionQuery struct {
	CompatibilityHash, Name, UniverseID, HostName, HostID string
	MinActiveUsers                                        *int
	// IncludeEmptyHeadless defaults to true on the cloud's side when nil.
	IncludeEmptyHeadless *bool
}

func (q SessionQuery) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("compatibilityHash", q.CompatibilityHash)
	set("name", q.Name)
	set("universeId", q.UniverseID)
	set("hostName", q.HostName)
	set("hostId", q.HostID)
	if q.MinActiveUsers != nil {
		v.Set("minActiveUsers", strconv.Itoa(*q.MinActiveUsers))
	}
	if q.IncludeEmptyHeadless != nil {
		v.Set("includeEmptyHeadless", strconv.FormatBool(*q.IncludeEmptyHeadless))
	}
	return v
}

// Sessions lists public sessions (and, with a session, those the account may see).
func (c *Client) Sessions(ctx context.Context, q SessionQuery) ([]SessionInfo, error) {
	var out []SessionInfo
	err := c.call(ctx, request{method: http.MethodGet, path: "/sessions", query: q.values(), auth: authOptional}, &out)
	if err != nil {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	return out, nil
}

// SessionByID fetches one session; errors.Is(err, ErrNotFound) when it does not exist.
func (c *Client) SessionByID(ctx context.Context, id string) (SessionInfo, error) {
	var out SessionInfo
	err := c.call(ctx, request{method: http.MethodGet, path: "/sessions/" + url.PathEscape(id), auth: authOptional}, &out)
	if err != nil {
		return SessionInfo{}, fmt.Errorf("fetching session %s: %w", id, err)
	}
	return out, nil
}

// User fetches a user by U- id; errors.Is(err, ErrNotFound) when there is none.
func (c *Client) User(ctx context.Context, id string) (User, error) {
	var out User
	err := c.call(ctx, request{method: http.MethodGet, path: "/users/" + url.PathEscape(id), auth: authOptional}, &out)
	if err != nil {
		return User{}, fmt.Errorf("fetching user %s: %w", id, err)
	}
	return out, nil
}

// UserByName fetches the user with exactly this username (case-insensitive on the cloud's side).
func (c *Client) UserByName(ctx context.Context, name string) (User, error) {
	var raw json.RawMessage
	q := url.Values{"name": {name}, "exactMatch": {"true"}}
	err := c.call(ctx, request{method: http.MethodGet, path: "/users", query: q, auth: authOptional}, &raw)
	if err != nil {
		return User{}, fmt.Errorf("looking up user %q: %w", name, err)
	}
	// The cloud answers a single user; tolerate a list too rather than fail on a format change.
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var list []User
		if err := json.Unmarshal(raw, &list); err != nil {
			return User{}, fmt.Errorf("looking up user %q: decoding reply: %w", name, err)
		}
		for _, u := range list {
			if strings.EqualFold(u.Username, name) {
				return u, nil
			}
		}
		return User{}, fmt.Errorf("looking up user %q: %w", name, ErrNotFound)
	}
	var u User
	if err := json.Unmarshal(raw, &u); err != nil {
		return User{}, fmt.Errorf("looking up user %q: decoding reply: %w", name, err)
	}
	if u.ID == "" {
		return User{}, fmt.Errorf("looking up user %q: %w", name, ErrNotFound)
	}
	return u, nil
}

// SearchUsers lists users whose name contains name.
func (c *Client) SearchUsers(ctx context.Context, name string) ([]User, error) {
	var out []User
	q := url.Values{"name": {name}}
	if err := c.call(ctx, request{method: http.MethodGet, path: "/users", query: q, auth: authOptional}, &out); err != nil {
		return nil, fmt.Errorf("searching users %q: %w", name, err)
	}
	return out, nil
}

// Contacts lists the account's contacts, including pending requests.
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	var out []Contact
	err := c.call(ctx, request{method: http.MethodGet, userPath: "/contacts", auth: authRequired}, &out)
	if err != nil {
		return nil, fmt.Errorf("listing contacts: %w", err)
	}
	return out, nil
}

// MessageQuery filters the account's message history.
type MessageQuery struct {
	// MaxItems: 0 means 100 (the cloud's own cap), -1 means all.
	MaxItems int
	// FromTime, when set, keeps messages at or after that time.
	FromTime time.Time
	// User keeps the conversation with that U- id.
	User string
	// Unread keeps unread incoming messages.
	Unread bool
}

func (q MessageQuery) values() url.Values {
	v := url.Values{}
	n := q.MaxItems
	if n == 0 {
		n = 100
	}
	v.Set("maxItems", strconv.Itoa(n))
	if !q.FromTime.IsZero() {
		v.Set("fromTime", q.FromTime.UTC().Format("2006-01-02T15:04:05.0000000Z"))
	}
	if q.User != "" {
		v.Set("user", q.User)
	}
	if q.Unread {
		v.Set("unread", "true")
	}
	return v
}

// Messages reads the account's mailbox, newest first.
func (c *Client) Messages(ctx context.Context, q MessageQuery) ([]Message, error) {
	var out []Message
	err := c.call(ctx, request{method: http.MethodGet, userPath: "/messages", query: q.values(), auth: authRequired}, &out)
	if err != nil {
		return nil, fmt.Errorf("reading messages: %w", err)
	}
	return out, nil
}

// OnlineStats reads the cloud-wide online counters.
func (c *Client) OnlineStats(ctx context.Context) (OnlineStats, error) {
	var out OnlineStats
	if err := c.call(ctx, request{method: http.MethodGet, path: "/stats/onlineStats", auth: authNone}, &out); err != nil {
		return OnlineStats{}, fmt.Errorf("reading online stats: %w", err)
	}
	return out, nil
}

type authMode int

const (
	authNone     authMode = iota
	authOptional          // send the token when there is one; never log in for it
	authRequired          // log in first when needed
)

type request struct {
	method string
	// path is the escaped path; userPath instead is appended to /users/{own id}.
	path, userPath string
	// logPath replaces path in errors and logs (the logout path carries the token).
	logPath string
	query   url.Values
	body    any
	header  http.Header
	auth    authMode
	login   bool
}

func (r request) idempotent() bool { return r.method == http.MethodGet || r.method == http.MethodPatch }

// call sends r with the authentication its mode asks for and decodes a 2xx body into out. A
// refused token causes one re-login (see Relogin) and one retry.
func (c *Client) call(ctx context.Context, r request, out any) error {
	hdr := ""
	switch r.auth {
	case authRequired:
		h, err := c.HubAuthorization(ctx)
		if err != nil {
			return err
		}
		hdr = h
	case authOptional:
		if s, ok := c.CurrentSession(); ok {
			hdr = authHeader(s)
		}
	}
	err := c.roundTrip(ctx, c.withUser(r), hdr, out)
	if hdr == "" || !errors.Is(err, ErrUnauthorized) {
		if err == nil && hdr != "" {
			c.noteAuthSuccess()
		}
		return err
	}
	c.log.InfoContext(ctx, "resonite token refused; logging in again", "method", r.method, "path", c.logPath(r))
	if rerr := c.Relogin(ctx, hdr); rerr != nil {
		return fmt.Errorf("%w (re-login: %w)", err, rerr)
	}
	s, ok := c.CurrentSession()
	if !ok {
		return err
	}
	hdr = authHeader(s)
	if err := c.roundTrip(ctx, c.withUser(r), hdr, out); err != nil {
		return err
	}
	c.noteAuthSuccess()
	return nil
}

func (c *Client) withUser(r request) request {
	if r.userPath != "" {
		r.path = "/users/" + url.PathEscape(c.UserID()) + r.userPath
	}
	return r
}

func (c *Client) logPath(r request) string {
	if r.logPath != "" {
		return r.logPath
	}
	if r.path == "" && r.userPath != "" {
		return "/users/{me}" + r.userPath
	}
	return r.path
}

// roundTrip sends r, retrying 429 (after Retry-After) and, for idempotent requests, 5xx and
// transport errors, at most maxRetries times in all.
func (c *Client) roundTrip(ctx context.Context, r request, authz string, out any) error {
	var body []byte
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("resonite: encoding %s %s body: %w", r.method, c.logPath(r), err)
		}
		body = b
	}
	backoff := c.retryBackoff
	for attempt := 0; ; attempt++ {
		status, hdr, data, err := c.once(ctx, r, authz, body)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("resonite: %s %s: %w", r.method, c.logPath(r), ctx.Err())
			}
			if r.idempotent() && attempt < maxRetries {
				c.log.DebugContext(ctx, "resonite request failed; retrying", "method", r.method, "path", c.logPath(r), "attempt", attempt+1, "err", err)
				if serr := c.sleep(ctx, backoff); serr != nil {
					return fmt.Errorf("resonite: %s %s: %w", r.method, c.logPath(r), serr)
				}
				backoff *= 2
				continue
			}
			return fmt.Errorf("resonite: %s %s: %w", r.method, c.logPath(r), err)
		}
		if status >= 200 && status < 300 {
			if out == nil || status == http.StatusNoContent || len(bytes.TrimSpace(data)) == 0 {
				return nil
			}
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("resonite: %s %s: decoding reply: %w", r.method, c.logPath(r), err)
			}
			return nil
		}
		apiErr := &APIError{Method: r.method, Path: c.logPath(r), Status: status, Body: bodyExcerpt(data, c.secrets()), login: r.login}
		switch {
		case status == http.StatusTooManyRequests:
			wait := parseRetryAfter(hdr.Get("Retry-After"), c.now())
			if wait <= 0 {
				wait = backoff
				backoff *= 2
			}
			wait = min(wait, c.maxRetryAfter)
			apiErr.RetryAfter = wait
			if attempt >= maxRetries {
				return apiErr
			}
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				return apiErr // the caller cannot wait that long; let it decide
			}
			c.log.WarnContext(ctx, "resonite rate limit; waiting", "method", r.method, "path", c.logPath(r), "wait", wait)
			if serr := c.sleep(ctx, wait); serr != nil {
				return fmt.Errorf("%w (%w)", apiErr, serr)
			}
		case status >= 500 && r.idempotent() && attempt < maxRetries:
			c.log.DebugContext(ctx, "resonite server error; retrying", "method", r.method, "path", c.logPath(r), "status", status, "attempt", attempt+1)
			if serr := c.sleep(ctx, backoff); serr != nil {
				return fmt.Errorf("%w (%w)", apiErr, serr)
			}
			backoff *= 2
		default:
			return apiErr
		}
	}
}

// once sends one request and reads the whole answer.
func (c *Client) once(ctx context.Context, r request, authz string, body []byte) (int, http.Header, []byte, error) {
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("User-Agent", c.ua)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, stripURL(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading reply: %w", stripURL(err))
	}
	return resp.StatusCode, resp.Header, data, nil
}

// stripURL drops the URL that net/http puts in its errors: the logout URL carries the token.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// parseRetryAfter reads Retry-After as seconds or an HTTP date; 0 when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n <= 0 {
			return 0
		}
		n = min(n, 1e6) // capped by the caller anyway; this only avoids overflow
		return time.Duration(n * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return 0
}
