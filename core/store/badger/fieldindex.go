package badger

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"
	"github.com/synclayer/synclayer/core/store"
)

// Field indexes: which records of a (source, model) hold a value in a
// top-level field, for GraphQL's eq/in filters and references.
//
//	f/<source>\0<model>\0<field>\0<value>\0\x01<id>                one per (record, value); empty value
//	f/<source>\0<model>\0<field>\0<value>\0\x02<connection>\0<id>  the same for a connection's record
//	f/<source>\0<model>\0<field>\0\0                              the index is complete from this version on
//
// <value> is a type tag and the value's bytes with 0x00 escaped as
// 0x00 0xFF, so that \0\x01 or \0\x02 ends it unambiguously. The records
// of every connection of a source share its index (one marker, one drop,
// one build), and a value's entries list them in (connection, id) order
// after those of the source's own records: a lookup reads one
// connection's, or every one's, with one prefix. Like the record index,
// these keys are versioned by revision: they are written at the timestamp
// of the change set that changed the record (staged runs at the staging's
// timestamp, direct publishes in their own commit), so a reader at a
// revision's timestamp sees the index of exactly that revision. Only
// records that are not deleted are indexed. Maintaining them costs, per
// publish, a read of each changed record of an indexed model and of its
// previous version: proportional to the change set, never to the layer.
const pfxFieldIndex = 'f'

// metaFieldIndexes holds the field indexes in effect (JSON), to tell new
// and dropped ones apart on SetFieldIndexes.
const metaFieldIndexes = "field-indexes"

// maxIndexedString is the longest string value indexed as it is; longer
// ones are indexed by their hash (readers check candidates anyway).
const maxIndexedString = 256

// fieldIndexes is the set of indexed fields by (source, model).
type fieldIndexes struct {
	by map[[2]string][]string
}

func (ix *fieldIndexes) fields(source, model []byte) []string {
	if ix == nil {
		return nil
	}
	// A connection's records are indexed as its source's are.
	src, _ := splitSourceBytes(source)
	return ix.by[[2]string{string(src), string(model)}]
}

func fieldIndexPrefix(source, model, field string) []byte {
	k := make([]byte, 0, 4+len(source)+len(model)+len(field))
	k = append(k, pfxFieldIndex)
	k = append(k, source...)
	k = append(k, 0)
	k = append(k, model...)
	k = append(k, 0)
	k = append(k, field...)
	return append(k, 0)
}

func fieldIndexMarker(source, model, field string) []byte {
	return append(fieldIndexPrefix(source, model, field), 0)
}

// The byte after a value's terminating 0x00: the entry is a record's of
// the source itself, or of one of its connections.
const (
	entryPlain = 1
	entryConn  = 2
)

// appendEntryConn turns k, ending with an encoded value (appendIndexValue),
// into the prefix of that value's entries of the records of connection
// conn ("" : of the source itself); the record's id follows it.
func appendEntryConn(k []byte, conn string) []byte {
	if conn == "" {
		return k
	}
	k[len(k)-1] = entryConn
	return append(append(k, conn...), 0)
}

// fieldIndexEntry is the key of one (record, value) entry: base is the
// field's fieldIndexPrefix, v an encoded value (appendIndexValue), conn
// the record's connection ("" : none).
func fieldIndexEntry(base []byte, v, conn, id string) []byte {
	k := make([]byte, 0, len(base)+len(v)+len(conn)+1+len(id))
	k = appendEntryConn(append(append(k, base...), v...), conn)
	return append(k, id...)
}

// appendIndexValue appends the encoded value and its terminator to k. ok is
// false for a value that is not indexed (null, objects, arrays).
func appendIndexValue(k []byte, v any) ([]byte, bool) {
	var tag byte
	var raw []byte
	switch x := v.(type) {
	case string:
		tag, raw = 's', []byte(x)
		if len(raw) > maxIndexedString {
			tag, raw = 'h', binary.BigEndian.AppendUint64(nil, xxhash.Sum64String(x))
		}
	case bool:
		tag = 'f'
		if x {
			tag = 't'
		}
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return k, false
		}
		return appendIndexValue(k, f)
	case int:
		return appendIndexValue(k, float64(x))
	case int64:
		return appendIndexValue(k, float64(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return k, false
		}
		if x == 0 {
			x = 0 // -0 and 0 are one value
		}
		// Order-preserving bits, as the value is compared by equality only
		// but kept sortable for later range use.
		b := math.Float64bits(x)
		if b&(1<<63) != 0 {
			b = ^b
		} else {
			b |= 1 << 63
		}
		tag, raw = 'n', binary.BigEndian.AppendUint64(nil, b)
	default:
		return k, false
	}
	k = append(k, tag)
	for _, c := range raw {
		k = append(k, c)
		if c == 0 {
			k = append(k, 0xFF)
		}
	}
	return append(k, 0, 1), true
}

// indexValues returns the encoded values (tag, bytes and terminator) a
// record's payload holds in the named fields: a scalar gives one, an array
// one per scalar element.
func indexValues(payload []byte, fields []string) (map[string][]string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(fields))
	for _, f := range fields {
		raw, ok := obj[f]
		if !ok {
			continue
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		vals := []any{v}
		if arr, ok := v.([]any); ok {
			vals = arr
		}
		var encs []string
		for _, x := range vals {
			if b, ok := appendIndexValue(nil, x); ok {
				encs = append(encs, string(b))
			}
		}
		sort.Strings(encs)
		out[f] = dedupSorted(encs)
	}
	return out, nil
}

func dedupSorted(ss []string) []string {
	out := ss[:0]
	for i, s := range ss {
		if i == 0 || s != ss[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// SetFieldIndexes sets the field indexes the layer maintains. Indexes not
// in effect before are built at once over the newest revision (a walk of
// their model, once); dropped ones are deleted. Until an index is built, and
// in revisions older than its building, readers find no index and scan.
func (l *Layer) SetFieldIndexes(defs []FieldIndex) error {
	if l.closed.Load() {
		return ErrClosed
	}
	for _, d := range defs {
		if d.Source == "" || d.Model == "" || d.Field == "" || strings.ContainsRune(d.Source+d.Model+d.Field, 0) {
			return fmt.Errorf("store: invalid field index %+v", d)
		}
	}
	defs = append([]FieldIndex(nil), defs...)
	sort.Slice(defs, func(i, j int) bool {
		a, b := defs[i], defs[j]
		return a.Source+"\x00"+a.Model+"\x00"+a.Field < b.Source+"\x00"+b.Model+"\x00"+b.Field
	})
	defs = dedupDefs(defs)
	l.pub.Lock()
	defer l.pub.Unlock()
	var before []FieldIndex
	if b, err := l.getLatest(metaKey(metaFieldIndexes)); err != nil {
		return err
	} else if b != nil {
		if err := json.Unmarshal(b, &before); err != nil {
			return fmt.Errorf("store: corrupt field index list: %w", err)
		}
	}
	had := map[FieldIndex]bool{}
	for _, d := range before {
		had[d] = true
	}
	want := map[FieldIndex]bool{}
	for _, d := range defs {
		want[d] = true
	}
	for _, d := range before {
		if !want[d] {
			if err := l.db.DropPrefix(fieldIndexPrefix(d.Source, d.Model, d.Field)); err != nil {
				return fmt.Errorf("store: drop field index %s/%s.%s: %w", d.Source, d.Model, d.Field, err)
			}
		}
	}
	for _, d := range defs {
		if had[d] {
			continue
		}
		start := time.Now()
		n, err := l.buildFieldIndex(d)
		if err != nil {
			return fmt.Errorf("store: build field index %s/%s.%s: %w", d.Source, d.Model, d.Field, err)
		}
		logf := l.log.Info
		if n == 0 {
			logf = l.log.Debug
		}
		logf("built a field index", "source", d.Source, "model", d.Model, "field", d.Field, "records", n, "took", time.Since(start).Round(time.Millisecond))
	}
	b, err := json.Marshal(defs)
	if err != nil {
		return err
	}
	txn := l.db.NewTransactionAt(readLatest, true)
	defer txn.Discard()
	if err := txn.Set(metaKey(metaFieldIndexes), b); err != nil {
		return err
	}
	if err := txn.CommitAt(l.nextTS(), nil); err != nil {
		return err
	}
	l.fidx.Store(newFieldIndexes(defs))
	return nil
}

func newFieldIndexes(defs []FieldIndex) *fieldIndexes {
	ix := &fieldIndexes{by: map[[2]string][]string{}}
	for _, d := range defs {
		k := [2]string{d.Source, d.Model}
		ix.by[k] = append(ix.by[k], d.Field)
	}
	return ix
}

// fieldIndexes returns the field indexes in effect, read from the layer's
// metadata the first time: a layer opened without SetFieldIndexes (the
// CLI, a restore) still maintains the indexes its store holds.
func (l *Layer) fieldIndexes() (*fieldIndexes, error) {
	if ix := l.fidx.Load(); ix != nil {
		return ix, nil
	}
	var defs []FieldIndex
	b, err := l.getLatest(metaKey(metaFieldIndexes))
	if err != nil {
		return nil, err
	}
	if b != nil {
		if err := json.Unmarshal(b, &defs); err != nil {
			return nil, fmt.Errorf("store: corrupt field index list: %w", err)
		}
	}
	ix := newFieldIndexes(defs)
	l.fidx.CompareAndSwap(nil, ix)
	return l.fidx.Load(), nil
}

func dedupDefs(defs []FieldIndex) []FieldIndex {
	out := defs[:0]
	for i, d := range defs {
		if i == 0 || d != defs[i-1] {
			out = append(out, d)
		}
	}
	return out
}

// buildFieldIndex writes the index of one field for the newest revision,
// at that revision's timestamp, then its completion marker. Call with
// l.pub held.
func (l *Layer) buildFieldIndex(d FieldIndex) (int, error) {
	ts := l.publishedTS()
	if ts == 0 {
		ts = 1 // nothing published: every revision to come sees the marker
	}
	read := l.db.NewTransactionAt(ts, false)
	defer read.Discard()
	wb := l.db.NewWriteBatchAt(ts)
	defer wb.Cancel()
	base := fieldIndexPrefix(d.Source, d.Model, d.Field)
	// The source's records and those of each of its connections.
	n := 0
	err := walkConnections(read, d.Source, d.Model, "", "", func(conn, id []byte, item *badger.Item) (bool, error) {
		var ie indexEntry
		if err := item.Value(func(v []byte) (err error) { ie, err = decodeIndex(v); return }); err != nil {
			return false, err
		}
		if ie.deleted {
			return true, nil
		}
		payload, err := readPayload(read, ie.cursor)
		if err != nil {
			return false, err
		}
		vals, err := indexValues(payload, []string{d.Field})
		if err != nil {
			return true, nil // stored payloads are valid objects; skip the impossible
		}
		for _, v := range vals[d.Field] {
			if err := wb.Set(fieldIndexEntry(base, v, string(conn), string(id)), nil); err != nil {
				return false, err
			}
		}
		n++
		return true, nil
	})
	if err != nil {
		return n, err
	}
	if err := wb.Flush(); err != nil {
		return n, err
	}
	mark := l.db.NewWriteBatchAt(ts)
	defer mark.Cancel()
	if err := mark.Set(fieldIndexMarker(d.Source, d.Model, d.Field), nil); err != nil {
		return n, err
	}
	return n, mark.Flush()
}

// indexChangeSet updates the field indexes for the record entries with
// cursors in [lo, hi] that read sees (a change set about to be published),
// against their previous versions at prevTS. Index keys go to w.
func (l *Layer) indexChangeSet(read *badger.Txn, lo, hi, prevTS uint64, w kvWriter) error {
	ix, err := l.fieldIndexes()
	if err != nil || len(ix.by) == 0 {
		return err
	}
	var old *badger.Txn
	if prevTS > 0 {
		old = l.db.NewTransactionAt(prevTS, false)
		defer old.Discard()
	}
	it := read.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxRecord}})
	defer it.Close()
	end := recordKey(store.MakeCursor(hi+1, 0))
	for it.Seek(recordKey(store.MakeCursor(lo, 0))); it.Valid() && bytes.Compare(it.Item().Key(), end) < 0; it.Next() {
		var source, src, conn, model, id string
		var fields []string
		var now map[string][]string
		err := it.Item().Value(func(v []byte) error {
			e, err := decodeEntry(v)
			if err != nil {
				return err
			}
			if fields = ix.fields(e.source, e.model); fields == nil {
				return nil
			}
			source, model, id = string(e.source), string(e.model), string(e.id)
			src, conn = SplitSourceKey(source)
			if e.action != Deleted {
				now, err = indexValues(e.payload, fields)
			}
			return err
		})
		if err != nil {
			return err
		}
		if fields == nil {
			continue
		}
		var was map[string][]string
		if old != nil {
			ie, found, err := readIndex(old, indexKey(source, model, id))
			if err != nil {
				return err
			}
			if found && !ie.deleted {
				p, err := readPayload(old, ie.cursor)
				if err != nil {
					return err
				}
				if was, err = indexValues(p, fields); err != nil {
					return err
				}
			}
		}
		for _, f := range fields {
			base := fieldIndexPrefix(src, model, f)
			key := func(v string) []byte { return fieldIndexEntry(base, v, conn, id) }
			for _, v := range was[f] {
				if !containsSorted(now[f], v) {
					if err := w.Delete(key(v)); err != nil {
						return err
					}
				}
			}
			for _, v := range now[f] {
				if !containsSorted(was[f], v) {
					if err := w.Set(key(v), nil); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func containsSorted(ss []string, s string) bool {
	i := sort.SearchStrings(ss, s)
	return i < len(ss) && ss[i] == s
}

// indexStaged updates the field indexes for a staging about to be
// published: its record entries lie at [st.base, st.ts]; txn holds the
// publish (reconciled) state. The index keys are written at the staging's
// timestamp, below the revision's, and rolled back with the staging if it
// is aborted. Call with l.pub held, before the revision commits.
func (l *Layer) indexStaged(txn *badger.Txn, st *Staging) error {
	if ix, err := l.fieldIndexes(); err != nil || len(ix.by) == 0 {
		return err
	}
	wb := newLoader(l.db, st.ts)
	defer wb.Cancel()
	if err := l.indexChangeSet(txn, st.base, st.ts, l.publishedTS(), wb); err != nil {
		return fmt.Errorf("field indexes: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("field indexes: %w", err)
	}
	return nil
}

// hasFieldIndexes tells whether publishes maintain field indexes.
func (l *Layer) hasFieldIndexes() bool {
	ix, err := l.fieldIndexes()
	return err == nil && len(ix.by) > 0
}

// indexDirect updates the field indexes for a direct publish at ts, through
// a loader at ts (any size): txn reads the publish's committed parts.
// Call with l.pub held, before the revision commits, with the partial
// publish marker set (a crash before the revision rolls them back).
func (l *Layer) indexDirect(txn *badger.Txn, ts, prevTS uint64) error {
	wb := newLoader(l.db, ts)
	defer wb.Cancel()
	if err := l.indexChangeSet(txn, ts, ts, prevTS, wb); err != nil {
		return fmt.Errorf("field indexes: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("field indexes: %w", err)
	}
	return nil
}
