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
	// Files are the attachments with their names (Attachments holds only their links).
	Files     []DiscordFile
	Stickers  []string
	ReplyTo   *DiscordReply
	Timestamp time.Time
	// EditedAt is the message's edited_timestamp; zero for a message never edited.
	EditedAt time.Time
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
	// Files are uploaded with the post (a voice message's audio).
	Files []File
	// Buttons are link buttons under the post (a session's go.resonite.com page).
	Buttons []LinkButton
}
