package bridge

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// DiscordMaxLen is the longest content of one Discord message, in runes.
const DiscordMaxLen = 2000

// quoteLen is how much of an answered message a reply quotes in Resonite.
const quoteLen = 60

// FormatForResonite renders a Discord message as one line of Resonite chat:
// "<display name>: <text>", with the quote of the answered message, attachment URLs and sticker
// names. It returns "" when there is nothing to relay.
func FormatForResonite(m DiscordMessage) string {
	var parts []string
	if m.ReplyTo != nil {
		q := Shorten(strings.Join(strings.Fields(m.ReplyTo.Content), " "), quoteLen)
		if q == "" {
			q = "…"
		}
		parts = append(parts, fmt.Sprintf("(replying to %s: “%s”)", nameOr(m.ReplyTo.AuthorName), q))
	}
	if t := strings.TrimSpace(m.Content); t != "" {
		parts = append(parts, t)
	}
	var tail []string
	for _, a := range m.Attachments {
		if a = strings.TrimSpace(a); a != "" {
			tail = append(tail, a)
		}
	}
	for _, s := range m.Stickers {
		if s = strings.TrimSpace(s); s != "" {
			tail = append(tail, "[sticker: "+s+"]")
		}
	}
	if len(tail) == 0 && (len(parts) == 0 || (len(parts) == 1 && m.ReplyTo != nil)) {
		return ""
	}
	body := strings.Join(parts, " ")
	if len(tail) > 0 {
		if body != "" {
			body += "\n"
		}
		body += strings.Join(tail, "\n")
	}
	return noParse(nameOr(m.AuthorName) + ": " + body)
}

// noParse keeps Discord text from being rendered as Resonite rich text (a <size=900> from
// Discord would fill someone's view in VR): text with tags goes inside <noparse>, whose own
// closing tag in the text is broken so it cannot end the block early.
func noParse(s string) string {
	if stripRichText(s) == s {
		return s // no tag: "<3" and friends stay as they are
	}
	s = noparseClose.ReplaceAllStringFunc(s, func(t string) string { return t[:2] + "\u200b" + t[2:] })
	return "<noparse>" + s + "</noparse>"
}

var noparseClose = regexp.MustCompile(`(?i)</noparse`)

func nameOr(s string) string {
	if s = strings.TrimSpace(s); s != "" {
		return s
	}
	return "someone"
}

// RenderForDiscord renders a Resonite message as one or more webhook posts under the
// contact's name and avatar. Text longer than DiscordMaxLen becomes several posts; blank text
// gives none (Discord refuses a post without content).
func RenderForDiscord(m resonite.Message, username, avatarURL string) []Post {
	base := Post{Username: username, AvatarURL: avatarURL}
	one := func(content string, embeds ...Embed) []Post {
		p := base
		p.Content = neutralizeMentions(content)
		p.Embeds = embeds
		return []Post{p}
	}
	switch m.MessageType {
	case resonite.MessageText, "":
		var posts []Post
		for _, chunk := range SplitText(neutralizeMentions(m.Content), DiscordMaxLen) {
			if strings.TrimSpace(chunk) == "" {
				continue
			}
			p := base
			p.Content = chunk
			posts = append(posts, p)
		}
		return posts
	case resonite.MessageSound:
		r, err := m.Record()
		if err != nil || r.AssetURI == "" {
			return one("🎤 sent a voice message (it could not be read)")
		}
		return one("🎤 Voice message: " + assetURL(r.AssetURI))
	case resonite.MessageObject:
		r, err := m.Record()
		if err != nil {
			return one("📦 sent an item (it could not be read)")
		}
		name := stripRichText(r.Name)
		if strings.TrimSpace(name) == "" {
			name = "an item"
		}
		if r.ThumbnailURI != nil && *r.ThumbnailURI != "" {
			return one("📦 sent an item: **"+EscapeMarkdown(name)+"**",
				Embed{Title: name, ThumbnailURL: assetURL(*r.ThumbnailURI)})
		}
		return one("📦 sent an item: **" + EscapeMarkdown(name) + "**")
	case resonite.MessageSessionInvite:
		s, err := m.SessionInvite()
		if err != nil {
			return one("📨 sent a session invite (it could not be read)")
		}
		return one("📨 invites you to a session", sessionEmbed(s))
	case resonite.MessageInviteRequest:
		r, err := m.InviteRequest()
		if err != nil {
			return one("🙋 sent an invite request (it could not be read)")
		}
		line := "🙋 " + nameOr(r.RequestingFromUsername) + " asks for an invite"
		if r.UsernameToInvite != "" && r.UsernameToInvite != r.RequestingFromUsername {
			line = "🙋 " + nameOr(r.RequestingFromUsername) + " asks for an invite for " + r.UsernameToInvite
		}
		if r.ForSessionName != nil && strings.TrimSpace(stripRichText(*r.ForSessionName)) != "" {
			line += " to " + strings.TrimSpace(stripRichText(*r.ForSessionName))
		}
		return one(line)
	case resonite.MessageCreditTransfer:
		return one("💸 sent a credit transfer" + amountSuffix(m))
	case resonite.MessageSugarCubes:
		return one("🧊 sent sugar cubes" + amountSuffix(m))
	default:
		return one("sent a message of type " + string(m.MessageType) + " that Discord cannot show")
	}
}

// amountSuffix renders the amount, token and comment of a transfer whose schema is not known.
func amountSuffix(m resonite.Message) string {
	v, err := m.ContentMap()
	if err != nil {
		return ""
	}
	get := func(key string) (any, bool) {
		for k, x := range v {
			if strings.EqualFold(k, key) {
				return x, true
			}
		}
		return nil, false
	}
	var s string
	if a, ok := get("amount"); ok {
		switch n := a.(type) {
		case float64:
			if n == math.Trunc(n) {
				s = ": " + strconv.FormatFloat(n, 'f', 0, 64)
			} else {
				s = ": " + strconv.FormatFloat(n, 'f', -1, 64)
			}
		case string:
			s = ": " + n
		}
		if t, ok := get("token"); ok {
			if ts, ok := t.(string); ok && ts != "" && s != "" {
				s += " " + ts
			}
		}
	}
	if c, ok := get("comment"); ok {
		if cs, ok := c.(string); ok && strings.TrimSpace(cs) != "" {
			s += " (“" + Shorten(strings.TrimSpace(cs), 200) + "”)"
		}
	}
	return s
}

// sessionEmbed describes a session: name without rich text, host, users, thumbnail and link.
func sessionEmbed(s resonite.SessionInfo) Embed {
	name := strings.TrimSpace(stripRichText(s.Name))
	if name == "" {
		name = "Unnamed session"
	}
	e := Embed{Title: Shorten(name, 256)}
	if s.SessionID != "" {
		e.URL = sessionURL(s.SessionID)
	}
	if s.HostUsername != "" {
		e.Fields = append(e.Fields, EmbedField{Name: "Host", Value: s.HostUsername, Inline: true})
	}
	users := strconv.Itoa(s.ActiveUsers)
	if s.MaxUsers > 0 {
		users += "/" + strconv.Itoa(s.MaxUsers)
	}
	e.Fields = append(e.Fields, EmbedField{Name: "Users", Value: users, Inline: true})
	if s.ThumbnailURL != nil && *s.ThumbnailURL != "" {
		e.ThumbnailURL = assetURL(*s.ThumbnailURL)
	}
	return e
}

// neutralizeMentions keeps text from Resonite from pinging anyone even if the webhook's allowed
// mentions were misconfigured: a zero-width space breaks @everyone, @here and <@…> syntax.
func neutralizeMentions(s string) string {
	s = strings.ReplaceAll(s, "@everyone", "@\u200beveryone")
	s = strings.ReplaceAll(s, "@here", "@\u200bhere")
	s = strings.ReplaceAll(s, "<@", "<@\u200b")
	return s
}

// escapeMarkdown keeps names from turning into Discord formatting.
func EscapeMarkdown(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\*_~`|>#[]()", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// SplitText cuts s into chunks of at most max runes, preferring to cut at a line break, then at
// other white space; a word longer than max is cut where it must. Joining the chunks with the
// white space at the cuts gives s back.
func SplitText(s string, max int) []string {
	if max <= 0 || utf8.RuneCountInString(s) <= max {
		return []string{s}
	}
	var out []string
	r := []rune(s)
	for len(r) > max {
		cut := -1
		for i := max; i > 0; i-- { // a cut at i keeps r[:i], drops the space r[i]
			if r[i] == '\n' {
				cut = i
				break
			}
		}
		if cut < max/2 { // a line break far back would make tiny posts; take the last space instead
			for i := max; i > 0; i-- {
				if unicode.IsSpace(r[i]) {
					if i > cut {
						cut = i
					}
					break
				}
			}
		}
		if cut <= 0 {
			out = append(out, string(r[:max]))
			r = r[max:]
			continue
		}
		out = append(out, string(r[:cut]))
		r = r[cut+1:]
	}
	if len(r) > 0 {
		out = append(out, string(r))
	}
	return out
}
