package resonite_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/resonite"
)

func decode[T any](t *testing.T, doc string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("decoding %T: %v", v, err)
	}
	return v
}

func utc(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
	return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
}

// sameTime fails unless got is exactly want (in UTC, to the nanosecond).
func sameTime(t *testing.T, what string, got resonite.Time, want time.Time) {
	t.Helper()
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("%s = %s (%s), want %s", what, got.Format(time.RFC3339Nano), got.Location(), want.Format(time.RFC3339Nano))
	}
}

func TestDecodeLoginReply(t *testing.T) {
	t.Parallel()
	r := decode[resonite.LoginResponse](t, sampleLoginReply)
	s := r.Entity
	if s.UserID != "U-Example" || s.Token != "base64ish-token=" || !s.RememberMe || s.OriginalLoginType != resonite.LoginPassword ||
		s.OriginalLoginID != "Auth-2b7c5d84-5f0e-4a8e-9a53-0c7c2f3b8e11" || s.LogoutURL != nil || s.ETag != nil || s.IsMachineBound ||
		s.SessionLoginCounter != 1 || s.RowKey != s.Token || s.PartitionKey != "U-Example" || s.UIDSalt != "dWlkc2FsdA==" {
		t.Errorf("entity = %#v", s)
	}
	sameTime(t, "created", s.Created, utc(2025, 5, 24, 20, 49, 29, 633517700))
	sameTime(t, "expire", s.Expire, utc(2025, 6, 23, 20, 49, 29, 633590000))
	if len(r.ConfigFiles) != 1 || r.ConfigFiles[0].Path != "app.json" || r.ConfigFiles[0].Content != "{}" {
		t.Errorf("configFiles = %+v", r.ConfigFiles)
	}
	if str := s.String(); strings.Contains(str, s.Token) {
		t.Errorf("UserSession.String shows the token: %s", str)
	}
	// A reply that is not wrapped in entity (the Neos shape) decodes to no session at all.
	if bare := decode[resonite.LoginResponse](t, `{"userId":"U-x","token":"t"}`); bare.Entity.Token != "" {
		t.Errorf("an unwrapped reply was taken for a session: %+v", bare.Entity)
	}
}

func TestDecodeMessage(t *testing.T) {
	t.Parallel()
	m := decode[resonite.Message](t, sampleMessage)
	if m.ID != "MSG-3f2b8a41-7c1e-4e0b-9d1a-5b6c7d8e9f00" || m.OwnerID != "U-Me" || m.SenderID != "U-Me" || m.RecipientID != "U-Friend" ||
		m.OtherID != "U-Friend" || m.MessageType != resonite.MessageText || m.Content != "hello" || m.ReadTime != nil || m.IsMigrated ||
		m.SenderUserSessionID == nil || *m.SenderUserSessionID != "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b" {
		t.Errorf("message = %#v", m)
	}
	sameTime(t, "sendTime", m.SendTime, utc(2025, 5, 24, 22, 4, 10, 485000000))
	sameTime(t, "lastUpdateTime", m.LastUpdateTime, utc(2025, 5, 24, 22, 4, 11, 168645300))

	read := decode[resonite.Message](t, strings.Replace(sampleMessage, `"readTime": null`, `"readTime": "2025-05-24T22:05:00Z"`, 1))
	if read.ReadTime == nil {
		t.Fatal("readTime lost")
	}
	sameTime(t, "readTime", *read.ReadTime, utc(2025, 5, 24, 22, 5, 0, 0))
	if m := decode[resonite.Message](t, `{"id":"MSG-1","senderUserSessionId":null,"messageType":"SugarCubes","content":"{\"amount\":5}"}`); m.SenderUserSessionID != nil ||
		m.MessageType != resonite.MessageSugarCubes {
		t.Errorf("message = %#v", m)
	}

	// What the hub client sends decodes back to the same message.
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if back := decode[resonite.Message](t, string(b)); !reflect.DeepEqual(back, m) {
		t.Errorf("round trip:\n%#v\n%#v", back, m)
	}
}

func TestDecodeReadBatches(t *testing.T) {
	t.Parallel()
	mark := decode[resonite.MarkReadBatch](t, sampleMarkReadBatch)
	if mark.SenderID == nil || *mark.SenderID != "U-Friend" || !reflect.DeepEqual(mark.IDs, []string{"MSG-a", "MSG-b"}) {
		t.Errorf("MarkReadBatch = %#v", mark)
	}
	sameTime(t, "readTime", mark.ReadTime, utc(2025, 5, 24, 22, 5, 0, 0))
	// Read receipts off: the official client sends senderId null.
	if off := decode[resonite.MarkReadBatch](t, `{"senderId":null,"ids":[],"readTime":"2025-05-24T22:05:00Z"}`); off.SenderID != nil {
		t.Errorf("senderId null = %v", *off.SenderID)
	}
	read := decode[resonite.ReadMessageBatch](t, sampleReadMessageBatch)
	if read.RecipientID != "U-Friend" || !reflect.DeepEqual(read.IDs, []string{"MSG-a", "MSG-b"}) {
		t.Errorf("ReadMessageBatch = %#v", read)
	}
	sameTime(t, "readTime", read.ReadTime, utc(2025, 5, 24, 22, 5, 0, 123456700))
}

func TestDecodeUserStatus(t *testing.T) {
	t.Parallel()
	s := decode[resonite.UserStatus](t, sampleUserStatus)
	if s.UserID != "U-Friend" || s.SessionType != resonite.SessionTypeGraphicalClient || s.OutputDevice != resonite.DeviceVR || s.IsMobile ||
		s.OnlineStatus != resonite.StatusOnline || !s.IsPresent || s.HashSalt != "base64salt=" || s.AppVersion != "2025.5.23.1096" {
		t.Errorf("status = %#v", s)
	}
	if s.PublicRSAKey == nil || s.PublicRSAKey.Exponent != "AQAB" || s.PublicRSAKey.Modulus != "bW9kdWx1cw==" {
		t.Errorf("publicRSAKey (PascalCase fields) = %#v", s.PublicRSAKey)
	}
	if s.LastPresenceTimestamp == nil {
		t.Fatal("lastPresenceTimestamp lost")
	}
	sameTime(t, "lastPresenceTimestamp", *s.LastPresenceTimestamp, utc(2025, 5, 24, 21, 56, 38, 13945800))
	sameTime(t, "lastStatusChange", s.LastStatusChange, utc(2025, 5, 24, 21, 56, 38, 17945800))
	if len(s.Sessions) != 2 {
		t.Fatalf("sessions = %#v", s.Sessions)
	}
	first, second := s.Sessions[0], s.Sessions[1]
	if first.SessionHash != "A1B2C3" || first.AccessLevel != resonite.AccessContacts || first.SessionHidden || !first.IsHost ||
		first.BroadcastKey == nil || *first.BroadcastKey != "BK-theater" {
		t.Errorf("sessions[0] = %#v", first)
	}
	if second.BroadcastKey != nil || !second.SessionHidden || second.AccessLevel != resonite.AccessPrivate {
		t.Errorf("sessions[1] = %#v", second)
	}
	if cur, ok := s.CurrentSession(); !ok || cur.SessionHash != "A1B2C3" {
		t.Errorf("CurrentSession = %#v, %v", cur, ok)
	}
	// The key's fields in camelCase decode too (Go matches keys case-insensitively, like .NET).
	camel := decode[resonite.UserStatus](t, `{"publicRSAKey":{"exponent":"AQAB","modulus":"bQ=="}}`)
	if camel.PublicRSAKey == nil || camel.PublicRSAKey.Modulus != "bQ==" {
		t.Errorf("camelCase publicRSAKey = %#v", camel.PublicRSAKey)
	}
}

func TestDecodeHeadlessAndIntegerStatuses(t *testing.T) {
	t.Parallel()
	h := decode[resonite.UserStatus](t, sampleHeadlessStatus)
	if h.OnlineStatus != "" || h.OutputDevice != "" || h.IsPresent || h.SessionType != resonite.SessionTypeHeadless ||
		h.LastPresenceTimestamp != nil || !h.LastStatusChange.IsZero() || h.PublicRSAKey != nil || h.CurrentSessionIndex != -1 {
		t.Errorf("headless status = %#v", h)
	}
	if h.OnlineStatus.Visible() {
		t.Error("a null onlineStatus counts as visible")
	}
	if _, ok := h.CurrentSession(); ok {
		t.Error("currentSessionIndex -1 resolves to a session")
	}
	out := decode[resonite.UserStatus](t, `{"sessions":[{"sessionHash":"X"}],"currentSessionIndex":1}`)
	if _, ok := out.CurrentSession(); ok {
		t.Error("an index past the sessions resolves")
	}
	i := decode[resonite.UserStatus](t, sampleIntegerStatus)
	if i.OnlineStatus != resonite.StatusBusy || i.SessionType != resonite.SessionTypeChatClient || i.OutputDevice != resonite.DeviceScreen {
		t.Errorf("integer enums = %q %q %q", i.OnlineStatus, i.SessionType, i.OutputDevice)
	}
	if !i.OnlineStatus.Visible() {
		t.Error("Busy is not visible")
	}
}

func TestDecodeContact(t *testing.T) {
	t.Parallel()
	c := decode[resonite.Contact](t, sampleContact)
	if c.ID != "U-Friend" || c.ContactUsername != "Friend" || c.OwnerID != "U-Me" || c.ContactStatus != resonite.ContactAccepted || !c.IsAccepted ||
		c.IsMigrated || c.IsCounterpartMigrated || c.AlternateUsernames == nil || len(c.AlternateUsernames) != 0 || c.UserStatus != nil {
		t.Errorf("contact = %#v", c)
	}
	if c.Profile == nil || c.Profile.Tagline != nil || c.Profile.Description != nil ||
		resonite.AssetURL(c.Profile.IconURL) != "https://assets.resonite.com/0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0" {
		t.Errorf("profile = %#v", c.Profile)
	}
	sameTime(t, "latestMessageTime", c.LatestMessageTime, utc(2025, 5, 22, 13, 48, 2, 94522100))
	// InitializeStatus results carry the contact's status.
	withStatus := decode[resonite.Contact](t, strings.TrimSuffix(strings.TrimSpace(sampleContact), "}")+`, "userStatus": `+sampleUserStatus+`}`)
	if withStatus.UserStatus == nil || withStatus.UserStatus.OnlineStatus != resonite.StatusOnline {
		t.Errorf("userStatus = %#v", withStatus.UserStatus)
	}
	res := decode[resonite.StatusInitializationResult](t, `{"contacts":[`+sampleContact+`]}`)
	if len(res.Contacts) != 1 || res.Contacts[0].ID != "U-Friend" {
		t.Errorf("StatusInitializationResult = %#v", res)
	}
}

func TestDecodeUser(t *testing.T) {
	t.Parallel()
	u := decode[resonite.User](t, sampleUser)
	if u.ID != "U-Example" || u.Username != "Example" || u.NormalizedUsername != "example" || !u.IsVerified || u.IsLocked ||
		u.SupressBanEvasion || !u.TwoFactorLogin || !u.IsActiveSupporter || !reflect.DeepEqual(u.Tags, []string{"hearing impaired"}) {
		t.Errorf("user = %#v", u)
	}
	sameTime(t, "registrationDate", u.RegistrationDate, utc(2024, 1, 18, 16, 5, 48, 614399600))
	if u.Profile == nil || u.Profile.Tagline == nil || *u.Profile.Tagline != "Hi there" || *u.Profile.Description != "About me" {
		t.Errorf("profile = %#v", u.Profile)
	}
	if len(u.SupporterMetadata) != 1 || u.SupporterMetadata[0] != (resonite.SupporterMetadata{Type: "patreon", IsActiveSupporter: true, TotalSupportMonths: 1}) {
		t.Errorf("supporterMetadata = %#v", u.SupporterMetadata)
	}
	if len(u.Entitlements) != 2 || u.Entitlements[0].Type != "credits" || u.Entitlements[0].CreditType != "Basic" ||
		!reflect.DeepEqual(u.Entitlements[0].EntitlementOrigins, []string{"Patreon"}) || u.Entitlements[1].Type != "storageSpace" {
		t.Errorf("entitlements = %#v", u.Entitlements)
	}
	if u.PublicBanExpiration == nil || u.PublicBanType != "Standard" || u.MuteBanExpiration != nil || u.SpectatorBanExpiration != nil {
		t.Errorf("ban fields = %v %q %v %v", u.PublicBanExpiration, u.PublicBanType, u.MuteBanExpiration, u.SpectatorBanExpiration)
	} else {
		sameTime(t, "publicBanExpiration", *u.PublicBanExpiration, utc(2026, 1, 1, 0, 0, 0, 0))
	}
	if u.AccountBanExpiration == nil || !u.AccountBanExpiration.IsZero() {
		t.Errorf("the zone-less default ban time = %v", u.AccountBanExpiration)
	}
	// The digit-led key is written back under its own name.
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"2fa_login":true`) {
		t.Errorf("encoded user lacks 2fa_login: %s", b)
	}
}

func TestDecodeSessionInfo(t *testing.T) {
	t.Parallel()
	s := decode[resonite.SessionInfo](t, sampleSession)
	if s.Name != "The <color=yellow>Hidden Star Theater</color>" || s.SessionID != "S-U-Host:HiddenStarTheater" ||
		s.NormalizedSessionID != "s-u-host:hiddenstartheater" || s.HostUserID == nil || *s.HostUserID != "U-Host" || s.HostUsername != "Host" ||
		s.UniverseID != nil || !s.HeadlessHost || s.AccessLevel != resonite.AccessAnyone || s.BroadcastKey != nil || s.HasEnded || !s.IsValid ||
		s.MaxUsers != 34 || s.JoinedUsers != 2 || s.ActiveUsers != 1 || s.TotalJoinedUsers != 2 || s.TotalActiveUsers != 1 || s.AwayKickMinutes != 5 {
		t.Errorf("session = %#v", s)
	}
	if s.CorrespondingWorldID == nil || *s.CorrespondingWorldID != (resonite.RecordID{RecordID: "R-5e1f2a3b", OwnerID: "U-Host"}) {
		t.Errorf("correspondingWorldId = %#v", s.CorrespondingWorldID)
	}
	if len(s.DataModelAssemblies) != 1 || s.DataModelAssemblies[0].Name != "FrooxEngine" || len(s.SessionURLs) != 1 ||
		!strings.HasPrefix(s.SessionURLs[0], "lnl-nat://") || s.ParentSessionIDs == nil || s.ThumbnailURL == nil {
		t.Errorf("session lists = %#v %#v %#v", s.DataModelAssemblies, s.SessionURLs, s.ParentSessionIDs)
	}
	if len(s.SessionUsers) != 2 {
		t.Fatalf("sessionUsers = %#v", s.SessionUsers)
	}
	u0, u1 := s.SessionUsers[0], s.SessionUsers[1]
	if u0.Username != "someone" || u0.UserID == nil || *u0.UserID != "U-Someone" || u0.UserSessionID != nil || !u0.IsPresent ||
		u0.OutputDevice != resonite.DeviceScreen {
		t.Errorf("sessionUsers[0] (userID, integer outputDevice) = %#v", u0)
	}
	if u1.OutputDevice != resonite.DeviceVR || u1.IsPresent || u1.UserSessionID == nil {
		t.Errorf("sessionUsers[1] = %#v", u1)
	}
	sameTime(t, "sessionBeginTime", s.SessionBeginTime, utc(2025, 5, 24, 18, 0, 0, 123456700))
	sameTime(t, "lastUpdate", s.LastUpdate, utc(2025, 5, 24, 22, 3, 0, 765432100))
	noThumb := decode[resonite.SessionInfo](t, `{"sessionId":"S-1","thumbnailUrl":null,"hostUserId":null,"accessLevel":3}`)
	if noThumb.ThumbnailURL != nil || noThumb.HostUserID != nil || noThumb.AccessLevel != resonite.AccessContactsPlus {
		t.Errorf("nulls = %#v", noThumb)
	}
}

func TestDecodeEnums(t *testing.T) {
	t.Parallel()
	type enumCase struct {
		in      string
		want    string
		wantErr bool
	}
	check := func(t *testing.T, name string, cases []enumCase, dec func([]byte) (string, error)) {
		t.Helper()
		for _, c := range cases {
			got, err := dec([]byte(c.in))
			if (err != nil) != c.wantErr || (err == nil && got != c.want) {
				t.Errorf("%s %s = %q, %v; want %q (error %v)", name, c.in, got, err, c.want, c.wantErr)
			}
		}
	}
	decoder := func(v json.Unmarshaler, get func() string) func([]byte) (string, error) {
		return func(b []byte) (string, error) {
			err := json.Unmarshal(b, v)
			return get(), err
		}
	}
	var al resonite.AccessLevel
	check(t, "AccessLevel", []enumCase{
		{`"Private"`, "Private", false}, {`"LAN"`, "LAN", false}, {`"Contacts"`, "Contacts", false},
		{`"ContactsPlus"`, "ContactsPlus", false}, {`"RegisteredUsers"`, "RegisteredUsers", false}, {`"Anyone"`, "Anyone", false},
		{`0`, "Private", false}, {`1`, "LAN", false}, {`2`, "Contacts", false}, {`3`, "ContactsPlus", false}, {`4`, "RegisteredUsers", false}, {`5`, "Anyone", false},
		{`"Friends"`, "Contacts", false}, {`"friends"`, "Contacts", false}, {`"FriendsOfFriends"`, "ContactsPlus", false}, {`"friendsOfFriends"`, "ContactsPlus", false},
		{`"anyone"`, "Anyone", false}, {`"Fri\u0065nds"`, "Contacts", false}, {`"Any\u006fne"`, "Anyone", false}, {` "LAN" `, "LAN", false},
		{`"Ünïcode"`, "Ünïcode", false}, {`null`, "", false}, {`"Universe"`, "Universe", false}, {`9`, "9", false},
		{`2.5`, "", true}, {`true`, "", true}, {`{}`, "", true},
	}, decoder(&al, func() string { return string(al) }))

	var os resonite.OnlineStatus
	check(t, "OnlineStatus", []enumCase{
		{`"Offline"`, "Offline", false}, {`"Invisible"`, "Invisible", false}, {`"Away"`, "Away", false}, {`"Busy"`, "Busy", false},
		{`"Online"`, "Online", false}, {`"Sociable"`, "Sociable", false}, {`0`, "Offline", false}, {`4`, "Online", false}, {`5`, "Sociable", false},
		{`null`, "", false}, {`"online"`, "Online", false}, {`-1`, "-1", false}, {`"Streaming"`, "Streaming", false},
		{`"Online`, "", true}, {`1e3`, "", true},
	}, decoder(&os, func() string { return string(os) }))

	var od resonite.OutputDevice
	check(t, "OutputDevice", []enumCase{
		{`"Unknown"`, "Unknown", false}, {`"Screen"`, "Screen", false}, {`"VR"`, "VR", false}, {`"Camera"`, "Camera", false},
		{`0`, "Unknown", false}, {`1`, "Screen", false}, {`2`, "VR", false}, {`3`, "Camera", false}, {`null`, "", false}, {`"vr"`, "VR", false},
	}, decoder(&od, func() string { return string(od) }))

	var st resonite.SessionType
	check(t, "SessionType", []enumCase{
		{`"Unknown"`, "Unknown", false}, {`"GraphicalClient"`, "GraphicalClient", false}, {`"ChatClient"`, "ChatClient", false},
		{`"Headless"`, "Headless", false}, {`"Bot"`, "Bot", false}, {`4`, "Bot", false}, {`3`, "Headless", false}, {`null`, "", false},
	}, decoder(&st, func() string { return string(st) }))

	var cs resonite.ContactStatus
	check(t, "ContactStatus", []enumCase{
		{`"None"`, "None", false}, {`"SearchResult"`, "SearchResult", false}, {`"Requested"`, "Requested", false}, {`"Ignored"`, "Ignored", false},
		{`"Blocked"`, "Blocked", false}, {`"Accepted"`, "Accepted", false}, {`2`, "Requested", false}, {`5`, "Accepted", false}, {`null`, "", false},
		{`"Ac\u0063epted"`, "Accepted", false}, {`"\u0000"`, "\x00", false},
	}, decoder(&cs, func() string { return string(cs) }))

	// Enums are written as their names.
	b, err := json.Marshal(struct {
		A resonite.AccessLevel
		O resonite.OnlineStatus
	}{resonite.AccessContactsPlus, resonite.StatusSociable})
	if err != nil || string(b) != `{"A":"ContactsPlus","O":"Sociable"}` {
		t.Errorf("encoded enums = %s, %v", b, err)
	}
}

// jsonString is s as a JSON string literal: how the cloud puts a document into message content.
func jsonString(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecodeMessageContent(t *testing.T) {
	t.Parallel()
	msg := func(typ, content string) resonite.Message {
		return decode[resonite.Message](t, `{"id":"MSG-c","messageType":"`+typ+`","content":`+jsonString(t, content)+`}`)
	}
	for _, typ := range []string{"Object", "Sound"} {
		r, err := msg(typ, sampleRecordContent).Record()
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if r.ID != "R-9a8b7c6d" || r.AssetURI != "resdb:///1a2b3c4d5e6f.ogg" || r.RecordType != "audio" || r.Description != nil ||
			!reflect.DeepEqual(r.Tags, []string{"message_item", "message_id:MSG-1", "voice"}) || r.CreationTime == nil || r.LastModificationTime == nil ||
			!r.LastModificationTime.IsZero() || resonite.AssetURL(r.AssetURI) != "https://assets.resonite.com/1a2b3c4d5e6f" {
			t.Errorf("%s record = %#v", typ, r)
		}
	}
	// The invite content mixes casing ("HasEnded", "IsValid"): the decoder does not care.
	invite := strings.Replace(strings.Replace(sampleSession, `"hasEnded": false`, `"HasEnded": true`, 1), `"isValid": true`, `"IsValid": false`, 1)
	s, err := msg("SessionInvite", invite).SessionInvite()
	if err != nil {
		t.Fatal(err)
	}
	if s.SessionID != "S-U-Host:HiddenStarTheater" || !s.HasEnded || s.IsValid || len(s.SessionUsers) != 2 {
		t.Errorf("invite = %#v", s)
	}
	ir, err := msg("InviteRequest", sampleInviteRequestContent).InviteRequest()
	if err != nil {
		t.Fatal(err)
	}
	if ir.InviteRequestID != "IR-1" || ir.UserIDToInvite != "U-Guest" || ir.RequestingFromUsername != "Friend" || !ir.IsContactOfHost ||
		ir.ForSessionID == nil || *ir.ForSessionID != "S-U-Host:HiddenStarTheater" || ir.Response == nil || *ir.Response != "SendInvite" || ir.Invite != nil {
		t.Errorf("invite request = %#v", ir)
	}
	withInvite := strings.Replace(sampleInviteRequestContent, `"invite":null`, `"invite":`+sampleSession, 1)
	if ir, err := msg("InviteRequest", withInvite).InviteRequest(); err != nil || ir.Invite == nil || ir.Invite.MaxUsers != 34 {
		t.Errorf("invite request with invite = %#v, %v", ir.Invite, err)
	}
	cm, err := msg("CreditTransfer", `{"amount":12.5,"token":"CDFT"}`).ContentMap()
	if err != nil || cm["amount"] != 12.5 {
		t.Errorf("ContentMap = %v, %v", cm, err)
	}

	// Wrong type, or content that is not the document it claims: errors that name the message.
	if _, err := msg("Text", sampleRecordContent).Record(); err == nil || !strings.Contains(err.Error(), "MSG-c") {
		t.Errorf("Record of a Text message = %v", err)
	}
	if _, err := msg("Object", "not json").Record(); err == nil {
		t.Error("Record of a broken content worked")
	}
	if _, err := msg("SessionInvite", sampleRecordContent[:20]).SessionInvite(); err == nil {
		t.Error("SessionInvite of a cut content worked")
	}
	if _, err := msg("Sound", sampleRecordContent).InviteRequest(); err == nil {
		t.Error("InviteRequest of a Sound message worked")
	}
}

func TestDecodeOnlineStats(t *testing.T) {
	t.Parallel()
	s := decode[resonite.OnlineStats](t, sampleOnlineStats)
	want := resonite.OnlineStats{
		RegisteredUsers: 412345, PresentUsers: 3012, AwayUsers: 655, InstanceCount: 1890, UsersInVR: 1500, UsersInScreen: 1400,
		UsersOnDesktop: 2700, UsersOnMobile: 12, UsersInVisiblePublicSessions: 800, UsersInVisibleSemiAccessibleSessions: 300,
		UsersInHiddenSessions: 150, UsersInPrivateSessions: 900,
		UsersBySessionAccessLevel:    map[string]int{"Private": 900, "LAN": 2, "Contacts": 400, "ContactsPlus": 100, "RegisteredUsers": 50, "Anyone": 800},
		UsersByClientType:            map[string]int{"Headless": 120, "ChatClient": 40, "GraphicalClient": 2852},
		VisibleSessionsByAccessLevel: map[string]int{"Anyone": 300}, HiddenSessionsByAccessLevel: map[string]int{"Private": 700},
		CaptureTimestamp: resonite.NewTime(utc(2025, 5, 24, 22, 5, 0, 100)),
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("online stats =\n%#v\nwant\n%#v", s, want)
	}
}

func TestTimeDecoding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Time // zero: the zero Time
		wantErr bool
	}{
		{`"0001-01-01T00:00:00"`, time.Time{}, false}, // the cloud's default, no zone
		{`"0001-01-01T00:00:00Z"`, time.Time{}, false},
		{`null`, time.Time{}, false},
		{`""`, time.Time{}, false},
		{`"2025-05-24T20:49:29.6335177Z"`, utc(2025, 5, 24, 20, 49, 29, 633517700), false}, // 7 fractional digits
		{`"2025-05-24T20:49:29.63359Z"`, utc(2025, 5, 24, 20, 49, 29, 633590000), false},
		{`"2025-05-24T22:04:10.485Z"`, utc(2025, 5, 24, 22, 4, 10, 485000000), false},
		{`"2025-05-24T22:05:00Z"`, utc(2025, 5, 24, 22, 5, 0, 0), false},
		{`"2025-05-24T22:05:00.0000001Z"`, utc(2025, 5, 24, 22, 5, 0, 100), false},
		{`"2025-05-24T20:49:29.6335177"`, utc(2025, 5, 24, 20, 49, 29, 633517700), false}, // no zone: UTC
		{`"2025-05-24T20:49:29"`, utc(2025, 5, 24, 20, 49, 29, 0), false},
		{`"2025-05-24T22:49:29.5+02:00"`, utc(2025, 5, 24, 20, 49, 29, 500000000), false},
		{`"2025-05-24"`, utc(2025, 5, 24, 0, 0, 0, 0), false},
		{`" 2025-05-24T22:05:00Z "`, utc(2025, 5, 24, 22, 5, 0, 0), false},
		{`"2025-05-24T22:05:00\u005a"`, utc(2025, 5, 24, 22, 5, 0, 0), false}, // an escaped Z: the slow path
		{` "2025-05-24T22:05:00Z"`, utc(2025, 5, 24, 22, 5, 0, 0), false},
		{`"yesterday"`, time.Time{}, true},
		{`"2025-13-01T00:00:00Z"`, time.Time{}, true},
		{`1716588000`, time.Time{}, true},
		{`"0000-01-01T00:00:00+01:00"`, time.Time{}, true}, // year -1 in UTC: could not be written back
		{`"9999-12-31T23:59:59-01:00"`, time.Time{}, true}, // year 10000 in UTC
		{`"0000-01-01T00:00:00Z"`, utc(0, 1, 1, 0, 0, 0, 0), false},
		{`{}`, time.Time{}, true},
	}
	for _, tc := range tests {
		var got resonite.Time
		err := json.Unmarshal([]byte(tc.in), &got)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if tc.want.IsZero() {
			if !got.IsZero() {
				t.Errorf("%s = %v, want the zero time", tc.in, got)
			}
			continue
		}
		sameTime(t, tc.in, got, tc.want)
	}
	// Encoding: 7 fractional digits and Z, the zero time as the cloud's default.
	for _, tc := range []struct {
		t    resonite.Time
		want string
	}{
		{resonite.Time{}, `"0001-01-01T00:00:00"`},
		{resonite.NewTime(utc(2025, 5, 24, 20, 49, 29, 633517700)), `"2025-05-24T20:49:29.6335177Z"`},
		{resonite.NewTime(time.Date(2025, 5, 24, 22, 0, 0, 0, time.FixedZone("CEST", 2*3600))), `"2025-05-24T20:00:00.0000000Z"`},
	} {
		b, err := json.Marshal(tc.t)
		if err != nil || string(b) != tc.want {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tc.t, b, err, tc.want)
		}
	}
	if _, err := json.Marshal(resonite.NewTime(utc(10000, 1, 1, 0, 0, 0, 0))); err == nil {
		t.Error("a year the cloud cannot read was encoded")
	}
	if p := (resonite.Time{}).Ptr(); p != nil {
		t.Errorf("zero Ptr = %v", p)
	}
	if p := resonite.NewTime(utc(2025, 1, 1, 0, 0, 0, 0)).Ptr(); p == nil || p.Year() != 2025 {
		t.Errorf("Ptr = %v", p)
	}
	if _, err := resonite.ParseTime(strings.Repeat("9", 500)); err == nil || len(err.Error()) > 200 {
		t.Errorf("ParseTime of junk: %v", err)
	}
}
