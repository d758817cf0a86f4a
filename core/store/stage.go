package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"
)

// Change is one record change as a connector sends it.
type Change struct {
	Model  string
	ID     string
	Data   []byte // JSON object; unused for a delete
	Delete bool
}

// Staging is a run's change set in progress. Its changes are written in
// place, at a timestamp above every published revision, so readers do not
// see them until Publish commits the revision record; Abort restores every
// key it touched. At most one staging is active per layer.
type Staging struct {
	l     *Layer
	run   string
	ts    uint64 // commit timestamp of every staged record key
	start uint64 // newest published timestamp when staging began
	seq   atomic.Uint32

	mu      sync.Mutex
	counts  map[string]map[string]Counts
	writers []*StageWriter
	done    bool
}

// BeginStaging starts staging a run's changes. It fails with ErrBusy while
// another run stages in this layer.
func (l *Layer) BeginStaging(run string) (*Staging, error) {
	l.pub.Lock()
	defer l.pub.Unlock()
	if l.staging != nil {
		return nil, fmt.Errorf("%w (run %s)", ErrBusy, l.staging.run)
	}
	txn := l.db.NewTransactionAt(readLatest, true)
	defer txn.Discard()
	if err := txn.Set(metaKey(metaStaging), []byte(run)); err != nil {
		return nil, err
	}
	if err := txn.CommitAt(l.nextTS(), nil); err != nil {
		return nil, fmt.Errorf("store: begin staging: %w", err)
	}
	st := &Staging{l: l, run: run, ts: l.ts + stagingGap, start: l.publishedTS(), counts: map[string]map[string]Counts{}}
	l.staging = st
	return st, nil
}

// WriterOptions tune how a source's changes are applied.
type WriterOptions struct {
	// IgnoreIfModifiedAfter skips a change to a record that a revision
	// published after this staging began has modified (the merging strategy
	// ignore_if_modified_after).
	IgnoreIfModifiedAfter bool
}

// Writer returns a writer for one source's changes. Writers of different
// sources may be used concurrently; one writer is not safe for concurrent
// use.
func (st *Staging) Writer(source string, opts WriterOptions) *StageWriter {
	w := &StageWriter{st: st, source: source, opts: opts, fresh: map[string]bool{}, pending: map[string]indexEntry{}, counts: map[string]Counts{}}
	st.mu.Lock()
	st.writers = append(st.writers, w)
	st.mu.Unlock()
	return w
}

// pendingLimit bounds the changes written but not yet flushed by a writer.
const pendingLimit = 20000

// StageWriter applies one source's changes to a staging.
type StageWriter struct {
	st     *Staging
	source string
	opts   WriterOptions
	wb     *badger.WriteBatch
	// fresh records, per model, whether the model had no records at all
	// before this run: then a change needs no read unless its id may have
	// been written earlier in this run (seen answers that).
	fresh map[string]bool
	seen  bloom
	// pending holds the index entries written since the last flush, which
	// reads cannot see yet.
	pending map[string]indexEntry
	counts  map[string]Counts
	err     error
	closed  bool
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
	if err := w.apply(changes); err != nil {
		w.err = err
		return err
	}
	return nil
}

func (w *StageWriter) apply(changes []Change) error {
	st := w.st
	var rtxn *badger.Txn
	defer func() {
		if rtxn != nil {
			rtxn.Discard()
		}
	}()
	for i := range changes {
		c := &changes[i]
		fresh, ok := w.fresh[c.Model]
		if !ok {
			var err error
			if fresh, err = w.isFresh(c.Model); err != nil {
				return err
			}
			w.fresh[c.Model] = fresh
			if fresh && w.seen.bits == nil {
				w.seen = newBloom(1 << 23)
			}
		}
		key := indexKey(w.source, c.Model, c.ID)
		h := xxhash.Sum64(key)
		var cur indexEntry
		found := false
		if e, ok := w.pending[string(key)]; ok {
			cur, found = e, true
		} else if !fresh || w.seen.has(h) {
			if rtxn == nil {
				rtxn = st.l.db.NewTransactionAt(readLatest, false)
			}
			item, err := rtxn.Get(key)
			switch {
			case errors.Is(err, badger.ErrKeyNotFound):
			case err != nil:
				return err
			default:
				if err := item.Value(func(v []byte) (err error) { cur, err = decodeIndex(v); return }); err != nil {
					return err
				}
				found = true
			}
		}
		if fresh {
			w.seen.add(h)
		}
		if found && w.opts.IgnoreIfModifiedAfter {
			if t := cur.cursor.ts(); t > st.start && t < st.ts {
				continue
			}
		}
		if err := w.applyOne(c, key, cur, found); err != nil {
			return fmt.Errorf("store: %s %s/%s: %w", w.source, c.Model, c.ID, err)
		}
	}
	if len(w.pending) >= pendingLimit {
		return w.flush()
	}
	return nil
}

func (w *StageWriter) isFresh(model string) (bool, error) {
	fresh := true
	err := w.st.l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: indexPrefix(w.source, model)})
		defer it.Close()
		it.Rewind()
		fresh = !it.Valid()
		return nil
	})
	return fresh, err
}

func (w *StageWriter) applyOne(c *Change, key []byte, cur indexEntry, found bool) error {
	st := w.st
	thisRun := found && cur.cursor.ts() == st.ts
	var action Action
	var payload []byte
	firstSeen := st.ts
	var hash uint64
	cnt := w.counts[c.Model]
	if c.Delete {
		if !found || cur.deleted {
			return nil
		}
		// Keep the last payload so that readers see what was deleted.
		old, err := w.entryPayload(cur.cursor)
		if err != nil {
			return err
		}
		action, payload, firstSeen, hash = Deleted, old, cur.firstSeen, cur.hash
		cnt.Deleted++
	} else {
		hash = xxhash.Sum64(c.Data)
		payload = c.Data
		switch {
		case !found:
			action = Added
			cnt.Added++
		case cur.deleted:
			action, firstSeen = Added, cur.firstSeen
			cnt.Added++
		case cur.hash == hash:
			cnt.Unchanged++
			w.counts[c.Model] = cnt
			return nil
		default:
			action, firstSeen = Updated, cur.firstSeen
			if thisRun && cur.firstSeen == st.ts {
				action = Added // added earlier in this run: still an addition
			} else if !thisRun {
				cnt.Updated++
			}
		}
	}
	w.counts[c.Model] = cnt
	wb := w.batch()
	if found {
		if err := wb.Delete(recordKey(cur.cursor)); err != nil {
			return err
		}
	}
	cursor := makeCursor(st.ts, st.seq.Add(1))
	ie := indexEntry{cursor: cursor, hash: hash, firstSeen: firstSeen, deleted: action == Deleted}
	val := encodeEntry(make([]byte, 0, 16+len(w.source)+len(c.Model)+len(c.ID)+len(payload)), action, firstSeen, w.source, c.Model, c.ID, payload)
	if err := wb.Set(recordKey(cursor), val); err != nil {
		return err
	}
	if err := wb.Set(key, ie.encode()); err != nil {
		return err
	}
	w.pending[string(key)] = ie
	return nil
}

// entryPayload reads the payload of the record entry at cursor c.
func (w *StageWriter) entryPayload(c Cursor) ([]byte, error) {
	if c.ts() == w.st.ts {
		// Written by this run, perhaps not yet flushed.
		if err := w.flush(); err != nil {
			return nil, err
		}
	}
	var payload []byte
	err := w.st.l.viewLatest(func(txn *badger.Txn) error {
		item, err := txn.Get(recordKey(c))
		if err != nil {
			return fmt.Errorf("read record entry: %w", err)
		}
		return item.Value(func(v []byte) error {
			e, err := decodeEntry(v)
			if err != nil {
				return err
			}
			payload = append([]byte(nil), e.payload...)
			return nil
		})
	})
	return payload, err
}

// batch returns the write batch, starting one if needed.
func (w *StageWriter) batch() *badger.WriteBatch {
	if w.wb == nil {
		w.wb = w.st.l.db.NewWriteBatchAt(w.st.ts)
	}
	return w.wb
}

// flush makes every change applied so far durable and readable.
func (w *StageWriter) flush() error {
	if w.wb == nil {
		return nil
	}
	err := w.wb.Flush()
	w.wb = nil
	clear(w.pending)
	return err
}

// Checkpoint flushes the writer and then records the checkpoint of one of
// its source's syncs for this run. The checkpoint becomes the sync's
// committed checkpoint when the run is published.
func (w *StageWriter) Checkpoint(sync string, state []byte) error {
	if w.err != nil {
		return w.err
	}
	if err := w.flush(); err != nil {
		w.err = err
		return err
	}
	if !json.Valid(state) {
		return fmt.Errorf("store: checkpoint of %s/%s is not valid JSON", w.source, sync)
	}
	return w.st.l.setLatest(func(txn *badger.Txn) error {
		return txn.Set(strKey(pfxPendingCP, w.st.run, w.source, sync), state)
	})
}

// Close flushes the writer and folds its counts into the staging's. It
// returns the writer's first error, if any.
func (w *StageWriter) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		if w.wb != nil {
			w.wb.Cancel()
			w.wb = nil
		}
		return w.err
	}
	if err := w.flush(); err != nil {
		w.err = err
		return err
	}
	w.st.mu.Lock()
	defer w.st.mu.Unlock()
	m := w.st.counts[w.source]
	if m == nil {
		m = map[string]Counts{}
		w.st.counts[w.source] = m
	}
	for model, c := range w.counts {
		t := m[model]
		t.Added += c.Added
		t.Updated += c.Updated
		t.Deleted += c.Deleted
		t.Unchanged += c.Unchanged
		m[model] = t
	}
	return nil
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

// PublishInfo describes the revision a staging becomes.
type PublishInfo struct {
	Trigger string
	Sources []string
}

// Publish closes every writer and commits the staging as a new revision,
// together with the run's checkpoints. Readers see all of it or none.
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
	counts := st.Counts()
	l := st.l
	l.pub.Lock()
	defer l.pub.Unlock()
	st.mu.Lock()
	st.done = true
	st.mu.Unlock()
	sources := append([]string(nil), info.Sources...)
	sort.Strings(sources)
	rev := Revision{
		CreatedAt: l.commitTime(),
		Trigger:   info.Trigger,
		Run:       st.run,
		Sources:   sources,
		Counts:    counts,
		TS:        st.ts,
	}
	if last, ok := l.Newest(); ok {
		rev.Number = last.Number + 1
	} else {
		rev.Number = 1
	}
	b, err := json.Marshal(rev)
	if err != nil {
		return Revision{}, err
	}
	txn := l.db.NewTransactionAt(readLatest, true)
	defer txn.Discard()
	if err := txn.Set(u64Key(pfxRevision, uint64(rev.Number)), b); err != nil {
		return Revision{}, err
	}
	if err := st.moveCheckpoints(txn); err != nil {
		return Revision{}, err
	}
	if err := txn.Delete(metaKey(metaStaging)); err != nil {
		return Revision{}, err
	}
	if err := txn.CommitAt(st.ts, nil); err != nil {
		l.staging = nil
		return Revision{}, fmt.Errorf("store: publish run %s: %w", st.run, err)
	}
	l.appendRevision(rev)
	l.ts = st.ts
	l.staging = nil
	return rev, nil
}

// moveCheckpoints turns the run's pending checkpoints into committed ones.
func (st *Staging) moveCheckpoints(txn *badger.Txn) error {
	pfx := append(strKey(pfxPendingCP, st.run), 0)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx, PrefetchValues: true})
	defer it.Close()
	type kv struct{ k, v []byte }
	var moves []kv
	for it.Rewind(); it.Valid(); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		moves = append(moves, kv{it.Item().KeyCopy(nil), v})
	}
	for _, m := range moves {
		rest := m.k[len(pfx):] // source \0 sync
		if err := txn.Set(append([]byte{pfxCheckpoint}, rest...), m.v); err != nil {
			return err
		}
		if err := txn.Delete(m.k); err != nil {
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
	pfx := append(strKey(pfxPendingCP, st.run), 0)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
	var keys [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		keys = append(keys, it.Item().KeyCopy(nil))
	}
	it.Close()
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	if err := txn.Delete(metaKey(metaStaging)); err != nil {
		return err
	}
	return txn.CommitAt(l.nextTS(), nil)
}

// bloom is a plain Bloom filter over 64-bit hashes (k=6), used to tell that
// a record id was certainly not written earlier in a run.
type bloom struct{ bits []uint64 }

func newBloom(nbits int) bloom { return bloom{bits: make([]uint64, nbits/64)} }

func (b *bloom) positions(h uint64, fn func(i uint64) bool) bool {
	n := uint64(len(b.bits) * 64)
	h1, h2 := h, h>>32|h<<32
	for i := uint64(0); i < 6; i++ {
		if !fn((h1 + i*h2) % n) {
			return false
		}
	}
	return true
}

func (b *bloom) add(h uint64) {
	b.positions(h, func(i uint64) bool { b.bits[i/64] |= 1 << (i % 64); return true })
}

func (b *bloom) has(h uint64) bool {
	if b.bits == nil {
		return false
	}
	return b.positions(h, func(i uint64) bool { return b.bits[i/64]&(1<<(i%64)) != 0 })
}
