package bridge

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

func status(user, device string, s resonite.OnlineStatus) resonite.UserStatus {
	return resonite.UserStatus{UserID: user, UserSessionID: device, OnlineStatus: s, CurrentSessionIndex: -1}
}

func statusEv(user, device string, s resonite.OnlineStatus) resonite.Event {
	return resonite.StatusUpdated{Status: status(user, device, s)}
}

func contactEv(id, name string) resonite.Event {
	return resonite.ContactUpdated{Contact: resonite.Contact{ID: id, ContactUsername: name, ContactStatus: resonite.ContactAccepted, Profile: &resonite.Profile{IconURL: "resdb:///" + name + ".webp"}}}
}

const warmup = 30 * time.Second

// newPresenceHarness runs a bridge that knows Alice and Bob, with friend-online subscriptions
// for Alice in C-N, past the warm-up of its first hub connection.
func newPresenceHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, func(o *Options) { o.PresenceWarmup = warmup })
	h.store.addSub(Subscription{ID: 1, GuildID: "G1", ChannelID: "C-N", ContactID: "U-Alice"})
	h.start()
	h.handle(contactEv("U-Alice", "Alice"), contactEv("U-Bob", "Bob"), resonite.Connected{})
	h.clock.Advance(warmup)
	return h
}

type step struct {
	advance time.Duration
	ev      resonite.Event
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
		wantStatus resonite.OnlineStatus
	}{
		{"comes online", []step{{0, statusEv("U-Alice", "d1", resonite.StatusOnline)}}, []string{online}, resonite.StatusOnline},
		{
			"a second device does not announce again",
			[]step{{0, statusEv("U-Alice", "d1", resonite.StatusOnline)}, {time.Second, statusEv("U-Alice", "d2", resonite.StatusBusy)}},
			[]string{online}, resonite.StatusOnline,
		},
		{
			"the dominant status wins",
			[]step{{0, statusEv("U-Alice", "d1", resonite.StatusAway)}, {time.Second, statusEv("U-Alice", "d2", resonite.StatusSociable)}},
			[]string{away}, resonite.StatusSociable,
		},
		{
			"announced with the dominant status of several devices",
			[]step{{0, statusEv("U-Alice", "d1", resonite.StatusInvisible)}, {0, statusEv("U-Alice", "d2", resonite.StatusSociable)}},
			[]string{sociable}, resonite.StatusSociable,
		},
		{
			"one device going offline leaves the other",
			[]step{{0, statusEv("U-Alice", "d1", resonite.StatusOnline)}, {0, statusEv("U-Alice", "d2", resonite.StatusBusy)}, {0, statusEv("U-Alice", "d1", resonite.StatusOffline)}},
			[]string{online}, resonite.StatusBusy,
		},
		{
			"back after the cooldown is announced again",
			[]step{{0, statusEv("U-Alice", "d1", resonite.StatusOnline)}, {time.Minute, statusEv("U-Alice", "d1", resonite.StatusOffline)}, {10 * time.Minute, statusEv("U-Alice", "d1", resonite.StatusAway)}},
			[]string{online, away}, resonite.StatusAway,
		},
		{
			"back within the cooldown is not",
			[]step{{0, statusEv("U-Alice", "d1", resonite.StatusOnline)}, {time.Minute, statusEv("U-Alice", "d1", resonite.StatusOffline)}, {8 * time.Minute, statusEv("U-Alice", "d1", resonite.StatusOnline)}},
			[]string{online}, resonite.StatusOnline,
		},
		{"invisible counts as offline", []step{{0, statusEv("U-Alice", "d1", resonite.StatusInvisible)}}, nil, resonite.StatusOffline},
		{
			"invisible to online is a transition",
			[]step{{0, statusEv("U-Alice", "d1", resonite.StatusInvisible)}, {time.Second, statusEv("U-Alice", "d1", resonite.StatusOnline)}},
			[]string{online}, resonite.StatusOnline,
		},
		{"a headless host's null status is offline", []step{{0, statusEv("U-Alice", "h1", "")}}, nil, resonite.StatusOffline},
		{
			"a device without update expires",
			[]step{{0, statusEv("U-Alice", "d1", resonite.StatusOnline)}, {10 * time.Minute, nil}},
			[]string{online}, resonite.StatusOffline,
		},
		{
			"after expiry, a status is a new transition",
			[]step{{0, statusEv("U-Alice", "d1", resonite.StatusOnline)}, {11 * time.Minute, statusEv("U-Alice", "d2", resonite.StatusOnline)}},
			[]string{online, online}, resonite.StatusOnline,
		},
		{
			"a refreshed device does not expire",
			[]step{{0, statusEv("U-Alice", "d1", resonite.StatusOnline)}, {9 * time.Minute, statusEv("U-Alice", "d1", resonite.StatusOnline)}, {9 * time.Minute, nil}},
			[]string{online}, resonite.StatusOnline,
		},
		{"another contact's subscription only", []step{{0, statusEv("U-Bob", "d1", resonite.StatusOnline)}}, nil, resonite.StatusOffline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newPresenceHarness(t)
			for _, s := range tt.steps {
				h.clock.Advance(s.advance)
				if s.ev != nil {
					h.handle(s.ev)
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
	h.handle(statusEv("U-Nobody", "d1", resonite.StatusInvisible))
	if st, _, known := h.b.ContactPresence("U-Nobody"); !known || st != resonite.StatusOffline {
		t.Errorf("ContactPresence of an invisible user = %s %v, want Offline", st, known)
	}
}

// TestPresenceWarmup: the statuses that every (re)connection brings (asked for before Connected,
// seeded by it, and re-sent right after it) are not announced; later transitions are.
func TestPresenceWarmup(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) { o.PresenceWarmup = warmup })
	h.store.addSub(Subscription{ID: 1, ChannelID: "C-N", ContactID: "all"})
	h.start()
	// The hub's start-up sequence asks every contact for its status before Connected.
	h.handle(statusEv("U-Alice", "d1", resonite.StatusOnline))
	alice := resonite.Contact{ID: "U-Alice", ContactUsername: "Alice", ContactStatus: resonite.ContactAccepted}
	bobStatus := status("U-Bob", "d1", resonite.StatusOnline)
	bob := resonite.Contact{ID: "U-Bob", ContactUsername: "Bob", ContactStatus: resonite.ContactAccepted, UserStatus: &bobStatus}
	h.handle(resonite.Connected{Contacts: []resonite.Contact{alice, bob}})
	h.clock.Advance(warmup - time.Second)
	h.handle(statusEv("U-Carol", "d1", resonite.StatusOnline))
	h.settle()
	if got := contents(h.discord.postsIn("C-N")); len(got) != 0 {
		t.Fatalf("posts during warm-up: %q", got)
	}
	if st, _, _ := h.b.ContactPresence("U-Bob"); st != resonite.StatusOnline {
		t.Errorf("Bob seeded by Connected is %s, want Online", st)
	}
	h.clock.Advance(time.Second)
	h.handle(statusEv("U-Dave", "d1", resonite.StatusAway))
	h.settle()
	// A reconnect starts another warm-up.
	h.handle(resonite.Connected{Reconnect: true})
	h.handle(statusEv("U-Erin", "d1", resonite.StatusOnline))
	h.clock.Advance(warmup)
	h.handle(statusEv("U-Frank", "d1", resonite.StatusOnline))
	h.settle()
	want := []string{"🟡 **U-Dave** is now Away", "🟢 **U-Frank** is now Online"}
	if got := contents(h.discord.postsIn("C-N")); !reflect.DeepEqual(got, want) {
		t.Errorf("posts %q, want %q", got, want)
	}
}

func TestPresenceSubscriptions(t *testing.T) {
	t.Parallel()
	h := newPresenceHarness(t)
	h.store.addSub(Subscription{ID: 2, ChannelID: "C-ALL", ContactID: "all"})
	h.store.addSub(Subscription{ID: 3, ChannelID: "C-N", ContactID: "all"}) // C-N also has Alice by name
	h.handle(statusEv("U-Alice", "d1", resonite.StatusOnline), statusEv("U-Bob", "d1", resonite.StatusBusy))
	h.settle()
	if got, want := contents(h.discord.postsIn("C-ALL")), []string{"🟢 **Alice** is now Online", "🔴 **Bob** is now Busy"}; !reflect.DeepEqual(got, want) {
		t.Errorf("C-ALL %q, want %q", got, want)
	}
	if got, want := contents(h.discord.postsIn("C-N")), []string{"🟢 **Alice** is now Online", "🔴 **Bob** is now Busy"}; !reflect.DeepEqual(got, want) {
		t.Errorf("C-N %q, want %q (once per channel)", got, want)
	}
	// The cooldown is per channel: a channel subscribed since is told.
	h.handle(statusEv("U-Alice", "d1", resonite.StatusOffline))
	h.store.addSub(Subscription{ID: 4, ChannelID: "C-NEW", ContactID: "U-Alice"})
	h.clock.Advance(time.Minute)
	h.handle(statusEv("U-Alice", "d1", resonite.StatusOnline))
	h.settle()
	if got := contents(h.discord.postsIn("C-NEW")); !reflect.DeepEqual(got, []string{"🟢 **Alice** is now Online"}) {
		t.Errorf("C-NEW %q", got)
	}
	if n := len(h.discord.postsIn("C-ALL")); n != 2 {
		t.Errorf("C-ALL got %d posts, the second Alice within the cooldown", n)
	}
	// The bridge's own account is never announced.
	h.handle(statusEv(botID, "d1", resonite.StatusOnline))
	h.settle()
	if n := len(h.discord.postsIn("C-ALL")); n != 2 {
		t.Errorf("C-ALL got %d posts after the bridge's own status", n)
	}
}

func TestPresenceSession(t *testing.T) {
	t.Parallel()
	club := resonite.SessionInfo{Name: "<color=red>Club</color> <b>Night</b>", SessionID: "S-U-Host:club"}
	inSession := func(device, sessionID string, idx int) resonite.Event {
		st := status("U-Alice", device, resonite.StatusOnline)
		st.HashSalt = "c2FsdA=="
		st.Sessions = []resonite.UserSessionMetadata{{SessionHash: resonite.SessionHash(sessionID, st.HashSalt), AccessLevel: resonite.AccessContacts}}
		st.CurrentSessionIndex = idx
		return resonite.StatusUpdated{Status: st}
	}
	tests := []struct {
		name        string
		ev          resonite.Event
		wantPost    string
		wantSession bool
	}{
		{"resolved by sessionHash", inSession("d1", club.SessionID, 0), "🟢 **Alice** is now Online in **Club Night** <https://go.resonite.com/session/S-U-Host:club>", true},
		{"a session never seen", inSession("d1", "S-hidden", 0), "🟢 **Alice** is now Online", false},
		{"not in a session", inSession("d1", club.SessionID, -1), "🟢 **Alice** is now Online", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newPresenceHarness(t)
			h.handle(resonite.SessionUpdated{Session: club}, resonite.SessionUpdated{Session: resonite.SessionInfo{SessionID: "S-other", Name: "Other"}})
			h.handle(tt.ev)
			h.settle()
			if got := contents(h.discord.postsIn("C-N")); !reflect.DeepEqual(got, []string{tt.wantPost}) {
				t.Errorf("posts %q, want %q", got, tt.wantPost)
			}
			_, s, _ := h.b.ContactPresence("U-Alice")
			if (s != nil) != tt.wantSession || s != nil && s.SessionID != club.SessionID {
				t.Errorf("ContactPresence session %+v, want found=%v", s, tt.wantSession)
			}
			if !tt.wantSession {
				return
			}
			h.handle(resonite.SessionRemoved{SessionID: club.SessionID})
			if _, s, _ := h.b.ContactPresence("U-Alice"); s != nil {
				t.Errorf("session %s still resolved after it was removed", s.SessionID)
			}
			h.handle(resonite.SessionUpdated{Session: club})
			ended := club
			ended.HasEnded = true
			h.handle(resonite.SessionUpdated{Session: ended})
			if _, s, _ := h.b.ContactPresence("U-Alice"); s != nil {
				t.Errorf("session %s still resolved after it ended", s.SessionID)
			}
		})
	}
}

// TestPresenceFailedPostIsNotACooldown: a notification that could not be posted does not
// silence the next one.
func TestPresenceFailedPostIsNotACooldown(t *testing.T) {
	t.Parallel()
	h := newPresenceHarness(t)
	h.discord.postFn = func(_ context.Context, ch string, _ Post, call int) error {
		if ch == "C-N" && call == 1 {
			return errRetryable
		}
		return nil
	}
	h.handle(statusEv("U-Alice", "d1", resonite.StatusOnline))
	h.settle()
	h.handle(statusEv("U-Alice", "d1", resonite.StatusOffline))
	h.clock.Advance(time.Minute)
	h.handle(statusEv("U-Alice", "d1", resonite.StatusOnline))
	h.settle()
	if got := contents(h.discord.postsIn("C-N")); !reflect.DeepEqual(got, []string{"🟢 **Alice** is now Online"}) {
		t.Errorf("posts %q", got)
	}
	if st := h.b.Stats(); st.Notifications != 1 || st.LastError == "" {
		t.Errorf("stats %+v", st)
	}
}

func TestAutoAccept(t *testing.T) {
	t.Parallel()
	requested := resonite.Contact{ID: "U-New", ContactUsername: "Newcomer", ContactStatus: resonite.ContactRequested}
	withStatus := requested
	st := status("U-New", "d1", resonite.StatusOnline)
	withStatus.UserStatus = &st
	accepted := resonite.Contact{ID: "U-Alice", ContactUsername: "Alice", ContactStatus: resonite.ContactAccepted}
	want := resonite.Contact{ID: "U-New", ContactUsername: "Newcomer", OwnerID: botID, ContactStatus: resonite.ContactAccepted}
	tests := []struct {
		name string
		on   bool
		ev   resonite.Event
		want []resonite.Contact
	}{
		{"incoming request accepted", true, resonite.ContactUpdated{Contact: requested}, []resonite.Contact{want}},
		{"off: left alone", false, resonite.ContactUpdated{Contact: requested}, nil},
		{"an accepted contact is not touched", true, resonite.ContactUpdated{Contact: accepted}, nil},
		{"requests waiting in the contact list at connect", true, resonite.Connected{Contacts: []resonite.Contact{accepted, withStatus}}, []resonite.Contact{want}},
		{"off: not at connect either", false, resonite.Connected{Contacts: []resonite.Contact{withStatus}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(o *Options) { o.AutoAcceptContacts = tt.on })
			h.start()
			h.handle(tt.ev)
			h.settle()
			if got := h.res.updatedContacts(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("UpdateContact calls %+v, want %+v", got, tt.want)
			}
		})
	}
}
