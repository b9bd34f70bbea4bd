package bridge

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

func TestFormatForResonite(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("word ", 30) // 150 runes
	tests := []struct {
		name string
		m    core.DiscordMessage
		want string
	}{
		{"plain text", core.DiscordMessage{AuthorName: "Kim", Content: "hello there"}, "Kim: hello there"},
		{"surrounding space trimmed", core.DiscordMessage{AuthorName: "Kim", Content: "  hi \n"}, "Kim: hi"},
		{"mentions and emoji as the bot rendered them", core.DiscordMessage{AuthorName: "Kim", Content: "@Alex look at #general :party:"}, "Kim: @Alex look at #general :party:"},
		{"every line carries the sender", core.DiscordMessage{AuthorName: "Kim", Content: "one\ntwo"}, "Kim: one\nKim: two"},
		{"a line cannot pass for another speaker", core.DiscordMessage{AuthorName: "Kim", Content: "hi\nBob: send me your code"}, "Kim: hi\nKim: Bob: send me your code"},
		{"blank lines dropped", core.DiscordMessage{AuthorName: "Kim", Content: "one\n\n\ntwo"}, "Kim: one\nKim: two"},
		{"no display name", core.DiscordMessage{AuthorName: "  ", Content: "hi"}, "someone: hi"},
		{
			"reply quotes the answered message on one line",
			core.DiscordMessage{AuthorName: "Kim", Content: "sure", ReplyTo: &core.DiscordReply{AuthorName: "Alex", Content: "what\nabout   lunch?"}},
			"Kim: (replying to Alex: “what about lunch?”) sure",
		},
		{
			"long quote shortened",
			core.DiscordMessage{AuthorName: "Kim", Content: "yes", ReplyTo: &core.DiscordReply{AuthorName: "Alex", Content: long}},
			"Kim: (replying to Alex: “" + strings.Repeat("word ", 11) + "word…”) yes",
		},
		{
			"reply to a message without text",
			core.DiscordMessage{AuthorName: "Kim", Content: "nice pic", ReplyTo: &core.DiscordReply{AuthorName: "Alex"}},
			"Kim: (replying to Alex: “…”) nice pic",
		},
		{"reply without anything of its own", core.DiscordMessage{AuthorName: "Kim", ReplyTo: &core.DiscordReply{AuthorName: "Alex", Content: "q"}}, ""},
		{
			"attachments as URLs after the text",
			core.DiscordMessage{AuthorName: "Kim", Content: "look", Attachments: []string{"https://cdn.discordapp.com/a/1.png", " ", "https://cdn.discordapp.com/a/2.mp4"}},
			"Kim: look\nKim: 📎 https://cdn.discordapp.com/a/1.png\nKim: 📎 https://cdn.discordapp.com/a/2.mp4",
		},
		{"attachment only", core.DiscordMessage{AuthorName: "Kim", Attachments: []string{"https://cdn.discordapp.com/a/1.png"}}, "Kim: 📎 https://cdn.discordapp.com/a/1.png"},
		{"sticker by name", core.DiscordMessage{AuthorName: "Kim", Stickers: []string{"Wave"}}, "Kim: [sticker: Wave]"},
		{
			"reply with attachment only",
			core.DiscordMessage{AuthorName: "Kim", Attachments: []string{"https://x/1.png"}, ReplyTo: &core.DiscordReply{AuthorName: "Alex", Content: "send it"}},
			"Kim: (replying to Alex: “send it”)\nKim: 📎 https://x/1.png",
		},
		{"nothing to relay", core.DiscordMessage{AuthorName: "Kim"}, ""},
		{"blank text", core.DiscordMessage{AuthorName: "Kim", Content: " \n\t"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := FormatForResonite(tt.m); got != tt.want {
				t.Errorf("FormatForResonite() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRenderForDiscord(t *testing.T) {
	t.Parallel()
	const avatar = "https://assets.resonite.com/icon"
	base := core.Post{Username: "Alice", AvatarURL: avatar}
	post := func(content string, extra ...any) core.Post {
		p := base
		p.Content = content
		for _, x := range extra {
			switch x := x.(type) {
			case core.Embed:
				p.Embeds = append(p.Embeds, x)
			case core.LinkButton:
				p.Buttons = append(p.Buttons, x)
			}
		}
		return p
	}
	msg := func(kind core.MessageKind, set func(*core.ContactMessage)) core.ContactMessage {
		m := core.ContactMessage{ID: "MSG-1", SenderID: "U-Alice", Kind: kind}
		if set != nil {
			set(&m)
		}
		return m
	}
	text := func(kind core.MessageKind, s string) core.ContactMessage {
		return msg(kind, func(m *core.ContactMessage) { m.Text = s })
	}
	unreadable := func(kind core.MessageKind) core.ContactMessage {
		return msg(kind, func(m *core.ContactMessage) { m.Unreadable = true })
	}
	fields := func(host, users, access, headless string) []core.EmbedField {
		return []core.EmbedField{
			{Name: "Host", Value: host, Inline: true}, {Name: "Users", Value: users, Inline: true},
			{Name: "Access", Value: access, Inline: true}, {Name: "Headless", Value: headless, Inline: true},
		}
	}
	tests := []struct {
		name string
		m    core.ContactMessage
		want []core.Post
	}{
		{"markdown a contact typed shows literally", text(core.KindText, "hello **world**"), []core.Post{post("hello \\*\\*world\\*\\*")}},
		{"rich text becomes markdown", text(core.KindText, "<b>bold</b> <i>it</i> <s>gone</s> <u>under</u>"), []core.Post{post("**bold** *it* ~~gone~~ __under__")}},
		{"other tags removed", text(core.KindText, "<size=200>hi</size> <color=#f00>red</color>"), []core.Post{post("hi red")}},
		{"a masked link shows its parts", text(core.KindText, "[free nitro](https://evil.example)"), []core.Post{post("\\[free nitro\\]\\(https://evil.example)")}},
		{"untyped message is text", text("", "hi"), []core.Post{post("hi")}},
		{
			"mass and user mentions neutralised",
			text(core.KindText, "@everyone @here <@123> <@!456> <@&789>"),
			[]core.Post{post("@\u200beveryone @\u200bhere \\<@\u200b123\\> \\<@\u200b!456\\> \\<@\u200b&789\\>")},
		},
		{"blank text gives no post", text(core.KindText, " \n "), nil},
		{
			"sound as a voice-message line with the asset link",
			msg(core.KindSound, func(m *core.ContactMessage) { m.SoundURL = "https://assets.resonite.com/0a1b2c" }),
			[]core.Post{post("🎤 Voice message: https://assets.resonite.com/0a1b2c")},
		},
		{"unreadable sound", unreadable(core.KindSound), []core.Post{post("🎤 sent a voice message (it could not be read)")}},
		{"sound without a link", msg(core.KindSound, nil), []core.Post{post("🎤 sent a voice message (it could not be read)")}},
		{
			"object by name with thumbnail, markdown escaped",
			msg(core.KindObject, func(m *core.ContactMessage) {
				m.Item = &core.Item{Name: "Cool *Hat*", ThumbnailURL: "https://assets.resonite.com/th1"}
			}),
			[]core.Post{post("📦 sent an item: **Cool \\*Hat\\***", core.Embed{Title: "Cool *Hat*", ThumbnailURL: "https://assets.resonite.com/th1"})},
		},
		{
			"object without thumbnail",
			msg(core.KindObject, func(m *core.ContactMessage) { m.Item = &core.Item{Name: "Chair"} }),
			[]core.Post{post("📦 sent an item: **Chair**")},
		},
		{
			"object without a name",
			msg(core.KindObject, func(m *core.ContactMessage) { m.Item = &core.Item{Name: " "} }),
			[]core.Post{post("📦 sent an item: **an item**")},
		},
		{"object without an item", msg(core.KindObject, nil), []core.Post{post("📦 sent an item: **an item**")}},
		{"unreadable object", unreadable(core.KindObject), []core.Post{post("📦 sent an item (it could not be read)")}},
		{
			"session invite as an embed",
			msg(core.KindSessionInvite, func(m *core.ContactMessage) {
				m.Invite = &core.Session{
					ID: "S-U-Host:Theater", Name: "The Hidden Star Theater", HostUsername: "Host", ActiveUsers: 3, MaxUsers: 16,
					ThumbnailURL: "https://skyfrost-archive.resonite.com/thumbnails/x.webp", URL: "https://go.resonite.com/session/S-U-Host:Theater",
				}
			}),
			[]core.Post{post("📨 invites you to a session", core.Embed{
				Title: "The Hidden Star Theater", URL: "https://go.resonite.com/session/S-U-Host:Theater",
				ThumbnailURL: "https://skyfrost-archive.resonite.com/thumbnails/x.webp",
				Fields:       fields("Host", "3/16", "unknown", "no"),
			}, core.LinkButton{Label: "Open in Resonite", URL: "https://go.resonite.com/session/S-U-Host:Theater"})},
		},
		{
			"session invite without name or host",
			msg(core.KindSessionInvite, func(m *core.ContactMessage) {
				m.Invite = &core.Session{ID: "S-1", ActiveUsers: 1, URL: "https://go.resonite.com/session/S-1"}
			}),
			[]core.Post{post("📨 invites you to a session", core.Embed{
				Title: "Unnamed session", URL: "https://go.resonite.com/session/S-1",
				Fields: fields("unknown", "1", "unknown", "no"),
			}, core.LinkButton{Label: "Open in Resonite", URL: "https://go.resonite.com/session/S-1"})},
		},
		{"unreadable session invite", unreadable(core.KindSessionInvite), []core.Post{post("📨 sent a session invite (it could not be read)")}},
		{"session invite without a session", msg(core.KindSessionInvite, nil), []core.Post{post("📨 sent a session invite (it could not be read)")}},
		{
			"invite request for oneself",
			msg(core.KindInviteRequest, func(m *core.ContactMessage) {
				m.InviteRequest = &core.InviteRequest{From: "Alice", ForUser: "Alice", SessionName: "Party"}
			}),
			[]core.Post{post("🙋 Alice asks for an invite to Party")},
		},
		{
			"invite request for someone else",
			msg(core.KindInviteRequest, func(m *core.ContactMessage) { m.InviteRequest = &core.InviteRequest{From: "Alice", ForUser: "Carol"} }),
			[]core.Post{post("🙋 Alice asks for an invite for Carol")},
		},
		{
			"invite request with a link button to the session",
			msg(core.KindInviteRequest, func(m *core.ContactMessage) {
				m.InviteRequest = &core.InviteRequest{From: "Alice", SessionName: "Party", SessionURL: "https://go.resonite.com/session/S-9"}
			}),
			[]core.Post{post("🙋 Alice asks for an invite to Party", core.LinkButton{Label: "Open in Resonite", URL: "https://go.resonite.com/session/S-9"})},
		},
		{
			"invite request naming @everyone",
			msg(core.KindInviteRequest, func(m *core.ContactMessage) {
				m.InviteRequest = &core.InviteRequest{From: "@everyone", ForUser: "@here"}
			}),
			[]core.Post{post("🙋 @\u200beveryone asks for an invite for @\u200bhere")},
		},
		{"unreadable invite request", unreadable(core.KindInviteRequest), []core.Post{post("🙋 sent an invite request (it could not be read)")}},
		{
			"credit transfer",
			msg(core.KindCreditTransfer, func(m *core.ContactMessage) { m.Transfer = &core.Transfer{Amount: "12.5 KFC", Comment: "thanks!"} }),
			[]core.Post{post("💸 sent a credit transfer: 12.5 KFC (“thanks!”)")},
		},
		{"credit transfer of unknown shape", msg(core.KindCreditTransfer, nil), []core.Post{post("💸 sent a credit transfer")}},
		{
			"sugar cubes",
			msg(core.KindSugarCubes, func(m *core.ContactMessage) { m.Transfer = &core.Transfer{Amount: "3"} }),
			[]core.Post{post("🧊 sent sugar cubes: 3")},
		},
		{"unknown type", text("Hologram", "{}"), []core.Post{post("sent a message of type Hologram that Discord cannot show")}},
		{"unknown type, unreadable", unreadable("Hologram"), []core.Post{post("sent a message of type Hologram that could not be read")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := RenderForDiscord(tt.m, "Alice", avatar)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("RenderForDiscord() =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

// TestRenderStoredPayload: what a to_discord row stores renders after a round trip through
// the payload encoding, and a payload of an earlier build without a version still reads.
func TestRenderStoredPayload(t *testing.T) {
	t.Parallel()
	m := core.ContactMessage{ID: "MSG-1", SenderID: "U-Alice", Kind: core.KindObject, SentAt: at(1),
		Item: &core.Item{Name: "Chair", ThumbnailURL: "https://assets.resonite.com/th"}}
	b, err := core.EncodeToDiscord(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := core.DecodeToDiscord(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(RenderForDiscord(back, "Alice", ""), RenderForDiscord(m, "Alice", "")) {
		t.Errorf("the stored message renders as %+v, want %+v", RenderForDiscord(back, "Alice", ""), RenderForDiscord(m, "Alice", ""))
	}
	for _, tc := range []struct{ legacy, want string }{
		{`{"id":"MSG-1","senderId":"U-Alice","messageType":"Text","content":"from before"}`, "from before"},
		{`{"id":"MSG-2","senderId":"U-Alice","messageType":"Sound","content":"{\"assetUri\":\"resdb:///v.ogg\"}"}`, "🎤 sent a voice message (it could not be read)"},
	} {
		m, err := core.DecodeToDiscord([]byte(tc.legacy))
		if err != nil {
			t.Fatalf("legacy payload %s: %v", tc.legacy, err)
		}
		if posts := RenderForDiscord(m, "Alice", ""); len(posts) != 1 || posts[0].Content != tc.want {
			t.Errorf("legacy payload %s renders as %+v, want %q", tc.legacy, posts, tc.want)
		}
	}
}

func TestSessionEmbed(t *testing.T) {
	t.Parallel()
	got := SessionEmbed(core.Session{
		ID: "S-1", Name: "Two\nlines", HostUsername: "*star*", ActiveUsers: 2, JoinedUsers: 5, MaxUsers: 10,
		AccessLevel: "Contacts", Headless: true, URL: "https://go.resonite.com/session/S-1",
	})
	want := core.Embed{Title: "Two lines", URL: "https://go.resonite.com/session/S-1", Fields: []core.EmbedField{
		{Name: "Host", Value: "\\*star\\*", Inline: true}, {Name: "Users", Value: "2/10 (+3 away)", Inline: true},
		{Name: "Access", Value: "Contacts", Inline: true}, {Name: "Headless", Value: "yes", Inline: true},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SessionEmbed() =\n%#v\nwant\n%#v", got, want)
	}
	if got := SessionEmbed(core.Session{Name: strings.Repeat("n", 300)}); utf8.RuneCountInString(got.Title) != 256 {
		t.Errorf("title of %d runes, want 256", utf8.RuneCountInString(got.Title))
	}
}

// pingRE finds what Discord would turn into a ping.
var pingRE = regexp.MustCompile(`@everyone|@here|<@[!&]?\d`)

func TestRenderForDiscordSplitsLongText(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := 0; b.Len() < 14000; i++ {
		switch {
		case i%97 == 0:
			b.WriteString("\n")
		case i%31 == 0:
			b.WriteString("@everyone ")
		default:
			b.WriteString("héllo wörld 😀 ")
		}
	}
	text := b.String()
	posts := RenderForDiscord(core.ContactMessage{ID: "MSG-1", Kind: core.KindText, Text: text}, "Alice", "")
	if len(posts) < 3 {
		t.Fatalf("%d runes gave %d posts", utf8.RuneCountInString(text), len(posts))
	}
	var chunks []string
	for i, p := range posts {
		if n := utf8.RuneCountInString(p.Content); n > DiscordMaxLen {
			t.Errorf("post %d has %d runes", i, n)
		}
		if pingRE.MatchString(p.Content) {
			t.Errorf("post %d would ping: %q", i, pingRE.FindString(p.Content))
		}
		if p.Username != "Alice" {
			t.Errorf("post %d is under %q", i, p.Username)
		}
		chunks = append(chunks, p.Content)
	}
	// Cut on word boundaries, nothing lost: the words are the same, in the same order.
	want := strings.Fields(neutralizeMentions(text))
	if got := strings.Fields(strings.Join(chunks, " ")); !reflect.DeepEqual(got, want) {
		t.Errorf("words after splitting differ: %d words, want %d", len(got), len(want))
	}
}

func TestSplitText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    string
		max  int
		want []string
	}{
		{"short", "hello", 10, []string{"hello"}},
		{"exactly max", "0123456789", 10, []string{"0123456789"}},
		{"at the last space", "aaaa bbbb cccc", 10, []string{"aaaa bbbb", "cccc"}},
		{"at a line break in the second half", "aaaaaa\nbb cc dd", 10, []string{"aaaaaa", "bb cc dd"}},
		{"a line break far back loses to a later space", "aa\nbbbbb cccc", 10, []string{"aa\nbbbbb", "cccc"}},
		{"a word longer than max is cut", "abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		{"runes, not bytes", "ééééé ééééé", 5, []string{"ééééé", "ééééé"}},
		{"emoji", "😀😀😀 😀😀", 3, []string{"😀😀😀", "😀😀"}},
		{"no max", "whatever", 0, []string{"whatever"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := SplitText(tt.s, tt.max)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SplitText(%q, %d) = %q, want %q", tt.s, tt.max, got, tt.want)
			}
		})
	}
}

// FuzzSplitText: no chunk is over max and only the white space at the cuts is dropped.
func FuzzSplitText(f *testing.F) {
	f.Add("hello world, this is a test", 7)
	f.Add("a\nb\nc\n\n\nd", 2)
	f.Add(strings.Repeat("x", 50), 9)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max <= 0 || max > 1000 || !utf8.ValidString(s) {
			t.Skip()
		}
		chunks := SplitText(s, max)
		stripped := func(s string) string {
			return strings.Map(func(r rune) rune {
				if unicode.IsSpace(r) {
					return -1
				}
				return r
			}, s)
		}
		for _, c := range chunks {
			if utf8.RuneCountInString(c) > max {
				t.Fatalf("chunk %q over %d runes", c, max)
			}
		}
		if stripped(strings.Join(chunks, "")) != stripped(s) {
			t.Fatalf("SplitText(%q, %d) = %q lost text", s, max, chunks)
		}
	})
}

func TestResoniteMessageID(t *testing.T) {
	t.Parallel()
	// Golden values: the id of a relayed message must never change between versions, or a
	// retry after an upgrade would send a second copy.
	golden := map[string]string{
		"175928847299117063": "MSG-d9c0b821-cde3-5ee2-a030-d9e1cc725ff2",
		"1":                  "MSG-f0a834b4-8af2-5def-9b3d-0cd618a649ed",
	}
	for d, want := range golden {
		if got := ResoniteMessageID(d); got != want {
			t.Errorf("ResoniteMessageID(%q) = %s, want %s", d, got, want)
		}
	}
	ids := []string{"1", "2", "175928847299117063", "175928847299117064", "a", ""}
	seen := map[string]string{}
	for _, d := range ids {
		id := ResoniteMessageID(d)
		if id != ResoniteMessageID(d) {
			t.Errorf("ResoniteMessageID(%q) is not deterministic", d)
		}
		u, err := uuid.Parse(strings.TrimPrefix(id, "MSG-"))
		if !strings.HasPrefix(id, "MSG-") || err != nil || u.Version() != 5 {
			t.Errorf("ResoniteMessageID(%q) = %q, want MSG- and a name-based UUID", d, id)
		}
		if prev, ok := seen[id]; ok {
			t.Errorf("ResoniteMessageID(%q) = ResoniteMessageID(%q) = %s", d, prev, id)
		}
		seen[id] = d
	}
}

func TestSnowflakeAt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		t    time.Time
		want string
	}{
		// Discord's documented example: 175928847299117063 was made at 1462015105796 ms.
		{"documented example", time.UnixMilli(1462015105796), "175928847298985984"},
		{"epoch", time.UnixMilli(discordEpochMs), "0"},
		{"before the epoch", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := snowflakeAt(tt.t); got != tt.want {
				t.Errorf("snowflakeAt(%s) = %s, want %s", tt.t, got, tt.want)
			}
		})
	}
	if compareSnowflakes(snowflakeAt(time.UnixMilli(1462015105796)), "175928847299117063") >= 0 {
		t.Error("a message made in the same millisecond is not after snowflakeAt")
	}
}

func TestNotificationText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		contact string
		status  core.OnlineStatus
		session *core.Session
		want    string
	}{
		{"online", "Alice", core.StatusOnline, nil, "🟢 **Alice** is now Online"},
		{"away", "Alice", core.StatusAway, nil, "🟡 **Alice** is now Away"},
		{"busy", "Alice", core.StatusBusy, nil, "🔴 **Alice** is now Busy"},
		{"sociable", "Alice", core.StatusSociable, nil, "💬 **Alice** is now Sociable"},
		{"markdown and mentions in the name", "*@everyone*", core.StatusOnline, nil, "🟢 **\\*@\u200beveryone\\*** is now Online"},
		{
			"with the session",
			"Alice", core.StatusOnline, &core.Session{ID: "S-1", Name: "Club Night", URL: "https://go.resonite.com/session/S-1"},
			"🟢 **Alice** is now Online in **Club Night** <https://go.resonite.com/session/S-1>",
		},
		{
			"a session without a name",
			"Alice", core.StatusBusy, &core.Session{ID: "S-2", URL: "https://go.resonite.com/session/S-2"},
			"🔴 **Alice** is now Busy in **a session** <https://go.resonite.com/session/S-2>",
		},
		{
			"markdown and mentions in the session name",
			"Alice", core.StatusOnline, &core.Session{ID: "S-3", Name: "@here _club_", URL: "https://go.resonite.com/session/S-3"},
			"🟢 **Alice** is now Online in **@\u200bhere \\_club\\_** <https://go.resonite.com/session/S-3>",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := NotificationText(tt.contact, tt.status, tt.session); got != tt.want {
				t.Errorf("NotificationText() = %q, want %q", got, tt.want)
			}
		})
	}
}
