package bot_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bot"
	"github.com/resonite-bridge/resonite-bridge/bot/discordtest"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

func (e *env) pair(ch, contact string) {
	e.t.Helper()
	if _, err := e.store.CreatePairing(context.Background(), core.Pairing{GuildID: guildID, ChannelID: ch, ContactID: contact, ContactUsername: contact}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) post(ch string, p core.Post) string {
	e.t.Helper()
	id, err := e.bot.Post(context.Background(), ch, p)
	if err != nil {
		e.t.Fatalf("Post: %v", err)
	}
	return id
}

func webhookCreates(e *env) int { return len(e.dc.CallsTo("POST", "/channels/"+channelID+"/webhooks")) }

// allowedMentionsEmpty reports whether a request body carries allowed_mentions with an explicit
// empty parse list.
func allowedMentionsEmpty(body []byte) bool {
	var b struct {
		AM *struct {
			Parse []string `json:"parse"`
		} `json:"allowed_mentions"`
	}
	if json.Unmarshal(body, &b) != nil || b.AM == nil {
		return false
	}
	return b.AM.Parse != nil && len(b.AM.Parse) == 0 && strings.Contains(string(body), `"parse":[]`)
}

func TestPostThroughWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	e.pair(channelID, "U-Alice")
	id := e.post(channelID, core.Post{Username: "Alice", AvatarURL: "https://assets.resonite.com/abc123", Content: "hi @everyone and @here <@&1>"})
	msgs := e.dc.ChannelMessages(channelID)
	if len(msgs) != 1 || msgs[0].ID != id {
		t.Fatalf("channel holds %d messages, want the posted one %s", len(msgs), id)
	}
	m := msgs[0]
	if m.Author.Username != "Alice" || m.Author.Avatar != "https://assets.resonite.com/abc123" || m.WebhookID == "" {
		t.Errorf("posted as %+v (webhook %q), want Alice with the https avatar through a webhook", m.Author, m.WebhookID)
	}
	if m.MentionEveryone {
		t.Error("@everyone relayed from Resonite pinged the server")
	}
	for _, c := range e.dc.CallsTo("POST", "/webhooks/") {
		if !allowedMentionsEmpty(c.Body) {
			t.Errorf("webhook execution without allowed_mentions {parse: []}: %s", c.Body)
		}
	}
	p, _ := e.store.pairing(channelID)
	if p.WebhookID != m.WebhookID || p.WebhookToken == "" {
		t.Errorf("the webhook is not stored with the pairing: %+v", p)
	}
	// A link Discord cannot fetch (the adapter sends https only; this one slipped through) is
	// left out rather than refused.
	e.post(channelID, core.Post{Username: "Alice", AvatarURL: "resdb:///abc123.webp", Content: "again"})
	if a := e.dc.ChannelMessages(channelID)[0].Author.Avatar; a != "" {
		t.Errorf("a resdb:/// avatar was sent as %q, want it left out", a)
	}
	if n := webhookCreates(e); n != 1 {
		t.Errorf("%d webhooks created for two posts, want 1", n)
	}
	// Messages of the bot's own webhook come back on the gateway as FromSelf, so they are
	// never relayed back.
	e.rec.waitUntil(t, "the webhook's messages seen on the gateway", func() bool { return len(e.rec.messages()) >= 2 })
	for _, m := range e.rec.messages() {
		if !m.FromSelf || m.WebhookID != p.WebhookID {
			t.Errorf("the echo of a webhook post %q came back with FromSelf=%v webhook %q", m.Content, m.FromSelf, m.WebhookID)
		}
	}
}

func TestWebhookAdoptedAfterRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	// A notification channel is not paired: its webhook lives only on Discord.
	e.post(otherChan, core.Post{Username: "Resonite", Content: "Alice is online"})
	if n := len(e.dc.Webhooks(otherChan)); n != 1 {
		t.Fatalf("%d webhooks after the first post", n)
	}
	// Someone else's webhook in the channel must not be taken over.
	foreign := e.dc.AddWebhook(channelID, "Other App", "555")
	e.pair(channelID, "U-Alice")
	e.post(channelID, core.Post{Username: "Alice", Content: "one"})

	for i := 0; i < 3; i++ {
		e.restart()
		e.post(otherChan, core.Post{Username: "Resonite", Content: "Bob is online"})
		e.post(channelID, core.Post{Username: "Alice", Content: "after restart"})
	}
	if n := len(e.dc.Webhooks(otherChan)); n != 1 {
		t.Errorf("%d webhooks in the notification channel after 3 restarts, want the adopted one", n)
	}
	hooks := e.dc.Webhooks(channelID)
	if len(hooks) != 2 {
		t.Errorf("%d webhooks in the paired channel, want the foreign one and ours", len(hooks))
	}
	for _, m := range e.dc.ChannelMessages(channelID) {
		if m.WebhookID == foreign.ID {
			t.Error("the bot posted through another application's webhook")
		}
	}
	if lists := e.dc.CallsTo("GET", "/channels/"+channelID+"/webhooks"); len(lists) != 1 {
		t.Errorf("the paired channel's webhooks were listed %d times; the stored webhook should be reused", len(lists))
	}
}

func TestWebhookRecreatedAfterDeletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	e.pair(channelID, "U-Alice")
	e.post(channelID, core.Post{Username: "Alice", Content: "one"})
	old, _ := e.store.pairing(channelID)
	e.dc.DeleteWebhook(old.WebhookID) // an admin deleted it
	id := e.post(channelID, core.Post{Username: "Alice", Content: "two"})
	now, _ := e.store.pairing(channelID)
	if now.WebhookID == "" || now.WebhookID == old.WebhookID {
		t.Errorf("pairing webhook %q after recreation (old %q)", now.WebhookID, old.WebhookID)
	}
	if msgs := e.dc.ChannelMessages(channelID); len(msgs) != 2 || msgs[0].ID != id || msgs[0].Content != "two" {
		t.Errorf("the post after recreation is missing: %d messages", len(msgs))
	}
}

func TestFallbackWithoutManageWebhooks(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	e.dc.SetManageWebhooks(channelID, false)
	e.pair(channelID, "U-Alice")
	link := e.command("unlink").Final(t) // re-link through the command to see its warning
	_ = link
	f := e.command("link", discordtest.O("contact", "Alice")).Final(t)
	if !strings.Contains(f.Content, "lacks **Manage Webhooks**") {
		t.Errorf("/link did not warn about the fallback: %q", f.Content)
	}
	e.post(channelID, core.Post{Username: "Al*ce", Content: "hello @everyone"})
	msgs := e.dc.ChannelMessages(channelID)
	last := msgs[0]
	if last.WebhookID != "" || last.Content != `**Al\*ce**: hello @everyone` || last.MentionEveryone {
		t.Errorf("fallback message = %q (webhook %q, mention_everyone %v)", last.Content, last.WebhookID, last.MentionEveryone)
	}
	for _, c := range e.dc.CallsTo("POST", "/channels/"+channelID+"/messages") {
		if !allowedMentionsEmpty(c.Body) {
			t.Errorf("bot message without allowed_mentions {parse: []}: %s", c.Body)
		}
	}
	st := e.command("status").Final(t)
	if got := fieldMap(st.Embeds[0])["Posting as the bot (no Manage Webhooks)"]; got != "<#"+channelID+">" {
		t.Errorf("/status fallback field = %q", got)
	}
}

func TestSanitizeWebhookName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("ä", 100)
	for _, tc := range []struct{ in, want string }{
		{"Alice", "Alice"},
		{"  Alice \n Smith ", "Alice Smith"},
		{"Discord Fan", "Discörd Fan"},
		{"my DISCORD", "my DISCÖRD"},
		{"xxdiscordxx", "xxdiscördxx"},
		{"Clyde", "Clydë"},
		{"everyone", "everyone (Resonite)"},
		{"Here", "Here (Resonite)"},
		{"", "Resonite user"},
		{"\x00\x01", "Resonite user"},
		{long, strings.Repeat("ä", 79) + "…"},
		{"😀" + strings.Repeat("x", 85), "😀" + strings.Repeat("x", 78) + "…"},
	} {
		got := bot.SanitizeWebhookName(tc.in)
		if got != tc.want {
			t.Errorf("SanitizeWebhookName(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if n := utf8.RuneCountInString(got); n < 1 || n > 80 {
			t.Errorf("SanitizeWebhookName(%q) has %d runes", tc.in, n)
		}
	}
}

func TestReservedNamesAreAccepted(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	for _, name := range []string{"Discord", "clyde", "everyone", strings.Repeat("n", 120)} {
		if _, err := e.bot.Post(t.Context(), otherChan, core.Post{Username: name, Content: "x"}); err != nil {
			t.Errorf("posting as %q: %v", name, err)
		}
	}
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	e.pair(channelID, "U-Alice")
	e.post(channelID, core.Post{Username: "Alice", Content: "first"})

	// A rate-limited webhook comes back at once, with the wait, so the bridge can coalesce.
	e.dc.FailNext429(discordtest.Limit{PathContains: "/webhooks/", Count: 1, RetryAfter: 700 * time.Millisecond})
	_, err := e.bot.Post(t.Context(), channelID, core.Post{Username: "Alice", Content: "limited"})
	var rl *core.RetryAfterError
	if !errors.As(err, &rl) || rl.After != 700*time.Millisecond {
		t.Fatalf("Post under a webhook 429 returned %v, want core.RetryAfter of 700ms", err)
	}
	if d, ok := core.Wait(err); !ok || d != 700*time.Millisecond {
		t.Errorf("core.Wait(%v) = %v, %v; want Discord's 700ms", err, d, ok)
	}
	if core.IsPermanent(err) {
		t.Error("a rate limit counts as permanent")
	}
	if n := len(e.dc.ChannelMessages(channelID)); n != 1 {
		t.Errorf("%d messages: the limited post went through or the first vanished", n)
	}

	// Other 429s (global, Cloudflare's HTML ones) are waited out: the call succeeds.
	for _, l := range []discordtest.Limit{
		{PathContains: "/channels/" + channelID + "/messages", Count: 2, Global: true, RetryAfter: 30 * time.Millisecond},
		{PathContains: "/channels/" + channelID + "/messages", Count: 1, Cloudflare: true, RetryAfter: 40 * time.Millisecond},
	} {
		e.dc.FailNext429(l)
		if err := e.bot.Reply(t.Context(), channelID, "1", "⚠ note"); err != nil {
			t.Errorf("Reply through a 429 (%+v): %v", l, err)
		}
	}
	if n := len(e.dc.ChannelMessages(channelID)); n != 3 {
		t.Errorf("%d messages after two waited-out replies, want 3", n)
	}
}

func TestReplyPingsNobody(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	orig := e.dc.AppendMessage(discordtest.UserMessage{ChannelID: channelID, Content: "hello"})
	if err := e.bot.Reply(t.Context(), channelID, orig.ID, "⚠ Not delivered to Resonite: contact removed"); err != nil {
		t.Fatal(err)
	}
	calls := e.dc.CallsTo("POST", "/channels/"+channelID+"/messages")
	if len(calls) != 1 {
		t.Fatalf("%d sends", len(calls))
	}
	body := string(calls[0].Body)
	if !allowedMentionsEmpty(calls[0].Body) || !strings.Contains(body, `"replied_user":false`) {
		t.Errorf("reply body %s must ping nobody, not even the author", body)
	}
	msgs := e.dc.ChannelMessages(channelID)
	if msgs[0].MessageReference == nil || msgs[0].MessageReference.MessageID != orig.ID {
		t.Errorf("the reply does not reference the message: %+v", msgs[0].MessageReference)
	}
}

func TestWebhookTokensNeverLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	e.pair(channelID, "U-Alice")
	e.post(channelID, core.Post{Username: "Alice", Content: "one"})
	p, _ := e.store.pairing(channelID)
	tokens := []string{p.WebhookToken}
	e.dc.DeleteWebhook(p.WebhookID)
	e.post(channelID, core.Post{Username: "Alice", Content: "two"})
	p2, _ := e.store.pairing(channelID)
	tokens = append(tokens, p2.WebhookToken)
	// A global 429 on the webhook is waited out and logged with its path.
	e.dc.FailNext429(discordtest.Limit{PathContains: "/webhooks/", Count: 1, Global: true})
	e.post(channelID, core.Post{Username: "Alice", Content: "after a global limit"})
	// Errors that carry the webhook URL: a 429 and a dead channel.
	e.dc.FailNext429(discordtest.Limit{PathContains: "/webhooks/", Count: 1})
	_, err429 := e.bot.Post(t.Context(), channelID, core.Post{Content: "x"})
	e.dc.DeleteChannel(channelID)
	_, errGone := e.bot.Post(t.Context(), channelID, core.Post{Content: "y"})
	if errGone == nil || !core.IsPermanent(errGone) {
		t.Errorf("posting into a deleted channel: %v, want a permanent error", errGone)
	}
	for _, err := range []error{err429, errGone} {
		for _, tok := range tokens {
			if err != nil && strings.Contains(err.Error(), tok) {
				t.Errorf("error shows a webhook token: %v", err)
			}
		}
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
	if leaked := e.secretsInLogs(append(tokens, e.dc.Token)...); len(leaked) > 0 {
		t.Errorf("logs contain secrets %q:\n%s", leaked, e.logs.String())
	}
	if !strings.Contains(e.logs.String(), "/webhooks/"+p2.WebhookID+"/[redacted]") {
		t.Errorf("the rate-limit line does not show the redacted webhook path; the check above proves little:\n%s", e.logs.String())
	}
}

func TestHistoryOldestFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, e.dc.AppendMessage(discordtest.UserMessage{ChannelID: channelID, Content: string(rune('a' + i))}).ID)
	}
	got, err := e.bot.History(t.Context(), channelID, ids[0], 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != ids[1] || got[1].ID != ids[2] || got[0].Content != "b" {
		t.Errorf("History after %s = %+v, want b, c", ids[0], got)
	}
	rest, _ := e.bot.History(t.Context(), channelID, got[1].ID, 100)
	if len(rest) != 2 || rest[1].ID != ids[4] {
		t.Errorf("next page = %+v", rest)
	}
	_, err = e.bot.History(t.Context(), "999", "", 10)
	if err == nil || !core.IsPermanent(err) {
		t.Errorf("history of an unknown channel: %v, want a permanent error", err)
	}
	var rerr *discordgo.RESTError
	if !errors.As(err, &rerr) {
		t.Errorf("the REST error is not kept in the chain: %v", err)
	}
}

// TestCommandsBypassTheGlobalLimit: Discord does not count interaction answers against the
// global rate limit, so a command answers even while relaying has queued up the bot's budget.
func TestCommandsBypassTheGlobalLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *bot.Options) { o.RequestRate = 2 }).start()
	// 100 queued requests at 2 a second: 50 s of backlog, far beyond Discord's 3 s deadline
	// (and beyond the fake's own wait, which would fail the test if answers queued too).
	// (Each in a channel of its own: discordgo itself serialises requests to one route.)
	for i := 0; i < 100; i++ {
		go func() { _, _ = e.bot.History(t.Context(), strconv.Itoa(200000000000000000+i), "", 1) }()
	}
	f := e.command("status").Final(t)
	if len(f.Embeds) != 1 {
		t.Errorf("/status behind a full global limit answered %+v", f)
	}
	// Deferred answers are edited through the application's webhook route: exempt too.
	seedSessions(e.rf, 3)
	if f := e.command("sessions").Final(t); len(f.Embeds) == 0 {
		t.Errorf("/sessions behind a full global limit answered %q", f.Content)
	}
}
