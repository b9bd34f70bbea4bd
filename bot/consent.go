package bot

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bridge"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// The commands' side of consent: a server sees and names only the contacts that agreed to it
// (or that it asked and that have not answered yet).

// consented reports whether the contact agreed to the guild.
func (b *Bot) consented(ctx context.Context, guildID, contactID string) (bool, error) {
	ids, err := b.o.Consent.ConsentedContacts(ctx, guildID)
	if err != nil {
		return false, err
	}
	return slices.Contains(ids, contactID), nil
}

// consentedSet is the set of contacts that agreed to the guild.
func (b *Bot) consentedSet(ctx context.Context, guildID string) (map[string]bool, error) {
	ids, err := b.o.Consent.ConsentedContacts(ctx, guildID)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, id := range ids {
		set[id] = true
	}
	return set, nil
}

// guildContacts is the set of contacts that agreed to the guild or that it asked.
func (b *Bot) guildContacts(ctx context.Context, guildID string) (map[string]bool, error) {
	set, err := b.consentedSet(ctx, guildID)
	if err != nil {
		return nil, err
	}
	reqs, err := b.o.Consent.ConsentRequests(ctx, guildID)
	if err != nil {
		return nil, err
	}
	for _, r := range reqs {
		set[r.ContactID] = true
	}
	return set, nil
}

// guildName and channelName name a guild and channel for the contact's request.
func (b *Bot) guildName(id string) string {
	if g, err := b.s.State.Guild(id); err == nil && g.Name != "" {
		return g.Name
	}
	return "a Discord server"
}

func (b *Bot) channelName(id string) string {
	if c, err := b.s.State.Channel(id); err == nil && c.Name != "" {
		return c.Name
	}
	return "channel"
}

// askConsent sends the contact a request for this channel and answers that it waits.
func (b *Bot) askConsent(ctx context.Context, ix *interaction, c core.Contact, kind core.ConsentKind) answer {
	r, err := b.o.Consent.AskConsent(ctx, core.ConsentRequest{
		Kind: kind, GuildID: ix.GuildID, GuildName: b.guildName(ix.GuildID),
		ChannelID: ix.ChannelID, ChannelName: b.channelName(ix.ChannelID),
		ContactID: c.ID, ContactUsername: c.Username, CreatedBy: invokerID(ix.Interaction),
	})
	if err != nil {
		b.log.Warn("asking a contact for consent failed", "contact", c.ID, "err", err)
		return failure("Could not send **%s** the request in Resonite; try again in a moment.", bridge.EscapeMarkdown(c.Username))
	}
	what := "linked with this channel"
	if kind == core.ConsentSubscription {
		what = "announced in this channel"
	}
	return answer{content: fmt.Sprintf("⏳ **%s** (`%s`) has not agreed to be %s by this server yet: the bridge sent them a request in Resonite. "+
		"It becomes active when they answer with its code, within %d minutes (<t:%d:R>); /links shows what waits.",
		bridge.EscapeMarkdown(c.Username), c.ID, what, int(bridge.ConsentCodeTTL.Minutes()), r.ExpiresAt.Unix())}
}

// waitingLines lists the guild's requests that wait for their contact, for /links.
func (b *Bot) waitingLines(ctx context.Context, guildID string) ([]string, error) {
	reqs, err := b.o.Consent.ConsentRequests(ctx, guildID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range reqs {
		what := "link"
		if r.Kind == core.ConsentSubscription {
			what = "online notifications"
		}
		out = append(out, fmt.Sprintf("%s ⏳ **%s** (`%s`): %s, waiting for their answer until <t:%d:t>\n",
			channelRef(r.ChannelID), bridge.EscapeMarkdown(r.ContactUsername), r.ContactID, what, r.ExpiresAt.Unix()))
	}
	return out, nil
}

// sameGuildChannel reports whether a channel mentioned in a message of guildID may be named:
// only channels of the same server are, so a message cannot reveal another server's channels.
func sameGuildChannel(c *discordgo.Channel, guildID string) bool {
	return c != nil && c.Name != "" && guildID != "" && strings.EqualFold(c.GuildID, guildID)
}
