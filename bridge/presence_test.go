package bridge

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

func status(user, device string, s core.OnlineStatus) core.Device {
	return core.Device{UserID: user, DeviceID: device, Status: s}
}

func contactOf(id, name string) core.Contact {
	return core.Contact{ID: id, Username: name, State: core.ContactFriend, AvatarURL: "https://assets.resonite.com/" + name}
}

func (h *harness) devices(ds ...core.Device) {
	for _, d := range ds {
		h.b.HandleDevice(h.t.Context(), d)
	}
}

const warmup = 30 * time.Second

// newPresenceHarness runs a bridge that knows Alice and Bob, with friend-online subscriptions
// for Alice in C-N, past the warm-up of its first hub connection.
func newPresenceHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, func(o *Options) { o.PresenceWarmup = warmup })
	h.addSub(core.Subscription{GuildID: "G1", ChannelID: "C-N", ContactID: "U-Alice"})
	h.start()
	h.b.HandleContact(t.Context(), contactOf("U-Alice", "Alice"))
	h.b.HandleContact(t.Context(), contactOf("U-Bob", "Bob"))
	h.b.HandleConnected(t.Context(), nil)
	h.clock.Advance(warmup)
	return h
}

type step struct {
	advance time.Duration
	dev     *core.Device
}

func dev(user, device string, s core.OnlineStatus) *core.Device {
	d := status(user, device, s)
	return &d
}

func TestPresenceNotifications(t *testing.T) {
	t.Parallel()
	const (
		online   = "🟢 **Alice** is now Online"
		away     = "🟡 **Alice** is now Away"
		sociable = "💬 **Alice** is now Sociable"
	)
	tests := []struct {
		name       string
		steps      []step
		wantPosts  []string
		wantStatus core.OnlineStatus
	}{
		{"comes online", []step{{0, dev("U-Alice", "d1", core.StatusOnline)}}, []string{online}, core.StatusOnline},
		{
			"a second device does not announce again",
			[]step{{0, dev("U-Alice", "d1", core.StatusOnline)}, {time.Second, dev("U-Alice", "d2", core.StatusBusy)}},
			[]string{online}, core.StatusOnline,
		},
		{
			"the dominant status wins",
			[]step{{0, dev("U-Alice", "d1", core.StatusAway)}, {time.Second, dev("U-Alice", "d2", core.StatusSociable)}},
			[]string{away}, core.StatusSociable,
		},
		{
			"announced with the dominant status of several devices",
			[]step{{0, dev("U-Alice", "d1", core.StatusInvisible)}, {0, dev("U-Alice", "d2", core.StatusSociable)}},
			[]string{sociable}, core.StatusSociable,
		},
		{
			"one device going offline leaves the other",
			[]step{{0, dev("U-Alice", "d1", core.StatusOnline)}, {0, dev("U-Alice", "d2", core.StatusBusy)}, {0, dev("U-Alice", "d1", core.StatusOffline)}},
			[]string{online}, core.StatusBusy,
		},
		{
			"back after the cooldown is announced again",
			[]step{{0, dev("U-Alice", "d1", core.StatusOnline)}, {time.Minute, dev("U-Alice", "d1", core.StatusOffline)}, {10 * time.Minute, dev("U-Alice", "d1", core.StatusAway)}},
			[]string{online, away}, core.StatusAway,
		},
		{
			"back within the cooldown is not",
			[]step{{0, dev("U-Alice", "d1", core.StatusOnline)}, {time.Minute, dev("U-Alice", "d1", core.StatusOffline)}, {8 * time.Minute, dev("U-Alice", "d1", core.StatusOnline)}},
			[]string{online}, core.StatusOnline,
		},
		{"invisible counts as offline", []step{{0, dev("U-Alice", "d1", core.StatusInvisible)}}, nil, core.StatusOffline},
		{
			"invisible to online is a transition",
			[]step{{0, dev("U-Alice", "d1", core.StatusInvisible)}, {time.Second, dev("U-Alice", "d1", core.StatusOnline)}},
			[]string{online}, core.StatusOnline,
		},
		{"a headless host's null status is offline", []step{{0, dev("U-Alice", "h1", "")}}, nil, core.StatusOffline},
		{
			"a device without update expires",
			[]step{{0, dev("U-Alice", "d1", core.StatusOnline)}, {10 * time.Minute, nil}},
			[]string{online}, core.StatusOffline,
		},
		{
			"after expiry, a status is a new transition",
			[]step{{0, dev("U-Alice", "d1", core.StatusOnline)}, {11 * time.Minute, dev("U-Alice", "d2", core.StatusOnline)}},
			[]string{online, online}, core.StatusOnline,
		},
		{
			"a refreshed device does not expire",
			[]step{{0, dev("U-Alice", "d1", core.StatusOnline)}, {9 * time.Minute, dev("U-Alice", "d1", core.StatusOnline)}, {9 * time.Minute, nil}},
			[]string{online}, core.StatusOnline,
		},
		{"another contact's subscription only", []step{{0, dev("U-Bob", "d1", core.StatusOnline)}}, nil, core.StatusOffline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newPresenceHarness(t)
			for _, s := range tt.steps {
				h.clock.Advance(s.advance)
				if s.dev != nil {
					h.devices(*s.dev)
				}
				h.settle() // each notification task runs at its own time
			}
			posts := h.discord.postsIn("C-N")
			if got := contents(posts); !reflect.DeepEqual(got, tt.wantPosts) {
				t.Errorf("posts %q, want %q", got, tt.wantPosts)
			}
			for _, p := range posts {
				if p.Username != "Resonite" || p.AvatarURL != "https://assets.resonite.com/Alice" {
					t.Errorf("post under %q with avatar %q", p.Username, p.AvatarURL)
				}
			}
			st, session, known := h.b.ContactPresence("U-Alice")
			if !known || st != tt.wantStatus || session != nil {
				t.Errorf("ContactPresence = %s %v %v, want %s", st, session, known, tt.wantStatus)
			}
			if n := h.b.Stats().Notifications; n != uint64(len(tt.wantPosts)) {
				t.Errorf("Stats().Notifications = %d", n)
			}
		})
	}
}

func TestContactPresenceUnknown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	if st, s, known := h.b.ContactPresence("U-Nobody"); known || st != "" || s != nil {
		t.Errorf("ContactPresence of a stranger = %s %v %v", st, s, known)
	}
	h.devices(status("U-Nobody", "d1", core.StatusInvisible))
	if st, _, known := h.b.ContactPresence("U-Nobody"); !known || st != core.StatusOffline {
		t.Errorf("ContactPresence of an invisible user = %s %v, want Offline", st, known)
	}
}

// TestPresenceWarmup: the statuses that every (re)connection brings (asked for before the
// connection is reported, seeded by it, and re-sent right after it) are not announced; later
// transitions are.
func TestPresenceWarmup(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.PresenceWarmup = warmup })
	h.addSub(core.Subscription{GuildID: "G1", ChannelID: "C-N", ContactID: core.AllContacts})
	h.start()
	// The hub's start-up sequence asks every contact for its status before it connects.
	h.devices(status("U-Alice", "d1", core.StatusOnline))
	alice := core.Contact{ID: "U-Alice", Username: "Alice", State: core.ContactFriend}
	bob := core.Contact{ID: "U-Bob", Username: "Bob", State: core.ContactFriend, Device: dev("U-Bob", "d1", core.StatusOnline)}
	h.b.HandleConnected(t.Context(), []core.Contact{alice, bob})
	h.clock.Advance(warmup - time.Second)
	h.devices(status("U-Carol", "d1", core.StatusOnline))
	h.settle()
	if got := contents(h.discord.postsIn("C-N")); len(got) != 0 {
		t.Fatalf("posts during warm-up: %q", got)
	}
	if st, _, _ := h.b.ContactPresence("U-Bob"); st != core.StatusOnline {
		t.Errorf("Bob seeded by the connection is %s, want Online", st)
	}
	h.clock.Advance(time.Second)
	h.devices(status("U-Dave", "d1", core.StatusAway))
	h.settle()
	// A reconnect starts another warm-up.
	h.b.HandleConnected(t.Context(), nil)
	h.devices(status("U-Erin", "d1", core.StatusOnline))
	h.clock.Advance(warmup)
	h.devices(status("U-Frank", "d1", core.StatusOnline))
	h.settle()
	want := []string{"🟡 **U-Dave** is now Away", "🟢 **U-Frank** is now Online"}
	if got := contents(h.discord.postsIn("C-N")); !reflect.DeepEqual(got, want) {
		t.Errorf("posts %q, want %q", got, want)
	}
}

func TestPresenceSubscriptions(t *testing.T) {
	t.Parallel()
	h := newPresenceHarness(t)
	h.addSub(core.Subscription{GuildID: "G1", ChannelID: "C-ALL", ContactID: core.AllContacts})
	h.addSub(core.Subscription{GuildID: "G1", ChannelID: "C-N", ContactID: core.AllContacts}) // C-N also has Alice by name
	h.devices(status("U-Alice", "d1", core.StatusOnline), status("U-Bob", "d1", core.StatusBusy))
	h.settle()
	if got, want := contents(h.discord.postsIn("C-ALL")), []string{"🟢 **Alice** is now Online", "🔴 **Bob** is now Busy"}; !reflect.DeepEqual(got, want) {
		t.Errorf("C-ALL %q, want %q", got, want)
	}
	if got, want := contents(h.discord.postsIn("C-N")), []string{"🟢 **Alice** is now Online", "🔴 **Bob** is now Busy"}; !reflect.DeepEqual(got, want) {
		t.Errorf("C-N %q, want %q (once per channel)", got, want)
	}
	// The cooldown is per channel: a channel subscribed since is told.
	h.devices(status("U-Alice", "d1", core.StatusOffline))
	h.addSub(core.Subscription{GuildID: "G1", ChannelID: "C-NEW", ContactID: "U-Alice"})
	h.clock.Advance(time.Minute)
	h.devices(status("U-Alice", "d1", core.StatusOnline))
	h.settle()
	if got := contents(h.discord.postsIn("C-NEW")); !reflect.DeepEqual(got, []string{"🟢 **Alice** is now Online"}) {
		t.Errorf("C-NEW %q", got)
	}
	if n := len(h.discord.postsIn("C-ALL")); n != 2 {
		t.Errorf("C-ALL got %d posts, the second Alice within the cooldown", n)
	}
	// The bridge's own account is never announced.
	h.devices(status(botID, "d1", core.StatusOnline))
	h.settle()
	if n := len(h.discord.postsIn("C-ALL")); n != 2 {
		t.Errorf("C-ALL got %d posts after the bridge's own status", n)
	}
}

// TestPresenceSession: the session a contact is in is resolved from the device's hint by
// Sessions, when the announcement is made and each time presence is asked.
func TestPresenceSession(t *testing.T) {
	t.Parallel()
	club := core.Session{ID: "S-U-Host:club", Name: "Club Night", URL: "https://go.resonite.com/session/S-U-Host:club"}
	inSession := func(hint string) core.Device {
		d := status("U-Alice", "d1", core.StatusOnline)
		d.SessionHint = hint
		return d
	}
	tests := []struct {
		name        string
		dev         core.Device
		wantPost    string
		wantSession bool
	}{
		{"resolved from the hint", inSession("hint-club"), "🟢 **Alice** is now Online in **Club Night** <https://go.resonite.com/session/S-U-Host:club>", true},
		{"a session never seen", inSession("hint-hidden"), "🟢 **Alice** is now Online", false},
		{"not in a session", inSession(""), "🟢 **Alice** is now Online", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newPresenceHarness(t)
			h.sessions.set("hint-club", club)
			h.sessions.set("hint-other", core.Session{ID: "S-other", Name: "Other"})
			h.devices(tt.dev)
			h.settle()
			if got := contents(h.discord.postsIn("C-N")); !reflect.DeepEqual(got, []string{tt.wantPost}) {
				t.Errorf("posts %q, want %q", got, tt.wantPost)
			}
			_, s, _ := h.b.ContactPresence("U-Alice")
			if (s != nil) != tt.wantSession || s != nil && s.ID != club.ID {
				t.Errorf("ContactPresence session %+v, want found=%v", s, tt.wantSession)
			}
			if !tt.wantSession {
				return
			}
			h.sessions.remove("hint-club")
			if _, s, _ := h.b.ContactPresence("U-Alice"); s != nil {
				t.Errorf("session %s still resolved after it was removed", s.ID)
			}
		})
	}
}

// TestPresenceFailedPostIsNotACooldown: a notification that could not be posted does not
// silence the next one.
func TestPresenceFailedPostIsNotACooldown(t *testing.T) {
	t.Parallel()
	h := newPresenceHarness(t)
	h.discord.postFn = func(_ context.Context, ch string, _ core.Post, call int) error {
		if ch == "C-N" && call == 1 {
			return errRetryable
		}
		return nil
	}
	h.devices(status("U-Alice", "d1", core.StatusOnline))
	h.settle()
	h.devices(status("U-Alice", "d1", core.StatusOffline))
	h.clock.Advance(time.Minute)
	h.devices(status("U-Alice", "d1", core.StatusOnline))
	h.settle()
	if got := contents(h.discord.postsIn("C-N")); !reflect.DeepEqual(got, []string{"🟢 **Alice** is now Online"}) {
		t.Errorf("posts %q", got)
	}
	if n := h.discord.callsIn("C-N"); n != 2 {
		t.Errorf("%d posts tried, want the failed one and its successor", n)
	}
	if st := h.b.Stats(); st.Notifications != 1 || st.LastError == "" {
		t.Errorf("stats %+v", st)
	}
}

func TestAutoAccept(t *testing.T) {
	t.Parallel()
	requested := core.Contact{ID: "U-New", Username: "Newcomer", State: core.ContactRequested}
	withStatus := requested
	withStatus.Device = dev("U-New", "d1", core.StatusOnline)
	accepted := core.Contact{ID: "U-Alice", Username: "Alice", State: core.ContactFriend}
	pending := core.Contact{ID: "U-Waiting", Username: "Waiting", State: core.ContactPending}
	tests := []struct {
		name      string
		on        bool
		contact   *core.Contact  // a contact that was added or changed
		connected []core.Contact // or the contact list of a connection
		want      []string
	}{
		{"incoming request accepted", true, &requested, nil, []string{"U-New"}},
		{"off: left alone", false, &requested, nil, nil},
		{"an accepted contact is not touched", true, &accepted, nil, nil},
		{"a request of the bridge's own is not accepted by it", true, &pending, nil, nil},
		{"requests waiting in the contact list at connect", true, nil, []core.Contact{accepted, withStatus}, []string{"U-New"}},
		{"off: not at connect either", false, nil, []core.Contact{withStatus}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(o *Options) { o.AutoAcceptContacts = tt.on })
			h.start()
			if tt.contact != nil {
				h.b.HandleContact(t.Context(), *tt.contact)
			} else {
				h.b.HandleConnected(t.Context(), tt.connected)
			}
			h.settle()
			if got := h.res.acceptedContacts(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("AcceptContact calls %v, want %v", got, tt.want)
			}
		})
	}
}
