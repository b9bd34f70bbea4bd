package resonite_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

const totpSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

// memStore is a SessionStore in memory that counts what the client did with it.
type memStore struct {
	mu                 sync.Mutex
	s                  *resonite.UserSession
	saves, clears      int
	loadErr            error
	lastSavedTokenSeen []string
}

func (m *memStore) LoadSession(context.Context) (*resonite.UserSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.loadErr != nil {
		return nil, m.loadErr
	}
	if m.s == nil {
		return nil, nil
	}
	s := *m.s
	return &s, nil
}

func (m *memStore) SaveSession(_ context.Context, s resonite.UserSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.s = &s
	m.saves++
	m.lastSavedTokenSeen = append(m.lastSavedTokenSeen, s.Token)
	return nil
}

func (m *memStore) ClearSession(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.s = nil
	m.clears++
	return nil
}

func (m *memStore) get() (*resonite.UserSession, int, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.s, m.saves, m.clears
}

func loginBody(t *testing.T, e *env, i int) map[string]any {
	t.Helper()
	calls := e.f.CallsTo("POST", "/userSessions")
	var body map[string]any
	if err := json.Unmarshal(calls[i].Body, &body); err != nil {
		t.Fatal(err)
	}
	return body
}

func TestLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, err := e.c.Login(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s.UserID != botID || s.Token == "" || !s.RememberMe {
		t.Errorf("session = %v", s)
	}
	if d := s.Expire.Sub(s.Created.Time); d != 30*24*time.Hour {
		t.Errorf("token lifetime = %s, want 30 days", d)
	}
	if cur, ok := e.c.CurrentSession(); !ok || cur.Token != s.Token || e.c.UserID() != botID {
		t.Errorf("CurrentSession = %v, %v", cur, ok)
	}
	call := e.f.CallsTo("POST", "/userSessions")[0]
	if call.Header.Get("UID") != testUID || call.Header.Get("TOTP") != "" || !strings.HasPrefix(call.Header.Get("Content-Type"), "application/json") {
		t.Errorf("headers = %v", call.Header)
	}
	body := loginBody(t, e, 0)
	auth, _ := body["authentication"].(map[string]any)
	if body["username"] != botName || body["email"] != nil || body["secretMachineId"] != machineID || body["rememberMe"] != true ||
		auth["$type"] != "password" || auth["password"] != botPass {
		t.Errorf("login body = %v", body)
	}
	hdr, err := e.c.HubAuthorization(t.Context())
	if err != nil || hdr != "res "+botID+":"+s.Token {
		t.Errorf("HubAuthorization = %q, %v", hdr, err)
	}
	select {
	case <-e.c.TokenRenewed():
		t.Error("the first login signalled TokenRenewed")
	default:
	}
}

func TestLoginWithEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *resonite.Options) { o.Credentials.Username = botEmail })
	if _, err := e.c.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	body := loginBody(t, e, 0)
	if body["email"] != botEmail || body["username"] != nil {
		t.Errorf("login body = %v", body)
	}
}

func TestLoginErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		creds   resonite.Credentials
		uid     string
		want    error
		notWant error
		says    string
	}{
		{"bad password", resonite.Credentials{Username: botName, Password: "wrong password"}, testUID, resonite.ErrBadCredentials, resonite.ErrUnauthorized, "invalid credentials"},
		{"unknown user", resonite.Credentials{Username: "nobody", Password: botPass}, testUID, resonite.ErrBadCredentials, resonite.ErrTOTPRequired, "invalid credentials"},
		{"no credentials", resonite.Credentials{}, testUID, resonite.ErrUnauthorized, resonite.ErrBadCredentials, "no username and password"},
		{"no UID", resonite.Credentials{Username: botName, Password: botPass}, "", nil, resonite.ErrUnauthorized, "no UID"},
		{"invalid TOTP secret", resonite.Credentials{Username: botName, Password: botPass, TOTPSecret: "not base32!!"}, testUID, nil, resonite.ErrTOTPRequired, "not valid base32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(o *resonite.Options) { o.Credentials = tc.creds; o.UID = tc.uid })
			_, err := e.c.Login(t.Context())
			if err == nil {
				t.Fatal("login succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if errors.Is(err, tc.notWant) {
				t.Errorf("err = %v, should not be %v", err, tc.notWant)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("err %q does not say %q", err, tc.says)
			}
			if _, ok := e.c.CurrentSession(); ok {
				t.Error("a failed login left a session")
			}
		})
	}
}

func TestLoginTwoFactor(t *testing.T) {
	t.Parallel()
	code := func(t *testing.T) string {
		c, err := totp.GenerateCode(totpSecret, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	wrong := func(t *testing.T) string {
		b := []byte(code(t))
		for i := range b {
			b[i] = '0' + (b[i]-'0'+5)%10 // every digit differs
		}
		return string(b)
	}
	tests := []struct {
		name  string
		creds func(t *testing.T) resonite.Credentials
		ok    bool
	}{
		{"no code", func(*testing.T) resonite.Credentials {
			return resonite.Credentials{Username: botName, Password: botPass}
		}, false},
		{"wrong code", func(t *testing.T) resonite.Credentials {
			return resonite.Credentials{Username: botName, Password: botPass, TOTPCode: wrong(t)}
		}, false},
		{"one-time code", func(t *testing.T) resonite.Credentials {
			return resonite.Credentials{Username: botName, Password: botPass, TOTPCode: code(t)}
		}, true},
		{"secret", func(*testing.T) resonite.Credentials {
			return resonite.Credentials{Username: botName, Password: botPass, TOTPSecret: totpSecret}
		}, true},
		{"secret in lower case with spaces", func(*testing.T) resonite.Credentials {
			return resonite.Credentials{Username: botName, Password: botPass, TOTPSecret: "jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp"}
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			creds := tc.creds(t)
			e := newEnv(t, func(o *resonite.Options) { o.Credentials = creds })
			e.f.RequireTOTP(botID, totpSecret)
			_, err := e.c.Login(t.Context())
			if tc.ok {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if h := e.f.CallsTo("POST", "/userSessions")[0].Header.Get("TOTP"); len(h) != 6 {
					t.Errorf("TOTP header = %q", h)
				}
				return
			}
			if !errors.Is(err, resonite.ErrTOTPRequired) || errors.Is(err, resonite.ErrBadCredentials) {
				t.Fatalf("err = %v, want ErrTOTPRequired", err)
			}
			if !strings.Contains(err.Error(), "2FA") {
				t.Errorf("err %q does not mention 2FA", err)
			}
		})
	}
}

func TestExpiredTokenReloginOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	first, err := e.c.Login(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.f.ExpireTokens()
	if _, err := e.c.Contacts(ctx); err != nil {
		t.Fatalf("contacts after expiry: %v", err)
	}
	if n := len(e.f.CallsTo("POST", "/userSessions")); n != 2 {
		t.Errorf("logins = %d, want 2", n)
	}
	cur, _ := e.c.CurrentSession()
	if cur.Token == first.Token {
		t.Error("token did not change")
	}
	select {
	case <-e.c.TokenRenewed():
	default:
		t.Error("TokenRenewed not signalled")
	}

	// A second expiry inside the back-off window: one refused call, no login storm.
	e.f.ExpireTokens()
	_, err = e.c.Messages(ctx, resonite.MessageQuery{})
	if !errors.Is(err, resonite.ErrUnauthorized) || !errors.Is(err, resonite.ErrReloginBackoff) {
		t.Fatalf("err = %v, want ErrUnauthorized and ErrReloginBackoff", err)
	}
	if n := len(e.f.CallsTo("POST", "/userSessions")); n != 2 {
		t.Errorf("logins = %d, want still 2", n)
	}

	// After the window (1 min by default) one more re-login is allowed.
	resonite.SetNow(e.c, func() time.Time { return time.Now().Add(61 * time.Second) })
	if _, err := e.c.Messages(ctx, resonite.MessageQuery{}); err != nil {
		t.Fatalf("messages after the window: %v", err)
	}
	if n := len(e.f.CallsTo("POST", "/userSessions")); n != 3 {
		t.Errorf("logins = %d, want 3", n)
	}
	// The window doubled: 61 s later is still inside it.
	e.f.ExpireTokens()
	cur, _ = e.c.CurrentSession()
	err = e.c.Relogin(ctx, "res "+botID+":"+cur.Token)
	if !errors.Is(err, resonite.ErrReloginBackoff) {
		t.Errorf("Relogin inside the doubled window: %v", err)
	}
	resonite.SetNow(e.c, func() time.Time { return time.Now().Add(61*time.Second + 121*time.Second) })
	if err := e.c.Relogin(ctx, "res "+botID+":"+cur.Token); err != nil {
		t.Errorf("Relogin after the doubled window: %v", err)
	}
}

func TestReloginSkipsWhenTokenAlreadyChanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.c.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Relogin(t.Context(), "res "+botID+":an-older-token"); err != nil {
		t.Fatal(err)
	}
	if n := len(e.f.CallsTo("POST", "/userSessions")); n != 1 {
		t.Errorf("logins = %d, want 1", n)
	}
}

func TestConcurrentAuthFailuresLogInOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.c.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.f.ExpireTokens()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := e.c.Contacts(t.Context())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := len(e.f.CallsTo("POST", "/userSessions")); n != 2 {
		t.Errorf("logins = %d, want 2", n)
	}
}

func TestStoredSession(t *testing.T) {
	t.Parallel()
	t.Run("live session is reused without login", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		tok := e.f.IssueToken(botID, 10*24*time.Hour)
		now := time.Now()
		st := &memStore{s: &resonite.UserSession{UserID: botID, Token: tok, RememberMe: true,
			Created: resonite.NewTime(now.Add(-20 * 24 * time.Hour)), Expire: resonite.NewTime(now.Add(10 * 24 * time.Hour))}}
		e = rebuild(t, e, func(o *resonite.Options) { o.SessionStore = st })
		s, err := e.c.EnsureSession(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if s.Token != tok {
			t.Errorf("token = %q, want the stored one", s.Token)
		}
		if _, err := e.c.Contacts(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := len(e.f.CallsTo("POST", "/userSessions")); n != 0 {
			t.Errorf("logins = %d, want 0", n)
		}
		if n := len(e.f.CallsTo("PATCH", "/userSessions")); n != 1 {
			t.Errorf("validating PATCHes = %d, want 1", n)
		}
		saved, _, _ := st.get()
		if saved == nil || saved.Expire.Before(now.Add(29*24*time.Hour)) {
			t.Errorf("stored session not extended: %v", saved)
		}
	})
	t.Run("refused session is replaced by a login", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		st := &memStore{s: &resonite.UserSession{UserID: botID, Token: "revoked", RememberMe: true, Expire: resonite.NewTime(time.Now().Add(24 * time.Hour))}}
		e = rebuild(t, e, func(o *resonite.Options) { o.SessionStore = st })
		s, err := e.c.EnsureSession(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		saved, saves, clears := st.get()
		if s.Token == "revoked" || saved == nil || saved.Token != s.Token || saves != 1 || clears != 1 {
			t.Errorf("token %q, saved %v, saves %d clears %d", s.Token, saved, saves, clears)
		}
		if n := len(e.f.CallsTo("POST", "/userSessions")); n != 1 {
			t.Errorf("logins = %d, want 1", n)
		}
		select {
		case <-e.c.TokenRenewed():
			t.Error("the first usable token signalled TokenRenewed")
		default:
		}
	})
	t.Run("session about to expire is not reused", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		tok := e.f.IssueToken(botID, 30*time.Minute)
		st := &memStore{s: &resonite.UserSession{UserID: botID, Token: tok, Expire: resonite.NewTime(time.Now().Add(30 * time.Minute))}}
		e = rebuild(t, e, func(o *resonite.Options) { o.SessionStore = st })
		if _, err := e.c.EnsureSession(t.Context()); err != nil {
			t.Fatal(err)
		}
		if p, l := len(e.f.CallsTo("PATCH", "/userSessions")), len(e.f.CallsTo("POST", "/userSessions")); p != 0 || l != 1 {
			t.Errorf("PATCH %d, logins %d; want 0, 1", p, l)
		}
	})
	t.Run("stored session works without credentials", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		tok := e.f.IssueToken(botID, 10*24*time.Hour)
		st := &memStore{s: &resonite.UserSession{UserID: botID, Token: tok, RememberMe: true, Expire: resonite.NewTime(time.Now().Add(10 * 24 * time.Hour))}}
		e = rebuild(t, e, func(o *resonite.Options) { o.SessionStore = st; o.Credentials = resonite.Credentials{} })
		if _, err := e.c.Messages(t.Context(), resonite.MessageQuery{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unreadable store falls back to login", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		st := &memStore{loadErr: errors.New("database down")}
		e = rebuild(t, e, func(o *resonite.Options) { o.SessionStore = st })
		if _, err := e.c.EnsureSession(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, saves, _ := st.get(); saves != 1 {
			t.Errorf("saves = %d", saves)
		}
	})
	t.Run("network failure while checking is an error", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		tok := e.f.IssueToken(botID, 10*24*time.Hour)
		st := &memStore{s: &resonite.UserSession{UserID: botID, Token: tok, Expire: resonite.NewTime(time.Now().Add(10 * 24 * time.Hour))}}
		e = rebuild(t, e, func(o *resonite.Options) { o.SessionStore = st })
		e.f.FailNext("/userSessions", http.StatusServiceUnavailable, 0, 10)
		if _, err := e.c.EnsureSession(t.Context()); err == nil || !strings.Contains(err.Error(), "checking stored session") {
			t.Errorf("err = %v", err)
		}
		if saved, _, clears := st.get(); saved == nil || clears != 0 {
			t.Error("a transient failure dropped the stored session")
		}
	})
}

// rebuild makes a new client on the same fake with changed options.
func rebuild(t *testing.T, e *env, mod func(*resonite.Options)) *env {
	t.Helper()
	o := resonite.Options{
		BaseURL:     e.f.URL,
		HTTPClient:  &http.Client{Timeout: 10 * time.Second},
		Credentials: resonite.Credentials{Username: botName, Password: botPass},
		UID:         testUID,
		Logger:      slog.New(slog.NewTextHandler(e.logs, nil)),
	}
	mod(&o)
	c, err := resonite.NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	resonite.SetSleep(c, e.sleeps.sleep)
	t.Cleanup(o.HTTPClient.CloseIdleConnections)
	return &env{f: e.f, c: c, sleeps: e.sleeps, logs: e.logs}
}

func TestExtendAndLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	st := &memStore{}
	e = rebuild(t, e, func(o *resonite.Options) { o.SessionStore = st })
	ctx := t.Context()
	// Extend without a session logs in.
	if err := e.c.Extend(ctx); err != nil {
		t.Fatal(err)
	}
	s, _ := e.c.CurrentSession()
	if err := e.c.Extend(ctx); err != nil {
		t.Fatal(err)
	}
	patches := e.f.CallsTo("PATCH", "/userSessions")
	if len(patches) != 1 || patches[0].Header.Get("Authorization") != "res "+botID+":"+s.Token {
		t.Fatalf("PATCH calls = %v", patches)
	}
	if _, saves, _ := st.get(); saves != 2 {
		t.Errorf("saves = %d, want 2 (login, extend)", saves)
	}

	if err := e.c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	dels := e.f.CallsTo("DELETE", "")
	if len(dels) != 1 || dels[0].Path != "/userSessions/"+botID+"/"+s.Token {
		t.Errorf("DELETE calls = %+v", dels)
	}
	if n := e.f.Tokens(botID); n != 0 {
		t.Errorf("%d tokens still valid after logout", n)
	}
	if _, ok := e.c.CurrentSession(); ok {
		t.Error("session kept after logout")
	}
	if saved, _, clears := st.get(); saved != nil || clears != 1 {
		t.Errorf("store after logout: %v, clears %d", saved, clears)
	}
	// Logging out twice is harmless.
	if err := e.c.Logout(ctx); err != nil {
		t.Errorf("second logout: %v", err)
	}
	// A later login counts as a token change for the hub.
	if _, err := e.c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.c.TokenRenewed():
	default:
		t.Error("login after logout did not signal TokenRenewed")
	}
}

func TestLogoutOfRefusedTokenSucceeds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.c.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.f.ExpireTokens()
	if err := e.c.Logout(t.Context()); err != nil {
		t.Errorf("logout: %v", err)
	}
}

func TestRunUpkeep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.c.Login(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); e.c.RunUpkeep(ctx, 5*time.Millisecond) }()
	if _, err := e.f.WaitCalls(waitCtx(t), "PATCH", "/userSessions", 2); err != nil {
		t.Fatal(err)
	}
	// An expired token is replaced by the upkeep itself.
	e.f.ExpireTokens()
	if _, err := e.f.WaitCalls(waitCtx(t), "POST", "/userSessions", 2); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
}

func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *resonite.Options) {
		o.Credentials = resonite.Credentials{Username: botName, Password: botPass, TOTPSecret: totpSecret}
		o.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond}
	})
	e.f.RequireTOTP(botID, totpSecret)
	ctx := t.Context()
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	s, err := e.c.Login(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tokens := []string{s.Token}
	e.f.ExpireTokens()
	_, err = e.c.Contacts(ctx) // re-login
	note(err)
	cur, _ := e.c.CurrentSession()
	tokens = append(tokens, cur.Token)
	e.f.ExpireTokens()
	_, err = e.c.Messages(ctx, resonite.MessageQuery{}) // backing off
	note(err)
	// The logout URL carries the token: a transport error must not show it.
	e.f.StallNext("/userSessions/"+botID+"/"+cur.Token, 1)
	note(e.c.Logout(ctx))
	// Failing logins of several kinds.
	for _, creds := range []resonite.Credentials{
		{Username: botName, Password: "wrong-" + botPass},
		{Username: botName, Password: botPass},
		{Username: botName, Password: botPass, TOTPSecret: "!!" + totpSecret},
	} {
		e2 := rebuild(t, e, func(o *resonite.Options) { o.Credentials = creds })
		_, err := e2.c.Login(ctx)
		note(err)
	}
	if len(errs) < 5 {
		t.Fatalf("expected the failures to produce errors, got %v", errs)
	}
	if !strings.Contains(fmt.Sprint(errs), "/userSessions/"+botID+"/[redacted]") {
		t.Errorf("logout error does not name the redacted path: %v", errs)
	}
	secrets := append([]string{botPass, totpSecret}, tokens...)
	logs := e.logs.String()
	for _, secret := range secrets {
		for _, err := range errs {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains a secret", err)
			}
		}
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret:\n%s", logs)
		}
	}
	if !strings.Contains(logs, "resonite login failed") {
		t.Errorf("login failures were not logged:\n%s", logs)
	}
}

func TestCredentialsRedacted(t *testing.T) {
	t.Parallel()
	cr := resonite.Credentials{Username: botName, Password: botPass, TOTPSecret: totpSecret, TOTPCode: "123456"}
	var buf syncBuffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "credentials", cr, "options", resonite.Options{Credentials: cr})
	for name, s := range map[string]string{
		"String": cr.String(), "%v": fmt.Sprintf("%v", cr), "%+v": fmt.Sprintf("%+v", cr), "%#v": fmt.Sprintf("%#v", cr),
		"options %+v": fmt.Sprintf("%+v", resonite.Options{Credentials: cr}), "slog": buf.String(),
	} {
		for _, secret := range []string{botPass, totpSecret, "123456"} {
			if strings.Contains(s, secret) {
				t.Errorf("%s shows a secret: %s", name, s)
			}
		}
		if !strings.Contains(s, botName) {
			t.Errorf("%s hides the username: %s", name, s)
		}
	}
}
