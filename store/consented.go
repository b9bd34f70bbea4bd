package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

// ConsentedContacts returns the Resonite user ids of the contacts that consented in guildID,
// sorted.
//
// Stand-in until consent (issue 10) lands: the contacts with a pairing or a subscription in
// the guild count as consented. The lead replaces this file with store/consent.go at merge.
func (s *Store) ConsentedContacts(ctx context.Context, guildID string) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `select contact_id from pairings where guild_id = $1
		union select contact_id from subscriptions where guild_id = $1 and contact_id <> $2
		order by 1`, guildID, core.AllContacts)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: list the contacts that consented in guild %s: %w", guildID, err)
	}
	return ids, nil
}
