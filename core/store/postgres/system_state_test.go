package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store"
)

// Helpers of the system half's tests, and the seams the records half
// calls.

// The system half's interfaces, whole (Runs and Connections need the
// records half's Checkpoint and DeleteConnection too: driver.go asserts
// those once both halves are in).
var (
	_ store.Inbox    = (*Layer)(nil)
	_ store.Outbox   = (*Layer)(nil)
	_ store.Logs     = (*Layer)(nil)
	_ store.Settings = (*Layer)(nil)
	_ interface {
		PutRun(r *store.Run, announce ...store.Delivery) error
		GetRun(id string) (*store.Run, error)
		ActiveRuns() ([]*store.Run, error)
		Runs() ([]*store.Run, error)
		RecentRuns(limit int) ([]*store.Run, error)
		PruneRuns(before time.Time) (int, error)
		PutConnection(c *store.Connection, create bool, announce ...store.Delivery) error
		GetConnection(source, id string) (*store.Connection, error)
		Connections(source, after string, fn func(c *store.Connection) bool) error
	} = (*Layer)(nil)
)

// layerOf opens a layer of s, failing the test on an error.
func sysLayer(t testing.TB, s *Store, name string) *Layer {
	t.Helper()
	l, err := s.layer(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// otherHost opens a second Store on the database of dsn: another host.
func sysHost(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sysSignalWait bounds a wait for a signal that must come: a test that
// waits longer has failed (the bound guards against a hang, it measures
// nothing).
const sysSignalWait = 30 * time.Second

func sysWaitSignal(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(sysSignalWait):
		t.Fatalf("%s: no signal", what)
	}
}

func sysSignalled(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// inTx runs fn in a transaction of l, as the records half does.
func sysTx(t testing.TB, l *Layer, fn func(ctx context.Context, tx pgx.Tx) error) error {
	t.Helper()
	ctx, cancel := l.ctx()
	defer cancel()
	return l.tx(ctx, func(tx pgx.Tx) error { return fn(ctx, tx) })
}

// The seams: deliveries enqueued in a transaction are stored and announced
// to every host only when it commits; inbox items consumed and a
// connection deleted in one go with it; nothing of a rolled back one.
func TestSystemSeams(t *testing.T) {
	s, dsn := openStore(t)
	l := sysLayer(t, s, "demo")
	other := sysLayer(t, sysHost(t, dsn), "demo")
	var seqs []uint64
	for range 3 {
		seq, err := l.AppendInbox(store.InboxItem{Source: "shop", Body: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	if err := l.PutConnection(&store.Connection{Source: "crm", ID: "acme", State: "active"}, true); err != nil {
		t.Fatal(err)
	}

	// Rolled back: nothing happened.
	errRollback := context.Canceled
	err := sysTx(t, l, func(ctx context.Context, tx pgx.Tx) error {
		if err := l.sys.enqueue(ctx, tx, l, []store.Delivery{sysDelivery("evt_0", "app")}); err != nil {
			return err
		}
		if err := l.sys.consumeInbox(ctx, tx, l, seqs[:2]); err != nil {
			return err
		}
		if err := l.sys.deleteConnection(ctx, tx, l, "crm", "acme"); err != nil {
			return err
		}
		return errRollback
	})
	if err != errRollback {
		t.Fatal(err)
	}
	if ds, _, err := l.OutboxChanges(0); err != nil || len(ds) != 0 {
		t.Fatalf("a rolled back enqueue left %v, %v", sysDeliveryIDs(ds), err)
	}
	if n := l.InboxDepth(); n != 3 {
		t.Fatalf("a rolled back consume: depth %d, want 3", n)
	}
	if _, err := l.GetConnection("crm", "acme"); err != nil {
		t.Fatalf("a rolled back delete: %v", err)
	}

	// Committed: every host's outbox signal fires.
	sigHere, sigThere := l.OutboxSignal(), other.OutboxSignal()
	err = sysTx(t, l, func(ctx context.Context, tx pgx.Tx) error {
		if err := l.sys.enqueue(ctx, tx, l, []store.Delivery{sysDelivery("evt_1", "app"), sysDelivery("evt_1", "ops")}); err != nil {
			return err
		}
		if err := l.sys.consumeInbox(ctx, tx, l, seqs[:2]); err != nil {
			return err
		}
		return l.sys.deleteConnection(ctx, tx, l, "crm", "acme")
	})
	if err != nil {
		t.Fatal(err)
	}
	sysWaitSignal(t, sigHere, "this host's outbox after an enqueue in a transaction")
	sysWaitSignal(t, sigThere, "the other host's outbox after an enqueue in a transaction")
	ds, _, err := other.OutboxChanges(0)
	if err != nil || len(ds) != 2 || ds[0].State != store.DeliveryPending || ds[0].NextAt.IsZero() || ds[0].Created.IsZero() {
		t.Fatalf("enqueued in a transaction: %v, %v", sysDeliveryIDs(ds), err)
	}
	items, err := other.PendingInbox(0, 10)
	if err != nil || len(items) != 1 || items[0].Seq != seqs[2] {
		t.Fatalf("inbox after consuming two of three: %+v, %v", items, err)
	}
	if _, err := other.GetConnection("crm", "acme"); err != store.ErrNotFound {
		t.Fatalf("deleted connection: %v", err)
	}
	// Deleting an unknown connection says so.
	err = sysTx(t, l, func(ctx context.Context, tx pgx.Tx) error {
		return l.sys.deleteConnection(ctx, tx, l, "crm", "acme")
	})
	if err != store.ErrNotFound {
		t.Fatalf("deleting an unknown connection: %v", err)
	}
}
