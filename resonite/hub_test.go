package resonite_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/resonite-bridge/resonite-bridge/resonite"
	"github.com/resonite-bridge/resonite-bridge/resonite/resonitetest"
)

// waitLimit is the safety net of every wait: generous, because a loaded 2-core machine under
// -race is slow, and never reached when the behaviour is right.
const waitLimit = 30 * time.Second

type hubEnv struct {
	*env
	h    *resonite.Hub
	logs *syncBuffer
}

// startHub starts a hub against the fake with the REST client as its Auth (it logs in on the
// first connect); the hub is closed when the test ends, and TestMain checks that no goroutine
// outlives it.
func startHub(t *testing.T, e *env, mod ...func(*resonite.HubOptions)) *hubEnv {
	t.Helper()
	logs := &syncBuffer{}
	o := resonite.HubOptions{
		URL:    e.f.HubURL,
		Auth:   e.c,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mod {
		m(&o)
	}
	return &hubEnv{env: e, h: runHub(t, o), logs: logs}
}

// runHub starts a hub with o after the prepare hooks (which may use the test-only setters).
func runHub(t *testing.T, o resonite.HubOptions, prepare ...func(*resonite.Hub)) *resonite.Hub {
	t.Helper()
	h, err := resonite.NewHub(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prepare {
		p(h)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("closing the hub: %v", err)
		}
		if st := h.State(); st.State != resonite.ConnClosed {
			t.Errorf("state after Close = %+v", st)
		}
		for range h.Events() { // Close closes it; this returns at once when it did
		}
	})
	return h
}

func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// next returns the next event of type T that satisfies match (nil: any), skipping the others.
func next[T resonite.Event](t *testing.T, h *resonite.Hub, match func(T) bool) T {
	t.Helper()
	timeout := time.NewTimer(waitLimit)
	defer timeout.Stop()
	for {
		select {
		case ev, ok := <-h.Events():
			if !ok {
				var zero T
				t.Fatalf("Events closed while waiting for %T", zero)
			}
			if v, ok := ev.(T); ok && (match == nil || match(v)) {
				return v
			}
		case <-timeout.C:
			var zero T
			t.Fatalf("no %T event within %s", zero, waitLimit)
		}
	}
}

func connected(t *testing.T, he *hubEnv) resonite.Connected {
	t.Helper()
	return next[resonite.Connected](t, he.h, nil)
}

// hubCalls waits for at least n hub calls of method and returns the wire arguments of all.
func hubCalls(t *testing.T, f *resonitetest.Fake, method string, n int) [][]json.RawMessage {
	t.Helper()
	calls, err := f.WaitHubCalls(waitCtx(t), method, n)
	if err != nil {
		t.Fatal(err)
	}
	return callArgs(t, calls)
}

func callArgs(t *testing.T, calls []resonitetest.Call) [][]json.RawMessage {
	t.Helper()
	out := make([][]json.RawMessage, len(calls))
	for i, c := range calls {
		if err := json.Unmarshal(c.Body, &out[i]); err != nil {
			t.Fatalf("%s call %d: body %s: %v", c.Method, i, c.Body, err)
		}
	}
	return out
}

// jsonEqual compares JSON documents by value (key order and spacing do not matter).
func jsonEqual(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %s is not JSON: %v", what, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("%s: the expectation %s is not JSON: %v", what, want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s =\n%s\nwant\n%s", what, got, want)
	}
}

func asMap(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s is not a JSON object: %v", raw, err)
	}
	return m
}

// stillFirstConnection fails unless the hub is connected on the connection it started with:
// whatever the test did was not paid for with a reconnect.
func stillFirstConnection(t *testing.T, he *hubEnv) {
	t.Helper()
	if st := he.h.State(); st.State != resonite.ConnConnected || st.Reconnects != 0 {
		t.Errorf("State = %+v, want connected without a reconnect", st)
	}
}

// hubMethods is the sequence of hub calls the fake received, from index from on.
func hubMethods(f *resonitetest.Fake, from int) []string {
	var out []string
	for i, c := range f.Calls() {
		if i >= from && c.Kind == "hub" {
			out = append(out, c.Method)
		}
	}
	return out
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// contactWithKeys is a contact whose status (as InitializeContacts streams it) names two
// session broadcast keys.
func contactWithKeys(id string, keys ...string) resonite.Contact {
	st := resonite.UserStatus{UserID: id, UserSessionID: "dev-" + id, OnlineStatus: resonite.StatusOnline, CurrentSessionIndex: 0,
		LastStatusChange: resonite.NewTime(time.Date(2025, 5, 24, 21, 0, 0, 0, time.UTC))}
	for _, k := range keys {
		st.Sessions = append(st.Sessions, resonite.UserSessionMetadata{SessionHash: "H", AccessLevel: resonite.AccessContacts, BroadcastKey: ptr(k)})
	}
	return resonite.Contact{ID: id, ContactUsername: id[2:], ContactStatus: resonite.ContactAccepted, IsAccepted: true, UserStatus: &st}
}

func TestHubStartupSequence(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.f.AddContact(botID, contactWithKeys("U-Keyed", "BK-2", "BK-1"))
	he := startHub(t, e)
	c := connected(t, he)

	if c.Reconnect {
		t.Error("the first Connected says Reconnect")
	}
	var ids []string
	for _, ct := range c.Contacts {
		ids = append(ids, ct.ID)
	}
	if !slices.Equal(ids, []string{"U-Friend", "U-Fox", "U-Keyed"}) {
		t.Errorf("Connected.Contacts = %v", ids)
	}
	// Everything happened before Connected was delivered, in the fact sheet's order.
	want := []string{"InitializeContacts", "RequestStatus", "BroadcastStatus", "ListenOnKey", "ListenOnKey"}
	if got := hubMethods(e.f, 0); !slices.Equal(got, want) {
		t.Fatalf("hub calls before Connected = %v, want %v", got, want)
	}
	jsonEqual(t, "InitializeContacts args", mustJSON(t, hubCalls(t, e.f, "InitializeContacts", 1)[0]), `[]`)
	rs := hubCalls(t, e.f, "RequestStatus", 1)[0]
	jsonEqual(t, "RequestStatus args", mustJSON(t, rs), `[null,false]`)
	keys := hubCalls(t, e.f, "ListenOnKey", 2)
	jsonEqual(t, "ListenOnKey args", mustJSON(t, keys), `[["BK-1"],["BK-2"]]`)

	bs := hubCalls(t, e.f, "BroadcastStatus", 1)[0]
	if len(bs) != 2 {
		t.Fatalf("BroadcastStatus has %d arguments", len(bs))
	}
	jsonEqual(t, "BroadcastStatus target", bs[1], `{"group":1,"targetIds":null}`)
	st := asMap(t, bs[0])
	if st["userId"] != botID || st["sessionType"] != "Bot" || st["onlineStatus"] != "Online" || st["outputDevice"] != "Unknown" ||
		st["currentSessionIndex"] != float64(-1) || !uuidRE.MatchString(fmt.Sprint(st["userSessionId"])) {
		t.Errorf("the bot's status = %s", bs[0])
	}
	if s, ok := e.f.Status(botID); !ok || s.SessionType != resonite.SessionTypeBot || s.OnlineStatus != resonite.StatusOnline {
		t.Errorf("the fake holds the bot's status %+v, %v", s, ok)
	}
	if st := he.h.State(); st.State != resonite.ConnConnected || st.Reconnects != 0 || st.LastError != "" {
		t.Errorf("State = %+v", st)
	}
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHubStartupFallsBackToInitializeStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.f.AddContact(botID, contactWithKeys("U-Keyed", "BK-1"))
	e.f.FailHubMethod("InitializeContacts", true)
	he := startHub(t, e)
	c := connected(t, he)
	if len(c.Contacts) != 3 || c.Contacts[2].UserStatus == nil {
		t.Errorf("Connected.Contacts = %+v", c.Contacts)
	}
	want := []string{"InitializeContacts", "InitializeStatus", "RequestStatus", "BroadcastStatus", "ListenOnKey"}
	if got := hubMethods(e.f, 0); !slices.Equal(got, want) {
		t.Errorf("hub calls before Connected = %v, want %v", got, want)
	}
	if !strings.Contains(he.logs.String(), "InitializeContacts failed (injected)") {
		t.Errorf("the failed step is not logged:\n%s", he.logs)
	}
	stillFirstConnection(t, he)
}

func TestHubRebroadcastsStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	he := startHub(t, e, func(o *resonite.HubOptions) { o.RebroadcastEvery = 50 * time.Millisecond })
	connected(t, he)
	calls := hubCalls(t, e.f, "BroadcastStatus", 4)
	first := asMap(t, calls[0][0])
	for i, c := range calls {
		st := asMap(t, c[0])
		if st["sessionType"] != "Bot" || st["onlineStatus"] != "Online" || st["userSessionId"] != first["userSessionId"] ||
			st["lastStatusChange"] != first["lastStatusChange"] {
			t.Errorf("broadcast %d = %s (first %s)", i, c[0], calls[0][0])
		}
		jsonEqual(t, "target", c[1], `{"group":1,"targetIds":null}`)
	}
	if _, err := resonite.NewHub(resonite.HubOptions{URL: e.f.HubURL, Auth: e.c, RebroadcastEvery: 3 * time.Minute}); err == nil {
		t.Error("a re-broadcast slower than the status expiry was accepted")
	}
}

func TestHubSendMessageConfirmed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	he := startHub(t, e)
	connected(t, he)

	sent := time.Date(2025, 5, 24, 22, 4, 10, 485_000_000, time.UTC)
	m := resonite.Message{ID: "MSG-fixed-1", RecipientID: "U-Friend", Content: "hello <b>there</b>", SendTime: resonite.NewTime(sent)}
	if err := he.h.SendMessage(waitCtx(t), m); err != nil {
		t.Fatal(err)
	}
	// The echo the confirmation waited for is also delivered, marked as awaited.
	echo := next(t, he.h, func(ev resonite.MessageSent) bool { return ev.Message.ID == "MSG-fixed-1" })
	if echo.Message.Content != m.Content || echo.Message.SenderID != botID || !echo.Awaited {
		t.Errorf("echo = %+v", echo)
	}
	args := hubCalls(t, e.f, "SendMessage", 1)[0]
	if len(args) != 1 {
		t.Fatalf("SendMessage has %d arguments", len(args))
	}
	wire := asMap(t, args[0])
	sid := wire["senderUserSessionId"]
	bot := asMap(t, hubCalls(t, e.f, "BroadcastStatus", 1)[0][0])
	if sid != bot["userSessionId"] {
		t.Errorf("senderUserSessionId %v is not the bot status' userSessionId %v", sid, bot["userSessionId"])
	}
	jsonEqual(t, "SendMessage argument", args[0], `{"id":"MSG-fixed-1","ownerId":"U-Bridge","senderId":"U-Bridge","recipientId":"U-Friend",
		"senderUserSessionId":`+string(mustJSON(t, sid))+`,"messageType":"Text","content":"hello <b>there</b>",
		"sendTime":"2025-05-24T22:04:10.4850000Z","lastUpdateTime":"2025-05-24T22:04:10.4850000Z","readTime":null,"isMigrated":false}`)

	// With nothing filled in, the hub makes a fresh MSG-<uuid> id and stamps the send time.
	before := time.Now()
	if err := he.h.SendMessage(waitCtx(t), resonite.Message{RecipientID: "U-Friend", Content: "second"}); err != nil {
		t.Fatal(err)
	}
	wire = asMap(t, hubCalls(t, e.f, "SendMessage", 2)[1][0])
	id := fmt.Sprint(wire["id"])
	if !strings.HasPrefix(id, "MSG-") || !uuidRE.MatchString(strings.TrimPrefix(id, "MSG-")) || wire["messageType"] != "Text" {
		t.Errorf("generated message = %v", wire)
	}
	if st, err := resonite.ParseTime(fmt.Sprint(wire["sendTime"])); err != nil || st.Before(before.Add(-time.Second)) {
		t.Errorf("sendTime %v: %v", wire["sendTime"], err)
	}
	if got := e.f.Messages("U-Friend"); len(got) != 2 || got[0].Content != m.Content {
		t.Errorf("the recipient's mailbox = %+v", got)
	}
}

func TestHubSendMessageNotConfirmedThenRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	he := startHub(t, e, func(o *resonite.HubOptions) { o.ConfirmTimeout = 200 * time.Millisecond })
	connected(t, he)

	e.f.SkipEchoTo("U-Friend", true)
	m := resonite.Message{ID: "MSG-retry-1", RecipientID: "U-Friend", Content: "are you there?"}
	err := he.h.SendMessage(waitCtx(t), m)
	if !errors.Is(err, resonite.ErrNotConfirmed) {
		t.Fatalf("SendMessage without echo = %v, want ErrNotConfirmed", err)
	}
	if !strings.Contains(err.Error(), "MSG-retry-1") {
		t.Errorf("the error does not name the message: %v", err)
	}
	e.f.SkipEchoTo("U-Friend", false)
	if err := he.h.SendMessage(waitCtx(t), m); err != nil {
		t.Fatalf("retry with the same id: %v", err)
	}
	calls := hubCalls(t, e.f, "SendMessage", 2)
	if asMap(t, calls[0][0])["id"] != "MSG-retry-1" || asMap(t, calls[1][0])["id"] != "MSG-retry-1" {
		t.Errorf("the retry did not reuse the id: %s / %s", calls[0][0], calls[1][0])
	}
	stillFirstConnection(t, he)
}

func TestHubSendMessageUnansweredCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	he := startHub(t, e, func(o *resonite.HubOptions) { o.ConfirmTimeout = 200 * time.Millisecond })
	connected(t, he)

	// The hub takes the call and never answers: ConfirmTimeout bounds that too.
	e.f.StallHubMethod("SendMessage", true)
	err := he.h.SendMessage(waitCtx(t), resonite.Message{ID: "MSG-stalled", RecipientID: "U-Friend", Content: "hello?"})
	if !errors.Is(err, resonite.ErrNotConfirmed) {
		t.Fatalf("SendMessage with an unanswered call = %v, want ErrNotConfirmed", err)
	}
	// The caller giving up mid-call is not-confirmed as well: the message may be out.
	ctx, cancel := context.WithCancel(t.Context())
	wctx := waitCtx(t)
	go func() {
		_, _ = e.f.WaitHubCalls(wctx, "SendMessage", 2)
		cancel()
	}()
	err = he.h.SendMessage(ctx, resonite.Message{ID: "MSG-stalled", RecipientID: "U-Friend", Content: "hello?"})
	if !errors.Is(err, resonite.ErrNotConfirmed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("SendMessage cancelled mid-call = %v", err)
	}
	e.f.StallHubMethod("SendMessage", false)
	if err := he.h.SendMessage(waitCtx(t), resonite.Message{ID: "MSG-stalled", RecipientID: "U-Friend", Content: "hello?"}); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

func TestHubSendMessageHubError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	he := startHub(t, e)
	connected(t, he)

	e.f.FailSendMessageTo("U-Friend", true)
	err := he.h.SendMessage(waitCtx(t), resonite.Message{ID: "MSG-doomed", RecipientID: "U-Friend", Content: "x"})
	if err == nil || errors.Is(err, resonite.ErrNotConfirmed) || errors.Is(err, resonite.ErrHubNotConnected) {
		t.Fatalf("SendMessage with a hub error = %v", err)
	}
	if !strings.Contains(err.Error(), "MSG-doomed") {
		t.Errorf("the error does not name the message: %v", err)
	}
	var he2 *resonite.HubError
	if !errors.As(err, &he2) || he2.Method != "SendMessage" ||
		he2.Message != "An unexpected error occurred invoking 'SendMessage' on the server. HubException: sending to U-Friend failed (injected)" {
		t.Errorf("the error is not the hub's answer: %#v", err)
	}
	// A hub error is an answer, not a broken connection: the next message goes through at once.
	e.f.FailSendMessageTo("U-Friend", false)
	if err := he.h.SendMessage(waitCtx(t), resonite.Message{ID: "MSG-fine", RecipientID: "U-Friend", Content: "y"}); err != nil {
		t.Fatal(err)
	}
	stillFirstConnection(t, he)
	if n := len(e.f.HubConnects()); n != 2 {
		t.Errorf("%d hub connects, want one negotiate and one WebSocket", n)
	}
}

func TestHubCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	he := startHub(t, e)
	connected(t, he)
	h := he.h
	readAt := time.Date(2025, 5, 24, 22, 5, 0, 0, time.UTC)
	session := resonite.SessionInfo{SessionID: "S-bot-world", Name: "Bot world", HostUserID: ptr(botID), AccessLevel: resonite.AccessContacts,
		MaxUsers: 8, IsValid: true, SessionBeginTime: resonite.NewTime(readAt)}

	tests := []struct {
		method string
		call   func(ctx context.Context) error
		want   string // the JSON array of wire arguments
	}{
		{"MarkMessagesRead", func(ctx context.Context) error {
			return h.MarkMessagesRead(ctx, resonite.MarkReadBatch{SenderID: ptr("U-Friend"), IDs: []string{"MSG-1", "MSG-4"}, ReadTime: resonite.NewTime(readAt)})
		}, `[{"senderId":"U-Friend","ids":["MSG-1","MSG-4"],"readTime":"2025-05-24T22:05:00.0000000Z"}]`},
		{"BroadcastStatus", func(ctx context.Context) error {
			return h.BroadcastStatus(ctx, resonite.UserStatus{UserID: botID, UserSessionID: "s-1", SessionType: resonite.SessionTypeBot,
				OutputDevice: resonite.DeviceUnknown, OnlineStatus: resonite.StatusBusy, LastStatusChange: resonite.NewTime(readAt),
				Sessions: []resonite.UserSessionMetadata{}, CurrentSessionIndex: -1}, resonite.BroadcastTarget{Group: 1, TargetIDs: []string{"U-Friend"}})
		}, `[{"userId":"U-Bridge","userSessionId":"s-1","sessionType":"Bot","outputDevice":"Unknown","isMobile":false,"onlineStatus":"Busy",
			"isPresent":false,"lastPresenceTimestamp":null,"lastStatusChange":"2025-05-24T22:05:00.0000000Z","hashSalt":"","appVersion":"",
			"compatibilityHash":"","publicRSAKey":null,"sessions":[],"currentSessionIndex":-1},{"group":1,"targetIds":["U-Friend"]}]`},
		{"ListenOnContact", func(ctx context.Context) error { return h.ListenOnContact(ctx, "U-Friend") }, `["U-Friend"]`},
		{"ListenOnKey", func(ctx context.Context) error { return h.ListenOnKey(ctx, "BK-direct") }, `["BK-direct"]`},
		{"RequestStatus", func(ctx context.Context) error { return h.RequestStatus(ctx, nil, false) }, `[null,false]`},
		{"RequestStatus", func(ctx context.Context) error { return h.RequestStatus(ctx, ptr("U-Friend"), true) }, `["U-Friend",true]`},
		{"BroadcastSession", func(ctx context.Context) error { return h.BroadcastSession(ctx, session, resonite.AllContacts()) },
			`[` + string(mustJSON(t, session)) + `,{"group":1,"targetIds":null}]`},
		{"BroadcastSessionEnded", func(ctx context.Context) error {
			return h.BroadcastSessionEnded(ctx, "S-bot-world", readAt.Add(90*time.Minute+123*time.Microsecond), resonite.AllContacts())
		}, `["S-bot-world","2025-05-24T23:35:00.0001230Z",{"group":1,"targetIds":null}]`},
	}
	for _, tc := range tests { // one connection: in sequence, each waits for its own call
		before := len(e.f.CallsTo(tc.method, ""))
		if err := tc.call(waitCtx(t)); err != nil {
			t.Errorf("%s: %v", tc.method, err)
			continue
		}
		calls := hubCalls(t, e.f, tc.method, before+1)
		jsonEqual(t, tc.method+" wire arguments", mustJSON(t, calls[before]), tc.want)
	}
	// The session argument is the model itself: check a few keys by name, not by the encoder.
	bs := asMap(t, hubCalls(t, e.f, "BroadcastSession", 1)[0][0])
	if bs["sessionId"] != "S-bot-world" || bs["accessLevel"] != "Contacts" || bs["hostUserId"] != botID || bs["sessionBeginTime"] != "2025-05-24T22:05:00.0000000Z" {
		t.Errorf("BroadcastSession session = %v", bs)
	}
	// MarkMessagesRead fills in what a caller may leave out.
	if err := h.MarkMessagesRead(waitCtx(t), resonite.MarkReadBatch{}); err != nil {
		t.Fatal(err)
	}
	mr := asMap(t, hubCalls(t, e.f, "MarkMessagesRead", 2)[1][0])
	if mr["senderId"] != nil || !reflect.DeepEqual(mr["ids"], []any{}) || mr["readTime"] == "0001-01-01T00:00:00" {
		t.Errorf("MarkMessagesRead defaults = %v", mr)
	}
}

func TestHubUpdateContactAndInitialize(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.f.AddContact(botID, contactWithKeys("U-Keyed", "BK-1"))
	he := startHub(t, e)
	connected(t, he)

	ok, err := he.h.UpdateContact(waitCtx(t), resonite.Contact{ID: "U-Other", ContactUsername: "Other", ContactStatus: resonite.ContactAccepted})
	if err != nil || !ok {
		t.Fatalf("UpdateContact = %v, %v", ok, err)
	}
	args := hubCalls(t, e.f, "UpdateContact", 1)[0]
	c := asMap(t, args[0])
	if c["id"] != "U-Other" || c["ownerId"] != botID || c["contactStatus"] != "Accepted" || c["contactUsername"] != "Other" {
		t.Errorf("UpdateContact argument = %s", args[0])
	}
	ev := next(t, he.h, func(ev resonite.ContactUpdated) bool { return ev.Contact.ID == "U-Other" })
	if ev.Contact.ContactStatus != resonite.ContactAccepted || ev.Contact.OwnerID != botID {
		t.Errorf("ContactUpdated = %+v", ev.Contact)
	}

	e.f.FailHubMethod("UpdateContact", true)
	var hubErr *resonite.HubError
	if ok, err := he.h.UpdateContact(waitCtx(t), resonite.Contact{ID: "U-Fox", ContactStatus: resonite.ContactIgnored}); !errors.As(err, &hubErr) || ok {
		t.Errorf("UpdateContact with a hub error = %v, %v", ok, err)
	}

	res, err := he.h.InitializeStatus(waitCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	streamed, err := he.h.InitializeContacts(waitCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, list := range map[string][]resonite.Contact{"InitializeStatus": res.Contacts, "InitializeContacts": streamed} {
		var ids []string
		for _, c := range list {
			ids = append(ids, c.ID)
		}
		if !slices.Equal(ids, []string{"U-Friend", "U-Fox", "U-Keyed", "U-Other"}) {
			t.Errorf("%s contacts = %v", name, ids)
		}
		if k := list[2]; k.UserStatus == nil || len(k.UserStatus.Sessions) != 1 || *k.UserStatus.Sessions[0].BroadcastKey != "BK-1" {
			t.Errorf("%s lost the contact's status: %+v", name, k)
		}
	}
	for _, m := range []string{"InitializeStatus", "InitializeContacts"} {
		calls := hubCalls(t, e.f, m, 1)
		jsonEqual(t, m+" arguments", mustJSON(t, calls[len(calls)-1]), `[]`)
	}
}

// push is one hub event as the cloud sends it: the target and its JSON arguments.
type push struct {
	target string
	args   []string
}

func (p push) send(f *resonitetest.Fake) {
	args := make([]any, len(p.args))
	for i, a := range p.args {
		args[i] = json.RawMessage(a)
	}
	f.Push(botID, p.target, args...)
}

func TestHubEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	he := startHub(t, e)
	connected(t, he)

	tests := []struct {
		push  push
		check func(t *testing.T, ev resonite.Event) bool // reports whether ev is the expected event
	}{
		{push{"ReceiveMessage", []string{sampleMessage}}, func(t *testing.T, ev resonite.Event) bool {
			m, ok := ev.(resonite.MessageReceived)
			return ok && m.Message.ID == "MSG-3f2b8a41-7c1e-4e0b-9d1a-5b6c7d8e9f00" && m.Message.Content == "hello" &&
				m.Message.SendTime.Equal(time.Date(2025, 5, 24, 22, 4, 10, 485_000_000, time.UTC))
		}},
		{push{"MessageSent", []string{strings.Replace(sampleMessage, "MSG-3f2b", "MSG-echo", 1)}}, func(t *testing.T, ev resonite.Event) bool {
			m, ok := ev.(resonite.MessageSent)
			return ok && strings.HasPrefix(m.Message.ID, "MSG-echo") && m.Message.RecipientID == "U-Friend" && !m.Awaited
		}},
		{push{"MessagesRead", []string{sampleReadMessageBatch}}, func(t *testing.T, ev resonite.Event) bool {
			m, ok := ev.(resonite.MessagesRead)
			return ok && m.Batch.RecipientID == "U-Friend" && slices.Equal(m.Batch.IDs, []string{"MSG-a", "MSG-b"}) &&
				m.Batch.ReadTime.Equal(time.Date(2025, 5, 24, 22, 5, 0, 123456700, time.UTC))
		}},
		{push{"ReceiveStatusUpdate", []string{sampleUserStatus}}, func(t *testing.T, ev resonite.Event) bool {
			s, ok := ev.(resonite.StatusUpdated)
			return ok && s.Status.UserID == "U-Friend" && s.Status.OnlineStatus == resonite.StatusOnline && s.Status.OutputDevice == resonite.DeviceVR &&
				s.Status.PublicRSAKey != nil && s.Status.PublicRSAKey.Exponent == "AQAB" && len(s.Status.Sessions) == 2
		}},
		{push{"SendStatusToUser", []string{`"U-Friend"`}}, func(t *testing.T, ev resonite.Event) bool {
			s, ok := ev.(resonite.StatusRequested)
			return ok && s.UserID == "U-Friend"
		}},
		{push{"ContactAddedOrUpdated", []string{strings.Replace(sampleContact, `"Accepted"`, `"Requested"`, 1)}}, func(t *testing.T, ev resonite.Event) bool {
			c, ok := ev.(resonite.ContactUpdated)
			return ok && c.Contact.ID == "U-Friend" && c.Contact.ContactStatus == resonite.ContactRequested && c.Contact.Profile != nil
		}},
		{push{"ReceiveSessionUpdate", []string{sampleSession}}, func(t *testing.T, ev resonite.Event) bool {
			s, ok := ev.(resonite.SessionUpdated)
			return ok && s.Session.SessionID == "S-U-Host:HiddenStarTheater" && len(s.Session.SessionUsers) == 2 &&
				*s.Session.SessionUsers[0].UserID == "U-Someone" && s.Session.SessionUsers[0].OutputDevice == resonite.DeviceScreen
		}},
		{push{"RemoveSession", []string{`"S-U-Host:HiddenStarTheater"`, `"2025-05-24T23:00:00.1234567Z"`}}, func(t *testing.T, ev resonite.Event) bool {
			s, ok := ev.(resonite.SessionRemoved)
			return ok && s.SessionID == "S-U-Host:HiddenStarTheater" && s.Timestamp.Equal(time.Date(2025, 5, 24, 23, 0, 0, 123456700, time.UTC))
		}},
	}
	for _, tc := range tests {
		tc.push.send(e.f)
		timeout := time.NewTimer(waitLimit)
	wait:
		for {
			select {
			case ev := <-he.h.Events():
				if tc.check(t, ev) {
					break wait
				}
				t.Logf("%s: skipping %T", tc.push.target, ev)
			case <-timeout.C:
				t.Fatalf("%s: no matching event", tc.push.target)
			}
		}
		timeout.Stop()
	}
	// The status named a broadcast key: the hub subscribed to it. SendStatusToUser was answered.
	jsonEqual(t, "ListenOnKey", mustJSON(t, hubCalls(t, e.f, "ListenOnKey", 1)), `[["BK-theater"]]`)
	answer := hubCalls(t, e.f, "BroadcastStatus", 2)[1]
	if st := asMap(t, answer[0]); st["userId"] != botID || st["sessionType"] != "Bot" {
		t.Errorf("answer to SendStatusToUser = %s", answer[0])
	}
	stillFirstConnection(t, he)
}

func TestHubIgnoresUnknownAndMalformedPushes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	he := startHub(t, e)
	connected(t, he)

	push{"SomethingNewFromTheCloud", []string{`{"x":1}`, `2`}}.send(e.f)
	push{"ReceiveMessage", []string{`{"id": 42}`}}.send(e.f)           // undecodable
	push{"RemoveSession", []string{`"S-only-one-argument"`}}.send(e.f) // too few
	push{"KeyListenerAdded", []string{`"BK-1"`, `"conn-1"`}}.send(e.f) // known, not forwarded
	// The connection survived: the next push arrives on it, and, events being in wire order,
	// its arrival proves that the junk before it was handled.
	m := strings.Replace(sampleMessage, "MSG-3f2b", "MSG-after", 1)
	push{"ReceiveMessage", []string{m}}.send(e.f)
	ev := <-he.h.Events()
	if got, ok := ev.(resonite.MessageReceived); !ok || !strings.HasPrefix(got.Message.ID, "MSG-after") {
		t.Errorf("first event after the junk = %#v (junk leaked through)", ev)
	}
	l := he.logs.String()
	for _, want := range []string{"ignoring unknown hub target", "SomethingNewFromTheCloud", "ignoring undecodable push",
		"ignoring push with too few arguments", "push not forwarded"} {
		if !strings.Contains(l, want) {
			t.Errorf("%q not logged:\n%s", want, l)
		}
	}
	for _, line := range strings.Split(l, "\n") {
		if strings.Contains(line, "SomethingNewFromTheCloud") && !strings.Contains(line, "level=DEBUG") {
			t.Errorf("an unknown target is logged above debug: %s", line)
		}
	}
	stillFirstConnection(t, he)
}

func TestHubDropsStaleStatuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	he := startHub(t, e)
	connected(t, he)
	newer := strings.Replace(sampleUserStatus, `"lastStatusChange": "2025-05-24T21:56:38.0179458Z"`, `"lastStatusChange": "2025-05-24T22:30:00Z"`, 1)
	push{"ReceiveStatusUpdate", []string{newer}}.send(e.f)
	next(t, he.h, func(ev resonite.StatusUpdated) bool { return ev.Status.UserID == "U-Friend" })
	push{"ReceiveStatusUpdate", []string{sampleUserStatus}}.send(e.f) // same device, older
	other := strings.Replace(sampleUserStatus, `"userSessionId": "0190a1b2`, `"userSessionId": "other-device`, 1)
	push{"ReceiveStatusUpdate", []string{other}}.send(e.f) // another device of the same user: delivered
	// In wire order, the next event is the other device's: the stale one was handled before it.
	ev := next[resonite.StatusUpdated](t, he.h, nil)
	if !strings.HasPrefix(ev.Status.UserSessionID, "other-device") {
		t.Errorf("after the stale status came %+v", ev.Status)
	}
	if !strings.Contains(he.logs.String(), "ignoring a status older than one already seen") {
		t.Errorf("the stale status is not logged:\n%s", he.logs)
	}
}

func TestHubCallsWaitForAConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.f.RefuseConnections(time.Hour)
	he := startHub(t, e)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := he.h.ListenOnKey(ctx, "BK-1"); !errors.Is(err, resonite.ErrHubNotConnected) {
		t.Errorf("a call while disconnected = %v, want ErrHubNotConnected", err)
	}
	if err := he.h.SendMessage(ctx, resonite.Message{RecipientID: "U-Friend", Content: "x"}); !errors.Is(err, resonite.ErrHubNotConnected) {
		t.Errorf("SendMessage while disconnected = %v, want ErrHubNotConnected", err)
	}
	if st := he.h.State(); st.State == resonite.ConnConnected {
		t.Errorf("State = %+v", st)
	}
	if err := he.h.WaitConnected(ctx); !errors.Is(err, resonite.ErrHubNotConnected) {
		t.Errorf("WaitConnected = %v", err)
	}
}

func TestHubReconnectAfterDrop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.f.AddContact(botID, contactWithKeys("U-Keyed", "BK-contact"))
	he := startHub(t, e)
	connected(t, he)
	// A key that only a pushed status named: it must be listened on again after the reconnect.
	pushed := strings.Replace(sampleUserStatus, "BK-theater", "BK-pushed", 1)
	push{"ReceiveStatusUpdate", []string{pushed}}.send(e.f)
	hubCalls(t, e.f, "ListenOnKey", 2)
	before := he.h.State()
	if before.State != resonite.ConnConnected {
		t.Fatalf("State = %+v", before)
	}
	mark := len(e.f.Calls())

	// A push on the old connection, then the drop: the push, then Disconnected, then the
	// new connection's Connected, in that order.
	e.f.PushMessage(botID, resonite.Message{ID: "MSG-before-drop", SenderID: "U-Friend", RecipientID: botID, MessageType: resonite.MessageText,
		Content: "still there?", SendTime: resonite.NewTime(time.Now())})
	next(t, he.h, func(m resonite.MessageReceived) bool { return m.Message.ID == "MSG-before-drop" })
	e.f.DropConnections()
	var c resonite.Connected
	for gotDisconnected := false; ; {
		ev := next[resonite.Event](t, he.h, nil)
		if d, ok := ev.(resonite.Disconnected); ok {
			if d.Err == nil {
				t.Error("Disconnected carries no reason")
			}
			gotDisconnected = true
			continue
		}
		if cc, ok := ev.(resonite.Connected); ok {
			if !gotDisconnected {
				t.Fatal("Connected after the drop came before Disconnected")
			}
			c = cc
			break
		}
	}
	if !c.Reconnect {
		t.Error("the Connected after the drop is not a reconnect")
	}
	if len(c.Contacts) != 3 {
		t.Errorf("Connected after the reconnect has %d contacts", len(c.Contacts))
	}
	want := []string{"InitializeContacts", "RequestStatus", "BroadcastStatus", "ListenOnKey", "ListenOnKey"}
	if got := hubMethods(e.f, mark); !slices.Equal(got, want) {
		t.Errorf("hub calls after the drop = %v, want %v", got, want)
	}
	keys := e.f.CallsTo("ListenOnKey", "")
	jsonEqual(t, "keys listened on again", mustJSON(t, callArgs(t, keys[len(keys)-2:])), `[["BK-contact"],["BK-pushed"]]`)

	after := he.h.State()
	if after.State != resonite.ConnConnected || after.Reconnects != 1 || !after.Since.After(before.Since) || after.LastError == "" {
		t.Errorf("State after the reconnect = %+v (before %+v)", after, before)
	}
	// Events flow on the new connection.
	e.f.PushMessage(botID, resonite.Message{ID: "MSG-after-drop", SenderID: "U-Friend", RecipientID: botID, MessageType: resonite.MessageText,
		Content: "back?", SendTime: resonite.NewTime(time.Now())})
	next(t, he.h, func(m resonite.MessageReceived) bool { return m.Message.ID == "MSG-after-drop" })
	if n := e.f.Connections(botID); n != 1 {
		t.Errorf("the bot has %d hub connections", n)
	}
}

func TestHubRecoversFromRefusedConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.f.RefuseConnections(time.Second)
	he := startHub(t, e)
	c := connected(t, he)
	if c.Reconnect {
		t.Error("the first successful connect says Reconnect")
	}
	conns := e.f.HubConnects()
	if len(conns) < 3 || conns[0].Status != http.StatusServiceUnavailable || conns[len(conns)-1].Status != 0 {
		t.Fatalf("hub connects = %+v", conns)
	}
	t.Logf("first retry %s after the first refusal", conns[1].At.Sub(conns[0].At))
	// The wait before the first retry is what the log announced; it must be under a second.
	m := regexp.MustCompile(`disconnected; reconnecting.* in=(\S+)`).FindStringSubmatch(he.logs.String())
	if m == nil {
		t.Fatalf("no reconnect line in the log:\n%s", he.logs)
	}
	if d, err := time.ParseDuration(m[1]); err != nil || d > time.Second {
		t.Errorf("first retry announced after %s (%v)", m[1], err)
	}
	if !strings.Contains(he.logs.String(), "503") {
		t.Errorf("the refusal is not in the log:\n%s", he.logs)
	}
}

func TestHubBackoffPolicy(t *testing.T) {
	t.Parallel()
	for range 200 {
		waits, ok := resonite.HubBackoffIntervals(40)
		if !ok {
			t.Fatal("the reconnect back-off gave up") // the library default stops after 15 minutes
		}
		if waits[0] > time.Second || waits[0] <= 0 {
			t.Fatalf("first retry after %s, want within 1 s", waits[0])
		}
		if last := waits[len(waits)-1]; last > 90*time.Second || last < 30*time.Second {
			t.Fatalf("late retries every %s, want a cap around a minute", last)
		}
	}
}

func TestHubReloginAfterTokenExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	he := startHub(t, e)
	connected(t, he)
	old, err := e.c.HubAuthorization(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	mark := len(e.f.HubConnects())

	e.f.ExpireTokens()
	e.f.DropConnections()
	next(t, he.h, func(c resonite.Connected) bool { return c.Reconnect })

	cur, err := e.c.HubAuthorization(t.Context())
	if err != nil || cur == old {
		t.Fatalf("the client did not log in again: %v", err)
	}
	conns := e.f.HubConnects()[mark:]
	if conns[0].Authorization != old || conns[0].Status != http.StatusUnauthorized {
		t.Errorf("first connect after the expiry = %+v, want the old header refused", conns[0])
	}
	last := conns[len(conns)-1]
	if last.Authorization != cur || last.Status != 0 || last.UserID != botID {
		t.Errorf("last connect = %+v, want the new header accepted", last)
	}
	if n := len(e.f.CallsTo("POST", "/userSessions")); n != 2 {
		t.Errorf("%d logins, want 2", n)
	}
	for _, c := range conns {
		if c.Status == http.StatusUnauthorized && c.Authorization == cur {
			t.Errorf("the new header was refused: %+v", c)
		}
	}
}

func TestHubReconnectsOnTokenRenewal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	he := startHub(t, e)
	connected(t, he)
	old, _ := e.c.HubAuthorization(t.Context())
	mark := len(e.f.HubConnects())

	if _, err := e.c.Login(t.Context()); err != nil { // a renewal: new token, TokenRenewed fires
		t.Fatal(err)
	}
	cur, _ := e.c.HubAuthorization(t.Context())
	if cur == old {
		t.Fatal("Login kept the token")
	}
	next(t, he.h, func(c resonite.Connected) bool { return c.Reconnect })
	conns := e.f.HubConnects()[mark:]
	if len(conns) == 0 {
		t.Fatal("no connect after the renewal")
	}
	for _, c := range conns {
		if c.Authorization != cur || c.Status != 0 {
			t.Errorf("connect after the renewal = %+v, want the new header", c)
		}
	}
	if err := e.f.WaitConnections(waitCtx(t), botID, 1); err != nil {
		t.Errorf("the old connection is not gone: %v", err)
	}
	if !strings.Contains(he.logs.String(), "reconnecting after a token renewal") {
		t.Errorf("no renewal line in the log:\n%s", he.logs)
	}
}

func TestHubNegotiation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		skip      bool
		offered   bool
		wantPaths []string
		wantID    bool // the WebSocket carries the negotiated ?id=
	}{
		{"negotiate", false, true, []string{"/hub/negotiate", "/hub"}, true},
		{"skip negotiate", true, true, []string{"/hub"}, false},
		{"negotiate not offered", false, false, []string{"/hub/negotiate", "/hub"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.f.OfferNegotiate(tc.offered)
			he := startHub(t, e, func(o *resonite.HubOptions) { o.SkipNegotiate = tc.skip })
			connected(t, he)
			conns := e.f.HubConnects()
			var paths []string
			for _, c := range conns {
				paths = append(paths, c.Path)
			}
			if !slices.Equal(paths, tc.wantPaths) {
				t.Fatalf("hub requests = %v, want %v", paths, tc.wantPaths)
			}
			if !tc.offered && conns[0].Status != http.StatusNotFound {
				t.Errorf("negotiate answered %d", conns[0].Status)
			}
			ws := conns[len(conns)-1]
			if (ws.Query.Get("id") != "") != tc.wantID || ws.Status != 0 || ws.Authorization == "" {
				t.Errorf("WebSocket request = %+v", ws)
			}
			if err := he.h.ListenOnContact(waitCtx(t), "U-Friend"); err != nil {
				t.Errorf("a call over the connection: %v", err)
			}
		})
	}
}

// staticAuth is a HubAuth for servers that check nothing.
type staticAuth struct{}

func (staticAuth) HubAuthorization(context.Context) (string, error) { return "res U-Bridge:tok", nil }
func (staticAuth) Relogin(context.Context, string) error            { return nil }
func (staticAuth) TokenRenewed() <-chan struct{}                    { return nil }

func TestHubWatchdogRedialsSilentServer(t *testing.T) {
	t.Parallel()
	dials := make(chan struct{}, 16)
	handshakes := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hub" { // no negotiate here: the hub dials directly
			http.NotFound(w, r)
			return
		}
		select {
		case dials <- struct{}{}:
		default:
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		_, hs, err := ws.Read(ctx)
		if err != nil {
			return
		}
		select {
		case handshakes <- string(hs):
		default:
		}
		if err := ws.Write(ctx, websocket.MessageText, []byte("{}\x1e")); err != nil {
			return
		}
		for { // then say nothing, ever, but keep reading until the client hangs up
			if _, _, err := ws.Read(ctx); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close) // after the hub's Close (cleanups run last-in first-out)
	logs := &syncBuffer{}
	h := runHub(t, resonite.HubOptions{URL: srv.URL + "/hub", Auth: staticAuth{}, IdleTimeout: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})

	for i := range 2 { // the first dial, and the second after the silence
		select {
		case <-dials:
		case <-waitCtx(t).Done():
			t.Fatalf("%d dials within %s, want 2", i, waitLimit)
		}
	}
	if hs := <-handshakes; hs != `{"protocol":"json","version":1}`+"\x1e" {
		t.Errorf("handshake = %q", hs)
	}
	if !strings.Contains(logs.String(), "no data from the hub") {
		t.Errorf("the watchdog's reason is not logged:\n%s", logs)
	}
	if st := h.State(); !strings.Contains(st.LastError, "no data from the hub") {
		t.Errorf("State = %+v", st)
	}
}

func TestHubReceivesLargePush(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	he := startHub(t, e)
	connected(t, he)
	big := strings.Repeat("Resonite ✓ ", 200_000/len("Resonite ✓ ")+1)[:200_000]
	e.f.PushMessage(botID, resonite.Message{ID: "MSG-big", SenderID: "U-Friend", RecipientID: botID, MessageType: resonite.MessageText,
		Content: big, SendTime: resonite.NewTime(time.Now())})
	m := next[resonite.MessageReceived](t, he.h, nil)
	if m.Message.ID != "MSG-big" || m.Message.Content != big {
		t.Errorf("got %s with %d bytes of content, want MSG-big with %d", m.Message.ID, len(m.Message.Content), len(big))
	}
	stillFirstConnection(t, he)
}

// TestHubDeliversPushesInWireOrder: events leave in the order of the wire, whatever their
// timestamps say and however many frames without an event lie between them. The fake writes
// pushes in the order of the Push calls, so the order expected is the order pushed.
func TestHubDeliversPushesInWireOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	he := startHub(t, e)
	connected(t, he)
	const n = 2000
	base := time.Date(2025, 5, 24, 22, 0, 0, 0, time.UTC)
	var want []string
	for i := range n {
		// Timestamps run backwards: any sorting by them would show.
		at := resonite.NewTime(base.Add(-time.Duration(i) * time.Millisecond))
		switch i % 4 {
		case 0, 1:
			e.f.Push(botID, "ReceiveMessage", resonite.Message{ID: fmt.Sprintf("MSG-%05d", i), SenderID: "U-Friend", RecipientID: botID,
				MessageType: resonite.MessageText, Content: fmt.Sprint(i), SendTime: at})
			want = append(want, fmt.Sprintf("message %05d", i))
		case 2:
			e.f.Push(botID, "ReceiveStatusUpdate", resonite.UserStatus{UserID: "U-Friend", UserSessionID: fmt.Sprintf("dev-%05d", i),
				OnlineStatus: resonite.StatusOnline, LastStatusChange: at, Sessions: []resonite.UserSessionMetadata{}, CurrentSessionIndex: -1})
			want = append(want, fmt.Sprintf("status %05d", i))
		case 3:
			// Frames that make no event must hold nothing back.
			e.f.Push(botID, "SomethingNewFromTheCloud", i)
			e.f.Push(botID, "KeyListenerAdded", "BK-x", "conn-x")
			e.f.Push(botID, "RemoveSession", fmt.Sprintf("S-%05d", i), at)
			want = append(want, fmt.Sprintf("removed %05d", i))
		}
	}
	got := make([]string, 0, n)
	timeout := time.NewTimer(waitLimit)
	defer timeout.Stop()
	for len(got) < len(want) {
		select {
		case ev := <-he.h.Events():
			switch v := ev.(type) {
			case resonite.MessageReceived:
				got = append(got, "message "+strings.TrimPrefix(v.Message.ID, "MSG-"))
			case resonite.StatusUpdated:
				got = append(got, "status "+strings.TrimPrefix(v.Status.UserSessionID, "dev-"))
			case resonite.SessionRemoved:
				got = append(got, "removed "+strings.TrimPrefix(v.SessionID, "S-"))
			default:
				t.Fatalf("unexpected event %#v", ev)
			}
		case <-timeout.C:
			t.Fatalf("%d of %d events within %s", len(got), len(want), waitLimit)
		}
	}
	misplaced, first := 0, -1
	for i := range got {
		if got[i] != want[i] {
			misplaced++
			if first < 0 {
				first = i
			}
		}
	}
	if misplaced != 0 {
		t.Errorf("%d of %d events out of place; the first at %d: got %v, want %v", misplaced, len(want), first,
			got[first:min(first+5, len(got))], want[first:min(first+5, len(want))])
	}
	stillFirstConnection(t, he)
}

func TestHubBackPressureDropsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	he := startHub(t, e, func(o *resonite.HubOptions) { o.EventBuffer = 4 })
	connected(t, he)
	const n = 60
	base := time.Now()
	for i := range n {
		e.f.Push(botID, "ReceiveMessage", resonite.Message{ID: fmt.Sprintf("MSG-%03d", i), SenderID: "U-Friend", RecipientID: botID,
			MessageType: resonite.MessageText, Content: fmt.Sprint(i), SendTime: resonite.NewTime(base.Add(time.Duration(i) * time.Millisecond))})
	}
	// The consumer is away until the hub says it is waiting for it.
	he.logs.waitFor(t, "the hub waits for the consumer", "back-pressure")
	for i := range n { // every one, once, in order: the pause lost and reordered nothing
		m := next[resonite.MessageReceived](t, he.h, nil)
		if want := fmt.Sprintf("MSG-%03d", i); m.Message.ID != want {
			t.Fatalf("event %d is %s, want %s", i, m.Message.ID, want)
		}
	}
	he.logs.waitFor(t, "the recovery", "hub reader resumed")
	stillFirstConnection(t, he)
}

func TestHubClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h, err := resonite.NewHub(resonite.HubOptions{URL: e.f.HubURL, Auth: e.c})
	if err != nil {
		t.Fatal(err)
	}
	// Closing a hub that never started closes Events and refuses a later Start.
	if err := h.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-h.Events(); ok {
		t.Error("Events open after Close")
	}
	if err := h.Start(t.Context()); !errors.Is(err, resonite.ErrHubClosed) {
		t.Errorf("Start after Close = %v", err)
	}

	he := startHub(t, e)
	connected(t, he)
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if err := he.h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := he.h.Close(ctx); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if st := he.h.State(); st.State != resonite.ConnClosed {
		t.Errorf("State = %+v", st)
	}
	if err := he.h.SendMessage(ctx, resonite.Message{RecipientID: "U-Friend", Content: "x"}); !errors.Is(err, resonite.ErrHubClosed) {
		t.Errorf("SendMessage after Close = %v", err)
	}
	if err := he.h.WaitConnected(ctx); !errors.Is(err, resonite.ErrHubClosed) {
		t.Errorf("WaitConnected after Close = %v", err)
	}
	if err := e.f.WaitConnections(ctx, botID, 0); err != nil {
		t.Errorf("the fake still sees the connection: %v", err)
	}
	for range he.h.Events() {
	}
}

func TestNewHubRejectsBadOptions(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]resonite.HubOptions{
		"no auth":    {URL: "https://api.resonite.com/hub"},
		"no url":     {Auth: staticAuth{}},
		"bad scheme": {URL: "ftp://api.resonite.com/hub", Auth: staticAuth{}},
	} {
		if _, err := resonite.NewHub(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestHubForgetsKeysOfEndedSessions: a session that ended (RemoveSession, or an update with
// hasEnded) takes its broadcast key out of the set listened on after each reconnect.
func TestHubForgetsKeysOfEndedSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	he := startHub(t, e)
	connected(t, he)
	st := resonite.UserStatus{UserID: "U-Friend", UserSessionID: "dev-keys", OnlineStatus: resonite.StatusOnline,
		LastStatusChange: resonite.NewTime(time.Now()), CurrentSessionIndex: 0}
	for _, k := range []string{"BK-removed", "BK-ended", "BK-live"} {
		st.Sessions = append(st.Sessions, resonite.UserSessionMetadata{SessionHash: "H", AccessLevel: resonite.AccessContacts, BroadcastKey: ptr(k)})
	}
	e.f.Push(botID, "ReceiveStatusUpdate", st)
	hubCalls(t, e.f, "ListenOnKey", 3)
	session := func(id, key string, ended bool) resonite.SessionInfo {
		return resonite.SessionInfo{SessionID: id, Name: id, BroadcastKey: ptr(key), HasEnded: ended, IsValid: !ended,
			SessionBeginTime: resonite.NewTime(time.Now()), LastUpdate: resonite.NewTime(time.Now())}
	}
	e.f.Push(botID, "ReceiveSessionUpdate", session("S-removed", "BK-removed", false))
	e.f.Push(botID, "ReceiveSessionUpdate", session("S-live", "BK-live", false))
	e.f.Push(botID, "RemoveSession", "S-removed", resonite.NewTime(time.Now()))
	e.f.Push(botID, "ReceiveSessionUpdate", session("S-ended", "BK-ended", true))
	next(t, he.h, func(s resonite.SessionUpdated) bool { return s.Session.SessionID == "S-ended" }) // the last push: all handled
	if got := resonite.HubBroadcastKeys(he.h); !slices.Equal(got, []string{"BK-live"}) {
		t.Errorf("keys kept = %v, want [BK-live]", got)
	}

	mark := len(e.f.CallsTo("ListenOnKey", ""))
	e.f.DropConnections()
	next(t, he.h, func(c resonite.Connected) bool { return c.Reconnect })
	again := e.f.CallsTo("ListenOnKey", "")[mark:]
	jsonEqual(t, "keys listened on after the reconnect", mustJSON(t, callArgs(t, again)), `[["BK-live"]]`)
}

// TestHubCachesAreBounded: devices and sessions come and go for as long as the daemon runs;
// the hub's memory of them stays within its bound.
func TestHubCachesAreBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const limit = 8
	h := runHub(t, resonite.HubOptions{URL: e.f.HubURL, Auth: e.c}, func(h *resonite.Hub) { resonite.SetHubCacheLimit(h, limit) })
	next[resonite.Connected](t, h, nil)
	const n = 100
	for i := range n {
		key := fmt.Sprintf("BK-%03d", i)
		e.f.Push(botID, "ReceiveStatusUpdate", resonite.UserStatus{UserID: fmt.Sprintf("U-%03d", i), UserSessionID: "dev",
			OnlineStatus: resonite.StatusOnline, LastStatusChange: resonite.NewTime(time.Now()), CurrentSessionIndex: 0,
			Sessions: []resonite.UserSessionMetadata{{SessionHash: "H", AccessLevel: resonite.AccessAnyone, BroadcastKey: ptr(key)}}})
		e.f.Push(botID, "ReceiveSessionUpdate", resonite.SessionInfo{SessionID: fmt.Sprintf("S-%03d", i), BroadcastKey: ptr(key), IsValid: true})
	}
	next(t, h, func(s resonite.SessionUpdated) bool { return s.Session.SessionID == fmt.Sprintf("S-%03d", n-1) })
	keys, sessions, statuses := resonite.HubCacheSizes(h)
	if keys > limit || sessions > limit || statuses > limit {
		t.Errorf("after %d devices and sessions the hub holds %d keys, %d sessions, %d statuses; the bound is %d", n, keys, sessions, statuses, limit)
	}
	if got := resonite.HubBroadcastKeys(h); len(got) == 0 || got[len(got)-1] != fmt.Sprintf("BK-%03d", n-1) {
		t.Errorf("the newest key was evicted: %v", got)
	}
}
