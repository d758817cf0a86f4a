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

// Limits of one commit of a publish. Badger refuses a transaction larger
// than a share of its memtable ("Txn is too big"); a change set larger than
// these is written in several commits at the revision's timestamp, which
// readers cannot see until the revision record, committed last, makes it a
// revision.
const (
	commitChanges = 2000
	commitBytes   = 1 << 20
)

// testHookPublishPart, when set (tests only), runs after each part of a
// publish split over several commits.
var testHookPublishPart func(part int) error

// PublishChanges applies changes and publishes them as one revision at
// once, without staging: the path of payload webhooks. It may run while a
// run is staging; its changes then take a timestamp below the staged ones,
// and the run reconciles with them when it publishes. A change set of any
// size publishes: beyond one commit's limits its changes are committed in
// parts, and the revision record last.
func (l *Layer) PublishChanges(info PublishInfo, batches []Batch) (Revision, error) {
	if l.closed.Load() {
		return Revision{}, ErrClosed
	}
	// Check every record first, so that a publish never fails half-way
	// for bad input.
	for _, b := range batches {
		for i := range b.Changes {
			if c := &b.Changes[i]; !c.Delete && !validObject(c.Data) {
				return Revision{}, fmt.Errorf("store: %s %s/%s: %w", b.Source, c.Model, c.ID, errNotObject)
			}
		}
	}
	l.pub.Lock()
	defer l.pub.Unlock()
	ts := l.nextTS()
	if st := l.staging; st != nil && ts >= st.base {
		return Revision{}, fmt.Errorf("store: the staging of run %s has used up the timestamps below it; it must publish first", st.run)
	}
	// Read what is published (and this publish's own writes): never a
	// staging in progress, whose writes lie above ts.
	txn := l.db.NewTransactionAt(ts-1, true)
	defer func() { txn.Discard() }()
	start := l.publishedTS()
	var seq uint32
	counts := map[string]map[string]Counts{}
	var changed [][]byte
	var parts, inCommit, bytesInCommit int
	// commitPart commits what txn holds at ts and opens the next part,
	// which reads the earlier parts' writes.
	commitPart := func() error {
		if parts == 0 {
			if err := txn.Set(metaKey(metaPublishing), nil); err != nil {
				return err
			}
		}
		if err := txn.CommitAt(ts, nil); err != nil {
			return err
		}
		parts++
		if testHookPublishPart != nil {
			if err := testHookPublishPart(parts); err != nil {
				return err
			}
		}
		txn = l.db.NewTransactionAt(ts, true)
		inCommit, bytesInCommit = 0, 0
		return nil
	}
	var a applier
	apply := func(b *Batch) error {
		if counts[b.Source] == nil {
			counts[b.Source] = map[string]Counts{}
		}
		a = applier{
			source: b.Source, opts: b.Options, ts: ts, base: ts, start: start,
			seq:     func() uint32 { seq++; return seq },
			payload: func(c Cursor) ([]byte, error) { return readPayload(txn, c) },
			counts:  counts[b.Source],
			written: func(key []byte, _ indexEntry) { changed = append(changed, key) },
			vlog:    &l.vlog,
		}
		one := func(c *Change) error {
			key := indexKey(b.Source, c.Model, c.ID)
			cur, found, err := readIndex(txn, key)
			if err != nil {
				return err
			}
			if err := a.apply(c, key, cur, found); err != nil {
				return fmt.Errorf("store: %s %s/%s: %w", b.Source, c.Model, c.ID, err)
			}
			inCommit++
			bytesInCommit += len(c.Data) + len(key) + 64
			return nil
		}
		for i := range b.Changes {
			c := &b.Changes[i]
			if inCommit >= commitChanges || bytesInCommit >= commitBytes {
				if err := commitPart(); err != nil {
					return err
				}
			}
			a.w = txn
			cs := []Change{*c}
			if byID(c) {
				var err error
				if cs, err = resolveByIDTxn(txn, b.Source, c.ID); err != nil {
					return err
				}
			}
			for j := range cs {
				if err := one(&cs[j]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	fail := func(err error) (Revision, error) {
		if parts > 0 {
			// Undo the parts committed so far (nothing saw them).
			txn.Discard()
			if _, rerr := l.rollbackRange(start, ts, l.nextTS()); rerr != nil {
				l.log.Error("could not roll back a partial webhook batch; the next start will", "error", rerr)
				return Revision{}, err
			}
			if rerr := l.setLatestLocked(func(txn *badger.Txn) error { return txn.Delete(metaKey(metaPublishing)) }); rerr != nil {
				l.log.Error("could not clear the partial publish marker", "error", rerr)
			}
		}
		return Revision{}, err
	}
	for i := range batches {
		if err := apply(&batches[i]); err != nil {
			return fail(err)
		}
	}
	if parts > 0 {
		if err := txn.Delete(metaKey(metaPublishing)); err != nil {
			return fail(err)
		}
	}
	if l.hasFieldIndexes() {
		// Index writes go in parts of their own, after the changes.
		if err := commitPart(); err != nil {
			return fail(err)
		}
		if err := l.indexDirect(txn, ts, start); err != nil {
			return fail(err)
		}
	}
	rev, err := l.commitRevision(txn, ts, info, counts)
	if err != nil {
		return fail(err)
	}
	if st := l.staging; st != nil {
		for _, k := range changed {
			st.intervening[string(k)] = struct{}{}
		}
	}
	return rev, nil
}
