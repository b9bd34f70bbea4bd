package bridge

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Resonite rich text → Discord markdown. A contact's words are shown in Discord as the contact
// sees them in Resonite: bold, italic, strike and underline become markdown, every other tag
// Resonite renders (colour, size, …) is removed, what stands inside <noparse> is kept as
// written, and everything the contact typed is escaped, so that a "[text](url)" shows one
// address and opens none other, and a "# heading" or "-# small" stays a line of text.

// resoniteTags are the tag names Resonite's text renderer knows; text such as "<3" or
// "<not a tag>" is no tag and stays. The list is also resonite/text.go's (StripRichText): the
// bridge may not import the client, and the two follow the same renderer.
var resoniteTags = map[string]bool{
	"align": true, "alpha": true, "color": true, "colour": true, "b": true, "br": true, "i": true,
	"cspace": true, "font": true, "indent": true, "line-height": true, "line-indent": true,
	"link": true, "lowercase": true, "uppercase": true, "smallcaps": true, "margin": true,
	"mark": true, "mspace": true, "noparse": true, "nobr": true, "page": true, "pos": true,
	"size": true, "space": true, "sprite": true, "s": true, "u": true, "style": true, "sub": true,
	"sup": true, "voffset": true, "width": true,
}

// markdownOf is the Discord marker of the tags that have one.
var markdownOf = map[string]string{"b": "**", "i": "*", "s": "~~", "u": "__"}

// maxRichTag bounds what counts as a tag: real tags are short, and the bound keeps the scan
// linear.
const maxRichTag = 256

// richTagAt parses a tag at s[0] == '<': its lower-case name, whether it closes, and its length;
// ok is false when no tag Resonite knows starts there.
func richTagAt(s string) (name string, closing bool, n int, ok bool) {
	end := strings.IndexByte(s[1:min(len(s), maxRichTag)], '>')
	if end < 0 {
		return "", false, 0, false
	}
	body := s[1 : end+1]
	if strings.ContainsAny(body, "<\n") {
		return "", false, 0, false
	}
	if strings.HasPrefix(body, "/") {
		closing, body = true, body[1:]
	}
	k := 0
	for k < len(body) && (body[k] >= 'a' && body[k] <= 'z' || body[k] >= 'A' && body[k] <= 'Z' || body[k] == '-') {
		k++
	}
	name = strings.ToLower(body[:k])
	if !resoniteTags[name] {
		return "", false, 0, false
	}
	if rest := body[k:]; rest != "" && rest != "/" && rest[0] != '=' && rest[0] != ' ' && rest[0] != '\t' {
		return "", false, 0, false
	}
	return name, closing, end + 2, true
}

// DiscordFromRichText converts a contact's Resonite text for a Discord post (see above).
// Mentions are not neutralised here; RenderForDiscord does that for every post.
func DiscordFromRichText(s string) string {
	var out strings.Builder
	type open struct {
		name string
		at   int // out.Len() right after the marker
	}
	var stack []open
	var lit strings.Builder // literal text not yet escaped, for the line-start rules
	atLineStart := true
	flush := func() {
		if lit.Len() == 0 {
			return
		}
		out.WriteString(escapeForDiscord(lit.String(), atLineStart))
		atLineStart = strings.HasSuffix(lit.String(), "\n")
		lit.Reset()
	}
	for i := 0; i < len(s); {
		if s[i] != '<' {
			_, w := utf8.DecodeRuneInString(s[i:])
			lit.WriteString(s[i : i+w])
			i += w
			continue
		}
		name, closing, n, ok := richTagAt(s[i:])
		if !ok {
			lit.WriteByte('<')
			i++
			continue
		}
		i += n
		switch {
		case name == "noparse" && !closing:
			// Kept as written up to the closing tag (any case), or to the end.
			rest := s[i:]
			j := indexFold(rest, "</noparse>")
			if j < 0 {
				j = len(rest)
			}
			lit.WriteString(rest[:j])
			i += min(len(rest), j+len("</noparse>"))
		case name == "br" && !closing:
			lit.WriteByte('\n')
		case markdownOf[name] != "" && !closing:
			flush()
			out.WriteString(markdownOf[name])
			stack = append(stack, open{name, out.Len()})
		case markdownOf[name] != "" && closing:
			k := len(stack) - 1
			for k >= 0 && stack[k].name != name {
				k--
			}
			if k < 0 {
				continue // closes nothing
			}
			flush()
			// Close what was opened inside it too (markdown cannot overlap), innermost first.
			for len(stack) > k {
				top := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				closeMarker(&out, top.at, markdownOf[top.name])
			}
		}
	}
	flush()
	for len(stack) > 0 {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		closeMarker(&out, top.at, markdownOf[top.name])
	}
	return out.String()
}

// closeMarker ends a marked span opened at at; an empty span loses its opening marker instead
// ("****" would show as it is).
func closeMarker(out *strings.Builder, at int, marker string) {
	if out.Len() == at {
		s := out.String()[:at-len(marker)]
		out.Reset()
		out.WriteString(s)
		return
	}
	out.WriteString(marker)
}

// indexFold is strings.Index, ignoring ASCII case.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// escapeForDiscord makes text show in Discord as typed: every character markdown reads is
// escaped with a backslash (which Discord hides), and so are the line starts that make lists
// and headings. Bare links stay as they are (a backslash would change the address; Discord
// shows a bare link as the address it opens). atLineStart says whether s begins a line.
func escapeForDiscord(s string, atLineStart bool) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	lineStart := atLineStart
	for i := 0; i < len(s); {
		if n := bareLinkAt(s[i:]); n > 0 {
			b.WriteString(s[i : i+n])
			i += n
			lineStart = false
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		i += w
		switch {
		case strings.ContainsRune("\\*_~`|>#[]()<", r):
			b.WriteByte('\\')
		case lineStart && (r == '-' || r == '+'):
			b.WriteByte('\\')
		}
		b.WriteRune(r)
		switch {
		case r == '\n':
			lineStart = true
		case r == ' ' || r == '\t':
			// indentation keeps a list a list
		default:
			lineStart = false
		}
	}
	return escapeNumberedLists(b.String())
}

// bareLinkAt is the length of the http(s) link at the start of s, as Discord's link rule reads
// it (up to white space or "<"), or 0.
func bareLinkAt(s string) int {
	l := len("https://")
	if len(s) < l-1 || (!strings.HasPrefix(strings.ToLower(s[:min(len(s), l)]), "https://") &&
		!strings.HasPrefix(strings.ToLower(s[:min(len(s), l-1)]), "http://")) {
		return 0
	}
	n := strings.IndexFunc(s, func(r rune) bool { return r == '<' || unicode.IsSpace(r) })
	if n < 0 {
		n = len(s)
	}
	return n
}

// escapeNumberedLists breaks "1. item" at a line start, which Discord shows as a list.
func escapeNumberedLists(s string) string {
	if !strings.Contains(s, ". ") {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		t := strings.TrimLeft(l, " \t")
		k := 0
		for k < len(t) && t[k] >= '0' && t[k] <= '9' {
			k++
		}
		if k > 0 && k+1 < len(t) && t[k] == '.' && t[k+1] == ' ' {
			lines[i] = l[:len(l)-len(t)] + t[:k] + "\\" + t[k:]
		}
	}
	return strings.Join(lines, "\n")
}
