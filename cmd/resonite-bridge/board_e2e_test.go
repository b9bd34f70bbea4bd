package main

// End-to-end tests of /board and /follow: the daemon as wire.go builds it, the fakes, real
// PostgreSQL; the board's 15 s throttle runs on a manual clock, so nothing waits 15 s.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bot/discordtest"
	"github.com/resonite-bridge/resonite-bridge/bridge/clocktest"
	"github.com/resonite-bridge/resonite-bridge/resonite"
)

const (
	e2eBoardSession = "S-7f3e2a10-board"
	e2eBoardSalt    = "salt-board"
	e2eMember       = "720000000000000001"
)

// boardWorld is an e2e world with a manual board clock and Alice, Bob and the extra contacts
// consenting in the guild, announced in e2eNotify.
type boardWorld struct {
	*e2e
	clock *clocktest.Clock
	probe boardProbe
	marks int // settle's markers so far
}

// boardProbe follows bridge.Options.BoardProbe: whether the board loop looked at every change.
type boardProbe struct {
	mu      sync.Mutex
	idle    bool
	changed discordtest.Signal
}

func (p *boardProbe) set(idle bool) {
	p.mu.Lock()
	p.idle = idle
	p.mu.Unlock()
	p.changed.Notify()
}

func (p *boardProbe) isIdle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idle
}

func newBoardWorld(t *testing.T, extra ...string) *boardWorld {
	t.Helper()
	// Auto-accept makes marker contact requests a way to wait for the bridge (settle).
	w := &boardWorld{e2e: newE2E(t, "RESONITE_AUTO_ACCEPT_CONTACTS=true"), clock: clocktest.New(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))}
	w.tune = func(o *partOptions) {
		e2eTune(o)
		o.Bridge.BoardClock, o.Bridge.BoardProbe = w.clock, w.probe.set
	}
	for _, name := range extra {
		id := "U-" + name
		w.rf.AddUser(resonite.User{ID: id, Username: name}, "")
		w.rf.AddContact(e2eBridgeID, resonite.Contact{ID: id, ContactUsername: name, ContactStatus: resonite.ContactAccepted, IsAccepted: true})
		w.rf.AddContact(id, resonite.Contact{ID: e2eBridgeID, ContactUsername: "BridgeBot", ContactStatus: resonite.ContactAccepted, IsAccepted: true})
	}
	w.start()
	for _, c := range append([]string{"Alice", "Bob"}, extra...) {
		w.consent(e2eGuild, "U-"+c)
		f := w.dc.Interact(t, discordtest.Command(e2eGuild, e2eNotify, "notify", discordtest.Sub("add", discordtest.O("contact", c)))).Final(t)
		if !strings.Contains(f.Content, "now announces") {
			t.Fatalf("/notify add %s answered %q", c, f.Content)
		}
	}
	return w
}

// status pushes one device status of a contact; inSession puts it in the board session.
func (w *boardWorld) status(user string, online resonite.OnlineStatus, device resonite.OutputDevice, inSession bool) {
	st := resonite.UserStatus{UserID: user, UserSessionID: user + "-dev", OnlineStatus: online,
		SessionType: resonite.SessionTypeGraphicalClient, OutputDevice: device, IsPresent: true,
		LastStatusChange: resonite.NewTime(time.Now()), HashSalt: e2eBoardSalt, CurrentSessionIndex: -1}
	if inSession {
		st.Sessions = []resonite.UserSessionMetadata{{SessionHash: resonite.SessionHash(e2eBoardSession, e2eBoardSalt), AccessLevel: resonite.AccessLevel("Anyone")}}
		st.CurrentSessionIndex = 0
	}
	w.rf.Push(e2eBridgeID, "ReceiveStatusUpdate", st)
}

// statusIn pushes a VR status of a contact in a session.
func (w *boardWorld) statusIn(user string, online resonite.OnlineStatus, sessionID string) {
	w.rf.Push(e2eBridgeID, "ReceiveStatusUpdate", resonite.UserStatus{UserID: user, UserSessionID: user + "-dev",
		OnlineStatus: online, SessionType: resonite.SessionTypeGraphicalClient, OutputDevice: resonite.DeviceVR, IsPresent: true,
		LastStatusChange: resonite.NewTime(time.Now()), HashSalt: e2eBoardSalt, CurrentSessionIndex: 0,
		Sessions: []resonite.UserSessionMetadata{{SessionHash: resonite.SessionHash(sessionID, e2eBoardSalt), AccessLevel: resonite.AccessLevel("Anyone")}}})
}

// processed pushes hub events and waits until the bridge handled them and the board loop
// looked at what they changed: it wrote the boards, or waits for the throttle.
func (w *boardWorld) processed(push func()) {
	w.t.Helper()
	push()
	w.settle()
	w.waitBoth("the board loop to look at the change", w.probe.isIdle)
}

// waitBoth waits on changes of the Discord fake and of the board probe.
func (w *boardWorld) waitBoth(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.NewTimer(discordtest.WaitTimeout(w.t))
	defer deadline.Stop()
	for {
		dc, pr := w.dc.Changed(), w.probe.changed.Changed() // before cond: a change in between still wakes
		if cond() {
			return
		}
		select {
		case <-dc:
		case <-pr:
		case <-deadline.C:
			for _, c := range w.boardWrites() {
				w.t.Logf("write %s %d %.300s", c.Method, c.Status, c.Body)
			}
			w.t.Fatalf("gave up waiting for %s\n%s", what, w.d.logs.String())
		}
	}
}

// boardWrites are the bot's posts and edits of messages in the board channel.
func (w *boardWorld) boardWrites() []discordtest.Call {
	var out []discordtest.Call
	for _, c := range w.dc.Calls() {
		if strings.HasPrefix(c.Path, "/api/v9/channels/"+e2eChannel+"/messages") && (c.Method == "POST" || c.Method == "PATCH") {
			out = append(out, c)
		}
	}
	return out
}

// boards returns the board messages in the channel, newest first.
func (w *boardWorld) boards() []*discordgo.Message {
	var out []*discordgo.Message
	for _, m := range w.dc.ChannelMessages(e2eChannel) {
		if m.Author != nil && m.Author.ID == w.dc.BotUserID && strings.Contains(m.Content, "Online in Resonite") {
			out = append(out, m)
		}
	}
	return out
}

// board waits until exactly one board message holds every want, and returns it.
func (w *boardWorld) board(want ...string) *discordgo.Message {
	w.t.Helper()
	var got *discordgo.Message
	w.waitBoth("a board showing "+strings.Join(want, ", "), func() bool {
		bs := w.boards()
		if len(bs) != 1 {
			return false
		}
		// The fake records a call after it answered: the write must be in the record too, so
		// that the counts read next include it.
		var last string
		for _, c := range w.boardWrites() {
			if c.Status == http.StatusOK {
				last, _ = c.JSON()["content"].(string)
			}
		}
		for _, s := range want {
			if !strings.Contains(bs[0].Content, s) || !strings.Contains(last, s) {
				return false
			}
		}
		got = bs[0]
		return true
	})
	return got
}

func (w *boardWorld) count(method string) int {
	n := 0
	for _, c := range w.boardWrites() {
		if c.Method == method {
			n++
		}
	}
	return n
}

func TestE2EBoard(t *testing.T) {
	t.Parallel()
	w := newBoardWorld(t)
	w.rf.Push(e2eBridgeID, "ReceiveSessionUpdate", resonite.SessionInfo{SessionID: e2eBoardSession, Name: "Alice's <b>Home</b>", ActiveUsers: 1, MaxUsers: 8})
	w.status("U-Alice", resonite.StatusSociable, resonite.DeviceVR, true)
	w.settle()

	// Created: one message listing the consenting contacts online, with the session's link.
	f := w.dc.Interact(t, discordtest.Command(e2eGuild, e2eChannel, "board", discordtest.Sub("start"))).Final(t)
	if !strings.Contains(f.Content, "Board started") || !f.Ephemeral() {
		t.Fatalf("/board start answered %q (ephemeral %v)", f.Content, f.Ephemeral())
	}
	first := w.board("💬 **Alice** · VR · [Alice's Home](<https://go.resonite.com/session/"+e2eBoardSession+">)", "1 of 2", "updated <t:")
	if strings.Contains(first.Content, "Bob") {
		t.Errorf("the board shows Bob, who is offline: %q", first.Content)
	}
	if f := w.dc.Interact(t, discordtest.Command(e2eGuild, e2eChannel, "board", discordtest.Sub("start"))).Final(t); !strings.Contains(f.Content, "has a board already") {
		t.Errorf("a second /board start answered %q", f.Content)
	}

	// Edited on change, not before 15 s after the last write.
	w.processed(func() { w.status("U-Bob", resonite.StatusBusy, resonite.DeviceScreen, false) })
	if n := w.count("PATCH"); n != 0 {
		t.Fatalf("%d edits within 15 s of the post", n)
	}
	w.clock.Advance(15 * time.Second)
	b := w.board("🔴 **Bob** · desktop", "2 of 2")
	if b.ID != first.ID {
		t.Fatalf("the board moved to message %s, want %s edited", b.ID, first.ID)
	}
	if i, j := strings.Index(b.Content, "Alice"), strings.Index(b.Content, "Bob"); i > j {
		t.Errorf("Sociable Alice is not listed before Busy Bob: %q", b.Content)
	}

	// Churn: ten changes within the interval make no edit; the next one shows the latest.
	states := []resonite.OnlineStatus{resonite.StatusOnline, resonite.StatusAway}
	for i := range 10 {
		w.processed(func() { w.status("U-Bob", states[i%2], resonite.DeviceScreen, false) })
		w.clock.Advance(time.Second)
	}
	if n := w.count("PATCH"); n != 1 {
		t.Fatalf("%d edits after ten changes within 15 s, want the one before them", n)
	}
	w.clock.Advance(5 * time.Second)
	w.board("🟡 **Bob** · desktop")
	if n := w.count("PATCH"); n != 2 {
		t.Errorf("%d edits, want 2", n)
	}

	// Only on change: a status that shows the same board writes nothing, even after 15 s.
	w.processed(func() { w.status("U-Bob", resonite.StatusAway, resonite.DeviceScreen, false) })
	w.clock.Advance(15 * time.Second)
	w.processed(func() {})
	if n := w.count("PATCH"); n != 2 {
		t.Errorf("%d edits after a status that changed nothing on the board, want 2", n)
	}

	// Invisible is offline to everyone else.
	w.processed(func() { w.status("U-Bob", resonite.StatusInvisible, resonite.DeviceScreen, false) })
	if b := w.board("1 of 2"); strings.Contains(b.Content, "Bob") {
		t.Errorf("an invisible contact is on the board: %q", b.Content)
	}

	// Recreated when deleted: seen on the gateway, and found by a 404 on the next edit.
	old := w.board().ID
	w.dc.RemoveMessage(e2eChannel, old, true)
	w.clock.Advance(15 * time.Second)
	recreated := w.board("Alice")
	if recreated.ID == old {
		t.Fatal("the board was not posted again")
	}
	w.dc.RemoveMessage(e2eChannel, recreated.ID, false)
	w.processed(func() { w.status("U-Bob", resonite.StatusOnline, resonite.DeviceScreen, false) })
	w.clock.Advance(15 * time.Second)
	again := w.board("🟢 **Bob**")
	if again.ID == recreated.ID {
		t.Fatal("the board deleted without a gateway event was not posted again")
	}

	// Kept across a restart: the same message is edited.
	posts := w.count("POST")
	w.stop()
	w.start()
	// The hub sends the statuses again to a new connection (the fake only when pushed).
	w.processed(func() {
		w.status("U-Alice", resonite.StatusSociable, resonite.DeviceVR, true)
		w.status("U-Bob", resonite.StatusBusy, resonite.DeviceScreen, false)
	})
	w.clock.Advance(15 * time.Second)
	if b := w.board("💬 **Alice**", "🔴 **Bob**", "2 of 2"); b.ID != again.ID {
		t.Errorf("after the restart the board is message %s, want %s", b.ID, again.ID)
	}
	if n := w.count("POST"); n != posts {
		t.Errorf("the restarted daemon posted %d new boards", n-posts)
	}

	// Stopped: the message goes, and no change brings it back.
	if f := w.dc.Interact(t, discordtest.Command(e2eGuild, e2eChannel, "board", discordtest.Sub("stop"))).Final(t); !strings.Contains(f.Content, "Board stopped") {
		t.Fatalf("/board stop answered %q", f.Content)
	}
	w.waitBoth("the board's message deleted", func() bool { return len(w.boards()) == 0 })
	writes := len(w.boardWrites())
	w.processed(func() { w.status("U-Alice", resonite.StatusOnline, resonite.DeviceVR, false) })
	w.clock.Advance(time.Minute)
	w.processed(func() {})
	if n := len(w.boardWrites()); n != writes {
		t.Errorf("%d board writes after /board stop", n-writes)
	}
	if f := w.dc.Interact(t, discordtest.Command(e2eGuild, e2eChannel, "board", discordtest.Sub("stop"))).Final(t); !strings.Contains(f.Content, "no board") {
		t.Errorf("a second /board stop answered %q", f.Content)
	}
}

// TestE2EBoardRequestsUnderChurn measures the Discord requests of one board during five
// simulated minutes with a status change every second (the closing note's figure).
func TestE2EBoardRequestsUnderChurn(t *testing.T) {
	t.Parallel()
	w := newBoardWorld(t)
	w.status("U-Alice", resonite.StatusOnline, resonite.DeviceVR, false)
	w.settle()
	w.dc.Interact(t, discordtest.Command(e2eGuild, e2eChannel, "board", discordtest.Sub("start"))).Final(t)
	w.board("Alice")
	before := len(w.dc.Calls())
	writesBefore := len(w.boardWrites())
	const seconds = 300
	states := []resonite.OnlineStatus{resonite.StatusBusy, resonite.StatusOnline, resonite.StatusAway, resonite.StatusSociable}
	emoji := []string{"🔴", "🟢", "🟡", "💬"}
	// Each second Alice changes status and moves to another session, so that every state
	// differs from every earlier one and each look of the board sees news.
	for i := range seconds {
		id := fmt.Sprintf("S-churn-%d", i)
		w.processed(func() {
			w.rf.Push(e2eBridgeID, "ReceiveSessionUpdate", resonite.SessionInfo{SessionID: id, Name: fmt.Sprintf("Room %d", i)})
			w.statusIn("U-Alice", states[i%len(states)], id)
		})
		w.clock.Advance(time.Second)
	}
	w.clock.Advance(15 * time.Second) // the last change shows
	w.board(fmt.Sprintf("%s **Alice** · VR · [Room %d]", emoji[(seconds-1)%len(states)], seconds-1))
	calls := w.dc.Calls()[before:]
	writes := len(w.boardWrites()) - writesBefore
	t.Logf("board: %d Discord requests in all (%d board edits) for %d status changes over %d simulated seconds",
		len(calls), writes, seconds, seconds+15)
	// One edit per 15 s: 20 in 300 s, and the last change after them.
	if writes < seconds/15 || writes > seconds/15+1 {
		t.Errorf("%d board edits for %d s of churn, want %d or %d (one per 15 s)", writes, seconds, seconds/15, seconds/15+1)
	}
	if len(calls) != writes {
		t.Errorf("%d Discord requests, want only the %d edits", len(calls), writes)
	}
}

func TestE2EFollow(t *testing.T) {
	t.Parallel()
	w := newBoardWorld(t, "Carol")
	follow := func(user, contact string) discordtest.Reply {
		t.Helper()
		in := discordtest.Command(e2eGuild, e2eChannel, "follow", discordtest.O("contact", contact))
		in.UserID, in.Permissions = user, discordgo.PermissionSendMessages
		return w.dc.Interact(t, in).Final(t)
	}
	// Autocomplete offers all and the consenting contacts.
	ac := discordtest.Autocomplete(e2eGuild, e2eChannel, "follow", discordtest.Focused("contact", ""))
	ac.UserID, ac.Permissions = e2eMember, discordgo.PermissionSendMessages
	if got := w.dc.Interact(t, ac).Callback().Choices; len(got) != 4 || got[0].Value != "all" {
		t.Errorf("autocomplete offered %v, want all, Alice, Bob and Carol", got)
	}
	if r := follow(e2eMember, "Alice"); !strings.Contains(r.Content, "On:") || !r.Ephemeral() {
		t.Fatalf("/follow Alice answered %q", r.Content)
	}
	if r := follow(e2eMember, "Nobody"); !strings.Contains(r.Content, "not among") {
		t.Errorf("/follow of a contact without consent answered %q", r.Content)
	}
	w.rf.Push(e2eBridgeID, "ReceiveSessionUpdate", resonite.SessionInfo{SessionID: e2eBoardSession, Name: "Alice's Home", ActiveUsers: 1, MaxUsers: 8})
	online := func(user string) {
		w.status(user, resonite.StatusOffline, resonite.DeviceVR, false)
		w.status(user, resonite.StatusOnline, resonite.DeviceVR, true)
		w.settle() // the notice's side task ran too
	}
	// Statuses before the hub's start-up sequence ended are the baseline, not news: come
	// online until it counts.
	for round := 0; len(w.dc.DMs(e2eMember)) == 0; round++ {
		if round == 50 {
			t.Fatal("no direct message")
		}
		online("U-Alice")
	}
	if dm := w.dc.DMs(e2eMember)[0].Content; !strings.Contains(dm, "**Alice** is now Online in **Alice's Home** <https://go.resonite.com/session/"+e2eBoardSession+">") {
		t.Errorf("direct message %q, want Alice online with the session's link", dm)
	}
	// Within 10 minutes Alice coming online again is not told again.
	online("U-Alice")
	if n := len(w.dc.DMs(e2eMember)); n != 1 {
		t.Errorf("%d direct messages for Alice coming online twice within 10 minutes, want 1", n)
	}

	// Toggled off: Bob coming online sends nothing, nor does Alice once it is off.
	if r := follow(e2eMember, "Alice"); !strings.Contains(r.Content, "Off:") {
		t.Fatalf("the second /follow Alice answered %q", r.Content)
	}
	online("U-Bob")
	if n := len(w.dc.DMs(e2eMember)); n != 1 {
		t.Errorf("%d direct messages after /follow was turned off, want 1", n)
	}

	// Closed DMs: the member is told once in the channel where they ran /follow, pinging only
	// them, and after three refused notices the follow is gone.
	const closed = "720000000000000002"
	w.dc.CloseDMs(closed, true)
	if r := follow(closed, "all"); !strings.Contains(r.Content, "On:") {
		t.Fatalf("/follow all answered %q", r.Content)
	}
	tell := func() []*discordgo.Message {
		var out []*discordgo.Message
		for _, m := range w.dc.ChannelMessages(e2eChannel) {
			if strings.Contains(m.Content, "<@"+closed+">") {
				out = append(out, m)
			}
		}
		return out
	}
	refused := func(n int) {
		t.Helper()
		w.dc.WaitCalls(t, n, func(c discordtest.Call) bool { return c.Method == "POST" && c.Status == http.StatusForbidden })
	}
	online("U-Bob")
	refused(1)
	if n := len(tell()); n != 1 {
		t.Fatalf("the member was told %d times that their DMs are closed, want once", n)
	}
	call := w.dc.WaitCalls(t, 1, func(c discordtest.Call) bool {
		return c.Method == "POST" && strings.Contains(c.Path, "/channels/"+e2eChannel+"/") && strings.Contains(string(c.Body), closed)
	})[0]
	if am, _ := call.JSON()["allowed_mentions"].(map[string]any); am == nil || len(am["parse"].([]any)) != 0 || len(am["users"].([]any)) != 1 {
		t.Errorf("the note's allowed_mentions = %v, want only the member", call.JSON()["allowed_mentions"])
	}
	online("U-Alice")
	refused(2)
	if n := len(tell()); n != 1 {
		t.Errorf("after a second refused notice the member was told %d times, want once", n)
	}
	online("U-Carol")
	refused(3)
	// Dropped: /follow all starts a new follow instead of turning it off.
	if r := follow(closed, "all"); !strings.Contains(r.Content, "On:") {
		t.Errorf("after three refused notices /follow all answered %q, want a new follow", r.Content)
	}
}

// settle waits until the bridge handled every hub event pushed so far and ran the side tasks
// they queued: an accepted contact request is handled after them, in order.
func (w *boardWorld) settle() {
	w.t.Helper()
	w.marks++
	id := fmt.Sprintf("U-Marker%d", w.marks)
	w.rf.AddUser(resonite.User{ID: id, Username: id}, "")
	w.rf.Push(e2eBridgeID, "ContactAddedOrUpdated", resonite.Contact{ID: id, ContactUsername: id, OwnerID: e2eBridgeID, ContactStatus: resonite.ContactRequested})
	ctx, cancel := context.WithTimeout(context.Background(), discordtest.WaitTimeout(w.t))
	defer cancel()
	for {
		ch := w.rf.Changed()
		for _, c := range w.rf.Contacts(e2eBridgeID) {
			if c.ID == id && c.ContactStatus == resonite.ContactAccepted {
				return
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			w.t.Fatalf("the marker %s was not accepted", id)
		}
	}
}
