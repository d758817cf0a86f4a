package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/synclayer/synclayer/core/store"
	"github.com/synclayer/synclayer/core/store/internal/render"
)

// Reads of records (SPEC §4): a reader of revision N sees exactly the
// versions with from_rev <= N AND (to_rev IS NULL OR to_rev > N). Which
// revision a read starts on, and whether it may (store.ErrNoRevision,
// store.ErrRevisionGone), is retention's answer (revisionAt, revisions.go);
// the versions a revision sees stay in the table while it is at or above
// the layer's discard point (the pruner deletes only versions with to_rev
// <= discard_rev, after the commit that raised it). So every read
// statement of this file and its siblings (snapshot.go, counts.go,
// fieldindex.go) takes the layer's id as $1 and the revision as $2, and
// holds the guard keptSQL: one statement sees one snapshot of the
// database, so its rows are complete when the revision was at or above the
// discard point at its start, and it returns none when it was not. A
// statement that returns no rows asks (checkKept) to tell "none" from
// store.ErrRevisionGone. A walk goes on reading its revision whatever
// retention decides meanwhile, until the pruner may have reached it, as
// the embedded driver's readers do until compaction.
//
// What reads rely on from the writers (publish.go, revisions.go):
//   - A revision's row in synclayer_revisions stays for good (kept turns
//     false): first_seen_at and modifiedAfter read the commit times of
//     revisions long unreadable.
//   - A version's payload is the JSON object as readers get it: stored
//     compact, as the embedded driver stores it, the records render byte
//     for byte as its do.

// visibleSQL selects the version of a record (alias r) that revision $2
// sees.
const visibleSQL = `r.from_rev <= $2 AND (r.to_rev IS NULL OR r.to_rev > $2)`

// keptSQL holds while the versions revision $2 of layer $1 sees are all in
// the table: the revision is at or above the layer's discard point.
const keptSQL = `EXISTS (SELECT 1 FROM synclayer_layers WHERE id = $1 AND discard_rev <= $2)`

// versionCols are the columns a record is read with (scanVersion scans
// them). The commit times of its revisions come from the layer's cache
// (fillTimes), not from a join: joined per row, they cost the statement
// four times what the rows do.
const versionCols = `r.source_key, r.model, r.id, r.from_rev, r.seq, r.action, r.first_seen_rev, r.payload`

// version is one row of synclayer_records with its revisions' times.
type version struct {
	sourceKey, model, id string
	fromRev, firstSeen   int64
	seq                  int32
	action               store.Action
	payload              []byte
	// the commit times of fromRev and firstSeen (fillTimes)
	modAt, firstAt   time.Time
	hasMod, hasFirst bool
}

func (v *version) cursor() store.Cursor { return store.MakeCursor(uint64(v.fromRev), uint32(v.seq)) }

func scanVersion(rows pgx.Rows, v *version) error {
	var action int16
	if err := rows.Scan(&v.sourceKey, &v.model, &v.id, &v.fromRev, &v.seq, &action, &v.firstSeen, &v.payload); err != nil {
		return err
	}
	v.action = store.Action(action)
	return nil
}

// versionOIDs are the types of versionCols, in order.
var versionOIDs = [...]uint32{pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.Int8OID, pgtype.Int4OID, pgtype.Int2OID, pgtype.Int8OID, pgtype.ByteaOID}

// binaryVersionCols tells whether a statement's columns are versionCols in
// the formats decodeVersion reads (binary, or text for text).
func binaryVersionCols(fds []pgconn.FieldDescription) bool {
	if len(fds) != len(versionOIDs) {
		return false
	}
	for i, fd := range fds {
		// A text value's bytes are the same in both formats.
		if fd.DataTypeOID != versionOIDs[i] || fd.Format != pgtype.BinaryFormatCode && fd.DataTypeOID != pgtype.TextOID {
			return false
		}
	}
	return true
}

// decodeVersion reads versionCols from their binary values: what Scan
// does, without its per-column dispatch (a walk reads many rows of few
// columns).
func decodeVersion(vals [][]byte, v *version) error {
	if len(vals) != len(versionOIDs) || vals[0] == nil || vals[1] == nil || vals[2] == nil || vals[7] == nil ||
		len(vals[3]) != 8 || len(vals[4]) != 4 || len(vals[5]) != 2 || len(vals[6]) != 8 {
		return errors.New("store: unexpected record row")
	}
	v.sourceKey, v.model, v.id = string(vals[0]), string(vals[1]), string(vals[2])
	v.fromRev = int64(binary.BigEndian.Uint64(vals[3]))
	v.seq = int32(binary.BigEndian.Uint32(vals[4]))
	v.action = store.Action(binary.BigEndian.Uint16(vals[5]))
	v.firstSeen = int64(binary.BigEndian.Uint64(vals[6]))
	v.payload = append(v.payload[:0], vals[7]...)
	return nil
}

// times are the commit times a version is rendered with: last modified
// (its revision's) and first seen. A first-seen revision without a time
// falls back to the modification's, as the embedded driver does.
func (v *version) times() (mod, first time.Time, err error) {
	if !v.hasMod {
		return time.Time{}, time.Time{}, fmt.Errorf("store: record %s has no published revision", v.cursor())
	}
	mod, first = v.modAt, v.modAt
	if v.firstSeen != v.fromRev && v.hasFirst {
		first = v.firstAt
	}
	return mod, first, nil
}

// revTimes caches the commit times of a layer's revisions. A committed
// revision's time never changes, so the cache is right on every host
// without being told of other hosts' publishes: a revision it lacks is
// read when first needed.
type revTimes struct {
	mu sync.Mutex
	m  map[int64]time.Time
}

// maxCachedTimes bounds a layer's cache of revision times.
const maxCachedTimes = 1 << 16

// layerTimes holds each layer's revTimes (by *Layer).
var layerTimes sync.Map

// fillTimes sets the commit times of versions, reading those the cache
// lacks (one statement).
func (l *Layer) fillTimes(ctx context.Context, vs []version) error {
	if len(vs) == 0 {
		return nil
	}
	c, _ := layerTimes.LoadOrStore(l, &revTimes{m: map[int64]time.Time{}})
	rt := c.(*revTimes)
	known := map[int64]time.Time{}
	var missing []int64
	rt.mu.Lock()
	for i := range vs {
		for _, n := range [2]int64{vs[i].fromRev, vs[i].firstSeen} {
			if _, ok := known[n]; ok || slices.Contains(missing, n) {
				continue
			}
			if at, ok := rt.m[n]; ok {
				known[n] = at
			} else {
				missing = append(missing, n)
			}
		}
	}
	rt.mu.Unlock()
	if len(missing) > 0 {
		rows, err := l.s.pool.Query(ctx, `SELECT rev, created_at FROM synclayer_revisions WHERE layer_id = $1 AND rev = ANY($2)`, l.id, missing)
		if err != nil {
			return fmt.Errorf("store: read revision times: %w", err)
		}
		got := map[int64]time.Time{}
		for rows.Next() {
			var n int64
			var at time.Time
			if err := rows.Scan(&n, &at); err != nil {
				rows.Close()
				return fmt.Errorf("store: read revision times: %w", err)
			}
			got[n] = at.UTC()
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: read revision times: %w", err)
		}
		rt.mu.Lock()
		if len(rt.m)+len(got) > maxCachedTimes {
			rt.m = map[int64]time.Time{}
		}
		for n, at := range got {
			rt.m[n] = at
			known[n] = at
		}
		rt.mu.Unlock()
	}
	for i := range vs {
		v := &vs[i]
		v.modAt, v.hasMod = known[v.fromRev]
		v.firstAt, v.hasFirst = known[v.firstSeen]
	}
	return nil
}

// closeReads forgets what the reads cache of the layer (its revision
// times, and its store's disk figures once the store is closed); the
// layer's close calls it.
func (l *Layer) closeReads() {
	layerTimes.Delete(l)
	if l.closedErr() != nil {
		diskSizes.Delete(l.s)
	}
}

// sqlArgs builds a statement's positional arguments.
type sqlArgs []any

func (a *sqlArgs) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// closedErr is store.ErrClosed once the store is closed.
func (l *Layer) closedErr() error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.s.closed {
		return store.ErrClosed
	}
	return nil
}

// readRevision resolves revision n (0: the pinned one, else the newest)
// as retention answers (revisionAt), and fails with store.ErrClosed once
// the store is closed.
func (l *Layer) readRevision(n int64) (store.Revision, bool, error) {
	if err := l.closedErr(); err != nil {
		return store.Revision{}, false, err
	}
	return l.revisionAt(n)
}

func revisionGone(n int64) error {
	return fmt.Errorf("%w: %d (its versions may be pruned: the layer keeps its newest revisions, those younger than its keep_for, the pinned one and those being paged)", store.ErrRevisionGone, n)
}

// revisionKept tells whether the versions revision n sees are all in the
// table (keptSQL).
func (l *Layer) revisionKept(ctx context.Context, n int64) (bool, error) {
	var ok bool
	err := l.s.pool.QueryRow(ctx, `SELECT `+keptSQL, l.id, n).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("store: read revision: %w", err)
	}
	return ok, nil
}

// checkKept returns ErrRevisionGone unless revision n is kept: a read that
// found nothing calls it.
func (l *Layer) checkKept(ctx context.Context, n int64) error {
	ok, err := l.revisionKept(ctx, n)
	if err == nil && !ok {
		err = revisionGone(n)
	}
	return err
}

// A walk reads versions by statements of at most readChunk rows, and about
// chunkBytes of payloads (sized by the previous statement's payloads; the
// first reads firstChunk): the rows are copied out and the connection
// released before the records are emitted, so a slow client holds no
// connection and memory stays bounded whatever the records' size.
const (
	readChunk  = 2000
	firstChunk = 256
	minChunk   = 16
	chunkBytes = 4 << 20
)

// chunkAfter is the size of the statement after one that read vs.
func chunkAfter(vs []version) int {
	if len(vs) == 0 {
		return firstChunk
	}
	total := 0
	for i := range vs {
		total += len(vs[i].payload) + len(vs[i].id) + len(vs[i].sourceKey) + len(vs[i].model)
	}
	return max(minChunk, min(readChunk, chunkBytes*len(vs)/max(total, 1)))
}

// Records streams the records matching q, in ascending cursor order, to
// emit as JSON objects with their metadata (q.Metadata), byte for byte as
// the embedded driver renders them. The slice passed to emit is only valid
// during the call. All records come from one revision: q.Revision, or the
// current one; Page.Next continues on it.
func (l *Layer) Records(q store.Query, emit func(record []byte) error) (store.Page, error) {
	rev, ok, err := l.readRevision(q.Revision)
	if err != nil || !ok {
		return store.Page{}, err
	}
	ctx, cancel := l.ctx()
	defer cancel()
	// Page.Revision carries what the embedded driver's does.
	page := store.Page{Revision: store.Revision{Number: rev.Number, CreatedAt: rev.CreatedAt, TS: rev.TS}}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	w := walk{l: l, rev: rev.Number, r: recordRenderer{format: q.Metadata}}
	args := sqlArgs{l.id, rev.Number}
	var conds []string
	if len(q.IDs) > 0 {
		sources := q.Sources
		if q.Source != "" {
			sources = []string{q.Source}
		}
		keys := make([]string, len(sources))
		for i, s := range sources {
			// A connection's records are found by its source key.
			keys[i] = store.SourceKey(s, q.Connection)
		}
		conds = append(conds, `r.source_key = ANY(`+args.add(keys)+`)`,
			`r.model = `+args.add(q.Model), `r.id = ANY(`+args.add(q.IDs)+`)`)
	} else {
		if q.Model != "" {
			conds = append(conds, `r.model = `+args.add(q.Model))
		}
		switch {
		case q.Source != "" && q.Connection != "":
			conds = append(conds, `r.source_key = `+args.add(store.SourceKey(q.Source, q.Connection)))
		case q.Source != "":
			// The source's own records and every connection's: its key,
			// and the keys in [source+"\x1f", source+"\x20") (byte
			// order), which the planner estimates from the column's
			// statistics.
			conds = append(conds, `(r.source_key = `+args.add(q.Source)+
				` OR r.source_key >= `+args.add(q.Source+"\x1f")+` AND r.source_key < `+args.add(q.Source+"\x20")+`)`)
		case q.Connection != "":
			conds = append(conds, connectionOfSQL(`r.source_key`)+` = `+args.add(q.Connection))
		}
	}
	if q.Actions != 0 {
		var actions []int16
		for _, a := range []store.Action{store.Added, store.Updated, store.Deleted} {
			if q.Actions&(1<<a) != 0 {
				actions = append(actions, int16(a))
			}
		}
		conds = append(conds, `r.action = ANY(`+args.add(actions)+`)`)
	}
	if q.After != nil {
		w.after(*q.After)
	}
	if !q.ModifiedAfter.IsZero() {
		// last_modified_at >= ModifiedAfter: commit times are whole
		// microseconds, so that is >= ModifiedAfter rounded up to one.
		ma := q.ModifiedAfter.Truncate(time.Microsecond)
		if ma.Before(q.ModifiedAfter) {
			ma = ma.Add(time.Microsecond)
		}
		// The walk starts at the oldest revision committed at or after
		// it: a range of the time index, the revisions since (OFFSET 0
		// keeps the planner from walking every revision in number order
		// for min)...
		var first *int64
		err := l.s.pool.QueryRow(ctx, `SELECT min(rev) FROM (SELECT rev FROM synclayer_revisions
			WHERE layer_id = $1 AND created_at >= $2 OFFSET 0) since`, l.id, ma).Scan(&first)
		if err != nil {
			return page, fmt.Errorf("store: read records: %w", err)
		}
		if first == nil {
			return page, nil // nothing was modified since
		}
		w.after(store.MakeCursor(uint64(*first-1), math.MaxInt32))
		// ...and each record's own time decides, so that it is exact
		// even if hosts' clocks made a revision older than the one
		// before it.
		w.modifiedAfter = ma
	}
	w.query = `SELECT ` + versionCols + ` FROM synclayer_records r` +
		` WHERE r.layer_id = $1 AND ` + visibleSQL + ` AND ` + keptSQL
	for _, c := range conds {
		w.query += ` AND ` + c
	}
	w.args = args
	next, err := w.run(ctx, q.Limit, emit)
	if err != nil {
		return page, err
	}
	if next != nil {
		page.Next = store.PageToken(*next, rev.Number)
		// A walk goes on: its revision stays readable while it does.
		l.renewLease(ctx, rev.Number)
	}
	return page, nil
}

// sourceOfSQL is the source part of a source key column (SplitSourceKey).
func sourceOfSQL(col string) string { return `split_part(` + col + `, E'\x1f', 1)` }

// connectionOfSQL is the connection part of a source key column ("" for
// none), as SplitSourceKey splits it: after the first separator.
func connectionOfSQL(col string) string {
	return `CASE WHEN strpos(` + col + `, E'\x1f') > 0 THEN substr(` + col + `, strpos(` + col + `, E'\x1f') + 1) ELSE '' END`
}

// walk reads versions in cursor order by keyset, a chunk at a time.
type walk struct {
	l     *Layer
	rev   int64
	query string // the statement without its keyset condition, order and limit
	args  sqlArgs
	// the position: strictly after (posRev, posSeq)
	posRev int64
	posSeq int32
	// modifiedAfter, when set, skips the versions committed before it.
	modifiedAfter time.Time
	r             recordRenderer
}

// after moves the walk's start to after cursor c unless it starts later.
func (w *walk) after(c store.Cursor) {
	ts := c.Timestamp()
	seq := uint32(c[8])<<24 | uint32(c[9])<<16 | uint32(c[10])<<8 | uint32(c[11])
	if ts > math.MaxInt64 {
		ts = math.MaxInt64
	}
	// No record has a seq above MaxInt32: after (ts, more) is after (ts, MaxInt32).
	s := int32(min(seq, math.MaxInt32))
	if int64(ts) > w.posRev || int64(ts) == w.posRev && s > w.posSeq {
		w.posRev, w.posSeq = int64(ts), s
	}
}

// run emits up to limit rendered records and returns the cursor to
// continue after when one more matches.
func (w *walk) run(ctx context.Context, limit int, emit func([]byte) error) (*store.Cursor, error) {
	n := 0
	var last store.Cursor
	var buf []version
	chunk := firstChunk
	for {
		want := chunk
		if limit-n < want {
			want = limit - n + 1 // one more tells whether there is a next page
		}
		args := append(append(sqlArgs(nil), w.args...), w.posRev, w.posSeq, want)
		k := len(w.args)
		sql := w.query + fmt.Sprintf(` AND (r.from_rev, r.seq) > ($%d, $%d) ORDER BY r.from_rev, r.seq LIMIT $%d`, k+1, k+2, k+3)
		var err error
		buf, err = readVersions(ctx, w.l, buf[:0], sql, args...)
		if err != nil {
			return nil, fmt.Errorf("store: read records: %w", err)
		}
		if len(buf) == 0 {
			if err := w.l.checkKept(ctx, w.rev); err != nil {
				return nil, err
			}
			return nil, nil
		}
		for i := range buf {
			v := &buf[i]
			if !w.modifiedAfter.IsZero() && v.hasMod && v.modAt.Before(w.modifiedAfter) {
				continue
			}
			if n == limit {
				return &last, nil
			}
			out, err := w.r.render(v)
			if err != nil {
				return nil, err
			}
			if err := emit(out); err != nil {
				return nil, err
			}
			last = v.cursor()
			n++
		}
		if len(buf) < want {
			return nil, nil
		}
		lv := buf[len(buf)-1]
		w.posRev, w.posSeq = lv.fromRev, lv.seq
		chunk = chunkAfter(buf)
	}
}

// readVersions appends the versions a statement selects (versionCols) to
// buf, payloads copied, with their revisions' times.
func readVersions(ctx context.Context, l *Layer, buf []version, sql string, args ...any) ([]version, error) {
	rows, err := l.s.pool.Query(ctx, sql, args...)
	if err != nil {
		return buf, err
	}
	defer rows.Close()
	start := len(buf)
	raw := false
	for rows.Next() {
		if len(buf) == start {
			raw = binaryVersionCols(rows.FieldDescriptions())
		}
		buf = append(buf, version{})
		v := &buf[len(buf)-1]
		if raw {
			err = decodeVersion(rows.RawValues(), v)
		} else {
			err = scanVersion(rows, v)
		}
		if err != nil {
			return buf, err
		}
	}
	if err := rows.Err(); err != nil {
		return buf, err
	}
	rows.Close()
	return buf, l.fillTimes(ctx, buf[start:])
}

// renewLease leases revision n for a walk going on (Lease), unless its
// lease was renewed within the last tenth of store.LeaseTTL: Lease costs
// three statements and a write, which a fast walk need not pay once a
// page.
func (l *Layer) renewLease(ctx context.Context, n int64) {
	var expires time.Time
	err := l.s.pool.QueryRow(ctx, `SELECT expires_at FROM synclayer_leases WHERE layer_id = $1 AND rev = $2`, l.id, n).Scan(&expires)
	if err == nil && expires.After(time.Now().Add(store.LeaseTTL*9/10)) {
		return
	}
	l.Lease(n)
}

// recordRenderer turns versions into the JSON of the read API, byte for
// byte as the embedded driver's does. It reuses one buffer.
type recordRenderer struct {
	format store.MetadataFormat
	buf    []byte
	// formatted commit times
	times map[time.Time][]byte
}

// timeOf returns a formatted commit time.
func (r *recordRenderer) timeOf(t time.Time) []byte {
	if b, ok := r.times[t]; ok {
		return b
	}
	if r.times == nil || len(r.times) > 4096 {
		r.times = map[time.Time][]byte{}
	}
	b := t.AppendFormat(nil, render.TimeFormat)
	r.times[t] = b
	return b
}

func (r *recordRenderer) render(v *version) ([]byte, error) {
	mod, first, err := v.times()
	if err != nil {
		return nil, err
	}
	b, err := render.Append(r.buf[:0], v.payload, &render.Meta[string]{
		SourceKey: v.sourceKey, Model: v.model, ID: v.id, Action: v.action, Cursor: v.cursor(),
		FirstSeen: r.timeOf(first), Modified: r.timeOf(mod), Revision: v.fromRev,
	}, r.format)
	if err != nil {
		return nil, err
	}
	r.buf = b
	return b, nil
}
