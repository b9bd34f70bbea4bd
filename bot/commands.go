package bot

import (
	"context"
	"errors"
	"time"

	"github.com/bwmarrin/discordgo"
)

// command is one slash command: its definition for Discord and its handler.
type command struct {
	def       *discordgo.ApplicationCommand
	admin     bool // needs Manage Channels (also enforced by default_member_permissions)
	ephemeral bool // the answer is shown to the invoker only
	run       func(ctx context.Context, ix *interaction, data discordgo.ApplicationCommandInteractionData) answer
}

// manageChannels is the default_member_permissions of the admin commands.
var manageChannels = int64(discordgo.PermissionManageChannels)

func ptr[T any](v T) *T { return &v }

// guildOnly: pairings and subscriptions belong to a server.
var guildOnly = &[]discordgo.InteractionContextType{discordgo.InteractionContextGuild}

// commands returns the command set (the names and options are a public contract: design.md).
func (b *Bot) commands() []command {
	contactOpt := func(desc string) *discordgo.ApplicationCommandOption {
		return &discordgo.ApplicationCommandOption{
			Type: discordgo.ApplicationCommandOptionString, Name: "contact", Description: desc,
			Required: true, Autocomplete: true, MaxLength: 64,
		}
	}
	return []command{
		{
			def: &discordgo.ApplicationCommand{
				Name: "sessions", Description: "List public Resonite sessions",
				Options: []*discordgo.ApplicationCommandOption{
					{Type: discordgo.ApplicationCommandOptionString, Name: "name", Description: "Only sessions whose name contains this", MaxLength: maxFilterLen},
					{Type: discordgo.ApplicationCommandOptionString, Name: "host", Description: "Only sessions hosted by this user", MaxLength: maxFilterLen},
					{Type: discordgo.ApplicationCommandOptionInteger, Name: "min_users", Description: "Only sessions with at least this many users", MinValue: ptr(0.0), MaxValue: 999},
					{Type: discordgo.ApplicationCommandOptionBoolean, Name: "include_empty_headless", Description: "Also list empty sessions of headless servers (default: yes)"},
				},
			},
			run: b.cmdSessions,
		},
		{
			def: &discordgo.ApplicationCommand{
				Name: "whois", Description: "Look up a Resonite user",
				Options: []*discordgo.ApplicationCommandOption{
					{Type: discordgo.ApplicationCommandOptionString, Name: "user", Description: "Username or U- id", Required: true, Autocomplete: true, MaxLength: 64},
				},
			},
			run: b.cmdWhois,
		},
		{
			def: &discordgo.ApplicationCommand{
				Name: "link", Description: "Pair this channel with a Resonite contact (again for a group of up to 10)",
				DefaultMemberPermissions: &manageChannels, Contexts: guildOnly,
				Options: []*discordgo.ApplicationCommandOption{contactOpt("The contact (username or U- id)")},
			},
			admin: true,
			run:   b.cmdLink,
		},
		{
			def: &discordgo.ApplicationCommand{
				Name: "unlink", Description: "Remove a contact from this channel, or every pairing of the channel",
				DefaultMemberPermissions: &manageChannels, Contexts: guildOnly,
				Options: []*discordgo.ApplicationCommandOption{{
					Type: discordgo.ApplicationCommandOptionString, Name: "contact",
					Description:  "The contact to remove (username or U- id); without it, all of them",
					Autocomplete: true, MaxLength: 64,
				}},
			},
			admin: true,
			run:   b.cmdUnlink,
		},
		{
			def: &discordgo.ApplicationCommand{
				Name: "links", Description: "List this server's pairings",
				DefaultMemberPermissions: &manageChannels, Contexts: guildOnly,
			},
			admin: true, ephemeral: true,
			run: b.cmdLinks,
		},
		{
			def: &discordgo.ApplicationCommand{
				Name: "notify", Description: "Announce in this channel when Resonite friends come online",
				DefaultMemberPermissions: &manageChannels, Contexts: guildOnly,
				Options: []*discordgo.ApplicationCommandOption{
					{Type: discordgo.ApplicationCommandOptionSubCommand, Name: "add", Description: "Announce a contact (or all) here",
						Options: []*discordgo.ApplicationCommandOption{contactOpt("The contact (username or U- id), or all")}},
					{Type: discordgo.ApplicationCommandOptionSubCommand, Name: "remove", Description: "Stop announcing a contact (or all) here",
						Options: []*discordgo.ApplicationCommandOption{contactOpt("The contact (username or U- id), or all")}},
					{Type: discordgo.ApplicationCommandOptionSubCommand, Name: "list", Description: "Who is announced here"},
				},
			},
			admin: true,
			run:   b.cmdNotify,
		},
		{
			def: &discordgo.ApplicationCommand{
				Name: "follow", Description: "Toggle a direct message when a Resonite contact comes online",
				Contexts: guildOnly,
				Options:  []*discordgo.ApplicationCommandOption{contactOpt("The contact (username or U- id), or all")},
			},
			ephemeral: true,
			run:       b.cmdFollow,
		},
		{
			def: &discordgo.ApplicationCommand{
				Name: "board", Description: "A message here that always shows who is online in Resonite",
				DefaultMemberPermissions: &manageChannels, Contexts: guildOnly,
				Options: []*discordgo.ApplicationCommandOption{
					{Type: discordgo.ApplicationCommandOptionSubCommand, Name: "start", Description: "Post the board in this channel and keep it up to date"},
					{Type: discordgo.ApplicationCommandOptionSubCommand, Name: "stop", Description: "End this channel's board and delete its message"},
				},
			},
			admin: true, ephemeral: true,
			run: b.cmdBoard,
		},
		{
			def:       &discordgo.ApplicationCommand{Name: "status", Description: "Health of the bridge"},
			ephemeral: true,
			run:       b.cmdStatus,
		},
	}
}

func (b *Bot) commandByName(name string) (command, bool) {
	for _, c := range b.commands() {
		if c.def.Name == name {
			return c, true
		}
	}
	return command{}, false
}

// suggest answers autocomplete for the option being typed.
func (b *Bot) suggest(ctx context.Context, ix *interaction, cmd string, path []string, option, typed string) []*discordgo.ApplicationCommandOptionChoice {
	switch {
	case cmd == "whois" && option == "user":
		return b.suggestUsers(ctx, ix.GuildID, typed)
	case cmd == "link" && option == "contact":
		return b.suggestContacts(ctx, ix.GuildID, typed, false)
	case cmd == "notify" && option == "contact" && len(path) == 1 && path[0] == "add":
		return b.suggestContacts(ctx, ix.GuildID, typed, true)
	case cmd == "follow" && option == "contact":
		return b.suggestConsented(ctx, ix.GuildID, typed)
	case cmd == "notify" && option == "contact" && len(path) == 1 && path[0] == "remove":
		return b.suggestSubscriptions(ctx, ix.ChannelID, typed)
	case cmd == "unlink" && option == "contact":
		return b.suggestChannelContacts(ctx, ix.ChannelID, typed)
	}
	return nil
}

// registerCommandsUntilDone overwrites the command set (idempotent: the same set twice is a
// no-op for Discord), retrying with backoff until it worked or ctx ends.
func (b *Bot) registerCommandsUntilDone(ctx context.Context) {
	wait := time.Second
	for {
		err := b.registerCommands(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		b.log.Warn("registering slash commands failed; retrying", "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Minute)
	}
}

func (b *Bot) registerCommands(ctx context.Context) error {
	appID := b.AppID()
	if appID == "" {
		return errNoAppID
	}
	cmds := b.commands()
	defs := make([]*discordgo.ApplicationCommand, len(cmds))
	for i, c := range cmds {
		defs[i] = c.def
	}
	if _, err := b.s.ApplicationCommandBulkOverwrite(appID, b.o.GuildID, defs, discordgo.WithContext(ctx)); err != nil {
		return wrap("registering slash commands", err)
	}
	where := "globally (new commands can take up to an hour to appear)"
	if b.o.GuildID != "" {
		where = "in guild " + b.o.GuildID
	}
	b.log.Info("registered slash commands", "count", len(defs), "where", where)
	return nil
}

var errNoAppID = errors.New("the gateway's READY carried no application id")
