package resonitetest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/resonite-bridge/resonite-bridge/resonite"
	"github.com/resonite-bridge/resonite-bridge/resonite/resonitetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLimit is the safety net of every wait, never reached when the fake behaves.
const waitLimit = 30 * time.Second

const (
	userID    = "U-Raw"
	handshake = `{"protocol":"json","version":1}` + "\x1e"
)

// rawConn speaks WebSocket frames to the fake's hub, with no SignalR library in between.
type rawConn struct {
	t       *testing.T
	ws      *websocket.Conn
	ctx     context.Context
	pending []byte
}

func newFake(t *testing.T) *resonitetest.Fake {
	f := resonitetest.New(t)
	f.AddUser(resonite.User{ID: userID, Username: "Raw"}, "")
	return f
}

// dial opens the hub's WebSocket as userID (skipping negotiate, as ASP.NET Core allows).
func dial(t *testing.T, f *resonitetest.Fake) *rawConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	hdr := http.Header{"Authorization": {"res " + userID + ":" + f.IssueToken(userID, time.Hour)}}
	ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.HubURL, "http"), &websocket.DialOptions{HTTPHeader: hdr})
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dialling the hub: %v", err)
	}
	ws.SetReadLimit(8 << 20)
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &rawConn{t: t, ws: ws, ctx: ctx}
}

// open dials, completes the handshake and waits until the fake has registered the connection.
func open(t *testing.T, f *resonitetest.Fake) *rawConn {
	t.Helper()
	c := dial(t, f)
	c.send(handshake)
	c.expect(`{}`)
	if err := f.WaitConnected(c.ctx, userID, 1); err != nil {
		t.Fatal(err)
	}
	return c
}

// send writes one WebSocket text message (any number of records).
func (c *rawConn) send(msg string) {
	c.t.Helper()
	if err := c.ws.Write(c.ctx, websocket.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("writing %q: %v", msg, err)
	}
}

// record returns the next record's raw JSON, pings included, or the error that ended the read.
func (c *rawConn) record() (string, error) {
	for {
		if i := bytes.IndexByte(c.pending, 0x1e); i >= 0 {
			rec := string(c.pending[:i])
			c.pending = c.pending[i+1:]
			return rec, nil
		}
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return "", err
		}
		if typ != websocket.MessageText {
			c.t.Fatalf("a %v message from the JSON hub", typ)
		}
		c.pending = append(c.pending, data...)
	}
}

// next returns the next record other than a ping, decoded.
func (c *rawConn) next() map[string]any {
	c.t.Helper()
	for {
		rec, err := c.record()
		if err != nil {
			c.t.Fatalf("reading the next record: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(rec), &m); err != nil {
			c.t.Fatalf("record %q is not JSON: %v", rec, err)
		}
		if m["type"] != float64(6) || len(m) != 1 {
			return m
		}
	}
}

// closed expects the fake to end the connection with a WebSocket close frame 1000.
func (c *rawConn) closed() {
	c.t.Helper()
	for {
		rec, err := c.record()
		if err == nil {
			if rec != `{"type":6}` {
				c.t.Fatalf("record %s where the close frame was expected", rec)
			}
			continue
		}
		if s := websocket.CloseStatus(err); s != websocket.StatusNormalClosure {
			c.t.Fatalf("the connection ended with %v (status %v), want a close frame 1000", err, s)
		}
		return
	}
}

func (c *rawConn) expect(want string) {
	c.t.Helper()
	got := c.next()
	var w map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		c.t.Fatalf("bad expectation %s: %v", want, err)
	}
	if !reflect.DeepEqual(got, w) {
		g, _ := json.Marshal(got)
		c.t.Fatalf("record %s, want %s", g, want)
	}
}

func TestHubHandshake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		request string
		answer  string // the handshake response
		refused bool   // a close frame follows
	}{
		{"version 1", handshake, `{}`, false},
		{"version 2", `{"protocol":"json","version":2}` + "\x1e", `{"error":"The server does not support version 2 of the 'json' protocol."}`, true},
		{"no version", `{"protocol":"json"}` + "\x1e", `{"error":"An unexpected error occurred during connection handshake. InvalidDataException: Missing required property 'version'."}`, true},
		{"messagepack", `{"protocol":"messagepack","version":1}` + "\x1e", `{"error":"The protocol 'messagepack' is not supported."}`, true},
	}
	f := newFake(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, f)
			c.send(tc.request)
			c.expect(tc.answer)
			if tc.refused {
				c.closed()
				return
			}
			c.send(`{"type":1,"invocationId":"1","target":"ListenOnKey","arguments":["BK"]}` + "\x1e")
			c.expect(`{"type":3,"invocationId":"1","result":null}`)
		})
	}
}

// TestHubHandshakeAndFramesInOneMessage: whatever follows the handshake in its message, and
// several records in one message, are all handled; a handshake split over messages too.
func TestHubHandshakeAndFramesInOneMessage(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := dial(t, f)
	c.send(handshake + `{"type":1,"invocationId":"a","target":"ListenOnKey","arguments":["BK-1"]}` + "\x1e" +
		`{"type":1,"invocationId":"b","target":"UpdateContact","arguments":[{"id":"U-New","contactUsername":"New","contactStatus":"Accepted"}]}` + "\x1e")
	c.expect(`{}`)
	c.expect(`{"type":3,"invocationId":"a","result":null}`)
	if m := c.next(); m["type"] != float64(1) || m["target"] != "ContactAddedOrUpdated" {
		t.Fatalf("record %v, want the ContactAddedOrUpdated push", m)
	}
	c.expect(`{"type":3,"invocationId":"b","result":true}`)

	split := dial(t, f)
	split.send(handshake[:10])
	split.send(handshake[10:] + `{"type":1,"invocationId":"c","target":"ListenOnKey",`)
	split.send(`"arguments":["BK-2"]}` + "\x1e")
	split.expect(`{}`)
	split.expect(`{"type":3,"invocationId":"c","result":null}`)
	if n := len(f.CallsTo("ListenOnKey", "")); n != 2 {
		t.Errorf("%d ListenOnKey calls recorded, want 2", n)
	}
}

// TestHubNonBlockingInvocationsGetNoAnswer: an invocation without invocationId is never
// answered, whatever becomes of it. The answer to a later call proves that each was handled.
func TestHubNonBlockingInvocationsGetNoAnswer(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.FailHubMethod("ListenOnContact", true)
	c := open(t, f)
	for _, rec := range []string{
		`{"type":1,"target":"ListenOnKey","arguments":["BK-1"]}`,                   // works
		`{"type":1,"target":"NoSuchMethod","arguments":[1,2]}`,                     // unknown
		`{"type":1,"target":"ListenOnKey","arguments":[]}`,                         // wrong arity
		`{"type":1,"target":"InitializeContacts","arguments":[]}`,                  // streaming method
		`{"type":1,"target":"ListenOnContact","arguments":["U-x"]}`,                // fails
		`{"type":1,"invocationId":"","target":"ListenOnKey","arguments":["BK-2"]}`, // empty id: non-blocking too
	} {
		c.send(rec + "\x1e")
	}
	c.send(`{"type":1,"invocationId":"probe","target":"RequestStatus","arguments":[null,false]}` + "\x1e")
	c.expect(`{"type":3,"invocationId":"probe","result":null}`)
	if n := len(f.CallsTo("ListenOnKey", "")); n != 2 {
		t.Errorf("%d ListenOnKey calls recorded, want 2", n)
	}
}

func TestHubAnswers(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.AddContact(userID, resonite.Contact{ID: "U-A", ContactUsername: "A", ContactStatus: resonite.ContactAccepted})
	f.AddContact(userID, resonite.Contact{ID: "U-B", ContactUsername: "B", ContactStatus: resonite.ContactAccepted})
	f.FailHubMethod("BroadcastSession", true)
	tests := []struct {
		name string
		send string
		want []string // the records that answer it, in order (pings aside)
	}{
		{"streaming method with Invocation", `{"type":1,"invocationId":"1","target":"InitializeContacts","arguments":[]}`,
			[]string{`{"type":3,"invocationId":"1","error":"The client attempted to invoke the streaming 'InitializeContacts' method with a non-streaming invocation."}`}},
		{"plain method with StreamInvocation", `{"type":4,"invocationId":"2","target":"ListenOnKey","arguments":["BK"]}`,
			[]string{`{"type":3,"invocationId":"2","error":"The client attempted to invoke the non-streaming 'ListenOnKey' method with a streaming invocation."}`}},
		{"unknown method", `{"type":1,"invocationId":"3","target":"NoSuchMethod","arguments":[]}`,
			[]string{`{"type":3,"invocationId":"3","error":"Unknown hub method 'NoSuchMethod'"}`}},
		{"wrong arity", `{"type":1,"invocationId":"4","target":"ListenOnKey","arguments":["a","b"]}`,
			[]string{`{"type":3,"invocationId":"4","error":"Failed to invoke 'ListenOnKey' due to an error on the server."}`}},
		{"hub error", `{"type":1,"invocationId":"5","target":"BroadcastSession","arguments":[{},{"group":1,"targetIds":null}]}`,
			[]string{`{"type":3,"invocationId":"5","error":"An unexpected error occurred invoking 'BroadcastSession' on the server. HubException: BroadcastSession failed (injected)"}`}},
		{"method names are case-insensitive", `{"type":1,"invocationId":"6","target":"listenonkey","arguments":["BK"]}`,
			[]string{`{"type":3,"invocationId":"6","result":null}`}},
		{"stream", `{"type":4,"invocationId":"7","target":"InitializeContacts","arguments":[]}`, []string{
			`{"type":2,"invocationId":"7","item":` + contactJSON(t, f, 0) + `}`,
			`{"type":2,"invocationId":"7","item":` + contactJSON(t, f, 1) + `}`,
			`{"type":3,"invocationId":"7"}`,
		}},
		{"value result", `{"type":1,"invocationId":"8","target":"InitializeStatus","arguments":[]}`,
			[]string{`{"type":3,"invocationId":"8","result":{"contacts":[` + contactJSON(t, f, 0) + `,` + contactJSON(t, f, 1) + `]}}`}},
	}
	c := open(t, f)
	for _, tc := range tests { // one connection, in sequence: each answer is checked before the next call
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			c.send(tc.send + "\x1e")
			for _, w := range tc.want {
				c.expect(w)
			}
		})
	}
}

func contactJSON(t *testing.T, f *resonitetest.Fake, i int) string {
	t.Helper()
	b, err := json.Marshal(f.Contacts(userID)[i])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHubServerEndsConnections: the server ends a connection with a Close message and a
// clean close frame; so it answers a client's Close message and a malformed record.
func TestHubServerEndsConnections(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		end      func(f *resonitetest.Fake, c *rawConn)
		closeMsg string // "" when no Close message is expected
	}{
		{"DropConnections", func(f *resonitetest.Fake, _ *rawConn) { f.DropConnections() }, `{"type":7,"allowReconnect":true}`},
		{"fake closed", func(f *resonitetest.Fake, _ *rawConn) { go f.Close() }, `{"type":7}`},
		{"malformed record", func(_ *resonitetest.Fake, c *rawConn) { c.send(`{"type":1,"target":` + "\x1e") }, `{"type":7,"error":"Connection closed with an error."}`},
		{"record without type", func(_ *resonitetest.Fake, c *rawConn) { c.send(`{"target":"ListenOnKey","arguments":[]}` + "\x1e") }, `{"type":7,"error":"Connection closed with an error."}`},
		{"client Close message", func(_ *resonitetest.Fake, c *rawConn) { c.send(`{"type":7}` + "\x1e") }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			c := open(t, f)
			tc.end(f, c)
			if tc.closeMsg != "" {
				c.expect(tc.closeMsg)
			}
			c.closed()
			if err := f.WaitConnections(c.ctx, userID, 0); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestHubPushesInOrder: pushes leave in the order of the Push calls, never shuffled.
func TestHubPushesInOrder(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := open(t, f)
	const n = 1000
	for i := range n {
		f.Push(userID, "Debug", fmt.Sprint(i))
	}
	for i := range n {
		c.expect(fmt.Sprintf(`{"type":1,"target":"Debug","arguments":["%d"]}`, i))
	}
}

// TestHubRefusesUnauthenticated: the WebSocket upgrade needs the Authorization header.
func TestHubRefusesUnauthenticated(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.HubURL, "http"), nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial without credentials: %v (%v)", err, resp)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
}
