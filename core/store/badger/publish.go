package badger

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/synclayer/synclayer/core/store"
)

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
		if err := store.CheckChanges(b.Source, b.Changes); err != nil {
			return Revision{}, fmt.Errorf("store: %w", err)
		}
	}
	rev, err := l.publishChanges(info, batches)
	return l.madeVisible(rev, err, "publish")
}

// publishChanges commits checked change sets as a revision, under l.pub.
func (l *Layer) publishChanges(info PublishInfo, batches []Batch) (Revision, error) {
	l.pub.Lock()
	defer l.pub.Unlock()
	d, err := l.beginDirect(0)
	if err != nil {
		return Revision{}, err
	}
	defer d.discard()
	for i := range batches {
		b := &batches[i]
		for j := range b.Changes {
			if err := d.apply(b.Source, b.Options, &b.Changes[j], shapeUnchecked); err != nil {
				return d.fail(err)
			}
		}
	}
	return d.finish(info, nil)
}

// direct is a change set applied and published in one go, under l.pub: a
// batch of payload webhooks, a run that staged privately, a connection's
// records deleted. Its writes are at one timestamp above every published
// revision and below a staging in place, in as many commits as it takes;
// readers cannot see them until the revision record, committed last.
type direct struct {
	l *Layer
	// ts is the timestamp of the writes and of the revision; start is the
	// newest published timestamp when the change set began (for merging);
	// prev is the newest published timestamp now.
	ts, start, prev uint64
	txn             *badger.Txn
	seq             uint32
	counts          map[string]map[string]Counts
	changed         [][]byte
	appliers        map[string]*applier
	parts           int
	inCommit        int
	bytesInCommit   int
	// fresh records, by index prefix (source key and model), whether the
	// model had no index entry at all when this publish first wrote to it;
	// wrote has the index keys this publish wrote to such models. A
	// change to a fresh model then needs no read unless wrote has its key
	// (a connection's first run: no lookup through every level of the
	// tree for each record).
	fresh map[string]bool
	wrote map[string]struct{}
}

// beginDirect starts a direct publish. start is the published timestamp
// its change set began at (0: now). Call with l.pub held.
func (l *Layer) beginDirect(start uint64) (*direct, error) {
	ts := l.nextTS()
	if st := l.staging; st != nil && ts >= st.base {
		return nil, fmt.Errorf("store: the staging of run %s has used up the timestamps below it; it must publish first", st.run)
	}
	prev := l.publishedTS()
	if start == 0 {
		start = prev
	}
	// Read what is published (and this publish's own writes): never a
	// staging in progress, whose writes lie above ts.
	return &direct{l: l, ts: ts, start: start, prev: prev, txn: l.db.NewTransactionAt(ts-1, true),
		counts: map[string]map[string]Counts{}, appliers: map[string]*applier{}}, nil
}

func (d *direct) discard() { d.txn.Discard() }

// commitPart commits what the transaction holds at ts and opens the next
// part, which reads the earlier parts' writes.
func (d *direct) commitPart() error {
	if d.parts == 0 {
		if err := d.txn.Set(metaKey(metaPublishing), nil); err != nil {
			return err
		}
	}
	if err := d.txn.CommitAt(d.ts, nil); err != nil {
		return err
	}
	d.parts++
	if testHookPublishPart != nil {
		if err := testHookPublishPart(d.parts); err != nil {
			return err
		}
	}
	d.txn = d.l.db.NewTransactionAt(d.ts, true)
	d.inCommit, d.bytesInCommit = 0, 0
	return nil
}

// applierFor returns the applier of a source key's changes.
func (d *direct) applierFor(source string, opts WriterOptions) *applier {
	if a := d.appliers[source]; a != nil {
		a.opts = opts
		return a
	}
	// Counts are by source: the changes of all connections of a source
	// add up.
	plain, _ := SplitSourceKey(source)
	if d.counts[plain] == nil {
		d.counts[plain] = map[string]Counts{}
	}
	a := &applier{
		source: source, opts: opts, ts: d.ts, base: d.ts, start: d.start,
		seq:     func() uint32 { d.seq++; return d.seq },
		payload: func(c Cursor) ([]byte, error) { return readPayload(d.txn, c) },
		counts:  d.counts[plain],
		written: func(key []byte, _ indexEntry) { d.changed = append(d.changed, key) },
		vlog:    &d.l.vlog,
	}
	d.appliers[source] = a
	return a
}

// apply applies one change of a source key; shape is what is known of its
// JSON (shapeUnchecked: nothing).
func (d *direct) apply(source string, opts WriterOptions, c *Change, shape payloadShape) error {
	if d.inCommit >= commitChanges || d.bytesInCommit >= commitBytes {
		if err := d.commitPart(); err != nil {
			return err
		}
	}
	a := d.applierFor(source, opts)
	a.w = d.txn
	cs := []Change{*c}
	if byID(c) {
		var err error
		if cs, err = resolveByIDTxn(d.txn, source, c.ID); err != nil {
			return err
		}
	}
	for j := range cs {
		c := &cs[j]
		key := indexKey(source, c.Model, c.ID)
		fresh := d.isFresh(key[:len(key)-len(c.ID)])
		var (
			cur   indexEntry
			found bool
			err   error
		)
		if _, wrote := d.wrote[string(key)]; !fresh || wrote {
			if cur, found, err = readIndex(d.txn, key); err != nil {
				return err
			}
		}
		if err := a.apply(c, shape, key, cur, found); err != nil {
			return fmt.Errorf("store: %s %s/%s: %w", source, c.Model, c.ID, err)
		}
		if fresh {
			d.wrote[string(key)] = struct{}{}
		}
		d.inCommit++
		d.bytesInCommit += len(c.Data) + len(key) + 64
	}
	return nil
}

// isFresh tells whether the model of an index prefix had no index entry
// when this publish first wrote to it (see direct.fresh).
func (d *direct) isFresh(prefix []byte) bool {
	if f, ok := d.fresh[string(prefix)]; ok {
		return f
	}
	f := !hasKeyUnder(d.txn, prefix)
	if d.fresh == nil {
		d.fresh, d.wrote = map[string]bool{}, map[string]struct{}{}
	}
	d.fresh[string(prefix)] = f
	return f
}

// del deletes a key in the publish (a private staging's own keys).
func (d *direct) del(key []byte) error {
	if d.inCommit >= commitChanges || d.bytesInCommit >= commitBytes {
		if err := d.commitPart(); err != nil {
			return err
		}
	}
	d.inCommit++
	d.bytesInCommit += len(key) + 32
	return d.txn.Delete(key)
}

// fail undoes the parts committed so far (nothing saw them).
func (d *direct) fail(err error) (Revision, error) {
	l := d.l
	if d.parts > 0 {
		d.txn.Discard()
		if _, rerr := l.rollbackRange(d.prev, d.ts, l.nextTS()); rerr != nil {
			l.log.Error("could not roll back a partial publish; the next start will", "error", rerr)
			return Revision{}, err
		}
		if rerr := l.setLatestLocked(func(txn *badger.Txn) error { return txn.Delete(metaKey(metaPublishing)) }); rerr != nil {
			l.log.Error("could not clear the partial publish marker", "error", rerr)
		}
	}
	return Revision{}, err
}

// finish maintains the field indexes, lets also add its writes to the
// revision's commit, and commits the revision.
func (d *direct) finish(info PublishInfo, also func(txn *badger.Txn) error) (Revision, error) {
	l := d.l
	if d.parts > 0 {
		if err := d.txn.Delete(metaKey(metaPublishing)); err != nil {
			return d.fail(err)
		}
	}
	if l.hasFieldIndexes() {
		// Index writes go in parts of their own, after the changes.
		if err := d.commitPart(); err != nil {
			return d.fail(err)
		}
		if err := l.indexDirect(d.txn, d.ts, d.prev); err != nil {
			return d.fail(err)
		}
	}
	if also != nil {
		if err := also(d.txn); err != nil {
			return d.fail(err)
		}
	}
	rev, err := l.commitRevision(d.txn, d.ts, info, d.counts)
	if err != nil {
		return d.fail(err)
	}
	if st := l.staging; st != nil {
		for _, k := range d.changed {
			st.intervening[string(k)] = struct{}{}
		}
	}
	return rev, nil
}
