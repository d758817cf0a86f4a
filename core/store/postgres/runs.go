package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/synclayer/synclayer/core/store"
)

// Run records (synclayer_runs), by id: run ids made by the engine begin
// with their creation time (store.RunIDTime), so id order is creation
// order.

// PutRun saves a run record, and in the same commit the outbound events
// that announce its change (sync.started, sync.failed), so that one is
// never stored without the other.
func (l *Layer) PutRun(r *store.Run, announce ...store.Delivery) error {
	if l.sys.closed.Load() {
		return store.ErrClosed
	}
	doc, err := json.Marshal(r)
	if err != nil {
		return err
	}
	var finished pgtype.Timestamptz
	if r.FinishedAt != nil {
		finished = pgtype.Timestamptz{Time: *r.FinishedAt, Valid: true}
	}
	ctx, cancel := l.ctx()
	defer cancel()
	err = l.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO synclayer_runs (layer_id, id, state, finished_at, doc) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (layer_id, id) DO UPDATE SET state = EXCLUDED.state, finished_at = EXCLUDED.finished_at, doc = EXCLUDED.doc`,
			l.id, r.ID, r.State, finished, doc); err != nil {
			return err
		}
		if len(announce) == 0 {
			return nil
		}
		return putDeliveries(ctx, tx, l, announce)
	})
	if err != nil {
		return fmt.Errorf("store: save run %q of layer %q: %w", r.ID, l.name, err)
	}
	if len(announce) > 0 {
		l.sys.outbox.fire()
	}
	return nil
}

// GetRun loads a run record; store.ErrNotFound when unknown.
func (l *Layer) GetRun(id string) (*store.Run, error) {
	if l.sys.closed.Load() {
		return nil, store.ErrClosed
	}
	ctx, cancel := l.ctx()
	defer cancel()
	var doc []byte
	err := l.s.pool.QueryRow(ctx, `SELECT doc FROM synclayer_runs WHERE layer_id = $1 AND id = $2`, l.id, id).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: read run %q of layer %q: %w", id, l.name, err)
	}
	var r store.Run
	if err := json.Unmarshal(doc, &r); err != nil {
		return nil, fmt.Errorf("store: decode run %s: %w", id, err)
	}
	return &r, nil
}

// queryRuns reads run records.
func (l *Layer) queryRuns(q string, args ...any) ([]*store.Run, error) {
	ctx, cancel := l.ctx()
	defer cancel()
	rows, err := l.s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: read the runs of layer %q: %w", l.name, err)
	}
	defer rows.Close()
	out := []*store.Run{}
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var r store.Run
		if err := json.Unmarshal(doc, &r); err != nil {
			return nil, fmt.Errorf("store: decode a run of layer %q: %w", l.name, err)
		}
		out = append(out, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read the runs of layer %q: %w", l.name, err)
	}
	return out, nil
}

// ActiveRuns returns the queued and running runs, by id.
func (l *Layer) ActiveRuns() ([]*store.Run, error) {
	if l.sys.closed.Load() {
		return nil, store.ErrClosed
	}
	return l.queryRuns(`SELECT doc FROM synclayer_runs WHERE layer_id = $1 AND state IN ('queued', 'running') ORDER BY id`, l.id)
}

// Runs returns every run record, by id.
func (l *Layer) Runs() ([]*store.Run, error) {
	if l.sys.closed.Load() {
		return nil, store.ErrClosed
	}
	return l.queryRuns(`SELECT doc FROM synclayer_runs WHERE layer_id = $1 ORDER BY id`, l.id)
}

// RecentRuns returns up to limit run records, newest first.
func (l *Layer) RecentRuns(limit int) ([]*store.Run, error) {
	if l.sys.closed.Load() {
		return nil, store.ErrClosed
	}
	if limit <= 0 {
		return []*store.Run{}, nil
	}
	return l.queryRuns(`SELECT doc FROM synclayer_runs WHERE layer_id = $1 ORDER BY id DESC LIMIT $2`, l.id, limit)
}

// PruneRuns deletes the records of runs that finished before the cutoff
// (never a queued or running one) and returns how many.
func (l *Layer) PruneRuns(before time.Time) (int, error) {
	if l.sys.closed.Load() {
		return 0, store.ErrClosed
	}
	n, err := l.pruneChunks(`
		DELETE FROM synclayer_runs WHERE (layer_id, id) IN (
			SELECT layer_id, id FROM synclayer_runs
			WHERE layer_id = $1 AND state NOT IN ('queued', 'running') AND finished_at < $2
			LIMIT $3)`, before)
	if err != nil {
		return n, fmt.Errorf("store: prune the runs of layer %q: %w", l.name, err)
	}
	return n, nil
}
