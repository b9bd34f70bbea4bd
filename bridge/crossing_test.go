package bridge

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

func TestDiscordFromRichText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "hello there", "hello there"},
		{"bold italic strike underline", "<b>a</b> <i>b</i> <s>c</s> <u>d</u>", "**a** *b* ~~c~~ __d__"},
		{"tags in any case", "<B>a</B>", "**a**"},
		{"size and colour removed", "<size=200>hi</size> <color=\"#CC6633\">there</color>", "hi there"},
		{"br is a line break", "one<br>two", "one\ntwo"},
		{"not tags stay", "I <3 you, <notatag>", "I \\<3 you, \\<notatag\\>"},
		{"noparse kept as written", "<noparse><b>not bold</b></noparse> <b>bold</b>", "\\<b\\>not bold\\</b\\> **bold**"},
		{"noparse closes in any case", "<noparse><i>x</NOPARSE><i>y</i>", "\\<i\\>x*y*"},
		{"unclosed noparse runs to the end", "<noparse><b>x", "\\<b\\>x"},
		{"unclosed tag closed at the end", "<b>open", "**open**"},
		{"empty span leaves no markers", "<b></b>x", "x"},
		{"overlapping tags closed in order", "<b>a<i>b</b>c</i>", "**a*b***c"},
		{"stray closing tag dropped", "a</b>b", "ab"},
		{"masked link shown literally", "[docs](https://evil.example/x)", "\\[docs\\]\\(https://evil.example/x)"},
		{"bare link unchanged", "see https://example.com/a_b*c", "see https://example.com/a_b*c"},
		{"markdown escaped", "**not bold** __x__ ~~y~~ `code` ||spoil||", "\\*\\*not bold\\*\\* \\_\\_x\\_\\_ \\~\\~y\\~\\~ \\`code\\` \\|\\|spoil\\|\\|"},
		{"heading and subtext", "# big\n-# small\n> quote", "\\# big\n\\-\\# small\n\\> quote"},
		{"lists", "- a\n+ b\n1. c", "\\- a\n\\+ b\n1\\. c"},
		{"mention syntax escaped", "<@123> <#456> <t:1:R>", "\\<@123\\> \\<\\#456\\> \\<t:1:R\\>"},
		{"tag bound: nested brackets", "<<b>b>", "\\<**b\\>**"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := DiscordFromRichText(tc.in); got != tc.want {
				t.Errorf("DiscordFromRichText(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestResoniteFromMarkdown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "hello", "hello"},
		{"bold italic strike underline", "**a** *b* _c_ ~~d~~ __e__", "<b>a</b> <i>b</i> <i>c</i> <s>d</s> <u>e</u>"},
		{"nested", "**bold *and italic***", "<b>bold <i>and italic</i></b>"},
		{"spoiler hidden", "the killer is ||the butler||!", "the killer is [spoiler]!"},
		{"spoiler hides formatting too", "||**x**||", "[spoiler]"},
		{"unmatched markers literal", "a * b ** c", "a * b ** c"},
		{"snake_case is no italic", "snake_case_name", "snake_case_name"},
		{"escaped markers literal", `\*\*not bold\*\*`, "**not bold**"},
		{"code literal", "`**x** <b>`", "<noparse>**x** <\u200bb></noparse>"},
		{"tags literal", "<size=900>HUGE</size>", "<noparse><\u200bsize=900>HUGE<\u200b/size></noparse>"},
		{"tags inside bold literal", "**<color=red>x**", "<b><noparse><\u200bcolor=red>x</noparse></b>"},
		{"noparse escape, any case", "</NoParse><size=9>x", "<noparse><\u200b/NoParse><\u200bsize=9>x</noparse>"},
		{"noparse escape with spaces", "< / noparse >x", "<noparse><\u200b / noparse >x</noparse>"},
		{"heart stays", "I <3 you", "I <3 you"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := ResoniteFromMarkdown(tc.in); got != tc.want {
				t.Errorf("ResoniteFromMarkdown(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestEditsAndDeletionsForResonite(t *testing.T) {
	t.Parallel()
	m := core.DiscordMessage{AuthorName: "Dana", Content: "fixed **it**\nsecond"}
	if got, want := FormatEditForResonite(m), "Dana (edited): fixed <b>it</b>\nDana (edited): second"; got != want {
		t.Errorf("edit = %q, want %q", got, want)
	}
	if got, want := DeletionForResonite("Dana"), "Dana deleted a message."; got != want {
		t.Errorf("deletion = %q, want %q", got, want)
	}
	if got, want := DeletionForResonite(""), "someone deleted a message."; got != want {
		t.Errorf("deletion without a name = %q, want %q", got, want)
	}
	if got, want := DeletionForResonite("<size=99>X"), "<noparse><\u200bsize=99>X</noparse> deleted a message."; got != want {
		t.Errorf("deletion by a tag name = %q, want %q", got, want)
	}
}

func TestFilesAndStickersForResonite(t *testing.T) {
	t.Parallel()
	m := core.DiscordMessage{AuthorName: "Kim", Files: []core.DiscordFile{
		{Name: "cat.png", URL: "https://cdn.discordapp.com/a/cat.png"},
		{Name: "voice-message.ogg", URL: "https://cdn.discordapp.com/a/v.ogg", Voice: true, Seconds: 3},
	}, Stickers: []string{"Wave"}}
	want := "Kim: 📎 cat.png: https://cdn.discordapp.com/a/cat.png\nKim: 🎤 voice message: https://cdn.discordapp.com/a/v.ogg\nKim: [sticker: Wave]"
	if got := FormatForResonite(m); got != want {
		t.Errorf("FormatForResonite = %q, want %q", got, want)
	}
}

func TestEveryKindFitsDiscord(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("*_", 750) // 1,500 characters that each need escaping
	for _, m := range []core.ContactMessage{
		{Kind: core.KindObject, Item: &core.Item{Name: long, ThumbnailURL: "https://assets.resonite.com/t"}},
		{Kind: core.MessageKind(strings.Repeat("X", 5000))},
		{Kind: core.KindInviteRequest, InviteRequest: &core.InviteRequest{From: long, ForUser: long, SessionName: long}},
		{Kind: core.KindCreditTransfer, Transfer: &core.Transfer{Amount: long, Comment: long}},
		{Kind: core.KindText, Text: strings.Repeat("<b>[x](y)</b> ", 700)},
	} {
		posts := RenderForDiscord(m, "Alice", "")
		if len(posts) == 0 {
			t.Errorf("%.20s: no post", m.Kind)
		}
		for _, p := range posts {
			if n := utf8.RuneCountInString(p.Content); n > DiscordMaxLen || n == 0 {
				t.Errorf("%.20s: a post of %d runes", m.Kind, n)
			}
			for _, e := range p.Embeds {
				if utf8.RuneCountInString(e.Title) > 256 {
					t.Errorf("%.20s: an embed title of %d runes", m.Kind, utf8.RuneCountInString(e.Title))
				}
			}
		}
	}
}

// lenientTag is what any Resonite-like parser could take for a tag: "<", optional white space,
// an optional "/", then a name or "#".
var lenientTag = regexp.MustCompile(`<\s*/?\s*[\p{L}#]`)

// checkResoniteSafe fails when s, read by a lenient Resonite parser, holds a tag other than
// the formatting the bridge itself emits, or a <noparse> that something ends early.
func checkResoniteSafe(t *testing.T, in, s string) {
	t.Helper()
	ours := map[string]bool{"<b>": true, "</b>": true, "<i>": true, "</i>": true, "<s>": true, "</s>": true, "<u>": true, "</u>": true}
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "<noparse>") {
			end := strings.Index(s[i:], "</noparse>")
			if end < 0 {
				t.Fatalf("%q → %q: an unclosed <noparse>", in, s)
			}
			body := s[i+len("<noparse>") : i+end]
			for k := strings.IndexByte(body, '<'); k >= 0; k = strings.IndexByte(body, '<') {
				if !strings.HasPrefix(body[k+1:], zeroWidthSpace) {
					t.Fatalf("%q → %q: a bare '<' inside <noparse>: %q", in, s, body)
				}
				body = body[k+1:]
			}
			i += end + len("</noparse>")
			continue
		}
		if s[i] == '<' {
			if j := strings.IndexByte(s[i:], '>'); j >= 0 && ours[s[i:i+j+1]] {
				i += j + 1
				continue
			}
			if lenientTag.MatchString(s[i:min(len(s), i+64)]) && lenientTag.FindStringIndex(s[i:min(len(s), i+64)])[0] == 0 {
				t.Fatalf("%q → %q: a tag outside <noparse> at %d", in, s, i)
			}
		}
		i++
	}
}

func FuzzResoniteFromMarkdown(f *testing.F) {
	for _, s := range []string{"**a**", "</noparse>", "< / NOPARSE >", "<size=900>", "||x||", "`<b>`", "**<b>**", "_a_", "<<b>b>", "\\<b>", "<\u200b/noparse>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkResoniteSafe(t, s, ResoniteFromMarkdown(s))
		checkResoniteSafe(t, s, FormatForResonite(core.DiscordMessage{AuthorName: s, Content: s, Stickers: []string{s}}))
	})
}

func FuzzLiteral(f *testing.F) {
	for _, s := range []string{"</noparse>", "</NOPARSE >", "<", "a<b", "<3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Literal(s)
		checkResoniteSafe(t, s, out)
		// Shown as written: without the wrapper and the breaks it is the text itself.
		shown := strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(out, "<noparse>"), "</noparse>"), "<"+zeroWidthSpace, "<")
		if out != s && shown != s {
			t.Fatalf("Literal(%q) = %q shows %q", s, out, shown)
		}
	})
}

func FuzzDiscordFromRichText(f *testing.F) {
	for _, s := range []string{"<b>x</b>", "[a](https://b)", "<noparse><b></noparse>", "<<b>b>", "https://x/<b>", "\\<b>", "# h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := DiscordFromRichText(s)
		// No tag survives and no masked link forms: outside bare links, every "<" and "["
		// is escaped.
		for i := 0; i < len(out); i++ {
			if n := bareLinkAt(out[i:]); n > 0 && (i == 0 || out[i-1] != '\\') {
				i += n - 1
				continue
			}
			if c := out[i]; c == '<' || c == '[' {
				k := 0
				for k < i && out[i-1-k] == '\\' {
					k++
				}
				if k%2 == 0 {
					t.Fatalf("DiscordFromRichText(%q) = %q: an unescaped %q at %d", s, out, c, i)
				}
			}
		}
	})
}

func BenchmarkDiscordFromRichText(b *testing.B) {
	s := strings.Repeat("<b>hello</b> <color=red>there</color> [x](https://e.x) ", 30)
	b.ReportAllocs()
	for b.Loop() {
		DiscordFromRichText(s)
	}
}

func BenchmarkResoniteFromMarkdown(b *testing.B) {
	s := strings.Repeat("**hello** _there_ <size=9> ||x|| ", 30)
	b.ReportAllocs()
	for b.Loop() {
		ResoniteFromMarkdown(s)
	}
}
