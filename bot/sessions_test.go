package bot_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bot"
	"github.com/resonite-bridge/resonite-bridge/bot/discordtest"
	"github.com/resonite-bridge/resonite-bridge/resonite"
	"github.com/resonite-bridge/resonite-bridge/resonite/resonitetest"
)

func strp(s string) *string { return &s }

// seedSessions adds n public sessions; session i has i active users (so the busiest is last
// added), host "Host<i%3>", and every third one is an empty headless session.
func seedSessions(f *resonitetest.Fake, n int) {
	for i := 1; i <= n; i++ {
		s := resonite.SessionInfo{
			SessionID:    fmt.Sprintf("S-%04d", i),
			Name:         fmt.Sprintf("<color=yellow>World</color> <b>%d</b>", i),
			HostUsername: fmt.Sprintf("Host%d", i%3),
			HostUserID:   strp(fmt.Sprintf("U-Host%d", i%3)),
			ActiveUsers:  i, JoinedUsers: i + 1, MaxUsers: 16,
			AccessLevel:  resonite.AccessAnyone,
			ThumbnailURL: strp(fmt.Sprintf("https://skyfrost-archive.resonite.com/thumbnails/%d.webp", i)),
			IsValid:      true,
		}
		if i%3 == 0 {
			s.HeadlessHost, s.ActiveUsers, s.JoinedUsers = true, 0, 0
		}
		f.AddSession(s)
	}
}

func titles(r discordtest.Reply) []string {
	var out []string
	for _, e := range r.Embeds {
		out = append(out, e.Title)
	}
	return out
}

func buttonState(r discordtest.Reply) (prev, next discordtest.Button) {
	b := r.Buttons()
	if len(b) != 2 {
		return discordtest.Button{}, discordtest.Button{}
	}
	return b[0], b[1]
}

func TestSessionsPagesBothWays(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	seedSessions(e.rf, 12) // 4 headless ones have 0 users and sort last

	ix := e.command("sessions")
	first := ix.Final(t)
	if first.Ephemeral() {
		t.Error("/sessions answered privately; it should be visible to the channel")
	}
	if want := []string{"World 11", "World 10", "World 8", "World 7", "World 5"}; strings.Join(titles(first), "|") != strings.Join(want, "|") {
		t.Errorf("page 1 = %v, want %v (busiest first, rich text stripped)", titles(first), want)
	}
	if !strings.Contains(first.Content, "12 public") {
		t.Errorf("content = %q, want the total", first.Content)
	}
	prev, next := buttonState(first)
	if !prev.Disabled || next.Disabled {
		t.Fatalf("page 1 buttons: prev disabled=%v next disabled=%v", prev.Disabled, next.Disabled)
	}

	msgID := ix.MessageID
	click := func(b discordtest.Button) discordtest.Reply {
		t.Helper()
		c := e.dc.Interact(t, discordtest.Click(guildID, channelID, msgID, b.CustomID))
		return c.Final(t)
	}
	page2 := click(next)
	page3 := click(func() discordtest.Button { _, n := buttonState(page2); return n }())
	if got := len(page3.Embeds); got != 2 {
		t.Errorf("page 3 has %d sessions, want 2", got)
	}
	if _, n := buttonState(page3); !n.Disabled {
		t.Error("Next is enabled on the last page")
	}
	back := click(func() discordtest.Button { p, _ := buttonState(page3); return p }())
	if strings.Join(titles(back), "|") != strings.Join(titles(page2), "|") {
		t.Errorf("Prev from page 3 = %v, want page 2 %v", titles(back), titles(page2))
	}
	if !strings.Contains(back.Embeds[len(back.Embeds)-1].Footer.Text, "Page 2/3") {
		t.Errorf("footer = %q", back.Embeds[len(back.Embeds)-1].Footer.Text)
	}
	if calls := e.rf.CallsTo("GET", "/sessions"); len(calls) != 1 {
		t.Errorf("paging called Resonite %d times, want once (the listing is cached)", len(calls))
	}
	// Paging edits the message in place: no new messages.
	if n := len(e.dc.ChannelMessages(channelID)); n != 1 {
		t.Errorf("channel has %d messages after paging, want 1", n)
	}
}

func TestSessionsColdIsDeferredWarmIsImmediate(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	seedSessions(e.rf, 3)
	cold := e.command("sessions")
	if cb := cold.Callback(); cb.Type != discordgo.InteractionResponseDeferredChannelMessageWithSource {
		t.Errorf("cold cache: first callback type %d, want a deferral (5)", cb.Type)
	}
	if f := cold.Final(t); len(f.Embeds) != 2 { // the third is an empty headless one, listed too
		if len(f.Embeds) != 3 {
			t.Errorf("cold answer has %d embeds", len(f.Embeds))
		}
	}
	warm := e.command("sessions")
	cb := warm.Callback()
	if cb.Type != discordgo.InteractionResponseChannelMessageWithSource || len(cb.Embeds) == 0 {
		t.Errorf("warm cache: first callback type %d with %d embeds, want the page itself (4)", cb.Type, len(cb.Embeds))
	}
}

func TestSessionsFiltersMapToTheAPI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		opts  []discordtest.Opt
		query map[string]string // expected query parameters ("" = absent)
		count int
	}{
		{"none", nil, map[string]string{"name": "", "hostName": "", "minActiveUsers": "", "includeEmptyHeadless": ""}, 9},
		{"name", []discordtest.Opt{discordtest.O("name", "<b>1</b>")}, map[string]string{"name": "<b>1</b>"}, 1},
		{"host", []discordtest.Opt{discordtest.O("host", "Host2")}, map[string]string{"hostName": "Host2"}, 3},
		{"min users", []discordtest.Opt{discordtest.O("min_users", 5)}, map[string]string{"minActiveUsers": "5"}, 3},
		{"no empty headless", []discordtest.Opt{discordtest.O("include_empty_headless", false)}, map[string]string{"includeEmptyHeadless": "false"}, 6},
		{"with empty headless", []discordtest.Opt{discordtest.O("include_empty_headless", true)}, map[string]string{"includeEmptyHeadless": "true"}, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t).start()
			seedSessions(e.rf, 9)
			f := e.command("sessions", tc.opts...).Final(t)
			calls := e.rf.CallsTo("GET", "/sessions")
			if len(calls) != 1 {
				t.Fatalf("%d calls to GET /sessions", len(calls))
			}
			for k, want := range tc.query {
				if got := calls[0].Query.Get(k); got != want {
					t.Errorf("query %s = %q, want %q", k, got, want)
				}
			}
			if !strings.Contains(f.Content, fmt.Sprintf("%d public", tc.count)) {
				t.Errorf("content %q, want %d sessions", f.Content, tc.count)
			}
		})
	}
}

func TestSessionsEmbedShowsWhatUsersNeed(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	e.rf.AddSession(resonite.SessionInfo{
		SessionID: "S-U-Host:Theater", Name: "The <color=\"#CC6633\">Hidden</color> Star <3 Theater",
		HostUsername: "Host", ActiveUsers: 2, JoinedUsers: 3, MaxUsers: 34, AccessLevel: resonite.AccessContactsPlus,
		HeadlessHost: true, ThumbnailURL: strp("https://skyfrost-archive.resonite.com/thumbnails/t.webp"),
	})
	f := e.command("sessions").Final(t)
	if len(f.Embeds) != 1 {
		t.Fatalf("%d embeds", len(f.Embeds))
	}
	em := f.Embeds[0]
	if em.Title != "The Hidden Star <3 Theater" {
		t.Errorf("title = %q", em.Title)
	}
	if em.URL != "https://go.resonite.com/session/S-U-Host:Theater" {
		t.Errorf("url = %q", em.URL)
	}
	if em.Thumbnail == nil || em.Thumbnail.URL != "https://skyfrost-archive.resonite.com/thumbnails/t.webp" {
		t.Errorf("thumbnail = %+v", em.Thumbnail)
	}
	fields := map[string]string{}
	for _, fl := range em.Fields {
		fields[fl.Name] = fl.Value
	}
	for k, want := range map[string]string{"Host": "Host", "Users": "2/34 (+1 away)", "Access": "ContactsPlus", "Headless": "yes"} {
		if fields[k] != want {
			t.Errorf("field %s = %q, want %q", k, fields[k], want)
		}
	}
}

func TestSessionsNoneAndAPIError(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	none := e.command("sessions", discordtest.O("name", "nothing like this")).Final(t)
	if !strings.Contains(none.Content, "No public Resonite sessions match") {
		t.Errorf("empty listing answered %q", none.Content)
	}
	e.rf.FailNext("/sessions", http.StatusBadGateway, 0, 10)
	ix := e.command("sessions", discordtest.O("name", "x"))
	f := ix.Final(t)
	if !f.Ephemeral() || !strings.Contains(f.Content, "Resonite could not be reached") {
		t.Errorf("API failure answered %q (ephemeral=%v), want a private short reason", f.Content, f.Ephemeral())
	}
	// The public "thinking…" placeholder is replaced, not left hanging.
	e.dc.WaitUntil(t, "the deferred placeholder to be removed", func() bool {
		return slices.ContainsFunc(ix.Replies(), func(r discordtest.Reply) bool { return r.Kind == "delete" })
	})
}

func TestSessionsForgedButtonID(t *testing.T) {
	t.Parallel()
	e := newEnv(t).start()
	for _, id := range []string{"s:", "s:x:::0:", "s:1:::99:ab", "s:1:-4::0:", "s:1::7:0:", "unknown"} {
		f := e.dc.Interact(t, discordtest.Click(guildID, channelID, "123", id)).Final(t)
		if !f.Ephemeral() || f.Content == "" {
			t.Errorf("custom id %q answered %+v, want a private explanation", id, f)
		}
	}
}

// BenchmarkSessionsFirstCallback measures the time from dispatching /sessions to the bot's first
// callback with 2,000 public sessions: cold (the cache is expired, so the bot defers and then
// fetches) and warm (the page is answered at once from the cache). "cold-final" is the time to
// the finished page when cold: fetch, decode, sort and render included.
func BenchmarkSessionsFirstCallback(b *testing.B) {
	cold := newEnv(b, func(o *bot.Options) { o.SessionsTTL = time.Nanosecond }).start()
	seedSessions(cold.rf, 2000)
	b.Run("cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			ix := cold.command("sessions")
			b.StopTimer()
			ix.Final(b) // let the background fetch finish outside the measurement
			b.StartTimer()
		}
	})
	b.Run("cold-final", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			cold.command("sessions").Final(b)
		}
	})
	warm := newEnv(b).start()
	seedSessions(warm.rf, 2000)
	warm.command("sessions").Final(b)
	b.Run("warm", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			warm.command("sessions")
		}
	})
}
