package badger

import (
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Reading the outbox by change rather than from the start. Every write to a
// delivery (a new event, an attempt, a redelivery) is a new version of its
// key, committed under the layer's publisher lock at a timestamp above every
// earlier one. A delivery worker that remembers the timestamp it has read up
// to therefore finds every later change by reading the versions above it:
// Badger skips whole tables older than that, so the cost follows the number
// of changes, not the size of the outbox.

// OutboxChanges returns the deliveries written after the outbox position
// since (0: every delivery), each at its newest state, in event order, and
// the position to pass next time. Nothing written after the returned
// position is included, and everything written up to it is.
func (l *Layer) OutboxChanges(since uint64) ([]*Delivery, uint64, error) {
	// Every write to the outbox commits under l.pub at a timestamp it then
	// counts into l.ts, so reading at l.ts sees a settled set of them. A
	// staging's record writes lie above l.ts; they are no outbox keys.
	// Announcements of a revision committed but not yet visible
	// (visible.go) are read once it is: below its timestamp.
	l.pub.Lock()
	upTo := l.ts
	l.pub.Unlock()
	if ts, ok := l.firstPendingTS(); ok && ts <= upTo {
		upTo = ts - 1
	}
	if upTo <= since {
		return nil, since, nil
	}
	var out []*Delivery
	txn := l.db.NewTransactionAt(upTo, false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxOutbox}, SinceTs: since, PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var d *Delivery
		err := it.Item().Value(func(v []byte) (err error) { d, err = decodeDelivery(v); return })
		if err != nil {
			return nil, since, err
		}
		out = append(out, d)
	}
	return out, upTo, nil
}

// PruneDeliveries deletes the deliveries that are settled (delivered,
// failed or stopped) and whose last attempt (or creation, if none) is
// before the given time. Pending deliveries always stay. It returns how
// many it deleted.
func (l *Layer) PruneDeliveries(before time.Time) (int, error) {
	var keys [][]byte
	err := l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxOutbox}, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var d *Delivery
			err := it.Item().Value(func(v []byte) (err error) { d, err = decodeDelivery(v); return })
			if err != nil {
				return err
			}
			if d.State == DeliveryPending {
				continue
			}
			last := d.Created
			if n := len(d.Attempts); n > 0 && d.Attempts[n-1].At.After(last) {
				last = d.Attempts[n-1].At
			}
			if last.Before(before) {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
		}
		return nil
	})
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	// A delivery redelivered meanwhile is pending again: keep it.
	deleted := 0
	for len(keys) > 0 {
		n, batch := min(len(keys), 1000), 0
		err := l.setLatest(func(txn *badger.Txn) error {
			for _, k := range keys[:n] {
				item, err := txn.Get(k)
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				var d *Delivery
				if err := item.Value(func(v []byte) (err error) { d, err = decodeDelivery(v); return }); err != nil {
					return err
				}
				if d.State == DeliveryPending {
					continue
				}
				if err := txn.Delete(k); err != nil {
					return err
				}
				batch++
			}
			return nil
		})
		if err != nil {
			return deleted, err
		}
		deleted += batch
		keys = keys[n:]
	}
	return deleted, nil
}
