package resonite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp/totp"
)

// ErrReloginBackoff is returned by Relogin while it waits out the back-off window after an
// earlier re-login; the caller should try again later.
var ErrReloginBackoff = errors.New("resonite: re-login is backing off after a recent authentication failure")

// Credentials log the bridge account in. String and LogValue never show the secrets.
type Credentials struct {
	Username   string // a username, or an e-mail address (sent as "email" when it contains '@')
	Password   string
	TOTPSecret string // base32 2FA secret; a fresh code is generated for every login
	TOTPCode   string // a one-time code, used when there is no secret
}

func (c Credentials) String() string {
	return fmt.Sprintf("Credentials{username=%s password=%s totpSecret=%s totpCode=%s}",
		c.Username, setOrNot(c.Password), setOrNot(c.TOTPSecret), setOrNot(c.TOTPCode))
}

// GoString keeps %#v from printing the fields.
func (c Credentials) GoString() string { return c.String() }

// MarshalJSON redacts too: slog's JSON handler and other dumps encode nested structs (such as
// Options) with encoding/json, which would otherwise print the fields.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{
		"username":   c.Username,
		"password":   setOrNot(c.Password),
		"totpSecret": setOrNot(c.TOTPSecret),
		"totpCode":   setOrNot(c.TOTPCode),
	})
}

// LogValue implements slog.LogValuer.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("username", c.Username),
		slog.String("password", setOrNot(c.Password)),
		slog.String("totpSecret", setOrNot(c.TOTPSecret)),
		slog.String("totpCode", setOrNot(c.TOTPCode)),
	)
}

func setOrNot(s string) string {
	if s == "" {
		return "[unset]"
	}
	return "[redacted]"
}

// SessionStore persists the login session so that a restart reuses a live token.
type SessionStore interface {
	LoadSession(ctx context.Context) (*UserSession, error) // nil, nil when none
	SaveSession(ctx context.Context, s UserSession) error
	ClearSession(ctx context.Context) error
}

// minRemaining is how long a session must still live to be reused rather than replaced.
const minRemaining = time.Hour

func authHeader(s UserSession) string { return "res " + s.UserID + ":" + s.Token }

// CurrentSession returns the session in use, if any.
func (c *Client) CurrentSession() (UserSession, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess, c.hasSess
}

// UserID is the logged-in account's id, or "" before the first login.
func (c *Client) UserID() string {
	s, _ := c.CurrentSession()
	return s.UserID
}

// TokenRenewed is signalled (without blocking; capacity 1) whenever the token changes after
// the first one, so that the hub reconnects with the new token.
func (c *Client) TokenRenewed() <-chan struct{} { return c.renewed }

// HubAuthorization returns the "res <userId>:<token>" header, logging in when needed.
func (c *Client) HubAuthorization(ctx context.Context) (string, error) {
	s, err := c.EnsureSession(ctx)
	if err != nil {
		return "", err
	}
	return authHeader(s), nil
}

func (c *Client) fresh(s UserSession) bool {
	return s.Token != "" && s.UserID != "" && s.Expire.After(c.now().Add(minRemaining))
}

// EnsureSession returns a usable session: the current one, else a stored one that is still
// valid (checked with a cheap PATCH, which also extends it), else a new login.
func (c *Client) EnsureSession(ctx context.Context) (UserSession, error) {
	if s, ok := c.CurrentSession(); ok && c.fresh(s) {
		return s, nil
	}
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	if s, ok := c.CurrentSession(); ok && c.fresh(s) {
		return s, nil // another caller logged in while we waited
	}
	if !c.storeLoaded && c.store != nil {
		c.storeLoaded = true
		if s, ok, err := c.loadStored(ctx); err != nil {
			return UserSession{}, err
		} else if ok {
			return s, nil
		}
	}
	return c.loginLocked(ctx)
}

// loadStored tries the stored session. A refused one is cleared and reported as absent; a
// network failure is an error, since logging in would likely fail the same way.
func (c *Client) loadStored(ctx context.Context) (UserSession, bool, error) {
	stored, err := c.store.LoadSession(ctx)
	if err != nil {
		c.log.WarnContext(ctx, "loading stored resonite session failed; logging in", "err", err)
		return UserSession{}, false, nil
	}
	if stored == nil || !c.fresh(*stored) {
		return UserSession{}, false, nil
	}
	s := *stored
	err = c.roundTrip(ctx, request{method: http.MethodPatch, path: "/userSessions"}, authHeader(s), nil)
	switch {
	case err == nil:
		s.Expire = NewTime(c.now().Add(sessionLifetime(s)))
		c.setSession(ctx, s)
		c.log.InfoContext(ctx, "reusing stored resonite session", "user_id", s.UserID, "expire", s.Expire.Time)
		return s, true, nil
	case errors.Is(err, ErrUnauthorized):
		c.log.InfoContext(ctx, "stored resonite session was refused; logging in", "user_id", s.UserID)
		if cerr := c.store.ClearSession(ctx); cerr != nil {
			c.log.WarnContext(ctx, "clearing stored resonite session failed", "err", cerr)
		}
		return UserSession{}, false, nil
	default:
		return UserSession{}, false, fmt.Errorf("resonite: checking stored session: %w", err)
	}
}

// sessionLifetime is how far a PATCH pushes the expiry: the cloud's 30 days with rememberMe,
// else what the session had from the start.
func sessionLifetime(s UserSession) time.Duration {
	if s.RememberMe {
		return 30 * 24 * time.Hour
	}
	if d := s.Expire.Sub(s.Created.Time); d > 0 && !s.Created.IsZero() {
		return d
	}
	return 24 * time.Hour
}

// Login logs in with the credentials, even when a session exists.
func (c *Client) Login(ctx context.Context) (UserSession, error) {
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	return c.loginLocked(ctx)
}

type loginAuth struct {
	Type     string `json:"$type"`
	Password string `json:"password"`
}

type loginBody struct {
	Username        string    `json:"username,omitempty"`
	Email           string    `json:"email,omitempty"`
	Authentication  loginAuth `json:"authentication"`
	SecretMachineID string    `json:"secretMachineId"`
	RememberMe      bool      `json:"rememberMe"`
}

func (c *Client) loginLocked(ctx context.Context) (UserSession, error) {
	cr := c.creds
	if cr.Username == "" || cr.Password == "" {
		return UserSession{}, fmt.Errorf("resonite: logging in: no username and password configured: %w", ErrUnauthorized)
	}
	if c.uid == "" {
		return UserSession{}, errors.New("resonite: logging in: no UID configured")
	}
	hdr := http.Header{"Uid": {c.uid}}
	switch {
	case cr.TOTPSecret != "":
		code, err := totp.GenerateCode(strings.ToUpper(strings.ReplaceAll(cr.TOTPSecret, " ", "")), c.now())
		if err != nil {
			// pquerna's error names no secret, but keep it out anyway: only say what is wrong.
			return UserSession{}, errors.New("resonite: logging in: the TOTP secret is not valid base32")
		}
		hdr.Set("TOTP", code)
	case cr.TOTPCode != "":
		hdr.Set("TOTP", cr.TOTPCode)
	}
	body := loginBody{
		Authentication:  loginAuth{Type: "password", Password: cr.Password},
		SecretMachineID: c.machineID,
		RememberMe:      true,
	}
	if strings.Contains(cr.Username, "@") {
		body.Email = cr.Username
	} else {
		body.Username = cr.Username
	}
	var resp LoginResponse
	err := c.roundTrip(ctx, request{method: http.MethodPost, path: "/userSessions", body: body, header: hdr, login: true}, "", &resp)
	if err != nil {
		c.log.WarnContext(ctx, "resonite login failed", "username", cr.Username, "err", err)
		return UserSession{}, fmt.Errorf("resonite: logging in as %s: %w", cr.Username, err)
	}
	s := resp.Entity
	if s.Token == "" || s.UserID == "" {
		return UserSession{}, fmt.Errorf("resonite: logging in as %s: the reply carries no session", cr.Username)
	}
	c.setSession(ctx, s)
	c.log.InfoContext(ctx, "logged in to resonite", "user_id", s.UserID, "expire", s.Expire.Time)
	return s, nil
}

// setSession makes s current, signals TokenRenewed when the token changed, and persists it.
func (c *Client) setSession(ctx context.Context, s UserSession) {
	c.mu.Lock()
	changed := c.lastToken != "" && c.lastToken != s.Token
	c.sess, c.hasSess, c.lastToken = s, true, s.Token
	c.mu.Unlock()
	if changed {
		select {
		case c.renewed <- struct{}{}:
		default:
		}
	}
	if c.store != nil {
		if err := c.store.SaveSession(ctx, s); err != nil {
			c.log.WarnContext(ctx, "saving resonite session failed", "err", err)
		}
	}
}

// Extend pushes the session's expiry (PATCH /userSessions); with no session it logs in.
func (c *Client) Extend(ctx context.Context) error {
	if _, ok := c.CurrentSession(); !ok {
		_, err := c.EnsureSession(ctx)
		return err
	}
	if err := c.call(ctx, request{method: http.MethodPatch, path: "/userSessions", auth: authRequired}, nil); err != nil {
		return fmt.Errorf("resonite: extending session: %w", err)
	}
	c.mu.Lock()
	s := c.sess
	s.Expire = NewTime(c.now().Add(sessionLifetime(s)))
	c.sess = s
	c.mu.Unlock()
	if c.store != nil {
		if err := c.store.SaveSession(ctx, s); err != nil {
			c.log.WarnContext(ctx, "saving resonite session failed", "err", err)
		}
	}
	return nil
}

// Logout ends the session on the cloud and forgets it locally and in the store. A token the
// cloud no longer knows counts as logged out.
func (c *Client) Logout(ctx context.Context) error {
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	s, ok := c.CurrentSession()
	var err error
	if ok {
		r := request{
			method:  http.MethodDelete,
			path:    "/userSessions/" + url.PathEscape(s.UserID) + "/" + url.PathEscape(s.Token),
			logPath: "/userSessions/" + s.UserID + "/[redacted]",
		}
		err = c.roundTrip(ctx, r, authHeader(s), nil)
		if errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrNotFound) {
			err = nil
		}
	}
	c.mu.Lock()
	c.sess, c.hasSess = UserSession{}, false
	c.mu.Unlock()
	c.storeLoaded = true // a stored session is gone too; never resurrect it
	if c.store != nil {
		if cerr := c.store.ClearSession(ctx); cerr != nil {
			err = errors.Join(err, fmt.Errorf("resonite: clearing stored session: %w", cerr))
		}
	}
	if err != nil {
		return fmt.Errorf("resonite: logging out: %w", err)
	}
	return nil
}

// Relogin logs in again after the token staleHeader carried was refused (by the hub or REST).
// It does nothing when the token has changed since, and at most one re-login happens per
// back-off window (1 min doubling to 30 min by default): inside it, it returns
// ErrReloginBackoff.
func (c *Client) Relogin(ctx context.Context, staleHeader string) error {
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	if s, ok := c.CurrentSession(); ok && authHeader(s) != staleHeader && c.fresh(s) {
		return nil
	}
	now := c.now()
	c.mu.Lock()
	if now.Before(c.reloginNext) {
		next := c.reloginNext
		c.mu.Unlock()
		return fmt.Errorf("%w (next attempt after %s)", ErrReloginBackoff, next.UTC().Format(time.RFC3339))
	}
	window := c.reloginWindow
	if window == 0 {
		window = c.reloginBackoff
	}
	c.reloginNext = now.Add(window)
	c.reloginWindow = min(window*2, c.reloginBackoffMax)
	c.mu.Unlock()
	_, err := c.loginLocked(ctx)
	return err
}

// noteAuthSuccess resets the re-login back-off once a token has worked past the window, so that
// an expiry weeks later is handled at once again.
func (c *Client) noteAuthSuccess() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reloginWindow != 0 && !c.now().Before(c.reloginNext) {
		c.reloginWindow = 0
	}
}

// RunUpkeep extends the session every `every` (the caller passes an hour) until ctx is done.
// Failures are logged; an expired token is replaced through the usual re-login.
func (c *Client) RunUpkeep(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Hour
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.Extend(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.WarnContext(ctx, "extending resonite session failed", "err", err)
			continue
		}
		c.log.DebugContext(ctx, "extended resonite session")
	}
}

// secrets lists what must never appear in an error or log line.
func (c *Client) secrets() redactor {
	c.mu.Lock()
	tok := c.sess.Token
	c.mu.Unlock()
	return redactor{c.creds.Password, c.creds.TOTPSecret, c.creds.TOTPCode, tok}
}
