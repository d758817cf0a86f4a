package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Read-only figures for the host's metrics.

// InboxStats returns how many payload webhooks wait in the layer's inbox
// and when the oldest of them was received (zero when none waits). It
// reads keys only, plus the value of the oldest item.
func (l *Layer) InboxStats() (pending int, oldest time.Time, err error) {
	err = l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxInbox}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if pending == 0 {
				var item InboxItem
				if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &item) }); err != nil {
					return fmt.Errorf("decode inbox item: %w", err)
				}
				oldest = item.Received
			}
			pending++
		}
		return nil
	})
	return pending, oldest, err
}

// DiskSize returns the bytes the layer's database takes on disk: its LSM
// tree (keys, the record index, small values) and its value log (record
// payloads). Badger refreshes these figures about once a minute; an
// in-memory store reports zero.
func (l *Layer) DiskSize() (lsm, vlog int64) {
	if l.closed.Load() {
		return 0, 0
	}
	return l.db.Size()
}
