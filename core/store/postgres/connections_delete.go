package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store"
)

// DeleteConnection deletes a connection in one revision: its records
// become deleted (soft, as any delete), and its checkpoints and the
// connection itself go in the revision's commit. Outbound events come
// from info.Announce as for any revision. store.ErrNotFound when there is
// no such connection.
func (l *Layer) DeleteConnection(info store.PublishInfo, source, id string) (store.Revision, error) {
	return l.deleteConnectionWith(info, source, id, func(ctx context.Context, tx pgx.Tx) error {
		return l.sys.deleteConnection(ctx, tx, l, source, id)
	})
}

// deleteConnectionWith is DeleteConnection with the deletion of the
// connection's row given (tests give their own until the system half is in).
func (l *Layer) deleteConnectionWith(info store.PublishInfo, source, id string, deleteRow func(ctx context.Context, tx pgx.Tx) error) (store.Revision, error) {
	if err := l.recClosed(); err != nil {
		return store.Revision{}, err
	}
	key := store.SourceKey(source, id)
	// Every live record of the source key, as an unseen record of a run
	// that saw nothing.
	cs := changeSet{run: directRun(), direct: true, tracked: [][2]string{{key, ""}}}
	ctx, cancel := l.ctx()
	defer cancel()
	var rev store.Revision
	err := l.tx(ctx, func(tx pgx.Tx) (err error) {
		rev, err = l.publish(ctx, tx, cs, info, func() error {
			if err := deleteRow(ctx, tx); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM synclayer_checkpoints WHERE layer_id = $1 AND source_key = $2`, l.id, key)
			return err
		})
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return store.Revision{}, store.ErrNotFound
	}
	if err != nil {
		return store.Revision{}, fmt.Errorf("store: delete connection %s of %s: %w", id, source, err)
	}
	l.afterPublish()
	return rev, nil
}
