package core

import "time"

// ConsentKind is what a consent request waits to create.
type ConsentKind string

const (
	ConsentPairing      ConsentKind = "pairing"      // a /link
	ConsentSubscription ConsentKind = "subscription" // a /notify add
)

// ConsentRequest is a /link or /notify add for a contact that has not consented in the guild:
// it waits for the contact's "link NNNNNN". The code itself is never kept, only its hash.
type ConsentRequest struct {
	ID              int64
	Kind            ConsentKind
	GuildID         string
	GuildName       string
	ChannelID       string
	ChannelName     string
	ContactID       string
	ContactUsername string
	CreatedBy       string
	CreatedAt       time.Time
	ExpiresAt       time.Time
}

// CodeOutcome is what a contact's "link NNNNNN" did.
type CodeOutcome int

const (
	CodeAccepted  CodeOutcome = iota + 1 // consent recorded; the waiting requests became active
	CodeWrong                            // no request of the contact has that code
	CodeExpired                          // the code's 15 minutes are over
	CodeUsed                             // the code was used already
	CodeThrottled                        // too many wrong codes lately: not even checked
)

// Activation is a waiting request made active by a contact's consent. Created is false when
// the pairing could not be made (the channel holds MaxChannelContacts already) or the
// subscription existed already.
type Activation struct {
	Request ConsentRequest
	Created bool
}

// CodeResult is the outcome of a code and, when accepted, what became active.
type CodeResult struct {
	Outcome   CodeOutcome
	GuildID   string // CodeAccepted, CodeUsed: the guild of the code's request
	GuildName string
	Activated []Activation
	// RetryAt is when a throttled contact may try again (CodeThrottled, CodeWrong at the limit).
	RetryAt time.Time
}

// GuildConsent is a guild a contact consented in, with what the contact is part of there.
type GuildConsent struct {
	GuildID       string
	GuildName     string
	Pairings      []string // channel ids
	Subscriptions []string // channel ids announcing the contact (its own subscriptions)
}

// Withdrawal is what a contact's !unlink removed.
type Withdrawal struct {
	Guilds        []GuildConsent
	Pairings      []Pairing
	Subscriptions []Subscription
	Requests      int // waiting requests cancelled
}
