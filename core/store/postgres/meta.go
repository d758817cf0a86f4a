package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store"
)

// Settings: small values the host keeps per layer (synclayer_meta).

// Meta returns a layer metadata value (nil when unset).
func (l *Layer) Meta(name string) ([]byte, error) {
	if l.sys.closed.Load() {
		return nil, store.ErrClosed
	}
	ctx, cancel := l.ctx()
	defer cancel()
	var v []byte
	err := l.s.pool.QueryRow(ctx, `SELECT value FROM synclayer_meta WHERE layer_id = $1 AND name = $2`, l.id, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read setting %q of layer %q: %w", name, l.name, err)
	}
	return v, nil
}

// setMeta sets the metadata values of m through db (the pool, or a
// revision's transaction for PublishInfo.Meta).
func (l *Layer) setMeta(ctx context.Context, db stageExecer, m map[string][]byte) error {
	for name, value := range m {
		if value == nil {
			value = []byte{}
		}
		if _, err := db.Exec(ctx, `
			INSERT INTO synclayer_meta (layer_id, name, value) VALUES ($1, $2, $3)
			ON CONFLICT (layer_id, name) DO UPDATE SET value = EXCLUDED.value`, l.id, name, value); err != nil {
			return fmt.Errorf("save setting %q: %w", name, err)
		}
	}
	return nil
}

// SetMeta sets a layer metadata value.
func (l *Layer) SetMeta(name string, value []byte) error {
	if l.sys.closed.Load() {
		return store.ErrClosed
	}
	ctx, cancel := l.ctx()
	defer cancel()
	if err := l.setMeta(ctx, l.s.pool, map[string][]byte{name: value}); err != nil {
		return fmt.Errorf("store: layer %q: %w", l.name, err)
	}
	return nil
}

// DeleteMeta removes layer metadata values.
func (l *Layer) DeleteMeta(names ...string) error {
	if l.sys.closed.Load() {
		return store.ErrClosed
	}
	if len(names) == 0 {
		return nil
	}
	ctx, cancel := l.ctx()
	defer cancel()
	if _, err := l.s.pool.Exec(ctx, `DELETE FROM synclayer_meta WHERE layer_id = $1 AND name = ANY($2)`, l.id, names); err != nil {
		return fmt.Errorf("store: delete settings of layer %q: %w", l.name, err)
	}
	return nil
}
