package badger

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
)

// loader writes entries at one timestamp through Badger's KVLoader, the
// path of Badger's own restore: entries go to the write channel in
// batches, in the order they were set, with none of a transaction's
// bookkeeping. A WriteBatch is a transaction that commits when full: each
// entry goes into a map of pending writes keyed by a copy of its key, the
// map is walked at the commit, and the commit appends a marker entry.
//
// Use a loader only at a timestamp no reader looks at before a revision is
// published (keys.go) and that a crash rolls back: a staging's (its
// records, their index and field index entries, a private run's spilled
// changes) or a direct publish's behind its partial-publish marker. There
// a transaction's atomicity buys nothing: a crash halfway leaves entries
// at an unpublished timestamp either way, and the next start rolls back
// whatever part of them reached the disk.
//
// Measured on 1,000,000 records of two entries each (record and index, as
// a run writes them; BenchmarkRunWrites -benchtime 1000000x): 101-129 k
// records/s through a WriteBatch, 139-178 k through a loader.
//
// A loader checks what a transaction would (key and value sizes, Badger's
// own keys), keeps the order of its writes (a Set and a later Delete of
// one key leave it deleted), and, like a WriteBatch, keeps up to
// maxPendingTxns batches in flight. A KVLoader allocates its batches at
// their full size (~100 KiB of pointers each), so a loader keeps its first
// smallWrites writes itself and makes one only past them: a staging that
// ends before (a connection's run, a webhook's) commits them in one
// transaction. It is not safe for concurrent use.
type loader struct {
	db       *badger.DB
	ts       uint64
	maxValue int64
	small    []loaderWrite    // the writes before l is made
	l        *badger.KVLoader // nil until the writes pass smallWrites
	err      error            // the first error; errLoaderSpent after Flush
	spent    bool
	// bytes counts the keys and values set so far, which the loader
	// (or Badger's write queue) holds until they are written.
	bytes int
}

// loaderWrite is a write a loader holds.
type loaderWrite struct {
	k, v []byte
	del  bool
}

// smallWrites is how many writes a loader holds before it makes a
// KVLoader: a connection's first run of 100 records writes 200.
const smallWrites = 512

// newLoader returns a loader writing at ts.
func newLoader(db *badger.DB, ts uint64) *loader {
	return &loader{db: db, ts: ts, maxValue: maxValueOf(db)}
}

// maxValueOf is the largest value a transaction of db takes.
func maxValueOf(db *badger.DB) int64 {
	opts := db.Opts()
	if opts.InMemory {
		return opts.ValueThreshold
	}
	return opts.ValueLogFileSize
}

// checkWrite refuses what a transaction would and a KVLoader does not
// check: an empty key, one of Badger's own, a key or a value too big
// (maxValue: maxValueOf).
func checkWrite(k, v []byte, maxValue int64) error {
	switch {
	case len(k) == 0:
		return badger.ErrEmptyKey
	case bytes.HasPrefix(k, badgerPrefix):
		return badger.ErrInvalidKey
	case len(k) > maxKeySize:
		return fmt.Errorf("store: a key of %d bytes exceeds Badger's %d", len(k), maxKeySize)
	case int64(len(v)) > maxValue:
		return fmt.Errorf("store: a value of %d bytes exceeds Badger's %d", len(v), maxValue)
	}
	return nil
}

// maxKeySize is Badger's bound on a key (badger.maxKeySize, not exported).
const maxKeySize = 65000

// badgerPrefix starts the keys Badger keeps for itself.
var badgerPrefix = []byte("!badger!")

// metaDelete is Badger's mark of a deletion in an entry's meta byte
// (badger.bitDelete, not exported; part of its on-disk format since its
// first release). TestLoaderDelete fails if it ever changes.
var metaDelete = []byte{1 << 0}

// Set writes k = v at the loader's timestamp. The loader holds on to both
// until it is flushed.
func (l *loader) Set(k, v []byte) error { return l.write(loaderWrite{k: k, v: v}) }

// Delete deletes k at the loader's timestamp.
func (l *loader) Delete(k []byte) error { return l.write(loaderWrite{k: k, del: true}) }

func (l *loader) write(w loaderWrite) error {
	if l.err != nil {
		return l.err
	}
	err := checkWrite(w.k, w.v, l.maxValue)
	switch {
	case err != nil:
	case l.l != nil:
		err = l.load(w)
	case len(l.small) < smallWrites:
		l.small = append(l.small, w)
	default:
		l.l = l.db.NewKVLoader(maxPendingTxns)
		for _, h := range l.small {
			if err = l.load(h); err != nil {
				break
			}
		}
		l.small = nil
		if err == nil {
			err = l.load(w)
		}
	}
	// Like a failed write of a WriteBatch, a refused one fails the rest:
	// the writes are one staging.
	l.err = err
	l.bytes += len(w.k) + len(w.v)
	return err
}

func (l *loader) load(w loaderWrite) error {
	kv := pb.KV{Key: w.k, Value: w.v, Version: l.ts}
	if w.del {
		kv.Meta = metaDelete
	}
	return l.l.Set(&kv)
}

// Flush writes what is left and waits until every write is in the
// database (readable; durable as a commit is: see durable.go). It returns
// the first error of any write. The loader is spent after it.
func (l *loader) Flush() error {
	if l.spent {
		return errLoaderSpent
	}
	l.spent = true
	var err error
	if l.l != nil {
		err = l.l.Finish()
	} else if l.err == nil && len(l.small) > 0 {
		err = l.commitSmall()
	}
	if l.err != nil {
		err = l.err
	}
	l.err = errLoaderSpent
	return err
}

// commitSmall writes the writes the loader holds in one transaction (as
// many as Badger takes at once: they are few).
func (l *loader) commitSmall() error {
	wb := l.db.NewWriteBatchAt(l.ts)
	defer wb.Cancel()
	for _, w := range l.small {
		var err error
		if w.del {
			err = wb.Delete(w.k)
		} else {
			err = wb.Set(w.k, w.v)
		}
		if err != nil {
			return err
		}
	}
	l.small = nil
	return wb.Flush()
}

// Cancel drops what the loader holds and waits for the writes in flight.
// Once a KVLoader is made, what it holds is written too (it has no way to
// drop it): a cancelled staging is rolled back as a whole after it.
func (l *loader) Cancel() {
	if l.spent {
		return
	}
	if l.l == nil {
		l.spent, l.small, l.err = true, nil, errLoaderSpent
		return
	}
	_ = l.Flush()
}

var errLoaderSpent = errors.New("store: a write after the loader's flush")
