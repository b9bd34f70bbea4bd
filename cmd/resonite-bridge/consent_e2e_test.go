package main

// End-to-end tests of consent (issue 10): the bot in two Discord servers, a contact's words
// and presence reaching only the servers it agreed to.

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bot/discordtest"
	"github.com/resonite-bridge/resonite-bridge/migrations"
	"github.com/resonite-bridge/resonite-bridge/resonite"
	"github.com/resonite-bridge/resonite-bridge/store"
)

const (
	e2eGuild2       = "120000000000000001"
	e2eGuild2Chan   = "120000000000000002"
	e2eGuild2Notify = "120000000000000003"
)

// newTwoGuildE2E is newE2E with the bot also in a second server, whose admins the contacts
// never agreed to.
func newTwoGuildE2E(t *testing.T, extraEnv ...string) *e2e {
	t.Helper()
	e := newE2E(t, extraEnv...)
	e.dc.AddGuild(e2eGuild2, "Second Guild")
	e.dc.AddChannel(e2eGuild2, e2eGuild2Chan, "second-alice")
	e.dc.AddChannel(e2eGuild2, e2eGuild2Notify, "second-online")
	return e
}

var codeInText = regexp.MustCompile(`link ([0-9]{6})`)

// waitSentTo waits for a message of the bridge account to the contact containing want, after
// the first `after` messages, and returns it.
func (e *e2e) waitSentTo(contact string, after int, want string) resonite.Message {
	e.t.Helper()
	var got resonite.Message
	e.waitUntil(fmt.Sprintf("a message to %s containing %q", contact, want), func() bool {
		s := e.sentTo(contact)
		for _, m := range s[min(after, len(s)):] {
			if strings.Contains(m.Content, want) {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// command runs a slash command in a guild's channel and returns its final answer's text.
func (e *e2e) command(guildID, channelID, name string, opts ...discordtest.Opt) string {
	e.t.Helper()
	f := e.dc.Interact(e.t, discordtest.Command(guildID, channelID, name, opts...)).Final(e.t)
	var sb strings.Builder
	sb.WriteString(f.Content)
	for _, em := range f.Embeds {
		for _, fl := range em.Fields {
			sb.WriteString("\n" + fl.Name + ": " + fl.Value)
		}
	}
	return sb.String()
}

// channelHas reports whether any message in the channel contains s.
func (e *e2e) channelHas(channelID, s string) bool {
	return slices.ContainsFunc(e.dc.ChannelMessages(channelID), func(m *discordgo.Message) bool { return strings.Contains(m.Content, s) })
}

// relayedRows counts the outbox rows stored for a source id prefix (a Resonite message id, or
// a Discord message id).
func (e *e2e) relayedRows(sourcePrefix string) int {
	e.t.Helper()
	var n int
	e.withStore(func(st *store.Store) error {
		return st.Pool().QueryRow(context.Background(), `select count(*) from relay_messages where source_id like $1 || '%'`, sourcePrefix).Scan(&n)
	})
	return n
}

func TestE2EConsentCrossServer(t *testing.T) {
	t.Parallel()
	e := newTwoGuildE2E(t).start()
	e.link(e2eChannel, "Alice") // Alice agreed to the first server

	// The second server's admin links Alice: refused until she agrees.
	ans := e.command(e2eGuild2, e2eGuild2Chan, "link", discordtest.O("contact", "Alice"))
	if !strings.Contains(ans, "has not agreed") || strings.Contains(ans, "Linked") {
		t.Fatalf("/link in the second server answered %q, want it to wait for Alice", ans)
	}
	req := e.waitSentTo("U-Alice", 0, "Second Guild")
	if !strings.Contains(req.Content, "#second-alice") {
		t.Errorf("the request %q does not name the channel", req.Content)
	}
	code := codeInText.FindStringSubmatch(req.Content)
	if code == nil {
		t.Fatalf("the request %q holds no code", req.Content)
	}
	if links := e.command(e2eGuild2, e2eGuild2Chan, "links"); !strings.Contains(links, "⏳ **Alice**") {
		t.Errorf("/links of the second server does not show the waiting request: %q", links)
	}
	if links := e.command(e2eGuild, e2eChannel, "links"); strings.Contains(links, "⏳") || strings.Contains(links, e2eGuild2Chan) {
		t.Errorf("/links of the first server shows the second's request: %q", links)
	}

	// Before she agrees nothing crosses, either way. Gateway events and hub pushes are handled
	// in order: once a later message arrived, an earlier one was stored or dropped.
	secret := e.say(e2eGuild2Chan, "secret from the second server")
	e.say(e2eChannel, "marker one")
	e.waitSentTo("U-Alice", 0, "marker one")
	e.resoniteSays("U-Alice", "MSG-before-consent", "before consent", time.Now())
	e.waitUntil("Alice's message in the first server", func() bool { return e.channelHas(e2eChannel, "before consent") })
	if n := e.relayedRows(secret.ID); n != 0 || slices.ContainsFunc(e.sentTo("U-Alice"), func(m resonite.Message) bool { return strings.Contains(m.Content, "secret") }) {
		t.Errorf("the second server's message reached Alice before she agreed (%d rows)", n)
	}
	if n := e.relayedRows("MSG-before-consent"); n != 1 || e.channelHas(e2eGuild2Chan, "before consent") {
		t.Errorf("Alice's message was stored for %d pairings, want only the first server's", n)
	}

	// A wrong code, an expired one and (below) a reused one do nothing and say so.
	wrong := "000000"
	if code[1] == wrong {
		wrong = "000001"
	}
	sent := len(e.sentTo("U-Alice"))
	e.resoniteSays("U-Alice", "MSG-wrong-code", "link "+wrong, time.Now())
	e.waitSentTo("U-Alice", sent, "No waiting request has that code")

	ans = e.command(e2eGuild2, e2eGuild2Notify, "notify", discordtest.Sub("add", discordtest.O("contact", "Alice")))
	if !strings.Contains(ans, "has not agreed") {
		t.Fatalf("/notify add in the second server answered %q, want it to wait for Alice", ans)
	}
	notifyReq := e.waitSentTo("U-Alice", sent, "#second-online")
	notifyCode := codeInText.FindStringSubmatch(notifyReq.Content)
	if notifyCode == nil {
		t.Fatalf("the request %q holds no code", notifyReq.Content)
	}
	e.withStore(func(st *store.Store) error { // fifteen minutes pass for this request
		_, err := st.Pool().Exec(context.Background(), `update consent_requests set expires_at = now() - interval '1 second' where kind = 'subscription'`)
		return err
	})
	sent = len(e.sentTo("U-Alice"))
	e.resoniteSays("U-Alice", "MSG-expired-code", "link "+notifyCode[1], time.Now())
	e.waitSentTo("U-Alice", sent, "has expired")
	if links := e.command(e2eGuild2, e2eGuild2Notify, "links"); strings.Contains(links, "online notifications") {
		t.Errorf("/links still lists the expired request: %q", links)
	}

	// The right code, trimmed and in any case: consent recorded, the link active, both told.
	sent = len(e.sentTo("U-Alice"))
	e.resoniteSays("U-Alice", "MSG-right-code", "  LINK "+code[1]+" ", time.Now())
	done := e.waitSentTo("U-Alice", sent, "Done")
	if !strings.Contains(done.Content, "Second Guild") {
		t.Errorf("the confirmation %q does not name the server", done.Content)
	}
	e.waitUntil("the second server's channel told", func() bool { return e.channelHas(e2eGuild2Chan, "✅ **Alice** agreed") })
	if links := e.command(e2eGuild2, e2eGuild2Chan, "links"); !strings.Contains(links, "↔ **Alice**") || strings.Contains(links, "⏳") {
		t.Errorf("/links of the second server after consent: %q", links)
	}
	if e.channelHas(e2eGuild2Notify, "✅ **Alice** agreed") {
		t.Error("the expired /notify add became active")
	}

	sent = len(e.sentTo("U-Alice"))
	e.resoniteSays("U-Alice", "MSG-reused-code", "link "+code[1], time.Now())
	e.waitSentTo("U-Alice", sent, "was used already")

	// From now on she reaches both servers and the second reaches her; what came before her
	// consent stays where it was.
	e.resoniteSays("U-Alice", "MSG-after-consent", "after consent", time.Now())
	e.waitUntil("Alice's message in both servers", func() bool {
		return e.channelHas(e2eChannel, "after consent") && e.channelHas(e2eGuild2Chan, "after consent")
	})
	e.say(e2eGuild2Chan, "hello from the second server")
	e.waitSentTo("U-Alice", 0, "Dana: hello from the second server")
	for _, ch := range []string{e2eChannel, e2eGuild2Chan} {
		for _, text := range []string{"link " + code[1], "link " + wrong, "link " + notifyCode[1], "Done", "No waiting request"} {
			if e.channelHas(ch, text) {
				t.Errorf("channel %s shows %q: a command or a confirmation was relayed", ch, text)
			}
		}
	}
	if e.channelHas(e2eGuild2Chan, "before consent") {
		t.Error("a message from before the consent reached the second server")
	}
}

func TestE2EConsentGuessingThrottled(t *testing.T) {
	t.Parallel()
	e := newTwoGuildE2E(t).start()
	e.command(e2eGuild2, e2eGuild2Chan, "link", discordtest.O("contact", "Alice"))
	code := codeInText.FindStringSubmatch(e.waitSentTo("U-Alice", 0, "Second Guild").Content)[1]
	for i := range 5 {
		guess := fmt.Sprintf("%06d", 100000+i)
		if guess == code {
			guess = "999999"
		}
		sent := len(e.sentTo("U-Alice"))
		e.resoniteSays("U-Alice", fmt.Sprintf("MSG-guess-%d", i), "link "+guess, time.Now())
		e.waitSentTo("U-Alice", sent, "No waiting request")
	}
	// The right code is not even checked now.
	sent := len(e.sentTo("U-Alice"))
	e.resoniteSays("U-Alice", "MSG-guess-right", "link "+code, time.Now())
	e.waitSentTo("U-Alice", sent, "Too many wrong codes")
	if links := e.command(e2eGuild2, e2eGuild2Chan, "links"); strings.Contains(links, "↔") {
		t.Errorf("a throttled contact's code linked the channel: %q", links)
	}
}

func TestE2EConsentCommandsFromResonite(t *testing.T) {
	t.Parallel()
	e := newTwoGuildE2E(t).start()
	e.link(e2eChannel, "Alice")
	e.link(e2eChannel2, "Bob")
	e.linkIn(e2eGuild2, e2eGuild2Chan, "Alice")

	e.resoniteSays("U-Alice", "MSG-cmd-links", "  !LINKS ", time.Now())
	list := e.waitSentTo("U-Alice", 0, "You agreed to")
	for _, want := range []string{"Guild " + e2eGuild, "Guild " + e2eGuild2} {
		if !strings.Contains(list.Content, want) {
			t.Errorf("!links answered %q, want it to name %s", list.Content, want)
		}
	}

	sent := len(e.sentTo("U-Alice"))
	e.resoniteSays("U-Alice", "MSG-cmd-unlink", "!unlink", time.Now())
	e.waitSentTo("U-Alice", sent, "withdrew")
	for _, ch := range []string{e2eChannel, e2eGuild2Chan} {
		e.waitUntil("channel "+ch+" told", func() bool { return e.channelHas(ch, "**Alice** withdrew") })
	}
	if links := e.command(e2eGuild, e2eChannel, "links"); strings.Contains(links, "Alice") || !strings.Contains(links, "Bob") {
		t.Errorf("/links after Alice's !unlink: %q", links)
	}

	// Nothing of hers crosses any more, either way; Bob's pairing is untouched. Hub pushes and
	// gateway events are handled in order: Bob's later messages are the markers.
	e.resoniteSays("U-Alice", "MSG-after-unlink", "after unlink", time.Now())
	e.resoniteSays("U-Bob", "MSG-bob-marker", "bob marker", time.Now())
	e.waitUntil("Bob's message", func() bool { return e.channelHas(e2eChannel2, "bob marker") })
	d := e.say(e2eChannel, "to the withdrawn Alice")
	e.say(e2eChannel2, "to Bob")
	e.waitSentTo("U-Bob", 0, "to Bob")
	if n := e.relayedRows("MSG-after-unlink"); n != 0 {
		t.Errorf("Alice's message after !unlink was stored for %d pairings", n)
	}
	if n := e.relayedRows(d.ID); n != 0 {
		t.Errorf("a Discord message was stored for Alice after her !unlink")
	}
	for _, ch := range []string{e2eChannel, e2eGuild2Chan, e2eChannel2} {
		for _, text := range []string{"!links", "!LINKS", "!unlink", "You agreed to"} {
			if e.channelHas(ch, text) {
				t.Errorf("channel %s shows %q: a command or its answer was relayed", ch, text)
			}
		}
	}
}

func TestE2EConsentScoping(t *testing.T) {
	t.Parallel()
	// Auto-accept: an accepted marker request proves every earlier hub event was handled and
	// every earlier side task (announcements) ran, as both are in order.
	e := newTwoGuildE2E(t, "RESONITE_AUTO_ACCEPT_CONTACTS=true").start()
	e.link(e2eChannel, "Alice")

	// Autocomplete offers only the contacts who agreed to (or were asked by) the server.
	choices := func(guild, channel, cmd string, focused discordtest.Opt) []string {
		f := e.dc.Interact(t, discordtest.Autocomplete(guild, channel, cmd, focused)).Callback()
		var out []string
		for _, c := range f.Choices {
			out = append(out, fmt.Sprint(c.Value))
		}
		return out
	}
	if got := choices(e2eGuild, e2eChannel2, "link", discordtest.Focused("contact", "")); !slices.Contains(got, "U-Alice") || slices.Contains(got, "U-Bob") {
		t.Errorf("/link autocomplete in the first server offers %q, want Alice and not Bob", got)
	}
	for _, focused := range []struct {
		cmd string
		opt discordtest.Opt
	}{
		{"link", discordtest.Focused("contact", "")},
		{"notify", discordtest.Sub("add", discordtest.Focused("contact", ""))},
		{"whois", discordtest.Focused("user", "a")},
	} {
		if got := choices(e2eGuild2, e2eGuild2Chan, focused.cmd, focused.opt); slices.Contains(got, "U-Alice") || slices.Contains(got, "U-Bob") {
			t.Errorf("/%s autocomplete in the second server offers %q: contacts who never agreed to it", focused.cmd, got)
		}
	}

	// /whois shows status only where the contact agreed.
	if w := e.command(e2eGuild, e2eChannel, "whois", discordtest.O("user", "Alice")); !strings.Contains(w, "Status:") {
		t.Errorf("/whois Alice in the first server shows no status: %q", w)
	}
	if w := e.command(e2eGuild2, e2eGuild2Chan, "whois", discordtest.O("user", "Alice")); strings.Contains(w, "Status:") || strings.Contains(w, "Session:") {
		t.Errorf("/whois Alice in the second server shows her status: %q", w)
	}

	// /status: this server's pairings only.
	if s := e.command(e2eGuild2, e2eGuild2Chan, "status"); !strings.Contains(s, "Pairings: 0") {
		t.Errorf("/status of the second server: %q, want 0 pairings", s)
	}
	if s := e.command(e2eGuild, e2eChannel, "status"); !strings.Contains(s, "Pairings: 1") {
		t.Errorf("/status of the first server: %q, want 1 pairing", s)
	}

	// Channel names: only the same server's.
	e.say(e2eChannel, fmt.Sprintf("see <#%s> and <#%s>", e2eChannel2, e2eGuild2Chan))
	got := e.waitSentTo("U-Alice", 0, "see ")
	if !strings.Contains(got.Content, "#bob-chat") || strings.Contains(got.Content, "second-alice") {
		t.Errorf("Alice received %q: want the same server's channel named and the other's not", got.Content)
	}

	// /notify add all announces the contacts who agreed to the server: Alice in the first, nobody
	// in the second, and a stranger nowhere.
	for _, g := range []struct{ guild, channel string }{{e2eGuild, e2eNotify}, {e2eGuild2, e2eGuild2Notify}} {
		if a := e.command(g.guild, g.channel, "notify", discordtest.Sub("add", discordtest.O("contact", "all"))); !strings.Contains(a, "every contact who agreed") {
			t.Fatalf("/notify add all answered %q", a)
		}
	}
	e.rf.AddUser(resonite.User{ID: "U-Stranger", Username: "Stranger"}, "")
	status := func(user string, online resonite.OnlineStatus) {
		e.rf.Push(e2eBridgeID, "ReceiveStatusUpdate", resonite.UserStatus{UserID: user, UserSessionID: "desktop",
			OnlineStatus: online, SessionType: resonite.SessionTypeGraphicalClient, LastStatusChange: resonite.NewTime(time.Now()),
			CurrentSessionIndex: -1})
	}
	settle := e.markerSettler()
	// Statuses before the hub's start-up sequence ended are the baseline (see
	// TestE2EFriendOnlineNotifications): come online until it counts.
	for round := 0; !e.channelHas(e2eNotify, "**Alice** is now"); round++ {
		if round == 50 {
			t.Fatal("no online notice for Alice")
		}
		status("U-Stranger", resonite.StatusOffline)
		status("U-Alice", resonite.StatusOffline)
		status("U-Stranger", resonite.StatusOnline) // before Alice's: its notice would come first
		status("U-Alice", resonite.StatusOnline)
		settle()
	}
	for _, ch := range []string{e2eNotify, e2eGuild2Notify} {
		if e.channelHas(ch, "Stranger") {
			t.Errorf("channel %s announced a stranger", ch)
		}
	}
	if e.channelHas(e2eGuild2Notify, "Alice") {
		t.Error("the second server announced Alice, who never agreed to it")
	}
}

// Pairings and subscriptions made before consent existed keep working: they count as consented.
func TestE2EExistingPairingsCountAsConsented(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.withStore(func(st *store.Store) error {
		if _, err := store.Migrate(context.Background(), st.Pool(), migrationsBefore("004")); err != nil {
			return err
		}
		ctx := context.Background()
		if _, err := st.Pool().Exec(ctx, `insert into pairings (guild_id, channel_id, contact_id, contact_username) values ($1, $2, 'U-Alice', 'Alice')`, e2eGuild, e2eChannel); err != nil {
			return err
		}
		_, err := st.Pool().Exec(ctx, `insert into subscriptions (guild_id, channel_id, contact_id) values ($1, $2, 'U-Bob')`, e2eGuild, e2eNotify)
		return err
	})
	e.start()
	e.say(e2eChannel, "still linked")
	e.waitSentTo("U-Alice", 0, "Dana: still linked")
	e.resoniteSays("U-Alice", "MSG-old-pairing", "still here", time.Now())
	e.waitUntil("Alice's message in the old pairing's channel", func() bool { return e.channelHas(e2eChannel, "still here") })
	var ids []string
	e.withStore(func(st *store.Store) (err error) {
		ids, err = st.ConsentedContacts(context.Background(), e2eGuild)
		return err
	})
	if !slices.Equal(ids, []string{"U-Alice", "U-Bob"}) {
		t.Errorf("consented after the migration: %q, want Alice (pairing) and Bob (subscription)", ids)
	}
}

func TestE2ESecretKey(t *testing.T) {
	t.Parallel()
	const key = "e2e-secret-key-0123456789abcdef"
	e := newE2E(t, "BRIDGE_SECRET_KEY="+key).start()
	e.link(e2eChannel, "Alice")
	e.resoniteSays("U-Alice", "MSG-sealed-1", "through a sealed token", time.Now())
	e.waitUntil("the message in Discord", func() bool { return e.channelHas(e2eChannel, "through a sealed token") })
	var hookToken, session string
	e.withStore(func(st *store.Store) error {
		ctx := context.Background()
		if err := st.Pool().QueryRow(ctx, `select webhook_token from pairings`).Scan(&hookToken); err != nil {
			return err
		}
		return st.Pool().QueryRow(ctx, `select token from resonite_account`).Scan(&session)
	})
	for what, v := range map[string]string{"webhook token": hookToken, "session token": session} {
		if !strings.HasPrefix(v, "enc1:") {
			t.Errorf("the %s is stored as %q, want it encrypted", what, v)
		}
	}
	if code := e.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	// Another key, or none, is refused at start with a line naming the variable.
	for _, env := range []string{"BRIDGE_SECRET_KEY=another-key-0123456789abcdef", "BRIDGE_SECRET_KEY="} {
		var logs lockedBuffer
		h := productionHooks()
		h.tune = e.tune
		code := runWith(context.Background(), []string{"-env-file", noDotenvPath(t)}, append(slices.Clone(e.env), env), io.Discard, &logs, h)
		if code == 0 || !strings.Contains(logs.String(), "BRIDGE_SECRET_KEY") {
			t.Errorf("with %s the daemon exited %d:\n%s", env, code, logs.String())
		}
		if strings.Contains(logs.String(), key) {
			t.Error("the logs show the key")
		}
	}

	// The right key reads what it sealed: the stored session and webhook still work.
	e.start()
	e.resoniteSays("U-Alice", "MSG-sealed-2", "after the restart", time.Now())
	e.waitUntil("the message after the restart", func() bool { return e.channelHas(e2eChannel, "after the restart") })
}

// migrationsBefore is the embedded migrations older than version: a database as an earlier
// release left it.
func migrationsBefore(version string) fs.FS {
	out := fstest.MapFS{}
	names, _ := fs.Glob(migrations.FS, "*.sql")
	for _, n := range names {
		if n < version {
			b, _ := fs.ReadFile(migrations.FS, n)
			out[n] = &fstest.MapFile{Data: b}
		}
	}
	return out
}
