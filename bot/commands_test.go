package bot_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bot"
	"github.com/resonite-bridge/resonite-bridge/bot/discordtest"
	"github.com/resonite-bridge/resonite-bridge/bridge"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

func choiceValues(r discordtest.Reply) []string {
	var out []string
	for _, c := range r.Choices {
		out = append(out, c.Value.(string))
	}
	return out
}

func fieldMap(em *discordgo.MessageEmbed) map[string]string {
	m := map[string]string{}
	for _, f := range em.Fields {
		m[f.Name] = f.Value
	}
	return m
}

func TestWhois(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	e.presence.set("U-Alice", core.StatusOnline, &core.Session{ID: "S-abc", Name: "Cozy *Cafe*", URL: "https://go.resonite.com/session/S-abc"})
	for _, tc := range []struct {
		name, user string
		fields     map[string]string
		noFields   []string
	}{
		{"contact by name, online in a session", "alice", map[string]string{
			"User ID": "`U-Alice`", "Registered": "<t:1682899200:D>", "Contact": "contact of the bridge",
			"Status": "🟢 Online", "Session": `[Cozy \*Cafe\*](https://go.resonite.com/session/S-abc)`}, nil},
		{"by U- id, not a contact", "U-Stranger", map[string]string{"User ID": "`U-Stranger`"}, []string{"Status", "Contact"}},
		{"pending request", "Carol", map[string]string{"Contact": "asked to become a contact"}, []string{"Status"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := e.command("whois", discordtest.O("user", tc.user)).Final(t)
			if len(f.Embeds) != 1 {
				t.Fatalf("answer %q has %d embeds", f.Content, len(f.Embeds))
			}
			got := fieldMap(f.Embeds[0])
			for k, want := range tc.fields {
				if got[k] != want {
					t.Errorf("field %s = %q, want %q", k, got[k], want)
				}
			}
			for _, k := range tc.noFields {
				if _, ok := got[k]; ok {
					t.Errorf("field %s shown: %q", k, got[k])
				}
			}
		})
	}
	alice := e.command("whois", discordtest.O("user", "Alice")).Final(t).Embeds[0]
	if alice.Thumbnail == nil || alice.Thumbnail.URL != "https://assets.resonite.com/0123456789abcdef" {
		t.Errorf("icon = %+v, want the resdb icon as https", alice.Thumbnail)
	}
	if alice.Description != "Hello there" {
		t.Errorf("tagline = %q, want rich text stripped", alice.Description)
	}

	nf := e.command("whois", discordtest.O("user", "NoSuchPerson")).Final(t)
	if !nf.Ephemeral() || !strings.Contains(nf.Content, "No Resonite user “NoSuchPerson”") {
		t.Errorf("not found answered %q (ephemeral=%v)", nf.Content, nf.Ephemeral())
	}
	e.rf.FailNext("", http.StatusInternalServerError, 0, 10)
	fail := e.command("whois", discordtest.O("user", "U-Bob")).Final(t)
	if !fail.Ephemeral() || !strings.Contains(fail.Content, "Resonite") {
		t.Errorf("API error answered %q", fail.Content)
	}
}

func TestAutocomplete(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	_, _ = e.store.AddSubscription(t.Context(), core.Subscription{ChannelID: channelID, ContactID: "U-Bob"})
	_, _ = e.store.AddSubscription(t.Context(), core.Subscription{ChannelID: channelID, ContactID: "all"})
	for _, tc := range []struct {
		name string
		in   discordtest.Invoke
		want []string
	}{
		// Contacts first, then the user search (Alicia is no contact).
		{"whois", discordtest.Autocomplete(guildID, channelID, "whois", discordtest.Focused("user", "ali")), []string{"U-Alice", "U-Alicia"}},
		{"whois one letter: contacts only", discordtest.Autocomplete(guildID, channelID, "whois", discordtest.Focused("user", "a")), []string{"U-Alice", "U-Dave"}},
		// Only mutual contacts can be linked: not Carol (requested) nor Dave (pending).
		{"link", discordtest.Autocomplete(guildID, channelID, "link", discordtest.Focused("contact", "")), []string{"U-Alice", "U-Bob"}},
		{"notify add", discordtest.Autocomplete(guildID, channelID, "notify", discordtest.Sub("add", discordtest.Focused("contact", ""))), []string{"all", "U-Alice", "U-Bob"}},
		{"notify remove", discordtest.Autocomplete(guildID, channelID, "notify", discordtest.Sub("remove", discordtest.Focused("contact", ""))), []string{"U-Bob", "all"}},
		{"no match", discordtest.Autocomplete(guildID, channelID, "link", discordtest.Focused("contact", "zzz")), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ix := e.dc.Interact(t, tc.in)
			cb := ix.Callback()
			if cb.Type != discordgo.InteractionApplicationCommandAutocompleteResult {
				t.Fatalf("callback type %d", cb.Type)
			}
			if got := choiceValues(cb); !slices.Equal(got, tc.want) {
				t.Errorf("choices %v, want %v", got, tc.want)
			}
			if !strings.Contains(string(cb.Raw), `"choices":`) {
				t.Errorf("the answer has no choices field: %s", cb.Raw)
			}
		})
	}
}

func TestLinkUnlinkLinks(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()

	f := e.command("link", discordtest.O("contact", "U-Alice")).Final(t)
	if f.Ephemeral() || !strings.Contains(f.Content, "Linked <#"+channelID+"> with Resonite contact **Alice**") {
		t.Errorf("/link answered %q", f.Content)
	}
	p, ok := e.store.pairing(channelID)
	if !ok || p.ContactID != "U-Alice" || p.GuildID != guildID || p.CreatedBy == "" {
		t.Fatalf("pairing = %+v, %v", p, ok)
	}
	if p.WebhookID == "" || p.WebhookToken == "" {
		t.Errorf("the pairing's webhook was not prepared: %+v", p)
	}
	if hooks := e.dc.Webhooks(channelID); len(hooks) != 1 || hooks[0].ID != p.WebhookID {
		t.Errorf("webhooks in the channel: %+v", hooks)
	}

	again := e.command("link", discordtest.O("contact", "Alice")).Final(t)
	if !again.Ephemeral() || !strings.Contains(again.Content, "already linked with **Alice**") {
		t.Errorf("/link of the same contact answered %q", again.Content)
	}
	// A second contact makes a group channel.
	group := e.command("link", discordtest.O("contact", "Bob")).Final(t)
	if group.Ephemeral() || !strings.Contains(group.Content, "Added **Bob** (`U-Bob`) to <#"+channelID+">, now a group channel of 2 contacts") {
		t.Errorf("second /link answered %q", group.Content)
	}
	if got := e.store.channelContacts(channelID); !slices.Equal(got, []string{"U-Alice", "U-Bob"}) {
		t.Fatalf("channel contacts = %v, want Alice and Bob", got)
	}
	links := e.command("links").Final(t)
	if !links.Ephemeral() || !strings.Contains(links.Content, "**1 linked channel(s)**") ||
		!strings.Contains(links.Content, "<#"+channelID+"> ↔ **Alice** (`U-Alice`), **Bob** (`U-Bob`)") {
		t.Errorf("/links answered %q", links.Content)
	}
	ix := e.dc.Interact(t, discordtest.Autocomplete(guildID, channelID, "unlink", discordtest.Focused("contact", "")))
	if got := choiceValues(ix.Callback()); !slices.Equal(got, []string{"U-Alice", "U-Bob"}) {
		t.Errorf("/unlink suggests %v, want the channel's contacts", got)
	}
	one := e.command("unlink", discordtest.O("contact", "bob")).Final(t)
	if !strings.Contains(one.Content, "Removed **Bob** from <#"+channelID+">. Still linked here: **Alice** (`U-Alice`).") {
		t.Errorf("/unlink contact:bob answered %q", one.Content)
	}
	if got := e.store.channelContacts(channelID); !slices.Equal(got, []string{"U-Alice"}) {
		t.Fatalf("channel contacts after removing Bob = %v, want Alice", got)
	}
	gone := e.command("unlink", discordtest.O("contact", "U-Bob")).Final(t)
	if !gone.Ephemeral() || !strings.Contains(gone.Content, "“U-Bob” is not linked in this channel. Linked here: **Alice**") {
		t.Errorf("/unlink of a removed contact answered %q", gone.Content)
	}
	un := e.command("unlink").Final(t)
	if !strings.Contains(un.Content, "Unlinked <#"+channelID+"> from **Alice**") {
		t.Errorf("/unlink answered %q", un.Content)
	}
	if _, ok := e.store.pairing(channelID); ok {
		t.Error("the pairing is still stored after /unlink")
	}
	un2 := e.command("unlink").Final(t)
	if !un2.Ephemeral() || !strings.Contains(un2.Content, "not linked") {
		t.Errorf("second /unlink answered %q", un2.Content)
	}
	empty := e.command("links").Final(t)
	if !strings.Contains(empty.Content, "No channel of this server is linked") {
		t.Errorf("/links with none answered %q", empty.Content)
	}
	// Relinking reuses the webhook the bot made before instead of creating another.
	e.command("link", discordtest.O("contact", "Bob")).Final(t)
	if hooks := e.dc.Webhooks(channelID); len(hooks) != 1 {
		t.Errorf("%d webhooks after relinking, want the one adopted", len(hooks))
	}
}

// TestLinkFullChannel: an 11th contact is refused, with what to do.
func TestLinkFullChannel(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	for i := range core.MaxChannelContacts {
		if _, err := e.store.CreatePairing(t.Context(), core.Pairing{GuildID: guildID, ChannelID: channelID, ContactID: fmt.Sprintf("U-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	f := e.command("link", discordtest.O("contact", "Alice")).Final(t)
	if !f.Ephemeral() || !strings.Contains(f.Content, "holds 10 contacts already") || !strings.Contains(f.Content, "/unlink contact") {
		t.Errorf("/link into a full channel answered %q", f.Content)
	}
	if got := e.store.channelContacts(channelID); len(got) != core.MaxChannelContacts || slices.Contains(got, "U-Alice") {
		t.Errorf("channel contacts = %v", got)
	}
}

func TestLinkByAlternateUsername(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	f := e.command("link", discordtest.O("contact", "aliceold")).Final(t)
	if !strings.Contains(f.Content, "with Resonite contact **Alice**") {
		t.Errorf("/link by a former username answered %q", f.Content)
	}
	if p, ok := e.store.pairing(channelID); !ok || p.ContactID != "U-Alice" {
		t.Errorf("pairing = %+v, %v; want U-Alice", p, ok)
	}
}

func TestLinkExplainsHowToBefriend(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, contact string
		auto          bool
		want          []string
	}{
		{"stranger", "Stranger", false, []string{"“Stranger” is not a contact of **BridgeBot**", "send **BridgeBot** a contact request", "RESONITE_AUTO_ACCEPT_CONTACTS=true"}},
		{"stranger, auto-accept", "Stranger", true, []string{"accepts it automatically", "Then run /link again"}},
		{"they asked, not accepted", "Carol", false, []string{"**Carol** asked **BridgeBot** to become a contact", "accept it on **BridgeBot**"}},
		{"bridge asked, they did not accept", "Dave", false, []string{"**Dave** must accept the request"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(o *bot.Options) {
				o.Status = fakeStatus{bot.BridgeStatus{AccountUsername: "BridgeBot", AutoAccept: tc.auto}}
			}).start()
			f := e.command("link", discordtest.O("contact", tc.contact)).Final(t)
			if !f.Ephemeral() {
				t.Error("the refusal is public")
			}
			for _, w := range tc.want {
				if !strings.Contains(f.Content, w) {
					t.Errorf("answer %q lacks %q", f.Content, w)
				}
			}
			if _, ok := e.store.pairing(channelID); ok {
				t.Error("a pairing was stored for a non-contact")
			}
		})
	}
}

func TestAdminCommandsCheckPermissions(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	for _, name := range []string{"link", "unlink", "links", "notify"} {
		in := discordtest.Command(guildID, channelID, name, discordtest.O("contact", "Alice"))
		in.Permissions = discordgo.PermissionSendMessages // no Manage Channels
		f := e.dc.Interact(t, in).Final(t)
		if !f.Ephemeral() || !strings.Contains(f.Content, "Manage Channels") {
			t.Errorf("/%s without Manage Channels answered %q", name, f.Content)
		}
	}
	if _, ok := e.store.pairing(channelID); ok {
		t.Error("a pairing was made without the permission")
	}
	// Anyone may use the others.
	in := discordtest.Command(guildID, channelID, "status")
	in.Permissions = discordgo.PermissionSendMessages
	if f := e.dc.Interact(t, in).Final(t); len(f.Embeds) != 1 {
		t.Errorf("/status for a plain member answered %q", f.Content)
	}
}

func TestNotify(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	add := func(who string) discordtest.Reply {
		return e.command("notify", discordtest.Sub("add", discordtest.O("contact", who))).Final(t)
	}
	if f := add("Alice"); !strings.Contains(f.Content, "announces when **Alice** comes online") {
		t.Errorf("add Alice: %q", f.Content)
	}
	if f := add("all"); !strings.Contains(f.Content, "every contact") {
		t.Errorf("add all: %q", f.Content)
	}
	if f := add("alice"); !strings.Contains(f.Content, "already announces") {
		t.Errorf("add Alice twice: %q", f.Content)
	}
	if f := add("Stranger"); !f.Ephemeral() || !strings.Contains(f.Content, "not a contact") || !strings.Contains(f.Content, "/notify add again") {
		t.Errorf("add a stranger: %q", f.Content)
	}
	list := e.command("notify", discordtest.Sub("list")).Final(t)
	if !strings.Contains(list.Content, "**Alice** (`U-Alice`)") || !strings.Contains(list.Content, "every contact") {
		t.Errorf("list: %q", list.Content)
	}
	subs, _ := e.store.SubscriptionsByChannel(t.Context(), channelID)
	var ids []string
	for _, s := range subs {
		ids = append(ids, s.ContactID)
		if s.GuildID != guildID || s.CreatedBy == "" {
			t.Errorf("subscription %+v lacks guild or creator", s)
		}
	}
	if !slices.Equal(ids, []string{"U-Alice", "all"}) {
		t.Errorf("stored subscriptions %v", ids)
	}
	if f := e.command("notify", discordtest.Sub("remove", discordtest.O("contact", "U-Alice"))).Final(t); !strings.Contains(f.Content, "no longer announces") {
		t.Errorf("remove: %q", f.Content)
	}
	if f := e.command("notify", discordtest.Sub("remove", discordtest.O("contact", "U-Alice"))).Final(t); !f.Ephemeral() || !strings.Contains(f.Content, "does not announce") {
		t.Errorf("remove twice: %q", f.Content)
	}
	if f := e.command("notify", discordtest.Sub("remove", discordtest.O("contact", "all"))).Final(t); !strings.Contains(f.Content, "no longer announces") {
		t.Errorf("remove all: %q", f.Content)
	}
	if f := e.command("notify", discordtest.Sub("list")).Final(t); !strings.Contains(f.Content, "announces nobody") {
		t.Errorf("empty list: %q", f.Content)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *bot.Options) {
		o.Status = fakeStatus{bot.BridgeStatus{
			HubState: "connecting", AccountUserID: bridgeID, AccountUsername: "BridgeBot", Pairings: 4, QueueDepth: 7,
			QueueToDiscord: 5, QueueToResonite: 2,
			FailedMessages: 2, LastError: "delivering to_discord message 9: boom", AutoAccept: true,
			CatchUp: bridge.CatchUpProgress{Running: true, ResoniteDone: true, PairingsDone: 3, PairingsTotal: 10,
				Recovered: 42, HeldPairings: 7},
		}}
	}).start()
	f := e.command("status").Final(t)
	if !f.Ephemeral() || len(f.Embeds) != 1 {
		t.Fatalf("/status answered %+v", f)
	}
	got := fieldMap(f.Embeds[0])
	for k, want := range map[string]string{
		"Discord gateway": "🟢 connected", "Resonite hub": "connecting", "Resonite account": "BridgeBot (`U-BridgeBot`)",
		"Pairings": "4", "Queue": "7 waiting (5 to Discord, 2 to Resonite), 2 failed", "Last error": "delivering to_discord message 9: boom",
		"Catch-up": "running: 3 of 10 channels read; messages of 7 channels to Resonite wait for it; 42 messages recovered",
	} {
		if !strings.HasPrefix(got[k], want) {
			t.Errorf("field %s = %q, want it to start with %q", k, got[k], want)
		}
	}
	if !strings.Contains(got["Resonite account"], "automatically") {
		t.Errorf("auto-accept not shown: %q", got["Resonite account"])
	}
}

func TestCommandPanicAnswersTheUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *bot.Options) { o.Resonite = panicky{o.Resonite} }).start()
	f := e.command("whois", discordtest.O("user", "Alice")).Final(t)
	if !f.Ephemeral() || !strings.Contains(f.Content, "internal error") {
		t.Errorf("a panicking command answered %q", f.Content)
	}
	// The bot is still serving.
	if f := e.command("status").Final(t); len(f.Embeds) != 1 {
		t.Errorf("after a panic /status answered %q", f.Content)
	}
}

type panicky struct{ bot.Resonite }

func (panicky) UserByName(context.Context, string) (core.User, error) { panic("boom") }

// TestConsentWaits: a contact who has not agreed to this server is asked, not linked, and
// shows no status here; what waits is listed and can be cancelled.
func TestConsentWaits(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	e.consent.set(guildID, "U-Bob") // Alice never agreed to this server
	e.presence.set("U-Alice", core.StatusOnline, nil)

	f := e.command("link", discordtest.O("contact", "Alice")).Final(t)
	if !strings.Contains(f.Content, "has not agreed") || strings.Contains(f.Content, "Linked") {
		t.Errorf("/link answered %q, want it to wait", f.Content)
	}
	if _, ok := e.store.pairing(channelID); ok {
		t.Fatal("a pairing was made without consent")
	}
	reqs, _ := e.consent.ConsentRequests(t.Context(), guildID)
	if len(reqs) != 1 || reqs[0].ContactID != "U-Alice" || reqs[0].Kind != core.ConsentPairing || reqs[0].ChannelID != channelID ||
		reqs[0].GuildName == "" || reqs[0].ChannelName == "" || reqs[0].CreatedBy == "" {
		t.Fatalf("requests %+v", reqs)
	}
	if l := e.command("links").Final(t); !strings.Contains(l.Content, "⏳ **Alice**") {
		t.Errorf("/links answered %q, want the waiting request", l.Content)
	}
	if n := e.command("notify", discordtest.Sub("add", discordtest.O("contact", "Alice"))).Final(t); !strings.Contains(n.Content, "has not agreed") {
		t.Errorf("/notify add answered %q, want it to wait", n.Content)
	}
	w := fieldMap(e.command("whois", discordtest.O("user", "Alice")).Final(t).Embeds[0])
	if _, shown := w["Status"]; shown {
		t.Errorf("/whois shows the status of a contact who never agreed to this server: %v", w)
	}
	for _, tc := range []struct {
		name string
		in   discordtest.Invoke
	}{
		{"link", discordtest.Autocomplete(guildID, channelID, "link", discordtest.Focused("contact", ""))},
		{"whois", discordtest.Autocomplete(guildID, channelID, "whois", discordtest.Focused("user", "a"))},
	} {
		for _, c := range e.dc.Interact(t, tc.in).Callback().Choices {
			if c.Value == "U-Dave" {
				t.Errorf("/%s autocomplete offers %v, who neither agreed nor was asked", tc.name, c.Value)
			}
		}
	}
	if u := e.command("unlink").Final(t); !strings.Contains(u.Content, "Cancelled") {
		t.Errorf("/unlink answered %q, want the waiting request cancelled", u.Content)
	}
	if reqs, _ := e.consent.ConsentRequests(t.Context(), guildID); len(reqs) != 0 {
		t.Errorf("still waiting after /unlink: %+v", reqs)
	}
}
