package postgres

import "context"

// recordsState is a layer's state for records, revisions, staging and
// snapshots (owned by records*.go).
type recordsState struct{}

func (r *recordsState) open(ctx context.Context, l *Layer) error { return nil }

func (r *recordsState) close() {}

func (r *recordsState) notified(l *Layer, kind, payload string) {}
