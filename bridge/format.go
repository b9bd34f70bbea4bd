package bridge

import (
	"fmt"
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

// FormatForResonite renders a Discord message as Resonite chat: every line of it as
// "<display name>: <line>", so that a line break cannot make words look like another person's
// (see markdown.go for what the text becomes), with the quote of the answered message,
// attachments by name and link, voice messages and stickers named. It returns "" when there is
// nothing to relay.
func FormatForResonite(m core.DiscordMessage) string { return formatForResonite(m, "") }

// FormatEditForResonite renders the new version of an edited message: "Name (edited): text".
func FormatEditForResonite(m core.DiscordMessage) string {
	return formatForResonite(m, " (edited)")
}

// DeletionForResonite is the notice of a deleted message, which never repeats its text.
func DeletionForResonite(authorName string) string {
	return Literal(oneLine(nameOr(authorName))) + " deleted a message."
}

func formatForResonite(m core.DiscordMessage, mark string) string {
	var lines []string
	for _, l := range strings.Split(m.Content, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, ResoniteFromMarkdown(l))
		}
	}
	var tail []string
	for _, f := range discordFiles(m) {
		switch {
		case f.Voice:
			tail = append(tail, "🎤 voice message: "+Literal(f.URL))
		case f.Name != "":
			tail = append(tail, "📎 "+Literal(oneLine(f.Name))+": "+Literal(f.URL))
		default:
			tail = append(tail, "📎 "+Literal(f.URL))
		}
	}
	for _, st := range m.Stickers {
		if st = strings.TrimSpace(st); st != "" {
			tail = append(tail, "[sticker: "+Literal(oneLine(st))+"]")
		}
	}
	if len(lines) == 0 && len(tail) == 0 {
		return ""
	}
	if m.ReplyTo != nil {
		q := Shorten(strings.Join(strings.Fields(m.ReplyTo.Content), " "), quoteLen)
		if q == "" {
			q = "…"
		}
		quote := Literal(fmt.Sprintf("(replying to %s: “%s”)", oneLine(nameOr(m.ReplyTo.AuthorName)), q))
		if len(lines) > 0 {
			lines[0] = quote + " " + lines[0]
		} else {
			lines = []string{quote}
		}
	}
	prefix := Literal(oneLine(nameOr(m.AuthorName))) + mark + ": "
	all := append(lines, tail...)
	for i := range all {
		all[i] = prefix + all[i]
	}
	return strings.Join(all, "\n")
}

// FormatContactForResonite renders a contact's message for the other contacts of a group
// channel: "Name: text" (the text keeps its rich text, it came from Resonite), a voice message
// as its link, an item or an invite by name. Kinds that are for the bridge account alone
// (invite requests, transfers) and unreadable ones give "": they do not cross.
func FormatContactForResonite(name string, m core.ContactMessage) string {
	var body string
	switch {
	case m.Unreadable:
	case m.Kind == core.KindText || m.Kind == "":
		body = strings.TrimSpace(m.Text)
	case m.Kind == core.KindSound && m.SoundURL != "":
		body = "🎤 voice message: " + Literal(m.SoundURL)
	case m.Kind == core.KindObject && m.Item != nil:
		body = "📦 " + Literal(oneLine(m.Item.Name))
	case m.Kind == core.KindSessionInvite && m.Invite != nil:
		body = "📨 invites you to " + Literal(oneLine(m.Invite.Name))
		if m.Invite.URL != "" {
			body += " " + Literal(m.Invite.URL)
		}
	}
	if body == "" {
		return ""
	}
	return Literal(oneLine(nameOr(name))) + ": " + body
}

// discordFiles are a message's attachments, by name when the bot gave them.
func discordFiles(m core.DiscordMessage) []core.DiscordFile {
	if len(m.Files) > 0 {
		return m.Files
	}
	var out []core.DiscordFile
	for _, a := range m.Attachments {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, core.DiscordFile{URL: a})
		}
	}
	return out
}

// oneLine keeps a name on one line: a name with a line break could start a line of its own.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

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
		// Every kind fits one post: what is not the contact's own text is shortened.
		p.Content = Shorten(neutralizeMentions(content), DiscordMaxLen)
		p.Embeds = embeds
		return []core.Post{p}
	}
	if m.Unreadable {
		return one(unreadable(m.Kind))
	}
	switch m.Kind {
	case core.KindText, "":
		var posts []core.Post
		for _, chunk := range SplitText(neutralizeMentions(DiscordFromRichText(m.Text)), DiscordMaxLen) {
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
		// The delivery uploads the audio with this post when it can be fetched (voice.go).
		return one("🎤 Voice message: " + m.SoundURL)
	case core.KindObject:
		name := "an item"
		if m.Item != nil && strings.TrimSpace(m.Item.Name) != "" {
			name = oneLine(m.Item.Name)
		}
		line := "📦 sent an item: **" + EscapeMarkdown(Shorten(name, itemNameLen)) + "**"
		if m.Item != nil && m.Item.ThumbnailURL != "" {
			return one(line, core.Embed{Title: Shorten(name, 256), ThumbnailURL: m.Item.ThumbnailURL})
		}
		return one(line)
	case core.KindSessionInvite:
		if m.Invite == nil {
			return one(unreadable(m.Kind))
		}
		posts := one("📨 invites you to a session", SessionEmbed(*m.Invite))
		posts[0].Buttons = sessionButton(m.Invite.URL)
		return posts
	case core.KindInviteRequest:
		r := m.InviteRequest
		if r == nil {
			return one(unreadable(m.Kind))
		}
		from := EscapeMarkdown(Shorten(oneLine(nameOr(r.From)), 100))
		line := "🙋 " + from + " asks for an invite"
		if r.ForUser != "" && r.ForUser != r.From {
			line += " for " + EscapeMarkdown(Shorten(oneLine(r.ForUser), 100))
		}
		if s := strings.TrimSpace(r.SessionName); s != "" {
			line += " to " + EscapeMarkdown(Shorten(oneLine(s), 300))
		}
		posts := one(line)
		posts[0].Buttons = sessionButton(r.SessionURL)
		return posts
	case core.KindCreditTransfer:
		return one("💸 sent a credit transfer" + transferSuffix(m.Transfer))
	case core.KindSugarCubes:
		return one("🧊 sent sugar cubes" + transferSuffix(m.Transfer))
	default:
		return one("sent a message of type " + EscapeMarkdown(Shorten(oneLine(string(m.Kind)), 64)) + " that Discord cannot show")
	}
}

// itemNameLen is how much of an item's name a post shows: escaped, it stays well inside
// Discord's 2,000 characters.
const itemNameLen = 300

// sessionButton is the link button to a session's go.resonite.com page; none without a page.
func sessionButton(url string) []core.LinkButton {
	if !strings.HasPrefix(url, "https://go.resonite.com/") {
		return nil
	}
	return []core.LinkButton{{Label: "Open in Resonite", URL: url}}
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
		s = ": " + EscapeMarkdown(Shorten(oneLine(t.Amount), 100))
	}
	if c := strings.TrimSpace(t.Comment); c != "" {
		s += " (“" + DiscordFromRichText(Shorten(oneLine(c), 200)) + "”)"
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
