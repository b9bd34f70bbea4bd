package core

import "time"

// OnlineStatus is a Resonite user's status; the empty value stands for unknown (headless hosts
// send none).
type OnlineStatus string

const (
	StatusOffline   OnlineStatus = "Offline"
	StatusInvisible OnlineStatus = "Invisible"
	StatusAway      OnlineStatus = "Away"
	StatusBusy      OnlineStatus = "Busy"
	StatusOnline    OnlineStatus = "Online"
	StatusSociable  OnlineStatus = "Sociable"
)

// Visible reports whether the status shows the user as present to others: Invisible is offline
// to everyone else.
func (s OnlineStatus) Visible() bool {
	switch s {
	case StatusAway, StatusBusy, StatusOnline, StatusSociable:
		return true
	}
	return false
}

// Rank orders statuses for the dominant one of several devices: Sociable > Online > Busy >
// Away > Invisible > Offline and unknown.
func (s OnlineStatus) Rank() int {
	switch s {
	case StatusSociable:
		return 5
	case StatusOnline:
		return 4
	case StatusBusy:
		return 3
	case StatusAway:
		return 2
	case StatusInvisible:
		return 1
	}
	return 0
}

// DeviceKind is what a user is on.
type DeviceKind string

const (
	DeviceUnknown  DeviceKind = ""
	DeviceVR       DeviceKind = "VR"
	DeviceDesktop  DeviceKind = "desktop"
	DeviceMobile   DeviceKind = "mobile"
	DeviceHeadless DeviceKind = "headless"
)

// Device is the status of one login of a user (a user may be on several at once).
type Device struct {
	UserID   string
	DeviceID string // one login of the user (Resonite's userSessionId)
	Status   OnlineStatus
	Kind     DeviceKind
	// StatusChanged is when the status last changed, by the sender's clock; zero when unknown.
	StatusChanged time.Time
	// SessionHint is opaque to the core: what the Resonite adapter needs to tell which session
	// the device is in (see Bridge's Sessions option); empty when it is in none.
	SessionHint string
}

// Session is a Resonite session as the bridge shows it. Name and HostUsername carry no rich
// text; ThumbnailURL and URL are https links.
type Session struct {
	ID           string
	Name         string
	HostUsername string
	ActiveUsers  int
	JoinedUsers  int
	MaxUsers     int
	AccessLevel  string
	Headless     bool
	Hidden       bool // not listed publicly
	Ended        bool
	ThumbnailURL string
	URL          string // the shareable go.resonite.com page
}

// ContactState is the bridge account's relation to a user.
type ContactState string

const (
	ContactNone      ContactState = ""          // no relation, ignored or blocked
	ContactFriend    ContactState = "friend"    // accepted both ways
	ContactRequested ContactState = "requested" // the user asked the bridge; not accepted yet
	ContactPending   ContactState = "pending"   // the bridge accepted; the user has not yet
)

// Contact is a user in the bridge account's contact list.
type Contact struct {
	ID       string
	Username string
	// AlternateUsernames are names the user went by before; /link and /whois accept them.
	AlternateUsernames []string
	State              ContactState
	AvatarURL          string  // https; empty when none
	Device             *Device // the status sent with the contact list, when there is one
}

// User is a Resonite user's public profile.
type User struct {
	ID           string
	Username     string
	IconURL      string // https; empty when none
	Tagline      string // without rich text
	RegisteredAt time.Time
}

// MessageKind is the type of a Resonite message.
type MessageKind string

const (
	KindText           MessageKind = "Text"
	KindObject         MessageKind = "Object"
	KindSound          MessageKind = "Sound"
	KindSessionInvite  MessageKind = "SessionInvite"
	KindInviteRequest  MessageKind = "InviteRequest"
	KindCreditTransfer MessageKind = "CreditTransfer"
	KindSugarCubes     MessageKind = "SugarCubes"
)

// ContactMessage is a message a contact sent the bridge account, decoded by the Resonite
// adapter into what Discord can show. It is the stored payload of a to_discord row, so its
// JSON names are a database format: add fields, never rename them.
type ContactMessage struct {
	ID       string      `json:"id"`
	SenderID string      `json:"senderId"`
	Kind     MessageKind `json:"messageType"`
	// Text is the words of a Text message, with Resonite's rich text as written.
	Text   string    `json:"content"`
	SentAt time.Time `json:"sentAt,omitzero"`

	// Unreadable is set when the content of a non-text message could not be decoded.
	Unreadable bool `json:"unreadable,omitempty"`
	// Sound is a voice message's https audio link.
	SoundURL string `json:"soundUrl,omitempty"`
	// SoundAsset is a voice message's asset as Resonite names it (resdb:///<hash>.<ext>): what
	// is downloaded to upload the audio itself.
	SoundAsset string `json:"soundAsset,omitempty"`
	// Item is an Object message's item.
	Item *Item `json:"item,omitempty"`
	// Invite is a SessionInvite message's session.
	Invite *Session `json:"invite,omitempty"`
	// InviteRequest is an InviteRequest message's request.
	InviteRequest *InviteRequest `json:"inviteRequest,omitempty"`
	// Transfer is a CreditTransfer or SugarCubes message's amount and comment.
	Transfer *Transfer `json:"transfer,omitempty"`
}

// Item is an inventory item sent in a message.
type Item struct {
	Name         string `json:"name"` // without rich text
	ThumbnailURL string `json:"thumbnailUrl,omitempty"`
}

// InviteRequest asks the bridge account's contact for an invite.
type InviteRequest struct {
	From        string `json:"from"`
	ForUser     string `json:"forUser,omitempty"`
	SessionName string `json:"sessionName,omitempty"` // without rich text
	// SessionURL is the go.resonite.com page of the session asked for, when it is named.
	SessionURL string `json:"sessionUrl,omitempty"`
}

// Transfer is an amount of credits or sugar cubes; its schema is not published, so what could
// be read is kept as text.
type Transfer struct {
	Amount  string `json:"amount,omitempty"` // e.g. "5 KFC"
	Comment string `json:"comment,omitempty"`
}

// SessionQuery filters the public session list; nil fields are the cloud's defaults.
type SessionQuery struct {
	Name                 string
	Host                 string
	MinActiveUsers       *int
	IncludeEmptyHeadless *bool
}
