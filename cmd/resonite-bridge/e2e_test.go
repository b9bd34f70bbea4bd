package main

// End-to-end tests: the daemon as cmd runs it (runWith, productionHooks: the real bot, bridge,
// store and resonite packages), against the Discord fake, the Resonite fake and real PostgreSQL.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bot/discordtest"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/resonite"
	"github.com/resonite-bridge/resonite-bridge/resonite/resonitetest"
	"github.com/resonite-bridge/resonite-bridge/store"
	"github.com/resonite-bridge/resonite-bridge/store/storetest"
)

const (
	e2eGuild    = "110000000000000001"
	e2eChannel  = "110000000000000002"
	e2eChannel2 = "110000000000000003"
	e2eNotify   = "110000000000000004"
	e2eBridgeID = "U-BridgeBot"
	e2eBridgePW = "bridge-password-e2e"
)

// e2e is one bridged world: the two fakes, a database, and the daemon when it runs.
type e2e struct {
	t     testing.TB
	dc    *discordtest.Server
	rf    *resonitetest.Fake
	dbURL string
	env   []string
	tune  func(*partOptions)
	d     *e2eDaemon
}

type e2eDaemon struct {
	cancel context.CancelFunc
	code   chan int
	logs   *lockedBuffer
	addr   chan net.Addr
}

// e2eTune keeps the tests quick: short polls and windows, no presence warm-up.
func e2eTune(o *partOptions) {
	o.Bridge.PollInterval = 50 * time.Millisecond
	o.Bridge.CatchUpRetry = 200 * time.Millisecond
	o.Bridge.MarkReadDelay = 50 * time.Millisecond
	o.Bot.OpenTimeout = 5 * time.Second
}

func newE2E(t testing.TB, extraEnv ...string) *e2e {
	t.Helper()
	dc := discordtest.New(t)
	dc.AddGuild(e2eGuild, "Bridge Guild")
	dc.AddChannel(e2eGuild, e2eChannel, "alice-chat")
	dc.AddChannel(e2eGuild, e2eChannel2, "bob-chat")
	dc.AddChannel(e2eGuild, e2eNotify, "online")
	rf := resonitetest.New(t)
	rf.AddUser(resonite.User{ID: e2eBridgeID, Username: "BridgeBot"}, e2eBridgePW)
	for _, u := range []struct{ id, name string }{{"U-Alice", "Alice"}, {"U-Bob", "Bob"}} {
		rf.AddUser(resonite.User{ID: u.id, Username: u.name}, "")
		rf.AddContact(e2eBridgeID, resonite.Contact{ID: u.id, ContactUsername: u.name, ContactStatus: resonite.ContactAccepted,
			IsAccepted: true, Profile: &resonite.Profile{IconURL: "resdb:///" + strings.ToLower(u.name) + "icon.webp"}})
		rf.AddContact(u.id, resonite.Contact{ID: e2eBridgeID, ContactUsername: "BridgeBot", ContactStatus: resonite.ContactAccepted, IsAccepted: true})
	}
	e := &e2e{t: t, dc: dc, rf: rf, dbURL: storetest.URL(t), tune: e2eTune}
	e.env = append([]string{
		"DISCORD_TOKEN=" + dc.Token, "DISCORD_API_URL=" + dc.URL, "DISCORD_GUILD_ID=" + e2eGuild,
		"RESONITE_USERNAME=BridgeBot", "RESONITE_PASSWORD=" + e2eBridgePW, "RESONITE_API_URL=" + rf.URL,
		"DATABASE_URL=" + e.dbURL, "HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=debug",
	}, extraEnv...)
	return e
}

// start runs the daemon in-process and waits until Discord and Resonite are connected.
func (e *e2e) start() *e2e {
	e.t.Helper()
	// A previous daemon's hub connection must be gone, so that the wait below sees the new one.
	e.waitNoHubConnection()
	ctx, cancel := context.WithCancel(context.Background())
	d := &e2eDaemon{cancel: cancel, code: make(chan int, 1), logs: &lockedBuffer{}, addr: make(chan net.Addr, 1)}
	h := productionHooks()
	h.tune = e.tune
	h.queuePoll = 100 * time.Millisecond
	h.listening = func(a net.Addr) { d.addr <- a }
	go func() {
		d.code <- runWith(ctx, []string{"-env-file", noDotenvPath(e.t)}, e.env, io.Discard, d.logs, h)
	}()
	e.d = d
	e.t.Cleanup(func() { e.stop() })
	select {
	case <-d.addr:
	case code := <-d.code:
		d.code <- code
		e.t.Fatalf("the daemon exited with %d at start:\n%s", code, d.logs.String())
	case <-time.After(60 * time.Second):
		e.t.Fatalf("the daemon did not start:\n%s", d.logs.String())
	}
	e.dc.WaitConnected(e.t)
	ctxw, cancelw := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelw()
	if err := e.rf.WaitConnected(ctxw, e2eBridgeID, 1); err != nil {
		e.t.Fatalf("the hub did not connect: %v\n%s", err, d.logs.String())
	}
	e.dc.WaitCommands(e.t, e2eGuild)
	return e
}

// stop stops the daemon gracefully (SIGTERM-like) and returns its exit code.
func (e *e2e) stop() int {
	if e.d == nil {
		return 0
	}
	d := e.d
	e.d = nil
	d.cancel()
	select {
	case code := <-d.code:
		return code
	case <-time.After(60 * time.Second):
		e.t.Fatalf("the daemon did not stop:\n%s", d.logs.String())
		return -1
	}
}

func noDotenvPath(t testing.TB) string { return t.TempDir() + "/absent.env" }

// link pairs a channel of e2eGuild with a contact through /link, as an admin would, the
// contact having agreed to the guild before (consent_e2e_test.go goes through the asking).
func (e *e2e) link(channelID, contact string) { e.linkIn(e2eGuild, channelID, contact) }

func (e *e2e) linkIn(guildID, channelID, contact string) {
	e.t.Helper()
	e.consent(guildID, "U-"+contact)
	f := e.dc.Interact(e.t, discordtest.Command(guildID, channelID, "link", discordtest.O("contact", contact))).Final(e.t)
	if !strings.Contains(f.Content, "Linked") {
		e.t.Fatalf("/link %s answered %q", contact, f.Content)
	}
}

// consent records in the daemon's database that the contact agreed to the guild.
func (e *e2e) consent(guildID, contactID string) {
	e.t.Helper()
	e.withStore(func(st *store.Store) error {
		return st.GrantConsent(context.Background(), contactID, guildID, "Guild "+guildID)
	})
}

// withStore runs f on the daemon's database.
func (e *e2e) withStore(f func(*store.Store) error) {
	e.t.Helper()
	st, err := store.Open(context.Background(), e.dbURL, nil)
	if err != nil {
		e.t.Fatalf("opening the daemon's database: %v", err)
	}
	defer st.Close()
	if err := f(st); err != nil {
		e.t.Fatal(err)
	}
}

// say posts a Discord message in a channel as a member.
func (e *e2e) say(channelID, text string) *discordgo.Message {
	return e.dc.DispatchMessage(discordtest.UserMessage{ChannelID: channelID, AuthorID: "710000000000000001",
		Username: "dana", GlobalName: "Dana", Content: text})
}

// resoniteSays pushes a message from a contact to the bridge account over the hub.
func (e *e2e) resoniteSays(from, id, text string, at time.Time) resonite.Message {
	m := resonite.Message{ID: id, SenderID: from, RecipientID: e2eBridgeID, OwnerID: e2eBridgeID,
		MessageType: resonite.MessageText, Content: text, SendTime: resonite.NewTime(at), LastUpdateTime: resonite.NewTime(at)}
	e.rf.PushMessage(e2eBridgeID, m)
	return m
}

// sentTo returns what the bridge account sent to a contact, oldest first.
func (e *e2e) sentTo(contact string) []resonite.Message {
	var out []resonite.Message
	for _, m := range e.rf.Messages(contact) {
		if m.SenderID == e2eBridgeID {
			out = append(out, m)
		}
	}
	return out
}

// webhookPosts returns the channel's messages posted through a webhook, oldest first.
func (e *e2e) webhookPosts(channelID string) []*discordgo.Message {
	all := e.dc.ChannelMessages(channelID)
	var out []*discordgo.Message
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].WebhookID != "" {
			out = append(out, all[i])
		}
	}
	return out
}

// waitUntil waits until cond holds, checking it again whenever either fake records a change
// (bot/discordtest: a REST call, a stored/edited/deleted message, a gateway connect or
// disconnect; resonitetest: a REST call or hub invocation handled and its effects stored). It
// fails the test after discordtest.WaitTimeout: a safety net, not an assertion on speed.
func (e *e2e) waitUntil(what string, cond func() bool) {
	e.t.Helper()
	e.waitUntilWithin(what, discordtest.WaitTimeout(e.t), cond)
}

// waitUntilWithin is waitUntil with an explicit safety net, for the waits on hundreds of
// messages; it is cut short by the test's own deadline (go test -timeout).
func (e *e2e) waitUntilWithin(what string, limit time.Duration, cond func() bool) {
	e.t.Helper()
	if d, ok := e.t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			limit = max(min(limit, time.Until(dl)-time.Second), 0)
		}
	}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		// The channels before cond: a change between the two still wakes the wait.
		dch, rch := e.dc.Changed(), e.rf.Changed()
		if cond() {
			return
		}
		select {
		case <-dch:
		case <-rch:
		case <-deadline.C:
			logs := ""
			if e.d != nil {
				logs = "\n--- daemon logs ---\n" + e.d.logs.String()
			}
			e.t.Fatalf("gave up waiting for %s after %v%s", what, limit, logs)
		}
	}
}

// waitNoHubConnection waits until the bridge account has no hub connection left.
func (e *e2e) waitNoHubConnection() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), discordtest.WaitTimeout(e.t))
	defer cancel()
	if err := e.rf.WaitConnections(ctx, e2eBridgeID, 0); err != nil {
		e.t.Fatalf("the previous daemon's hub connection did not close: %v", err)
	}
}

func TestE2ERelayBothWays(t *testing.T) {
	t.Parallel()
	e := newE2E(t).start()
	e.link(e2eChannel, "Alice")

	e.say(e2eChannel, "hello from Discord")
	e.waitUntil("the Discord message in Resonite", func() bool { return len(e.sentTo("U-Alice")) == 1 })
	got := e.sentTo("U-Alice")[0]
	if got.Content != "Dana: hello from Discord" || !strings.HasPrefix(got.ID, "MSG-") {
		t.Errorf("Resonite received %q (id %s)", got.Content, got.ID)
	}

	e.resoniteSays("U-Alice", "MSG-e2e-1", "hi @everyone, from VR", time.Now())
	e.waitUntil("the Resonite message in Discord", func() bool { return len(e.webhookPosts(e2eChannel)) == 1 })
	post := e.webhookPosts(e2eChannel)[0]
	if post.Author.Username != "Alice" || post.Content != "hi @\u200beveryone, from VR" {
		t.Errorf("Discord shows %q by %q", post.Content, post.Author.Username)
	}
	if post.MentionEveryone {
		t.Error("@everyone from Resonite pinged the server")
	}
	if post.Author.Avatar != "https://assets.resonite.com/aliceicon" {
		t.Errorf("avatar %q", post.Author.Avatar)
	}
	e.waitUntil("the relayed message marked read", func() bool {
		for _, m := range e.rf.Messages(e2eBridgeID) {
			if m.ID == "MSG-e2e-1" {
				return m.ReadTime != nil
			}
		}
		return false
	})
	// No loop: the webhook's own post (echoed on the gateway) was not sent back to Resonite.
	// The gateway events are handled in order (SyncEvents) and the pipeline is ordered per
	// pairing, so once a later member message reached Alice, a looped-back echo, which came
	// before it on the gateway, would have reached her before it.
	e.say(e2eChannel, "after the echo")
	e.waitUntil("the later Discord message in Resonite", func() bool {
		s := e.sentTo("U-Alice")
		return len(s) > 0 && s[len(s)-1].Content == "Dana: after the echo"
	})
	if s := e.sentTo("U-Alice"); len(s) != 2 {
		var got []string
		for _, m := range s {
			got = append(got, m.Content)
		}
		t.Errorf("the bridge sent %d messages to Alice, want 2; its own webhook post looped back: %q", len(s), got)
	}
	if code := e.stop(); code != 0 {
		t.Errorf("exit code %d after a graceful stop", code)
	}
}

func TestE2EOrderPerPairing(t *testing.T) {
	t.Parallel()
	e := newE2E(t).start()
	e.link(e2eChannel, "Alice")
	e.link(e2eChannel2, "Bob")
	const n = 200
	base := time.Now()
	for i := 0; i < n; i++ {
		e.say(e2eChannel, fmt.Sprintf("a%03d", i))
		e.say(e2eChannel2, fmt.Sprintf("b%03d", i))
		at := base.Add(time.Duration(i) * time.Millisecond)
		e.resoniteSays("U-Alice", fmt.Sprintf("MSG-alice-%03d", i), fmt.Sprintf("A%03d", i), at)
		e.resoniteSays("U-Bob", fmt.Sprintf("MSG-bob-%03d", i), fmt.Sprintf("B%03d", i), at)
	}
	e.waitUntilWithin("every message delivered", 120*time.Second, func() bool {
		return len(e.sentTo("U-Alice")) == n && len(e.sentTo("U-Bob")) == n &&
			len(e.webhookPosts(e2eChannel)) >= 1 && len(e.webhookPosts(e2eChannel2)) >= 1 &&
			countLines(e.webhookPosts(e2eChannel)) == n && countLines(e.webhookPosts(e2eChannel2)) == n
	})
	for _, tc := range []struct {
		contact, prefix string
	}{{"U-Alice", "Dana: a"}, {"U-Bob", "Dana: b"}} {
		for i, m := range e.sentTo(tc.contact) {
			if want := fmt.Sprintf("%s%03d", tc.prefix, i); m.Content != want {
				t.Fatalf("message %d to %s is %q, want %q: order lost", i, tc.contact, m.Content, want)
			}
		}
	}
	for _, tc := range []struct{ channel, prefix string }{{e2eChannel, "A"}, {e2eChannel2, "B"}} {
		lines := postedLines(e.webhookPosts(tc.channel))
		for i, l := range lines {
			if want := fmt.Sprintf("%s%03d", tc.prefix, i); l != want {
				t.Fatalf("line %d in %s is %q, want %q: order lost", i, tc.channel, l, want)
			}
		}
	}
}

// postedLines splits posts into lines: under a rate limit consecutive messages of one sender
// are coalesced into one post, one line each.
func postedLines(posts []*discordgo.Message) []string {
	var out []string
	for _, p := range posts {
		out = append(out, strings.Split(p.Content, "\n")...)
	}
	return out
}

func countLines(posts []*discordgo.Message) int { return len(postedLines(posts)) }

func TestE2EHubDropCatchesUpFromHistory(t *testing.T) {
	t.Parallel()
	e := newE2E(t).start()
	e.link(e2eChannel, "Alice")
	e.resoniteSays("U-Alice", "MSG-before", "before the drop", time.Now())
	e.waitUntil("the first message", func() bool { return len(e.webhookPosts(e2eChannel)) == 1 })

	e.rf.RefuseConnections(1500 * time.Millisecond)
	e.rf.DropConnections()
	// While the hub is down, three messages reach the mailbox only: REST history, no push.
	for i := 1; i <= 3; i++ {
		at := time.Now()
		e.rf.AddMessage(e2eBridgeID, resonite.Message{ID: fmt.Sprintf("MSG-gap-%d", i), SenderID: "U-Alice", RecipientID: e2eBridgeID,
			OtherID: "U-Alice", MessageType: resonite.MessageText, Content: fmt.Sprintf("during the drop %d", i),
			SendTime: resonite.NewTime(at), LastUpdateTime: resonite.NewTime(at)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.rf.WaitConnected(ctx, e2eBridgeID, 1); err != nil {
		t.Fatal(err)
	}
	e.waitUntilWithin("the three missed messages", 30*time.Second, func() bool { return countLines(e.webhookPosts(e2eChannel)) >= 4 })
	// A duplicate (the catch-up and a push, or a redelivery) would be queued before a message
	// pushed now, and the pipeline is ordered per pairing: once this one is in Discord, any
	// duplicate is too.
	e.resoniteSays("U-Alice", "MSG-after", "after the reconnect", time.Now())
	e.waitUntil("the message pushed after the reconnect", func() bool {
		l := postedLines(e.webhookPosts(e2eChannel))
		return len(l) > 0 && l[len(l)-1] == "after the reconnect"
	})
	got := postedLines(e.webhookPosts(e2eChannel))
	want := []string{"before the drop", "during the drop 1", "during the drop 2", "during the drop 3", "after the reconnect"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("channel shows %q, want each message once in order %q", got, want)
	}
}

func TestE2EAutoAcceptContacts(t *testing.T) {
	t.Parallel()
	for _, auto := range []bool{true, false} {
		t.Run(fmt.Sprint(auto), func(t *testing.T) {
			t.Parallel()
			e := newE2E(t, fmt.Sprintf("RESONITE_AUTO_ACCEPT_CONTACTS=%v", auto)).start()
			e.link(e2eChannel, "Alice")
			e.rf.AddUser(resonite.User{ID: "U-Eve", Username: "Eve"}, "")
			e.rf.Push(e2eBridgeID, "ContactAddedOrUpdated", resonite.Contact{ID: "U-Eve", ContactUsername: "Eve",
				OwnerID: e2eBridgeID, ContactStatus: resonite.ContactRequested})
			accepted := func() bool {
				for _, c := range e.rf.Contacts(e2eBridgeID) {
					if c.ID == "U-Eve" && c.ContactStatus == resonite.ContactAccepted {
						return true
					}
				}
				return false
			}
			if auto {
				e.waitUntil("the request accepted", accepted)
				return
			}
			// The hub's events are handled in order, and the decision to accept is taken while
			// handling the contact event: once a message pushed after it is in Discord, the
			// request has been seen and (rightly) left alone.
			e.resoniteSays("U-Alice", "MSG-after-request", "after the request", time.Now())
			e.waitUntil("the message pushed after the request", func() bool { return countLines(e.webhookPosts(e2eChannel)) >= 1 })
			if accepted() {
				t.Error("a contact request was accepted with RESONITE_AUTO_ACCEPT_CONTACTS=false")
			}
		})
	}
}

func TestE2EFriendOnlineNotifications(t *testing.T) {
	t.Parallel()
	// Auto-accept is on for the markers below: an accepted contact request proves that the
	// bridge handled every earlier hub event and ran every earlier side task (notifications
	// included), as both are handled in order.
	e := newE2E(t, "RESONITE_AUTO_ACCEPT_CONTACTS=true").start()
	e.consent(e2eGuild, "U-Alice") // "all" covers the contacts who agreed to the server
	f := e.dc.Interact(t, discordtest.Command(e2eGuild, e2eNotify, "notify", discordtest.Sub("add", discordtest.O("contact", "all")))).Final(t)
	if !strings.Contains(f.Content, "every contact") {
		t.Fatalf("/notify add all answered %q", f.Content)
	}
	status := func(online resonite.OnlineStatus, device string) {
		e.rf.Push(e2eBridgeID, "ReceiveStatusUpdate", resonite.UserStatus{UserID: "U-Alice", UserSessionID: device,
			OnlineStatus: online, SessionType: resonite.SessionTypeGraphicalClient, LastStatusChange: resonite.NewTime(time.Now()),
			CurrentSessionIndex: -1})
	}
	notices := func() []string {
		var out []string
		for _, m := range e.dc.ChannelMessages(e2eNotify) {
			if strings.Contains(m.Content, "Alice") {
				out = append(out, m.Content)
			}
		}
		return out
	}
	settle := e.markerSettler()
	// Statuses that arrive before the hub's start-up sequence has finished are the baseline,
	// not news (every online contact re-sends its status then): come online until it counts.
	// Each round ends on a marker, after which a notice for the round would have been posted.
	for round := 0; len(notices()) == 0; round++ {
		if round == 50 {
			t.Fatal("no online notice")
		}
		status(resonite.StatusOffline, "desktop")
		status(resonite.StatusOnline, "desktop")
		settle()
	}
	if n := notices()[0]; !strings.Contains(n, "**Alice** is now Online") {
		t.Errorf("notice %q", n)
	}
	// A second device, a status change while online, going offline and online again within
	// ten minutes: no new notice.
	status(resonite.StatusBusy, "phone")
	status(resonite.StatusOffline, "desktop")
	status(resonite.StatusOffline, "phone")
	status(resonite.StatusSociable, "desktop")
	settle() // a notice for any of these would have been posted before the marker was accepted
	if n := notices(); len(n) != 1 {
		t.Errorf("%d notices, want 1 (one transition announced, the next within 10 minutes not): %q", len(n), n)
	}
}

// buildDaemon compiles the daemon once per test binary, for the tests that kill it.
func buildDaemon(t testing.TB) string {
	t.Helper()
	daemonBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "resonite-bridge-e2e-")
		if err != nil {
			daemonBuild.err = err
			return
		}
		daemonBuild.dir = dir
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		out := filepath.Join(dir, "resonite-bridge")
		cmd := exec.Command(goBin, "build", "-o", out, ".")
		if b, err := cmd.CombinedOutput(); err != nil {
			daemonBuild.err = fmt.Errorf("go build: %w\n%s", err, b)
			return
		}
		daemonBuild.path = out
	})
	if daemonBuild.err != nil {
		t.Fatalf("building the daemon: %v", daemonBuild.err)
	}
	return daemonBuild.path
}

var daemonBuild struct {
	once      sync.Once
	dir, path string
	err       error
}

// removeDaemonBuild is called by TestMain.
func removeDaemonBuild() {
	if daemonBuild.dir != "" {
		_ = os.RemoveAll(daemonBuild.dir)
	}
}

// e2eProc is the daemon as a process of its own, so that it can be killed without warning.
type e2eProc struct {
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan struct{}
}

func (e *e2e) startProcess() *e2eProc {
	e.t.Helper()
	e.waitNoHubConnection()
	p := &e2eProc{logs: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(buildDaemon(e.t))
	p.cmd.Dir = e.t.TempDir() // no .env there
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, e.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		e.t.Fatalf("starting the daemon: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	e.t.Cleanup(p.kill)
	e.dc.WaitConnected(e.t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.rf.WaitConnected(ctx, e2eBridgeID, 1); err != nil {
		e.t.Fatalf("the daemon's hub did not connect: %v\n%s", err, p.logs.String())
	}
	return p
}

// kill stops the process at once (SIGKILL): no drain, no cleanup, like a crash or a power cut.
func (p *e2eProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func TestE2EHardStopLosesAndDuplicatesNothing(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	proc := e.startProcess()
	e.link(e2eChannel, "Alice")

	const fromResonite, fromDiscord = 60, 30
	base := time.Now()
	for i := 0; i < fromResonite; i++ {
		e.resoniteSays("U-Alice", fmt.Sprintf("MSG-hard-%03d", i), fmt.Sprintf("R%03d", i), base.Add(time.Duration(i)*time.Millisecond))
		if i < fromDiscord {
			e.say(e2eChannel, fmt.Sprintf("d%03d", i))
		}
	}
	// Kill it in the middle of relaying: some delivered, some in flight, some still queued.
	e.waitUntilWithin("relaying under way", 60*time.Second, func() bool { return countLines(e.webhookPosts(e2eChannel)) >= 10 })
	proc.kill()
	delivered := countLines(e.webhookPosts(e2eChannel))
	t.Logf("killed after %d of %d Resonite messages and %d of %d Discord messages were delivered",
		delivered, fromResonite, len(e.sentTo("U-Alice")), fromDiscord)

	// While it is down: three Discord messages (history only: no gateway session) and two
	// Resonite messages (mailbox only: no hub connection).
	for i := 0; i < 3; i++ {
		e.dc.AppendMessage(discordtest.UserMessage{ChannelID: e2eChannel, AuthorID: "710000000000000001", Username: "dana",
			GlobalName: "Dana", Content: fmt.Sprintf("down%d", i)})
	}
	for i := 0; i < 2; i++ {
		at := time.Now()
		e.rf.AddMessage(e2eBridgeID, resonite.Message{ID: fmt.Sprintf("MSG-down-%d", i), SenderID: "U-Alice", RecipientID: e2eBridgeID,
			OtherID: "U-Alice", MessageType: resonite.MessageText, Content: fmt.Sprintf("DOWN%d", i),
			SendTime: resonite.NewTime(at), LastUpdateTime: resonite.NewTime(at)})
	}

	e.start()
	wantR := fromResonite + 2
	wantD := fromDiscord + 3
	e.waitUntilWithin(fmt.Sprintf("every message after the restart (%d lines in Discord, %d messages in Resonite)", wantR, wantD),
		90*time.Second, func() bool {
			return countLines(e.webhookPosts(e2eChannel)) >= wantR && len(e.sentTo("U-Alice")) >= wantD
		})
	// A duplicate (a redelivered or re-caught-up message) would be queued before a message sent
	// now, and the pipeline is ordered per pairing: once one more message each way arrived, any
	// duplicate has too.
	e.say(e2eChannel, "last")
	e.resoniteSays("U-Alice", "MSG-hard-last", "LAST", time.Now())
	e.waitUntil("the last message each way", func() bool {
		l, s := postedLines(e.webhookPosts(e2eChannel)), e.sentTo("U-Alice")
		return len(l) > 0 && l[len(l)-1] == "LAST" && len(s) > 0 && s[len(s)-1].Content == "Dana: last"
	})

	lines := postedLines(e.webhookPosts(e2eChannel))
	var wantLines []string
	for i := 0; i < fromResonite; i++ {
		wantLines = append(wantLines, fmt.Sprintf("R%03d", i))
	}
	wantLines = append(wantLines, "DOWN0", "DOWN1", "LAST")
	if strings.Join(lines, ",") != strings.Join(wantLines, ",") {
		t.Errorf("Discord shows %d lines %v,\nwant each Resonite message once, in order (%d)", len(lines), lines, len(wantLines))
	}
	var sent []string
	ids := map[string]bool{}
	for _, m := range e.sentTo("U-Alice") {
		sent = append(sent, strings.TrimPrefix(m.Content, "Dana: "))
		ids[m.ID] = true
	}
	var wantSent []string
	for i := 0; i < fromDiscord; i++ {
		wantSent = append(wantSent, fmt.Sprintf("d%03d", i))
	}
	wantSent = append(wantSent, "down0", "down1", "down2", "last")
	if strings.Join(sent, ",") != strings.Join(wantSent, ",") || len(ids) != len(wantSent) {
		t.Errorf("Resonite received %d messages (%d distinct ids) %v,\nwant each Discord message once, in order (%d)", len(sent), len(ids), sent, len(wantSent))
	}
}

// queueStats reads the daemon's outbox straight from its database.
func (e *e2e) queueStats() store.QueueStats {
	e.t.Helper()
	st, err := store.Open(context.Background(), e.dbURL, nil)
	if err != nil {
		e.t.Fatalf("opening the daemon's database: %v", err)
	}
	defer st.Close()
	q, err := st.QueueStats(context.Background())
	if err != nil {
		e.t.Fatalf("reading the queue: %v", err)
	}
	return q
}

// A gap's messages go out before the newer ones of their pairing, even when the newer ones are
// stored first: the pairing waits for the catch-up that covers the gap (delivery rule 2).
func TestE2EGapMessagesGoBeforeNewerOnes(t *testing.T) {
	t.Parallel()
	t.Run("Resonite, hub drop", func(t *testing.T) {
		t.Parallel()
		e := newE2E(t).start()
		e.link(e2eChannel, "Alice")
		e.resoniteSays("U-Alice", "MSG-first", "first", time.Now())
		e.waitUntil("the first message", func() bool { return countLines(e.webhookPosts(e2eChannel)) == 1 })

		e.rf.RefuseConnections(500 * time.Millisecond)
		e.rf.DropConnections()
		base := time.Now()
		for i := 1; i <= 5; i++ { // in the mailbox only: no hub connection to push them
			at := base.Add(time.Duration(i) * time.Millisecond)
			e.rf.AddMessage(e2eBridgeID, resonite.Message{ID: fmt.Sprintf("MSG-gap-%d", i), SenderID: "U-Alice", RecipientID: e2eBridgeID,
				OtherID: "U-Alice", MessageType: resonite.MessageText, Content: fmt.Sprintf("gap %d", i),
				SendTime: resonite.NewTime(at), LastUpdateTime: resonite.NewTime(at)})
		}
		// The mailbox cannot be read until the live messages below are stored.
		e.rf.FailNext("/users/"+e2eBridgeID+"/messages", http.StatusServiceUnavailable, 0, 1<<30)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// The old connection gone, then the new one up: pushes reach the new one.
		if err := e.rf.WaitConnections(ctx, e2eBridgeID, 0); err != nil {
			t.Fatal(err)
		}
		if err := e.rf.WaitConnected(ctx, e2eBridgeID, 1); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 5; i++ {
			e.resoniteSays("U-Alice", fmt.Sprintf("MSG-live-%d", i), fmt.Sprintf("live %d", i), base.Add(time.Second+time.Duration(i)*time.Millisecond))
		}
		e.waitUntil("the live messages stored", func() bool { return e.queueStats().Pending[core.ToDiscord] == 5 })
		if n := countLines(e.webhookPosts(e2eChannel)); n != 1 {
			t.Errorf("%d lines in Discord before the gap was caught up, want only the first", n)
		}
		e.rf.ClearFailures()
		e.waitUntilWithin("every message", 30*time.Second, func() bool { return countLines(e.webhookPosts(e2eChannel)) >= 11 })
		want := []string{"first", "gap 1", "gap 2", "gap 3", "gap 4", "gap 5", "live 1", "live 2", "live 3", "live 4", "live 5"}
		if got := postedLines(e.webhookPosts(e2eChannel)); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("Discord shows %q, want the gap first, in send-time order: %q", got, want)
		}
	})
	t.Run("Discord, daemon restart", func(t *testing.T) {
		t.Parallel()
		e := newE2E(t).start()
		e.link(e2eChannel, "Alice")
		e.say(e2eChannel, "first")
		e.waitUntil("the first message", func() bool { return len(e.sentTo("U-Alice")) == 1 })
		if code := e.stop(); code != 0 {
			t.Fatalf("exit code %d", code)
		}
		for i := 1; i <= 5; i++ { // in the channel's history only: no daemon to see them
			e.dc.AppendMessage(discordtest.UserMessage{ChannelID: e2eChannel, AuthorID: "710000000000000001", Username: "dana",
				GlobalName: "Dana", Content: fmt.Sprintf("gap %d", i)})
		}
		// The history cannot be read until the live messages below are stored.
		e.dc.FailNext(discordtest.Failure{PathContains: "/channels/" + e2eChannel + "/messages", Count: 1 << 30, Status: http.StatusServiceUnavailable})
		e.start()
		for i := 1; i <= 5; i++ {
			e.say(e2eChannel, fmt.Sprintf("live %d", i))
		}
		e.waitUntil("the live messages stored", func() bool { return e.queueStats().Pending[core.ToResonite] == 5 })
		if n := len(e.sentTo("U-Alice")); n != 1 {
			t.Errorf("%d messages in Resonite before the gap was caught up, want only the first", n)
		}
		e.dc.ClearFailures()
		e.waitUntilWithin("every message", 30*time.Second, func() bool { return len(e.sentTo("U-Alice")) >= 11 })
		var got []string
		for _, m := range e.sentTo("U-Alice") {
			got = append(got, strings.TrimPrefix(m.Content, "Dana: "))
		}
		want := []string{"first", "gap 1", "gap 2", "gap 3", "gap 4", "gap 5", "live 1", "live 2", "live 3", "live 4", "live 5"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("Resonite received %q, want the gap first, in send-time order: %q", got, want)
		}
	})
}

// markerSettler returns a function that waits until the bridge handled every earlier hub event
// and ran every earlier side task: it sends a contact request (auto-accept must be on) and
// waits for its acceptance, which is handled in the same order.
func (e *e2e) markerSettler() func() {
	markers := 0
	return func() {
		e.t.Helper()
		markers++
		id := fmt.Sprintf("U-Marker%d", markers)
		e.rf.AddUser(resonite.User{ID: id, Username: fmt.Sprintf("Marker%d", markers)}, "")
		e.rf.Push(e2eBridgeID, "ContactAddedOrUpdated", resonite.Contact{ID: id, ContactUsername: fmt.Sprintf("Marker%d", markers),
			OwnerID: e2eBridgeID, ContactStatus: resonite.ContactRequested})
		e.waitUntil("the marker contact request "+id+" accepted", func() bool {
			for _, c := range e.rf.Contacts(e2eBridgeID) {
				if c.ID == id && c.ContactStatus == resonite.ContactAccepted {
					return true
				}
			}
			return false
		})
	}
}
