package resonitetest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// rememberMeTTL is the cloud's token lifetime with rememberMe; shortTTL without.
const (
	rememberMeTTL = 30 * 24 * time.Hour
	shortTTL      = 24 * time.Hour
)

// restState is the REST side's own state (failure injection and the like).
type restState struct {
	failures []failure
	stalls   map[string]int // path -> requests still to hang
	stats    *resonite.OnlineStats
}

type failure struct {
	path       string
	status     int
	retryAfter time.Duration
	times      int
}

// FailNext makes the next `times` REST requests to path (exact path such as "/sessions"; ""
// for any) answer status, with a Retry-After header in whole seconds when retryAfter > 0.
// Failures queue up in the order they were added.
func (f *Fake) FailNext(path string, status int, retryAfter time.Duration, times int) {
	if times <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rest.failures = append(f.rest.failures, failure{path: path, status: status, retryAfter: retryAfter, times: times})
}

// ClearFailures drops the failures FailNext queued and that have not happened yet.
func (f *Fake) ClearFailures() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rest.failures = nil
}

// StallNext makes the next `times` REST requests to path hang until the client gives up (its
// timeout or context) or the fake closes: a server that stopped answering.
func (f *Fake) StallNext(path string, times int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rest.stalls == nil {
		f.rest.stalls = map[string]int{}
	}
	f.rest.stalls[path] += times
}

// SetOnlineStats sets what GET /stats/onlineStats answers.
func (f *Fake) SetOnlineStats(s resonite.OnlineStats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rest.stats = &s
}

// SetNow replaces the fake's clock (token expiry, message times); nil restores time.Now.
func (f *Fake) SetNow(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now == nil {
		now = time.Now
	}
	f.now = now
}

// Tokens returns how many tokens are currently valid for userID.
func (f *Fake) Tokens(userID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.tokens {
		if t.userID == userID && !f.now().After(t.expire) {
			n++
		}
	}
	return n
}

func (f *Fake) mountREST(mux *http.ServeMux) {
	h := func(pattern string, fn func(w http.ResponseWriter, r *http.Request, body []byte)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			uid, _ := f.authenticate(r.Header)
			f.record(Call{Kind: "rest", Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body, UserID: uid})
			defer f.settled()
			if f.injected(w, r) {
				return
			}
			fn(w, r, body)
		})
	}
	h("POST /userSessions", f.login)
	h("PATCH /userSessions", f.extend)
	h("DELETE /userSessions/{userId}/{token}", f.logout)
	h("GET /sessions", f.listSessions)
	h("GET /sessions/{id}", f.getSession)
	h("GET /users", f.findUsers)
	h("GET /users/{id}", f.getUser)
	h("GET /users/{id}/contacts", f.listContacts)
	h("GET /users/{id}/messages", f.listMessages)
	h("GET /stats/onlineStats", f.onlineStats)
}

// injected serves a queued failure or stall; it reports whether it answered.
func (f *Fake) injected(w http.ResponseWriter, r *http.Request) bool {
	f.mu.Lock()
	stall := false
	for _, p := range []string{r.URL.Path, ""} {
		if f.rest.stalls[p] > 0 {
			f.rest.stalls[p]--
			stall = true
			break
		}
	}
	var fail *failure
	if !stall {
		for i := range f.rest.failures {
			if fl := &f.rest.failures[i]; fl.path == "" || fl.path == r.URL.Path {
				copied := *fl
				fail = &copied
				fl.times--
				if fl.times == 0 {
					f.rest.failures = slices.Delete(f.rest.failures, i, i+1)
				}
				break
			}
		}
	}
	f.mu.Unlock()
	switch {
	case stall:
		select {
		case <-r.Context().Done():
		case <-f.ctx.Done():
		}
		return true
	case fail != nil:
		if fail.retryAfter > 0 {
			secs := int((fail.retryAfter + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
		}
		http.Error(w, http.StatusText(fail.status), fail.status)
		return true
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeText(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, s)
}

// requireAuth answers 403 (what the real cloud says to an unknown or expired token) and
// returns false when the request is not authenticated.
func (f *Fake) requireAuth(w http.ResponseWriter, r *http.Request) (string, bool) {
	uid, ok := f.authenticate(r.Header)
	if !ok {
		writeText(w, http.StatusForbidden, "")
		return "", false
	}
	return uid, true
}

type loginRequest struct {
	Username       string `json:"username"`
	Email          string `json:"email"`
	OwnerID        string `json:"ownerId"`
	Authentication struct {
		Type     string `json:"$type"`
		Password string `json:"password"`
	} `json:"authentication"`
	SecretMachineID string `json:"secretMachineId"`
	RememberMe      bool   `json:"rememberMe"`
}

func (f *Fake) login(w http.ResponseWriter, r *http.Request, body []byte) {
	var req loginRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeText(w, http.StatusBadRequest, "Invalid request")
		return
	}
	if r.Header.Get("UID") == "" {
		writeText(w, http.StatusBadRequest, "UID header is required")
		return
	}
	f.mu.Lock()
	var user resonite.User
	found := false
	for _, u := range f.users {
		if (req.Username != "" && strings.EqualFold(u.Username, req.Username)) ||
			(req.Email != "" && u.Email != "" && strings.EqualFold(u.Email, req.Email)) ||
			(req.OwnerID != "" && u.ID == req.OwnerID) {
			user, found = u, true
			break
		}
	}
	pw, hasPW := f.passwords[user.ID]
	secret, needTOTP := f.totp[user.ID]
	f.mu.Unlock()
	if !found || !hasPW || req.Authentication.Type != "password" || req.Authentication.Password != pw {
		writeText(w, http.StatusBadRequest, "Invalid credentials")
		return
	}
	if needTOTP {
		code := r.Header.Get("TOTP")
		if code == "" || !totp.Validate(code, secret) {
			writeText(w, http.StatusForbidden, "TOTP")
			return
		}
	}
	ttl := shortTTL
	if req.RememberMe {
		ttl = rememberMeTTL
	}
	f.mu.Lock()
	now := f.now()
	tok := newToken()
	f.tokens[tok] = token{userID: user.ID, expire: now.Add(ttl)}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"entity": map[string]any{
			"userId": user.ID, "token": tok,
			"created": resonite.NewTime(now), "expire": resonite.NewTime(now.Add(ttl)),
			"rememberMe": req.RememberMe, "secretMachineIdHash": "aGFzaA==", "secretMachineIdSalt": "c2FsdA==",
			"uidHash": "aGFzaA==", "uidSalt": "c2FsdA==", "originalLoginType": "Password",
			"originalLoginId": "Auth-" + randomHex(16), "logoutUrl": nil, "logoutUrlClientSide": false,
			"sessionLoginCounter": 1, "sourceIP": "127.0.0.1", "userAgent": r.UserAgent(),
			"isMachineBound": false, "partitionKey": user.ID, "rowKey": tok, "eTag": nil,
		},
		"configFiles": []any{},
	})
}

func newToken() string {
	b := make([]byte, 48)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// extend answers a plain PATCH with 204, as the real cloud does, and pushes the expiry.
func (f *Fake) extend(w http.ResponseWriter, r *http.Request, _ []byte) {
	if _, ok := f.requireAuth(w, r); !ok {
		return
	}
	_, tok, _ := strings.Cut(strings.TrimPrefix(r.Header.Get("Authorization"), "res "), ":")
	f.mu.Lock()
	if t, ok := f.tokens[tok]; ok {
		t.expire = f.now().Add(rememberMeTTL)
		f.tokens[tok] = t
	}
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) logout(w http.ResponseWriter, r *http.Request, _ []byte) {
	uid, ok := f.requireAuth(w, r)
	if !ok {
		return
	}
	if r.PathValue("userId") != uid {
		writeText(w, http.StatusForbidden, "")
		return
	}
	f.mu.Lock()
	t, known := f.tokens[r.PathValue("token")]
	if known && t.userID == uid {
		delete(f.tokens, r.PathValue("token"))
	}
	f.mu.Unlock()
	if !known {
		writeText(w, http.StatusNotFound, "")
		return
	}
	w.WriteHeader(http.StatusOK)
}

// listSessions applies the seven filters the way the cloud does: name and hostName are
// case-insensitive substrings, ids and hashes exact, sessions of a universe only show when
// that universe is asked for, and hidden or ended sessions never show.
func (f *Fake) listSessions(w http.ResponseWriter, r *http.Request, _ []byte) {
	q := r.URL.Query()
	minActive := 0
	if v := q.Get("minActiveUsers"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeText(w, http.StatusBadRequest, "minActiveUsers must be an integer")
			return
		}
		minActive = n
	}
	includeEmpty := true
	if v := q.Get("includeEmptyHeadless"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeText(w, http.StatusBadRequest, "includeEmptyHeadless must be a boolean")
			return
		}
		includeEmpty = b
	}
	name, hostName := strings.ToLower(q.Get("name")), strings.ToLower(q.Get("hostName"))
	f.mu.Lock()
	all := slices.Clone(f.sessions)
	f.mu.Unlock()
	out := []resonite.SessionInfo{}
	for _, s := range all {
		switch {
		case s.HideFromListing, s.HasEnded:
		case name != "" && !strings.Contains(strings.ToLower(s.Name), name):
		case hostName != "" && !strings.Contains(strings.ToLower(s.HostUsername), hostName):
		case q.Get("hostId") != "" && deref(s.HostUserID) != q.Get("hostId"):
		case deref(s.UniverseID) != q.Get("universeId"):
		case q.Get("compatibilityHash") != "" && s.CompatibilityHash != q.Get("compatibilityHash"):
		case s.ActiveUsers < minActive:
		case !includeEmpty && s.HeadlessHost && s.ActiveUsers == 0:
		default:
			out = append(out, s)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (f *Fake) getSession(w http.ResponseWriter, r *http.Request, _ []byte) {
	id := r.PathValue("id")
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.sessions {
		if s.SessionID == id || strings.EqualFold(s.NormalizedSessionID, id) {
			writeJSON(w, http.StatusOK, s)
			return
		}
	}
	writeText(w, http.StatusNotFound, "")
}

// publicUser drops what only the account itself may see.
func publicUser(u resonite.User) resonite.User {
	u.Email, u.DateOfBirth, u.QuotaBytes, u.UsedBytes = "", nil, 0, 0
	return u
}

// findUsers serves GET /users?name=…: with exactMatch=true the single user of that name (or
// 404), else every user whose name contains it.
func (f *Fake) findUsers(w http.ResponseWriter, r *http.Request, _ []byte) {
	q := r.URL.Query()
	name := strings.ToLower(strings.TrimSpace(q.Get("name")))
	exact, _ := strconv.ParseBool(q.Get("exactMatch"))
	f.mu.Lock()
	var out []resonite.User
	for _, u := range f.users {
		un := strings.ToLower(u.Username)
		if (exact && un == name) || (!exact && name != "" && strings.Contains(un, name)) {
			out = append(out, publicUser(u))
		}
	}
	f.mu.Unlock()
	slices.SortFunc(out, func(a, b resonite.User) int { return strings.Compare(a.Username, b.Username) })
	if exact {
		if len(out) == 0 {
			writeText(w, http.StatusNotFound, "")
			return
		}
		writeJSON(w, http.StatusOK, out[0])
		return
	}
	if out == nil {
		out = []resonite.User{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *Fake) getUser(w http.ResponseWriter, r *http.Request, _ []byte) {
	id := r.PathValue("id")
	byName, _ := strconv.ParseBool(r.URL.Query().Get("byUsername"))
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.users {
		if (!byName && u.ID == id) || (byName && strings.EqualFold(u.Username, id)) {
			writeJSON(w, http.StatusOK, publicUser(u))
			return
		}
	}
	writeText(w, http.StatusNotFound, "")
}

func (f *Fake) listContacts(w http.ResponseWriter, r *http.Request, _ []byte) {
	uid, ok := f.requireAuth(w, r)
	if !ok {
		return
	}
	if r.PathValue("id") != uid {
		writeText(w, http.StatusForbidden, "")
		return
	}
	out := f.Contacts(uid)
	if out == nil {
		out = []resonite.Contact{}
	}
	writeJSON(w, http.StatusOK, out)
}

// listMessages serves the mailbox newest first. fromTime keeps messages whose lastUpdateTime
// (sendTime when unset) is at or after it; unread keeps unread incoming messages; maxItems -1
// means all, and a missing maxItems means 100.
func (f *Fake) listMessages(w http.ResponseWriter, r *http.Request, _ []byte) {
	uid, ok := f.requireAuth(w, r)
	if !ok {
		return
	}
	if r.PathValue("id") != uid {
		writeText(w, http.StatusForbidden, "")
		return
	}
	q := r.URL.Query()
	maxItems := 100
	if v := q.Get("maxItems"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeText(w, http.StatusBadRequest, "maxItems must be an integer")
			return
		}
		maxItems = n
	}
	var from time.Time
	if v := q.Get("fromTime"); v != "" {
		t, err := resonite.ParseTime(v)
		if err != nil {
			writeText(w, http.StatusBadRequest, "fromTime is not a time")
			return
		}
		from = t.Time
	}
	user := q.Get("user")
	unread, _ := strconv.ParseBool(q.Get("unread"))
	box := f.Messages(uid)
	out := []resonite.Message{}
	for i := len(box) - 1; i >= 0; i-- {
		m := box[i]
		if m.OtherID == "" {
			m.OtherID = m.RecipientID
			if m.RecipientID == uid {
				m.OtherID = m.SenderID
			}
		}
		updated := m.LastUpdateTime.Time
		if updated.IsZero() {
			updated = m.SendTime.Time
		}
		switch {
		case !from.IsZero() && updated.Before(from):
		case user != "" && m.OtherID != user:
		case unread && (m.ReadTime != nil || m.SenderID == uid):
		default:
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b resonite.Message) int { return b.SendTime.Compare(a.SendTime.Time) })
	if maxItems >= 0 && len(out) > maxItems {
		out = out[:maxItems]
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *Fake) onlineStats(w http.ResponseWriter, _ *http.Request, _ []byte) {
	f.mu.Lock()
	var s resonite.OnlineStats
	if f.rest.stats != nil {
		s = *f.rest.stats
	} else {
		s = resonite.OnlineStats{
			RegisteredUsers: 1200, PresentUsers: 900, AwayUsers: 300, InstanceCount: 450,
			UsersInVR: 500, UsersInScreen: 400, UsersOnDesktop: 850, UsersOnMobile: 50,
			UsersBySessionAccessLevel: map[string]int{"Anyone": 300, "Contacts": 200, "Private": 100},
			UsersByClientType:         map[string]int{"Headless": 40, "ChatClient": 60, "GraphicalClient": 1100},
			CaptureTimestamp:          resonite.NewTime(f.now()),
		}
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, s)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
