package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// Consent per contact and guild (migrations/004_consent.sql). A pairing or a subscription of a
// contact is made only once the contact consented in its guild; withdrawing removes them in
// the same transaction, so no pairing outlives its consent.

// ConsentedContacts returns the Resonite user ids of the contacts that consented in the guild.
func (s *Store) ConsentedContacts(ctx context.Context, guildID string) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `select contact_id from consents where guild_id = $1 order by contact_id`, guildID)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: list consented contacts of guild %s: %w", guildID, err)
	}
	return ids, nil
}

// GrantConsent records that the contact consented in the guild (an operator's or a test's
// shortcut; contacts consent with a code, see UseConsentCode).
func (s *Store) GrantConsent(ctx context.Context, contactID, guildID, guildName string) error {
	_, err := s.pool.Exec(ctx, `insert into consents (contact_id, guild_id, guild_name) values ($1, $2, $3)
		on conflict (contact_id, guild_id) do nothing`, contactID, guildID, guildName)
	if err != nil {
		return fmt.Errorf("store: record consent of %s in guild %s: %w", contactID, guildID, err)
	}
	return nil
}

// ConsentsByContact returns the guilds the contact consented in, oldest first, with the
// channels it is paired with and announced in there.
func (s *Store) ConsentsByContact(ctx context.Context, contactID string) ([]core.GuildConsent, error) {
	rows, _ := s.pool.Query(ctx, `select c.guild_id, c.guild_name,
			coalesce((select array_agg(p.channel_id order by p.id) from pairings p
				where p.contact_id = c.contact_id and p.guild_id = c.guild_id), '{}'),
			coalesce((select array_agg(x.channel_id order by x.id) from subscriptions x
				where x.contact_id = c.contact_id and x.guild_id = c.guild_id), '{}')
		from consents c where c.contact_id = $1 order by c.granted_at, c.guild_id`, contactID)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (core.GuildConsent, error) {
		var g core.GuildConsent
		return g, r.Scan(&g.GuildID, &g.GuildName, &g.Pairings, &g.Subscriptions)
	})
	if err != nil {
		return nil, fmt.Errorf("store: list consents of %s: %w", contactID, err)
	}
	return out, nil
}

const consentRequestColumns = `id, kind, guild_id, guild_name, channel_id, channel_name, contact_id, contact_username, created_by, created_at, expires_at`

func scanConsentRequest(row pgx.CollectableRow) (core.ConsentRequest, error) {
	var r core.ConsentRequest
	err := row.Scan(&r.ID, &r.Kind, &r.GuildID, &r.GuildName, &r.ChannelID, &r.ChannelName, &r.ContactID,
		&r.ContactUsername, &r.CreatedBy, &r.CreatedAt, &r.ExpiresAt)
	return r, err
}

// consentRowsKept is how long used and expired requests stay, so that a reused or expired code
// is told apart from a wrong one.
const consentRowsKept = 24 * time.Hour

// CreateConsentRequest stores a waiting request with the hash of its code, valid for ttl. A
// waiting request of the same channel, contact and kind is replaced (a new code, a new
// expiry). core.ErrConflict when another request of the contact has the same code hash: the
// caller draws another code.
func (s *Store) CreateConsentRequest(ctx context.Context, r core.ConsentRequest, codeHash []byte, ttl time.Duration) (core.ConsentRequest, error) {
	var out core.ConsentRequest
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `delete from consent_requests where (used_at is not null or expires_at < now()) and created_at < now() - $1::interval`,
			consentRowsKept); err != nil {
			return fmt.Errorf("prune old requests: %w", err)
		}
		if _, err := tx.Exec(ctx, `delete from consent_requests where channel_id = $1 and contact_id = $2 and kind = $3 and used_at is null`,
			r.ChannelID, r.ContactID, r.Kind); err != nil {
			return fmt.Errorf("replace the waiting request: %w", err)
		}
		rows, _ := tx.Query(ctx, `insert into consent_requests
			(kind, guild_id, guild_name, channel_id, channel_name, contact_id, contact_username, created_by, code_hash, expires_at)
			values ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + $10::interval) returning `+consentRequestColumns,
			r.Kind, r.GuildID, r.GuildName, r.ChannelID, r.ChannelName, r.ContactID, r.ContactUsername, r.CreatedBy, codeHash, ttl)
		var err error
		out, err = pgx.CollectExactlyOneRow(rows, scanConsentRequest)
		return err
	})
	if isUniqueViolation(err) {
		return core.ConsentRequest{}, fmt.Errorf("store: store consent request for %s: code in use: %w", r.ContactID, core.ErrConflict)
	}
	if err != nil {
		return core.ConsentRequest{}, fmt.Errorf("store: store consent request for %s: %w", r.ContactID, err)
	}
	return out, nil
}

// ConsentRequestsByGuild returns the guild's requests still waiting (unused, not expired),
// oldest first.
func (s *Store) ConsentRequestsByGuild(ctx context.Context, guildID string) ([]core.ConsentRequest, error) {
	rows, _ := s.pool.Query(ctx, `select `+consentRequestColumns+` from consent_requests
		where guild_id = $1 and used_at is null and expires_at > now() order by id`, guildID)
	out, err := pgx.CollectRows(rows, scanConsentRequest)
	if err != nil {
		return nil, fmt.Errorf("store: list consent requests of guild %s: %w", guildID, err)
	}
	return out, nil
}

// CancelConsentRequests deletes the channel's waiting requests, only those naming contactID
// when it is not empty, and returns how many went.
func (s *Store) CancelConsentRequests(ctx context.Context, channelID, contactID string) (int, error) {
	tag, err := s.pool.Exec(ctx, `delete from consent_requests where channel_id = $1 and used_at is null
		and ($2 = '' or contact_id = $2)`, channelID, contactID)
	if err != nil {
		return 0, fmt.Errorf("store: cancel consent requests of channel %s: %w", channelID, err)
	}
	return int(tag.RowsAffected()), nil
}

// UseConsentCode takes a contact's code (by its hash). A valid one records the contact's
// consent in the request's guild and makes every request of the contact still waiting there
// active: pairings and subscriptions are created in the same transaction. Wrong codes count
// against the contact: after maxFailures within window, codes are not checked at all until the
// window is over (CodeThrottled). Expired and used codes change nothing.
func (s *Store) UseConsentCode(ctx context.Context, contactID string, codeHash []byte, maxFailures int, window time.Duration) (core.CodeResult, error) {
	var res core.CodeResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		res = core.CodeResult{}
		// The contact's failure row is the lock that serialises its attempts.
		if _, err := tx.Exec(ctx, `insert into consent_failures (contact_id) values ($1) on conflict do nothing`, contactID); err != nil {
			return fmt.Errorf("count attempts: %w", err)
		}
		var failures int
		var windowEnd time.Time
		err := tx.QueryRow(ctx, `update consent_failures set
				failures = case when window_start + $2::interval <= now() then 0 else failures end,
				window_start = case when window_start + $2::interval <= now() then now() else window_start end
			where contact_id = $1 returning failures, window_start + $2::interval`, contactID, window).Scan(&failures, &windowEnd)
		if err != nil {
			return fmt.Errorf("count attempts: %w", err)
		}
		if failures >= maxFailures {
			res.Outcome, res.RetryAt = core.CodeThrottled, windowEnd
			return nil
		}
		var req core.ConsentRequest
		var used bool
		var expired bool
		rows, _ := tx.Query(ctx, `select `+consentRequestColumns+`, used_at is not null, expires_at <= now()
			from consent_requests where contact_id = $1 and code_hash = $2 for update`, contactID, codeHash)
		req, err = pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (core.ConsentRequest, error) {
			var c core.ConsentRequest
			err := r.Scan(&c.ID, &c.Kind, &c.GuildID, &c.GuildName, &c.ChannelID, &c.ChannelName, &c.ContactID,
				&c.ContactUsername, &c.CreatedBy, &c.CreatedAt, &c.ExpiresAt, &used, &expired)
			return c, err
		})
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			failures++
			if _, err := tx.Exec(ctx, `update consent_failures set failures = $2 where contact_id = $1`, contactID, failures); err != nil {
				return fmt.Errorf("count a wrong code: %w", err)
			}
			res.Outcome = core.CodeWrong
			if failures >= maxFailures {
				res.RetryAt = windowEnd
			}
			return nil
		case err != nil:
			return fmt.Errorf("look up the code: %w", err)
		}
		res.GuildID, res.GuildName = req.GuildID, req.GuildName
		switch {
		case used:
			res.Outcome = core.CodeUsed
			return nil
		case expired:
			res.Outcome = core.CodeExpired
			return nil
		}
		if _, err := tx.Exec(ctx, `insert into consents (contact_id, guild_id, guild_name) values ($1, $2, $3)
			on conflict (contact_id, guild_id) do update set guild_name = excluded.guild_name`,
			contactID, req.GuildID, req.GuildName); err != nil {
			return fmt.Errorf("record consent: %w", err)
		}
		// Every request of the contact waiting in this guild, the one of the code included.
		rows, _ = tx.Query(ctx, `update consent_requests set used_at = now()
			where contact_id = $1 and guild_id = $2 and used_at is null and (expires_at > now() or id = $3)
			returning `+consentRequestColumns, contactID, req.GuildID, req.ID)
		reqs, err := pgx.CollectRows(rows, scanConsentRequest)
		if err != nil {
			return fmt.Errorf("activate waiting requests: %w", err)
		}
		for _, r := range reqs {
			tag, err := activate(ctx, tx, r)
			if err != nil {
				return err
			}
			res.Activated = append(res.Activated, core.Activation{Request: r, Created: tag})
		}
		if _, err := tx.Exec(ctx, `delete from consent_failures where contact_id = $1`, contactID); err != nil {
			return fmt.Errorf("reset attempts: %w", err)
		}
		res.Outcome = core.CodeAccepted
		return nil
	})
	if err != nil {
		return core.CodeResult{}, fmt.Errorf("store: use consent code of %s: %w", contactID, err)
	}
	if len(res.Activated) > 0 {
		s.pairingsChanged()
	}
	return res, nil
}

// activate makes the pairing or subscription a request waited for; false when it could not be
// made (the channel holds core.MaxChannelContacts already) or, for a subscription, existed
// already. A contact already in the channel counts as made.
func activate(ctx context.Context, tx pgx.Tx, r core.ConsentRequest) (bool, error) {
	doing := fmt.Sprintf("activate request %d (%s of channel %s)", r.ID, r.Kind, r.ChannelID)
	switch r.Kind {
	case core.ConsentPairing:
		_, _, err := addPairing(ctx, tx, core.Pairing{GuildID: r.GuildID, ChannelID: r.ChannelID, ContactID: r.ContactID,
			ContactUsername: r.ContactUsername, CreatedBy: r.CreatedBy}, "")
		if errors.Is(err, core.ErrFull) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s: %w", doing, err)
		}
		return true, nil
	case core.ConsentSubscription:
		tag, err := tx.Exec(ctx, `insert into subscriptions (guild_id, channel_id, contact_id, created_by)
			values ($1, $2, $3, $4) on conflict do nothing`, r.GuildID, r.ChannelID, r.ContactID, r.CreatedBy)
		if err != nil {
			return false, fmt.Errorf("%s: %w", doing, err)
		}
		return tag.RowsAffected() == 1, nil
	}
	return false, fmt.Errorf("activate request %d: unknown kind %q", r.ID, r.Kind)
}

// WithdrawConsent removes every consent of the contact, with its pairings (and their queued
// messages), its own subscriptions and its waiting requests, in one transaction.
func (s *Store) WithdrawConsent(ctx context.Context, contactID string) (core.Withdrawal, error) {
	var w core.Withdrawal
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		w = core.Withdrawal{}
		rows, _ := tx.Query(ctx, `select c.guild_id, c.guild_name from consents c where c.contact_id = $1 order by c.granted_at for update`, contactID)
		guilds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (core.GuildConsent, error) {
			var g core.GuildConsent
			return g, r.Scan(&g.GuildID, &g.GuildName)
		})
		if err != nil {
			return fmt.Errorf("list consents: %w", err)
		}
		w.Guilds = guilds
		if err := lockClaimsOf(ctx, tx, `p.contact_id = $1`, contactID); err != nil {
			return err
		}
		rows, _ = tx.Query(ctx, `delete from pairings where contact_id = $1 returning `+pairingColumns, contactID)
		if w.Pairings, err = pgx.CollectRows(rows, scanPairing); err != nil {
			return fmt.Errorf("remove pairings: %w", err)
		}
		rows, _ = tx.Query(ctx, `delete from subscriptions where contact_id = $1 returning `+subscriptionColumns, contactID)
		if w.Subscriptions, err = pgx.CollectRows(rows, scanSubscription); err != nil {
			return fmt.Errorf("remove subscriptions: %w", err)
		}
		tag, err := tx.Exec(ctx, `delete from consent_requests where contact_id = $1 and used_at is null`, contactID)
		if err != nil {
			return fmt.Errorf("cancel requests: %w", err)
		}
		w.Requests = int(tag.RowsAffected())
		if _, err := tx.Exec(ctx, `delete from consents where contact_id = $1`, contactID); err != nil {
			return fmt.Errorf("remove consents: %w", err)
		}
		return nil
	})
	if err != nil {
		return core.Withdrawal{}, fmt.Errorf("store: withdraw consent of %s: %w", contactID, err)
	}
	if len(w.Pairings) > 0 {
		s.pairingsChanged()
	}
	for i := range w.Pairings {
		w.Pairings[i].WebhookToken = "" // sealed or not, nobody needs it any more
	}
	return w, nil
}

// MarkCommandHandled records that a contact's command message is being acted upon; false when
// it was already (a catch-up bringing a pushed message again).
func (s *Store) MarkCommandHandled(ctx context.Context, messageID string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `insert into consent_commands (message_id) values ($1) on conflict do nothing`, messageID)
	if err != nil {
		return false, fmt.Errorf("store: mark command %s handled: %w", messageID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ForgetCommand undoes MarkCommandHandled after acting failed, so that a catch-up tries again.
func (s *Store) ForgetCommand(ctx context.Context, messageID string) error {
	if _, err := s.pool.Exec(ctx, `delete from consent_commands where message_id = $1`, messageID); err != nil {
		return fmt.Errorf("store: forget command %s: %w", messageID, err)
	}
	return nil
}
