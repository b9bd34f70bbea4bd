package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/resonite-bridge/resonite-bridge/bridge/core"
)

const boardColumns = `channel_id, guild_id, message_id, created_by, created_at`

func scanBoard(row pgx.CollectableRow) (core.Board, error) {
	var b core.Board
	err := row.Scan(&b.ChannelID, &b.GuildID, &b.MessageID, &b.CreatedBy, &b.CreatedAt)
	return b, err
}

// StartBoard stores a board for b.ChannelID; created is false when the channel has one
// already (nothing changes then).
func (s *Store) StartBoard(ctx context.Context, b core.Board) (bool, error) {
	tag, err := s.pool.Exec(ctx, `insert into boards (channel_id, guild_id, message_id, created_by)
		values ($1, $2, $3, $4) on conflict (channel_id) do nothing`,
		b.ChannelID, b.GuildID, b.MessageID, b.CreatedBy)
	if err != nil {
		return false, fmt.Errorf("store: start the board of channel %s: %w", b.ChannelID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// StopBoard removes the channel's board and returns it; core.ErrNotFound when there is none.
func (s *Store) StopBoard(ctx context.Context, channelID string) (core.Board, error) {
	rows, _ := s.pool.Query(ctx, `delete from boards where channel_id = $1 returning `+boardColumns, channelID)
	b, err := pgx.CollectExactlyOneRow(rows, scanBoard)
	if errors.Is(err, pgx.ErrNoRows) {
		return core.Board{}, fmt.Errorf("store: stop the board of channel %s: %w", channelID, core.ErrNotFound)
	}
	if err != nil {
		return core.Board{}, fmt.Errorf("store: stop the board of channel %s: %w", channelID, err)
	}
	return b, nil
}

// Boards lists every board, oldest first.
func (s *Store) Boards(ctx context.Context) ([]core.Board, error) {
	rows, _ := s.pool.Query(ctx, `select `+boardColumns+` from boards order by created_at, channel_id`)
	bs, err := pgx.CollectRows(rows, scanBoard)
	if err != nil {
		return nil, fmt.Errorf("store: list boards: %w", err)
	}
	return bs, nil
}

// SetBoardMessage records the message a board is shown in; core.ErrNotFound when the board
// was stopped meanwhile.
func (s *Store) SetBoardMessage(ctx context.Context, channelID, messageID string) error {
	tag, err := s.pool.Exec(ctx, `update boards set message_id = $2 where channel_id = $1`, channelID, messageID)
	if err != nil {
		return fmt.Errorf("store: set the message of the board of channel %s: %w", channelID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: set the message of the board of channel %s: %w", channelID, core.ErrNotFound)
	}
	return nil
}
