// Package core holds the data types the bridge works on: pairings, subscriptions, outbox rows
// and their stored payloads, chat messages of both sides, contacts, presence and sessions, and
// the delivery outcomes adapters report. It is a leaf: the store, the Discord bot and the
// Resonite adapter all speak these types, so a change of either wire model stops at its
// adapter and never reaches the database format.
package core

import (
	"log/slog"
	"strconv"
	"time"
)

// Direction is the way an outbox row travels.
type Direction string

const (
	ToResonite Direction = "to_resonite"
	ToDiscord  Direction = "to_discord"
)

// State is an outbox row's delivery state.
type State string

const (
	StatePending   State = "pending"   // waiting for NextAttemptAt
	StateInFlight  State = "in_flight" // claimed by a worker, until settled or its lease runs out
	StateDelivered State = "delivered" // done; the row stays as the id map
	StateFailed    State = "failed"    // given up; LastError says why; no longer blocks its pairing
)

// RowSourceID is the idempotency key of a message's row in one pairing: the source side's id
// (a message, or a version of one) and the pairing, since one message becomes a row per
// pairing it reaches (the pairings of a contact, or the contacts of a group channel).
func RowSourceID(source string, pairingID int64) string {
	return source + ":" + strconv.FormatInt(pairingID, 10)
}

// MaxChannelContacts is how many contacts one channel (a group channel) may be paired with.
const MaxChannelContacts = 10

// Pairing links one Discord channel with one Resonite contact of the bridge account. A channel
// with several pairings is a group channel; its pairings share the channel's webhook.
type Pairing struct {
	ID              int64
	GuildID         string
	ChannelID       string
	ContactID       string
	ContactUsername string
	CreatedBy       string
	CreatedAt       time.Time
	WebhookID       string
	WebhookToken    string // secret: never log it
}

// LogValue keeps the webhook token out of logs.
func (p Pairing) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int64("id", p.ID),
		slog.String("guild_id", p.GuildID),
		slog.String("channel_id", p.ChannelID),
		slog.String("contact_id", p.ContactID),
		slog.String("webhook_id", p.WebhookID),
	)
}

// AllContacts as a Subscription.ContactID announces every contact.
const AllContacts = "all"

// Subscription asks for friend-online notifications of ContactID (a Resonite user id, or
// AllContacts) in ChannelID.
type Subscription struct {
	ID        int64
	GuildID   string
	ChannelID string
	ContactID string
	CreatedBy string
	CreatedAt time.Time
}

// OutboxRow is one relayed message: an outbox entry and, once delivered, the map between its
// source id and the id it got on the other side.
type OutboxRow struct {
	ID        int64
	Direction Direction
	// SourceID is the idempotency key: the Discord message id (to_resonite), or
	// "<Resonite message id>:<pairing id>" (to_discord, so one contact may feed several channels).
	SourceID  string
	PairingID int64
	// TargetID is the id on the other side: the derived MSG- id (set at enqueue for to_resonite)
	// or the Discord message id (set on delivery for to_discord).
	TargetID string
	Payload  []byte // a stored payload (see payload.go); nil after pruning
	// SourceTime is the source's own timestamp (Discord message time, Resonite sendTime); the
	// rows of one pairing are delivered in (SourceTime, ID) order.
	SourceTime time.Time
	State      State
	Attempts   int // failed attempts so far (retries)
	// Claims counts the times a worker took the row; above 1 an earlier try may have delivered
	// it without its outcome being stored (a crash or a timeout).
	Claims        int
	NextAttemptAt time.Time
	LastError     string
	EnqueuedAt    time.Time // when the row was stored
	UpdatedAt     time.Time
	DeliveredAt   *time.Time
	// PartsPosted is how many posts of a message that takes several (a long text) were made
	// by earlier tries; with FirstTargetID, the id of the first, so that a retry, even after
	// a crash, goes on where the last try stopped.
	PartsPosted   int
	FirstTargetID string
	// CoalescedInto is, for a delivered row whose text went out inside another row's post,
	// that row's id.
	CoalescedInto int64
}

// OutcomeKind says what became of a claimed row.
type OutcomeKind int

const (
	// Delivered: the other side has it; TargetID is its id there.
	Delivered OutcomeKind = iota + 1
	// Retry: a failure worth another attempt, after the store's backoff; counts an attempt.
	Retry
	// Postpone: not the row's fault (a rate limit, an outage, shutdown): due again at Until,
	// no attempt counted.
	Postpone
	// Fail: given up for good; Reason says why.
	Fail
)

// Settlement is the outcome of one claimed row; a batch's settlements are stored together.
type Settlement struct {
	RowID    int64
	Kind     OutcomeKind
	TargetID string // Delivered
	// CoalescedInto is the row whose post carried this row's text (Delivered; 0: its own).
	CoalescedInto int64
	Reason        string    // Retry, Fail
	Until         time.Time // Postpone
}

// EnqueueResult is what storing one new row of a batch did: the row's id, and whether it is new
// (false: its source id was stored already, or, with ID 0, its pairing is gone).
type EnqueueResult struct {
	ID       int64
	Inserted bool
}
