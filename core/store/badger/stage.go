package badger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"
)

// Staging is a run's change set in progress. Its changes are written in
// place, at timestamps above every published revision, so readers do not
// see them until Publish commits the revision record; Abort restores every
// key it touched. A staging survives a failed attempt of its run: the retry
// writes on top of it (NextAttempt) and resumes from the run's checkpoints.
// At most one staging is in place per layer; runs that begin while it is
// open stage privately (private.go), so any number of runs stage at once.
type Staging struct {
	l     *Layer
	run   string
	base  uint64 // timestamp of the first attempt's writes
	ts    uint64 // timestamp of the current attempt's writes
	start uint64 // newest published timestamp when staging began
	seq   atomic.Uint32

	mu      sync.Mutex
	counts  map[string]map[string]Counts
	writers []*StageWriter
	done    bool
	// intervening are the index keys that revisions published while this
	// staging was open changed (guarded by l.pub).
	intervening map[string]struct{}
	// tracked are the (source, model) pairs whose unseen records become
	// deleted when the staging is published.
	tracked map[[2]string]bool
	// sources are the source keys the staging has had writers for, in
	// any attempt: its records are theirs.
	sources map[string]bool
	// cps are the run's checkpoints by source key and sync, committed
	// when it publishes. They are kept in memory only:
	// a run interrupted by a restart is queued again from its committed
	// checkpoints, never from these.
	cps map[[2]string][]byte
	// ignore are the (source, model) pairs whose sync merges with
	// ignore_if_modified_after (model "": every model of the source).
	ignore map[[2]string]bool

	// private is set for a staging that keeps its changes aside until it
	// publishes (private.go); gts is the timestamp of its writes, gseq
	// numbers its changes, opts are its writers' options by source key.
	private bool
	gts     uint64
	gseq    atomic.Uint64
	opts    map[string]WriterOptions
	mem     privateMem
}

// BeginStaging starts staging a run's changes: in place when no other run
// does, else privately. Runs stage concurrently; each publishes as its own
// revision.
func (l *Layer) beginStaging(run string) (*Staging, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	l.pub.Lock()
	defer l.pub.Unlock()
	if l.staging != nil {
		return &Staging{l: l, run: run, private: true, gts: l.nextTS(), start: l.publishedTS(),
			counts: map[string]map[string]Counts{}, tracked: map[[2]string]bool{}, ignore: map[[2]string]bool{},
			opts: map[string]WriterOptions{}}, nil
	}
	txn := l.db.NewTransactionAt(readLatest, true)
	defer txn.Discard()
	if err := txn.Set(metaKey(metaStaging), []byte(run)); err != nil {
		return nil, err
	}
	if err := txn.CommitAt(l.nextTS(), nil); err != nil {
		return nil, fmt.Errorf("store: begin staging: %w", err)
	}
	base := l.ts + stagingGap
	st := &Staging{l: l, run: run, base: base, ts: base, start: l.publishedTS(),
		counts: map[string]map[string]Counts{}, intervening: map[string]struct{}{}, tracked: map[[2]string]bool{},
		ignore: map[[2]string]bool{}}
	l.staging = st
	return st, nil
}

// Run is the id of the staging's run.
func (st *Staging) Run() string { return st.run }

// NextAttempt prepares the staging for a retry of its run: writers of the
// failed attempt must be closed; the changes they flushed stay staged.
func (st *Staging) NextAttempt() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		return ErrStagingDone
	}
	for _, w := range st.writers {
		if !w.closed {
			return errors.New("store: next attempt with a writer still open")
		}
	}
	st.writers = nil
	st.ts++
	return nil
}

// Checkpoint returns the checkpoint a sync should resume from: the last
// one this run recorded (own is then true: a retry continues its failed
// attempt), else (unless fromScratch) the sync's committed checkpoint.
func (st *Staging) Checkpoint(source, sync string, fromScratch bool) (cp []byte, own bool, err error) {
	st.mu.Lock()
	cp = st.cps[[2]string{source, sync}]
	st.mu.Unlock()
	if cp != nil {
		return append([]byte(nil), cp...), true, nil
	}
	if fromScratch {
		return nil, false, nil
	}
	cp, err = st.l.Checkpoint(source, sync)
	return cp, false, err
}

// Writer returns a writer for one source's changes. Writers of different
// sources may be used concurrently; one writer is not safe for concurrent
// use.
func (st *Staging) writer(source string, opts WriterOptions) *StageWriter {
	w := &StageWriter{st: st, source: source, opts: opts, fresh: map[string]bool{}, pending: map[uint64]pendingEntry{},
		counts: map[string]Counts{}, track: map[string]bool{}}
	for _, m := range opts.TrackDeletes {
		w.track[m] = true
	}
	st.mu.Lock()
	st.writers = append(st.writers, w)
	if st.sources == nil {
		st.sources = map[string]bool{}
	}
	st.sources[source] = true
	if st.private {
		st.opts[source] = opts
	}
	opts.AddPairs(source, st.tracked, st.ignore)
	st.mu.Unlock()
	w.a = applier{
		source: source, opts: opts, ts: st.ts, base: st.base, start: st.start,
		seq:     func() uint32 { return st.seq.Add(1) },
		payload: w.entryPayload,
		counts:  w.counts,
		written: func(key []byte, e indexEntry) { w.pending[xxhash.Sum64(key)] = pendingEntry{key, e} },
		vlog:    &st.l.vlog,
	}
	return w
}

// pendingEntry is an index entry written but not yet flushed.
type pendingEntry struct {
	key []byte
	e   indexEntry
}

// pendingLimit bounds the changes written but not yet flushed by a writer.
const pendingLimit = 20000

// StageWriter applies one source's changes to a staging.
type StageWriter struct {
	st     *Staging
	source string
	opts   WriterOptions
	a      applier
	wb     *loader
	// fresh records, per model, whether the model had no records at all
	// before this run: then a change needs no read unless its id may have
	// been written earlier in this run (seen answers that).
	fresh map[string]bool
	seen  bloom
	// flushed holds the hashes of the index keys flushed before seen is
	// made (keepSeen).
	flushed []uint64
	// pending holds the index entries written since the last flush, which
	// reads cannot see yet, by the hash of their key; prev those of the
	// flush in flight (rotate), which reads may not see yet.
	pending, prev map[uint64]pendingEntry
	// inflight reports the end of the flush in flight, nil if none; waiting
	// are the checkpoints taken behind it, kept once it succeeded.
	inflight chan error
	waiting  []writerCheckpoint
	counts   map[string]Counts
	track    map[string]bool
	err      error
	closed   bool
	// staged counts the changes a private writer wrote since its last flush.
	staged int
	// shapes are those of the batch a private writer is applying.
	shapes []payloadShape
	// it walks the record index for lookups (see lookup).
	it    *badger.Iterator
	itTxn *badger.Txn
}

// Apply stages a batch of changes. Changes to one record within a batch are
// applied in order.
func (w *StageWriter) Apply(changes []Change) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("store: writer closed")
	}
	apply := w.apply
	if w.st.private {
		apply = w.applyPrivate
	}
	if err := apply(changes); err != nil {
		w.err = err
		return err
	}
	return nil
}

func (w *StageWriter) apply(changes []Change) error {
	st := w.st
	if st.l.closed.Load() {
		return ErrClosed
	}
	for i := range changes {
		c := &changes[i]
		if byID(c) {
			dels, err := w.resolveByID(c.ID)
			if err == nil {
				err = w.apply(dels)
			}
			if err != nil {
				return err
			}
			continue
		}
		fresh, ok := w.fresh[c.Model]
		if !ok {
			var err error
			if fresh, err = w.isFresh(c.Model); err != nil {
				return err
			}
			w.fresh[c.Model] = fresh
		}
		key := appendIndexKey(w.a.alloc(3+len(w.source)+len(c.Model)+len(c.ID)), w.source, c.Model, c.ID)
		h := xxhash.Sum64(key)
		cur, found, err := w.unflushed(h, key)
		if err != nil {
			return err
		}
		if fresh {
			w.seenFilter()
		}
		if !found && (!fresh || w.seen.has(h)) {
			if cur, found, err = w.lookup(key); err != nil {
				return err
			}
		}
		if fresh && w.seen.bits != nil {
			w.seen.add(h)
		}
		w.a.w = w.batch()
		if err := w.a.apply(c, shapeUnchecked, key, cur, found); err != nil {
			return fmt.Errorf("store: %s %s/%s: %w", w.source, c.Model, c.ID, err)
		}
		if !c.Delete && w.track[c.Model] {
			// Mark the record seen by this run, for track_deletes.
			if err := w.batch().Set(seenKey(st.run, w.source, c.Model, c.ID), nil); err != nil {
				return err
			}
		}
	}
	if len(w.pending) >= pendingLimit || w.wb != nil && w.wb.bytes >= flushBytes {
		return w.rotate()
	}
	return nil
}

// unflushed returns the index entry of key (of hash h) if this writer
// wrote it and it may not be readable yet: pending holds the newest
// entries, prev those of the flush in flight. On a hash collision it
// makes everything readable, and the caller looks the key up.
//
// A change to a record of the flush in flight waits for that flush first.
// What the change writes (the record's index entry again, a delete of its
// record entry) is at the same timestamp, so the later write must reach
// Badger later; the loader in use may already be sending its batches,
// while the flush in flight has still to send its last one.
func (w *StageWriter) unflushed(h uint64, key []byte) (indexEntry, bool, error) {
	if p, ok := w.pending[h]; ok {
		if bytes.Equal(p.key, key) {
			return p.e, true, nil
		}
		return indexEntry{}, false, w.flush()
	}
	if p, ok := w.prev[h]; ok {
		err := w.settle()
		if err == nil && bytes.Equal(p.key, key) {
			return p.e, true, nil
		}
		return indexEntry{}, false, err
	}
	return indexEntry{}, false, nil
}

func seenKey(run, source, model, id string) []byte { return strKey(pfxSeen, run, source, model, id) }

func (w *StageWriter) isFresh(model string) (bool, error) {
	fresh := true
	err := w.st.l.viewLatest(func(txn *badger.Txn) error {
		fresh = !hasKeyUnder(txn, indexPrefix(w.source, model))
		return nil
	})
	return fresh, err
}

// hasKeyUnder tells whether txn sees a key with the prefix (a model's
// index entries: whether it has records).
func hasKeyUnder(txn *badger.Txn, prefix []byte) bool {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	it.Rewind()
	return it.Valid()
}

// entryPayload reads the payload of the record entry at cursor c.
func (w *StageWriter) entryPayload(c Cursor) ([]byte, error) {
	if c.Timestamp() >= w.st.base {
		// Written by this run, perhaps not yet flushed.
		if err := w.flush(); err != nil {
			return nil, err
		}
		w.a.w = w.batch()
	}
	var payload []byte
	err := w.st.l.viewLatest(func(txn *badger.Txn) (err error) {
		payload, err = readPayload(txn, c)
		return err
	})
	return payload, err
}

// batch returns the writer's loader, starting one if needed.
func (w *StageWriter) batch() *loader {
	if w.wb == nil {
		w.wb = newLoader(w.st.l.db, w.st.ts)
	}
	return w.wb
}

// flushBytes is how many bytes of keys and values a writer's loader takes
// before the writer hands it to a flush (rotate). The records of two
// loaders are on the heap at a time, the one in flight and the one in use,
// and it bounds both: pendingLimit alone would let 20,000 records of any
// size into each.
const flushBytes = 4 << 20

// maxPendingTxns bounds the batches a writer has in flight: each holds up
// to a few MiB of records on the heap; a few in flight keep the disk busy.
const maxPendingTxns = 4

// flush makes every change applied so far durable and readable.
func (w *StageWriter) flush() error {
	if err := w.rotate(); err != nil {
		return err
	}
	return w.settle()
}

// rotate hands the writes since the last flush to a flush of their own,
// in the background, and starts a new loader: the writer goes on applying
// changes while Badger takes them in. (Flushing in line, every 10,000
// records at a generator's checkpoints and every pendingLimit changes,
// left the applying goroutine waiting for Badger a third of the time, a
// pipeline drained a hundred times per million records.) One flush is in
// flight at most: rotate first waits for the one before, so flushes end
// in order and whatever settle finds done leaves nothing older behind.
func (w *StageWriter) rotate() error {
	// Lookups read as of the last flush, including what revisions
	// published meanwhile changed (reconcile settles the rest).
	w.closeIter()
	if w.wb == nil {
		return nil
	}
	if err := w.settle(); err != nil {
		return err
	}
	wb := w.wb
	w.wb = nil
	done := make(chan error, 1)
	go func() {
		if beforeFlush != nil {
			beforeFlush()
		}
		done <- wb.Flush()
	}()
	w.inflight = done
	w.keepSeen()
	if w.prev == nil {
		w.prev = make(map[uint64]pendingEntry, len(w.pending))
	}
	w.pending, w.prev = w.prev, w.pending
	return nil
}

// settle waits for the flush in flight, if any; once it succeeded, the
// checkpoints taken behind it are the run's.
func (w *StageWriter) settle() error {
	if w.inflight == nil {
		return nil
	}
	err := <-w.inflight
	w.inflight = nil
	// Reads now find in the database what prev held; the lookup
	// iterator's snapshot may be older than some of it.
	w.closeIter()
	clear(w.prev)
	cps := w.waiting
	w.waiting = nil
	if err != nil {
		return err
	}
	for _, cp := range cps {
		w.st.keepCheckpoint(w.source, cp.sync, cp.state)
	}
	return nil
}

// beforeFlush, when set (by tests), runs before a flush handed off by
// rotate starts: a late start of its goroutine.
var beforeFlush func()

// writerCheckpoint is a checkpoint waiting for the flush in flight.
type writerCheckpoint struct {
	sync  string
	state []byte
}

// keepSeen keeps the ids pending holds before pending is cleared, when a
// model is fresh: until the first flush pending itself tells which ids the
// run wrote. The filter (1 MiB) is made only when a change follows a flush
// (seenFilter); until then the flushed ids' hashes wait in flushed. So a
// run that flushes only at its end (a connection's, a webhook's: at its
// last checkpoint, at Close) never makes it: with thousands of
// connections, the filters of runs that happened to stage in place were a
// fifth of the host's allocated bytes.
func (w *StageWriter) keepSeen() {
	if len(w.pending) == 0 {
		return
	}
	if w.seen.bits == nil {
		fresh := false
		for _, f := range w.fresh {
			fresh = fresh || f
		}
		if !fresh {
			return
		}
		for h := range w.pending {
			w.flushed = append(w.flushed, h)
		}
		return
	}
	for h := range w.pending {
		w.seen.add(h)
	}
}

// seenFilter makes the filter of written ids from the flushed ones, once a
// change to a fresh model follows a flush.
func (w *StageWriter) seenFilter() {
	if w.seen.bits != nil || len(w.flushed) == 0 {
		return
	}
	w.seen = newBloom(1 << 23)
	for _, h := range w.flushed {
		w.seen.add(h)
	}
	w.flushed = nil
}

// lookup reads the index entry of key. Connectors mostly send records in
// id order, and index keys sort by id, so one iterator walking forward
// answers most lookups with a step or two instead of a point read through
// every level of the tree. The iterator's snapshot is as of the last flush;
// what was written since is in w.pending, which callers check first.
func (w *StageWriter) lookup(key []byte) (indexEntry, bool, error) {
	if w.it == nil {
		w.itTxn = w.st.l.db.NewTransactionAt(readLatest, false)
		w.it = w.itTxn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxIndex}})
		w.it.Seek(key)
	} else if !w.it.Valid() || bytes.Compare(w.it.Item().Key(), key) > 0 {
		w.it.Seek(key)
	} else {
		for n := 0; w.it.Valid() && bytes.Compare(w.it.Item().Key(), key) < 0; n++ {
			if n == 4 {
				w.it.Seek(key)
				break
			}
			w.it.Next()
		}
	}
	if !w.it.Valid() || !bytes.Equal(w.it.Item().Key(), key) {
		return indexEntry{}, false, nil
	}
	var ie indexEntry
	err := w.it.Item().Value(func(v []byte) (err error) { ie, err = decodeIndex(v); return })
	return ie, err == nil, err
}

func (w *StageWriter) closeIter() {
	if w.it != nil {
		w.it.Close()
		w.itTxn.Discard()
		w.it, w.itTxn = nil, nil
	}
}

// Checkpoint records the checkpoint of one of the writer's source's syncs
// for this run, once every change applied before it is in the database:
// it starts flushing them (rotate) and the checkpoint waits for that
// flush, so a later flush or Close keeps it, and a failed one drops it. A
// retry of the run resumes from the last checkpoint kept; it becomes the
// sync's committed checkpoint when the run is published. Until then it is
// kept in memory (a commit less per checkpoint): a run cut short by a
// restart starts again from the sync's committed checkpoint.
func (w *StageWriter) Checkpoint(sync string, state []byte) error {
	if w.err != nil {
		return w.err
	}
	if !json.Valid(state) {
		return fmt.Errorf("store: checkpoint of %s/%s is not valid JSON", w.source, sync)
	}
	if err := w.rotate(); err != nil {
		w.err = err
		return err
	}
	state = append([]byte(nil), state...)
	if w.inflight == nil {
		w.st.keepCheckpoint(w.source, sync, state)
		return nil
	}
	w.waiting = append(w.waiting, writerCheckpoint{sync, state})
	return nil
}

// keepCheckpoint records a checkpoint of the run's (Checkpoint).
func (st *Staging) keepCheckpoint(source, sync string, state []byte) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cps == nil {
		st.cps = map[[2]string][]byte{}
	}
	st.cps[[2]string{source, sync}] = state
}

// Close flushes the writer and folds its counts into the staging's. It
// returns the writer's first error, if any.
func (w *StageWriter) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	w.closeIter()
	if w.err != nil {
		if w.wb != nil {
			w.wb.Cancel()
			w.wb = nil
		}
		// Nothing of the writer's may land after Close: a rollback
		// follows.
		w.settle()
		return w.err
	}
	if err := w.flush(); err != nil {
		w.err = err
		return err
	}
	w.st.addCounts(w.source, w.counts)
	return nil
}

func (st *Staging) addCounts(source string, counts map[string]Counts) {
	// Counts are by source: the changes of a source's connections add up.
	source, _ = SplitSourceKey(source)
	st.mu.Lock()
	defer st.mu.Unlock()
	m := st.counts[source]
	if m == nil {
		m = map[string]Counts{}
		st.counts[source] = m
	}
	for model, c := range counts {
		t := m[model]
		t.Added += c.Added
		t.Updated += c.Updated
		t.Deleted += c.Deleted
		t.Unchanged += c.Unchanged
		m[model] = t
	}
}

// Counts returns the changes staged so far by closed writers, by source and
// model.
func (st *Staging) Counts() map[string]map[string]Counts {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make(map[string]map[string]Counts, len(st.counts))
	for s, m := range st.counts {
		mm := make(map[string]Counts, len(m))
		for k, v := range m {
			mm[k] = v
		}
		out[s] = mm
	}
	return out
}

// Publish closes every writer and commits the staging as a new revision,
// together with the run's checkpoints. Records of tracked models that the
// run did not save become deleted first. Readers see all of it or none.
func (st *Staging) Publish(info PublishInfo) (Revision, error) {
	st.mu.Lock()
	if st.done {
		st.mu.Unlock()
		return Revision{}, ErrStagingDone
	}
	writers := append([]*StageWriter(nil), st.writers...)
	st.mu.Unlock()
	for _, w := range writers {
		if err := w.Close(); err != nil {
			return Revision{}, fmt.Errorf("store: publish run %s: source %s: %w", st.run, w.source, err)
		}
	}
	if st.private {
		return st.publishPrivate(info)
	}
	if err := st.deleteUnseen(); err != nil {
		return Revision{}, fmt.Errorf("store: publish run %s: track deletes: %w", st.run, err)
	}
	rev, err := st.publishInPlace(info)
	return st.l.madeVisible(rev, err, "publish run "+st.run)
}

// publishInPlace commits an in-place staging as a revision, under l.pub.
func (st *Staging) publishInPlace(info PublishInfo) (Revision, error) {
	l := st.l
	l.pub.Lock()
	defer l.pub.Unlock()
	// The revision commits above every staged write; reconciling with
	// revisions published meanwhile happens at that timestamp too, in as
	// many commits as it takes: none is visible before the revision
	// record, committed last (a crash before it rolls the run back).
	ts := st.ts + 1
	if err := st.reconcile(ts); err != nil {
		return Revision{}, fmt.Errorf("store: publish run %s: %w", st.run, err)
	}
	txn := l.db.NewTransactionAt(readLatest, true)
	defer txn.Discard()
	if err := l.indexStaged(txn, st); err != nil {
		return Revision{}, fmt.Errorf("store: publish run %s: %w", st.run, err)
	}
	if err := st.moveCheckpoints(txn); err != nil {
		return Revision{}, err
	}
	if err := txn.Delete(metaKey(metaStaging)); err != nil {
		return Revision{}, err
	}
	if info.Run == "" {
		info.Run = st.run
	}
	rev, err := l.commitRevision(txn, ts, info, st.Counts())
	if err != nil {
		return Revision{}, fmt.Errorf("store: publish run %s: %w", st.run, err)
	}
	st.mu.Lock()
	st.done = true
	st.mu.Unlock()
	l.staging = nil
	st.dropSeen()
	return rev, nil
}

// commitRevision adds the revision record to txn and commits it at ts.
// Call with l.pub held; once it succeeded, the caller releases l.pub and
// runs awaitVisible(rev.Number) before it returns the revision.
func (l *Layer) commitRevision(txn *badger.Txn, ts uint64, info PublishInfo, counts map[string]map[string]Counts) (Revision, error) {
	if err := l.publishable(); err != nil {
		return Revision{}, err
	}
	sources := append([]string(nil), info.Sources...)
	sort.Strings(sources)
	if sources == nil {
		sources = []string{}
	}
	rev := Revision{CreatedAt: l.commitTime(), Trigger: info.Trigger, Run: info.Run, Sources: sources, Counts: counts, TS: ts, Number: 1}
	l.mu.RLock()
	if n := len(l.refs); n > 0 {
		rev.Number = l.refs[n-1].num + 1
	}
	l.mu.RUnlock()
	b, err := json.Marshal(rev)
	if err != nil {
		return Revision{}, err
	}
	if err := txn.Set(u64Key(pfxRevision, uint64(rev.Number)), b); err != nil {
		return Revision{}, err
	}
	ref := refOf(rev)
	if err := txn.Set(refKey(ts), ref.value()); err != nil {
		return Revision{}, err
	}
	// Retention moves with the commit: the discard point is persisted
	// with the revision that moves it, and revision records no longer
	// readable go in the same commit.
	plan := l.planRetention(time.Now(), &ref)
	if err := plan.write(txn); err != nil {
		return Revision{}, err
	}
	if err := consumeInbox(txn, info.Consume); err != nil {
		return Revision{}, err
	}
	var announced bool
	if info.Announce != nil {
		ds := info.Announce(rev)
		if err := putDeliveries(txn, ds); err != nil {
			return Revision{}, err
		}
		announced = len(ds) > 0
	}
	for name, v := range info.Meta {
		if err := txn.Set(metaKey("x/"+name), v); err != nil {
			return Revision{}, err
		}
	}
	if err := txn.CommitAt(ts, nil); err != nil {
		return Revision{}, err
	}
	// Committed: the next revision numbers and plans after it. Readers
	// see it once it survives a power cut (awaitVisible, which the
	// caller runs after releasing l.pub; on a failed fsync the revision
	// stays invisible until the next start finds it on disk).
	l.appendRevision(rev)
	l.committed(pendingRevision{num: rev.Number, ts: ts, plan: plan, consumed: len(info.Consume), announced: announced})
	if ts > l.ts {
		l.ts = ts
	}
	return rev, nil
}

// reconcile settles records that both this staging and a revision
// published while it was open changed. The published change wins under
// ignore_if_modified_after, the staged one under override; either way each
// record keeps exactly one record entry. A staged change that gives way is
// no longer counted. It commits at ts, in parts. Call with l.pub held.
func (st *Staging) reconcile(ts uint64) error {
	if len(st.intervening) == 0 {
		return nil
	}
	published := st.l.db.NewTransactionAt(st.l.publishedTS(), false)
	defer published.Discard()
	// Only records of the staging's own source keys can be both: the
	// revisions of other connections' runs changed none of them.
	st.mu.Lock()
	keys := make([]string, 0, len(st.intervening))
	for k := range st.intervening {
		if k[0] == pfxIndex {
			if source, _, ok := strings.Cut(k[1:], "\x00"); ok && !st.sources[source] {
				continue
			}
		}
		keys = append(keys, k)
	}
	st.mu.Unlock()
	sort.Strings(keys)
	for len(keys) > 0 {
		part := keys[:min(len(keys), commitChanges)]
		keys = keys[len(part):]
		txn := st.l.db.NewTransactionAt(readLatest, true)
		err := st.reconcilePart(txn, published, part)
		if err == nil {
			err = txn.CommitAt(ts, nil)
		}
		txn.Discard()
		if err != nil {
			return err
		}
	}
	return nil
}

func (st *Staging) reconcilePart(txn, published *badger.Txn, keys []string) error {
	for _, k := range keys {
		key := []byte(k)
		staged, ok, err := readIndex(txn, key)
		if err != nil {
			return err
		}
		if !ok || staged.cursor.Timestamp() < st.base {
			continue // this run did not touch it
		}
		pub, ok, err := readIndex(published, key)
		if err != nil || !ok {
			return err
		}
		source, model, _ := splitIndexKey(key)
		if st.ignoreIfModifiedAfter(source, model) {
			// The published change stands: drop the staged entry, and
			// stop counting it.
			if err := txn.Delete(recordKey(staged.cursor)); err != nil {
				return err
			}
			if err := txn.Set(key, pub.encode()); err != nil {
				return err
			}
			st.uncount(source, model, staged)
			continue
		}
		// The staged change stands: drop the entry the published change made.
		if pub.cursor != staged.cursor {
			if err := txn.Delete(recordKey(pub.cursor)); err != nil {
				return err
			}
		}
	}
	return nil
}

// uncount takes back the count of a staged change that gave way.
func (st *Staging) uncount(source, model string, staged indexEntry) {
	source, _ = SplitSourceKey(source)
	st.mu.Lock()
	defer st.mu.Unlock()
	m := st.counts[source]
	if m == nil {
		return
	}
	c := m[model]
	switch {
	case staged.deleted:
		c.Deleted = max(c.Deleted-1, 0)
	case staged.firstSeen >= st.base:
		c.Added = max(c.Added-1, 0)
	default:
		c.Updated = max(c.Updated-1, 0)
	}
	m[model] = c
}

func (st *Staging) ignoreIfModifiedAfter(source, model string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.ignore[[2]string{source, model}] || st.ignore[[2]string{source, ""}]
}

func splitIndexKey(key []byte) (source, model, id string) {
	parts := bytes.SplitN(key[1:], []byte{0}, 3)
	if len(parts) != 3 {
		return "", "", ""
	}
	return string(parts[0]), string(parts[1]), string(parts[2])
}

// deleteUnseen deletes the records of tracked models that the run did not
// save: it walks each model's index beside the run's seen markers, both in
// id order.
func (st *Staging) deleteUnseen() error {
	st.mu.Lock()
	tracked := make([][2]string, 0, len(st.tracked))
	for k := range st.tracked {
		tracked = append(tracked, k)
	}
	st.mu.Unlock()
	sort.Slice(tracked, func(i, j int) bool { return tracked[i][0]+"\x00"+tracked[i][1] < tracked[j][0]+"\x00"+tracked[j][1] })
	for _, sm := range tracked {
		source, model := sm[0], sm[1]
		var unseen []Change
		err := st.l.viewLatest(func(txn *badger.Txn) error {
			return walkUnseen(txn, txn, source, model, append(strKey(pfxSeen, st.run, source, model), 0), func(id []byte) error {
				unseen = append(unseen, Change{Model: model, ID: string(id), Delete: true})
				return nil
			}, nil)
		})
		if err != nil {
			return err
		}
		if len(unseen) == 0 {
			continue
		}
		// The merging strategy holds for these deletes too: under
		// ignore_if_modified_after a record a revision changed while the
		// run staged (a payload webhook) is not the run's to delete. (A
		// writer without it deleted that record's entry, and reconcile
		// then pointed the index back at the entry it had deleted.)
		w := st.writer(source, WriterOptions{IgnoreIfModifiedAfter: st.ignoreIfModifiedAfter(source, model)})
		for i := 0; i < len(unseen); i += 1000 {
			if err := w.Apply(unseen[i:min(i+1000, len(unseen))]); err != nil {
				w.Close()
				return err
			}
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	return nil
}

// unseenIfLive calls unseen with id when item, a record's index entry, is
// of a record not deleted: a run that did not see it deletes it.
func unseenIfLive(item *badger.Item, id []byte, unseen func(id []byte) error) error {
	var ie indexEntry
	if err := item.Value(func(v []byte) (err error) { ie, err = decodeIndex(v); return }); err != nil {
		return err
	}
	if ie.deleted {
		return nil
	}
	return unseen(id)
}

// walkUnseen walks the record index of (source, model) in idxTxn beside a
// run's seen markers (prefix seenPfx) in seenTxn, both in id order, and
// calls unseen with the id of each record not deleted that the run did not
// save; passed, when set, with the key of every seen marker once walked.
func walkUnseen(idxTxn, seenTxn *badger.Txn, source, model string, seenPfx []byte, unseen func(id []byte) error, passed func(key []byte) error) error {
	ipfx := indexPrefix(source, model)
	idx := idxTxn.NewIterator(badger.IteratorOptions{Prefix: ipfx})
	defer idx.Close()
	seen := seenTxn.NewIterator(badger.IteratorOptions{Prefix: seenPfx})
	defer seen.Close()
	next := func() error {
		if passed != nil {
			if err := passed(seen.Item().KeyCopy(nil)); err != nil {
				return err
			}
		}
		seen.Next()
		return nil
	}
	seen.Rewind()
	for idx.Rewind(); idx.Valid(); idx.Next() {
		id := idx.Item().Key()[len(ipfx):]
		for seen.Valid() && bytes.Compare(seen.Item().Key()[len(seenPfx):], id) < 0 {
			if err := next(); err != nil {
				return err
			}
		}
		if seen.Valid() && bytes.Equal(seen.Item().Key()[len(seenPfx):], id) {
			continue
		}
		if err := unseenIfLive(idx.Item(), id, unseen); err != nil {
			return err
		}
	}
	for seen.Valid() {
		if err := next(); err != nil {
			return err
		}
	}
	return nil
}

// dropSeen removes the run's seen markers.
func (st *Staging) dropSeen() {
	st.mu.Lock()
	n := len(st.tracked)
	st.mu.Unlock()
	if n == 0 {
		return
	}
	if err := st.l.db.DropPrefix(append(strKey(pfxSeen, st.run), 0)); err != nil {
		st.l.log.Warn("could not drop the seen markers of a run", "run", st.run, "error", err)
	}
}

// moveCheckpoints turns the run's pending checkpoints into committed ones.
func (st *Staging) moveCheckpoints(txn *badger.Txn) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	for k, cp := range st.cps {
		if err := txn.Set(strKey(pfxCheckpoint, k[0], k[1]), cp); err != nil {
			return err
		}
	}
	return nil
}

// Abort drops the staging: every key it touched returns to its published
// state and its checkpoints are discarded.
func (st *Staging) Abort() error {
	st.mu.Lock()
	if st.done {
		st.mu.Unlock()
		return ErrStagingDone
	}
	st.done = true
	writers := append([]*StageWriter(nil), st.writers...)
	st.mu.Unlock()
	for _, w := range writers {
		w.Close() // errors are moot: everything is rolled back
	}
	if st.private {
		return st.abortPrivate()
	}
	l := st.l
	l.pub.Lock()
	defer l.pub.Unlock()
	defer func() { l.staging = nil }()
	rts := st.ts + 1
	if _, err := l.rollbackAbove(l.publishedTS(), rts); err != nil {
		return fmt.Errorf("store: roll back run %s: %w", st.run, err)
	}
	l.ts = rts
	txn := l.db.NewTransactionAt(readLatest, true)
	defer txn.Discard()
	if err := txn.Delete(metaKey(metaStaging)); err != nil {
		return err
	}
	return txn.CommitAt(l.nextTS(), nil)
}

// bloom is a blocked Bloom filter over 64-bit hashes, used to tell that a
// record id was certainly not written earlier in a run: a hash picks one
// block of 512 bits (a cache line) and sets bloomK bits in it, so an add or
// a test reads one cache line and divides nothing. (The plain filter it
// replaces, six words anywhere in a MiB each found with a division, was 3%
// of the host's CPU in a 1,000,000-record ingest.) A blocked filter has a
// slightly higher false-positive rate for the same size; a false positive
// only costs a lookup.
type bloom struct{ bits []uint64 }

const (
	bloomK          = 6
	bloomBlockWords = 8 // 512 bits
)

// newBloom makes a filter of nbits, a power of two of at least 512.
func newBloom(nbits int) bloom { return bloom{bits: make([]uint64, nbits/64)} }

// block returns the block of h and the mask of bits of h in each of its
// words.
func (b *bloom) block(h uint64) (blk *[bloomBlockWords]uint64, mask [bloomBlockWords]uint64) {
	blocks := uint64(len(b.bits) / bloomBlockWords)
	i := (h & (blocks - 1)) * bloomBlockWords
	blk = (*[bloomBlockWords]uint64)(b.bits[i : i+bloomBlockWords])
	// The positions come from a remix of h, independent of the low bits
	// that chose the block: bloomK positions of 9 bits each.
	r := (h>>32 | h<<32) * 0x9e3779b97f4a7c15
	for k := 0; k < bloomK; k++ {
		pos := r >> (64 - 9)
		r <<= 9
		mask[pos/64] |= 1 << (pos % 64)
	}
	return blk, mask
}

func (b *bloom) add(h uint64) {
	blk, mask := b.block(h)
	for i := range blk {
		blk[i] |= mask[i]
	}
}

func (b *bloom) has(h uint64) bool {
	if b.bits == nil {
		return false
	}
	blk, mask := b.block(h)
	for i := range blk {
		if blk[i]&mask[i] != mask[i] {
			return false
		}
	}
	return true
}
