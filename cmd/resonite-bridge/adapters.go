package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bot"
	"github.com/resonite-bridge/resonite-bridge/bridge"
	"github.com/resonite-bridge/resonite-bridge/resonite"
	"github.com/resonite-bridge/resonite-bridge/store"
)

// storeAdapter gives *store.Store the shapes bridge.Store and bot.Store ask for: the same rows
// under the core's types, and the store's sentinel errors matched by the core's.
type storeAdapter struct{ s *store.Store }

var (
	_ bridge.Store = storeAdapter{}
	_ bot.Store    = storeAdapter{}
)

// coreErr keeps the store's error and adds the sentinel the caller matches on.
func coreErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", bridge.ErrNotFound, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", bot.ErrAlreadyPaired, err)
	}
	return err
}

func toCorePairing(p store.Pairing) bridge.Pairing {
	return bridge.Pairing{
		ID: p.ID, GuildID: p.GuildID, ChannelID: p.ChannelID, ContactID: p.ContactID,
		ContactUsername: p.ContactUsername, CreatedBy: p.CreatedBy, CreatedAt: p.CreatedAt,
		WebhookID: p.WebhookID, WebhookToken: p.WebhookToken,
	}
}

func toCorePairings(ps []store.Pairing, err error) ([]bridge.Pairing, error) {
	if err != nil {
		return nil, coreErr(err)
	}
	out := make([]bridge.Pairing, len(ps))
	for i, p := range ps {
		out[i] = toCorePairing(p)
	}
	return out, nil
}

func onePairing(p store.Pairing, err error) (bridge.Pairing, error) {
	if err != nil {
		return bridge.Pairing{}, coreErr(err)
	}
	return toCorePairing(p), nil
}

func toCoreSubscriptions(ss []store.Subscription, err error) ([]bridge.Subscription, error) {
	if err != nil {
		return nil, coreErr(err)
	}
	out := make([]bridge.Subscription, len(ss))
	for i, s := range ss {
		out[i] = bridge.Subscription{ID: s.ID, GuildID: s.GuildID, ChannelID: s.ChannelID, ContactID: s.ContactID,
			CreatedBy: s.CreatedBy, CreatedAt: s.CreatedAt}
	}
	return out, nil
}

func toCoreMessage(m store.Message) bridge.Message {
	return bridge.Message{
		ID: m.ID, Direction: bridge.Direction(m.Direction), SourceID: m.SourceID, PairingID: m.PairingID,
		TargetID: m.TargetID, Payload: m.Payload, State: bridge.State(m.State), Attempts: m.Attempts,
		Claims: m.Claims, NextAttemptAt: m.NextAttemptAt, LastError: m.LastError, CreatedAt: m.SourceTime,
		EnqueuedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, DeliveredAt: m.DeliveredAt,
	}
}

func oneMessage(m store.Message, err error) (bridge.Message, error) {
	if err != nil {
		return bridge.Message{}, coreErr(err)
	}
	return toCoreMessage(m), nil
}

func (a storeAdapter) Pairings(ctx context.Context) ([]bridge.Pairing, error) {
	return toCorePairings(a.s.Pairings(ctx))
}

func (a storeAdapter) PairingByChannel(ctx context.Context, channelID string) (bridge.Pairing, error) {
	return onePairing(a.s.PairingByChannel(ctx, channelID))
}

func (a storeAdapter) PairingsByContact(ctx context.Context, contactID string) ([]bridge.Pairing, error) {
	return toCorePairings(a.s.PairingsByContact(ctx, contactID))
}

func (a storeAdapter) PairingByID(ctx context.Context, id int64) (bridge.Pairing, error) {
	return onePairing(a.s.PairingByID(ctx, id))
}

func (a storeAdapter) PairingsByGuild(ctx context.Context, guildID string) ([]bridge.Pairing, error) {
	return toCorePairings(a.s.PairingsByGuild(ctx, guildID))
}

func (a storeAdapter) CreatePairing(ctx context.Context, p bridge.Pairing) (bridge.Pairing, error) {
	return onePairing(a.s.CreatePairing(ctx, store.Pairing{
		GuildID: p.GuildID, ChannelID: p.ChannelID, ContactID: p.ContactID, ContactUsername: p.ContactUsername,
		CreatedBy: p.CreatedBy, WebhookID: p.WebhookID, WebhookToken: p.WebhookToken,
	}))
}

func (a storeAdapter) DeletePairing(ctx context.Context, channelID string) (bridge.Pairing, error) {
	return onePairing(a.s.DeletePairing(ctx, channelID))
}

func (a storeAdapter) SetPairingWebhook(ctx context.Context, channelID, webhookID, webhookToken string) error {
	return coreErr(a.s.SetPairingWebhook(ctx, channelID, webhookID, webhookToken))
}

func (a storeAdapter) AddSubscription(ctx context.Context, s bridge.Subscription) (bool, error) {
	created, err := a.s.AddSubscription(ctx, store.Subscription{GuildID: s.GuildID, ChannelID: s.ChannelID, ContactID: s.ContactID, CreatedBy: s.CreatedBy})
	return created, coreErr(err)
}

func (a storeAdapter) RemoveSubscription(ctx context.Context, channelID, contactID string) (bool, error) {
	removed, err := a.s.RemoveSubscription(ctx, channelID, contactID)
	return removed, coreErr(err)
}

func (a storeAdapter) SubscriptionsByChannel(ctx context.Context, channelID string) ([]bridge.Subscription, error) {
	return toCoreSubscriptions(a.s.SubscriptionsByChannel(ctx, channelID))
}

func (a storeAdapter) SubscriptionsForContact(ctx context.Context, contactID string) ([]bridge.Subscription, error) {
	return toCoreSubscriptions(a.s.SubscriptionsForContact(ctx, contactID))
}

func (a storeAdapter) Enqueue(ctx context.Context, m bridge.Message) (int64, bool, error) {
	id, inserted, err := a.s.Enqueue(ctx, store.Message{
		Direction: store.Direction(m.Direction), SourceID: m.SourceID, PairingID: m.PairingID, TargetID: m.TargetID,
		Payload: m.Payload, SourceTime: m.CreatedAt, NextAttemptAt: m.NextAttemptAt,
	})
	return id, inserted, coreErr(err)
}

func (a storeAdapter) Claim(ctx context.Context, dir bridge.Direction, limit int, lease time.Duration) ([]bridge.Message, error) {
	ms, err := a.s.Claim(ctx, store.Direction(dir), limit, lease)
	if err != nil {
		return nil, coreErr(err)
	}
	out := make([]bridge.Message, len(ms))
	for i, m := range ms {
		out[i] = toCoreMessage(m)
	}
	return out, nil
}

func (a storeAdapter) MarkDelivered(ctx context.Context, id int64, targetID string) error {
	return coreErr(a.s.MarkDelivered(ctx, id, targetID))
}

func (a storeAdapter) Retry(ctx context.Context, id int64, reason string) (time.Time, error) {
	next, err := a.s.Retry(ctx, id, reason)
	return next, coreErr(err)
}

func (a storeAdapter) Postpone(ctx context.Context, id int64, until time.Time) error {
	return coreErr(a.s.Postpone(ctx, id, until))
}

func (a storeAdapter) Fail(ctx context.Context, id int64, reason string) error {
	return coreErr(a.s.Fail(ctx, id, reason))
}

func (a storeAdapter) RescueExpired(ctx context.Context) (int, error) {
	n, err := a.s.RescueExpired(ctx)
	return n, coreErr(err)
}

func (a storeAdapter) NextDue(ctx context.Context, dir bridge.Direction) (time.Time, bool, error) {
	t, ok, err := a.s.NextDue(ctx, store.Direction(dir))
	return t, ok, coreErr(err)
}

func (a storeAdapter) MessageBySource(ctx context.Context, dir bridge.Direction, sourceID string) (bridge.Message, error) {
	return oneMessage(a.s.MessageBySource(ctx, store.Direction(dir), sourceID))
}

func (a storeAdapter) MessageByTarget(ctx context.Context, dir bridge.Direction, targetID string) (bridge.Message, error) {
	return oneMessage(a.s.MessageByTarget(ctx, store.Direction(dir), targetID))
}

func (a storeAdapter) DiscordCursor(ctx context.Context, pairingID int64) (string, error) {
	id, err := a.s.DiscordCursor(ctx, pairingID)
	return id, coreErr(err)
}

func (a storeAdapter) AdvanceDiscordCursor(ctx context.Context, pairingID int64, messageID string) error {
	return coreErr(a.s.AdvanceDiscordCursor(ctx, pairingID, messageID))
}

func (a storeAdapter) ResoniteCursor(ctx context.Context, accountID string) (time.Time, error) {
	t, err := a.s.ResoniteCursor(ctx, accountID)
	return t, coreErr(err)
}

func (a storeAdapter) AdvanceResoniteCursor(ctx context.Context, accountID string, t time.Time) error {
	return coreErr(a.s.AdvanceResoniteCursor(ctx, accountID, t))
}

// sessionStore persists the Resonite login in the account row, so that a restart reuses a
// live token instead of logging in again.
type sessionStore struct{ s *store.Store }

var _ resonite.SessionStore = sessionStore{}

func (ss sessionStore) LoadSession(ctx context.Context) (*resonite.UserSession, error) {
	userID, token, expire, ok, err := ss.s.AccountSession(ctx)
	if err != nil || !ok {
		return nil, err
	}
	// The bridge always logs in with rememberMe, so an extension pushes the expiry by 30 days.
	return &resonite.UserSession{UserID: userID, Token: token, Expire: resonite.NewTime(expire), RememberMe: true}, nil
}

func (ss sessionStore) SaveSession(ctx context.Context, u resonite.UserSession) error {
	return ss.s.SaveAccountSession(ctx, u.UserID, u.Token, u.Expire.Time)
}

func (ss sessionStore) ClearSession(ctx context.Context) error { return ss.s.ClearAccountSession(ctx) }

// historyAdapter gives the REST client's message history the bridge's query type.
type historyAdapter struct{ c *resonite.Client }

func (h historyAdapter) Messages(ctx context.Context, q bridge.MessageQuery) ([]resonite.Message, error) {
	return h.c.Messages(ctx, resonite.MessageQuery{MaxItems: q.MaxItems, FromTime: q.FromTime, User: q.User, Unread: q.Unread})
}

func (h historyAdapter) UserID() string { return h.c.UserID() }

// dbAdapter is the daemon's own view of the store (migrate, ping, queue depth, stored session),
// and the owner of the instance lock once wire took it.
type dbAdapter struct {
	s    *store.Store
	lock *store.InstanceLock
}

var _ database = (*dbAdapter)(nil)

func (d *dbAdapter) Migrate(ctx context.Context) ([]string, error) { return d.s.Migrate(ctx) }
func (d *dbAdapter) Ping(ctx context.Context) error                { return d.s.Ping(ctx) }

// Close gives the instance lock up and closes the pool.
func (d *dbAdapter) Close() {
	if d.lock != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d.lock.Release(ctx)
		cancel()
	}
	d.s.Close()
}

func (d *dbAdapter) QueueDepth(ctx context.Context) (int64, error) {
	st, err := d.s.QueueStats(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, m := range []map[store.Direction]int{st.Pending, st.InFlight} {
		for _, v := range m {
			n += int64(v)
		}
	}
	return n, nil
}

// minSessionLife is how long a stored session must still be valid to start without credentials.
const minSessionLife = time.Hour

func (d *dbAdapter) HasValidSession(ctx context.Context) (bool, error) {
	_, _, expire, ok, err := d.s.AccountSession(ctx)
	if err != nil {
		return false, err
	}
	return ok && time.Until(expire) > minSessionLife, nil
}
