package bot

import (
	"context"
	"errors"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge"
	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// Resonite is what the commands read from the Resonite REST API; *resonite.Client has it all.
type Resonite interface {
	Sessions(ctx context.Context, q resonite.SessionQuery) ([]resonite.SessionInfo, error)
	User(ctx context.Context, id string) (resonite.User, error)
	UserByName(ctx context.Context, name string) (resonite.User, error)
	SearchUsers(ctx context.Context, name string) ([]resonite.User, error)
	Contacts(ctx context.Context) ([]resonite.Contact, error)
}

// ErrAlreadyPaired is what Store.CreatePairing returns (wrapped or not) for a channel that has a
// pairing already. Lookups of missing rows return bridge.ErrNotFound.
var ErrAlreadyPaired = errors.New("bot: the channel is paired already")

// Store keeps the pairings and friend-online subscriptions the admin commands manage.
type Store interface {
	CreatePairing(ctx context.Context, p bridge.Pairing) (bridge.Pairing, error)
	DeletePairing(ctx context.Context, channelID string) (bridge.Pairing, error)
	PairingByChannel(ctx context.Context, channelID string) (bridge.Pairing, error)
	PairingsByGuild(ctx context.Context, guildID string) ([]bridge.Pairing, error)
	SetPairingWebhook(ctx context.Context, channelID, webhookID, webhookToken string) error
	AddSubscription(ctx context.Context, s bridge.Subscription) (created bool, err error)
	RemoveSubscription(ctx context.Context, channelID, contactID string) (removed bool, err error)
	SubscriptionsByChannel(ctx context.Context, channelID string) ([]bridge.Subscription, error)
}

// Presence answers the online status of a contact and the session it is in when that is known;
// *bridge.Bridge has it.
type Presence interface {
	ContactPresence(userID string) (status resonite.OnlineStatus, session *resonite.SessionInfo, known bool)
}

// BridgeStatus is what /status shows besides the bot's own gateway state.
type BridgeStatus struct {
	HubState        string // e.g. "connected", "connecting"
	HubConnected    bool
	HubSince        time.Time
	AccountUserID   string
	AccountUsername string
	AutoAccept      bool // incoming contact requests are accepted automatically
	Pairings        int
	QueueDepth      int // messages stored and not yet delivered, both ways
	FailedMessages  int
	LastError       string
	LastErrorAt     time.Time
}

// StatusSource reports the rest of the daemon's health for /status.
type StatusSource interface {
	Status(ctx context.Context) BridgeStatus
}

// Handlers are the bridge's callbacks. They run one after another on one goroutine, in gateway
// order; a slow handler delays the next event, never the gateway.
type Handlers struct {
	OnMessage        func(ctx context.Context, m bridge.DiscordMessage)
	OnGuildAvailable func(ctx context.Context, guildID string)
	// OnReconnect runs after the gateway came back (resumed or identified again).
	OnReconnect func(ctx context.Context)
}
