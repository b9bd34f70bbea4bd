package resonite_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/resonite"
	"github.com/resonite-bridge/resonite-bridge/resonite/resonitetest"
)

const (
	botID     = "U-Bridge"
	botName   = "BridgeBot"
	botEmail  = "bridge@example.com"
	botPass   = "correct horse battery staple"
	testUID   = "6A1F0E0C4B3D2E1F00112233445566778899AABBCCDDEEFF0011223344556677"
	machineID = "machine-id-for-tests"
)

func ptr[T any](v T) *T { return &v }

// syncBuffer collects log output from concurrent goroutines; waitFor waits on its writes.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // closed and replaced on every Write
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.written != nil {
		close(b.written)
	}
	b.written = make(chan struct{})
	return b.buf.Write(p)
}

// waitFor returns once the log holds every one of parts, or fails the test at the wait limit.
// Each write is the signal to look again: the log line is the code saying it did the work.
func (b *syncBuffer) waitFor(t *testing.T, what string, parts ...string) {
	t.Helper()
	timeout := time.NewTimer(waitLimit)
	defer timeout.Stop()
	for {
		b.mu.Lock()
		if b.written == nil {
			b.written = make(chan struct{})
		}
		text, written := b.buf.String(), b.written
		b.mu.Unlock()
		missing := ""
		for _, p := range parts {
			if !strings.Contains(text, p) {
				missing = p
				break
			}
		}
		if missing == "" {
			return
		}
		select {
		case <-written:
		case <-timeout.C:
			t.Fatalf("%s: %q not logged within %s:\n%s", what, missing, waitLimit, text)
		}
	}
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// sleeps records the waits the client asks for and returns at once.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}

type env struct {
	f      *resonitetest.Fake
	c      *resonite.Client
	sleeps *sleeps
	logs   *syncBuffer
}

// seed fills the fake with the bridge account, a few users, contacts, sessions and messages.
func seed(f *resonitetest.Fake) {
	f.AddUser(resonite.User{ID: botID, Username: botName, Email: botEmail, QuotaBytes: 1 << 30}, botPass)
	f.AddUser(resonite.User{ID: "U-Friend", Username: "Friend", Email: "friend@example.com",
		RegistrationDate: resonite.NewTime(time.Date(2024, 1, 18, 16, 5, 48, 0, time.UTC)),
		Profile:          &resonite.Profile{IconURL: "resdb:///abc.webp"}}, "")
	f.AddUser(resonite.User{ID: "U-Fox", Username: "FriendlyFox"}, "")
	f.AddUser(resonite.User{ID: "U-Other", Username: "Other"}, "")
	f.AddContact(botID, resonite.Contact{ID: "U-Friend", ContactUsername: "Friend", ContactStatus: resonite.ContactAccepted, IsAccepted: true})
	f.AddContact(botID, resonite.Contact{ID: "U-Fox", ContactUsername: "FriendlyFox", ContactStatus: resonite.ContactRequested})

	f.AddSession(resonite.SessionInfo{SessionID: "S-U-Host:HiddenStarTheater", Name: "The <color=yellow>Hidden Star Theater</color>",
		HostUsername: "Host", HostUserID: ptr("U-Host"), CompatibilityHash: "C1", HeadlessHost: true, ActiveUsers: 5, JoinedUsers: 6, MaxUsers: 34, IsValid: true})
	f.AddSession(resonite.SessionInfo{SessionID: "S-empty", Name: "Empty Headless Lobby", HostUsername: "LobbyBot",
		HostUserID: ptr("U-LobbyBot"), CompatibilityHash: "C1", HeadlessHost: true, ActiveUsers: 0, IsValid: true})
	f.AddSession(resonite.SessionInfo{SessionID: "S-cafe", Name: "Chill Cafe", HostUsername: "FriendlyFox",
		HostUserID: ptr("U-Fox"), CompatibilityHash: "C2", ActiveUsers: 2, IsValid: true})
	f.AddSession(resonite.SessionInfo{SessionID: "S-universe", Name: "Universe Hangout", HostUsername: "Host",
		HostUserID: ptr("U-Host"), UniverseID: ptr("UNI-1"), CompatibilityHash: "C1", ActiveUsers: 3})
	f.AddSession(resonite.SessionInfo{SessionID: "S-hidden", Name: "Hidden Cafe", HostUsername: "Host", HideFromListing: true, ActiveUsers: 9})
	f.AddSession(resonite.SessionInfo{SessionID: "S-ended", Name: "Ended Cafe", HostUsername: "Host", HasEnded: true, ActiveUsers: 9})

	base := time.Date(2025, 5, 24, 22, 0, 0, 0, time.UTC)
	msg := func(id, from, to string, minute int, read bool) resonite.Message {
		m := resonite.Message{ID: id, SenderID: from, RecipientID: to, MessageType: resonite.MessageText, Content: "text " + id,
			SendTime: resonite.NewTime(base.Add(time.Duration(minute) * time.Minute)), LastUpdateTime: resonite.NewTime(base.Add(time.Duration(minute) * time.Minute))}
		if read {
			m.ReadTime = ptr(resonite.NewTime(base.Add(time.Hour)))
		}
		return m
	}
	f.AddMessage(botID, msg("MSG-1", "U-Friend", botID, 1, true))
	f.AddMessage(botID, msg("MSG-2", botID, "U-Friend", 2, false))
	f.AddMessage(botID, msg("MSG-3", "U-Fox", botID, 3, false))
	f.AddMessage(botID, msg("MSG-4", "U-Friend", botID, 4, false))
}

func newEnv(t *testing.T, mod ...func(*resonite.Options)) *env {
	t.Helper()
	f := resonitetest.New(t)
	seed(f)
	logs := &syncBuffer{}
	o := resonite.Options{
		BaseURL:         f.URL,
		HTTPClient:      &http.Client{Timeout: 10 * time.Second},
		Credentials:     resonite.Credentials{Username: botName, Password: botPass},
		UID:             testUID,
		SecretMachineID: machineID,
		Logger:          slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mod {
		m(&o)
	}
	c, err := resonite.NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	s := &sleeps{}
	resonite.SetSleep(c, s.sleep)
	t.Cleanup(func() { o.HTTPClient.CloseIdleConnections() })
	return &env{f: f, c: c, sleeps: s, logs: logs}
}

func sessionIDs(ss []resonite.SessionInfo) []string {
	var ids []string
	for _, s := range ss {
		ids = append(ids, s.SessionID)
	}
	slices.Sort(ids)
	return ids
}

func TestNewClientRejectsBadBaseURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"api.resonite.com", "ftp://x", "://"} {
		if _, err := resonite.NewClient(resonite.Options{BaseURL: u}); err == nil {
			t.Errorf("NewClient(BaseURL %q) accepted it", u)
		}
	}
}

func TestSessionsFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name  string
		q     resonite.SessionQuery
		want  []string
		query string // expected encoded query
	}{
		{"no filter shows listed sessions outside universes", resonite.SessionQuery{}, []string{"S-U-Host:HiddenStarTheater", "S-cafe", "S-empty"}, ""},
		{"name is a case-insensitive substring", resonite.SessionQuery{Name: "hidden STAR"}, []string{"S-U-Host:HiddenStarTheater"}, "name=hidden+STAR"},
		{"host name", resonite.SessionQuery{HostName: "fox"}, []string{"S-cafe"}, "hostName=fox"},
		{"host id", resonite.SessionQuery{HostID: "U-Host"}, []string{"S-U-Host:HiddenStarTheater"}, "hostId=U-Host"},
		{"universe", resonite.SessionQuery{UniverseID: "UNI-1"}, []string{"S-universe"}, "universeId=UNI-1"},
		{"compatibility hash", resonite.SessionQuery{CompatibilityHash: "C2"}, []string{"S-cafe"}, "compatibilityHash=C2"},
		{"min active users", resonite.SessionQuery{MinActiveUsers: ptr(3)}, []string{"S-U-Host:HiddenStarTheater"}, "minActiveUsers=3"},
		{"min active users zero is sent", resonite.SessionQuery{MinActiveUsers: ptr(0)}, []string{"S-U-Host:HiddenStarTheater", "S-cafe", "S-empty"}, "minActiveUsers=0"},
		{"exclude empty headless", resonite.SessionQuery{IncludeEmptyHeadless: ptr(false)}, []string{"S-U-Host:HiddenStarTheater", "S-cafe"}, "includeEmptyHeadless=false"},
		{"include empty headless explicitly", resonite.SessionQuery{IncludeEmptyHeadless: ptr(true)}, []string{"S-U-Host:HiddenStarTheater", "S-cafe", "S-empty"}, "includeEmptyHeadless=true"},
		{"filters combine", resonite.SessionQuery{Name: "e", HostName: "host", MinActiveUsers: ptr(1)}, []string{"S-U-Host:HiddenStarTheater"}, "hostName=host&minActiveUsers=1&name=e"},
		{"nothing matches", resonite.SessionQuery{Name: "no such world"}, nil, "name=no+such+world"},
	}
	for _, tc := range tests {
		got, err := e.c.Sessions(t.Context(), tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if ids := sessionIDs(got); !slices.Equal(ids, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, ids, tc.want)
		}
		calls := e.f.CallsTo("GET", "/sessions")
		if q := calls[len(calls)-1].Query.Encode(); q != tc.query {
			t.Errorf("%s: query %q, want %q", tc.name, q, tc.query)
		}
	}
}

func TestSessionByID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, err := e.c.SessionByID(t.Context(), "S-U-Host:HiddenStarTheater")
	if err != nil {
		t.Fatal(err)
	}
	if s.HostUsername != "Host" || s.ActiveUsers != 5 || s.MaxUsers != 34 {
		t.Errorf("got %+v", s)
	}
	_, err = e.c.SessionByID(t.Context(), "S-missing")
	if !errors.Is(err, resonite.ErrNotFound) {
		t.Errorf("missing session: err = %v, want ErrNotFound", err)
	}
	var apiErr *resonite.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Path != "/sessions/S-missing" || apiErr.Method != "GET" {
		t.Errorf("missing session: APIError = %+v", apiErr)
	}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()

	u, err := e.c.User(ctx, "U-Friend")
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "Friend" || u.Email != "" || resonite.AssetURL(u.Profile.IconURL) != "https://assets.resonite.com/abc" {
		t.Errorf("User: got %+v", u)
	}
	if _, err := e.c.User(ctx, "U-Nobody"); !errors.Is(err, resonite.ErrNotFound) {
		t.Errorf("User(unknown): %v, want ErrNotFound", err)
	}

	u, err = e.c.UserByName(ctx, "friend")
	if err != nil || u.ID != "U-Friend" {
		t.Errorf("UserByName(friend) = %v, %v", u.ID, err)
	}
	if _, err := e.c.UserByName(ctx, "Frie"); !errors.Is(err, resonite.ErrNotFound) {
		t.Errorf("UserByName(partial) = %v, want ErrNotFound", err)
	}
	last := e.f.CallsTo("GET", "/users")
	if q := last[len(last)-1].Query; q.Get("exactMatch") != "true" || q.Get("name") != "Frie" {
		t.Errorf("UserByName query = %v", q)
	}

	list, err := e.c.SearchUsers(ctx, "friend")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range list {
		names = append(names, u.Username)
	}
	if !slices.Equal(names, []string{"Friend", "FriendlyFox"}) {
		t.Errorf("SearchUsers(friend) = %v", names)
	}
	list, err = e.c.SearchUsers(ctx, "zzz")
	if err != nil || len(list) != 0 {
		t.Errorf("SearchUsers(zzz) = %v, %v", list, err)
	}
	// Public reads do not log in.
	if n := len(e.f.CallsTo("POST", "/userSessions")); n != 0 {
		t.Errorf("public reads logged in %d times", n)
	}
}

func TestUserByNameToleratesAList(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`[{"id":"U-A","username":"Alpha"},{"id":"U-B","username":"beta"}]`))
	}))
	defer srv.Close()
	c, err := resonite.NewClient(resonite.Options{BaseURL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.UserByName(t.Context(), "Beta")
	if err != nil || u.ID != "U-B" {
		t.Errorf("UserByName = %v, %v", u.ID, err)
	}
	if _, err := c.UserByName(t.Context(), "gamma"); !errors.Is(err, resonite.ErrNotFound) {
		t.Errorf("UserByName(gamma) = %v, want ErrNotFound", err)
	}
	srv.Client().CloseIdleConnections()
}

func TestContactsLogsInOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for range 2 {
		cs, err := e.c.Contacts(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 2 || cs[0].ID != "U-Friend" || cs[1].ContactStatus != resonite.ContactRequested || cs[0].OwnerID != botID {
			t.Errorf("contacts = %+v", cs)
		}
	}
	if n := len(e.f.CallsTo("POST", "/userSessions")); n != 1 {
		t.Errorf("logins = %d, want 1", n)
	}
	calls := e.f.CallsTo("GET", "/users/"+botID+"/contacts")
	if len(calls) != 2 || !strings.HasPrefix(calls[0].Header.Get("Authorization"), "res "+botID+":") {
		t.Errorf("contacts calls = %d, auth %q", len(calls), calls[0].Header.Get("Authorization"))
	}
}

func TestMessagesQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	from := time.Date(2025, 5, 24, 22, 3, 0, 0, time.UTC)
	tests := []struct {
		name  string
		q     resonite.MessageQuery
		want  []string
		query string
	}{
		{"default is 100 newest first", resonite.MessageQuery{}, []string{"MSG-4", "MSG-3", "MSG-2", "MSG-1"}, "maxItems=100"},
		{"max items", resonite.MessageQuery{MaxItems: 2}, []string{"MSG-4", "MSG-3"}, "maxItems=2"},
		{"all", resonite.MessageQuery{MaxItems: -1}, []string{"MSG-4", "MSG-3", "MSG-2", "MSG-1"}, "maxItems=-1"},
		{"from time is inclusive", resonite.MessageQuery{FromTime: from}, []string{"MSG-4", "MSG-3"}, "fromTime=2025-05-24T22%3A03%3A00.0000000Z&maxItems=100"},
		{"one conversation", resonite.MessageQuery{User: "U-Friend"}, []string{"MSG-4", "MSG-2", "MSG-1"}, "maxItems=100&user=U-Friend"},
		{"unread incoming", resonite.MessageQuery{MaxItems: -1, Unread: true}, []string{"MSG-4", "MSG-3"}, "maxItems=-1&unread=true"},
		{"combined", resonite.MessageQuery{User: "U-Friend", Unread: true, FromTime: from}, []string{"MSG-4"}, "fromTime=2025-05-24T22%3A03%3A00.0000000Z&maxItems=100&unread=true&user=U-Friend"},
	}
	for _, tc := range tests {
		got, err := e.c.Messages(t.Context(), tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var ids []string
		for _, m := range got {
			ids = append(ids, m.ID)
			if m.OwnerID != botID || m.OtherID == "" {
				t.Errorf("%s: message %s owner %q other %q", tc.name, m.ID, m.OwnerID, m.OtherID)
			}
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, ids, tc.want)
		}
		calls := e.f.CallsTo("GET", "/users/"+botID+"/messages")
		if q := calls[len(calls)-1].Query.Encode(); q != tc.query {
			t.Errorf("%s: query %q, want %q", tc.name, q, tc.query)
		}
	}
}

func TestOnlineStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.f.SetOnlineStats(resonite.OnlineStats{RegisteredUsers: 42, UsersByClientType: map[string]int{"Headless": 7}})
	s, err := e.c.OnlineStats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s.RegisteredUsers != 42 || s.UsersByClientType["Headless"] != 7 {
		t.Errorf("stats = %+v", s)
	}
}

func TestUserAgentAndDefaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.c.OnlineStats(t.Context()); err != nil {
		t.Fatal(err)
	}
	ua := e.f.CallsTo("GET", "/stats/onlineStats")[0].Header.Get("User-Agent")
	if ua != resonite.DefaultUserAgent || !strings.Contains(ua, "resonite-bridge/"+resonite.Version) {
		t.Errorf("User-Agent = %q", ua)
	}
	e2 := newEnv(t, func(o *resonite.Options) { o.UserAgent = "custom/1" })
	if _, err := e2.c.OnlineStats(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ua := e2.f.CallsTo("GET", "/stats/onlineStats")[0].Header.Get("User-Agent"); ua != "custom/1" {
		t.Errorf("custom User-Agent = %q", ua)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		retryAfter time.Duration
		times      int
		wantErr    bool
		wantSleeps []time.Duration
		wantCalls  int
	}{
		{"retry-after honoured", 2 * time.Second, 1, false, []time.Duration{2 * time.Second}, 2},
		{"retry-after capped at 60 s", 120 * time.Second, 1, false, []time.Duration{60 * time.Second}, 2},
		{"no retry-after backs off", 0, 2, false, []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}, 3},
		{"gives up after three retries", time.Second, 4, true, []time.Duration{time.Second, time.Second, time.Second}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.f.FailNext("/sessions", http.StatusTooManyRequests, tc.retryAfter, tc.times)
			_, err := e.c.Sessions(t.Context(), resonite.SessionQuery{})
			if tc.wantErr {
				var apiErr *resonite.APIError
				if !errors.Is(err, resonite.ErrRateLimited) || !errors.As(err, &apiErr) || apiErr.RetryAfter != tc.retryAfter {
					t.Errorf("err = %v (%+v), want ErrRateLimited with RetryAfter %s", err, apiErr, tc.retryAfter)
				}
			} else if err != nil {
				t.Errorf("err = %v", err)
			}
			if got := e.sleeps.all(); !slices.Equal(got, tc.wantSleeps) {
				t.Errorf("sleeps = %v, want %v", got, tc.wantSleeps)
			}
			if n := len(e.f.CallsTo("GET", "/sessions")); n != tc.wantCalls {
				t.Errorf("calls = %d, want %d", n, tc.wantCalls)
			}
		})
	}
}

func TestRateLimitLongerThanContextAllows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.f.FailNext("/sessions", http.StatusTooManyRequests, 30*time.Second, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := e.c.Sessions(ctx, resonite.SessionQuery{})
	var apiErr *resonite.APIError
	if !errors.Is(err, resonite.ErrRateLimited) || !errors.As(err, &apiErr) || apiErr.RetryAfter != 30*time.Second {
		t.Fatalf("err = %v, want ErrRateLimited with RetryAfter 30s", err)
	}
	if got := e.sleeps.all(); len(got) != 0 {
		t.Errorf("slept %v although the context could not wait", got)
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", now.Add(7*time.Second).Format(http.TimeFormat))
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	c, err := resonite.NewClient(resonite.Options{BaseURL: srv.URL, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	s := &sleeps{}
	resonite.SetSleep(c, s.sleep)
	resonite.SetNow(c, func() time.Time { return now })
	_, err = c.OnlineStats(t.Context())
	if !errors.Is(err, resonite.ErrRateLimited) {
		t.Errorf("err = %v", err)
	}
	if got := s.all(); !slices.Equal(got, []time.Duration{7 * time.Second, 7 * time.Second, 7 * time.Second}) {
		t.Errorf("sleeps = %v", got)
	}
	srv.Client().CloseIdleConnections()
}

func TestServerErrors(t *testing.T) {
	t.Parallel()
	t.Run("GET retries 5xx with backoff", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.f.FailNext("/sessions/S-cafe", http.StatusServiceUnavailable, 0, 1)
		e.f.FailNext("/sessions/S-cafe", http.StatusBadGateway, 0, 1)
		s, err := e.c.SessionByID(t.Context(), "S-cafe")
		if err != nil || s.Name != "Chill Cafe" {
			t.Fatalf("got %q, %v", s.Name, err)
		}
		if got := e.sleeps.all(); !slices.Equal(got, []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}) {
			t.Errorf("sleeps = %v", got)
		}
	})
	t.Run("GET gives up after three retries", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.f.FailNext("/stats/onlineStats", http.StatusInternalServerError, 0, 10)
		_, err := e.c.OnlineStats(t.Context())
		var apiErr *resonite.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != 500 || !strings.Contains(apiErr.Body, "Internal Server Error") {
			t.Errorf("err = %v", err)
		}
		if n := len(e.f.CallsTo("GET", "/stats/onlineStats")); n != 4 {
			t.Errorf("calls = %d, want 4", n)
		}
	})
	t.Run("login is not retried on 5xx", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.f.FailNext("/userSessions", http.StatusBadGateway, 0, 1)
		if _, err := e.c.Login(t.Context()); err == nil {
			t.Fatal("login succeeded")
		}
		if n := len(e.f.CallsTo("POST", "/userSessions")); n != 1 {
			t.Errorf("login calls = %d, want 1", n)
		}
	})
	t.Run("4xx is not retried", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.f.FailNext("/sessions", http.StatusBadRequest, 0, 1)
		if _, err := e.c.Sessions(t.Context(), resonite.SessionQuery{}); err == nil {
			t.Fatal("no error")
		}
		if n := len(e.f.CallsTo("GET", "/sessions")); n != 1 {
			t.Errorf("calls = %d, want 1", n)
		}
	})
}

func TestTimeoutIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *resonite.Options) { o.HTTPClient = &http.Client{Timeout: 300 * time.Millisecond} })
	e.f.StallNext("/stats/onlineStats", 1)
	if _, err := e.c.OnlineStats(t.Context()); err != nil {
		t.Fatalf("err = %v", err)
	}
	if n := len(e.f.CallsTo("GET", "/stats/onlineStats")); n != 2 {
		t.Errorf("calls = %d, want 2", n)
	}
	if got := e.sleeps.all(); !slices.Equal(got, []time.Duration{200 * time.Millisecond}) {
		t.Errorf("sleeps = %v", got)
	}
}

func TestContextCancellation(t *testing.T) {
	t.Parallel()
	t.Run("already cancelled", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		for name, call := range map[string]func(context.Context) error{
			"Sessions":    func(ctx context.Context) error { _, err := e.c.Sessions(ctx, resonite.SessionQuery{}); return err },
			"Contacts":    func(ctx context.Context) error { _, err := e.c.Contacts(ctx); return err },
			"Messages":    func(ctx context.Context) error { _, err := e.c.Messages(ctx, resonite.MessageQuery{}); return err },
			"Login":       func(ctx context.Context) error { _, err := e.c.Login(ctx); return err },
			"OnlineStats": func(ctx context.Context) error { _, err := e.c.OnlineStats(ctx); return err },
		} {
			if err := call(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("%s: err = %v, want context.Canceled", name, err)
			}
		}
	})
	t.Run("during a stalled request", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.f.StallNext("/sessions", 1)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { _, err := e.c.Sessions(ctx, resonite.SessionQuery{}); done <- err }()
		// Cancel once the request has reached the fake.
		if _, err := e.f.WaitCalls(waitCtx(t), "GET", "/sessions", 1); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if n := len(e.f.CallsTo("GET", "/sessions")); n != 1 {
			t.Errorf("a cancelled call was retried: %d calls", n)
		}
	})
	t.Run("during a rate-limit wait", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		ctx, cancel := context.WithCancel(t.Context())
		resonite.SetSleep(e.c, func(context.Context, time.Duration) error { cancel(); return context.Canceled })
		e.f.FailNext("/sessions", http.StatusTooManyRequests, time.Second, 1)
		_, err := e.c.Sessions(ctx, resonite.SessionQuery{})
		if !errors.Is(err, context.Canceled) || !errors.Is(err, resonite.ErrRateLimited) {
			t.Errorf("err = %v, want context.Canceled and ErrRateLimited", err)
		}
	})
}

func TestAPIErrorBodyIsShortAndClean(t *testing.T) {
	t.Parallel()
	secret := "JBSWY3DPEHPK3PXP"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("echo: " + botPass + " " + secret + " " + strings.Repeat("é", 400)))
	}))
	defer srv.Close()
	c, err := resonite.NewClient(resonite.Options{BaseURL: srv.URL, HTTPClient: srv.Client(), UID: testUID,
		Credentials: resonite.Credentials{Username: botName, Password: botPass, TOTPSecret: secret}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Login(t.Context())
	var apiErr *resonite.APIError
	if !errors.As(err, &apiErr) || !errors.Is(err, resonite.ErrBadCredentials) {
		t.Fatalf("err = %v", err)
	}
	if len(apiErr.Body) > 200 || !strings.HasPrefix(apiErr.Body, "echo: [redacted] [redacted] é") {
		t.Errorf("body excerpt (%d bytes) = %q", len(apiErr.Body), apiErr.Body)
	}
	if msg := err.Error(); strings.Contains(msg, botPass) || strings.Contains(msg, secret) {
		t.Errorf("error leaks a secret: %s", msg)
	}
	srv.Client().CloseIdleConnections()
}

func TestAPIErrorIs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *resonite.APIError
		want []error
	}{
		{&resonite.APIError{Status: 404}, []error{resonite.ErrNotFound}},
		{&resonite.APIError{Status: 429}, []error{resonite.ErrRateLimited}},
		{&resonite.APIError{Status: 403}, []error{resonite.ErrUnauthorized}},
		{&resonite.APIError{Status: 401}, []error{resonite.ErrUnauthorized}},
		{&resonite.APIError{Status: 500}, nil},
	}
	all := []error{resonite.ErrNotFound, resonite.ErrRateLimited, resonite.ErrUnauthorized, resonite.ErrBadCredentials, resonite.ErrTOTPRequired}
	for _, tc := range tests {
		for _, target := range all {
			if got, want := errors.Is(tc.err, target), slices.Contains(tc.want, target); got != want {
				t.Errorf("errors.Is(%d, %v) = %v", tc.err.Status, target, got)
			}
		}
	}
}
