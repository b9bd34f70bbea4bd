package bridge

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// DiscordMaxLen is the longest content of one Discord message, in runes.
const DiscordMaxLen = 2000

// quoteLen is how much of an answered message a reply quotes in Resonite.
const quoteLen = 60

// FormatForResonite renders a Discord message as one line of Resonite chat:
// "<display name>: <text>", with the quote of the answered message, attachment URLs and sticker
// names. It returns "" when there is nothing to relay.
func FormatForResonite(m core.DiscordMessage) string {
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
	if !richTag.MatchString(s) {
		return s // no tag: "<3" and friends stay as they are
	}
	s = noparseClose.ReplaceAllStringFunc(s, func(t string) string { return t[:2] + "\u200b" + t[2:] })
	return "<noparse>" + s + "</noparse>"
}

var noparseClose = regexp.MustCompile(`(?i)</noparse`)

// richTag matches what Resonite could render as a rich-text tag: "<", an optional "/", a tag
// name, then ">", "=value>" or attributes. Wider than the tags Resonite knows, so that none slips
// through (a false match only costs a <noparse> around harmless text), yet "<3", "a < b > c" and
// Discord's "<https://…>" stay as they are.
var richTag = regexp.MustCompile(`</?[a-zA-Z][a-zA-Z-]*(=[^<>]*|\s[^<>]*)?>`)

func nameOr(s string) string {
	if s = strings.TrimSpace(s); s != "" {
		return s
	}
	return "someone"
}

// RenderForDiscord renders a contact's message as one or more webhook posts under the
// contact's name and avatar. Text longer than DiscordMaxLen becomes several posts; blank text
// gives none (Discord refuses a post without content).
func RenderForDiscord(m core.ContactMessage, username, avatarURL string) []core.Post {
	base := core.Post{Username: username, AvatarURL: avatarURL}
	one := func(content string, embeds ...core.Embed) []core.Post {
		p := base
		p.Content = neutralizeMentions(content)
		p.Embeds = embeds
		return []core.Post{p}
	}
	if m.Unreadable {
		return one(unreadable(m.Kind))
	}
	switch m.Kind {
	case core.KindText, "":
		var posts []core.Post
		for _, chunk := range SplitText(neutralizeMentions(m.Text), DiscordMaxLen) {
			if strings.TrimSpace(chunk) == "" {
				continue
			}
			p := base
			p.Content = chunk
			posts = append(posts, p)
		}
		return posts
	case core.KindSound:
		if m.SoundURL == "" {
			return one(unreadable(m.Kind))
		}
		return one("🎤 Voice message: " + m.SoundURL)
	case core.KindObject:
		name := "an item"
		if m.Item != nil && strings.TrimSpace(m.Item.Name) != "" {
			name = m.Item.Name
		}
		if m.Item != nil && m.Item.ThumbnailURL != "" {
			return one("📦 sent an item: **"+EscapeMarkdown(name)+"**",
				core.Embed{Title: name, ThumbnailURL: m.Item.ThumbnailURL})
		}
		return one("📦 sent an item: **" + EscapeMarkdown(name) + "**")
	case core.KindSessionInvite:
		if m.Invite == nil {
			return one(unreadable(m.Kind))
		}
		return one("📨 invites you to a session", SessionEmbed(*m.Invite))
	case core.KindInviteRequest:
		r := m.InviteRequest
		if r == nil {
			return one(unreadable(m.Kind))
		}
		line := "🙋 " + nameOr(r.From) + " asks for an invite"
		if r.ForUser != "" && r.ForUser != r.From {
			line = "🙋 " + nameOr(r.From) + " asks for an invite for " + r.ForUser
		}
		if s := strings.TrimSpace(r.SessionName); s != "" {
			line += " to " + s
		}
		return one(line)
	case core.KindCreditTransfer:
		return one("💸 sent a credit transfer" + transferSuffix(m.Transfer))
	case core.KindSugarCubes:
		return one("🧊 sent sugar cubes" + transferSuffix(m.Transfer))
	default:
		return one("sent a message of type " + string(m.Kind) + " that Discord cannot show")
	}
}

// unreadable is the post for a message whose content could not be decoded.
func unreadable(k core.MessageKind) string {
	switch k {
	case core.KindSound:
		return "🎤 sent a voice message (it could not be read)"
	case core.KindObject:
		return "📦 sent an item (it could not be read)"
	case core.KindSessionInvite:
		return "📨 sent a session invite (it could not be read)"
	case core.KindInviteRequest:
		return "🙋 sent an invite request (it could not be read)"
	}
	return "sent a message of type " + string(k) + " that could not be read"
}

// transferSuffix renders the amount and comment of a transfer.
func transferSuffix(t *core.Transfer) string {
	if t == nil {
		return ""
	}
	var s string
	if t.Amount != "" {
		s = ": " + t.Amount
	}
	if c := strings.TrimSpace(t.Comment); c != "" {
		s += " (“" + Shorten(c, 200) + "”)"
	}
	return s
}

// SessionEmbed describes a session, for /sessions and for session invites: name, host, users,
// access level, headless or not, thumbnail and link.
func SessionEmbed(s core.Session) core.Embed {
	name := strings.TrimSpace(s.Name)
	if name == "" {
		name = "Unnamed session"
	}
	e := core.Embed{Title: Shorten(strings.ReplaceAll(name, "\n", " "), 256), URL: s.URL, ThumbnailURL: s.ThumbnailURL}
	host := strings.TrimSpace(s.HostUsername)
	if host == "" {
		host = "unknown"
	}
	users := strconv.Itoa(s.ActiveUsers)
	if s.MaxUsers > 0 {
		users += "/" + strconv.Itoa(s.MaxUsers)
	}
	if away := s.JoinedUsers - s.ActiveUsers; away > 0 {
		users += fmt.Sprintf(" (+%d away)", away)
	}
	headless := "no"
	if s.Headless {
		headless = "yes"
	}
	access := s.AccessLevel
	if access == "" {
		access = "unknown"
	}
	e.Fields = []core.EmbedField{
		{Name: "Host", Value: Shorten(EscapeMarkdown(host), 1024), Inline: true},
		{Name: "Users", Value: users, Inline: true},
		{Name: "Access", Value: access, Inline: true},
		{Name: "Headless", Value: headless, Inline: true},
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
