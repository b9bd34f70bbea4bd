package resonite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// MessageType is Message.messageType.
type MessageType string

const (
	MessageText           MessageType = "Text"
	MessageObject         MessageType = "Object"
	MessageSound          MessageType = "Sound"
	MessageSessionInvite  MessageType = "SessionInvite"
	MessageInviteRequest  MessageType = "InviteRequest"
	MessageCreditTransfer MessageType = "CreditTransfer"
	MessageSugarCubes     MessageType = "SugarCubes"
)

// OnlineStatus is UserStatus.onlineStatus; the empty value stands for null (headless hosts).
type OnlineStatus string

const (
	StatusOffline   OnlineStatus = "Offline"
	StatusInvisible OnlineStatus = "Invisible"
	StatusAway      OnlineStatus = "Away"
	StatusBusy      OnlineStatus = "Busy"
	StatusOnline    OnlineStatus = "Online"
	StatusSociable  OnlineStatus = "Sociable"
)

var onlineStatuses = []OnlineStatus{StatusOffline, StatusInvisible, StatusAway, StatusBusy, StatusOnline, StatusSociable}

// UnmarshalJSON accepts the name, null, or the ordinal some clients broadcast (0–5).
func (s *OnlineStatus) UnmarshalJSON(b []byte) error {
	v, err := decodeEnum(b, onlineStatuses)
	*s = v
	return err
}

// Visible reports whether the status shows the user as present to contacts.
func (s OnlineStatus) Visible() bool {
	switch s {
	case StatusAway, StatusBusy, StatusOnline, StatusSociable:
		return true
	}
	return false
}

// OutputDevice is the user's display: a string in UserStatus, an integer in SessionInfo.sessionUsers.
type OutputDevice string

const (
	DeviceUnknown OutputDevice = "Unknown"
	DeviceScreen  OutputDevice = "Screen"
	DeviceVR      OutputDevice = "VR"
	DeviceCamera  OutputDevice = "Camera"
)

var outputDevices = []OutputDevice{DeviceUnknown, DeviceScreen, DeviceVR, DeviceCamera}

// UnmarshalJSON accepts the name, null or the ordinal 0–3.
func (d *OutputDevice) UnmarshalJSON(b []byte) error {
	v, err := decodeEnum(b, outputDevices)
	*d = v
	return err
}

// SessionType is UserStatus.sessionType.
type SessionType string

const (
	SessionTypeUnknown         SessionType = "Unknown"
	SessionTypeGraphicalClient SessionType = "GraphicalClient"
	SessionTypeChatClient      SessionType = "ChatClient"
	SessionTypeHeadless        SessionType = "Headless"
	SessionTypeBot             SessionType = "Bot"
)

var sessionTypes = []SessionType{SessionTypeUnknown, SessionTypeGraphicalClient, SessionTypeChatClient, SessionTypeHeadless, SessionTypeBot}

// UnmarshalJSON accepts the name, null or the ordinal.
func (t *SessionType) UnmarshalJSON(b []byte) error {
	v, err := decodeEnum(b, sessionTypes)
	*t = v
	return err
}

// ContactStatus is Contact.contactStatus (the bridge account's side of the relation).
type ContactStatus string

const (
	ContactNone         ContactStatus = "None"
	ContactSearchResult ContactStatus = "SearchResult"
	ContactRequested    ContactStatus = "Requested"
	ContactIgnored      ContactStatus = "Ignored"
	ContactBlocked      ContactStatus = "Blocked"
	ContactAccepted     ContactStatus = "Accepted"
)

var contactStatuses = []ContactStatus{ContactNone, ContactSearchResult, ContactRequested, ContactIgnored, ContactBlocked, ContactAccepted}

// UnmarshalJSON accepts the name, null or the ordinal.
func (c *ContactStatus) UnmarshalJSON(b []byte) error {
	v, err := decodeEnum(b, contactStatuses)
	*c = v
	return err
}

// AccessLevel is SessionInfo.accessLevel and UserStatus.sessions[].accessLevel.
type AccessLevel string

const (
	AccessPrivate         AccessLevel = "Private"
	AccessLAN             AccessLevel = "LAN"
	AccessContacts        AccessLevel = "Contacts"
	AccessContactsPlus    AccessLevel = "ContactsPlus"
	AccessRegisteredUsers AccessLevel = "RegisteredUsers"
	AccessAnyone          AccessLevel = "Anyone"
)

var accessLevels = []AccessLevel{AccessPrivate, AccessLAN, AccessContacts, AccessContactsPlus, AccessRegisteredUsers, AccessAnyone}

// UnmarshalJSON accepts the name, the ordinal 0–5, null, and the legacy aliases
// "Friends" and "FriendsOfFriends".
func (a *AccessLevel) UnmarshalJSON(b []byte) error {
	s, ok := plainString(b)
	if !ok {
		var str string
		if json.Unmarshal(b, &str) == nil {
			s, ok = []byte(str), true
		}
	}
	if ok {
		switch {
		case bytes.EqualFold(s, []byte("friends")):
			*a = AccessContacts
			return nil
		case bytes.EqualFold(s, []byte("friendsOfFriends")):
			*a = AccessContactsPlus
			return nil
		}
	}
	v, err := decodeEnum(b, accessLevels)
	*a = v
	return err
}

// LoginType is UserSession.originalLoginType.
type LoginType string

const (
	LoginPassword  LoginType = "Password"
	LoginSaml2     LoginType = "Saml2"
	LoginMigration LoginType = "Migration"
	LoginUnknown   LoginType = "UNKNOWN"
)

// decodeEnum decodes a string enum that may also arrive as its ordinal or as null. A name that
// is not known is kept verbatim (the cloud adds values without notice); the canonical spelling
// is used when a known name matches case-insensitively.
func decodeEnum[T ~string](b []byte, known []T) (T, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return "", nil
	}
	if b[0] == '"' {
		if s, ok := plainString(b); ok { // the common case, without a decoder and its allocations
			for _, k := range known {
				if len(k) == len(s) && bytes.EqualFold([]byte(k), s) {
					return k, nil
				}
			}
			return T(s), nil
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return "", fmt.Errorf("resonite: decoding enum: %w", err)
		}
		for _, k := range known {
			if strings.EqualFold(string(k), s) {
				return k, nil
			}
		}
		return T(s), nil
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return "", fmt.Errorf("resonite: enum value %s is neither a name nor an ordinal", excerpt(string(b), 32))
	}
	if n < 0 || n >= len(known) {
		return T(strconv.Itoa(n)), nil
	}
	return known[n], nil
}

// plainString returns the contents of a JSON string literal made of printable ASCII without
// escapes, which is what the cloud's enum names and timestamps are; anything else (escapes,
// other bytes, not a string) reports false and goes to encoding/json.
func plainString(b []byte) ([]byte, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return nil, false
	}
	s := b[1 : len(b)-1]
	for _, c := range s {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return nil, false
		}
	}
	return s, true
}
