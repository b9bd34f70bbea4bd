package resoniteadapter

import (
	"math"
	"strconv"
	"strings"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// The conversions from Resonite's wire model into the core's: everything Resonite-specific
// (rich text in names, resdb:/// links, enums, record JSON in message content) ends here.

func plain(s string) string { return strings.TrimSpace(resonite.StripRichText(s)) }

func contactState(c resonite.Contact) core.ContactState {
	switch {
	case c.ContactStatus == resonite.ContactRequested:
		return core.ContactRequested
	case c.ContactStatus == resonite.ContactAccepted && c.IsAccepted:
		return core.ContactFriend
	case c.ContactStatus == resonite.ContactAccepted:
		return core.ContactPending
	}
	return core.ContactNone
}

func contact(c resonite.Contact) core.Contact {
	out := core.Contact{ID: c.ID, Username: c.ContactUsername, AlternateUsernames: c.AlternateUsernames, State: contactState(c)}
	if c.Profile != nil {
		out.AvatarURL = resonite.AssetURL(c.Profile.IconURL)
	}
	if c.UserStatus != nil {
		d := device(*c.UserStatus)
		if d.UserID == "" {
			d.UserID = c.ID
		}
		out.Device = &d
	}
	return out
}

// hintSep separates the session hash and the salt in a device's SessionHint.
const hintSep = "\x00"

func device(st resonite.UserStatus) core.Device {
	d := core.Device{
		UserID:        st.UserID,
		DeviceID:      st.UserSessionID,
		Status:        core.OnlineStatus(st.OnlineStatus),
		StatusChanged: st.LastStatusChange.Time,
	}
	switch {
	case st.SessionType == resonite.SessionTypeHeadless:
		d.Kind = core.DeviceHeadless
	case st.IsMobile:
		d.Kind = core.DeviceMobile
	case st.OutputDevice == resonite.DeviceVR:
		d.Kind = core.DeviceVR
	case st.OutputDevice == resonite.DeviceScreen:
		d.Kind = core.DeviceDesktop
	}
	if cur, ok := st.CurrentSession(); ok && cur.SessionHash != "" {
		d.SessionHint = cur.SessionHash + hintSep + st.HashSalt
	}
	return d
}

func session(s resonite.SessionInfo) core.Session {
	out := core.Session{
		ID:           s.SessionID,
		Name:         plain(s.Name),
		HostUsername: plain(s.HostUsername),
		ActiveUsers:  s.ActiveUsers,
		JoinedUsers:  s.JoinedUsers,
		MaxUsers:     s.MaxUsers,
		AccessLevel:  string(s.AccessLevel),
		Headless:     s.HeadlessHost,
		Hidden:       s.HideFromListing,
		Ended:        s.HasEnded,
	}
	if s.SessionID != "" {
		out.URL = resonite.SessionURL(s.SessionID)
	}
	if s.ThumbnailURL != nil {
		out.ThumbnailURL = resonite.AssetURL(*s.ThumbnailURL)
	}
	return out
}

func user(u resonite.User) core.User {
	out := core.User{ID: u.ID, Username: u.Username}
	if !u.RegistrationDate.IsZero() && u.RegistrationDate.Year() > 1 {
		out.RegisteredAt = u.RegistrationDate.Time
	}
	if u.Profile != nil {
		out.IconURL = resonite.AssetURL(u.Profile.IconURL)
		if u.Profile.Tagline != nil {
			out.Tagline = plain(*u.Profile.Tagline)
		}
	}
	return out
}

// message decodes a received message into what Discord can show. Content that cannot be read
// gives an Unreadable message, never an error: the contact still learns it was not shown.
func message(m resonite.Message) core.ContactMessage {
	out := core.ContactMessage{ID: m.ID, SenderID: m.SenderID, Kind: core.MessageKind(m.MessageType), SentAt: m.SendTime.Time}
	switch m.MessageType {
	case resonite.MessageText, "":
		out.Kind = core.KindText
		out.Text = m.Content
	case resonite.MessageSound:
		r, err := m.Record()
		if out.SoundURL = resonite.AssetURL(r.AssetURI); err != nil || out.SoundURL == "" {
			out.Unreadable = true
		} else if strings.HasPrefix(strings.ToLower(r.AssetURI), "resdb:///") {
			out.SoundAsset = r.AssetURI
		}
	case resonite.MessageObject:
		r, err := m.Record()
		if err != nil {
			out.Unreadable = true
			break
		}
		out.Item = &core.Item{Name: plain(r.Name)}
		if r.ThumbnailURI != nil {
			out.Item.ThumbnailURL = resonite.AssetURL(*r.ThumbnailURI)
		}
	case resonite.MessageSessionInvite:
		s, err := m.SessionInvite()
		if err != nil {
			out.Unreadable = true
			break
		}
		cs := session(s)
		out.Invite = &cs
	case resonite.MessageInviteRequest:
		r, err := m.InviteRequest()
		if err != nil {
			out.Unreadable = true
			break
		}
		out.InviteRequest = &core.InviteRequest{From: strings.TrimSpace(r.RequestingFromUsername), ForUser: strings.TrimSpace(r.UsernameToInvite)}
		if r.ForSessionName != nil {
			out.InviteRequest.SessionName = plain(*r.ForSessionName)
		}
		if r.ForSessionID != nil && *r.ForSessionID != "" {
			out.InviteRequest.SessionURL = resonite.SessionURL(*r.ForSessionID)
		}
	case resonite.MessageCreditTransfer, resonite.MessageSugarCubes:
		out.Transfer = transfer(m)
	default:
		out.Text = m.Content
	}
	return out
}

// transfer reads the amount, token and comment of a transfer, whose schema is not published.
func transfer(m resonite.Message) *core.Transfer {
	v, err := m.ContentMap()
	if err != nil {
		return nil
	}
	get := func(key string) (any, bool) {
		for k, x := range v {
			if strings.EqualFold(k, key) {
				return x, true
			}
		}
		return nil, false
	}
	var t core.Transfer
	if a, ok := get("amount"); ok {
		switch n := a.(type) {
		case float64:
			if n == math.Trunc(n) {
				t.Amount = strconv.FormatFloat(n, 'f', 0, 64)
			} else {
				t.Amount = strconv.FormatFloat(n, 'f', -1, 64)
			}
		case string:
			t.Amount = n
		}
		if tok, ok := get("token"); ok {
			if ts, ok := tok.(string); ok && ts != "" && t.Amount != "" {
				t.Amount += " " + ts
			}
		}
	}
	if c, ok := get("comment"); ok {
		if cs, ok := c.(string); ok {
			t.Comment = strings.TrimSpace(cs)
		}
	}
	return &t
}
