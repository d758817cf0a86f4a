package badger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Private staging.
//
// One run at a time stages in place (stage.go): its writes go straight to
// the record keys, at timestamps above every published revision, and its
// publish commits only the revision record on top (plus reconciling with
// what was published meanwhile). That is what makes a large sync fast, but
// it cannot be shared: readers see everything below a published timestamp,
// so publishing one in-place staging would expose another's writes.
//
// A run that begins while another stages in place therefore stages
// privately: its changes are appended, in order, under g/<run>\0c<seq>
// (keys no reader looks at), its seen markers under g/<run>\0s…, and its
// checkpoints as every run's (in memory, Staging.cps). Its publish replays the changes as a
// direct publish (publish.go): under the publisher lock, at a timestamp
// above the published revisions and below the in-place staging, so its cost
// is in proportion to the run's changes and never to the layer's size. The
// in-place run then reconciles with it when it publishes, as it does with
// payload webhooks. Merging holds as in place: a private run's
// ignore_if_modified_after compares with the timestamp its staging began at.
//
// A private staging that stays small keeps its changes and seen markers in
// memory instead (up to privateMemBytes): most runs that stage beside
// another are small (a connection's run, a webhook-sized resync), and
// writing their changes to Badger only to read and delete them again at
// publish doubled their writes. One that grows past the limit moves what
// it holds to its g/ keys and goes on there.
//
// Nothing of a private staging survives a restart: the host fails and
// queues again the runs that were running, and the store drops every g/
// key when it opens (and the p/ keys of pending checkpoints that earlier
// versions wrote).

// privateMemBytes bounds the changes a private staging keeps in memory
// (their ids, models and data): with the host's default of 32 runs at
// once, 32 MiB at most.
var privateMemBytes = 1 << 20 // a variable for tests

// memChange is a change of a private staging held in memory.
type memChange struct {
	source string
	c      Change
	shape  payloadShape // of a save: checked by applyPrivate
}

// privateMem is what a private staging holds in memory until it spills.
type privateMem struct {
	mu      sync.Mutex
	changes []memChange
	bytes   int
	// seen has the ids saved by the run, by (source key, model), of the
	// models whose unseen records become deleted.
	seen    map[[2]string]map[string]struct{}
	spilled bool
}

func memSize(c *Change) int { return len(c.Model) + len(c.ID) + len(c.Data) + 64 }

// privateChangeKey is the key of change number seq of a private staging.
func privateChangeKey(run string, seq uint64) []byte {
	k := make([]byte, 0, 12+len(run))
	k = append(k, pfxPrivate)
	k = append(k, run...)
	k = append(k, 0, 'c')
	return binary.BigEndian.AppendUint64(k, seq)
}

func privatePrefix(run string) []byte {
	k := append([]byte{pfxPrivate}, run...)
	return append(k, 0)
}

// privateSeenPrefix is the prefix of the seen markers of (source, model).
func privateSeenPrefix(run, source, model string) []byte {
	k := append(privatePrefix(run), 's')
	k = append(k, source...)
	k = append(k, 0)
	k = append(k, model...)
	return append(k, 0)
}

// encodeChange encodes a change of a source key for a private staging.
func encodeChange(dst []byte, source string, c *Change) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(source)))
	dst = append(dst, source...)
	dst = binary.AppendUvarint(dst, uint64(len(c.Model)))
	dst = append(dst, c.Model...)
	dst = binary.AppendUvarint(dst, uint64(len(c.ID)))
	dst = append(dst, c.ID...)
	if c.Delete {
		return append(dst, 1)
	}
	dst = append(dst, 0)
	return append(dst, c.Data...)
}

func decodeChange(b []byte) (source string, c Change, err error) {
	src, b, ok := lenPrefixed(b)
	var model, id []byte
	if ok {
		model, b, ok = lenPrefixed(b)
	}
	if ok {
		id, b, ok = lenPrefixed(b)
	}
	if !ok || len(b) == 0 {
		return "", c, errors.New("store: corrupt staged change")
	}
	c = Change{Model: string(model), ID: string(id), Delete: b[0] == 1}
	if !c.Delete {
		c.Data = append([]byte(nil), b[1:]...)
	}
	return string(src), c, nil
}

// applyPrivate appends changes to the writer's private staging.
func (w *StageWriter) applyPrivate(changes []Change) error {
	st := w.st
	if st.l.closed.Load() {
		return ErrClosed
	}
	size := 0
	w.shapes = w.shapes[:0]
	for i := range changes {
		c := &changes[i]
		shape := shapeUnchecked
		if !c.Delete {
			// Checked here so that a bad record fails the run where it
			// came; what memory keeps is not checked again at the publish.
			var err error
			if shape, err = checkShape(c.Data); err != nil {
				return fmt.Errorf("store: %s %s/%s: %w", w.source, c.Model, c.ID, err)
			}
		}
		w.shapes = append(w.shapes, shape)
		size += memSize(c)
	}
	if kept, err := w.keepPrivate(changes, w.shapes, size); kept || err != nil {
		return err
	}
	wb := w.privateBatch()
	for i := range changes {
		c := &changes[i]
		seq := st.gseq.Add(1)
		if err := wb.Set(privateChangeKey(st.run, seq), encodeChange(nil, w.source, c)); err != nil {
			return err
		}
		if !c.Delete && w.track[c.Model] {
			k := append(privateSeenPrefix(st.run, w.source, c.Model), c.ID...)
			if err := wb.Set(k, nil); err != nil {
				return err
			}
		}
		w.staged++
	}
	if w.staged >= pendingLimit || wb.bytes >= flushBytes {
		return w.rotate()
	}
	return nil
}

// keepPrivate keeps changes (checked, of size bytes; shapes are what the
// check found, one per change) in the staging's memory when they fit; when
// they do not, it moves what memory holds to the staging's keys, and the
// changes go there too (kept is false).
func (w *StageWriter) keepPrivate(changes []Change, shapes []payloadShape, size int) (kept bool, err error) {
	m := &w.st.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.spilled {
		return false, nil
	}
	if m.bytes+size <= privateMemBytes {
		for i := range changes {
			c := changes[i]
			if !c.Delete {
				// The caller may reuse its buffers.
				c.Data = append([]byte(nil), c.Data...)
				if w.track[c.Model] {
					k := [2]string{w.source, c.Model}
					if m.seen[k] == nil {
						if m.seen == nil {
							m.seen = map[[2]string]map[string]struct{}{}
						}
						m.seen[k] = map[string]struct{}{}
					}
					m.seen[k][c.ID] = struct{}{}
				}
			}
			m.changes = append(m.changes, memChange{source: w.source, c: c, shape: shapes[i]})
		}
		m.bytes += size
		return true, nil
	}
	// Spill, in order: the changes and seen markers kept so far.
	st := w.st
	wb := newLoader(st.l.db, st.gts)
	defer wb.Cancel()
	for i := range m.changes {
		mc := &m.changes[i]
		if err := wb.Set(privateChangeKey(st.run, st.gseq.Add(1)), encodeChange(nil, mc.source, &mc.c)); err != nil {
			return false, err
		}
	}
	for k, ids := range m.seen {
		for id := range ids {
			if err := wb.Set(append(privateSeenPrefix(st.run, k[0], k[1]), id...), nil); err != nil {
				return false, err
			}
		}
	}
	if err := wb.Flush(); err != nil {
		return false, err
	}
	m.changes, m.seen, m.bytes, m.spilled = nil, nil, 0, true
	return false, nil
}

// privateBatch returns the writer's loader. Private keys are written at
// the timestamp the staging reserved when it began: below every later
// read, and no other writer uses these keys.
func (w *StageWriter) privateBatch() *loader {
	if w.wb == nil {
		w.wb = newLoader(w.st.l.db, w.st.gts)
		w.staged = 0
	}
	return w.wb
}

// publishPrivate replays a private staging as a direct publish.
func (st *Staging) publishPrivate(info PublishInfo) (Revision, error) {
	rev, err := st.replayPrivate(info)
	return st.l.madeVisible(rev, err, "publish run "+st.run)
}

// replayPrivate commits a private staging's changes as a revision, under
// l.pub.
func (st *Staging) replayPrivate(info PublishInfo) (Revision, error) {
	l := st.l
	l.pub.Lock()
	defer l.pub.Unlock()
	if l.closed.Load() {
		return Revision{}, ErrClosed
	}
	d, err := l.beginDirect(st.start)
	if err != nil {
		return Revision{}, err
	}
	defer d.discard()
	read := l.db.NewTransactionAt(readLatest, false)
	defer read.Discard()
	st.mu.Lock()
	opts := make(map[string]WriterOptions, len(st.opts))
	for k, v := range st.opts {
		opts[k] = v
	}
	tracked := make([][2]string, 0, len(st.tracked))
	for k := range st.tracked {
		tracked = append(tracked, k)
	}
	st.mu.Unlock()
	st.mem.mu.Lock()
	inMem, mem := !st.mem.spilled, st.mem.changes
	st.mem.mu.Unlock()
	if inMem {
		for i := range mem {
			c := mem[i].c
			if err := d.apply(mem[i].source, opts[mem[i].source], &c, mem[i].shape); err != nil {
				return d.fail(fmt.Errorf("store: publish run %s: %w", st.run, err))
			}
		}
	} else if err := st.replayKeys(d, read, opts); err != nil {
		return d.fail(fmt.Errorf("store: publish run %s: %w", st.run, err))
	}
	sort.Slice(tracked, func(i, j int) bool { return tracked[i][0]+"\x00"+tracked[i][1] < tracked[j][0]+"\x00"+tracked[j][1] })
	for _, sm := range tracked {
		if err := st.deleteUnseenPrivate(d, read, sm[0], sm[1], inMem); err != nil {
			return d.fail(fmt.Errorf("store: publish run %s: track deletes: %w", st.run, err))
		}
	}
	if info.Run == "" {
		info.Run = st.run
	}
	rev, err := d.finish(info, st.moveCheckpoints)
	if err != nil {
		return Revision{}, fmt.Errorf("store: publish run %s: %w", st.run, err)
	}
	st.mu.Lock()
	st.done = true
	st.mu.Unlock()
	return rev, nil
}

// replayKeys applies, in d, the changes a private staging spilled to its
// keys, and deletes those.
func (st *Staging) replayKeys(d *direct, read *badger.Txn, opts map[string]WriterOptions) error {
	it := read.NewIterator(badger.IteratorOptions{Prefix: append(privatePrefix(st.run), 'c')})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var source string
		var c Change
		err := it.Item().Value(func(v []byte) (err error) {
			source, c, err = decodeChange(v)
			return err
		})
		if err == nil {
			err = d.apply(source, opts[source], &c, shapeUnchecked)
		}
		if err == nil {
			err = d.del(it.Item().KeyCopy(nil))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteUnseenPrivate deletes, in the direct publish d, the published
// records of (source, model) that the run did not save, and drops the
// run's seen markers of it.
func (st *Staging) deleteUnseenPrivate(d *direct, read *badger.Txn, source, model string, inMem bool) error {
	// The records as published before this publish (d's own writes are
	// all seen: they are saves of this run, or deletes).
	pub := st.l.db.NewTransactionAt(d.ts-1, false)
	defer pub.Discard()
	unseen := func(id []byte) error {
		c := Change{Model: model, ID: string(id), Delete: true}
		// As in place (deleteUnseen): the merging strategy holds for
		// the deletes of track_deletes.
		return d.apply(source, WriterOptions{IgnoreIfModifiedAfter: st.ignoreIfModifiedAfter(source, model)}, &c, shapeUnchecked)
	}
	if inMem {
		st.mem.mu.Lock()
		seen := st.mem.seen[[2]string{source, model}]
		st.mem.mu.Unlock()
		return walkUnseenMem(pub, source, model, seen, unseen)
	}
	return walkUnseen(pub, read, source, model, privateSeenPrefix(st.run, source, model), unseen, d.del)
}

// walkUnseenMem calls unseen with the id of each live record of (source,
// model) in idxTxn that is not in seen.
func walkUnseenMem(idxTxn *badger.Txn, source, model string, seen map[string]struct{}, unseen func(id []byte) error) error {
	ipfx := indexPrefix(source, model)
	idx := idxTxn.NewIterator(badger.IteratorOptions{Prefix: ipfx})
	defer idx.Close()
	for idx.Rewind(); idx.Valid(); idx.Next() {
		id := idx.Item().Key()[len(ipfx):]
		if _, ok := seen[string(id)]; ok {
			continue
		}
		if err := unseenIfLive(idx.Item(), id, unseen); err != nil {
			return err
		}
	}
	return nil
}

// abortPrivate drops a private staging's changes and seen markers, in
// memory or spilled to its keys (its checkpoints are in memory: see
// Staging.cps).
func (st *Staging) abortPrivate() error {
	st.mem.mu.Lock()
	spilled := st.mem.spilled
	st.mem.changes, st.mem.seen, st.mem.bytes = nil, nil, 0
	st.mem.mu.Unlock()
	if !spilled {
		return nil
	}
	l := st.l
	l.pub.Lock()
	defer l.pub.Unlock()
	return l.dropKeysLocked(privatePrefix(st.run))
}

// dropKeysLocked deletes every key under the prefixes. Call with l.pub
// held (or during load).
func (l *Layer) dropKeysLocked(prefixes ...[]byte) error {
	read := l.db.NewTransactionAt(readLatest, false)
	defer read.Discard()
	wb := l.db.NewWriteBatchAt(l.nextTS())
	defer wb.Cancel()
	for _, pfx := range prefixes {
		it := read.NewIterator(badger.IteratorOptions{Prefix: pfx})
		for it.Rewind(); it.Valid(); it.Next() {
			if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
				it.Close()
				return err
			}
		}
		it.Close()
	}
	return wb.Flush()
}
