package resonite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Event is one push of the hub, or the hub's own Connected signal.
type Event interface{ isHubEvent() }

// MessageReceived: someone messaged the bridge account (ReceiveMessage).
type MessageReceived struct{ Message Message }

// MessageSent: the hub's echo of a message the account sent, from any of its connections.
type MessageSent struct{ Message Message }

// MessagesRead: the recipient read messages the account sent.
type MessagesRead struct{ Batch ReadMessageBatch }

// StatusUpdated: a contact's device status (ReceiveStatusUpdate). Statuses older than one
// already seen for the same device are not delivered.
type StatusUpdated struct{ Status UserStatus }

// StatusRequested: the hub asked for the bot's status on behalf of UserID (SendStatusToUser);
// the hub has answered it already.
type StatusRequested struct{ UserID string }

// ContactUpdated: the contact list changed, including incoming contact requests.
type ContactUpdated struct{ Contact Contact }

// SessionUpdated: a session's listing changed (ReceiveSessionUpdate).
type SessionUpdated struct{ Session SessionInfo }

// SessionRemoved: a session ended (RemoveSession).
type SessionRemoved struct {
	SessionID string
	Timestamp Time
}

// Connected follows every successful (re)connect once the start-up sequence ran. With
// Reconnect the consumer should catch up on what it may have missed (REST history).
// Contacts is nil when neither InitializeContacts nor InitializeStatus worked.
type Connected struct {
	Reconnect bool
	Contacts  []Contact
}

func (MessageReceived) isHubEvent() {}
func (MessageSent) isHubEvent()     {}
func (MessagesRead) isHubEvent()    {}
func (StatusUpdated) isHubEvent()   {}
func (StatusRequested) isHubEvent() {}
func (ContactUpdated) isHubEvent()  {}
func (SessionUpdated) isHubEvent()  {}
func (SessionRemoved) isHubEvent()  {}
func (Connected) isHubEvent()       {}

func eventName(e Event) string {
	switch e.(type) {
	case MessageReceived:
		return "MessageReceived"
	case MessageSent:
		return "MessageSent"
	case MessagesRead:
		return "MessagesRead"
	case StatusUpdated:
		return "StatusUpdated"
	case StatusRequested:
		return "StatusRequested"
	case ContactUpdated:
		return "ContactUpdated"
	case SessionUpdated:
		return "SessionUpdated"
	case SessionRemoved:
		return "SessionRemoved"
	case Connected:
		return "Connected"
	}
	return fmt.Sprintf("%T", e)
}

// hubTargets are the IHubClient targets and their arity; everything else is logged and ignored.
var hubTargets = map[string]int{
	"receivemessage":        1,
	"messagesent":           1,
	"messagesread":          1,
	"receivestatusupdate":   1,
	"sendstatustouser":      1,
	"contactaddedorupdated": 1,
	"receivesessionupdate":  1,
	"removesession":         2,
	"keylisteneradded":      2,
	"userpublicbanned":      1,
	"usermutebanned":        1,
	"userspectatorbanned":   1,
	"debug":                 1,
	"pong":                  1,
	"pokeoverlnl":           3,
}

// dispatch turns one hub invocation into an event. It runs on the connection's reader (wire
// order) and may wait for room in the queue: that wait is the back-pressure.
func (h *Hub) dispatch(c *hubConn, target string, args []json.RawMessage) {
	ctx := h.ctx
	if c != nil {
		ctx = c.ctx
	}
	name := strings.ToLower(target)
	want, known := hubTargets[name]
	if !known {
		h.log.Debug("hub: ignoring unknown hub target", "target", target, "args", len(args))
		return
	}
	if len(args) < want {
		h.log.Warn("hub: ignoring push with too few arguments", "target", target, "args", len(args), "want", want)
		return
	}
	bad := func(err error) {
		h.log.Warn("hub: ignoring undecodable push", "target", target, "error", err)
	}
	switch name {
	case "receivemessage", "messagesent":
		var m Message
		if err := json.Unmarshal(args[0], &m); err != nil {
			bad(err)
			return
		}
		if name == "messagesent" {
			h.confirm(m.ID)
			h.order.add(ctx, MessageSent{Message: m}, m.SendTime.Time, m.ID, "message")
			return
		}
		h.order.add(ctx, MessageReceived{Message: m}, m.SendTime.Time, m.ID, "message")
	case "messagesread":
		var b ReadMessageBatch
		if err := json.Unmarshal(args[0], &b); err != nil {
			bad(err)
			return
		}
		h.order.add(ctx, MessagesRead{Batch: b}, time.Time{}, "", "")
	case "receivestatusupdate":
		var s UserStatus
		if err := json.Unmarshal(args[0], &s); err != nil {
			bad(err)
			return
		}
		if h.staleStatus(s) {
			h.log.Debug("hub: ignoring a status older than one already seen", "user", s.UserID)
			return
		}
		h.listenOnNewKeys(c, s)
		h.order.add(ctx, StatusUpdated{Status: s}, s.LastStatusChange.Time, s.UserID+"/"+s.UserSessionID, "")
	case "sendstatustouser":
		var uid string
		if err := json.Unmarshal(args[0], &uid); err != nil {
			bad(err)
			return
		}
		h.answerStatusRequest(c, uid)
		h.order.add(ctx, StatusRequested{UserID: uid}, time.Time{}, "", "")
	case "contactaddedorupdated":
		var ct Contact
		if err := json.Unmarshal(args[0], &ct); err != nil {
			bad(err)
			return
		}
		h.order.add(ctx, ContactUpdated{Contact: ct}, time.Time{}, "", "")
	case "receivesessionupdate":
		var s SessionInfo
		if err := json.Unmarshal(args[0], &s); err != nil {
			bad(err)
			return
		}
		h.order.add(ctx, SessionUpdated{Session: s}, time.Time{}, "", "")
	case "removesession":
		var id string
		var ts Time
		if err := json.Unmarshal(args[0], &id); err != nil {
			bad(err)
			return
		}
		if err := json.Unmarshal(args[1], &ts); err != nil {
			bad(err)
			return
		}
		h.order.add(ctx, SessionRemoved{SessionID: id, Timestamp: ts}, time.Time{}, "", "")
	default:
		h.log.Debug("hub: push not forwarded", "target", target, "args", excerpt(joinRaw(args), 200))
	}
}

func joinRaw(args []json.RawMessage) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = string(a)
	}
	return strings.Join(parts, ",")
}

// staleStatus reports whether s is older than a status already seen for the same device,
// and remembers s otherwise.
func (h *Hub) staleStatus(s UserStatus) bool {
	k := s.UserID + "/" + s.UserSessionID
	h.mu.Lock()
	defer h.mu.Unlock()
	if last, ok := h.lastStatus[k]; ok && s.LastStatusChange.Before(last.Time) {
		return true
	}
	h.lastStatus[k] = s.LastStatusChange
	return false
}

// noteKeys remembers the session broadcast keys of a status; the start-up sequence subscribes
// to them.
func (h *Hub) noteKeys(s UserStatus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sess := range s.Sessions {
		if sess.BroadcastKey != nil && *sess.BroadcastKey != "" {
			h.keys[*sess.BroadcastKey] = true
		}
	}
}

// listenOnNewKeys subscribes to the session broadcast keys of a status, once per connection.
func (h *Hub) listenOnNewKeys(c *hubConn, s UserStatus) {
	var keys []string
	h.mu.Lock()
	if c == nil {
		c = h.cur
	}
	for _, sess := range s.Sessions {
		if sess.BroadcastKey == nil || *sess.BroadcastKey == "" {
			continue
		}
		k := *sess.BroadcastKey
		h.keys[k] = true
		if c != nil && !c.listened[k] {
			c.listened[k] = true
			keys = append(keys, k)
		}
	}
	h.mu.Unlock()
	if c == nil || len(keys) == 0 {
		return
	}
	c.goWork(func(ctx context.Context) {
		for _, k := range keys {
			if err := h.invokeOn(ctx, c, nil, "ListenOnKey", k); err != nil {
				h.log.Warn("hub: ListenOnKey failed", "error", err)
			}
		}
	})
}

// answerStatusRequest broadcasts the bot's status after SendStatusToUser. The group number
// that addresses a single contact is not known, so it goes to all contacts (which include
// the asker).
func (h *Hub) answerStatusRequest(c *hubConn, userID string) {
	if c == nil {
		h.mu.Lock()
		c = h.cur
		h.mu.Unlock()
		if c == nil {
			return
		}
	}
	c.goWork(func(ctx context.Context) {
		if err := h.invokeOn(ctx, c, nil, "BroadcastStatus", h.ownStatus(), AllContacts()); err != nil {
			h.log.Warn("hub: answering a status request failed", "for", userID, "error", err)
		}
	})
}

// hubReceiver takes the invocations that carry an invocation id (the frame filter passes
// those to the library, which needs a method of the right arity). Pushes without an id never
// reach it: the filter dispatches them in wire order.
type hubReceiver struct{ h *Hub }

type raw = json.RawMessage

func (r *hubReceiver) d(target string, args ...raw) { r.h.dispatch(nil, target, args) }

func (r *hubReceiver) ReceiveMessage(a raw)        { r.d("ReceiveMessage", a) }
func (r *hubReceiver) MessageSent(a raw)           { r.d("MessageSent", a) }
func (r *hubReceiver) MessagesRead(a raw)          { r.d("MessagesRead", a) }
func (r *hubReceiver) ReceiveStatusUpdate(a raw)   { r.d("ReceiveStatusUpdate", a) }
func (r *hubReceiver) SendStatusToUser(a raw)      { r.d("SendStatusToUser", a) }
func (r *hubReceiver) ContactAddedOrUpdated(a raw) { r.d("ContactAddedOrUpdated", a) }
func (r *hubReceiver) ReceiveSessionUpdate(a raw)  { r.d("ReceiveSessionUpdate", a) }
func (r *hubReceiver) RemoveSession(a, b raw)      { r.d("RemoveSession", a, b) }
func (r *hubReceiver) KeyListenerAdded(a, b raw)   { r.d("KeyListenerAdded", a, b) }
func (r *hubReceiver) UserPublicBanned(a raw)      { r.d("UserPublicBanned", a) }
func (r *hubReceiver) UserMuteBanned(a raw)        { r.d("UserMuteBanned", a) }
func (r *hubReceiver) UserSpectatorBanned(a raw)   { r.d("UserSpectatorBanned", a) }
func (r *hubReceiver) Debug(a raw)                 { r.d("Debug", a) }
func (r *hubReceiver) Pong(a raw)                  { r.d("Pong", a) }
func (r *hubReceiver) PokeOverLNL(a, b, c raw)     { r.d("PokeOverLNL", a, b, c) }
