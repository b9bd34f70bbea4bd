package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

const subscriptionColumns = `id, guild_id, channel_id, contact_id, created_by, created_at`

func scanSubscription(row pgx.CollectableRow) (core.Subscription, error) {
	var s core.Subscription
	err := row.Scan(&s.ID, &s.GuildID, &s.ChannelID, &s.ContactID, &s.CreatedBy, &s.CreatedAt)
	return s, err
}

// AddSubscription stores sub; created is false when the channel already had
// this contact (nothing changes then).
func (s *Store) AddSubscription(ctx context.Context, sub core.Subscription) (bool, error) {
	tag, err := s.pool.Exec(ctx, `insert into subscriptions (guild_id, channel_id, contact_id, created_by)
		values ($1, $2, $3, $4) on conflict (channel_id, contact_id) do nothing`,
		sub.GuildID, sub.ChannelID, sub.ContactID, sub.CreatedBy)
	if err != nil {
		return false, fmt.Errorf("store: subscribe channel %s to %s: %w", sub.ChannelID, sub.ContactID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// RemoveSubscription deletes one; removed is false when there was none.
func (s *Store) RemoveSubscription(ctx context.Context, channelID, contactID string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `delete from subscriptions where channel_id = $1 and contact_id = $2`, channelID, contactID)
	if err != nil {
		return false, fmt.Errorf("store: unsubscribe channel %s from %s: %w", channelID, contactID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// SubscriptionsByChannel lists a channel's subscriptions, oldest first.
func (s *Store) SubscriptionsByChannel(ctx context.Context, channelID string) ([]core.Subscription, error) {
	rows, _ := s.pool.Query(ctx, `select `+subscriptionColumns+` from subscriptions where channel_id = $1 order by id`, channelID)
	subs, err := pgx.CollectRows(rows, scanSubscription)
	if err != nil {
		return nil, fmt.Errorf("store: list subscriptions of channel %s: %w", channelID, err)
	}
	return subs, nil
}

// SubscriptionsForContact returns the subscriptions that announce contactID:
// its own and the core.AllContacts ones, one per channel (the specific one wins),
// so a channel subscribed both ways is announced once; only in the guilds where
// the contact consented (see consent.go), so "all" never announces a stranger.
func (s *Store) SubscriptionsForContact(ctx context.Context, contactID string) ([]core.Subscription, error) {
	rows, _ := s.pool.Query(ctx, `select `+subscriptionColumns+` from (
			select distinct on (channel_id) `+subscriptionColumns+` from subscriptions
			where (contact_id = $1 or contact_id = $2)
				and exists (select 1 from consents c where c.contact_id = $1 and c.guild_id = subscriptions.guild_id)
			order by channel_id, contact_id = $2, id
		) s order by id`, contactID, core.AllContacts)
	subs, err := pgx.CollectRows(rows, scanSubscription)
	if err != nil {
		return nil, fmt.Errorf("store: list subscriptions for contact %s: %w", contactID, err)
	}
	return subs, nil
}
