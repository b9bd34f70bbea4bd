package main

// End-to-end tests of /board and /follow: the daemon as wire.go builds it, the fakes, real
// PostgreSQL; the board's 15 s throttle runs on a manual clock, so nothing waits 15 s.

import (
	"context"
	"fmt"
	"strings"
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

// boardWorld is an e2e world with a manual board clock and Alice and Bob consenting in the
// guild (the consent stand-in counts /notify subscriptions).
type boardWorld struct {
	*e2e
	clock *clocktest.Clock
}

func newBoardWorld(t *testing.T) *boardWorld {
	t.Helper()
	// Auto-accept makes marker contact requests a way to wait for the bridge (settle).
	w := &boardWorld{e2e: newE2E(t, "RESONITE_AUTO_ACCEPT_CONTACTS=true"), clock: clocktest.New(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))}
	w.tune = func(o *partOptions) {
		e2eTune(o)
		o.Bridge.BoardClock = w.clock
	}
	w.start()
	for _, c := range []string{"Alice", "Bob"} {
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

// processed pushes a status and waits until the board loop has looked at it: it either wrote
// the board or went back to waiting on the clock.
func (w *boardWorld) processed(push func()) {
	w.t.Helper()
	afters, writes := w.clock.Afters(), len(w.boardWrites())
	push()
	w.waitBoth(fmt.Sprintf("the board loop to take the status (afters %d, writes %d)", afters, writes), func() bool {
		return w.clock.Afters() > afters || len(w.boardWrites()) > writes
	})
}

// waitBoth waits on changes of the Discord fake and of the clock.
func (w *boardWorld) waitBoth(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.NewTimer(discordtest.WaitTimeout(w.t))
	defer deadline.Stop()
	for {
		dc, ck := w.dc.Changed(), w.clock.Changed() // before cond: a change in between still wakes
		if cond() {
			return
		}
		select {
		case <-dc:
		case <-ck:
		case <-deadline.C:
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
		for _, s := range want {
			if !strings.Contains(bs[0].Content, s) {
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
	w.settle(0)

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
	}
	if n := w.count("PATCH"); n != 1 {
		t.Fatalf("%d edits after ten changes within 15 s, want the one before them", n)
	}
	w.clock.Advance(15 * time.Second)
	w.board("🟡 **Bob** · desktop")
	if n := w.count("PATCH"); n != 2 {
		t.Errorf("%d edits, want 2", n)
	}

	// Invisible is offline to everyone else.
	w.processed(func() { w.status("U-Bob", resonite.StatusInvisible, resonite.DeviceScreen, false) })
	w.clock.Advance(15 * time.Second)
	if b := w.board("1 of 2"); strings.Contains(b.Content, "Bob") {
		t.Errorf("an invisible contact is on the board: %q", b.Content)
	}

	// Recreated when deleted: seen on the gateway, and found by a 404 on the next edit.
	old := w.board().ID
	w.processed(func() { w.dc.DeleteMessage(e2eChannel, old, true) })
	w.clock.Advance(15 * time.Second)
	recreated := w.board("Alice")
	if recreated.ID == old {
		t.Fatal("the board was not posted again")
	}
	w.dc.DeleteMessage(e2eChannel, recreated.ID, false)
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
	w.processed(func() { w.status("U-Bob", resonite.StatusBusy, resonite.DeviceScreen, false) })
	w.clock.Advance(15 * time.Second)
	if b := w.board("🔴 **Bob**"); b.ID != again.ID {
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
	w.status("U-Alice", resonite.StatusOnline, resonite.DeviceVR, false)
	w.settle(1)
	w.clock.Advance(time.Minute)
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
	w.settle(0)
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
		w.rf.Push(e2eBridgeID, "ReceiveSessionUpdate", resonite.SessionInfo{SessionID: id, Name: fmt.Sprintf("Room %d", i)})
		w.processed(func() { w.statusIn("U-Alice", states[i%len(states)], id) })
		w.clock.Advance(time.Second)
	}
	w.clock.Advance(15 * time.Second) // the last change shows
	w.board(fmt.Sprintf("%s **Alice** · VR · [Room %d]", emoji[(seconds-1)%len(states)], seconds-1))
	var requests, writes int
	for _, c := range w.dc.Calls()[before:] {
		if strings.Contains(c.Path, "/channels/"+e2eChannel+"/") {
			requests++
		}
	}
	writes = len(w.boardWrites()) - writesBefore
	t.Logf("board: %d Discord requests (%d edits) for %d status changes over %d simulated seconds", requests, writes, seconds, seconds)
	if max := seconds/15 + 2; writes > max || writes < seconds/15-1 {
		t.Errorf("%d board edits for %d s of churn, want about %d (one per 15 s)", writes, seconds, seconds/15)
	}
}

func TestE2EFollow(t *testing.T) {
	t.Parallel()
	w := newBoardWorld(t)
	follow := func(user, contact string) discordtest.Reply {
		t.Helper()
		in := discordtest.Command(e2eGuild, e2eChannel, "follow", discordtest.O("contact", contact))
		in.UserID, in.Permissions = user, discordgo.PermissionSendMessages
		return w.dc.Interact(t, in).Final(t)
	}
	// Autocomplete offers all and the consenting contacts.
	ac := discordtest.Autocomplete(e2eGuild, e2eChannel, "follow", discordtest.Focused("contact", ""))
	ac.UserID, ac.Permissions = e2eMember, discordgo.PermissionSendMessages
	if got := w.dc.Interact(t, ac).Callback().Choices; len(got) != 3 || got[0].Value != "all" {
		t.Errorf("autocomplete offered %v, want all, Alice and Bob", got)
	}
	if r := follow(e2eMember, "Alice"); !strings.Contains(r.Content, "On:") || !r.Ephemeral() {
		t.Fatalf("/follow Alice answered %q", r.Content)
	}
	if r := follow(e2eMember, "Nobody"); !strings.Contains(r.Content, "not among") {
		t.Errorf("/follow of a contact without consent answered %q", r.Content)
	}
	online := func(user string) {
		w.status(user, resonite.StatusOffline, resonite.DeviceVR, false)
		w.status(user, resonite.StatusOnline, resonite.DeviceVR, false)
	}
	// Statuses before the hub's start-up sequence ended are the baseline, not news: come
	// online until it counts (the notice channel's announcements show the bridge's view).
	notified := func() bool { return len(w.dc.DMs(e2eMember)) > 0 }
	for round := 0; !notified(); round++ {
		if round == 50 {
			t.Fatal("no direct message")
		}
		online("U-Alice")
		w.settle(round)
	}
	if dm := w.dc.DMs(e2eMember)[0].Content; !strings.Contains(dm, "**Alice** is now Online") {
		t.Errorf("direct message %q", dm)
	}

	// Toggled off: Bob coming online sends nothing, nor does Alice once it is off.
	if r := follow(e2eMember, "Alice"); !strings.Contains(r.Content, "Off:") {
		t.Fatalf("the second /follow Alice answered %q", r.Content)
	}
	online("U-Bob")
	w.settle(100)
	if n := len(w.dc.DMs(e2eMember)); n != 1 {
		t.Errorf("%d direct messages after /follow was turned off, want 1", n)
	}

	// Closed DMs: the member is told once in the channel, pinging only them.
	const closed = "720000000000000002"
	w.dc.CloseDMs(closed, true)
	follow(closed, "all")
	online("U-Bob")
	tell := func() []*discordgo.Message {
		var out []*discordgo.Message
		for _, m := range w.dc.ChannelMessages(e2eChannel) {
			if strings.Contains(m.Content, "<@"+closed+">") {
				out = append(out, m)
			}
		}
		return out
	}
	w.waitBoth("the member told that their DMs are closed", func() bool { return len(tell()) == 1 })
	call := w.dc.WaitCalls(t, 1, func(c discordtest.Call) bool {
		return c.Method == "POST" && strings.Contains(c.Path, "/channels/"+e2eChannel+"/") && strings.Contains(string(c.Body), closed)
	})[0]
	if am, _ := call.JSON()["allowed_mentions"].(map[string]any); am == nil || len(am["parse"].([]any)) != 0 || len(am["users"].([]any)) != 1 {
		t.Errorf("the note's allowed_mentions = %v, want only the member", call.JSON()["allowed_mentions"])
	}
}

// settle waits until the bridge handled every hub event pushed so far and ran the side tasks
// they queued: an accepted contact request is handled after them, in order.
func (w *boardWorld) settle(n int) {
	w.t.Helper()
	id := fmt.Sprintf("U-Marker%d-%d", n, time.Now().UnixNano())
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
