package postgres

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
)

// Layer is one layer's rows in the shared tables. Its state is split by
// concern: rec (records, revisions, staging, snapshots: records.go and
// beside it) and sys (inbox, outbox, logs, runs, connections, settings:
// system.go and beside it).
type Layer struct {
	s    *Store
	name string
	// id is the layer's key in every table.
	id  int64
	log hclog.Logger

	rec recordsState
	sys systemState
}

// Name is the layer's name.
func (l *Layer) Name() string { return l.name }

func (l *Layer) open(ctx context.Context) error {
	if err := l.rec.open(ctx, l); err != nil {
		return err
	}
	return l.sys.open(ctx, l)
}

func (l *Layer) close() {
	l.rec.close()
	l.sys.close()
	l.closeReads()
}

// notified is called for every notification about this layer, from this
// host or another, after the notifying transaction committed.
func (l *Layer) notified(kind, payload string) {
	l.rec.notified(l, kind, payload)
	l.sys.notified(l, kind, payload)
}

// notify queues a notification of kind about this layer in tx: it is sent
// to every host (this one included) when tx commits, and never if it
// rolls back.
func (l *Layer) notify(ctx context.Context, tx pgx.Tx, kind, payload string) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, encodeNotification(l.name, kind, payload))
	return err
}

// ctx is the context of a store call: bounded, since the store's
// interface has none (a call must not hang on a lost server).
func (l *Layer) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

// callTimeout bounds one store call.
const callTimeout = 5 * time.Minute

// tx runs fn in a transaction, committed when fn returns nil.
func (l *Layer) tx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, l.s.pool, fn)
}
