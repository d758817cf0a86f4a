package postgres

import "context"

// systemState is a layer's state for the inbox, outbox, logs, runs,
// connections and settings (owned by system*.go).
type systemState struct{}

func (y *systemState) open(ctx context.Context, l *Layer) error { return nil }

func (y *systemState) close() {}

func (y *systemState) notified(l *Layer, kind, payload string) {}
