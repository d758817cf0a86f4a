package badger

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/synclayer/synclayer/core/store"
)

// Snapshot is a read view of one revision for readers that look records up
// by id, walk a model in id order and use field indexes (GraphQL). Every
// read of a snapshot sees the same revision. Close it when done; it is
// safe for concurrent use until then.
type Snapshot struct {
	l    *Layer
	rev  Revision
	revs []revRef
	txn  *badger.Txn
}

// OpenSnapshot opens a read view of revision n, or with n = 0 of the
// revision readers see now (the pinned one, else the newest). ok is false
// when n is 0 and nothing has been published yet. It fails with
// ErrNoRevision or ErrRevisionGone as Records does.
func (l *Layer) openSnapshot(n int64) (s *Snapshot, ok bool, err error) {
	if err := l.enter(); err != nil {
		return nil, false, err
	}
	rev, ok, err := l.revisionAt(n)
	if err != nil || !ok {
		l.exit()
		return nil, ok, err
	}
	l.mu.RLock()
	revs := l.refs // append-only: a snapshot of the slice header is safe
	l.mu.RUnlock()
	rev.Pinned = rev.Number == l.Pinned()
	return &Snapshot{l: l, rev: rev, revs: revs, txn: l.db.NewTransactionAt(rev.TS, false)}, true, nil
}

// Revision is the revision the snapshot reads.
func (s *Snapshot) Revision() Revision { return s.rev }

// Retained tells whether the snapshot's revision is still kept. A reader
// that derived something from an older snapshot checks it afterwards: a
// revision that stopped being kept meanwhile may have lost versions.
func (s *Snapshot) Retained() bool {
	s.l.mu.RLock()
	defer s.l.mu.RUnlock()
	return s.l.readableLocked(s.l.refIndexLocked(s.rev.Number), time.Now())
}

// Close releases the snapshot.
func (s *Snapshot) Close() {
	if s.txn != nil {
		s.txn.Discard()
		s.txn = nil
		s.l.exit()
	}
}

// revisionOf returns the revision whose commit includes timestamp ts.
func (s *Snapshot) revisionOf(ts uint64) (Revision, bool) {
	i := sort.Search(len(s.revs), func(i int) bool { return s.revs[i].ts >= ts })
	if i == len(s.revs) {
		return Revision{}, false
	}
	return s.revs[i].revision(), true
}

// fill decodes a record entry into r; payload is copied when copyPayload.
func (s *Snapshot) fill(r *StoredRecord, c Cursor, v []byte, copyPayload bool) error {
	e, err := decodeEntry(v)
	if err != nil {
		return err
	}
	mod, ok := s.revisionOf(c.Timestamp())
	if !ok {
		return fmt.Errorf("store: record %s has no published revision", c)
	}
	first := mod
	if e.firstSeen != c.Timestamp() {
		if f, ok := s.revisionOf(e.firstSeen); ok {
			first = f
		}
	}
	src, conn := splitSourceBytes(e.source)
	*r = StoredRecord{Source: string(src), Connection: string(conn), Model: string(e.model), ID: string(e.id), Payload: e.payload,
		Action: e.action, Cursor: c, FirstSeenAt: first.CreatedAt, LastModifiedAt: mod.CreatedAt, Revision: mod.Number}
	if copyPayload {
		r.Payload = append([]byte(nil), e.payload...)
	}
	return nil
}

// Get returns one record (deleted ones too) by source, model and id. Its
// payload is a copy the caller may keep.
func (s *Snapshot) Get(source, model, id string) (StoredRecord, bool, error) {
	ie, found, err := readIndex(s.txn, indexKey(source, model, id))
	if err != nil || !found {
		return StoredRecord{}, false, err
	}
	item, err := s.txn.Get(recordKey(ie.cursor))
	if err != nil {
		return StoredRecord{}, false, fmt.Errorf("read record entry: %w", err)
	}
	var r StoredRecord
	err = item.Value(func(v []byte) error { return s.fill(&r, ie.cursor, v, true) })
	return r, err == nil, err
}

// ScanBatch is how many records Scan reads ahead: their entries are read
// in cursor order, which costs less than one point read each.
const scanBatch = 256

// scanSteps is how many entries Scan steps over to reach the next record
// of a batch before it seeks.
const scanSteps = 8

// batchReader reads the record entries of index hits in batches of
// scanBatch: in cursor order, stepping over near ones and seeking far ones,
// then hands the records out in the order of the hits.
type batchReader struct {
	s          *Snapshot
	what       string // the walk, for errors
	ri         *badger.Iterator
	positioned bool
	batch      []batchHit
	recs       []StoredRecord
	vals       [][]byte
	fn         func(r *StoredRecord) (bool, error)
}

type batchHit struct {
	pos int
	c   Cursor
}

func (s *Snapshot) newBatchReader(what string, fn func(r *StoredRecord) (bool, error)) *batchReader {
	return &batchReader{s: s, what: what, fn: fn,
		ri:    s.txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxRecord}}),
		batch: make([]batchHit, 0, scanBatch), recs: make([]StoredRecord, 0, scanBatch), vals: make([][]byte, scanBatch)}
}

func (b *batchReader) close() { b.ri.Close() }

// add queues the record of an index entry (its value); deleted ones are
// skipped. more is false when fn asked to stop.
func (b *batchReader) add(item *badger.Item) (more bool, err error) {
	var ie indexEntry
	if err := item.Value(func(v []byte) (err error) { ie, err = decodeIndex(v); return }); err != nil {
		return false, err
	}
	if ie.deleted {
		return true, nil
	}
	b.batch = append(b.batch, batchHit{len(b.batch), ie.cursor})
	if len(b.batch) == scanBatch {
		return b.flush()
	}
	return true, nil
}

// flush reads the queued records and calls fn with each.
func (b *batchReader) flush() (bool, error) {
	if len(b.batch) == 0 {
		return true, nil
	}
	// Read the batch's entries in cursor order, then hand them out in
	// the order they were queued.
	sorted := append([]batchHit(nil), b.batch...)
	sort.Slice(sorted, func(i, j int) bool { return bytes.Compare(sorted[i].c[:], sorted[j].c[:]) < 0 })
	b.recs = b.recs[:len(b.batch)]
	ri := b.ri
	for _, h := range sorted {
		k := recordKey(h.c)
		// Records written in id order have neighbouring cursors: a
		// few Next cost less than a Seek.
		found := false
		for step := 0; b.positioned && step < scanSteps && ri.Valid(); step++ {
			d := bytes.Compare(ri.Item().Key(), k)
			if found = d == 0; d >= 0 {
				break
			}
			ri.Next()
		}
		if !found {
			ri.Seek(k)
			b.positioned = true
		}
		if !ri.Valid() || !bytes.Equal(ri.Item().Key(), k) {
			return false, fmt.Errorf("store: record entry %s of %s missing", h.c, b.what)
		}
		var err error
		b.vals[h.pos], err = ri.Item().ValueCopy(b.vals[h.pos][:0])
		if err != nil {
			return false, err
		}
		if err := b.s.fill(&b.recs[h.pos], h.c, b.vals[h.pos], false); err != nil {
			return false, err
		}
	}
	for i := range b.batch {
		more, err := b.fn(&b.recs[i])
		if err != nil || !more {
			return false, err
		}
	}
	b.batch = b.batch[:0]
	return true, nil
}

// Scan calls fn with the records of one (source, model) that are not
// deleted, in ascending id order, starting after afterID (all when empty).
// source is a source key (SourceKey): a source, or one connection of it.
// The record passed to fn, its payload included, is only valid during the
// call. fn returns false to stop.
func (s *Snapshot) Scan(source, model, afterID string, fn func(r *StoredRecord) (bool, error)) error {
	pfx := indexPrefix(source, model)
	it := s.txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
	defer it.Close()
	start := pfx
	if afterID != "" {
		start = append(indexKey(source, model, afterID), 0)
	}
	b := s.newBatchReader(source+"/"+model, fn)
	defer b.close()
	for it.Seek(start); it.Valid(); it.Next() {
		if more, err := b.add(it.Item()); err != nil || !more {
			return err
		}
	}
	_, err := b.flush()
	return err
}

// ScanConnections calls fn with the records of one model of a source that
// are not deleted, whatever connection they belong to, in ascending
// (connection, id) order: first those without a connection (connection
// ""), then each connection's. It starts after the record (afterConn,
// afterID) (all when both are empty); a record's Connection and ID are
// where a later walk resumes. It seeks to the model's range in each
// connection, so it costs two seeks per connection of the source besides
// the records read, never a walk of other models. The record passed to fn
// is only valid during the call; fn returns false to stop.
func (s *Snapshot) ScanConnections(source, model, afterConn, afterID string, fn func(r *StoredRecord) (bool, error)) error {
	b := s.newBatchReader(source+"/"+model, fn)
	defer b.close()
	err := walkConnections(s.txn, source, model, afterConn, afterID, func(_, _ []byte, item *badger.Item) (bool, error) {
		return b.add(item)
	})
	if err != nil {
		return err
	}
	_, err = b.flush()
	return err
}

// walkConnections calls fn with the record index entries that txn sees of
// one model of a source in (connection, id) order, after (afterConn, afterID): those
// of the source itself, then each connection's (index keys
// r/<source>\x1f<connection>\0<model>\0<id>), seeking from connection to
// connection. conn, id and item are only valid during the call.
func walkConnections(txn *badger.Txn, source, model, afterConn, afterID string, fn func(conn, id []byte, item *badger.Item) (bool, error)) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: append([]byte{pfxIndex}, source...)})
	defer it.Close()
	// The source's own records.
	if afterConn == "" {
		pfx := indexPrefix(source, model)
		start := pfx
		if afterID != "" {
			start = append(indexKey(source, model, afterID), 0)
		}
		for it.Seek(start); it.Valid() && bytes.HasPrefix(it.Item().Key(), pfx); it.Next() {
			if more, err := fn(nil, it.Item().Key()[len(pfx):], it.Item()); err != nil || !more {
				return err
			}
		}
	}
	// Its connections'.
	cpfx := append(append([]byte{pfxIndex}, source...), store.ConnSep)
	seek := cpfx
	if afterConn != "" {
		seek = append(append(append([]byte(nil), cpfx...), afterConn...), 0)
		seek = append(append(append(seek, model...), 0), afterID...)
		if afterID != "" {
			seek = append(seek, 0)
		}
	}
	var mpfx []byte
	for {
		it.Seek(seek)
		if !it.Valid() || !bytes.HasPrefix(it.Item().Key(), cpfx) {
			return nil
		}
		key := it.Item().Key()
		rest := key[len(cpfx):]
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return fmt.Errorf("store: corrupt record index key %q", key)
		}
		conn := append([]byte(nil), rest[:i]...)
		mpfx = append(append(append(append(append(mpfx[:0], cpfx...), conn...), 0), model...), 0)
		if bytes.Compare(key, mpfx) < 0 {
			it.Seek(mpfx)
		}
		for ; it.Valid() && bytes.HasPrefix(it.Item().Key(), mpfx); it.Next() {
			if more, err := fn(conn, it.Item().Key()[len(mpfx):], it.Item()); err != nil || !more {
				return err
			}
		}
		// Past every key of conn: conn\x01 sorts after conn\0… and before
		// any longer connection id (they have no control characters).
		seek = append(append(append(seek[:0:0], cpfx...), conn...), 1)
	}
}

// Changes calls fn with every record (deleted ones too) whose latest change
// was published after revision since (0: every record), in cursor order.
// The record passed to fn is only valid during the call.
func (s *Snapshot) Changes(since int64, fn func(r *StoredRecord) error) error {
	start := []byte{pfxRecord}
	if since > 0 {
		i := sort.Search(len(s.revs), func(i int) bool { return s.revs[i].num >= since })
		if i == len(s.revs) || s.revs[i].num != since {
			return fmt.Errorf("%w: %d", ErrNoRevision, since)
		}
		start = recordKey(store.MakeCursor(s.revs[i].ts+1, 0))
	}
	it := s.txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxRecord}})
	defer it.Close()
	var r StoredRecord
	for it.Seek(start); it.Valid(); it.Next() {
		var c Cursor
		copy(c[:], it.Item().Key()[1:])
		if err := it.Item().Value(func(v []byte) error { return s.fill(&r, c, v, false) }); err != nil {
			return err
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

// Indexed tells whether (source, model, field) has a complete field index
// at the snapshot's revision. source may be a source key: a connection's
// records are indexed with their source's.
func (s *Snapshot) Indexed(source, model, field string) bool {
	src, _ := SplitSourceKey(source)
	_, err := s.txn.Get(fieldIndexMarker(src, model, field))
	return err == nil
}

// Lookup returns the ids of the records of (source, model) that are not
// deleted and whose field equals one of values (a value that is a JSON
// array matches each of its elements), in ascending order without
// repeats. source is a source key (SourceKey): a source, or one connection
// of it. Values are strings, float64, json.Number, ints or bools; others
// match nothing. It fails with ErrNotIndexed when the field has no
// complete index at this revision. At most limit ids are returned (0: no
// limit); more tells whether there were more.
func (s *Snapshot) Lookup(source, model, field string, values []any, limit int) (ids []string, more bool, err error) {
	if !s.Indexed(source, model, field) {
		return nil, false, ErrNotIndexed
	}
	src, conn := SplitSourceKey(source)
	base := fieldIndexPrefix(src, model, field)
	seen := map[string]bool{}
	for _, v := range values {
		k, ok := appendIndexValue(append([]byte(nil), base...), v)
		if !ok {
			continue
		}
		k = appendEntryConn(k, conn)
		it := s.txn.NewIterator(badger.IteratorOptions{Prefix: k})
		for it.Rewind(); it.Valid(); it.Next() {
			id := string(it.Item().Key()[len(k):])
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		it.Close()
	}
	sort.Strings(ids)
	if limit > 0 && len(ids) > limit {
		return ids[:limit], true, nil
	}
	return ids, false, nil
}

// LookupConnections is Lookup over every record of one model of a source,
// whatever connection it belongs to: the keys of the matching records in
// (connection, id) order without repeats, the source's own records
// (connection "") first. It reads the index once per value, not per
// connection.
func (s *Snapshot) LookupConnections(source, model, field string, values []any, limit int) (keys []RecordKey, more bool, err error) {
	if !s.Indexed(source, model, field) {
		return nil, false, ErrNotIndexed
	}
	base := fieldIndexPrefix(source, model, field)
	seen := map[RecordKey]bool{}
	for _, v := range values {
		k, ok := appendIndexValue(append([]byte(nil), base...), v)
		if !ok {
			continue
		}
		// The value's entries of records without a connection end in
		// \0\x01<id>, those of connections' in \0\x02<connection>\0<id>.
		for _, tag := range []byte{entryPlain, entryConn} {
			k[len(k)-1] = tag
			it := s.txn.NewIterator(badger.IteratorOptions{Prefix: k})
			for it.Rewind(); it.Valid(); it.Next() {
				rest := it.Item().Key()[len(k):]
				var rk RecordKey
				if tag == entryPlain {
					rk.ID = string(rest)
				} else {
					i := bytes.IndexByte(rest, 0)
					if i < 0 {
						it.Close()
						return nil, false, fmt.Errorf("store: corrupt field index key %q", it.Item().Key())
					}
					rk = RecordKey{Connection: string(rest[:i]), ID: string(rest[i+1:])}
				}
				if !seen[rk] {
					seen[rk] = true
					keys = append(keys, rk)
				}
			}
			it.Close()
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Less(keys[j]) })
	if limit > 0 && len(keys) > limit {
		return keys[:limit], true, nil
	}
	return keys, false, nil
}
