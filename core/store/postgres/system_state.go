package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store"
)

// systemState is a layer's state for the inbox, outbox, logs, runs,
// connections and settings (owned by system*.go).
type systemState struct{}

func (y *systemState) open(ctx context.Context, l *Layer) error { return nil }

func (y *systemState) close() {}

func (y *systemState) notified(l *Layer, kind, payload string) {}

// errSystemHalf marks the seams below until the system half replaces them.
var errSystemHalf = errors.New("store: postgres: the system half is not merged yet")

// enqueue stores outbound deliveries in tx, to be sent once it commits
// (what a publish, a pin or a run announces). The records half calls it.
func (y *systemState) enqueue(ctx context.Context, tx pgx.Tx, l *Layer, ds []store.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	return errSystemHalf
}

// deleteConnection deletes a connection's row in tx (store.ErrNotFound when
// there is none). The records half's DeleteConnection calls it in the
// transaction of the revision that soft-deletes the connection's records.
func (y *systemState) deleteConnection(ctx context.Context, tx pgx.Tx, l *Layer, source, id string) error {
	return errSystemHalf
}

// consumeInbox deletes handled inbox items in tx (PublishInfo.Consume).
func (y *systemState) consumeInbox(ctx context.Context, tx pgx.Tx, l *Layer, seqs []uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	return errSystemHalf
}
