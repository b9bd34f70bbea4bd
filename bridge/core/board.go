package core

import (
	"errors"
	"time"
)

// Board is a channel's live online board: one message the bridge keeps edited.
type Board struct {
	ChannelID string
	GuildID   string
	// MessageID is the board's message; empty until it is first posted (or after Discord lost
	// it), so that a restart keeps editing the same message.
	MessageID string
	CreatedBy string
	CreatedAt time.Time
}

// Follow asks for a direct message to a Discord member (UserID) when ContactID (a Resonite
// user id, or AllContacts among the contacts that consented in GuildID) comes online.
// ChannelID is where the member subscribed: where they are told when their DMs are closed.
type Follow struct {
	ID        int64
	GuildID   string
	ChannelID string
	UserID    string
	ContactID string
	// Failures counts direct messages refused in a row; ToldClosed is set once the member
	// was told in ChannelID.
	Failures   int
	ToldClosed bool
	CreatedAt  time.Time
}

// ErrDMClosed is returned (wrapped) when Discord refuses a direct message because the member
// does not accept them from the bot (Discord's error 50007).
var ErrDMClosed = errors.New("the member does not accept direct messages")
