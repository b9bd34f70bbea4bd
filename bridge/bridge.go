// Package bridge is the core of resonite-bridge: it relays chat between paired Discord channels
// and Resonite contacts through a durable outbox, catches up after downtime, keeps a presence
// model of contacts and announces friends coming online. It knows neither wire protocol: the
// daemon adapts the store, the Discord bot and the Resonite client to the small interfaces below.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// ErrNotFound is what Store lookups return (wrapped or not) when the row does not exist; the
// adapter maps the store's own not-found error to it.
var ErrNotFound = errors.New("bridge: not found")

// Direction is the way an outbox row travels.
type Direction string

const (
	ToResonite Direction = "to_resonite"
	ToDiscord  Direction = "to_discord"
)

// State is an outbox row's delivery state.
type State string

const (
	StatePending   State = "pending"
	StateInFlight  State = "in_flight"
	StateDelivered State = "delivered"
	StateFailed    State = "failed"
)

// Pairing links one Discord channel with one Resonite contact of the bridge account.
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

// Subscription asks for friend-online notifications of ContactID ("U-…" or "all") in ChannelID.
type Subscription struct {
	ID        int64
	GuildID   string
	ChannelID string
	ContactID string
	CreatedBy string
	CreatedAt time.Time
}

// Message is one outbox row.
type Message struct {
	ID        int64
	Direction Direction
	// SourceID is the idempotency key: the Discord message id (to_resonite), or
	// "<Resonite message id>:<pairing id>" (to_discord, so one contact may feed several channels).
	SourceID  string
	PairingID int64
	// TargetID is the id on the other side: the derived MSG- id (set at enqueue for to_resonite)
	// or the Discord message id (set on delivery for to_discord).
	TargetID string
	Payload  []byte
	State    State
	Attempts int // failed attempts so far (Retry calls)
	// Claims counts the times a worker took the row (set by the store); above 1 an earlier try
	// may have delivered it without its outcome being stored (a crash or a timeout).
	Claims        int
	NextAttemptAt time.Time
	LastError     string
	// CreatedAt is the source's own timestamp; rows of one pairing are delivered in
	// (CreatedAt, ID) order.
	CreatedAt time.Time
	// EnqueuedAt is when the row was stored (set by the store).
	EnqueuedAt  time.Time
	UpdatedAt   time.Time
	DeliveredAt *time.Time
}

// Store is the durable outbox and the pairing tables.
//
// Semantics the bridge relies on: Enqueue is idempotent on (Direction, SourceID) and returns
// inserted=false for a duplicate. Claim returns, per pairing, only the oldest undelivered row
// (by CreatedAt, then ID; pending or in flight, failed rows do not block), and only when it is
// pending and due and no other row of its pairing is in flight (a row with an older CreatedAt can
// arrive while a newer one is in flight), so a pairing never has two rows in flight and a row
// that waits for a retry holds back the rows behind it. Attempts counts Retry calls only: Claim
// and Postpone leave it alone. MarkDelivered also accepts a pending row (coalesced posts and
// late MessageSent echoes deliver rows that were not claimed).
type Store interface {
	Pairings(ctx context.Context) ([]Pairing, error)
	PairingByChannel(ctx context.Context, channelID string) (Pairing, error)
	PairingsByContact(ctx context.Context, contactID string) ([]Pairing, error)
	PairingByID(ctx context.Context, id int64) (Pairing, error)
	SubscriptionsForContact(ctx context.Context, contactID string) ([]Subscription, error)

	Enqueue(ctx context.Context, m Message) (id int64, inserted bool, err error)
	Claim(ctx context.Context, dir Direction, limit int, lease time.Duration) ([]Message, error)
	MarkDelivered(ctx context.Context, id int64, targetID string) error
	Retry(ctx context.Context, id int64, reason string) (next time.Time, err error)
	Postpone(ctx context.Context, id int64, until time.Time) error
	Fail(ctx context.Context, id int64, reason string) error
	RescueExpired(ctx context.Context) (int, error)
	NextDue(ctx context.Context, dir Direction) (time.Time, bool, error)
	MessageBySource(ctx context.Context, dir Direction, sourceID string) (Message, error)
	MessageByTarget(ctx context.Context, dir Direction, targetID string) (Message, error)

	DiscordCursor(ctx context.Context, pairingID int64) (string, error)
	AdvanceDiscordCursor(ctx context.Context, pairingID int64, messageID string) error
	ResoniteCursor(ctx context.Context, accountID string) (time.Time, error)
	AdvanceResoniteCursor(ctx context.Context, accountID string, t time.Time) error
}

// ResoniteSender is the part of the hub client the bridge calls. SendMessage returns nil once
// the hub echoed the message back (MessageSent).
type ResoniteSender interface {
	SendMessage(ctx context.Context, m resonite.Message) error
	MarkMessagesRead(ctx context.Context, b resonite.MarkReadBatch) error
	UpdateContact(ctx context.Context, c resonite.Contact) (bool, error)
}

// MessageQuery mirrors the REST client's message history query.
type MessageQuery struct {
	MaxItems int // 0 means 100 (the cloud's cap), -1 means all; the catch-up uses both
	FromTime time.Time
	User     string
	Unread   bool
}

// ResoniteHistory is the part of the REST client the bridge calls. Messages returns, like the
// cloud, the newest MaxItems messages at or after FromTime, newest first.
type ResoniteHistory interface {
	Messages(ctx context.Context, q MessageQuery) ([]resonite.Message, error)
	UserID() string
}

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

// Post is a webhook post into a channel.
type Post struct {
	Username  string
	AvatarURL string
	Content   string
	Embeds    []Embed
}

// Discord is the part of the bot the bridge calls. Post returns the new message id. History
// returns up to limit messages after afterID, oldest first.
type Discord interface {
	Post(ctx context.Context, channelID string, p Post) (messageID string, err error)
	Reply(ctx context.Context, channelID, messageID, content string) error
	History(ctx context.Context, channelID, afterID string, limit int) ([]DiscordMessage, error)
}

// Options configures a Bridge. Store, Resonite, History and Discord are required.
type Options struct {
	Store    Store
	Resonite ResoniteSender
	History  ResoniteHistory
	Discord  Discord
	Logger   *slog.Logger
	// Now is the clock of the presence model and the notification cooldown.
	Now func() time.Time
	// IsPermanent reports errors that retrying cannot fix (contact removed, content refused).
	IsPermanent func(error) bool
	// RetryAfter reports a rate limit and how long to wait.
	RetryAfter func(error) (time.Duration, bool)
	// AutoAcceptContacts accepts incoming contact requests.
	AutoAcceptContacts bool

	PollInterval time.Duration // longest sleep of a worker; default 1 s
	// MaxAttempts is how many failed attempts (not rate limits or outages, which the RetryAfter
	// hook turns into postponements) a message gets before it is given up and the sender told;
	// default 10, which with the store's backoff is about 17 minutes.
	MaxAttempts    int
	Lease          time.Duration // claim lease; default 2 min
	Concurrency    int           // deliveries in flight per direction (distinct pairings); default 8
	DrainTimeout   time.Duration // how long Run waits for in-flight deliveries at shutdown; default 10 s
	RescueInterval time.Duration // period of RescueExpired; default 30 s
	// ReorderWindow delays each new row so that a message that arrives slightly late (hub and
	// gateway handlers run concurrently) still goes out in source-timestamp order; default 0.
	ReorderWindow time.Duration
	CatchUpRetry  time.Duration // first delay before a failed catch-up is retried; default 5 s
	// CatchUpPageSize is the number of Discord history and Resonite messages per request;
	// default and maximum 100, the cap of both APIs (a larger page would come back short and
	// look like the end of the history).
	CatchUpPageSize int
	// ResonitePoll is how often the Resonite mailbox is read even without a reconnect: it
	// catches what a live hub connection may have missed and keeps the catch-up cursor
	// recent; default 5 min (ReCon polls every 2 min).
	ResonitePoll  time.Duration
	MarkReadDelay time.Duration // batching window of MarkMessagesRead; default 1 s

	PresenceExpiry time.Duration // a device without update for this long is gone; default 10 min
	NotifyCooldown time.Duration // same contact, same channel; default 10 min
	// PresenceWarmup suppresses announcements right after the hub connects, when every online
	// contact re-sends its status; default 30 s.
	PresenceWarmup time.Duration
}

// maxPageSize is the most messages Discord's channel history and Resonite's message history
// return per request.
const maxPageSize = 100

func (o *Options) defaults() error {
	var missing []error
	if o.Store == nil {
		missing = append(missing, errors.New("Store"))
	}
	if o.Resonite == nil {
		missing = append(missing, errors.New("Resonite"))
	}
	if o.History == nil {
		missing = append(missing, errors.New("History"))
	}
	if o.Discord == nil {
		missing = append(missing, errors.New("Discord"))
	}
	if len(missing) > 0 {
		return fmt.Errorf("bridge: options missing: %w", errors.Join(missing...))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.IsPermanent == nil {
		o.IsPermanent = func(error) bool { return false }
	}
	if o.RetryAfter == nil {
		o.RetryAfter = func(error) (time.Duration, bool) { return 0, false }
	}
	setDur := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	setDur(&o.PollInterval, time.Second)
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	setDur(&o.Lease, 2*time.Minute)
	setDur(&o.DrainTimeout, 10*time.Second)
	setDur(&o.RescueInterval, 30*time.Second)
	setDur(&o.CatchUpRetry, 5*time.Second)
	setDur(&o.ResonitePoll, 5*time.Minute)
	setDur(&o.MarkReadDelay, time.Second)
	setDur(&o.PresenceExpiry, 10*time.Minute)
	setDur(&o.NotifyCooldown, 10*time.Minute)
	setDur(&o.PresenceWarmup, 30*time.Second)
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.CatchUpPageSize <= 0 || o.CatchUpPageSize > maxPageSize {
		o.CatchUpPageSize = maxPageSize
	}
	return nil
}

// Bridge relays messages and presence. Create it with New, feed it events through the Handle
// and On methods, and run its workers with Run.
type Bridge struct {
	o   Options
	log *slog.Logger

	wake map[Direction]chan struct{}

	running sync.Mutex // held by Run: one Run at a time

	stats    statsCollector
	presence *presence
	catchUp  *catchUpState
	tasks    *taskQueue
	reads    *readBatcher

	mu sync.Mutex
	// queued remembers the to_discord rows enqueued by this process, per pairing, in enqueue
	// order, for coalescing under a rate limit.
	queued map[int64][]queuedRow
	// limited marks pairings whose webhook was rate limited and not posted since.
	limited map[int64]bool
	// partial keeps the progress of to_discord rows posted in several parts.
	partial map[int64]partialPost
}

// New checks the options and returns a Bridge; nothing runs until Run.
func New(o Options) (*Bridge, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	b := &Bridge{
		o:       o,
		log:     o.Logger,
		wake:    map[Direction]chan struct{}{ToResonite: make(chan struct{}, 1), ToDiscord: make(chan struct{}, 1)},
		catchUp: newCatchUpState(),
		tasks:   newTaskQueue(),
		reads:   newReadBatcher(),
		queued:  map[int64][]queuedRow{},
		limited: map[int64]bool{},
		partial: map[int64]partialPost{},
	}
	b.presence = newPresence(o.Now, o.PresenceExpiry, o.NotifyCooldown, o.PresenceWarmup)
	return b, nil
}

// signal wakes a direction's worker without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Run owns every worker goroutine: one outbox worker per direction, catch-up, rescue of expired
// leases, MarkMessagesRead batching and notifications. It schedules a catch-up of both sides,
// returns when ctx ends after in-flight deliveries finished (bounded by DrainTimeout), and
// leaves no goroutine behind.
func (b *Bridge) Run(ctx context.Context) error {
	if !b.running.TryLock() {
		return errors.New("bridge: Run called twice")
	}
	defer b.running.Unlock()

	b.catchUp.requestResonite()
	b.catchUp.requestAllDiscord()

	// The read receipts of the deliveries drained at shutdown are flushed after them, so the
	// batcher stops only once both workers have.
	readsCtx, stopReads := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReads()
	var workers, others sync.WaitGroup
	start := func(wg *sync.WaitGroup, ctx context.Context, f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	start(&workers, ctx, func(ctx context.Context) { b.runWorker(ctx, ToResonite) })
	start(&workers, ctx, func(ctx context.Context) { b.runWorker(ctx, ToDiscord) })
	start(&others, ctx, b.runRescue)
	start(&others, ctx, b.runCatchUp)
	start(&others, ctx, b.runResonitePoll)
	start(&others, ctx, b.runTasks)
	start(&others, readsCtx, b.runReads)
	workers.Wait()
	stopReads()
	others.Wait()
	return nil
}

// runResonitePoll asks for a Resonite catch-up every ResonitePoll.
func (b *Bridge) runResonitePoll(ctx context.Context) {
	t := time.NewTicker(b.o.ResonitePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.catchUp.requestResonite()
		}
	}
}

// runRescue returns expired leases to pending at start and periodically.
func (b *Bridge) runRescue(ctx context.Context) {
	t := time.NewTicker(b.o.RescueInterval)
	defer t.Stop()
	for {
		n, err := b.o.Store.RescueExpired(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			b.noteError("rescuing expired leases", err)
		case n > 0:
			b.log.Info("rescued expired deliveries", "count", n)
			signal(b.wake[ToResonite])
			signal(b.wake[ToDiscord])
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ContactPresence reports the dominant online status of a contact, the session it is in when
// that can be resolved, and whether anything is known about the contact.
func (b *Bridge) ContactPresence(userID string) (resonite.OnlineStatus, *resonite.SessionInfo, bool) {
	return b.presence.contactPresence(userID)
}
