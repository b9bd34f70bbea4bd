package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

const pairingColumns = `id, guild_id, channel_id, contact_id, contact_username, created_by, created_at, webhook_id, webhook_token`

func scanPairing(row pgx.CollectableRow) (core.Pairing, error) {
	var p core.Pairing
	err := row.Scan(&p.ID, &p.GuildID, &p.ChannelID, &p.ContactID, &p.ContactUsername, &p.CreatedBy, &p.CreatedAt, &p.WebhookID, &p.WebhookToken)
	return p, err
}

// scanOpenPairing is scanPairing with the webhook token opened (see UseSecretKey).
func (s *Store) scanOpenPairing(row pgx.CollectableRow) (core.Pairing, error) {
	p, err := scanPairing(row)
	if err != nil {
		return p, err
	}
	p.WebhookToken, err = s.openSecret(p.WebhookToken, aadWebhookToken)
	return p, err
}

// CreatePairing stores p (ID and CreatedAt are assigned) and returns it as
// stored. core.ErrConflict when the channel is already paired.
func (s *Store) CreatePairing(ctx context.Context, p core.Pairing) (core.Pairing, error) {
	token, err := s.sealSecret(p.WebhookToken, aadWebhookToken)
	if err != nil {
		return core.Pairing{}, fmt.Errorf("store: pair channel %s: %w", p.ChannelID, err)
	}
	rows, _ := s.pool.Query(ctx, `insert into pairings
		(guild_id, channel_id, contact_id, contact_username, created_by, webhook_id, webhook_token)
		values ($1, $2, $3, $4, $5, $6, $7) returning `+pairingColumns,
		p.GuildID, p.ChannelID, p.ContactID, p.ContactUsername, p.CreatedBy, p.WebhookID, token)
	out, err := pgx.CollectExactlyOneRow(rows, scanPairing)
	if isUniqueViolation(err) {
		return core.Pairing{}, fmt.Errorf("store: pair channel %s: already paired: %w", p.ChannelID, core.ErrConflict)
	}
	if err != nil {
		return core.Pairing{}, fmt.Errorf("store: pair channel %s: %w", p.ChannelID, err)
	}
	out.WebhookToken = p.WebhookToken
	s.pairingsChanged()
	return out, nil
}

// DeletePairing removes the channel's pairing with its queued messages and
// cursor, and returns what was removed. core.ErrNotFound when it is not paired.
func (s *Store) DeletePairing(ctx context.Context, channelID string) (core.Pairing, error) {
	rows, _ := s.pool.Query(ctx, `delete from pairings where channel_id = $1 returning `+pairingColumns, channelID)
	p, err := s.onePairing(rows, "unpair channel "+channelID)
	if err == nil {
		s.pairingsChanged()
	}
	return p, err
}

// PairingByChannel returns the channel's pairing or core.ErrNotFound.
func (s *Store) PairingByChannel(ctx context.Context, channelID string) (core.Pairing, error) {
	rows, _ := s.pool.Query(ctx, `select `+pairingColumns+` from pairings where channel_id = $1`, channelID)
	return s.onePairing(rows, "get pairing of channel "+channelID)
}

// PairingByID returns the pairing or core.ErrNotFound.
func (s *Store) PairingByID(ctx context.Context, id int64) (core.Pairing, error) {
	rows, _ := s.pool.Query(ctx, `select `+pairingColumns+` from pairings where id = $1`, id)
	return s.onePairing(rows, fmt.Sprintf("get pairing %d", id))
}

// PairingsByGuild returns a guild's pairings, oldest first.
func (s *Store) PairingsByGuild(ctx context.Context, guildID string) ([]core.Pairing, error) {
	rows, _ := s.pool.Query(ctx, `select `+pairingColumns+` from pairings where guild_id = $1 order by id`, guildID)
	return s.manyPairings(rows, "list pairings of guild "+guildID)
}

// PairingsByContact returns every pairing of a Resonite contact, oldest first.
func (s *Store) PairingsByContact(ctx context.Context, contactID string) ([]core.Pairing, error) {
	rows, _ := s.pool.Query(ctx, `select `+pairingColumns+` from pairings where contact_id = $1 order by id`, contactID)
	return s.manyPairings(rows, "list pairings of contact "+contactID)
}

// Pairings returns every pairing, oldest first.
func (s *Store) Pairings(ctx context.Context) ([]core.Pairing, error) {
	rows, _ := s.pool.Query(ctx, `select `+pairingColumns+` from pairings order by id`)
	return s.manyPairings(rows, "list pairings")
}

// SetPairingWebhook records the webhook used to post into the channel.
// core.ErrNotFound when the channel is not paired.
func (s *Store) SetPairingWebhook(ctx context.Context, channelID, webhookID, webhookToken string) error {
	sealed, err := s.sealSecret(webhookToken, aadWebhookToken)
	if err != nil {
		return fmt.Errorf("store: set webhook of channel %s: %w", channelID, err)
	}
	tag, err := s.pool.Exec(ctx, `update pairings set webhook_id = $2, webhook_token = $3 where channel_id = $1`, channelID, webhookID, sealed)
	if err != nil {
		return fmt.Errorf("store: set webhook of channel %s: %w", channelID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: set webhook of channel %s: %w", channelID, core.ErrNotFound)
	}
	s.pairingsChanged()
	return nil
}

func (s *Store) onePairing(rows pgx.Rows, doing string) (core.Pairing, error) {
	p, err := pgx.CollectExactlyOneRow(rows, s.scanOpenPairing)
	if errors.Is(err, pgx.ErrNoRows) {
		return core.Pairing{}, fmt.Errorf("store: %s: %w", doing, core.ErrNotFound)
	}
	if err != nil {
		return core.Pairing{}, fmt.Errorf("store: %s: %w", doing, err)
	}
	return p, nil
}

func (s *Store) manyPairings(rows pgx.Rows, doing string) ([]core.Pairing, error) {
	ps, err := pgx.CollectRows(rows, s.scanOpenPairing)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", doing, err)
	}
	return ps, nil
}
