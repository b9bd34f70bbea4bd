package bridge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// Consent: a contact's words and presence go only to the Discord servers it agreed to. A /link
// or /notify add naming a contact that has not consented in the server waits: the contact gets
// a Resonite message with a code, and its "link NNNNNN" records consent and activates what
// waited. From Resonite the contact also lists (!links) and withdraws (!unlink) its consents.
// These command messages, and the bridge's answers, are never relayed.

// ConsentStore is the consent part of the store; *store.Store has it. UseConsentCode and
// WithdrawConsent are transactions: consent and the pairings and subscriptions it allows change
// together. MarkCommandHandled returns false for a message id it has seen.
type ConsentStore interface {
	ConsentedContacts(ctx context.Context, guildID string) ([]string, error)
	ConsentsByContact(ctx context.Context, contactID string) ([]core.GuildConsent, error)
	CreateConsentRequest(ctx context.Context, r core.ConsentRequest, codeHash []byte, ttl time.Duration) (core.ConsentRequest, error)
	ConsentRequestsByGuild(ctx context.Context, guildID string) ([]core.ConsentRequest, error)
	CancelConsentRequests(ctx context.Context, channelID, contactID string) (int, error)
	UseConsentCode(ctx context.Context, contactID string, codeHash []byte, maxFailures int, window time.Duration) (core.CodeResult, error)
	WithdrawConsent(ctx context.Context, contactID string) (core.Withdrawal, error)
	MarkCommandHandled(ctx context.Context, messageID string) (bool, error)
	ForgetCommand(ctx context.Context, messageID string) error
}

const (
	// ConsentCodeTTL is how long a code is valid.
	ConsentCodeTTL = 15 * time.Minute
	// consentMaxFailures wrong codes within consentFailureWindow stop the checking of a
	// contact's codes until the window is over: a million codes cannot be walked through.
	consentMaxFailures   = 5
	consentFailureWindow = 15 * time.Minute
)

// errNoConsentStore is returned by the consent calls of a bridge built without one.
var errNoConsentStore = errors.New("bridge: consent is not configured (Options.Consent)")

var (
	linkCommand = regexp.MustCompile(`(?i)^link\s+(\S+)$`)
	sixDigits   = regexp.MustCompile(`^[0-9]{6}$`)
)

// contactCommand is what a contact's message asks of the bridge.
type contactCommand struct {
	kind string // "link", "links", "unlink"
	code string // of "link"
}

// parseContactCommand recognises "link NNNNNN" (trimmed, any case; a wrong code is still the
// command, so that it is answered and not relayed), "!links" and "!unlink".
func parseContactCommand(m core.ContactMessage) (contactCommand, bool) {
	if m.Kind != core.KindText && m.Kind != "" {
		return contactCommand{}, false
	}
	t := strings.TrimSpace(m.Text)
	switch strings.ToLower(t) {
	case "!links":
		return contactCommand{kind: "links"}, true
	case "!unlink":
		return contactCommand{kind: "unlink"}, true
	}
	if g := linkCommand.FindStringSubmatch(t); g != nil && strings.IndexFunc(g[1], isDigit) == 0 {
		return contactCommand{kind: "link", code: g[1]}, true
	}
	return contactCommand{}, false
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// codeHash is what is stored of a code: bound to the contact, so that a code only ever works
// for the contact it was sent to.
func codeHash(contactID, code string) []byte {
	h := sha256.Sum256([]byte("resonite-bridge consent code\x00" + contactID + "\x00" + code))
	return h[:]
}

// newCode draws six random digits.
func newCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("drawing a code: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// handleContactCommand acts on a contact's command message and reports whether m was one: a
// command is never relayed, whatever became of it. It is called for live and caught-up
// messages alike, before anything is enqueued; each command is acted upon once.
func (b *Bridge) handleContactCommand(ctx context.Context, m core.ContactMessage) (bool, error) {
	cmd, ok := parseContactCommand(m)
	if !ok {
		return false, nil
	}
	cs := b.o.Consent
	if cs == nil {
		return true, nil
	}
	first, err := cs.MarkCommandHandled(ctx, m.ID)
	if err != nil {
		b.noteError("recording a contact's command", err)
		return true, fmt.Errorf("bridge: recording command %s: %w", m.ID, err)
	}
	if !first {
		return true, nil
	}
	var reply string
	switch cmd.kind {
	case "link":
		reply, err = b.useCode(ctx, m.SenderID, cmd.code)
	case "links":
		reply, err = b.listConsents(ctx, m.SenderID)
	case "unlink":
		reply, err = b.withdraw(ctx, m.SenderID)
	}
	if err != nil {
		b.noteError("acting on a contact's command", err)
		if ferr := cs.ForgetCommand(ctx, m.ID); ferr != nil {
			b.noteError("forgetting a failed command", ferr)
		}
		return true, fmt.Errorf("bridge: acting on %s of %s: %w", cmd.kind, m.SenderID, err)
	}
	b.log.Info("contact command", "contact", m.SenderID, "command", cmd.kind)
	b.replyToContact(m, reply)
	return true, nil
}

// replyToContact answers a command from the task queue; the id derives from the command's, so
// that sending it again keeps one message.
func (b *Bridge) replyToContact(m core.ContactMessage, text string) {
	id := "MSG-" + uuid.NewSHA1(messageIDNamespace, []byte("consent-reply:"+m.ID)).String()
	b.tasks.push(func(ctx context.Context) {
		if err := b.o.Resonite.SendText(ctx, id, m.SenderID, text); err != nil {
			b.noteError("answering a contact's command", err)
		}
		if err := b.o.Resonite.MarkRead(ctx, m.SenderID, []string{m.ID}); err != nil {
			b.log.Debug("marking a command read failed", "err", err)
		}
	})
}

func (b *Bridge) useCode(ctx context.Context, contactID, code string) (string, error) {
	if !sixDigits.MatchString(code) {
		return "That code is not valid: a code has six digits, as in “link 123456”. Nothing changed.", nil
	}
	res, err := b.o.Consent.UseConsentCode(ctx, contactID, codeHash(contactID, code), consentMaxFailures, consentFailureWindow)
	if err != nil {
		return "", err
	}
	server := Literal(nameOr(res.GuildName))
	switch res.Outcome {
	case core.CodeThrottled:
		return fmt.Sprintf("Too many wrong codes: codes are not checked until %s UTC. Nothing changed.", res.RetryAt.UTC().Format("15:04")), nil
	case core.CodeWrong:
		s := "No waiting request has that code. Nothing changed."
		if !res.RetryAt.IsZero() {
			s += fmt.Sprintf(" Too many wrong codes: the next ones are not checked until %s UTC.", res.RetryAt.UTC().Format("15:04"))
		}
		return s, nil
	case core.CodeExpired:
		return fmt.Sprintf("That code for the Discord server “%s” has expired (codes are valid %d minutes). Nothing changed: ask the server's admins to run the command again.", server, int(ConsentCodeTTL.Minutes())), nil
	case core.CodeUsed:
		return fmt.Sprintf("That code for the Discord server “%s” was used already. Nothing changed; send !links to see where you are linked.", server), nil
	}
	var parts []string
	for _, a := range res.Activated {
		b.tellChannelActivated(a)
		what := "linked with #" + nameOr(a.Request.ChannelName)
		if a.Request.Kind == core.ConsentSubscription {
			what = "announced in #" + nameOr(a.Request.ChannelName) + " when you come online"
		}
		if !a.Created && a.Request.Kind == core.ConsentPairing {
			what = fmt.Sprintf("#%s could not be linked (it holds %d contacts already)", nameOr(a.Request.ChannelName), core.MaxChannelContacts)
		}
		parts = append(parts, Literal(what))
	}
	b.log.Info("contact consented", "contact", contactID, "guild", res.GuildID, "activated", len(res.Activated))
	return fmt.Sprintf("Done: you agreed to the Discord server “%s”. %s. Send !links to see where you are linked, !unlink to withdraw.",
		server, strings.Join(parts, "; ")), nil
}

// tellChannelActivated posts into the channel that its waiting /link or /notify add is active.
func (b *Bridge) tellChannelActivated(a core.Activation) {
	r := a.Request
	name := "**" + EscapeMarkdown(nameOr(r.ContactUsername)) + "**"
	var text string
	switch {
	case r.Kind == core.ConsentSubscription:
		text = fmt.Sprintf("✅ %s agreed: this channel now announces when they come online.", name)
	case a.Created:
		text = fmt.Sprintf("✅ %s agreed: this channel is now linked with them. Messages relay both ways.", name)
	default:
		text = fmt.Sprintf("⚠ %s agreed, but this channel holds %d contacts already (the most a channel can have); use /unlink contact to make room, then /link again.", name, core.MaxChannelContacts)
	}
	b.postNotice(r.ChannelID, text)
}

// postNotice posts a line of the bridge's own into a channel, from the task queue.
func (b *Bridge) postNotice(channelID, text string) {
	text = neutralizeMentions(text)
	b.tasks.push(func(ctx context.Context) {
		if _, err := b.o.Discord.Post(ctx, channelID, core.Post{Username: "Resonite", Content: text}); err != nil {
			b.noteError("telling a channel about consent", err)
		}
	})
}

func (b *Bridge) listConsents(ctx context.Context, contactID string) (string, error) {
	gs, err := b.o.Consent.ConsentsByContact(ctx, contactID)
	if err != nil {
		return "", err
	}
	if len(gs) == 0 {
		return "You are not linked with any Discord server: nothing of yours is relayed.", nil
	}
	var sb strings.Builder
	sb.WriteString("You agreed to these Discord servers:")
	for _, g := range gs {
		fmt.Fprintf(&sb, "\n• %s: %s, %s", Literal(nameOr(g.GuildName)), count(len(g.Pairings), "linked channel", "linked channels"), count(len(g.Subscriptions), "channel announcing you", "channels announcing you"))
	}
	sb.WriteString("\nSend !unlink to withdraw every consent.")
	return sb.String(), nil
}

// count says "1 thing" or "n things".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func (b *Bridge) withdraw(ctx context.Context, contactID string) (string, error) {
	w, err := b.o.Consent.WithdrawConsent(ctx, contactID)
	if err != nil {
		return "", err
	}
	if len(w.Guilds) == 0 && len(w.Pairings) == 0 && len(w.Subscriptions) == 0 && w.Requests == 0 {
		return "You were not linked with any Discord server. Nothing changed.", nil
	}
	name := ""
	told := map[string]bool{}
	for _, p := range w.Pairings {
		name = p.ContactUsername
		told[p.ChannelID] = true
		b.postNotice(p.ChannelID, fmt.Sprintf("🔒 **%s** withdrew their consent from Resonite: this channel is no longer linked with them.", EscapeMarkdown(nameOr(p.ContactUsername))))
	}
	who, _ := b.presence.contactLook(contactID, name)
	for _, s := range w.Subscriptions {
		if told[s.ChannelID] {
			continue
		}
		told[s.ChannelID] = true
		b.postNotice(s.ChannelID, fmt.Sprintf("🔒 **%s** withdrew their consent from Resonite: this channel no longer announces them.", EscapeMarkdown(who)))
	}
	b.log.Info("contact withdrew consent", "contact", contactID, "guilds", len(w.Guilds), "pairings", len(w.Pairings), "subscriptions", len(w.Subscriptions))
	return fmt.Sprintf("Done: you withdrew your consent from %s; %s and %s removed. Nothing of yours is relayed any more.",
		count(len(w.Guilds), "Discord server", "Discord servers"), count(len(w.Pairings), "linked channel", "linked channels"), count(len(w.Subscriptions), "announcement", "announcements")), nil
}

// AskConsent stores a waiting /link or /notify add and sends the contact its code. When the
// message cannot be sent the request is dropped again and the error says so.
func (b *Bridge) AskConsent(ctx context.Context, r core.ConsentRequest) (core.ConsentRequest, error) {
	cs := b.o.Consent
	if cs == nil {
		return core.ConsentRequest{}, errNoConsentStore
	}
	var (
		code   string
		stored core.ConsentRequest
		err    error
	)
	for range 5 { // a clash with another waiting code of the contact: draw again
		if code, err = newCode(); err != nil {
			return core.ConsentRequest{}, err
		}
		stored, err = cs.CreateConsentRequest(ctx, r, codeHash(r.ContactID, code), ConsentCodeTTL)
		if !errors.Is(err, core.ErrConflict) {
			break
		}
	}
	if err != nil {
		return core.ConsentRequest{}, fmt.Errorf("bridge: storing a consent request: %w", err)
	}
	text := consentRequestText(stored, code)
	id := "MSG-" + uuid.NewString()
	if err := b.o.Resonite.SendText(ctx, id, r.ContactID, text); err != nil {
		if _, cerr := cs.CancelConsentRequests(context.WithoutCancel(ctx), r.ChannelID, r.ContactID); cerr != nil {
			b.noteError("cancelling an unsent consent request", cerr)
		}
		return core.ConsentRequest{}, fmt.Errorf("bridge: sending the consent request to %s: %w", r.ContactID, err)
	}
	b.log.Info("asked a contact for consent", "contact", r.ContactID, "guild", r.GuildID, "channel", r.ChannelID, "kind", r.Kind)
	return stored, nil
}

// consentRequestText is the message a contact gets; names come from Discord and are shown
// literally.
func consentRequestText(r core.ConsentRequest, code string) string {
	server, channel := Literal(nameOr(r.GuildName)), Literal("#"+nameOr(r.ChannelName))
	what := fmt.Sprintf("wants to link its channel %s with you: your messages to me would be posted there, and its messages sent to you.", channel)
	if r.Kind == core.ConsentSubscription {
		what = fmt.Sprintf("wants to announce in its channel %s when you come online (with your status and session).", channel)
	}
	return fmt.Sprintf("The Discord server “%s” %s To agree, reply: link %s (valid %d minutes). Otherwise ignore this; nothing of yours goes there. !links shows where you are linked, !unlink withdraws every consent.",
		server, what, code, int(ConsentCodeTTL.Minutes()))
}

// ConsentedContacts returns the contacts that consented in the guild.
func (b *Bridge) ConsentedContacts(ctx context.Context, guildID string) ([]string, error) {
	if b.o.Consent == nil {
		return nil, errNoConsentStore
	}
	return b.o.Consent.ConsentedContacts(ctx, guildID)
}

// ConsentRequests returns the guild's requests still waiting for their contact.
func (b *Bridge) ConsentRequests(ctx context.Context, guildID string) ([]core.ConsentRequest, error) {
	if b.o.Consent == nil {
		return nil, errNoConsentStore
	}
	return b.o.Consent.ConsentRequestsByGuild(ctx, guildID)
}

// CancelConsentRequests drops the channel's waiting requests (of one contact when contactID is
// not empty).
func (b *Bridge) CancelConsentRequests(ctx context.Context, channelID, contactID string) (int, error) {
	if b.o.Consent == nil {
		return 0, errNoConsentStore
	}
	return b.o.Consent.CancelConsentRequests(ctx, channelID, contactID)
}
