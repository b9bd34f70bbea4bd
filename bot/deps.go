package bot

import (
	"context"
	"errors"
	"time"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// SessionQuery are the filters of GET /sessions the bot uses.
// TODO(lead): replace with resonite.SessionQuery once the client defines it.
type SessionQuery struct {
	CompatibilityHash    string
	Name                 string
	UniverseID           string
	HostName             string
	HostID               string
	MinActiveUsers       *int
	IncludeEmptyHeadless *bool
}

// Resonite is what the bot needs of the Resonite REST client.
type Resonite interface {
	Sessions(ctx context.Context, q SessionQuery) ([]resonite.SessionInfo, error)
	User(ctx context.Context, id string) (resonite.User, error)
	UserByName(ctx context.Context, name string) (resonite.User, error)
	SearchUsers(ctx context.Context, name string) ([]resonite.User, error)
	Contacts(ctx context.Context) ([]resonite.Contact, error)
}

// Store errors the Store implementation must wrap (the adapter maps store.ErrNotFound and
// store.ErrConflict to these).
var (
	ErrNotFound = errors.New("bot: not found")
	ErrConflict = errors.New("bot: conflict")
)

// Pairing links a Discord channel with a Resonite contact of the bridge account.
type Pairing struct {
	ID              int64
	GuildID         string
	ChannelID       string
	ContactID       string
	ContactUsername string
	CreatedBy       string
	CreatedAt       time.Time
	WebhookID       string
	WebhookToken    string
}

// Subscription asks for friend-online notifications in a channel; ContactID may be "all".
type Subscription struct {
	ID        int64
	GuildID   string
	ChannelID string
	ContactID string
	CreatedBy string
	CreatedAt time.Time
}

// AllContacts is the ContactID of a subscription to every contact.
const AllContacts = "all"

// Store keeps pairings and subscriptions.
type Store interface {
	CreatePairing(ctx context.Context, p Pairing) (Pairing, error) // ErrConflict when paired already
	DeletePairing(ctx context.Context, channelID string) (Pairing, error)
	PairingByChannel(ctx context.Context, channelID string) (Pairing, error)
	PairingsByGuild(ctx context.Context, guildID string) ([]Pairing, error)
	SetPairingWebhook(ctx context.Context, channelID, webhookID, webhookToken string) error
	AddSubscription(ctx context.Context, s Subscription) (bool, error)
	RemoveSubscription(ctx context.Context, channelID, contactID string) (bool, error)
	SubscriptionsByChannel(ctx context.Context, channelID string) ([]Subscription, error)
}

// Presence answers the online status and current session of a contact (from the hub).
type Presence interface {
	ContactPresence(userID string) (status resonite.OnlineStatus, session *resonite.SessionInfo, ok bool)
}

// BridgeStatus is what /status shows besides the bot's own state.
type BridgeStatus struct {
	HubState        string // e.g. "connected", "reconnecting"
	HubConnected    bool
	AccountUserID   string
	AccountUsername string
	Pairings        int
	QueueDepth      int
	LastError       string
	LastErrorAt     time.Time
}

// StatusSource reports the bridge's health for /status.
type StatusSource interface {
	Status(ctx context.Context) BridgeStatus
}

// Handlers are the bridge's callbacks. They run in gateway order on one goroutine.
type Handlers struct {
	OnMessage        func(ctx context.Context, m Message)
	OnGuildAvailable func(ctx context.Context, guildID string)
	// OnReconnect runs after the gateway came back (resumed or re-identified).
	OnReconnect func(ctx context.Context)
	// OnPairingChanged runs after /link or /unlink changed the channel's pairing.
	OnPairingChanged func(ctx context.Context, channelID string)
}

// Deps are the collaborators of the bot. Presence and Status may be nil.
type Deps struct {
	Resonite Resonite
	Store    Store
	Presence Presence
	Status   StatusSource
	Handlers Handlers
}
