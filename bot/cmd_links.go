package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bridge"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// accountName is how the bridge account is called in answers.
func (b *Bot) accountName(ctx context.Context) (name string, autoAccept bool) {
	if b.o.Status != nil {
		st := b.o.Status.Status(ctx, "")
		name, autoAccept = st.AccountUsername, st.AutoAccept
		if name == "" {
			name = st.AccountUserID
		}
	}
	if name == "" {
		name = "the bridge account"
	} else {
		name = "**" + bridge.EscapeMarkdown(name) + "**"
	}
	return name, autoAccept
}

// befriendHint tells an admin how to make someone a contact of the bridge account.
func (b *Bot) befriendHint(ctx context.Context, who string, c *core.Contact) string {
	account, auto := b.accountName(ctx)
	then := "Then run /link again."
	accept := "; " + account + " accepts it automatically. " + then
	if !auto {
		accept = ", and accept it on " + account + " (in Resonite, or set RESONITE_AUTO_ACCEPT_CONTACTS=true). " + then
	}
	switch {
	case c != nil && c.State == core.ContactRequested:
		return fmt.Sprintf("**%s** asked %s to become a contact, but the request is not accepted yet: accept it on %s in Resonite (or set RESONITE_AUTO_ACCEPT_CONTACTS=true). %s",
			bridge.EscapeMarkdown(c.Username), account, account, then)
	case c != nil && c.State == core.ContactPending:
		return fmt.Sprintf("%s has asked **%s** to become a contact; **%s** must accept the request in Resonite. %s",
			account, bridge.EscapeMarkdown(c.Username), bridge.EscapeMarkdown(c.Username), then)
	}
	return fmt.Sprintf("“%s” is not a contact of %s. In Resonite, send %s a contact request from that account%s",
		bridge.Shorten(who, 64), account, account, accept)
}

// resolveContact finds who among the bridge account's contacts; the list is refreshed when the
// cached one does not have them (they may have just been accepted).
func (b *Bot) resolveContact(ctx context.Context, who string) (core.Contact, bool, error) {
	list, err := b.contacts.get(ctx, b.o.Resonite, false)
	if err != nil {
		return core.Contact{}, false, err
	}
	if c, ok := findContact(list, who); ok && isFriend(c) {
		return c, true, nil
	}
	list, err = b.contacts.get(ctx, b.o.Resonite, true)
	if err != nil {
		return core.Contact{}, false, err
	}
	c, ok := findContact(list, who)
	return c, ok, nil
}

func channelRef(id string) string { return "<#" + id + ">" }

// contactNames lists pairings' contacts as "**name** (`id`), …".
func contactNames(ps []core.Pairing) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = fmt.Sprintf("**%s** (`%s`)", bridge.EscapeMarkdown(nameOrID(p.ContactUsername, p.ContactID)), p.ContactID)
	}
	return strings.Join(names, ", ")
}

func nameOrID(name, id string) string {
	if strings.TrimSpace(name) == "" {
		return id
	}
	return name
}

func (b *Bot) cmdLink(ctx context.Context, ix *interaction, data discordgo.ApplicationCommandInteractionData) answer {
	who := stringOpt(optionMap(data.Options), "contact")
	if who == "" {
		return failure("Name the contact: a username or a U- id.")
	}
	ps, err := b.o.Store.PairingsByChannel(ctx, ix.ChannelID)
	if err != nil {
		b.log.Warn("/link: reading the pairings failed", "err", err)
		return failure(dbDown)
	}
	if len(ps) >= core.MaxChannelContacts {
		return failure("This channel holds %d contacts already, the most one channel can have: %s. Use /unlink contact to make room.", len(ps), contactNames(ps))
	}
	c, found, err := b.resolveContact(ctx, who)
	if err != nil {
		b.log.Warn("/link: listing contacts failed", "err", err)
		return apiFailure("listing the bridge account's contacts", err)
	}
	if !found || !isFriend(c) {
		var cp *core.Contact
		if found {
			cp = &c
		}
		return failure("%s", b.befriendHint(ctx, who, cp))
	}
	if slices.ContainsFunc(ps, func(p core.Pairing) bool { return p.ContactID == c.ID }) {
		return failure("This channel is already linked with **%s** (`%s`); see /links.", bridge.EscapeMarkdown(c.Username), c.ID)
	}
	if waiting, err := b.waitingLinks(ctx, ix.GuildID, ix.ChannelID, c.ID); err != nil {
		b.log.Warn("/link: reading consent requests failed", "err", err)
		return failure(dbDown)
	} else if len(ps)+waiting >= core.MaxChannelContacts {
		return failure("This channel holds %d contacts and waits for %d more to agree: %d is the most one channel can have. Use /unlink contact to make room.", len(ps), waiting, core.MaxChannelContacts)
	}
	if ok, err := b.consented(ctx, ix.GuildID, c.ID); err != nil {
		b.log.Warn("/link: reading consents failed", "err", err)
		return failure(dbDown)
	} else if !ok {
		return b.askConsent(ctx, ix, c, core.ConsentPairing)
	}
	p, err := b.o.Store.CreatePairing(ctx, core.Pairing{
		GuildID: ix.GuildID, ChannelID: ix.ChannelID, ContactID: c.ID, ContactUsername: c.Username,
		CreatedBy: invokerID(ix.Interaction),
	})
	switch {
	case errors.Is(err, core.ErrConflict):
		return failure("This channel was linked with **%s** a moment ago by someone else; see /links.", bridge.EscapeMarkdown(c.Username))
	case errors.Is(err, core.ErrFull):
		return failure("This channel filled up a moment ago: %d contacts is the most one channel can have; see /links.", core.MaxChannelContacts)
	case err != nil:
		b.log.Warn("/link: storing the pairing failed", "err", err)
		return failure(dbDown)
	}
	b.log.Info("paired a channel", "channel", p.ChannelID, "guild", p.GuildID, "contact", p.ContactID, "by", p.CreatedBy, "contacts", len(ps)+1)
	msg := fmt.Sprintf("🔗 Linked %s with Resonite contact **%s** (`%s`). Messages now relay both ways.",
		channelRef(ix.ChannelID), bridge.EscapeMarkdown(c.Username), c.ID)
	if len(ps) > 0 {
		msg = fmt.Sprintf("🔗 Added **%s** (`%s`) to %s, now a group channel of %d contacts: %s. Messages here reach every one of them, and each one's messages reach the others as “Name: text”.",
			bridge.EscapeMarkdown(c.Username), c.ID, channelRef(ix.ChannelID), len(ps)+1, contactNames(append(ps[:len(ps):len(ps)], p)))
	}
	if _, err := b.hooks.resolve(ctx, ix.ChannelID); errors.Is(err, errNoWebhook) {
		msg += "\n⚠ The bot lacks **Manage Webhooks** here, so Resonite messages will appear as the bot's own, prefixed with the sender's name. Grant it to show them under each sender's name and picture."
	} else if err != nil {
		b.log.Warn("/link: preparing the channel's webhook failed; it is retried on the first post", "channel", ix.ChannelID, "err", err)
	}
	return answer{content: msg}
}

// channelLinkRequests are the /link requests of a channel still waiting for a contact's
// consent.
func (b *Bot) channelLinkRequests(ctx context.Context, guildID, channelID string) ([]core.ConsentRequest, error) {
	reqs, err := b.o.Consent.ConsentRequests(ctx, guildID)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(reqs, func(r core.ConsentRequest) bool {
		return r.Kind != core.ConsentPairing || r.ChannelID != channelID
	}), nil
}

// waitingLinks counts the channel's waiting /link requests other than except's.
func (b *Bot) waitingLinks(ctx context.Context, guildID, channelID, except string) (int, error) {
	reqs, err := b.channelLinkRequests(ctx, guildID, channelID)
	n := 0
	for _, r := range reqs {
		if r.ContactID != except {
			n++
		}
	}
	return n, err
}

// pairingOf finds the pairing of who (a U- id or a username, any case) among ps.
func pairingOf(ps []core.Pairing, who string) (core.Pairing, bool) {
	for _, p := range ps {
		if strings.EqualFold(p.ContactID, who) || strings.EqualFold(p.ContactUsername, who) {
			return p, true
		}
	}
	return core.Pairing{}, false
}

func (b *Bot) cmdUnlink(ctx context.Context, ix *interaction, data discordgo.ApplicationCommandInteractionData) answer {
	who := stringOpt(optionMap(data.Options), "contact")
	if who == "" {
		return b.unlinkAll(ctx, ix)
	}
	ps, err := b.o.Store.PairingsByChannel(ctx, ix.ChannelID)
	if err != nil {
		b.log.Warn("/unlink: reading the pairings failed", "err", err)
		return failure(dbDown)
	}
	p, ok := pairingOf(ps, who)
	if !ok {
		// Maybe the contact has not agreed yet: a waiting request can be withdrawn by name too.
		reqs, _ := b.channelLinkRequests(ctx, ix.GuildID, ix.ChannelID)
		for _, r := range reqs {
			if !strings.EqualFold(r.ContactID, who) && !strings.EqualFold(r.ContactUsername, who) {
				continue
			}
			if n, err := b.o.Consent.CancelConsentRequests(ctx, ix.ChannelID, r.ContactID); err == nil && n > 0 {
				return answer{content: fmt.Sprintf("✂ Cancelled the request still waiting for **%s**'s answer.", bridge.EscapeMarkdown(r.ContactUsername))}
			}
		}
		if len(ps) == 0 {
			return failure("This channel is not linked with anyone.")
		}
		return failure("“%s” is not linked in this channel. Linked here: %s.", bridge.Shorten(who, 64), contactNames(ps))
	}
	if _, err := b.o.Consent.CancelConsentRequests(ctx, ix.ChannelID, p.ContactID); err != nil {
		b.log.Warn("/unlink: cancelling waiting requests failed", "err", err)
	}
	removed, err := b.o.Store.DeletePairings(ctx, ix.ChannelID, p.ContactID)
	if errors.Is(err, core.ErrNotFound) {
		return failure("**%s** was removed from this channel a moment ago by someone else; see /links.", bridge.EscapeMarkdown(nameOrID(p.ContactUsername, p.ContactID)))
	}
	if err != nil {
		b.log.Warn("/unlink: deleting the pairing failed", "err", err)
		return failure(dbDown)
	}
	b.log.Info("removed a contact from a channel", "channel", ix.ChannelID, "contact", p.ContactID, "by", invokerID(ix.Interaction))
	var rest []core.Pairing
	for _, q := range ps {
		if !slices.ContainsFunc(removed, func(r core.Pairing) bool { return r.ID == q.ID }) {
			rest = append(rest, q)
		}
	}
	msg := fmt.Sprintf("✂ Removed **%s** from %s.", bridge.EscapeMarkdown(nameOrID(p.ContactUsername, p.ContactID)), channelRef(ix.ChannelID))
	if len(rest) == 0 {
		msg += " Nothing is relayed here any more."
	} else {
		msg += " Still linked here: " + contactNames(rest) + "."
	}
	return answer{content: msg}
}

// unlinkAll removes every pairing of the channel and its waiting /link requests.
func (b *Bot) unlinkAll(ctx context.Context, ix *interaction) answer {
	cancelled, cerr := b.o.Consent.CancelConsentRequests(ctx, ix.ChannelID, "")
	if cerr != nil {
		b.log.Warn("/unlink: cancelling waiting requests failed", "err", cerr)
	}
	ps, err := b.o.Store.DeletePairings(ctx, ix.ChannelID, "")
	if errors.Is(err, core.ErrNotFound) {
		if cancelled > 0 {
			return answer{content: "✂ Cancelled the request still waiting for the contact's answer. Nothing is relayed here."}
		}
		return failure("This channel is not linked with anyone.")
	}
	if err != nil {
		b.log.Warn("/unlink: deleting the pairings failed", "err", err)
		return failure(dbDown)
	}
	for _, p := range ps {
		b.log.Info("unpaired a channel", "channel", p.ChannelID, "contact", p.ContactID, "by", invokerID(ix.Interaction))
	}
	if len(ps) == 1 {
		return answer{content: fmt.Sprintf("✂ Unlinked %s from **%s**. Nothing is relayed here any more.", channelRef(ix.ChannelID), bridge.EscapeMarkdown(ps[0].ContactUsername))}
	}
	return answer{content: fmt.Sprintf("✂ Unlinked %s from its %d contacts: %s. Nothing is relayed here any more.", channelRef(ix.ChannelID), len(ps), contactNames(ps))}
}

// suggestChannelContacts offers the contacts paired with the channel (for /unlink).
func (b *Bot) suggestChannelContacts(ctx context.Context, channelID, typed string) []*discordgo.ApplicationCommandOptionChoice {
	ps, err := b.o.Store.PairingsByChannel(ctx, channelID)
	if err != nil {
		return nil
	}
	var out []*discordgo.ApplicationCommandOptionChoice
	for _, p := range ps {
		name := nameOrID(p.ContactUsername, p.ContactID) + " (" + p.ContactID + ")"
		if matches(typed, name, p.ContactID) && len(out) < 25 {
			out = append(out, choice(name, p.ContactID))
		}
	}
	return out
}

func (b *Bot) cmdLinks(ctx context.Context, ix *interaction, _ discordgo.ApplicationCommandInteractionData) answer {
	ps, err := b.o.Store.PairingsByGuild(ctx, ix.GuildID)
	if err != nil {
		b.log.Warn("/links: listing pairings failed", "err", err)
		return failure(dbDown)
	}
	waiting, err := b.waitingLines(ctx, ix.GuildID)
	if err != nil {
		b.log.Warn("/links: listing consent requests failed", "err", err)
		return failure(dbDown)
	}
	if len(ps) == 0 && len(waiting) == 0 {
		return answer{content: "No channel of this server is linked. Use /link in a channel to pair it with a Resonite contact."}
	}
	channels := bridge.GroupByChannel(ps)
	var lines []string
	for _, group := range channels {
		lines = append(lines, fmt.Sprintf("%s ↔ %s, since <t:%d:d>\n", channelRef(group[0].ChannelID), contactNames(group), group[0].CreatedAt.Unix()))
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "**%d linked channel(s)**\n", len(channels))
	if len(waiting) > 0 {
		lines = append(lines, fmt.Sprintf("**%d request(s) waiting for the contact's consent**\n", len(waiting)))
		lines = append(lines, waiting...)
	}
	for _, line := range lines {
		if sb.Len()+len(line) > 1900 {
			sb.WriteString("…")
			break
		}
		sb.WriteString(line)
	}
	return answer{content: sb.String()}
}

func (b *Bot) cmdNotify(ctx context.Context, ix *interaction, data discordgo.ApplicationCommandInteractionData) answer {
	if len(data.Options) == 0 || data.Options[0] == nil {
		return failure("Use /notify add, /notify remove or /notify list.")
	}
	sub := data.Options[0]
	who := stringOpt(optionMap(sub.Options), "contact")
	switch sub.Name {
	case "list":
		return b.notifyList(ctx, ix)
	case "add":
		if who == "" {
			return failure("Name the contact (username or U- id), or all.")
		}
		id, name := core.AllContacts, "every contact who agreed to this server"
		if !strings.EqualFold(who, core.AllContacts) {
			c, found, err := b.resolveContact(ctx, who)
			if err != nil {
				return apiFailure("listing the bridge account's contacts", err)
			}
			if !found || !isFriend(c) {
				var cp *core.Contact
				if found {
					cp = &c
				}
				return failure("%s", strings.Replace(b.befriendHint(ctx, who, cp), "/link", "/notify add", 1))
			}
			if ok, err := b.consented(ctx, ix.GuildID, c.ID); err != nil {
				b.log.Warn("/notify add: reading consents failed", "err", err)
				return failure(dbDown)
			} else if !ok {
				return b.askConsent(ctx, ix, c, core.ConsentSubscription)
			}
			id, name = c.ID, "**"+bridge.EscapeMarkdown(c.Username)+"**"
		}
		created, err := b.o.Store.AddSubscription(ctx, core.Subscription{
			GuildID: ix.GuildID, ChannelID: ix.ChannelID, ContactID: id, CreatedBy: invokerID(ix.Interaction),
		})
		if err != nil {
			b.log.Warn("/notify add: storing the subscription failed", "err", err)
			return failure(dbDown)
		}
		if !created {
			return answer{content: fmt.Sprintf("This channel already announces %s.", name), ephemeral: true}
		}
		if id == core.AllContacts {
			return answer{content: "🔔 This channel now announces when every contact who agreed to this server comes online."}
		}
		return answer{content: fmt.Sprintf("🔔 This channel now announces when %s comes online.", name)}
	case "remove":
		if who == "" {
			return failure("Name the contact (username or U- id), or all.")
		}
		id := who
		if !strings.EqualFold(who, core.AllContacts) && !strings.HasPrefix(strings.ToUpper(who), "U-") {
			if c, found, err := b.resolveContact(ctx, who); err == nil && found {
				id = c.ID
			}
		}
		if strings.EqualFold(id, core.AllContacts) {
			id = core.AllContacts
		}
		removed, err := b.o.Store.RemoveSubscription(ctx, ix.ChannelID, id)
		if err != nil {
			b.log.Warn("/notify remove: deleting the subscription failed", "err", err)
			return failure(dbDown)
		}
		if !removed {
			return failure("This channel does not announce “%s”; see /notify list.", bridge.Shorten(who, 64))
		}
		return answer{content: fmt.Sprintf("🔕 This channel no longer announces “%s”.", bridge.Shorten(who, 64))}
	}
	return failure("Unknown subcommand %q.", sub.Name)
}

func (b *Bot) notifyList(ctx context.Context, ix *interaction) answer {
	subs, err := b.o.Store.SubscriptionsByChannel(ctx, ix.ChannelID)
	if err != nil {
		return failure(dbDown)
	}
	if len(subs) == 0 {
		return answer{content: "This channel announces nobody. Use /notify add to announce a contact (or all).", ephemeral: true}
	}
	list, _ := b.contacts.get(ctx, b.o.Resonite, false)
	var sb strings.Builder
	sb.WriteString("This channel announces when these come online:\n")
	for _, s := range subs {
		name := "`" + s.ContactID + "`"
		if s.ContactID == core.AllContacts {
			name = "every contact"
		} else if c, ok := findContact(list, s.ContactID); ok {
			name = "**" + bridge.EscapeMarkdown(c.Username) + "** (`" + c.ID + "`)"
		}
		line := "• " + name + "\n"
		if sb.Len()+len(line) > 1900 {
			sb.WriteString("…")
			break
		}
		sb.WriteString(line)
	}
	return answer{content: sb.String(), ephemeral: true}
}
