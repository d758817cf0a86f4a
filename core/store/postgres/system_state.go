package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store"
)

// systemState is a layer's state for the inbox, outbox, logs, runs,
// connections and settings (owned by system*.go). Nothing in it is needed
// for correctness across hosts: the database holds the data and hands out
// the numbers; what is here is the signals of this host's waiters, the
// inbox limit this host was configured with, and hints.
type systemState struct {
	closed atomic.Bool

	// Signals of this host's waiters: fired at once after a write on this
	// host commits, and on every host when its notification arrives.
	inbox, outbox, events signal

	// inLimit bounds the pending inbox items (0: no bound); every host is
	// configured with the same limit, and it is checked against the
	// database's count.
	inLimit atomic.Int64
	// inHead is the sequence number up to which this host's inbox loop has
	// handled every item (InboxProcessed): the oldest waiting item is
	// looked for after it.
	inHead atomic.Uint64
	// inDepth is the last inbox depth read, for InboxDepth when the
	// database cannot be reached.
	inDepth atomic.Int64
}

// Notification kinds of the system half.
const (
	kindInbox  = "inbox"  // an item was appended to the inbox
	kindOutbox = "outbox" // deliveries were stored or changed
	kindEvents = "events" // events were appended to the event log
)

// Names of the per-layer counters (synclayer_counters).
const (
	// counterInbox numbers inbox items: it is also how many were ever
	// appended (a rolled back append hands its number back).
	counterInbox = "inbox"
	// counterInboxDone counts the inbox items ever removed (published,
	// dropped, set aside): the inbox's depth is counterInbox minus it,
	// read in one row each rather than counted over the inbox.
	counterInboxDone = "inbox_done"
	counterEvent     = "event"
	counterAudit     = "audit"
	counterOutbox    = "outbox"
)

func (y *systemState) open(ctx context.Context, l *Layer) error {
	n, err := l.inboxDepth(ctx)
	if err != nil {
		return err
	}
	y.inDepth.Store(n)
	return nil
}

func (y *systemState) close() {
	y.closed.Store(true)
}

func (y *systemState) notified(l *Layer, kind, payload string) {
	switch kind {
	case kindInbox:
		y.inbox.fire()
	case kindOutbox:
		y.outbox.fire()
	case kindEvents:
		y.events.fire()
	case kindResync:
		// Notifications may have been lost: every waiter reads again.
		y.inbox.fire()
		y.outbox.fire()
		y.events.fire()
	}
}

// signal is closed-and-replaced when something happens: a waiter takes the
// channel before it reads, reads, then waits on it, and misses nothing
// written after its read.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) fire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// takeNumbers is the statement that reserves numbers of one of the
// layer's counters ($1 the layer, $2 the counter, $3 how many) in a
// transaction and returns the last of them (the first is last-$3+1); the
// transaction's later statements read the value back from the counter's
// row. The row stays locked until the transaction ends, so numbers are
// handed out in commit order on every host: the next writer gets its
// numbers once this transaction has committed and is visible to every new
// snapshot (PostgreSQL releases a transaction's locks after it becomes
// visible). A rolled back transaction hands its numbers back. Take the
// numbers as late in a transaction as possible: the layer's other writers
// of the counter wait for its commit.
const takeNumbers = `
	INSERT INTO synclayer_counters (layer_id, name, value) VALUES ($1, $2, $3)
	ON CONFLICT (layer_id, name) DO UPDATE SET value = synclayer_counters.value + EXCLUDED.value
	RETURNING value`

// seqArg is a sequence number as a query argument: numbers beyond what
// the database holds are the largest it holds.
func seqArg(seq uint64) int64 { return int64(min(seq, 1<<63-1)) }

// enqueue stores outbound deliveries in tx, to be sent once it commits
// (what a publish, a pin or a run announces), and queues the notification
// that fires every host's OutboxSignal after the commit. The records half
// calls it. It takes the layer's outbox change number, whose row stays
// locked until tx ends: call it late in a long transaction.
func (y *systemState) enqueue(ctx context.Context, tx pgx.Tx, l *Layer, ds []store.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	if err := putDeliveries(ctx, tx, l, ds); err != nil {
		return fmt.Errorf("store: enqueue outbound events of layer %q: %w", l.name, err)
	}
	return nil
}

// deleteConnection deletes a connection's row in tx (store.ErrNotFound when
// there is none). The records half's DeleteConnection calls it in the
// transaction of the revision that soft-deletes the connection's records.
func (y *systemState) deleteConnection(ctx context.Context, tx pgx.Tx, l *Layer, source, id string) error {
	tag, err := tx.Exec(ctx, `DELETE FROM synclayer_connections WHERE layer_id = $1 AND source = $2 AND id = $3`, l.id, source, id)
	if err != nil {
		return fmt.Errorf("store: delete connection %q of source %q: %w", id, source, err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// consumeInbox deletes handled inbox items in tx (PublishInfo.Consume).
func (y *systemState) consumeInbox(ctx context.Context, tx pgx.Tx, l *Layer, seqs []uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, removeInbox, l.id, toInt64s(seqs), counterInboxDone); err != nil {
		return fmt.Errorf("store: remove published webhooks from the inbox of layer %q: %w", l.name, err)
	}
	return nil
}

// removeInbox deletes inbox items ($1 the layer, $2 their numbers, $3
// counterInboxDone) and counts those it deleted as done, in one statement.
// An item removed twice (by two hosts) is counted once: the second delete
// waits for the first and finds nothing.
const removeInbox = `
	WITH d AS (DELETE FROM synclayer_inbox WHERE layer_id = $1 AND seq = ANY($2::bigint[]) RETURNING 1)
	INSERT INTO synclayer_counters (layer_id, name, value)
	SELECT $1, $3, count(*) FROM d HAVING count(*) > 0
	ON CONFLICT (layer_id, name) DO UPDATE SET value = synclayer_counters.value + EXCLUDED.value`

func toInt64s(seqs []uint64) []int64 {
	out := make([]int64, len(seqs))
	for i, s := range seqs {
		out[i] = int64(s)
	}
	return out
}
