package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

const followColumns = `id, guild_id, channel_id, user_id, contact_id, failures, told_closed, created_at`

func scanFollow(row pgx.CollectableRow) (core.Follow, error) {
	var f core.Follow
	err := row.Scan(&f.ID, &f.GuildID, &f.ChannelID, &f.UserID, &f.ContactID, &f.Failures, &f.ToldClosed, &f.CreatedAt)
	return f, err
}

// ToggleFollow removes the member's follow of f.ContactID in f.GuildID when there is one, and
// stores f otherwise; on reports whether the member follows the contact now.
func (s *Store) ToggleFollow(ctx context.Context, f core.Follow) (on bool, err error) {
	// One statement: the delete and the insert see the same snapshot, so a follow is either
	// removed or added, never both; a concurrent toggle that inserted first wins the conflict.
	rows, _ := s.pool.Query(ctx, `with gone as (
			delete from follows where guild_id = $1 and user_id = $3 and contact_id = $4 returning id
		)
		insert into follows (guild_id, channel_id, user_id, contact_id)
		select $1, $2, $3, $4 where not exists (select 1 from gone)
		on conflict (guild_id, user_id, contact_id) do nothing
		returning id`, f.GuildID, f.ChannelID, f.UserID, f.ContactID)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return false, fmt.Errorf("store: toggle the follow of %s by %s: %w", f.ContactID, f.UserID, err)
	}
	return len(ids) == 1, nil
}

// FollowsForContact returns the follows that ask for contactID: its own and the
// core.AllContacts ones, oldest first. Whether the contact consented in each follow's guild is
// the caller's to check.
func (s *Store) FollowsForContact(ctx context.Context, contactID string) ([]core.Follow, error) {
	rows, _ := s.pool.Query(ctx, `select `+followColumns+` from follows
		where contact_id = $1 or contact_id = $2 order by id`, contactID, core.AllContacts)
	fs, err := pgx.CollectRows(rows, scanFollow)
	if err != nil {
		return nil, fmt.Errorf("store: list the follows of %s: %w", contactID, err)
	}
	return fs, nil
}

// FollowsByUser returns a member's follows in a guild, oldest first.
func (s *Store) FollowsByUser(ctx context.Context, guildID, userID string) ([]core.Follow, error) {
	rows, _ := s.pool.Query(ctx, `select `+followColumns+` from follows
		where guild_id = $1 and user_id = $2 order by id`, guildID, userID)
	fs, err := pgx.CollectRows(rows, scanFollow)
	if err != nil {
		return nil, fmt.Errorf("store: list the follows of member %s: %w", userID, err)
	}
	return fs, nil
}

// FollowFailed counts a refused direct message on the follows ids; it drops those that reached
// dropAfter failures in a row and returns how many it dropped. told marks them as told.
func (s *Store) FollowFailed(ctx context.Context, ids []int64, told bool, dropAfter int) (dropped int, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `update follows set failures = failures + 1, told_closed = told_closed or $2
			where id = any($1)`, ids, told); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `delete from follows where id = any($1) and failures >= $2`, ids, dropAfter)
		dropped = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: count a refused direct message on follows %v: %w", ids, err)
	}
	return dropped, nil
}

// FollowDelivered resets the failure count of the follows ids after a direct message went
// through (the member opened their DMs again).
func (s *Store) FollowDelivered(ctx context.Context, ids []int64) error {
	if _, err := s.pool.Exec(ctx, `update follows set failures = 0, told_closed = false
		where id = any($1) and (failures > 0 or told_closed)`, ids); err != nil {
		return fmt.Errorf("store: reset the failures of follows %v: %w", ids, err)
	}
	return nil
}
