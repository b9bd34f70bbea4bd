package bridge

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Discord markdown → Resonite rich text. Bold, italic, strike and underline become <b>, <i>,
// <s> and <u>; a spoiler becomes "[spoiler]" (its words stay hidden, as in Discord); everything
// else stands literally, inside a <noparse> that nothing in the text can end: a user's
// "</noparse>" (in any case, with spaces, of any length) or "<size=900>" is shown, never
// rendered.

// spoilerText replaces the words of a spoiler.
const spoilerText = "[spoiler]"

// mdSpans are the markdown delimiters that become tags, longest first so that "**" is tried
// before "*".
var mdSpans = []struct{ delim, tag string }{
	{"||", ""}, // spoiler
	{"**", "b"},
	{"__", "u"},
	{"~~", "s"},
	{"*", "i"},
	{"_", "i"},
}

// ResoniteFromMarkdown converts one line of a Discord message into Resonite rich text.
func ResoniteFromMarkdown(s string) string {
	var out strings.Builder
	mdInto(&out, s, 0)
	return out.String()
}

// maxMarkdownDepth bounds nesting, so that "**__**__…" cannot recurse without end.
const maxMarkdownDepth = 8

func mdInto(out *strings.Builder, s string, depth int) {
	var lit strings.Builder
	flush := func() {
		out.WriteString(Literal(lit.String()))
		lit.Reset()
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && isASCIIPunct(s[i+1]):
			lit.WriteByte(s[i+1]) // an escaped marker is text
			i += 2
			continue
		case c == '`':
			n := 1
			for i+n < len(s) && s[i+n] == '`' {
				n++
			}
			fence := s[i : i+n]
			if j := strings.Index(s[i+n:], fence); j >= 0 {
				lit.WriteString(s[i+n : i+n+j]) // code: literal, markers and all
				i += n + j + n
				continue
			}
			lit.WriteString(fence)
			i += n
			continue
		}
		if depth < maxMarkdownDepth {
			if d, tag, inner, n, ok := spanAt(s, i); ok {
				flush()
				if d == "||" {
					out.WriteString(spoilerText)
				} else {
					out.WriteString("<" + tag + ">")
					mdInto(out, inner, depth+1)
					out.WriteString("</" + tag + ">")
				}
				i += n
				continue
			}
		}
		_, w := utf8.DecodeRuneInString(s[i:])
		lit.WriteString(s[i : i+w])
		i += w
	}
	flush()
}

// spanAt reports the marked span starting at s[i]: its delimiter, tag, inner text and whole
// length. A span needs text inside, not starting or ending with white space for * and _, and
// _ only at word boundaries, as in Discord.
func spanAt(s string, i int) (delim, tag, inner string, n int, ok bool) {
	for _, sp := range mdSpans {
		d := sp.delim
		if !strings.HasPrefix(s[i:], d) {
			continue
		}
		if d == "*" && strings.HasPrefix(s[i:], "**") || d == "_" && strings.HasPrefix(s[i:], "__") {
			continue // the double form failed; a single one would mismatch it
		}
		if d == "_" && i > 0 && isWordByte(s[i-1]) {
			continue
		}
		from := i + len(d)
		for j := from; j < len(s); {
			k := strings.Index(s[j:], d)
			if k < 0 {
				break
			}
			k += j
			if s[k-1] == '\\' { // an escaped delimiter does not close
				j = k + len(d)
				continue
			}
			if len(d) == 1 && k+1 < len(s) && s[k+1] == d[0] { // "**" inside is not a "*"
				j = k + 2
				continue
			}
			for len(d) == 2 && k+2 < len(s) && s[k+2] == d[0] {
				k++ // "***" ends an inner "*" first, then the "**"
			}
			body := s[from:k]
			if body == "" || (len(d) == 1 && (unicode.IsSpace(rune(body[0])) || unicode.IsSpace(rune(body[len(body)-1])))) {
				j = k + len(d)
				continue
			}
			if d == "_" && k+1 < len(s) && isWordByte(s[k+1]) {
				j = k + 1
				continue
			}
			return d, sp.tag, body, k + len(d) - i, true
		}
	}
	return "", "", "", 0, false
}

func isASCIIPunct(b byte) bool {
	return b < utf8.RuneSelf && unicode.IsPunct(rune(b)) || b == '`' || b == '|' || b == '~' || b == '<' || b == '>'
}

func isWordByte(b byte) bool {
	return b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// Literal makes text show in Resonite exactly as written: text that could hold a tag goes
// inside <noparse>, and every "<" in it is followed by a zero-width space. Resonite reads a tag
// only from a "<" followed by a name, "/" or "#", so no closing tag, whatever its case, spacing
// or length, can form inside and end the block early; and the text shows the same. Text
// without such a "<" ("<3", "a < b") stays as it is.
func Literal(s string) string {
	if !mayHoldTag(s) {
		return s
	}
	return "<noparse>" + strings.ReplaceAll(s, "<", "<"+zeroWidthSpace) + "</noparse>"
}

// mayHoldTag reports whether a "<" in s is followed (after any white space) by something other
// than a digit, "<", "-" or "=": wider than what Resonite parses, so that nothing slips
// through (a false match only costs a <noparse> around harmless text).
func mayHoldTag(s string) bool {
	for i := strings.IndexByte(s, '<'); i >= 0; {
		// White space after the "<" is skipped: a lenient parser might read "< /noparse>". A
		// "<" at the end is unsafe too: what the text is joined with comes after it.
		next := strings.TrimLeftFunc(s[i+1:], unicode.IsSpace)
		r, _ := utf8.DecodeRuneInString(next)
		if next == "" || !unicode.IsDigit(r) && r != '<' && r != '-' && r != '=' {
			return true
		}
		j := strings.IndexByte(next, '<')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

const zeroWidthSpace = "\u200b"
