package badger

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// revRef is what a layer keeps in memory of every revision it published:
// its number, snapshot timestamp and commit time, which is all that
// rendering a record's metadata and opening a revision's snapshot need (24
// bytes). The whole revision record (v/<n>) stays on disk only while the
// revision is readable; the ref (t/<ts>) stays for good, because records
// last changed by a revision long gone still name its commit time.
type revRef struct {
	ts  uint64
	num int64
	at  int64 // commit time, Unix microseconds
}

func (r revRef) createdAt() time.Time { return time.UnixMicro(r.at).UTC() }

func (r revRef) revision() Revision {
	return Revision{Number: r.num, TS: r.ts, CreatedAt: r.createdAt()}
}

func refOf(r Revision) revRef { return revRef{ts: r.TS, num: r.Number, at: r.CreatedAt.UnixMicro()} }

func refKey(ts uint64) []byte { return u64Key(pfxRevRef, ts) }

func (r revRef) value() []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(r.num))
	binary.BigEndian.PutUint64(b[8:], uint64(r.at))
	return b[:]
}

// readRefs loads every revision ref, ascending. Layers written before refs
// existed have only revision records: their refs are derived from those
// and written once.
func (l *Layer) readRefs() ([]revRef, error) {
	var refs []revRef
	err := l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxRevRef}, PrefetchValues: true, PrefetchSize: 1000})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			ts := binary.BigEndian.Uint64(it.Item().Key()[1:])
			err := it.Item().Value(func(v []byte) error {
				if len(v) != 16 {
					return fmt.Errorf("corrupt revision ref at %d", ts)
				}
				refs = append(refs, revRef{ts: ts, num: int64(binary.BigEndian.Uint64(v[:8])), at: int64(binary.BigEndian.Uint64(v[8:]))})
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var after int64
	if n := len(refs); n > 0 {
		after = refs[n-1].num
	}
	var missing []revRef
	err = l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxRevision}, PrefetchValues: true})
		defer it.Close()
		for it.Seek(u64Key(pfxRevision, uint64(after+1))); it.Valid(); it.Next() {
			var r Revision
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return fmt.Errorf("decode revision: %w", err)
			}
			missing = append(missing, refOf(r))
		}
		return nil
	})
	if err != nil || len(missing) == 0 {
		return refs, err
	}
	wb := l.db.NewWriteBatchAt(l.db.MaxVersion() + 1)
	defer wb.Cancel()
	for _, r := range missing {
		if err := wb.Set(refKey(r.ts), r.value()); err != nil {
			return nil, err
		}
	}
	if err := wb.Flush(); err != nil {
		return nil, fmt.Errorf("write revision refs: %w", err)
	}
	return append(refs, missing...), nil
}

// readRevision reads a revision record from disk; ok is false when it is
// not there (pruned).
func (l *Layer) readRevision(n int64) (Revision, bool, error) {
	b, err := l.getLatest(u64Key(pfxRevision, uint64(n)))
	if err != nil || b == nil {
		return Revision{}, false, err
	}
	var r Revision
	if err := json.Unmarshal(b, &r); err != nil {
		return Revision{}, false, fmt.Errorf("decode revision %d: %w", n, err)
	}
	return r, true, nil
}

// Revisions returns the layer's readable revisions, newest first, with the
// pinned flag set on the pinned one.
func (l *Layer) Revisions() []Revision {
	out := []Revision{}
	if l.closed.Load() {
		return out
	}
	now := time.Now()
	_ = l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxRevision}, PrefetchValues: true, Reverse: true})
		defer it.Close()
		l.mu.RLock()
		defer l.mu.RUnlock()
		for it.Seek(u64Key(pfxRevision, 1<<63)); it.Valid(); it.Next() {
			var r Revision
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				l.log.Warn("skipping a revision record that does not decode", "error", err)
				continue
			}
			i := l.refIndexLocked(r.Number)
			if i < 0 || !l.readableLocked(i, now) {
				continue
			}
			r.Pinned = r.Number == l.pinned
			out = append(out, r)
		}
		return nil
	})
	return out
}

// Current returns the revision readers see now (pinned or newest) and
// whether the layer has any revision.
func (l *Layer) Current() (Revision, bool) {
	ref, ok, _ := l.revisionAt(0)
	if !ok {
		return Revision{}, false
	}
	r, found, err := l.readRevision(ref.Number)
	if err != nil || !found {
		r = ref
	}
	r.Pinned = r.Number == l.Pinned()
	return r, true
}

// Newest returns the newest revision, pinned or not.
func (l *Layer) Newest() (Revision, bool) {
	l.mu.RLock()
	n := l.newestVisibleLocked()
	var ref revRef
	if n >= 0 {
		ref = l.refs[n]
	}
	l.mu.RUnlock()
	if n < 0 {
		return Revision{}, false
	}
	r, found, err := l.readRevision(ref.num)
	if err != nil || !found {
		return ref.revision(), true
	}
	return r, true
}

// Pinned returns the pinned revision number, 0 when none.
func (l *Layer) Pinned() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.pinned
}

// refIndexLocked finds revision n among the refs (-1: none). Call with
// l.mu held.
func (l *Layer) refIndexLocked(n int64) int {
	i := sort.Search(len(l.refs), func(i int) bool { return l.refs[i].num >= n })
	if i == len(l.refs) || l.refs[i].num != n {
		return -1
	}
	return i
}

// appendRevision adds a committed revision to the in-memory list.
func (l *Layer) appendRevision(r Revision) {
	l.mu.Lock()
	l.refs = append(l.refs, refOf(r))
	l.mu.Unlock()
}

// KeptRevisions counts the revision records on disk: the readable
// revisions (keep_revisions, keep_for, the pinned one, those being paged)
// and those the next publish prunes. It reads no record (a metric is
// scraped often).
func (l *Layer) KeptRevisions() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.stored)
}
