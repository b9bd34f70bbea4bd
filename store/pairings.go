package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

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

// insertPairingSQL adds a contact to a channel ($1 guild, $2 channel, $3 contact, $4 username,
// $5 created by, $6 webhook id, $7 sealed webhook token), unless the channel holds
// MaxChannelContacts already ($8) or the contact is in it: no row then. A pairing without a
// webhook of its own takes the one the channel's other pairings post through. The caller holds
// lockChannelSQL, so that two contacts added at once cannot both pass the count.
const insertPairingSQL = `insert into pairings
		(guild_id, channel_id, contact_id, contact_username, created_by, webhook_id, webhook_token)
	select $1, $2, $3, $4, $5,
		case when $6 <> '' then $6 else coalesce(w.webhook_id, '') end,
		case when $6 <> '' then $7 else coalesce(w.webhook_token, '') end
	from (select 1) one
	left join lateral (select webhook_id, webhook_token from pairings
		where channel_id = $2 and webhook_id <> '' order by id limit 1) w on true
	where (select count(*) from pairings where channel_id = $2) < $8
	on conflict (channel_id, contact_id) do nothing
	returning ` + pairingColumns

// lockChannelSQL serializes additions to one channel until the transaction ends.
const lockChannelSQL = `select pg_advisory_xact_lock(hashtextextended('pairings:' || $1, 0))`

// addPairing runs insertPairingSQL in tx; created is false when the contact was in the channel
// already (out is then that pairing), and err matches core.ErrFull when the channel is full.
func addPairing(ctx context.Context, tx pgx.Tx, p core.Pairing, sealedToken string) (out core.Pairing, created bool, err error) {
	if _, err := tx.Exec(ctx, lockChannelSQL, p.ChannelID); err != nil {
		return core.Pairing{}, false, err
	}
	rows, _ := tx.Query(ctx, insertPairingSQL, p.GuildID, p.ChannelID, p.ContactID, p.ContactUsername, p.CreatedBy,
		p.WebhookID, sealedToken, core.MaxChannelContacts)
	out, err = pgx.CollectExactlyOneRow(rows, scanPairing)
	if err == nil {
		return out, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return core.Pairing{}, false, err
	}
	rows, _ = tx.Query(ctx, `select `+pairingColumns+` from pairings where channel_id = $1 and contact_id = $2`, p.ChannelID, p.ContactID)
	out, err = pgx.CollectExactlyOneRow(rows, scanPairing)
	if errors.Is(err, pgx.ErrNoRows) {
		return core.Pairing{}, false, fmt.Errorf("the channel holds %d contacts already: %w", core.MaxChannelContacts, core.ErrFull)
	}
	return out, false, err
}

// CreatePairing adds the contact to the channel (ID and CreatedAt are assigned; without a
// webhook of its own the pairing takes the channel's) and returns it as stored, token opened.
// core.ErrConflict when the contact is in the channel already, core.ErrFull when the channel
// holds core.MaxChannelContacts.
func (s *Store) CreatePairing(ctx context.Context, p core.Pairing) (core.Pairing, error) {
	doing := fmt.Sprintf("pair channel %s with %s", p.ChannelID, p.ContactID)
	token, err := s.sealSecret(p.WebhookToken, aadWebhookToken)
	if err != nil {
		return core.Pairing{}, fmt.Errorf("store: %s: %w", doing, err)
	}
	var out core.Pairing
	var created bool
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		out, created, err = addPairing(ctx, tx, p, token)
		return err
	})
	if err != nil {
		return core.Pairing{}, fmt.Errorf("store: %s: %w", doing, err)
	}
	if !created {
		return core.Pairing{}, fmt.Errorf("store: %s: already paired: %w", doing, core.ErrConflict)
	}
	s.pairingsChanged()
	if out.WebhookToken, err = s.openSecret(out.WebhookToken, aadWebhookToken); err != nil {
		return core.Pairing{}, fmt.Errorf("store: %s: %w", doing, err)
	}
	return out, nil
}

// DeletePairings removes the channel's pairing with contactID, or every pairing of the channel
// when contactID is empty, with their queued messages and cursors, and returns what was
// removed. core.ErrNotFound when there was none.
func (s *Store) DeletePairings(ctx context.Context, channelID, contactID string) ([]core.Pairing, error) {
	const which = `p.channel_id = $1 and ($2 = '' or p.contact_id = $2)`
	var ps []core.Pairing
	err := retryDeadlocks(func() error { // with a settle of the same messages
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := lockClaimsOf(ctx, tx, which, channelID, contactID); err != nil {
				return err
			}
			rows, _ := tx.Query(ctx, `delete from pairings p where `+which+` returning `+pairingColumns, channelID, contactID)
			var err error
			ps, err = pgx.CollectRows(rows, s.scanOpenPairing)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: unpair channel %s: %w", channelID, err)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("store: unpair channel %s: %w", channelID, core.ErrNotFound)
	}
	s.pairingsChanged()
	slices.SortFunc(ps, func(a, b core.Pairing) int { return cmp.Compare(a.ID, b.ID) })
	return ps, nil
}

// lockClaimsOf takes the claim locks (relay_claims rows, see ClaimBatch) of the pairings p that
// the condition which selects, before tx deletes them. A claim holds its pairing's lock while it
// puts the pairing's messages in flight; the delete's cascades would take those messages first
// and the lock last, and the two would deadlock.
func lockClaimsOf(ctx context.Context, tx pgx.Tx, which string, args ...any) error {
	_, err := tx.Exec(ctx, `select 1 from relay_claims c join pairings p on p.id = c.pairing_id
		where `+which+` order by c.direction, c.pairing_id for update of c`, args...)
	if err != nil {
		return fmt.Errorf("lock the claims of the pairings: %w", err)
	}
	return nil
}

// PairingsByChannel returns the channel's pairings (several in a group channel), oldest first;
// none when it is not paired.
func (s *Store) PairingsByChannel(ctx context.Context, channelID string) ([]core.Pairing, error) {
	rows, _ := s.pool.Query(ctx, `select `+pairingColumns+` from pairings where channel_id = $1 order by id`, channelID)
	return s.manyPairings(rows, "list pairings of channel "+channelID)
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

// SetPairingWebhook records the webhook used to post into the channel, in each of its
// pairings. core.ErrNotFound when the channel is not paired.
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
