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
// Awaited: a SendMessage of this Hub was waiting for it and returns nil for it, so that call's
// caller knows the message arrived and nothing else needs to act on the echo.
type MessageSent struct {
	Message Message
	Awaited bool
}

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

// Disconnected follows the last event of a connection that was up, before anything of the next
// one: pushes may be missed from here until the next Connected, so a consumer that keeps order
// across gaps holds back until it has caught up after that Connected.
type Disconnected struct {
	Err error // why the connection ended
}

func (MessageReceived) isHubEvent() {}
func (Disconnected) isHubEvent()    {}
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
	case Disconnected:
		return "Disconnected"
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

// dispatch turns one hub invocation into an event. It runs on the connection's reader, in
// wire order (hub_order.go), and may wait for room on Events: that wait is the back-pressure.
func (h *Hub) dispatch(c *hubConn, target string, args []json.RawMessage) {
	ctx := c.ctx
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
		h.log.Warn("hub: ignoring undecodable push", "target", target, "err", err)
	}
	switch name {
	case "receivemessage", "messagesent":
		var m Message
		if err := json.Unmarshal(args[0], &m); err != nil {
			bad(err)
			return
		}
		if name == "messagesent" {
			awaited := h.confirm(m.ID)
			h.q.add(ctx, MessageSent{Message: m, Awaited: awaited})
			return
		}
		h.q.add(ctx, MessageReceived{Message: m})
	case "messagesread":
		var b ReadMessageBatch
		if err := json.Unmarshal(args[0], &b); err != nil {
			bad(err)
			return
		}
		h.q.add(ctx, MessagesRead{Batch: b})
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
		h.q.add(ctx, StatusUpdated{Status: s})
	case "sendstatustouser":
		var uid string
		if err := json.Unmarshal(args[0], &uid); err != nil {
			bad(err)
			return
		}
		h.answerStatusRequest(c, uid)
		h.q.add(ctx, StatusRequested{UserID: uid})
	case "contactaddedorupdated":
		var ct Contact
		if err := json.Unmarshal(args[0], &ct); err != nil {
			bad(err)
			return
		}
		h.q.add(ctx, ContactUpdated{Contact: ct})
	case "receivesessionupdate":
		var s SessionInfo
		if err := json.Unmarshal(args[0], &s); err != nil {
			bad(err)
			return
		}
		h.noteSession(s)
		h.q.add(ctx, SessionUpdated{Session: s})
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
		h.forgetSession(id)
		h.q.add(ctx, SessionRemoved{SessionID: id, Timestamp: ts})
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
// and remembers s otherwise (for statusMemoryTTL: devices come and go).
func (h *Hub) staleStatus(s UserStatus) bool {
	k := s.UserID + "/" + s.UserSessionID
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if last, ok := h.lastStatus.get(k, now); ok && s.LastStatusChange.Before(last.Time) {
		return true
	}
	h.lastStatus.put(k, s.LastStatusChange, now)
	return false
}

// rememberKeyLocked notes a broadcast key to listen on after every connect; h.mu is held.
func (h *Hub) rememberKeyLocked(key, sessionID string, now time.Time) {
	if old, ok := h.keys.get(key, now); ok && sessionID == "" {
		sessionID = old // a status names the key without its session: keep what an update told
	}
	h.forgetKeysLocked(h.keys.put(key, sessionID, now))
	if sessionID != "" {
		h.keySession.put(sessionID, key, now) // its evictions only lose the way back to a key
	}
}

// forgetKeysLocked drops keys, also from the current connection's set; h.mu is held.
func (h *Hub) forgetKeysLocked(keys []string) {
	for _, k := range keys {
		h.keys.delete(k)
		if h.cur != nil {
			delete(h.cur.listened, k)
		}
	}
}

// noteSession learns which session a broadcast key belongs to, and drops the key of a session
// that has ended (its key would otherwise be listened on after every reconnect, forever).
func (h *Hub) noteSession(s SessionInfo) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.HasEnded {
		h.forgetSessionLocked(s.SessionID)
		if s.BroadcastKey != nil {
			h.forgetKeysLocked([]string{*s.BroadcastKey})
		}
		return
	}
	if s.BroadcastKey != nil && *s.BroadcastKey != "" {
		if _, listening := h.keys.get(*s.BroadcastKey, now); listening {
			h.rememberKeyLocked(*s.BroadcastKey, s.SessionID, now)
		}
	}
}

// forgetSession drops the broadcast key of a session that was removed.
func (h *Hub) forgetSession(sessionID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.forgetSessionLocked(sessionID)
}

func (h *Hub) forgetSessionLocked(sessionID string) {
	if k, ok := h.keySession.get(sessionID, time.Now()); ok {
		h.keySession.delete(sessionID)
		h.forgetKeysLocked([]string{k})
	}
}

// noteKeys remembers the session broadcast keys of a status; the start-up sequence subscribes
// to them.
func (h *Hub) noteKeys(s UserStatus) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, sess := range s.Sessions {
		if sess.BroadcastKey != nil && *sess.BroadcastKey != "" {
			h.rememberKeyLocked(*sess.BroadcastKey, "", now)
		}
	}
}

// listenOnNewKeys subscribes to the session broadcast keys of a status, once per connection.
func (h *Hub) listenOnNewKeys(c *hubConn, s UserStatus) {
	var keys []string
	now := time.Now()
	h.mu.Lock()
	for _, sess := range s.Sessions {
		if sess.BroadcastKey == nil || *sess.BroadcastKey == "" {
			continue
		}
		k := *sess.BroadcastKey
		h.rememberKeyLocked(k, "", now)
		if !c.listened[k] {
			c.listened[k] = true
			keys = append(keys, k)
		}
	}
	h.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	c.goWork(func(ctx context.Context) {
		for _, k := range keys {
			if err := h.invokeOn(ctx, c, nil, "ListenOnKey", k); err != nil {
				h.log.Warn("hub: ListenOnKey failed", "key", k, "err", err)
			}
		}
	})
}

// answerStatusRequest broadcasts the bot's status after SendStatusToUser. The group number
// that addresses a single contact is not known, so it goes to all contacts (which include
// the asker).
func (h *Hub) answerStatusRequest(c *hubConn, userID string) {
	c.goWork(func(ctx context.Context) {
		if err := h.invokeOn(ctx, c, nil, "BroadcastStatus", h.ownStatus(), AllContacts()); err != nil {
			h.log.Warn("hub: answering a status request failed", "for", userID, "err", err)
		}
	})
}

// hubReceiver is the library's receiver. No invocation reaches it but as a call of Ack:
// frameConn has dispatched the invocation already, in wire order, and rewrote it to Ack so
// that the library answers the completion the hub waits for.
type hubReceiver struct{}

// Ack answers an invocation that carried an invocation id (see frameConn.intercept).
func (hubReceiver) Ack() {}
