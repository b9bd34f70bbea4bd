package bridge

import (
	"context"
	"fmt"
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

// epoch is the fake clock's start (see newHarness); the tests' StatusChanged times count from it.
var epoch = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// changedAt is a status that changed at epoch+at by its sender's clock.
func changedAt(d core.Device, at time.Duration) core.Device {
	d.StatusChanged = epoch.Add(at)
	return d
}

// newPresenceHarness runs a bridge that knows Alice and Bob, with friend-online subscriptions
// for Alice in C-N, after its first hub connection.
func newPresenceHarness(t *testing.T, tweak func(*Options)) *harness {
	t.Helper()
	h := newHarness(t, tweak)
	if !h.clock.Now().Equal(epoch) {
		t.Fatalf("the fake clock starts at %v, the tests count from %v", h.clock.Now(), epoch)
	}
	h.addSub(core.Subscription{GuildID: "G1", ChannelID: "C-N", ContactID: "U-Alice"})
	h.start()
	h.b.HandleContact(t.Context(), contactOf("U-Alice", "Alice"))
	h.b.HandleContact(t.Context(), contactOf("U-Bob", "Bob"))
	h.b.HandleConnected(t.Context(), nil)
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
			h := newPresenceHarness(t, nil)
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

// pstep is one thing that happens to the presence model: time passes, a status arrives, the
// hub connection drops, or the hub (re)connects with its contact list.
type pstep struct {
	advance  time.Duration
	status   *core.Device
	drop     bool
	connect  bool
	contacts []core.Contact
}

func wait(d time.Duration) pstep { return pstep{advance: d} }
func recv(d core.Device) pstep   { return pstep{status: &d} }
func drop() pstep                { return pstep{drop: true} }
func connect(cs ...core.Contact) pstep {
	return pstep{connect: true, contacts: cs}
}

// listed is a contact of the contact list a connection brings, with the status it carries.
func listed(c core.Contact, d core.Device) core.Contact {
	c.Device = &d
	return c
}

// TestPresenceTransitions: a status is announced when it makes a contact visible and changed
// after everything the model knows of the contact; what the hub's start-up sequence re-sends
// (the contact list, every contact's status again) only seeds the model, and there is no time
// window after a connection.
func TestPresenceTransitions(t *testing.T) {
	t.Parallel()
	alice := func(s core.OnlineStatus, at time.Duration) core.Device {
		return changedAt(status("U-Alice", "d1", s), at)
	}
	aliceOn := func(device string, s core.OnlineStatus, at time.Duration) core.Device {
		return changedAt(status("U-Alice", device, s), at)
	}
	ac := contactOf("U-Alice", "Alice")
	const (
		online = "🟢 **Alice** is now Online"
		away   = "🟡 **Alice** is now Away"
	)
	tests := []struct {
		name       string
		cooldown   time.Duration // NotifyCooldown when set
		steps      []pstep
		wantPosts  []string
		wantStatus core.OnlineStatus
	}{
		{
			"online before the daemon's first connection",
			0,
			[]pstep{recv(alice(core.StatusOnline, -time.Hour)), connect(listed(ac, alice(core.StatusOnline, -time.Hour))), recv(alice(core.StatusOnline, -time.Hour))},
			nil, core.StatusOnline,
		},
		{
			"online in the first connection's contact list only",
			0,
			[]pstep{connect(listed(ac, alice(core.StatusOnline, -time.Hour)))},
			nil, core.StatusOnline,
		},
		{
			"a status answer after the first connection that changed before it",
			0,
			[]pstep{connect(), wait(time.Second), recv(alice(core.StatusOnline, -5*time.Minute))},
			nil, core.StatusOnline,
		},
		{
			"comes online right after the first connection",
			0,
			[]pstep{connect(), recv(alice(core.StatusOnline, time.Second))},
			[]string{online}, core.StatusOnline,
		},
		{
			"a reconnect re-sends the statuses",
			0,
			[]pstep{
				connect(), wait(time.Second), recv(alice(core.StatusOnline, time.Second)),
				wait(5 * time.Minute), recv(alice(core.StatusOnline, time.Second)), // re-broadcast
				wait(6 * time.Minute), // past the cooldown
				drop(), recv(alice(core.StatusOnline, time.Second)), connect(listed(ac, alice(core.StatusOnline, time.Second))),
				recv(alice(core.StatusOnline, time.Second)),
			},
			[]string{online}, core.StatusOnline,
		},
		{
			"a reconnect after an outage longer than the expiry",
			0,
			[]pstep{
				connect(), wait(time.Second), recv(alice(core.StatusOnline, time.Second)),
				drop(), wait(30 * time.Minute),
				recv(alice(core.StatusOnline, time.Second)), connect(listed(ac, alice(core.StatusOnline, time.Second))),
				recv(alice(core.StatusOnline, time.Second)),
			},
			[]string{online}, core.StatusOnline,
		},
		{
			"comes online right after a reconnect",
			time.Minute,
			[]pstep{
				connect(), wait(time.Second), recv(alice(core.StatusOnline, time.Second)),
				wait(time.Minute), recv(alice(core.StatusOffline, 61*time.Second)),
				wait(time.Minute), drop(), connect(listed(ac, alice(core.StatusOffline, 61*time.Second))),
				recv(alice(core.StatusOnline, 121*time.Second)),
			},
			[]string{online, online}, core.StatusOnline,
		},
		{
			"comes online right after a reconnect, forgotten while offline",
			0,
			[]pstep{
				connect(), wait(time.Second), recv(alice(core.StatusOnline, time.Second)),
				wait(time.Minute), recv(alice(core.StatusOffline, 61*time.Second)),
				wait(11 * time.Minute), drop(), connect(),
				recv(alice(core.StatusAway, 12*time.Minute+time.Second)),
			},
			[]string{online, away}, core.StatusAway,
		},
		{
			"came online during the outage, answered before the connection is reported",
			time.Minute,
			[]pstep{
				connect(), wait(time.Second), recv(alice(core.StatusOnline, time.Second)),
				wait(time.Minute), recv(alice(core.StatusOffline, 61*time.Second)),
				drop(), wait(time.Minute), recv(alice(core.StatusOnline, 90*time.Second)),
				connect(listed(ac, alice(core.StatusOnline, 90*time.Second))), recv(alice(core.StatusOnline, 90*time.Second)),
			},
			[]string{online, online}, core.StatusOnline,
		},
		{
			"an older status arriving late is ignored",
			time.Minute,
			[]pstep{
				connect(), wait(time.Second), recv(alice(core.StatusOnline, time.Second)),
				wait(2 * time.Minute), recv(alice(core.StatusOffline, 121*time.Second)),
				wait(time.Second), recv(alice(core.StatusOnline, time.Second)),
			},
			[]string{online}, core.StatusOffline,
		},
		{
			"an older status of an online device arriving late is ignored",
			0,
			[]pstep{connect(), wait(time.Second), recv(alice(core.StatusOnline, time.Second)), recv(alice(core.StatusAway, 0))},
			[]string{online}, core.StatusOnline,
		},
		{
			"an older contact list does not undo a newer status",
			time.Minute,
			[]pstep{
				connect(), wait(time.Second), recv(alice(core.StatusOnline, time.Second)),
				wait(2 * time.Minute), recv(alice(core.StatusOffline, 121*time.Second)),
				drop(), connect(listed(ac, alice(core.StatusOnline, time.Second))),
			},
			[]string{online}, core.StatusOffline,
		},
		{
			"another device whose status is older still counts",
			0,
			[]pstep{
				connect(), wait(time.Second), recv(aliceOn("d1", core.StatusOnline, time.Second)),
				recv(aliceOn("d2", core.StatusBusy, -time.Hour)), recv(aliceOn("d1", core.StatusOffline, 2*time.Second)),
			},
			[]string{online}, core.StatusBusy,
		},
		{
			"the cooldown holds",
			0,
			[]pstep{
				connect(), wait(time.Second), recv(alice(core.StatusOnline, time.Second)),
				wait(time.Minute), recv(alice(core.StatusOffline, 61*time.Second)),
				wait(7 * time.Minute), recv(alice(core.StatusOnline, 8*time.Minute+time.Second)), // within: silent
				wait(3 * time.Minute), recv(alice(core.StatusOffline, 11*time.Minute+time.Second)),
				wait(time.Second), recv(alice(core.StatusAway, 11*time.Minute+2*time.Second)), // past it
			},
			[]string{online, away}, core.StatusAway,
		},
	}
	for _, tt := range tests {
		// One after another: each case is quick, and the package has enough parallel tests.
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) {
				if tt.cooldown != 0 {
					o.NotifyCooldown = tt.cooldown
				}
			})
			h.addSub(core.Subscription{GuildID: "G1", ChannelID: "C-N", ContactID: core.AllContacts})
			h.start()
			h.b.HandleContact(t.Context(), ac)
			for _, s := range tt.steps {
				h.clock.Advance(s.advance)
				switch {
				case s.status != nil:
					h.devices(*s.status)
				case s.drop:
					h.b.HandleDisconnected(t.Context())
				case s.connect:
					h.b.HandleConnected(t.Context(), s.contacts)
				}
				h.settle() // each notification task runs at its own time
			}
			if got := contents(h.discord.postsIn("C-N")); !reflect.DeepEqual(got, tt.wantPosts) {
				t.Errorf("posts %q, want %q", got, tt.wantPosts)
			}
			if st, _, _ := h.b.ContactPresence("U-Alice"); st != tt.wantStatus {
				t.Errorf("ContactPresence = %s, want %s", st, tt.wantStatus)
			}
		})
	}
}

// TestPresenceForgets: the model keeps no user that is offline or expired and past the
// cooldown, however many contacts' statuses it saw; what it forgot and hears again is not news.
func TestPresenceForgets(t *testing.T) {
	t.Parallel()
	h := newPresenceHarness(t, nil)
	const strangers = 200 // contacts nobody subscribed to
	for i := range strangers {
		h.b.HandleContact(t.Context(), contactOf(fmt.Sprintf("U-S%d", i), fmt.Sprintf("S%d", i)))
	}
	for i := range strangers {
		s := core.StatusOnline
		if i%3 == 0 {
			s = core.StatusInvisible
		}
		h.devices(changedAt(status(fmt.Sprintf("U-S%d", i), "d1", s), time.Second))
	}
	h.devices(changedAt(status("U-Alice", "d1", core.StatusOnline), time.Second))
	h.settle()
	for i := range strangers / 2 {
		h.devices(changedAt(status(fmt.Sprintf("U-S%d", i), "d1", core.StatusOffline), time.Minute))
	}
	sizes := func() (users, devices, announced int) {
		p := h.b.presence
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, u := range p.users {
			devices += len(u.devices)
		}
		return len(p.users), devices, len(p.announced)
	}
	if u, _, a := sizes(); u != strangers+1 || a != 1 {
		t.Fatalf("model holds %d users and %d announcements, want %d and 1", u, a, strangers+1)
	}
	// Bob stays online throughout; everyone else goes offline or expires.
	for i := range 3 {
		h.clock.Advance(5 * time.Minute)
		h.devices(changedAt(status("U-Bob", "d1", core.StatusOnline), 0))
		if i == 0 {
			h.devices(changedAt(status("U-Alice", "d1", core.StatusOffline), 5*time.Minute))
		}
	}
	if u, d, a := sizes(); u != 1 || d != 1 || a != 0 {
		t.Errorf("model holds %d users, %d devices and %d announcements, want Bob's only", u, d, a)
	}
	// A forgotten status that arrives again is not news; a real change is.
	h.devices(changedAt(status("U-Alice", "d1", core.StatusOnline), time.Second))
	h.settle()
	if got := contents(h.discord.postsIn("C-N")); len(got) != 1 {
		t.Errorf("posts %q after a forgotten status arrived again, want the first one only", got)
	}
	h.devices(changedAt(status("U-Alice", "d1", core.StatusOffline), 15*time.Minute+time.Second))
	h.devices(changedAt(status("U-Alice", "d1", core.StatusOnline), 15*time.Minute+2*time.Second))
	h.settle()
	if got, want := contents(h.discord.postsIn("C-N")), []string{"🟢 **Alice** is now Online", "🟢 **Alice** is now Online"}; !reflect.DeepEqual(got, want) {
		t.Errorf("posts %q, want %q", got, want)
	}
}

func TestPresenceSubscriptions(t *testing.T) {
	t.Parallel()
	h := newPresenceHarness(t, nil)
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
			h := newPresenceHarness(t, nil)
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
	h := newPresenceHarness(t, nil)
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

// TestPresenceIgnoresStrangers: statuses of users who are not accepted contacts are not kept,
// announced (not even by "all") nor shown; a contact announced by "all" must have consented in
// the subscription's guild.
func TestPresenceIgnoresStrangers(t *testing.T) {
	t.Parallel()
	h := newPresenceHarness(t, nil)
	h.addSub(core.Subscription{GuildID: "G1", ChannelID: "C-ALL", ContactID: core.AllContacts})
	h.addSub(core.Subscription{GuildID: "G2", ChannelID: "C-ALL2", ContactID: core.AllContacts})
	h.b.HandleContact(t.Context(), core.Contact{ID: "U-Req", Username: "Req", State: core.ContactRequested})
	h.devices(status("U-Stranger", "d1", core.StatusOnline), status("U-Req", "d1", core.StatusOnline),
		status("U-Alice", "d1", core.StatusOnline))
	h.settle()
	if got, want := contents(h.discord.postsIn("C-ALL")), []string{"🟢 **Alice** is now Online"}; !reflect.DeepEqual(got, want) {
		t.Errorf("C-ALL %q, want %q: only the consenting contact", got, want)
	}
	if got := contents(h.discord.postsIn("C-ALL2")); len(got) != 0 {
		t.Errorf("C-ALL2 of a guild Alice did not consent in got %q", got)
	}
	for _, id := range []string{"U-Stranger", "U-Req"} {
		if st, _, _ := h.b.ContactPresence(id); st.Visible() {
			t.Errorf("ContactPresence(%s) = %s: a non-contact's status was kept", id, st)
		}
	}
}
