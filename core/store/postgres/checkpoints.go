package postgres

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Checkpoint is the published checkpoint of a sync of a source key (nil
// when it has none).
func (l *Layer) Checkpoint(source, sync string) ([]byte, error) {
	if err := l.recClosed(); err != nil {
		return nil, err
	}
	ctx, cancel := l.ctx()
	defer cancel()
	var cp []byte
	err := l.s.pool.QueryRow(ctx, `SELECT state FROM synclayer_checkpoints WHERE layer_id = $1 AND source_key = $2 AND sync = $3`,
		l.id, source, sync).Scan(&cp)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: checkpoint of %s/%s: %w", source, sync, err)
	}
	return cp, nil
}
