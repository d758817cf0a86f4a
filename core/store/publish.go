package store

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Batch is one source's changes in a direct publish.
type Batch struct {
	Source  string
	Changes []Change
	Options WriterOptions
}

// PublishChanges applies changes and publishes them as one revision at
// once, without staging: the path of payload webhooks. It may run while a
// run is staging; its changes then take a timestamp below the staged ones,
// and the run reconciles with them when it publishes.
func (l *Layer) PublishChanges(info PublishInfo, batches []Batch) (Revision, error) {
	if l.closed.Load() {
		return Revision{}, ErrClosed
	}
	l.pub.Lock()
	defer l.pub.Unlock()
	ts := l.nextTS()
	// Read what is published (and this transaction's own writes): never a
	// staging in progress, whose writes lie above ts.
	txn := l.db.NewTransactionAt(ts-1, true)
	defer txn.Discard()
	start := l.publishedTS()
	var seq uint32
	counts := map[string]map[string]Counts{}
	var changed [][]byte
	for _, b := range batches {
		if counts[b.Source] == nil {
			counts[b.Source] = map[string]Counts{}
		}
		a := applier{
			source: b.Source, opts: b.Options, ts: ts, base: ts, start: start,
			seq:     func() uint32 { seq++; return seq },
			w:       txn,
			payload: func(c Cursor) ([]byte, error) { return readPayload(txn, c) },
			counts:  counts[b.Source],
			written: func(key []byte, _ indexEntry) { changed = append(changed, key) },
		}
		for i := range b.Changes {
			c := &b.Changes[i]
			key := indexKey(b.Source, c.Model, c.ID)
			cur, found, err := readIndex(txn, key)
			if err != nil {
				return Revision{}, err
			}
			if err := a.apply(c, key, cur, found); err != nil {
				return Revision{}, fmt.Errorf("store: %s %s/%s: %w", b.Source, c.Model, c.ID, err)
			}
		}
	}
	if err := l.indexDirect(txn, ts, start); err != nil {
		return Revision{}, err
	}
	rev, err := l.commitRevision(txn, ts, info, counts)
	if err != nil {
		if err == badger.ErrTxnTooBig {
			return Revision{}, fmt.Errorf("store: too many changes for one direct publish: %w", err)
		}
		return Revision{}, err
	}
	if st := l.staging; st != nil {
		for _, k := range changed {
			st.intervening[string(k)] = struct{}{}
		}
	}
	return rev, nil
}
