package resoniteadapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// content JSON-encodes the content of a non-text message, as the cloud sends it.
func content(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func str(s string) *string { return &s }

// TestMessage: a received message is decoded into what Discord can show, and shown so: records
// in the content, resdb:/// links, rich text in names, unreadable content.
func TestMessage(t *testing.T) {
	t.Parallel()
	const avatar = "https://assets.resonite.com/icon"
	sent := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	msg := func(typ resonite.MessageType, c string) resonite.Message {
		return resonite.Message{ID: "MSG-1", SenderID: "U-Alice", MessageType: typ, Content: c, SendTime: resonite.NewTime(sent)}
	}
	decoded := func(kind core.MessageKind, set func(*core.ContactMessage)) core.ContactMessage {
		m := core.ContactMessage{ID: "MSG-1", SenderID: "U-Alice", Kind: kind, SentAt: sent}
		if set != nil {
			set(&m)
		}
		return m
	}
	base := core.Post{Username: "Alice", AvatarURL: avatar}
	post := func(content string, embeds ...core.Embed) core.Post {
		p := base
		p.Content = content
		p.Embeds = embeds
		if len(embeds) == 1 && strings.HasPrefix(embeds[0].URL, "https://go.resonite.com/") {
			p.Buttons = []core.LinkButton{{Label: "Open in Resonite", URL: embeds[0].URL}} // invites
		}
		return p
	}
	fields := func(host, users, access, headless string) []core.EmbedField {
		return []core.EmbedField{
			{Name: "Host", Value: host, Inline: true}, {Name: "Users", Value: users, Inline: true},
			{Name: "Access", Value: access, Inline: true}, {Name: "Headless", Value: headless, Inline: true},
		}
	}
	tests := []struct {
		name string
		m    resonite.Message
		want core.ContactMessage
		post []core.Post // as the bridge renders it
	}{
		{"text", msg(resonite.MessageText, "hello **world**"),
			decoded(core.KindText, func(m *core.ContactMessage) { m.Text = "hello **world**" }),
			[]core.Post{post("hello \\*\\*world\\*\\*")}}, // typed markdown shows literally
		{"untyped message is text", msg("", "hi"),
			decoded(core.KindText, func(m *core.ContactMessage) { m.Text = "hi" }),
			[]core.Post{post("hi")}},
		{
			"sound as a voice-message line with the asset link",
			msg(resonite.MessageSound, content(t, map[string]any{"assetUri": "resdb:///0a1b2c.ogg", "name": "Voice message"})),
			decoded(core.KindSound, func(m *core.ContactMessage) {
				m.SoundURL, m.SoundAsset = "https://assets.resonite.com/0a1b2c", "resdb:///0a1b2c.ogg"
			}),
			[]core.Post{post("🎤 Voice message: https://assets.resonite.com/0a1b2c")},
		},
		{"unreadable sound", msg(resonite.MessageSound, "{not json"),
			decoded(core.KindSound, func(m *core.ContactMessage) { m.Unreadable = true }),
			[]core.Post{post("🎤 sent a voice message (it could not be read)")}},
		{"sound without an asset", msg(resonite.MessageSound, content(t, map[string]any{"name": "Voice message"})),
			decoded(core.KindSound, func(m *core.ContactMessage) { m.Unreadable = true }),
			[]core.Post{post("🎤 sent a voice message (it could not be read)")}},
		{
			"object by name with thumbnail, rich text stripped, markdown escaped",
			msg(resonite.MessageObject, content(t, map[string]any{"name": "<color=red>Cool</color> *Hat*", "thumbnailUri": "resdb:///th1.webp"})),
			decoded(core.KindObject, func(m *core.ContactMessage) {
				m.Item = &core.Item{Name: "Cool *Hat*", ThumbnailURL: "https://assets.resonite.com/th1"}
			}),
			[]core.Post{post("📦 sent an item: **Cool \\*Hat\\***", core.Embed{Title: "Cool *Hat*", ThumbnailURL: "https://assets.resonite.com/th1"})},
		},
		{
			"object without thumbnail",
			msg(resonite.MessageObject, content(t, map[string]any{"name": "Chair"})),
			decoded(core.KindObject, func(m *core.ContactMessage) { m.Item = &core.Item{Name: "Chair"} }),
			[]core.Post{post("📦 sent an item: **Chair**")},
		},
		{
			"object without a name",
			msg(resonite.MessageObject, content(t, map[string]any{"name": "<b></b>"})),
			decoded(core.KindObject, func(m *core.ContactMessage) { m.Item = &core.Item{} }),
			[]core.Post{post("📦 sent an item: **an item**")},
		},
		{"unreadable object", msg(resonite.MessageObject, "[1]"),
			decoded(core.KindObject, func(m *core.ContactMessage) { m.Unreadable = true }),
			[]core.Post{post("📦 sent an item (it could not be read)")}},
		{
			"session invite as an embed",
			msg(resonite.MessageSessionInvite, content(t, resonite.SessionInfo{
				Name: "The <color=yellow>Hidden Star</color> <b>Theater</b>", SessionID: "S-U-Host:Theater",
				HostUsername: "Host", ActiveUsers: 3, MaxUsers: 16,
				ThumbnailURL: str("https://skyfrost-archive.resonite.com/thumbnails/x.webp"),
			})),
			decoded(core.KindSessionInvite, func(m *core.ContactMessage) {
				m.Invite = &core.Session{
					ID: "S-U-Host:Theater", Name: "The Hidden Star Theater", HostUsername: "Host", ActiveUsers: 3, MaxUsers: 16,
					ThumbnailURL: "https://skyfrost-archive.resonite.com/thumbnails/x.webp", URL: "https://go.resonite.com/session/S-U-Host:Theater",
				}
			}),
			[]core.Post{post("📨 invites you to a session", core.Embed{
				Title: "The Hidden Star Theater", URL: "https://go.resonite.com/session/S-U-Host:Theater",
				ThumbnailURL: "https://skyfrost-archive.resonite.com/thumbnails/x.webp",
				Fields:       fields("Host", "3/16", "unknown", "no"),
			})},
		},
		{
			"session invite without name or host",
			msg(resonite.MessageSessionInvite, content(t, resonite.SessionInfo{Name: "<size=200></size>", SessionID: "S-1", ActiveUsers: 1})),
			decoded(core.KindSessionInvite, func(m *core.ContactMessage) {
				m.Invite = &core.Session{ID: "S-1", ActiveUsers: 1, URL: "https://go.resonite.com/session/S-1"}
			}),
			[]core.Post{post("📨 invites you to a session", core.Embed{
				Title: "Unnamed session", URL: "https://go.resonite.com/session/S-1",
				Fields: fields("unknown", "1", "unknown", "no"),
			})},
		},
		{"unreadable session invite", msg(resonite.MessageSessionInvite, "[]"),
			decoded(core.KindSessionInvite, func(m *core.ContactMessage) { m.Unreadable = true }),
			[]core.Post{post("📨 sent a session invite (it could not be read)")}},
		{
			"invite request for oneself",
			msg(resonite.MessageInviteRequest, content(t, map[string]any{"requestingFromUsername": "Alice", "usernameToInvite": "Alice", "forSessionName": "<b>Party</b>"})),
			decoded(core.KindInviteRequest, func(m *core.ContactMessage) {
				m.InviteRequest = &core.InviteRequest{From: "Alice", ForUser: "Alice", SessionName: "Party"}
			}),
			[]core.Post{post("🙋 Alice asks for an invite to Party")},
		},
		{
			"invite request for someone else",
			msg(resonite.MessageInviteRequest, content(t, map[string]any{"requestingFromUsername": "Alice", "usernameToInvite": "Carol"})),
			decoded(core.KindInviteRequest, func(m *core.ContactMessage) { m.InviteRequest = &core.InviteRequest{From: "Alice", ForUser: "Carol"} }),
			[]core.Post{post("🙋 Alice asks for an invite for Carol")},
		},
		{
			"invite request naming @everyone",
			msg(resonite.MessageInviteRequest, content(t, map[string]any{"requestingFromUsername": "@everyone", "usernameToInvite": "@here"})),
			decoded(core.KindInviteRequest, func(m *core.ContactMessage) {
				m.InviteRequest = &core.InviteRequest{From: "@everyone", ForUser: "@here"}
			}),
			[]core.Post{post("🙋 @\u200beveryone asks for an invite for @\u200bhere")},
		},
		{"unreadable invite request", msg(resonite.MessageInviteRequest, "{"),
			decoded(core.KindInviteRequest, func(m *core.ContactMessage) { m.Unreadable = true }),
			[]core.Post{post("🙋 sent an invite request (it could not be read)")}},
		{
			"credit transfer",
			msg(resonite.MessageCreditTransfer, content(t, map[string]any{"amount": 12.5, "token": "KFC", "comment": " thanks! "})),
			decoded(core.KindCreditTransfer, func(m *core.ContactMessage) { m.Transfer = &core.Transfer{Amount: "12.5 KFC", Comment: "thanks!"} }),
			[]core.Post{post("💸 sent a credit transfer: 12.5 KFC (“thanks!”)")},
		},
		{"credit transfer of unknown shape", msg(resonite.MessageCreditTransfer, "\"x\""),
			decoded(core.KindCreditTransfer, nil),
			[]core.Post{post("💸 sent a credit transfer")}},
		{"sugar cubes", msg(resonite.MessageSugarCubes, content(t, map[string]any{"Amount": 3})),
			decoded(core.KindSugarCubes, func(m *core.ContactMessage) { m.Transfer = &core.Transfer{Amount: "3"} }),
			[]core.Post{post("🧊 sent sugar cubes: 3")}},
		{"sugar cubes as a string amount", msg(resonite.MessageSugarCubes, content(t, map[string]any{"amount": "7", "token": "cubes"})),
			decoded(core.KindSugarCubes, func(m *core.ContactMessage) { m.Transfer = &core.Transfer{Amount: "7 cubes"} }),
			[]core.Post{post("🧊 sent sugar cubes: 7 cubes")}},
		{"unknown type", msg("Hologram", "{}"),
			decoded("Hologram", func(m *core.ContactMessage) { m.Text = "{}" }),
			[]core.Post{post("sent a message of type Hologram that Discord cannot show")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := message(tt.m)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("message() =\n%#v\nwant\n%#v", got, tt.want)
			}
			// What is stored is what is shown: the payload round trip keeps every field.
			b, err := core.EncodeToDiscord(got)
			if err != nil {
				t.Fatal(err)
			}
			stored, err := core.DecodeToDiscord(b)
			if err != nil {
				t.Fatal(err)
			}
			if posts := bridge.RenderForDiscord(stored, "Alice", avatar); !reflect.DeepEqual(posts, tt.post) {
				t.Errorf("rendered =\n%#v\nwant\n%#v", posts, tt.post)
			}
		})
	}
}

func TestContact(t *testing.T) {
	t.Parallel()
	st := resonite.UserStatus{UserSessionID: "d1", OnlineStatus: resonite.StatusBusy, CurrentSessionIndex: -1}
	tests := []struct {
		name string
		c    resonite.Contact
		want core.Contact
	}{
		{
			"friend with a resdb avatar and a former name",
			resonite.Contact{ID: "U-Alice", ContactUsername: "Alice_VR", ContactStatus: resonite.ContactAccepted, IsAccepted: true,
				AlternateUsernames: []string{"Alice"}, Profile: &resonite.Profile{IconURL: "resdb:///face.webp"}},
			core.Contact{ID: "U-Alice", Username: "Alice_VR", AlternateUsernames: []string{"Alice"}, State: core.ContactFriend,
				AvatarURL: "https://assets.resonite.com/face"},
		},
		{
			"incoming request",
			resonite.Contact{ID: "U-New", ContactUsername: "Newcomer", ContactStatus: resonite.ContactRequested},
			core.Contact{ID: "U-New", Username: "Newcomer", State: core.ContactRequested},
		},
		{
			"accepted by the bridge, not by the user yet",
			resonite.Contact{ID: "U-W", ContactUsername: "Waiting", ContactStatus: resonite.ContactAccepted},
			core.Contact{ID: "U-W", Username: "Waiting", State: core.ContactPending},
		},
		{
			"ignored",
			resonite.Contact{ID: "U-X", ContactUsername: "X", ContactStatus: resonite.ContactStatus("Ignored")},
			core.Contact{ID: "U-X", Username: "X", State: core.ContactNone},
		},
		{
			"with the status of the contact list, user id filled in",
			resonite.Contact{ID: "U-Bob", ContactUsername: "Bob", ContactStatus: resonite.ContactAccepted, IsAccepted: true, UserStatus: &st},
			core.Contact{ID: "U-Bob", Username: "Bob", State: core.ContactFriend,
				Device: &core.Device{UserID: "U-Bob", DeviceID: "d1", Status: core.StatusBusy}},
		},
	}
	for _, tt := range tests {
		if got := contact(tt.c); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: contact() =\n%#v\nwant\n%#v", tt.name, got, tt.want)
		}
	}
}

func TestDevice(t *testing.T) {
	t.Parallel()
	changed := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	base := resonite.UserStatus{UserID: "U-Alice", UserSessionID: "d1", OnlineStatus: resonite.StatusOnline,
		LastStatusChange: resonite.NewTime(changed), CurrentSessionIndex: -1, HashSalt: "c2FsdA=="}
	with := func(f func(*resonite.UserStatus)) resonite.UserStatus {
		s := base
		f(&s)
		return s
	}
	hash := resonite.SessionHash("S-1", base.HashSalt)
	tests := []struct {
		name     string
		st       resonite.UserStatus
		wantKind core.DeviceKind
		wantHint string
	}{
		{"unknown device, in no session", base, core.DeviceUnknown, ""},
		{"VR", with(func(s *resonite.UserStatus) { s.OutputDevice = resonite.DeviceVR }), core.DeviceVR, ""},
		{"desktop", with(func(s *resonite.UserStatus) { s.OutputDevice = resonite.DeviceScreen }), core.DeviceDesktop, ""},
		{"mobile", with(func(s *resonite.UserStatus) { s.IsMobile = true; s.OutputDevice = resonite.DeviceScreen }), core.DeviceMobile, ""},
		{"headless", with(func(s *resonite.UserStatus) { s.SessionType = resonite.SessionTypeHeadless; s.IsMobile = true }), core.DeviceHeadless, ""},
		{"in a session", with(func(s *resonite.UserStatus) {
			s.Sessions = []resonite.UserSessionMetadata{{SessionHash: "other"}, {SessionHash: hash}}
			s.CurrentSessionIndex = 1
		}), core.DeviceUnknown, hash + hintSep + base.HashSalt},
		{"sessions listed but in none", with(func(s *resonite.UserStatus) {
			s.Sessions = []resonite.UserSessionMetadata{{SessionHash: hash}}
		}), core.DeviceUnknown, ""},
	}
	for _, tt := range tests {
		d := device(tt.st)
		want := core.Device{UserID: "U-Alice", DeviceID: "d1", Status: core.StatusOnline, Kind: tt.wantKind, StatusChanged: changed, SessionHint: tt.wantHint}
		if !reflect.DeepEqual(d, want) {
			t.Errorf("%s: device() =\n%#v\nwant\n%#v", tt.name, d, want)
		}
	}
	if d := device(resonite.UserStatus{UserID: "U-Host", UserSessionID: "h1", CurrentSessionIndex: -1}); d.Status != "" || d.Status.Visible() {
		t.Errorf("a headless host's null status became %q", d.Status)
	}
}

func TestSessionAndUser(t *testing.T) {
	t.Parallel()
	s := session(resonite.SessionInfo{
		Name: "<color=red>Club</color> <b>Night</b>", SessionID: "S-U-Host:club", HostUsername: " <i>Host</i> ",
		ActiveUsers: 2, JoinedUsers: 3, MaxUsers: 8, AccessLevel: resonite.AccessContacts, HeadlessHost: true,
		HideFromListing: true, ThumbnailURL: str("resdb:///thumb.webp"),
	})
	want := core.Session{
		ID: "S-U-Host:club", Name: "Club Night", HostUsername: "Host", ActiveUsers: 2, JoinedUsers: 3, MaxUsers: 8,
		AccessLevel: string(resonite.AccessContacts), Headless: true, Hidden: true,
		ThumbnailURL: "https://assets.resonite.com/thumb", URL: "https://go.resonite.com/session/S-U-Host:club",
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("session() =\n%#v\nwant\n%#v", s, want)
	}
	registered := time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)
	u := user(resonite.User{ID: "U-Alice", Username: "Alice", RegistrationDate: resonite.NewTime(registered),
		Profile: &resonite.Profile{IconURL: "resdb:///face.webp", Tagline: str("<size=300>big</size> news")}})
	if want := (core.User{ID: "U-Alice", Username: "Alice", IconURL: "https://assets.resonite.com/face", Tagline: "big news", RegisteredAt: registered}); !reflect.DeepEqual(u, want) {
		t.Errorf("user() =\n%#v\nwant\n%#v", u, want)
	}
	if u := user(resonite.User{ID: "U-Bob"}); !u.RegisteredAt.IsZero() || u.IconURL != "" {
		t.Errorf("user() of a bare user = %#v", u)
	}
}

// TestAdapterSession: a device's session is found by its hash among the sessions the hub
// reported, until the session is removed or ends.
func TestAdapterSession(t *testing.T) {
	t.Parallel()
	a := New(nil, nil)
	club := resonite.SessionInfo{Name: "<color=red>Club</color> <b>Night</b>", SessionID: "S-U-Host:club"}
	a.setSession(club)
	a.setSession(resonite.SessionInfo{SessionID: "S-other", Name: "Other"})
	in := func(sessionID string, idx int) string {
		st := resonite.UserStatus{UserID: "U-Alice", UserSessionID: "d1", OnlineStatus: resonite.StatusOnline, HashSalt: "c2FsdA=="}
		st.Sessions = []resonite.UserSessionMetadata{{SessionHash: resonite.SessionHash(sessionID, st.HashSalt), AccessLevel: resonite.AccessContacts}}
		st.CurrentSessionIndex = idx
		return device(st).SessionHint
	}
	if s, ok := a.Session(in(club.SessionID, 0)); !ok || s.ID != club.SessionID || s.Name != "Club Night" || s.URL != "https://go.resonite.com/session/S-U-Host:club" {
		t.Errorf("Session of a device in the club = %+v %v", s, ok)
	}
	for name, hint := range map[string]string{"a session never seen": in("S-hidden", 0), "not in a session": in(club.SessionID, -1), "no hint": "", "a hint without salt": "ABC"} {
		if s, ok := a.Session(hint); ok {
			t.Errorf("%s: resolved to %+v", name, s)
		}
	}
	a.removeSession(club.SessionID)
	if s, ok := a.Session(in(club.SessionID, 0)); ok {
		t.Errorf("session %s still resolved after it was removed", s.ID)
	}
	a.setSession(club)
	ended := club
	ended.HasEnded = true
	a.setSession(ended)
	if s, ok := a.Session(in(club.SessionID, 0)); ok {
		t.Errorf("session %s still resolved after it ended", s.ID)
	}
	if _, ok := a.Session(in("S-other", 0)); !ok {
		t.Error("another session was lost")
	}
}

// TestAdapterSessionCacheBounded: a hub that never ends sessions does not grow the cache
// without limit.
func TestAdapterSessionCacheBounded(t *testing.T) {
	t.Parallel()
	a := New(nil, nil)
	for i := range maxSessions + 10 {
		a.setSession(resonite.SessionInfo{SessionID: fmt.Sprintf("S-%d", i)})
	}
	a.mu.Lock()
	n := len(a.sessions)
	a.mu.Unlock()
	if n != maxSessions {
		t.Errorf("%d sessions cached, want %d", n, maxSessions)
	}
}

// recordingSink records what the event loop hands on.
type recordingSink struct {
	disconnects int
	messages    []core.ContactMessage
	sent        []string
	devices     []core.Device
	contacts    []core.Contact
	connected   [][]core.Contact
}

func (s *recordingSink) HandleContactMessage(_ context.Context, m core.ContactMessage) error {
	s.messages = append(s.messages, m)
	return nil
}
func (s *recordingSink) HandleSentMessage(_ context.Context, id string) error {
	s.sent = append(s.sent, id)
	return nil
}
func (s *recordingSink) HandleDevice(_ context.Context, d core.Device) {
	s.devices = append(s.devices, d)
}
func (s *recordingSink) HandleContact(_ context.Context, c core.Contact) {
	s.contacts = append(s.contacts, c)
}
func (s *recordingSink) HandleConnected(_ context.Context, cs []core.Contact) {
	s.connected = append(s.connected, cs)
}
func (s *recordingSink) HandleDisconnected(context.Context) { s.disconnects++ }

// TestEventLoopHandle: each hub event reaches the bridge converted, in the order given;
// session events only keep the adapter's cache.
func TestEventLoopHandle(t *testing.T) {
	t.Parallel()
	a := New(nil, nil)
	sink := &recordingSink{}
	l := NewEventLoop(a, sink, nil)
	ctx := t.Context()
	m := resonite.Message{ID: "MSG-1", SenderID: "U-Alice", MessageType: resonite.MessageText, Content: "hi"}
	st := resonite.UserStatus{UserID: "U-Alice", UserSessionID: "d1", OnlineStatus: resonite.StatusOnline, CurrentSessionIndex: -1}
	alice := resonite.Contact{ID: "U-Alice", ContactUsername: "Alice", ContactStatus: resonite.ContactAccepted, IsAccepted: true}
	for _, ev := range []resonite.Event{
		resonite.MessageReceived{Message: m},
		resonite.MessageSent{Message: resonite.Message{ID: "MSG-2"}},
		resonite.MessageSent{Message: resonite.Message{ID: "MSG-3"}, Awaited: true}, // its SendText settles it
		resonite.StatusUpdated{Status: st},
		resonite.ContactUpdated{Contact: alice},
		resonite.SessionUpdated{Session: resonite.SessionInfo{SessionID: "S-1", Name: "<b>One</b>"}},
		resonite.Disconnected{Err: errors.New("dropped")},
		resonite.Connected{Reconnect: true, Contacts: []resonite.Contact{alice}},
		resonite.MessagesRead{},
	} {
		if err := l.handle(ctx, ev); err != nil {
			t.Fatalf("handle(%T): %v", ev, err)
		}
	}
	if want := []core.ContactMessage{message(m)}; !reflect.DeepEqual(sink.messages, want) {
		t.Errorf("messages %+v, want %+v", sink.messages, want)
	}
	if sink.disconnects != 1 {
		t.Errorf("%d disconnects reached the bridge, want 1", sink.disconnects)
	}
	if !reflect.DeepEqual(sink.sent, []string{"MSG-2"}) {
		t.Errorf("sent %v", sink.sent)
	}
	if want := []core.Device{device(st)}; !reflect.DeepEqual(sink.devices, want) {
		t.Errorf("devices %+v, want %+v", sink.devices, want)
	}
	if want := []core.Contact{contact(alice)}; !reflect.DeepEqual(sink.contacts, want) {
		t.Errorf("contacts %+v, want %+v", sink.contacts, want)
	}
	if want := [][]core.Contact{{contact(alice)}}; !reflect.DeepEqual(sink.connected, want) {
		t.Errorf("connected %+v, want %+v", sink.connected, want)
	}
	salt := "c2FsdA=="
	if s, ok := a.Session(resonite.SessionHash("S-1", salt) + hintSep + salt); !ok || s.Name != "One" {
		t.Errorf("session of SessionUpdated = %+v %v", s, ok)
	}
	if err := l.handle(ctx, resonite.SessionRemoved{SessionID: "S-1"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Session(resonite.SessionHash("S-1", salt) + hintSep + salt); ok {
		t.Error("session still known after SessionRemoved")
	}
	// Stopping a loop that never started returns at once.
	if err := l.Stop(ctx); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
}

// TestClassify: Resonite's failures become the bridge's delivery outcomes.
func TestClassify(t *testing.T) {
	t.Parallel()
	api := func(status int, after time.Duration) error {
		return fmt.Errorf("sending: %w", &resonite.APIError{Method: "POST", Path: "/x", Status: status, RetryAfter: after})
	}
	tests := []struct {
		name      string
		err       error
		permanent bool
		wait      time.Duration // 0: not a postponement
		notFound  bool
	}{
		{"hub not connected", fmt.Errorf("x: %w", resonite.ErrHubNotConnected), false, core.OutageWait, false},
		{"hub closed", resonite.ErrHubClosed, false, core.OutageWait, false},
		{"rate limit with its wait", api(http.StatusTooManyRequests, 3*time.Second), false, 3 * time.Second, false},
		{"rate limit without a wait", api(http.StatusTooManyRequests, 0), false, time.Second, false},
		{"server error", api(http.StatusBadGateway, 0), false, core.OutageWait, false},
		{"token refused: retried", api(http.StatusUnauthorized, 0), false, 0, false},
		{"forbidden: retried", api(http.StatusForbidden, 0), false, 0, false},
		{"timeout: retried", api(http.StatusRequestTimeout, 0), false, 0, false},
		{"not found", api(http.StatusNotFound, 0), true, 0, true},
		{"bad request", api(http.StatusBadRequest, 0), true, 0, false},
		{"anything else: retried", errors.New("connection reset"), false, 0, false},
	}
	for _, tt := range tests {
		got := classify(tt.err)
		if !errors.Is(got, tt.err) && !errors.Is(got, errors.Unwrap(tt.err)) {
			t.Errorf("%s: %v does not wrap the original", tt.name, got)
		}
		if core.IsPermanent(got) != tt.permanent {
			t.Errorf("%s: permanent = %v, want %v", tt.name, core.IsPermanent(got), tt.permanent)
		}
		wait, postponed := core.Wait(got)
		if postponed != (tt.wait > 0) || wait != tt.wait {
			t.Errorf("%s: wait %s %v, want %s", tt.name, wait, postponed, tt.wait)
		}
		if errors.Is(got, core.ErrNotFound) != tt.notFound {
			t.Errorf("%s: core.ErrNotFound = %v, want %v", tt.name, errors.Is(got, core.ErrNotFound), tt.notFound)
		}
	}
	if classify(nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}
