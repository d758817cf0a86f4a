package postgres

import (
	"context"
	"fmt"

	"github.com/synclayer/synclayer/core/store"
)

// CountRecords counts the records of each (source, model) in the
// snapshot's revision, in source and model order: one row per model of a
// source, whatever number of connections its records belong to. It is one
// aggregate over the layer's versions (no payload is read), so it costs in
// proportion to the layer: callers that show it often cache it per
// revision, and derive the next revision's with CountChanges.
func (s *Snapshot) CountRecords() ([]store.ModelCount, error) {
	ctx, cancel, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer cancel()
	rows := store.ModelCounts{}
	n, err := s.countRows(ctx, `
		SELECT r.source_key, r.model, count(*) FILTER (WHERE r.action <> 3), count(*) FILTER (WHERE r.action = 3)
		FROM synclayer_records r
		WHERE r.layer_id = $1 AND `+visibleSQL+` AND `+keptSQL+`
		GROUP BY r.source_key, r.model`,
		[]any{s.l.id, s.rev.Number}, addRow(rows))
	if err != nil {
		return nil, err
	}
	if n == 0 {
		if err := s.l.checkKept(ctx, s.rev.Number); err != nil {
			return nil, err
		}
	}
	return rows.Sorted(), nil
}

// countRows runs a statement selecting (source key, model, live, deleted)
// and calls fn with each row; it returns the number of rows.
func (s *Snapshot) countRows(ctx context.Context, sql string, args []any, fn func(sourceKey, model string, live, deleted int64)) (int, error) {
	rows, err := s.l.s.pool.Query(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("store: count records: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var sourceKey, model string
		var live, deleted int64
		if err := rows.Scan(&sourceKey, &model, &live, &deleted); err != nil {
			return n, fmt.Errorf("store: count records: %w", err)
		}
		fn(sourceKey, model, live, deleted)
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("store: count records: %w", err)
	}
	return n, nil
}

// addRow adds the rows of a counting statement (a source key's model: its
// live and deleted records) to m.
func addRow(m store.ModelCounts) func(sourceKey, model string, live, deleted int64) {
	return func(sourceKey, model string, live, deleted int64) {
		mc := m.Row(sourceKey, model)
		mc.Live += live
		mc.Deleted += deleted
	}
}

// CountSource counts the records of each model of one source key (a
// source, or one connection of it) in the snapshot's revision, in model
// order: it reads that source key's versions only (the primary key's
// range).
func (s *Snapshot) CountSource(sourceKey string) ([]store.ModelCount, error) {
	ctx, cancel, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer cancel()
	src, conn := store.SplitSourceKey(sourceKey)
	var out []store.ModelCount
	n, err := s.countRows(ctx, `
		SELECT r.source_key, r.model, count(*) FILTER (WHERE r.action <> 3), count(*) FILTER (WHERE r.action = 3)
		FROM synclayer_records r
		WHERE r.layer_id = $1 AND r.source_key = $3 AND `+visibleSQL+` AND `+keptSQL+`
		GROUP BY r.source_key, r.model ORDER BY r.model`,
		[]any{s.l.id, s.rev.Number, sourceKey}, func(_, model string, live, deleted int64) {
			out = append(out, store.ModelCount{Source: src, Model: model, Live: live, Deleted: deleted, Connections: conn != ""})
		})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		if err := s.l.checkKept(ctx, s.rev.Number); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CountChanges counts the records of this revision from an older snapshot
// of the same layer and its counts (from CountRecords or CountChanges): it
// reads only the versions published in between, each beside the version
// the older revision saw, so it costs in proportion to the change, not to
// the layer.
func (s *Snapshot) CountChanges(old store.Snapshot, oldCounts []store.ModelCount) ([]store.ModelCount, error) {
	o, ok := old.(*Snapshot)
	if !ok {
		return nil, fmt.Errorf("store: CountChanges given a %T, not a snapshot of this driver", old)
	}
	if o.l.s != s.l.s || o.l.id != s.l.id {
		return nil, fmt.Errorf("%w: counts of layer %q cannot come from layer %q", errOtherLayer, s.l.name, o.l.name)
	}
	if o.rev.Number > s.rev.Number {
		return nil, fmt.Errorf("store: counts of revision %d cannot come from a later one (%d)", s.rev.Number, o.rev.Number)
	}
	ctx, cancel, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer cancel()
	if o.closed.Load() {
		return nil, fmt.Errorf("%w: snapshot of revision %d", store.ErrClosed, o.rev.Number)
	}
	byModel := store.ModelCountsOf(oldCounts)
	// Each record changed since the older revision counts as what it is
	// now, and no more as what it was then (if it was). Both revisions
	// must be kept for the rows to be complete.
	n, err := s.countRows(ctx, `
		SELECT r.source_key, r.model,
			count(*) FILTER (WHERE r.action <> 3) - count(o.action) FILTER (WHERE o.action <> 3),
			count(*) FILTER (WHERE r.action = 3) - count(o.action) FILTER (WHERE o.action = 3)
		FROM synclayer_records r
		LEFT JOIN LATERAL (
			SELECT o.action FROM synclayer_records o
			WHERE o.layer_id = r.layer_id AND o.source_key = r.source_key AND o.model = r.model AND o.id = r.id
				AND o.from_rev <= $3 AND (o.to_rev IS NULL OR o.to_rev > $3)) o ON true
		WHERE r.layer_id = $1 AND r.from_rev > $3 AND `+visibleSQL+` AND `+keptSQL+`
			AND EXISTS (SELECT 1 FROM synclayer_layers WHERE id = $1 AND discard_rev <= $3)
		GROUP BY r.source_key, r.model`,
		[]any{s.l.id, s.rev.Number, o.rev.Number}, addRow(byModel))
	if err != nil {
		return nil, err
	}
	if n == 0 {
		// Nothing changed, or one revision is no longer kept.
		if err := s.l.checkKept(ctx, s.rev.Number); err != nil {
			return nil, err
		}
		if err := s.l.checkKept(ctx, o.rev.Number); err != nil {
			return nil, err
		}
	}
	return byModel.Sorted(), nil
}
