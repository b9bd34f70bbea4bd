package bridge

// TODO(seam): delete once store returns core types. Everything in this file only bridges
// *store.Store, which still speaks its own types on main, to bridge.Store and core; once the
// store takes and returns core types, *store.Store is a Store itself (realStore returns it as
// it is) and the two setup helpers below lose their conversions.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
	"github.com/resonite-bridge/resonite-bridge/store"
)

// realStore is the PostgreSQL store as a bridge.Store.
func realStore(st *store.Store) Store { return seamStore{st} }

// seamStore converts types at the seam; methods whose signatures already match are promoted.
type seamStore struct{ *store.Store }

func seamErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %w", core.ErrNotFound, err)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %w", core.ErrConflict, err)
	}
	return err
}

func seamPairings(ps []store.Pairing, err error) ([]core.Pairing, error) {
	out := make([]core.Pairing, len(ps))
	for i, p := range ps {
		out[i] = core.Pairing(p)
	}
	return out, seamErr(err)
}

func seamRow(m store.Message) core.OutboxRow {
	return core.OutboxRow{
		ID: m.ID, Direction: core.Direction(m.Direction), SourceID: m.SourceID, PairingID: m.PairingID,
		TargetID: m.TargetID, Payload: m.Payload, SourceTime: m.SourceTime, State: core.State(m.State),
		Attempts: m.Attempts, Claims: m.Claims, NextAttemptAt: m.NextAttemptAt, LastError: m.LastError,
		EnqueuedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, DeliveredAt: m.DeliveredAt,
	}
}

func (s seamStore) Pairings(ctx context.Context) ([]core.Pairing, error) {
	return seamPairings(s.Store.Pairings(ctx))
}

func (s seamStore) PairingsByContact(ctx context.Context, contactID string) ([]core.Pairing, error) {
	return seamPairings(s.Store.PairingsByContact(ctx, contactID))
}

func (s seamStore) PairingByChannel(ctx context.Context, channelID string) (core.Pairing, error) {
	p, err := s.Store.PairingByChannel(ctx, channelID)
	return core.Pairing(p), seamErr(err)
}

func (s seamStore) PairingByID(ctx context.Context, id int64) (core.Pairing, error) {
	p, err := s.Store.PairingByID(ctx, id)
	return core.Pairing(p), seamErr(err)
}

func (s seamStore) SubscriptionsForContact(ctx context.Context, contactID string) ([]core.Subscription, error) {
	subs, err := s.Store.SubscriptionsForContact(ctx, contactID)
	out := make([]core.Subscription, len(subs))
	for i, sub := range subs {
		out[i] = core.Subscription(sub)
	}
	return out, seamErr(err)
}

func (s seamStore) Enqueue(ctx context.Context, m core.OutboxRow) (int64, bool, error) {
	id, inserted, err := s.Store.Enqueue(ctx, store.Message{
		Direction: store.Direction(m.Direction), SourceID: m.SourceID, PairingID: m.PairingID, TargetID: m.TargetID,
		Payload: m.Payload, SourceTime: m.SourceTime, NextAttemptAt: m.NextAttemptAt,
	})
	return id, inserted, seamErr(err)
}

func (s seamStore) Claim(ctx context.Context, dir core.Direction, limit int, lease time.Duration) ([]core.OutboxRow, error) {
	ms, err := s.Store.Claim(ctx, store.Direction(dir), limit, lease)
	out := make([]core.OutboxRow, len(ms))
	for i, m := range ms {
		out[i] = seamRow(m)
	}
	return out, seamErr(err)
}

func (s seamStore) NextDue(ctx context.Context, dir core.Direction) (time.Time, bool, error) {
	return s.Store.NextDue(ctx, store.Direction(dir))
}

func (s seamStore) MessageBySource(ctx context.Context, dir core.Direction, sourceID string) (core.OutboxRow, error) {
	m, err := s.Store.MessageBySource(ctx, store.Direction(dir), sourceID)
	return seamRow(m), seamErr(err)
}

func (s seamStore) MessageByTarget(ctx context.Context, dir core.Direction, targetID string) (core.OutboxRow, error) {
	m, err := s.Store.MessageByTarget(ctx, store.Direction(dir), targetID)
	return seamRow(m), seamErr(err)
}

// createPairing stores p (the store assigns ID and CreatedAt).
func createPairing(t testing.TB, st *store.Store, p core.Pairing) core.Pairing {
	t.Helper()
	out, err := st.CreatePairing(context.Background(), store.Pairing(p))
	if err != nil {
		t.Fatalf("CreatePairing(%s): %v", p.ChannelID, err)
	}
	return core.Pairing(out)
}

// addSubscription stores a friend-online subscription.
func addSubscription(t testing.TB, st *store.Store, sub core.Subscription) {
	t.Helper()
	if _, err := st.AddSubscription(context.Background(), store.Subscription(sub)); err != nil {
		t.Fatalf("AddSubscription(%s, %s): %v", sub.ChannelID, sub.ContactID, err)
	}
}
