package bot

import (
	"context"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge"
	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// Resonite is what the commands read from the Resonite REST API, in core types;
// *resoniteadapter.Adapter has it. A missing user is an error matching core.ErrNotFound.
type Resonite interface {
	Sessions(ctx context.Context, q core.SessionQuery) ([]core.Session, error)
	User(ctx context.Context, id string) (core.User, error)
	UserByName(ctx context.Context, name string) (core.User, error)
	SearchUsers(ctx context.Context, name string) ([]core.User, error)
	Contacts(ctx context.Context) ([]core.Contact, error)
}

// Store keeps the pairings and friend-online subscriptions the admin commands manage. A
// channel holds up to core.MaxChannelContacts pairings, one per contact (a group channel).
// Lookups of missing rows return core.ErrNotFound (wrapped or not); CreatePairing returns
// core.ErrConflict for a contact the channel is paired with already and core.ErrFull for a
// full channel; DeletePairings removes one contact's pairing, or all with contactID "".
type Store interface {
	CreatePairing(ctx context.Context, p core.Pairing) (core.Pairing, error)
	DeletePairings(ctx context.Context, channelID, contactID string) ([]core.Pairing, error)
	PairingsByChannel(ctx context.Context, channelID string) ([]core.Pairing, error)
	PairingsByGuild(ctx context.Context, guildID string) ([]core.Pairing, error)
	SetPairingWebhook(ctx context.Context, channelID, webhookID, webhookToken string) error
	AddSubscription(ctx context.Context, s core.Subscription) (created bool, err error)
	RemoveSubscription(ctx context.Context, channelID, contactID string) (removed bool, err error)
	SubscriptionsByChannel(ctx context.Context, channelID string) ([]core.Subscription, error)
}

// Presence answers the online status of a contact and the session it is in when that is known;
// *bridge.Bridge has it.
type Presence interface {
	ContactPresence(userID string) (status core.OnlineStatus, session *core.Session, known bool)
}

// Consent is what the commands ask of the bridge's consent (a contact's words and presence go
// only to the servers it agreed to); *bridge.Bridge has it. AskConsent stores a waiting /link
// or /notify add and sends the contact its code.
type Consent interface {
	ConsentedContacts(ctx context.Context, guildID string) ([]string, error)
	ConsentRequests(ctx context.Context, guildID string) ([]core.ConsentRequest, error)
	AskConsent(ctx context.Context, r core.ConsentRequest) (core.ConsentRequest, error)
	CancelConsentRequests(ctx context.Context, channelID, contactID string) (int, error)
}

// BridgeStatus is what /status shows besides the bot's own gateway state. Pairings, the queue
// and the last error are those of one guild (see StatusSource).
type BridgeStatus struct {
	HubState        string // e.g. "connected", "connecting"
	HubConnected    bool
	HubSince        time.Time
	AccountUserID   string
	AccountUsername string
	AutoAccept      bool // incoming contact requests are accepted automatically
	Pairings        int
	QueueDepth      int // messages stored and not yet delivered, both ways
	QueueToDiscord  int // of QueueDepth, those going to Discord
	QueueToResonite int // of QueueDepth, those going to Resonite
	CatchUp         bridge.CatchUpProgress
	FailedMessages  int
	LastError       string
	LastErrorAt     time.Time
}

// StatusSource reports the rest of the daemon's health for /status: the hub and the account
// as they are, the pairings, queue and last error of guildID only (zero for an empty one), so
// that no server sees another's channels, contacts or errors.
type StatusSource interface {
	Status(ctx context.Context, guildID string) BridgeStatus
}

// Handlers are the bridge's callbacks. They run one after another on one goroutine, in gateway
// order; a slow handler delays the next event, never the gateway.
type Handlers struct {
	OnMessage        func(ctx context.Context, m core.DiscordMessage)
	OnGuildAvailable func(ctx context.Context, guildID string)
	// OnReconnect runs after the gateway came back (resumed or identified again).
	OnReconnect func(ctx context.Context)
	// OnMessageEdit gets a MESSAGE_UPDATE that carries an edited_timestamp; OnMessageDelete a
	// MESSAGE_DELETE (a relayed message's, or a board's, which is posted again).
	OnMessageEdit   func(ctx context.Context, m core.DiscordMessage)
	OnMessageDelete func(ctx context.Context, channelID, messageID string)
}
