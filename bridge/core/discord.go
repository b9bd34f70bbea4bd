package core

import "time"

// DiscordReply is what a Discord message answers.
type DiscordReply struct {
	AuthorName string
	Content    string
}

// DiscordMessage is a Discord message as the bot hands it over: mentions and custom emoji are
// already rendered as readable names.
type DiscordMessage struct {
	ID              string
	ChannelID       string
	GuildID         string
	AuthorID        string
	AuthorName      string
	AuthorAvatarURL string
	WebhookID       string
	FromSelf        bool
	Content         string
	Attachments     []string
	Stickers        []string
	ReplyTo         *DiscordReply
	Timestamp       time.Time
}

// EmbedField is one name/value line of an embed.
type EmbedField struct {
	Name   string
	Value  string
	Inline bool
}

// Embed is a Discord embed.
type Embed struct {
	Title        string
	Description  string
	URL          string
	ThumbnailURL string
	ImageURL     string
	Fields       []EmbedField
}

// Post is a message into a channel, through its webhook under Username and AvatarURL.
type Post struct {
	Username  string
	AvatarURL string
	Content   string
	Embeds    []Embed
}
