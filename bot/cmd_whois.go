package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bridge"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// contactCache keeps the bridge account's contact list briefly for autocomplete and lookups.
type contactCache struct {
	ttl  time.Duration
	mu   sync.Mutex
	list []core.Contact
	at   time.Time
}

func newContactCache(ttl time.Duration) *contactCache { return &contactCache{ttl: ttl} }

// get returns the contacts, from the cache unless it is older than the TTL or fresh is asked.
func (c *contactCache) get(ctx context.Context, r Resonite, fresh bool) ([]core.Contact, error) {
	c.mu.Lock()
	if !fresh && c.list != nil && time.Since(c.at) < c.ttl {
		list := c.list
		c.mu.Unlock()
		return list, nil
	}
	c.mu.Unlock()
	list, err := r.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []core.Contact{}
	}
	c.mu.Lock()
	c.list, c.at = list, time.Now()
	c.mu.Unlock()
	return list, nil
}

// findContact matches a U- id, a username or an alternate username, case-insensitively.
func findContact(list []core.Contact, who string) (core.Contact, bool) {
	who = strings.TrimSpace(who)
	for _, c := range list {
		if strings.EqualFold(c.ID, who) || strings.EqualFold(c.Username, who) {
			return c, true
		}
	}
	for _, c := range list {
		for _, alt := range c.AlternateUsernames {
			if strings.EqualFold(alt, who) {
				return c, true
			}
		}
	}
	return core.Contact{}, false
}

// isFriend: both sides accepted, so messages can flow.
func isFriend(c core.Contact) bool { return c.State == core.ContactFriend }

func choice(name, value string) *discordgo.ApplicationCommandOptionChoice {
	return &discordgo.ApplicationCommandOptionChoice{Name: bridge.Shorten(name, 100), Value: bridge.Shorten(value, 100)}
}

func matches(typed string, names ...string) bool {
	typed = strings.ToLower(strings.TrimSpace(typed))
	if typed == "" {
		return true
	}
	for _, n := range names {
		if strings.Contains(strings.ToLower(n), typed) {
			return true
		}
	}
	return false
}

// suggestContacts offers the bridge account's contacts (friends only) that agreed to this
// server or that it asked, plus "all" for /notify: a server never sees the whole contact list.
func (b *Bot) suggestContacts(ctx context.Context, guildID, typed string, withAll bool) []*discordgo.ApplicationCommandOptionChoice {
	mine, err := b.guildContacts(ctx, guildID)
	return b.suggestAmong(ctx, typed, withAll, mine, err)
}

// suggestConsented offers "all" and the contacts that agreed to the guild (not those only
// asked): whom /follow can follow.
func (b *Bot) suggestConsented(ctx context.Context, guildID, typed string) []*discordgo.ApplicationCommandOptionChoice {
	mine, err := b.consentedSet(ctx, guildID)
	return b.suggestAmong(ctx, typed, true, mine, err)
}

// suggestAmong offers the friends in mine (found with err) matching typed, sorted by name,
// after "all" when withAll.
func (b *Bot) suggestAmong(ctx context.Context, typed string, withAll bool, mine map[string]bool, err error) []*discordgo.ApplicationCommandOptionChoice {
	var out []*discordgo.ApplicationCommandOptionChoice
	if withAll && matches(typed, "all") {
		out = append(out, choice("all (every contact who agreed to this server)", core.AllContacts))
	}
	if err != nil {
		b.log.Debug("autocomplete: listing consents failed", "err", err)
		return out
	}
	list, err := b.contacts.get(ctx, b.o.Resonite, false)
	if err != nil {
		b.log.Debug("autocomplete: listing contacts failed", "err", err)
		return out
	}
	list = slices.Clone(list)
	slices.SortFunc(list, func(a, b core.Contact) int {
		return strings.Compare(strings.ToLower(a.Username), strings.ToLower(b.Username))
	})
	for _, c := range list {
		if isFriend(c) && mine[c.ID] && matches(typed, c.Username, c.ID) {
			out = append(out, choice(c.Username+" ("+c.ID+")", c.ID))
		}
		if len(out) == 25 {
			break
		}
	}
	return out
}

// suggestUsers offers the contacts known to this server first (see suggestContacts), then the
// cloud's user search.
func (b *Bot) suggestUsers(ctx context.Context, guildID, typed string) []*discordgo.ApplicationCommandOptionChoice {
	seen := map[string]bool{}
	var out []*discordgo.ApplicationCommandOptionChoice
	mine, _ := b.guildContacts(ctx, guildID)
	if list, err := b.contacts.get(ctx, b.o.Resonite, false); err == nil {
		for _, c := range list {
			// Contacts the bridge accepted: friends, and those who have not accepted back yet.
			if (c.State == core.ContactFriend || c.State == core.ContactPending) && mine[c.ID] && matches(typed, c.Username, c.ID) && len(out) < 25 {
				out = append(out, choice(c.Username+" ("+c.ID+")", c.ID))
				seen[c.ID] = true
			}
		}
	}
	typed = strings.TrimSpace(typed)
	if len([]rune(typed)) < 2 || len(out) >= 25 {
		return out
	}
	users, err := b.o.Resonite.SearchUsers(ctx, typed)
	if err != nil {
		b.log.Debug("autocomplete: user search failed", "err", err)
		return out
	}
	for _, u := range users {
		if len(out) == 25 {
			break
		}
		if u.ID != "" && !seen[u.ID] {
			out = append(out, choice(u.Username+" ("+u.ID+")", u.ID))
			seen[u.ID] = true
		}
	}
	return out
}

// suggestSubscriptions offers what this channel announces, for /notify remove.
func (b *Bot) suggestSubscriptions(ctx context.Context, channelID, typed string) []*discordgo.ApplicationCommandOptionChoice {
	subs, err := b.o.Store.SubscriptionsByChannel(ctx, channelID)
	if err != nil {
		return nil
	}
	list, _ := b.contacts.get(ctx, b.o.Resonite, false)
	var out []*discordgo.ApplicationCommandOptionChoice
	for _, s := range subs {
		name := s.ContactID
		if s.ContactID == core.AllContacts {
			name = "all (every contact)"
		} else if c, ok := findContact(list, s.ContactID); ok {
			name = c.Username + " (" + c.ID + ")"
		}
		if matches(typed, name, s.ContactID) && len(out) < 25 {
			out = append(out, choice(name, s.ContactID))
		}
	}
	return out
}

func notFound(format string, args ...any) answer {
	return answer{content: "🔍 " + fmt.Sprintf(format, args...), ephemeral: true, failed: true}
}

func (b *Bot) cmdWhois(ctx context.Context, ix *interaction, data discordgo.ApplicationCommandInteractionData) answer {
	who := stringOpt(optionMap(data.Options), "user")
	if who == "" {
		return failure("Give a username or a U- id.")
	}
	var (
		u   core.User
		err error
	)
	if strings.HasPrefix(strings.ToUpper(who), "U-") {
		u, err = b.o.Resonite.User(ctx, who)
	} else {
		u, err = b.o.Resonite.UserByName(ctx, who)
	}
	if errors.Is(err, core.ErrNotFound) {
		return notFound("No Resonite user “%s”. Check the spelling, or pick a name from the suggestions.", bridge.Shorten(who, 64))
	}
	if err != nil {
		b.log.Warn("looking up a Resonite user failed", "user", who, "err", err)
		return apiFailure("looking up that user", err)
	}
	e := &discordgo.MessageEmbed{
		Type:  discordgo.EmbedTypeRich,
		Title: bridge.Shorten(u.Username, 256),
		Color: resoniteColor,
		Fields: []*discordgo.MessageEmbedField{
			{Name: "User ID", Value: "`" + u.ID + "`", Inline: true},
		},
	}
	if !u.RegisteredAt.IsZero() {
		e.Fields = append(e.Fields, &discordgo.MessageEmbedField{
			Name: "Registered", Value: fmt.Sprintf("<t:%d:D>", u.RegisteredAt.Unix()), Inline: true,
		})
	}
	if icon := httpsOnly(u.IconURL); icon != "" {
		e.Thumbnail = &discordgo.MessageEmbedThumbnail{URL: icon}
	}
	if t := strings.TrimSpace(u.Tagline); t != "" {
		e.Description = bridge.Shorten(t, 300)
	}
	if list, err := b.contacts.get(ctx, b.o.Resonite, false); err == nil {
		if c, ok := findContact(list, u.ID); ok {
			// Status and session only for a contact who agreed to this server.
			shown, err := b.consented(ctx, ix.GuildID, c.ID)
			if err != nil {
				b.log.Warn("/whois: reading consents failed", "err", err)
			}
			b.addPresenceFields(e, c, shown)
		}
	}
	return answer{embeds: []*discordgo.MessageEmbed{e}}
}

// addPresenceFields shows a contact's relation to the bridge account, its status and session.
func (b *Bot) addPresenceFields(e *discordgo.MessageEmbed, c core.Contact, withPresence bool) {
	var relation string
	switch c.State {
	case core.ContactFriend:
		relation = "contact of the bridge"
	case core.ContactRequested:
		relation = "asked to become a contact"
	case core.ContactPending:
		relation = "contact request pending on their side"
	default:
		return
	}
	e.Fields = append(e.Fields, &discordgo.MessageEmbedField{Name: "Contact", Value: relation, Inline: true})
	if b.o.Presence == nil || !isFriend(c) || !withPresence {
		return
	}
	status, session, known := b.o.Presence.ContactPresence(c.ID)
	if !known {
		return
	}
	if status == "" {
		status = core.StatusOffline
	}
	e.Fields = append(e.Fields, &discordgo.MessageEmbedField{Name: "Status", Value: bridge.StatusEmoji(status) + " " + string(status), Inline: true})
	if session != nil {
		name := strings.TrimSpace(session.Name)
		if name == "" {
			name = "a session"
		}
		value := bridge.EscapeMarkdown(bridge.Shorten(name, 200))
		if u := httpsOnly(session.URL); u != "" {
			value = fmt.Sprintf("[%s](%s)", value, u)
		}
		e.Fields = append(e.Fields, &discordgo.MessageEmbedField{Name: "Session", Value: value})
	}
}
