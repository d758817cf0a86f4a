package badger

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/synclayer/synclayer/core/store"
	"github.com/synclayer/synclayer/core/store/internal/render"
)

// Records streams the records matching q, in ascending cursor order, to
// emit as JSON objects with their _metadata. The slice passed to emit is
// only valid during the call. All records come from one revision.
func (l *Layer) Records(q Query, emit func(record []byte) error) (Page, error) {
	if err := l.enter(); err != nil {
		return Page{}, err
	}
	defer l.exit()
	rev, ok, err := l.revisionAt(q.Revision)
	if err != nil {
		return Page{}, err
	}
	if !ok {
		return Page{}, nil // nothing published yet
	}
	page := Page{Revision: rev}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	defer func() {
		if page.Next != "" {
			// A walk goes on: its revision stays readable while it does.
			l.Lease(rev.Number)
		}
	}()
	l.mu.RLock()
	revs := l.refs // append-only: a snapshot of the slice header is safe
	l.mu.RUnlock()
	txn := l.db.NewTransactionAt(rev.TS, false)
	defer txn.Discard()
	r := recordRenderer{revs: revs, format: q.Metadata}
	if len(q.IDs) > 0 {
		err := l.recordsByID(txn, &r, q, &page, emit)
		return page, err
	}
	start := []byte{pfxRecord}
	if !q.ModifiedAfter.IsZero() {
		ma := q.ModifiedAfter.UnixMicro()
		if q.ModifiedAfter.After(time.UnixMicro(ma)) {
			ma++ // commit times are whole microseconds
		}
		i := sort.Search(len(revs), func(i int) bool { return revs[i].at >= ma })
		if i == len(revs) {
			return page, nil
		}
		if i > 0 {
			start = recordKey(store.MakeCursor(revs[i-1].ts+1, 0))
		}
	}
	if q.After != nil {
		if k := append(recordKey(*q.After), 0); string(k) > string(start) {
			start = k
		}
	}
	// No value prefetching: the value log is memory-mapped, so reading a
	// value in place costs less than the copy prefetching makes.
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxRecord}})
	defer it.Close()
	n := 0
	for it.Seek(start); it.Valid(); it.Next() {
		item := it.Item()
		var out []byte
		var matched bool
		err := item.Value(func(v []byte) error {
			e, err := decodeEntry(v)
			if err != nil {
				return err
			}
			if !queryMatches(&q, &e) {
				return nil
			}
			matched = true
			if n == q.Limit {
				return nil
			}
			var c Cursor
			copy(c[:], item.Key()[1:])
			out, err = r.render(&e, c)
			return err
		})
		if err != nil {
			return page, err
		}
		if !matched {
			continue
		}
		if n == q.Limit {
			// One more record matches: there is a next page.
			var c Cursor
			copy(c[:], r.lastCursor[:])
			page.Next = PageToken(c, rev.Number)
			return page, nil
		}
		if err := emit(out); err != nil {
			return page, err
		}
		n++
	}
	return page, nil
}

func (l *Layer) recordsByID(txn *badger.Txn, r *recordRenderer, q Query, page *Page, emit func([]byte) error) error {
	rev := page.Revision.Number
	var last Cursor
	sources := q.Sources
	if q.Source != "" {
		sources = []string{q.Source}
	}
	var hits []Cursor
	for _, src := range sources {
		// A connection's records are found by its source key.
		src = SourceKey(src, q.Connection)
		for _, id := range q.IDs {
			item, err := txn.Get(indexKey(src, q.Model, id))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			var ie indexEntry
			if err := item.Value(func(v []byte) (err error) { ie, err = decodeIndex(v); return }); err != nil {
				return err
			}
			hits = append(hits, ie.cursor)
		}
	}
	sort.Slice(hits, func(i, j int) bool { return string(hits[i][:]) < string(hits[j][:]) })
	n := 0
	for i, c := range hits {
		if i > 0 && hits[i-1] == c {
			continue
		}
		if q.After != nil && string(c[:]) <= string(q.After[:]) {
			continue
		}
		item, err := txn.Get(recordKey(c))
		if err != nil {
			return fmt.Errorf("read record entry: %w", err)
		}
		var out []byte
		err = item.Value(func(v []byte) error {
			e, err := decodeEntry(v)
			if err != nil || !queryMatches(&q, &e) {
				return err
			}
			if !q.ModifiedAfter.IsZero() {
				if rev, ok := r.revision(c.Timestamp()); ok && rev.createdAt().Before(q.ModifiedAfter) {
					return nil
				}
			}
			out, err = r.render(&e, c)
			return err
		})
		if err != nil {
			return err
		}
		if out != nil {
			if n == q.Limit {
				// One more record matches: there is a next page.
				page.Next = PageToken(last, rev)
				return nil
			}
			if err := emit(out); err != nil {
				return err
			}
			last = c
			n++
		}
	}
	return nil
}

// recordRenderer turns record entries into the JSON of the read API. It
// reuses one buffer.
type recordRenderer struct {
	revs       []revRef
	format     MetadataFormat
	buf        []byte
	lastCursor Cursor
	// a one-entry cache: consecutive records mostly share a revision
	cached    revRef
	cachedLo  uint64
	hasCached bool
	// formatted commit times by revision number
	times map[int64][]byte
}

// timeOf returns the formatted commit time of a revision.
func (r *recordRenderer) timeOf(rev revRef) []byte {
	if t, ok := r.times[rev.num]; ok {
		return t
	}
	if r.times == nil || len(r.times) > 4096 {
		r.times = map[int64][]byte{}
	}
	t := rev.createdAt().AppendFormat(nil, render.TimeFormat)
	r.times[rev.num] = t
	return t
}

func (r *recordRenderer) revision(ts uint64) (revRef, bool) {
	if r.hasCached && ts <= r.cached.ts && ts > r.cachedLo {
		return r.cached, true
	}
	i := sort.Search(len(r.revs), func(i int) bool { return r.revs[i].ts >= ts })
	if i == len(r.revs) {
		return revRef{}, false
	}
	r.cached, r.hasCached = r.revs[i], true
	r.cachedLo = 0
	if i > 0 {
		r.cachedLo = r.revs[i-1].ts
	}
	return r.cached, true
}

func (r *recordRenderer) render(e *entry, c Cursor) ([]byte, error) {
	r.lastCursor = c
	mod, ok := r.revision(c.Timestamp())
	if !ok {
		return nil, fmt.Errorf("store: record %s has no published revision", c)
	}
	first := mod
	if e.firstSeen != c.Timestamp() {
		if first, ok = r.revision(e.firstSeen); !ok {
			first = mod
		}
	}
	b, err := render.Append(r.buf[:0], e.payload, &render.Meta[[]byte]{
		SourceKey: e.source, Model: e.model, ID: e.id, Action: e.action, Cursor: c,
		FirstSeen: r.timeOf(first), Modified: r.timeOf(mod), Revision: mod.num,
	}, r.format)
	if err != nil {
		return nil, err
	}
	r.buf = b
	return b, nil
}
