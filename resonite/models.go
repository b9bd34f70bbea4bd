package resonite

import (
	"encoding/json"
	"fmt"
)

// UserSession is the login reply's entity: who is logged in and the token to present.
type UserSession struct {
	UserID              string    `json:"userId"`
	Token               string    `json:"token"`
	Created             Time      `json:"created"`
	Expire              Time      `json:"expire"`
	RememberMe          bool      `json:"rememberMe"`
	SecretMachineIDHash string    `json:"secretMachineIdHash,omitempty"`
	SecretMachineIDSalt string    `json:"secretMachineIdSalt,omitempty"`
	UIDHash             string    `json:"uidHash,omitempty"`
	UIDSalt             string    `json:"uidSalt,omitempty"`
	OriginalLoginType   LoginType `json:"originalLoginType,omitempty"`
	OriginalLoginID     string    `json:"originalLoginId,omitempty"`
	LogoutURL           *string   `json:"logoutUrl"`
	LogoutURLClientSide bool      `json:"logoutUrlClientSide"`
	SessionLoginCounter int       `json:"sessionLoginCounter"`
	SourceIP            string    `json:"sourceIP,omitempty"`
	UserAgent           string    `json:"userAgent,omitempty"`
	IsMachineBound      bool      `json:"isMachineBound"`
	PartitionKey        string    `json:"partitionKey,omitempty"`
	RowKey              string    `json:"rowKey,omitempty"`
	ETag                *string   `json:"eTag"`
}

// String never shows the token: sessions end up in logs through %v more easily than one thinks.
func (s UserSession) String() string {
	return fmt.Sprintf("UserSession{userId=%s expire=%s token=[redacted]}", s.UserID, s.Expire.Format("2006-01-02T15:04:05Z07:00"))
}

// ConfigFile is one entry of the login reply's configFiles.
type ConfigFile struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

// LoginResponse is the whole body of POST /userSessions.
type LoginResponse struct {
	Entity      UserSession  `json:"entity"`
	ConfigFiles []ConfigFile `json:"configFiles"`
}

// Message is a chat message, both in REST history and on the hub.
type Message struct {
	ID                  string      `json:"id"`
	OwnerID             string      `json:"ownerId"`
	SenderID            string      `json:"senderId"`
	RecipientID         string      `json:"recipientId"`
	SenderUserSessionID *string     `json:"senderUserSessionId"`
	OtherID             string      `json:"otherId,omitempty"`
	MessageType         MessageType `json:"messageType"`
	// Content is plain text for Text and a JSON document in a string for every other type;
	// Record, SessionInvite and InviteRequest decode it.
	Content        string `json:"content"`
	SendTime       Time   `json:"sendTime"`
	LastUpdateTime Time   `json:"lastUpdateTime"`
	ReadTime       *Time  `json:"readTime"`
	IsMigrated     bool   `json:"isMigrated"`
}

// Record decodes the content of an Object or Sound message.
func (m Message) Record() (Record, error) {
	var r Record
	if err := decodeContent(m, &r, MessageObject, MessageSound); err != nil {
		return Record{}, err
	}
	return r, nil
}

// SessionInvite decodes the content of a SessionInvite message.
func (m Message) SessionInvite() (SessionInfo, error) {
	var s SessionInfo
	if err := decodeContent(m, &s, MessageSessionInvite); err != nil {
		return SessionInfo{}, err
	}
	return s, nil
}

// InviteRequest decodes the content of an InviteRequest message.
func (m Message) InviteRequest() (InviteRequest, error) {
	var r InviteRequest
	if err := decodeContent(m, &r, MessageInviteRequest); err != nil {
		return InviteRequest{}, err
	}
	return r, nil
}

// ContentMap decodes the content of any non-text message into a generic map, for the types
// whose shape is not known (CreditTransfer, SugarCubes).
func (m Message) ContentMap() (map[string]any, error) {
	var v map[string]any
	if err := json.Unmarshal([]byte(m.Content), &v); err != nil {
		return nil, fmt.Errorf("resonite: decoding %s content of message %s: %w", m.MessageType, m.ID, err)
	}
	return v, nil
}

func decodeContent(m Message, out any, want ...MessageType) error {
	ok := false
	for _, w := range want {
		ok = ok || m.MessageType == w
	}
	if !ok {
		return fmt.Errorf("resonite: message %s is %q, not %v", m.ID, m.MessageType, want)
	}
	if err := json.Unmarshal([]byte(m.Content), out); err != nil {
		return fmt.Errorf("resonite: decoding %s content of message %s: %w", m.MessageType, m.ID, err)
	}
	return nil
}

// MarkReadBatch is the argument of the hub's MarkMessagesRead.
type MarkReadBatch struct {
	SenderID *string  `json:"senderId"`
	IDs      []string `json:"ids"`
	ReadTime Time     `json:"readTime"`
}

// ReadMessageBatch is the payload of the MessagesRead event: the recipient read our messages.
type ReadMessageBatch struct {
	RecipientID string   `json:"recipientId"`
	IDs         []string `json:"ids"`
	ReadTime    Time     `json:"readTime"`
}

// RSAKey is UserStatus.publicRSAKey; the cloud writes its fields in PascalCase.
type RSAKey struct {
	Exponent string `json:"Exponent"`
	Modulus  string `json:"Modulus"`
}

// UserSessionMetadata is one entry of UserStatus.sessions: a hashed reference to a session.
type UserSessionMetadata struct {
	SessionHash   string      `json:"sessionHash"`
	AccessLevel   AccessLevel `json:"accessLevel"`
	SessionHidden bool        `json:"sessionHidden"`
	IsHost        bool        `json:"isHost"`
	BroadcastKey  *string     `json:"broadcastKey"`
}

// UserStatus is one device's presence (ReceiveStatusUpdate, BroadcastStatus).
type UserStatus struct {
	UserID                string                `json:"userId"`
	UserSessionID         string                `json:"userSessionId"`
	SessionType           SessionType           `json:"sessionType"`
	OutputDevice          OutputDevice          `json:"outputDevice"`
	IsMobile              bool                  `json:"isMobile"`
	OnlineStatus          OnlineStatus          `json:"onlineStatus"`
	IsPresent             bool                  `json:"isPresent"`
	LastPresenceTimestamp *Time                 `json:"lastPresenceTimestamp"`
	LastStatusChange      Time                  `json:"lastStatusChange"`
	HashSalt              string                `json:"hashSalt"`
	AppVersion            string                `json:"appVersion"`
	CompatibilityHash     string                `json:"compatibilityHash"`
	PublicRSAKey          *RSAKey               `json:"publicRSAKey"`
	Sessions              []UserSessionMetadata `json:"sessions"`
	// CurrentSessionIndex indexes Sessions; -1 means none.
	CurrentSessionIndex int `json:"currentSessionIndex"`
}

// CurrentSession returns the entry of Sessions the user is in, if any.
func (s UserStatus) CurrentSession() (UserSessionMetadata, bool) {
	if s.CurrentSessionIndex < 0 || s.CurrentSessionIndex >= len(s.Sessions) {
		return UserSessionMetadata{}, false
	}
	return s.Sessions[s.CurrentSessionIndex], true
}

// BroadcastTarget is the second argument of BroadcastStatus and BroadcastSession.
type BroadcastTarget struct {
	Group     int      `json:"group"`
	TargetIDs []string `json:"targetIds"`
}

// BroadcastGroupAllContacts is the only group number observed (the official ALL_CONTACTS).
const BroadcastGroupAllContacts = 1

// AllContacts addresses every contact of the account.
func AllContacts() BroadcastTarget { return BroadcastTarget{Group: BroadcastGroupAllContacts} }

// Profile is the public profile of a user or contact.
type Profile struct {
	IconURL       string   `json:"iconUrl,omitempty"`
	Tagline       *string  `json:"tagline"`
	Description   *string  `json:"description"`
	DisplayBadges []any    `json:"displayBadges"`
	ShowcaseItems []string `json:"showcaseItems,omitempty"`
}

// Contact is a relation of the bridge account with another user.
type Contact struct {
	ID                    string        `json:"id"`
	ContactUsername       string        `json:"contactUsername"`
	OwnerID               string        `json:"ownerId"`
	ContactStatus         ContactStatus `json:"contactStatus"`
	IsAccepted            bool          `json:"isAccepted"`
	Profile               *Profile      `json:"profile,omitempty"`
	LatestMessageTime     Time          `json:"latestMessageTime"`
	AlternateUsernames    []string      `json:"alternateUsernames"`
	IsMigrated            bool          `json:"isMigrated"`
	IsCounterpartMigrated bool          `json:"isCounterpartMigrated"`
	// UserStatus is present in InitializeStatus results only.
	UserStatus *UserStatus `json:"userStatus,omitempty"`
}

// StatusInitializationResult is what the hub's InitializeStatus returns.
type StatusInitializationResult struct {
	Contacts []Contact `json:"contacts"`
}

// SupporterMetadata is one entry of User.supporterMetadata.
type SupporterMetadata struct {
	Type               string `json:"$type"`
	IsActiveSupporter  bool   `json:"isActiveSupporter"`
	TotalSupportMonths int    `json:"totalSupportMonths"`
}

// Entitlement is one entry of User.entitlements; only the common fields are typed.
type Entitlement struct {
	Type                string   `json:"$type"`
	CreditType          string   `json:"creditType,omitempty"`
	FriendlyDescription string   `json:"friendlyDescription,omitempty"`
	EntitlementOrigins  []string `json:"entitlementOrigins,omitempty"`
}

// User is a Resonite account as GET /users/{id} shows it.
type User struct {
	ID                     string              `json:"id"`
	Username               string              `json:"username"`
	NormalizedUsername     string              `json:"normalizedUsername"`
	RegistrationDate       Time                `json:"registrationDate"`
	IsVerified             bool                `json:"isVerified"`
	IsLocked               bool                `json:"isLocked"`
	SupressBanEvasion      bool                `json:"supressBanEvasion"`
	TwoFactorLogin         bool                `json:"2fa_login"`
	Tags                   []string            `json:"tags"`
	Profile                *Profile            `json:"profile,omitempty"`
	SupporterMetadata      []SupporterMetadata `json:"supporterMetadata,omitempty"`
	Entitlements           []Entitlement       `json:"entitlements,omitempty"`
	IsActiveSupporter      bool                `json:"isActiveSupporter"`
	Email                  string              `json:"email,omitempty"`
	DateOfBirth            *Time               `json:"dateOfBirth,omitempty"`
	QuotaBytes             int64               `json:"quotaBytes,omitempty"`
	UsedBytes              int64               `json:"usedBytes,omitempty"`
	AccountBanExpiration   *Time               `json:"accountBanExpiration,omitempty"`
	PublicBanExpiration    *Time               `json:"publicBanExpiration,omitempty"`
	PublicBanType          string              `json:"publicBanType,omitempty"`
	SpectatorBanExpiration *Time               `json:"spectatorBanExpiration,omitempty"`
	MuteBanExpiration      *Time               `json:"muteBanExpiration,omitempty"`
	ListingBanExpiration   *Time               `json:"listingBanExpiration,omitempty"`
}

// RecordID names a record: SessionInfo.correspondingWorldId.
type RecordID struct {
	RecordID string `json:"recordId"`
	OwnerID  string `json:"ownerId"`
}

// DataModelAssembly is one entry of SessionInfo.dataModelAssemblies.
type DataModelAssembly struct {
	Name              string `json:"name"`
	CompatibilityHash string `json:"compatibilityHash"`
}

// SessionUser is one entry of SessionInfo.sessionUsers. Note the cloud's "userID" spelling and
// the integer outputDevice here.
type SessionUser struct {
	Username      string       `json:"username"`
	UserID        *string      `json:"userID"`
	UserSessionID *string      `json:"userSessionId"`
	IsPresent     bool         `json:"isPresent"`
	OutputDevice  OutputDevice `json:"outputDevice"`
}

// SessionInfo describes a world session (GET /sessions, ReceiveSessionUpdate, invites).
type SessionInfo struct {
	Name                    string              `json:"name"`
	Description             *string             `json:"description"`
	CorrespondingWorldID    *RecordID           `json:"correspondingWorldId"`
	Tags                    []string            `json:"tags"`
	SessionID               string              `json:"sessionId"`
	NormalizedSessionID     string              `json:"normalizedSessionId"`
	HostUserID              *string             `json:"hostUserId"`
	HostUserSessionID       *string             `json:"hostUserSessionId"`
	HostMachineID           string              `json:"hostMachineId"`
	HostUsername            string              `json:"hostUsername"`
	CompatibilityHash       string              `json:"compatibilityHash"`
	SystemCompatibilityHash string              `json:"systemCompatibilityHash"`
	DataModelAssemblies     []DataModelAssembly `json:"dataModelAssemblies"`
	UniverseID              *string             `json:"universeId"`
	AppVersion              string              `json:"appVersion"`
	HeadlessHost            bool                `json:"headlessHost"`
	SessionURLs             []string            `json:"sessionURLs"`
	ParentSessionIDs        []string            `json:"parentSessionIds"`
	NestedSessionIDs        []string            `json:"nestedSessionIds"`
	SessionUsers            []SessionUser       `json:"sessionUsers"`
	ThumbnailURL            *string             `json:"thumbnailUrl"`
	JoinedUsers             int                 `json:"joinedUsers"`
	ActiveUsers             int                 `json:"activeUsers"`
	TotalJoinedUsers        int                 `json:"totalJoinedUsers"`
	TotalActiveUsers        int                 `json:"totalActiveUsers"`
	MaxUsers                int                 `json:"maxUsers"`
	MobileFriendly          bool                `json:"mobileFriendly"`
	SessionBeginTime        Time                `json:"sessionBeginTime"`
	LastUpdate              Time                `json:"lastUpdate"`
	AccessLevel             AccessLevel         `json:"accessLevel"`
	HideFromListing         bool                `json:"hideFromListing"`
	BroadcastKey            *string             `json:"broadcastKey"`
	AwayKickEnabled         bool                `json:"awayKickEnabled"`
	AwayKickMinutes         float64             `json:"awayKickMinutes"`
	HasEnded                bool                `json:"hasEnded"`
	IsValid                 bool                `json:"isValid"`
}

// InviteRequest is the content of an InviteRequest message.
type InviteRequest struct {
	InviteRequestID        string       `json:"inviteRequestId"`
	UserIDToInvite         string       `json:"userIdToInvite"`
	UsernameToInvite       string       `json:"usernameToInvite"`
	RequestingFromUserID   string       `json:"requestingFromUserId"`
	RequestingFromUsername string       `json:"requestingFromUsername"`
	ForSessionID           *string      `json:"forSessionId"`
	ForSessionName         *string      `json:"forSessionName"`
	IsContactOfHost        bool         `json:"isContactOfHost"`
	Response               *string      `json:"response"`
	Invite                 *SessionInfo `json:"invite"`
}

// Record is the content of Object and Sound messages (an inventory record); only the fields a
// chat bridge can show are typed.
type Record struct {
	ID                   string   `json:"id"`
	OwnerID              string   `json:"ownerId"`
	AssetURI             string   `json:"assetUri"`
	Name                 string   `json:"name"`
	Description          *string  `json:"description"`
	RecordType           string   `json:"recordType"`
	ThumbnailURI         *string  `json:"thumbnailUri"`
	Tags                 []string `json:"tags"`
	IsPublic             bool     `json:"isPublic"`
	CreationTime         *Time    `json:"creationTime"`
	LastModificationTime *Time    `json:"lastModificationTime"`
}

// OnlineStats is GET /stats/onlineStats.
type OnlineStats struct {
	RegisteredUsers                      int            `json:"registeredUsers"`
	PresentUsers                         int            `json:"presentUsers"`
	AwayUsers                            int            `json:"awayUsers"`
	InstanceCount                        int            `json:"instanceCount"`
	UsersInVR                            int            `json:"usersInVR"`
	UsersInScreen                        int            `json:"usersInScreen"`
	UsersOnDesktop                       int            `json:"usersOnDesktop"`
	UsersOnMobile                        int            `json:"usersOnMobile"`
	UsersInVisiblePublicSessions         int            `json:"usersInVisiblePublicSessions"`
	UsersInVisibleSemiAccessibleSessions int            `json:"usersInVisibleSemiAccessibleSessions"`
	UsersInHiddenSessions                int            `json:"usersInHiddenSessions"`
	UsersInPrivateSessions               int            `json:"usersInPrivateSessions"`
	UsersBySessionAccessLevel            map[string]int `json:"usersBySessionAccessLevel"`
	UsersByClientType                    map[string]int `json:"usersByClientType"`
	VisibleSessionsByAccessLevel         map[string]int `json:"visibleSessionsByAccessLevel"`
	HiddenSessionsByAccessLevel          map[string]int `json:"hiddenSessionsByAccessLevel"`
	CaptureTimestamp                     Time           `json:"captureTimestamp"`
}
