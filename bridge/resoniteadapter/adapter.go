// Package resoniteadapter adapts the Resonite client (package resonite) to the bridge: it turns
// hub events and REST answers into core types, sends what the bridge asks in Resonite's terms,
// classifies Resonite's failures as core delivery outcomes, and owns the loop that feeds hub
// events to the bridge. It is to Resonite what package bot is to Discord.
package resoniteadapter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/resonite"
)

// Adapter is the bridge's Resonite: sends, history, sessions and the REST look-ups of the slash
// commands. It is safe for concurrent use.
type Adapter struct {
	client *resonite.Client
	hub    *resonite.Hub

	mu       sync.Mutex
	sessions map[string]core.Session // by id, as the hub reported them; ended ones are dropped
}

// maxSessions bounds the session cache: a hub that reports sessions without ever ending them
// must not grow the daemon without limit.
const maxSessions = 10_000

// New adapts a logged-in (or logging-in) client and its hub.
func New(client *resonite.Client, hub *resonite.Hub) *Adapter {
	return &Adapter{client: client, hub: hub, sessions: map[string]core.Session{}}
}

// UserID is the bridge account's user id.
func (a *Adapter) UserID() string { return a.client.UserID() }

// SendText sends text to a contact under id and returns once the hub confirmed it.
func (a *Adapter) SendText(ctx context.Context, id, contactID, text string) error {
	me := a.client.UserID()
	now := resonite.NewTime(time.Now())
	err := a.hub.SendMessage(ctx, resonite.Message{
		ID: id, OwnerID: me, SenderID: me, RecipientID: contactID,
		MessageType: resonite.MessageText, Content: text, SendTime: now, LastUpdateTime: now,
	})
	return classify(err)
}

// MarkRead marks messages of a sender read.
func (a *Adapter) MarkRead(ctx context.Context, senderID string, ids []string) error {
	return classify(a.hub.MarkMessagesRead(ctx, resonite.MarkReadBatch{
		SenderID: &senderID, IDs: ids, ReadTime: resonite.NewTime(time.Now()),
	}))
}

// AcceptContact accepts a contact request.
func (a *Adapter) AcceptContact(ctx context.Context, contactID string) error {
	c := resonite.Contact{
		ID: contactID, OwnerID: a.client.UserID(),
		ContactStatus: resonite.ContactAccepted, IsAccepted: true,
	}
	// The request's own contact row carries the username the cloud expects back.
	if list, err := a.client.Contacts(ctx); err == nil {
		for _, x := range list {
			if x.ID == contactID {
				c = x
				c.ContactStatus, c.UserStatus = resonite.ContactAccepted, nil
				if c.OwnerID == "" {
					c.OwnerID = a.client.UserID()
				}
				break
			}
		}
	}
	ok, err := a.hub.UpdateContact(ctx, c)
	if err != nil {
		return classify(err)
	}
	if !ok {
		return fmt.Errorf("the hub refused to accept %s", contactID)
	}
	return nil
}

// Messages returns the newest max messages received since since (all with -1), newest first.
func (a *Adapter) Messages(ctx context.Context, since time.Time, max int) ([]core.ContactMessage, error) {
	ms, err := a.client.Messages(ctx, resonite.MessageQuery{MaxItems: max, FromTime: since})
	if err != nil {
		return nil, classify(err)
	}
	out := make([]core.ContactMessage, len(ms))
	for i, m := range ms {
		out[i] = message(m)
	}
	return out, nil
}

// Session finds the session a device is in among those the hub reported.
func (a *Adapter) Session(hint string) (core.Session, bool) {
	hash, salt, ok := strings.Cut(hint, hintSep)
	if !ok || hash == "" {
		return core.Session{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, s := range a.sessions {
		if strings.EqualFold(resonite.SessionHash(id, salt), hash) {
			return s, true
		}
	}
	return core.Session{}, false
}

func (a *Adapter) setSession(s resonite.SessionInfo) {
	if s.SessionID == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.HasEnded {
		delete(a.sessions, s.SessionID)
		return
	}
	if _, known := a.sessions[s.SessionID]; !known && len(a.sessions) >= maxSessions {
		for id := range a.sessions { // any one: a full cache is already a degraded state
			delete(a.sessions, id)
			break
		}
	}
	a.sessions[s.SessionID] = session(s)
}

func (a *Adapter) removeSession(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.sessions, id)
}

// The REST look-ups of the slash commands. A missing user is core.ErrNotFound.

// Sessions lists public sessions.
func (a *Adapter) Sessions(ctx context.Context, q core.SessionQuery) ([]core.Session, error) {
	list, err := a.client.Sessions(ctx, resonite.SessionQuery{
		Name: q.Name, HostName: q.Host, MinActiveUsers: q.MinActiveUsers, IncludeEmptyHeadless: q.IncludeEmptyHeadless,
	})
	if err != nil {
		return nil, classify(err)
	}
	out := make([]core.Session, len(list))
	for i, s := range list {
		out[i] = session(s)
	}
	return out, nil
}

// User fetches a user by id.
func (a *Adapter) User(ctx context.Context, id string) (core.User, error) {
	u, err := a.client.User(ctx, id)
	if err != nil {
		return core.User{}, classify(err)
	}
	return user(u), nil
}

// UserByName fetches a user by username.
func (a *Adapter) UserByName(ctx context.Context, name string) (core.User, error) {
	u, err := a.client.UserByName(ctx, name)
	if err != nil {
		return core.User{}, classify(err)
	}
	return user(u), nil
}

// SearchUsers finds users whose name contains name.
func (a *Adapter) SearchUsers(ctx context.Context, name string) ([]core.User, error) {
	list, err := a.client.SearchUsers(ctx, name)
	if err != nil {
		return nil, classify(err)
	}
	out := make([]core.User, len(list))
	for i, u := range list {
		out[i] = user(u)
	}
	return out, nil
}

// Contacts lists the bridge account's contacts.
func (a *Adapter) Contacts(ctx context.Context) ([]core.Contact, error) {
	list, err := a.client.Contacts(ctx)
	if err != nil {
		return nil, classify(err)
	}
	out := make([]core.Contact, len(list))
	for i, c := range list {
		out[i] = contact(c)
	}
	return out, nil
}

// classify turns Resonite's failures into core delivery outcomes: rate limits and outages of
// the cloud (hub not connected, 5xx) wait without spending an attempt; 4xx answers other than
// authentication, timeouts and rate limits cannot be fixed by retrying; a missing resource is
// core.ErrNotFound too. The original error stays wrapped.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, resonite.ErrNotFound) {
		err = fmt.Errorf("%w: %w", core.ErrNotFound, err)
	}
	if errors.Is(err, resonite.ErrHubNotConnected) || errors.Is(err, resonite.ErrHubClosed) {
		return core.Unavailable(err)
	}
	var api *resonite.APIError
	if !errors.As(err, &api) {
		return err
	}
	switch {
	case api.Status == http.StatusTooManyRequests:
		return core.RetryAfter(max(api.RetryAfter, time.Second), err)
	case api.Status >= 500:
		return core.Unavailable(err)
	case api.Status == http.StatusUnauthorized, api.Status == http.StatusForbidden, api.Status == http.StatusRequestTimeout:
		return err
	case api.Status >= 400:
		return core.Permanent(err)
	}
	return err
}

// logger names the component in every line.
func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return l.With("component", "resonite-events")
}
