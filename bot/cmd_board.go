package bot

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/bwmarrin/discordgo"

	"github.com/resonite-bridge/resonite-bridge/bridge"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// The bot posts and edits the bridge's boards and sends its direct messages.
var _ bridge.CommunityDiscord = (*Bot)(nil)

// Community is what /board and /follow ask of the bridge; *bridge.Bridge has it.
type Community interface {
	StartBoard(ctx context.Context, b core.Board) (created bool, err error)
	StopBoard(ctx context.Context, channelID string) (stopped bool, err error)
	ToggleFollow(ctx context.Context, f core.Follow) (on bool, err error)
}

// Discord's JSON error code for a refused direct message.
const codeCannotDM = 50007

const dbDown = "The bridge's database is not answering; try again in a moment."

func (b *Bot) cmdBoard(ctx context.Context, ix *interaction, data discordgo.ApplicationCommandInteractionData) answer {
	if b.o.Community == nil {
		return failure("Boards are not enabled in this bridge.")
	}
	if len(data.Options) == 0 || data.Options[0] == nil {
		return failure("Use /board start or /board stop.")
	}
	switch data.Options[0].Name {
	case "start":
		created, err := b.o.Community.StartBoard(ctx, core.Board{GuildID: ix.GuildID, ChannelID: ix.ChannelID, CreatedBy: invokerID(ix.Interaction)})
		if err != nil {
			b.log.Warn("/board start: storing the board failed", "err", err)
			return failure(dbDown)
		}
		if !created {
			return answer{content: "This channel has a board already. /board stop ends it.", ephemeral: true}
		}
		b.log.Info("started a board", "channel", ix.ChannelID, "guild", ix.GuildID, "by", invokerID(ix.Interaction))
		return answer{content: "📋 Board started: the message below shows who of this server's Resonite contacts is online, updated at most every 15 seconds.", ephemeral: true}
	case "stop":
		stopped, err := b.o.Community.StopBoard(ctx, ix.ChannelID)
		if err != nil {
			b.log.Warn("/board stop: removing the board failed", "err", err)
			return failure(dbDown)
		}
		if !stopped {
			return failure("This channel has no board; /board start makes one.")
		}
		return answer{content: "📋 Board stopped and its message deleted.", ephemeral: true}
	}
	return failure("Unknown subcommand %q.", data.Options[0].Name)
}

// PostBoard posts a board as the bot's own message, pinging nobody.
func (b *Bot) PostBoard(ctx context.Context, channelID, content string) (string, error) {
	m, err := b.s.ChannelMessageSendComplex(channelID, &discordgo.MessageSend{
		Content: bridge.Shorten(content, bridge.DiscordMaxLen), AllowedMentions: noMentions(),
	}, discordgo.WithContext(ctx))
	if err != nil {
		return "", classify(wrap("posting a board into channel "+channelID, err))
	}
	return m.ID, nil
}

// EditBoard replaces a board's content; core.ErrNotFound when the message (or channel) is gone.
func (b *Bot) EditBoard(ctx context.Context, channelID, messageID, content string) error {
	content = bridge.Shorten(content, bridge.DiscordMaxLen)
	_, err := b.s.ChannelMessageEditComplex(&discordgo.MessageEdit{
		ID: messageID, Channel: channelID, Content: &content, AllowedMentions: noMentions(),
	}, discordgo.WithContext(ctx))
	if err == nil {
		return nil
	}
	if code, status := restCode(err); code == codeUnknownMessage || (status == http.StatusNotFound && code != codeUnknownChannel) {
		return wrap("editing the board in channel "+channelID, errors.Join(err, core.ErrNotFound))
	}
	return classify(wrap("editing the board in channel "+channelID, err))
}

// DeleteBoard deletes a board's message; one already gone is no error.
func (b *Bot) DeleteBoard(ctx context.Context, channelID, messageID string) error {
	err := b.s.ChannelMessageDelete(channelID, messageID, discordgo.WithContext(ctx))
	if _, status := restCode(err); err == nil || status == http.StatusNotFound {
		return nil
	}
	return classify(wrap("deleting the board in channel "+channelID, err))
}

// dmChannels remembers the DM channel of each member (Discord returns the same one anyway;
// this saves a request per notice).
type dmChannels struct {
	mu     sync.Mutex
	byUser map[string]string
}

func (d *dmChannels) get(user string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, ok := d.byUser[user]
	return id, ok
}

func (d *dmChannels) set(user, channelID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byUser == nil {
		d.byUser = map[string]string{}
	}
	d.byUser[user] = channelID
}

// DirectMessage sends content to a member; core.ErrDMClosed when Discord refuses (50007: the
// member does not accept direct messages from the bot, or shares no server with it).
func (b *Bot) DirectMessage(ctx context.Context, userID, content string) error {
	chID, ok := b.dms.get(userID)
	if !ok {
		ch, err := b.s.UserChannelCreate(userID, discordgo.WithContext(ctx))
		if err != nil {
			return dmError(userID, "opening a direct message channel", err)
		}
		chID = ch.ID
		b.dms.set(userID, chID)
	}
	_, err := b.s.ChannelMessageSendComplex(chID, &discordgo.MessageSend{
		Content: bridge.Shorten(content, bridge.DiscordMaxLen), AllowedMentions: noMentions(),
	}, discordgo.WithContext(ctx))
	if err != nil {
		return dmError(userID, "sending a direct message", err)
	}
	return nil
}

func dmError(userID, doing string, err error) error {
	if code, _ := restCode(err); code == codeCannotDM {
		return wrap(doing+" to member "+userID, errors.Join(err, core.ErrDMClosed))
	}
	return classify(wrap(doing+" to member "+userID, err))
}

// Mention posts content into a channel with allowed_mentions limited to userID, so that the
// member (and nobody else, whatever the content holds) is pinged.
func (b *Bot) Mention(ctx context.Context, channelID, userID, content string) error {
	_, err := b.s.ChannelMessageSendComplex(channelID, &discordgo.MessageSend{
		Content:         bridge.Shorten(content, bridge.DiscordMaxLen),
		AllowedMentions: &discordgo.MessageAllowedMentions{Parse: []discordgo.AllowedMentionType{}, Users: []string{userID}},
	}, discordgo.WithContext(ctx))
	if err != nil {
		return classify(wrap("mentioning a member in channel "+channelID, err))
	}
	return nil
}
