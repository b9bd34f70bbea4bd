package bridge

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

func TestFormatForResonite(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("word ", 30) // 150 runes
	tests := []struct {
		name string
		m    DiscordMessage
		want string
	}{
		{"plain text", DiscordMessage{AuthorName: "Kim", Content: "hello there"}, "Kim: hello there"},
		{"surrounding space trimmed", DiscordMessage{AuthorName: "Kim", Content: "  hi \n"}, "Kim: hi"},
		{"mentions and emoji as the bot rendered them", DiscordMessage{AuthorName: "Kim", Content: "@Alex look at #general :party:"}, "Kim: @Alex look at #general :party:"},
		{"multi-line text kept", DiscordMessage{AuthorName: "Kim", Content: "one\ntwo"}, "Kim: one\ntwo"},
		{"no display name", DiscordMessage{AuthorName: "  ", Content: "hi"}, "someone: hi"},
		{
			"reply quotes the answered message on one line",
			DiscordMessage{AuthorName: "Kim", Content: "sure", ReplyTo: &DiscordReply{AuthorName: "Alex", Content: "what\nabout   lunch?"}},
			"Kim: (replying to Alex: “what about lunch?”) sure",
		},
		{
			"long quote shortened",
			DiscordMessage{AuthorName: "Kim", Content: "yes", ReplyTo: &DiscordReply{AuthorName: "Alex", Content: long}},
			"Kim: (replying to Alex: “" + strings.Repeat("word ", 11) + "word…”) yes",
		},
		{
			"reply to a message without text",
			DiscordMessage{AuthorName: "Kim", Content: "nice pic", ReplyTo: &DiscordReply{AuthorName: "Alex"}},
			"Kim: (replying to Alex: “…”) nice pic",
		},
		{"reply without anything of its own", DiscordMessage{AuthorName: "Kim", ReplyTo: &DiscordReply{AuthorName: "Alex", Content: "q"}}, ""},
		{
			"attachments as URLs after the text",
			DiscordMessage{AuthorName: "Kim", Content: "look", Attachments: []string{"https://cdn.discordapp.com/a/1.png", " ", "https://cdn.discordapp.com/a/2.mp4"}},
			"Kim: look\nhttps://cdn.discordapp.com/a/1.png\nhttps://cdn.discordapp.com/a/2.mp4",
		},
		{"attachment only", DiscordMessage{AuthorName: "Kim", Attachments: []string{"https://cdn.discordapp.com/a/1.png"}}, "Kim: https://cdn.discordapp.com/a/1.png"},
		{"sticker by name", DiscordMessage{AuthorName: "Kim", Stickers: []string{"Wave"}}, "Kim: [sticker: Wave]"},
		{
			"reply with attachment only",
			DiscordMessage{AuthorName: "Kim", Attachments: []string{"https://x/1.png"}, ReplyTo: &DiscordReply{AuthorName: "Alex", Content: "send it"}},
			"Kim: (replying to Alex: “send it”)\nhttps://x/1.png",
		},
		{"nothing to relay", DiscordMessage{AuthorName: "Kim"}, ""},
		{"blank text", DiscordMessage{AuthorName: "Kim", Content: " \n\t"}, ""},
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

// content JSON-encodes the content of a non-text message, as the cloud sends it.
func content(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRenderForDiscord(t *testing.T) {
	t.Parallel()
	const avatar = "https://assets.resonite.com/icon"
	base := Post{Username: "Alice", AvatarURL: avatar}
	post := func(content string, embeds ...Embed) Post {
		p := base
		p.Content = content
		p.Embeds = embeds
		return p
	}
	msg := func(typ resonite.MessageType, c string) resonite.Message {
		return resonite.Message{ID: "MSG-1", SenderID: "U-Alice", MessageType: typ, Content: c}
	}
	str := func(s string) *string { return &s }
	tests := []struct {
		name string
		m    resonite.Message
		want []Post
	}{
		{"text", msg(resonite.MessageText, "hello **world**"), []Post{post("hello **world**")}},
		{"untyped message is text", msg("", "hi"), []Post{post("hi")}},
		{
			"mass and user mentions neutralised",
			msg(resonite.MessageText, "@everyone @here <@123> <@!456> <@&789>"),
			[]Post{post("@\u200beveryone @\u200bhere <@\u200b123> <@\u200b!456> <@\u200b&789>")},
		},
		{"blank text gives no post", msg(resonite.MessageText, " \n "), nil},
		{
			"sound as a voice-message line with the asset link",
			msg(resonite.MessageSound, content(t, map[string]any{"assetUri": "resdb:///0a1b2c.ogg", "name": "Voice message"})),
			[]Post{post("🎤 Voice message: https://assets.resonite.com/0a1b2c")},
		},
		{"unreadable sound", msg(resonite.MessageSound, "{not json"), []Post{post("🎤 sent a voice message (it could not be read)")}},
		{
			"object by name with thumbnail, rich text stripped, markdown escaped",
			msg(resonite.MessageObject, content(t, map[string]any{"name": "<color=red>Cool</color> *Hat*", "thumbnailUri": "resdb:///th1.webp"})),
			[]Post{post("📦 sent an item: **Cool \\*Hat\\***", Embed{Title: "Cool *Hat*", ThumbnailURL: "https://assets.resonite.com/th1"})},
		},
		{
			"object without thumbnail",
			msg(resonite.MessageObject, content(t, map[string]any{"name": "Chair"})),
			[]Post{post("📦 sent an item: **Chair**")},
		},
		{
			"object without a name",
			msg(resonite.MessageObject, content(t, map[string]any{"name": "<b></b>"})),
			[]Post{post("📦 sent an item: **an item**")},
		},
		{
			"session invite as an embed",
			msg(resonite.MessageSessionInvite, content(t, resonite.SessionInfo{
				Name: "The <color=yellow>Hidden Star</color> <b>Theater</b>", SessionID: "S-U-Host:Theater",
				HostUsername: "Host", ActiveUsers: 3, MaxUsers: 16,
				ThumbnailURL: str("https://skyfrost-archive.resonite.com/thumbnails/x.webp"),
			})),
			[]Post{post("📨 invites you to a session", Embed{
				Title: "The Hidden Star Theater", URL: "https://go.resonite.com/session/S-U-Host:Theater",
				ThumbnailURL: "https://skyfrost-archive.resonite.com/thumbnails/x.webp",
				Fields:       []EmbedField{{Name: "Host", Value: "Host", Inline: true}, {Name: "Users", Value: "3/16", Inline: true}},
			})},
		},
		{
			"session invite without name or host",
			msg(resonite.MessageSessionInvite, content(t, resonite.SessionInfo{Name: "<size=200></size>", SessionID: "S-1", ActiveUsers: 1})),
			[]Post{post("📨 invites you to a session", Embed{
				Title: "Unnamed session", URL: "https://go.resonite.com/session/S-1",
				Fields: []EmbedField{{Name: "Users", Value: "1", Inline: true}},
			})},
		},
		{"unreadable session invite", msg(resonite.MessageSessionInvite, "[]"), []Post{post("📨 sent a session invite (it could not be read)")}},
		{
			"invite request for oneself",
			msg(resonite.MessageInviteRequest, content(t, map[string]any{"requestingFromUsername": "Alice", "usernameToInvite": "Alice", "forSessionName": "<b>Party</b>"})),
			[]Post{post("🙋 Alice asks for an invite to Party")},
		},
		{
			"invite request for someone else",
			msg(resonite.MessageInviteRequest, content(t, map[string]any{"requestingFromUsername": "Alice", "usernameToInvite": "Carol"})),
			[]Post{post("🙋 Alice asks for an invite for Carol")},
		},
		{
			"invite request naming @everyone",
			msg(resonite.MessageInviteRequest, content(t, map[string]any{"requestingFromUsername": "@everyone", "usernameToInvite": "@here"})),
			[]Post{post("🙋 @\u200beveryone asks for an invite for @\u200bhere")},
		},
		{
			"credit transfer",
			msg(resonite.MessageCreditTransfer, content(t, map[string]any{"amount": 12.5, "token": "KFC", "comment": "thanks!"})),
			[]Post{post("💸 sent a credit transfer: 12.5 KFC (“thanks!”)")},
		},
		{"credit transfer of unknown shape", msg(resonite.MessageCreditTransfer, "\"x\""), []Post{post("💸 sent a credit transfer")}},
		{"sugar cubes", msg(resonite.MessageSugarCubes, content(t, map[string]any{"Amount": 3})), []Post{post("🧊 sent sugar cubes: 3")}},
		{"unknown type", msg("Hologram", "{}"), []Post{post("sent a message of type Hologram that Discord cannot show")}},
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
	posts := RenderForDiscord(resonite.Message{ID: "MSG-1", MessageType: resonite.MessageText, Content: text}, "Alice", "")
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
		status  resonite.OnlineStatus
		session *resonite.SessionInfo
		want    string
	}{
		{"online", "Alice", resonite.StatusOnline, nil, "🟢 **Alice** is now Online"},
		{"away", "Alice", resonite.StatusAway, nil, "🟡 **Alice** is now Away"},
		{"busy", "Alice", resonite.StatusBusy, nil, "🔴 **Alice** is now Busy"},
		{"sociable", "Alice", resonite.StatusSociable, nil, "💬 **Alice** is now Sociable"},
		{"markdown and mentions in the name", "*@everyone*", resonite.StatusOnline, nil, "🟢 **\\*@\u200beveryone\\*** is now Online"},
		{
			"with the session, rich text stripped",
			"Alice", resonite.StatusOnline, &resonite.SessionInfo{Name: "<color=red>Club</color> <b>Night</b>", SessionID: "S-1"},
			"🟢 **Alice** is now Online in **Club Night** <https://go.resonite.com/session/S-1>",
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
