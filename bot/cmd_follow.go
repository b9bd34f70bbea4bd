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

// consentedContacts returns the bridge account's contacts that consented in the guild, sorted
// by name.
func (b *Bot) consentedContacts(ctx context.Context, guildID string) ([]core.Contact, error) {
	ids, err := b.o.Consent.ConsentedContacts(ctx, guildID)
	if err != nil {
		return nil, err
	}
	list, err := b.contacts.get(ctx, b.o.Resonite, false)
	if err != nil {
		return nil, err
	}
	var out []core.Contact
	for _, id := range ids {
		c, ok := findContact(list, id)
		if !ok {
			c = core.Contact{ID: id, Username: id}
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(x, y core.Contact) int {
		return strings.Compare(strings.ToLower(x.Username), strings.ToLower(y.Username))
	})
	return out, nil
}

func (b *Bot) cmdFollow(ctx context.Context, ix *interaction, data discordgo.ApplicationCommandInteractionData) answer {
	if b.o.Community == nil {
		return failure("Personal notifications are not enabled in this bridge.")
	}
	if ix.GuildID == "" {
		return failure("Run /follow in a channel of the server whose contacts you want to follow.")
	}
	who := stringOpt(optionMap(data.Options), "contact")
	if who == "" {
		return failure("Name the contact (username or U- id), or all.")
	}
	id, name := core.AllContacts, "any contact of this server"
	if !strings.EqualFold(who, core.AllContacts) {
		list, err := b.consentedContacts(ctx, ix.GuildID)
		if err != nil {
			b.log.Warn("/follow: listing the consenting contacts failed", "err", err)
			return failure(dbDown)
		}
		c, ok := findContact(list, who)
		if !ok {
			return failure("“%s” is not among the Resonite contacts that agreed to this server; pick one from the suggestions.", bridge.Shorten(who, 64))
		}
		id, name = c.ID, "**"+bridge.EscapeMarkdown(c.Username)+"**"
	}
	on, err := b.o.Community.ToggleFollow(ctx, core.Follow{
		GuildID: ix.GuildID, ChannelID: ix.ChannelID, UserID: invokerID(ix.Interaction), ContactID: id,
	})
	if err != nil {
		b.log.Warn("/follow: storing the follow failed", "err", err)
		return failure(dbDown)
	}
	if on {
		return answer{content: fmt.Sprintf("🔔 On: I will send you a direct message when %s comes online. Run the same /follow again to turn it off.", name), ephemeral: true}
	}
	return answer{content: fmt.Sprintf("🔕 Off: no more direct messages when %s comes online.", name), ephemeral: true}
}
