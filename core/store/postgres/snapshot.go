package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/synclayer/synclayer/core/store"
)

// Snapshot is a read view of one revision for readers that look records up
// by id, walk a model in id order and use field indexes (GraphQL). Every
// read of a snapshot sees the same revision: the versions a revision sees
// never change while it is kept, so each read is a statement of its own
// (no transaction, no connection held between reads), guarded by the
// revision being kept (see read.go). Close it when done; it is safe for
// concurrent use until then.
type Snapshot struct {
	l      *Layer
	rev    store.Revision
	closed atomic.Bool

	// indexed caches Indexed's answers.
	mu      sync.Mutex
	indexed map[store.FieldIndex]bool
}

// OpenSnapshot opens a read view of revision n, or with n = 0 of the
// revision readers see now (the pinned one, else the newest). ok is false
// when n is 0 and nothing has been published yet. It fails with
// store.ErrNoRevision or store.ErrRevisionGone as Records does.
func (l *Layer) OpenSnapshot(n int64) (store.Snapshot, bool, error) {
	s, ok, err := l.openSnapshot(n)
	if err != nil || !ok {
		return nil, ok, err
	}
	return s, true, nil
}

func (l *Layer) openSnapshot(n int64) (*Snapshot, bool, error) {
	rev, ok, err := l.readRevision(n)
	if err != nil || !ok {
		return nil, ok, err
	}
	// What the embedded driver's snapshot carries.
	rev = store.Revision{Number: rev.Number, CreatedAt: rev.CreatedAt, TS: rev.TS, Pinned: rev.Pinned}
	return &Snapshot{l: l, rev: rev}, true, nil
}

// Revision is the revision the snapshot reads.
func (s *Snapshot) Revision() store.Revision { return s.rev }

// Retained tells whether the snapshot's revision is still kept (readable
// by retention's rules). A reader that derived something from an older
// snapshot checks it afterwards.
func (s *Snapshot) Retained() bool {
	if s.l.closedErr() != nil {
		return false
	}
	_, ok, err := s.l.revisionAt(s.rev.Number)
	return err == nil && ok
}

// Close releases the snapshot; its reads fail with store.ErrClosed after.
func (s *Snapshot) Close() { s.closed.Store(true) }

// enter starts a read: its context, or ErrClosed.
func (s *Snapshot) enter() (context.Context, context.CancelFunc, error) {
	if s.closed.Load() {
		return nil, nil, fmt.Errorf("%w: snapshot of revision %d", store.ErrClosed, s.rev.Number)
	}
	if err := s.l.closedErr(); err != nil {
		return nil, nil, err
	}
	ctx, cancel := s.l.ctx()
	return ctx, cancel, nil
}

// fill makes r of version v; r shares v's payload.
func fill(r *store.StoredRecord, v *version) error {
	mod, first, err := v.times()
	if err != nil {
		return err
	}
	src, conn := store.SplitSourceKey(v.sourceKey)
	*r = store.StoredRecord{Source: src, Connection: conn, Model: v.model, ID: v.id, Payload: v.payload,
		Action: v.action, Cursor: v.cursor(), FirstSeenAt: first, LastModifiedAt: mod, Revision: v.fromRev}
	return nil
}

// selectVersions is the start of a statement reading versions the
// snapshot's revision sees ($1 layer, $2 revision).
const selectVersions = `SELECT ` + versionCols + ` FROM synclayer_records r` +
	` WHERE r.layer_id = $1 AND ` + visibleSQL + ` AND ` + keptSQL

// Get returns one record (deleted ones too) by source key, model and id.
// Its payload is the caller's to keep.
func (s *Snapshot) Get(source, model, id string) (store.StoredRecord, bool, error) {
	ctx, cancel, err := s.enter()
	if err != nil {
		return store.StoredRecord{}, false, err
	}
	defer cancel()
	vs, err := readVersions(ctx, s.l, nil, selectVersions+` AND r.source_key = $3 AND r.model = $4 AND r.id = $5`,
		s.l.id, s.rev.Number, source, model, id)
	if err != nil {
		return store.StoredRecord{}, false, fmt.Errorf("store: read record: %w", err)
	}
	if len(vs) == 0 {
		return store.StoredRecord{}, false, s.l.checkKept(ctx, s.rev.Number)
	}
	var r store.StoredRecord
	if err := fill(&r, &vs[0]); err != nil {
		return store.StoredRecord{}, false, err
	}
	return r, true, nil
}

// scanChunk is the size of the i-th statement of an id-ordered walk after
// one that read prev: small first (a GraphQL page often wants ten
// records), then larger, within the bounds of chunkAfter.
func scanChunk(i int, prev []version) int {
	if i == 0 {
		return 64
	}
	return min(chunkAfter(prev), 256<<(2*(i-1)))
}

// Scan calls fn with the records of one (source key, model) that are not
// deleted, in ascending id order (byte order), starting after afterID (all
// when empty). The record passed to fn, its payload included, is only
// valid during the call. fn returns false to stop.
func (s *Snapshot) Scan(source, model, afterID string, fn func(r *store.StoredRecord) (bool, error)) error {
	ctx, cancel, err := s.enter()
	if err != nil {
		return err
	}
	defer cancel()
	from := afterID
	return s.scanPages(ctx, source, model, func(i, want int) (string, []any) {
		sql := selectVersions + ` AND r.source_key = $3 AND r.model = $4 AND r.action <> 3`
		args := []any{s.l.id, s.rev.Number, source, model, want}
		if i > 0 || from != "" {
			sql += ` AND r.id > $6`
			args = append(args, from)
		}
		return sql + ` ORDER BY r.id LIMIT $5`, args
	}, func(last *version) { from = last.id }, fn)
}

// scanPages reads pages of versions in turn, page i of scanChunk(i) rows
// from the statement and arguments page(i, want) returns, and calls fn
// with each page's records until fn stops or a page comes back short;
// after a full page, resume gets its last version. An empty page checks
// that the snapshot's revision is still kept.
func (s *Snapshot) scanPages(ctx context.Context, source, model string, page func(i, want int) (string, []any), resume func(last *version), fn func(r *store.StoredRecord) (bool, error)) error {
	var buf []version
	var rec store.StoredRecord
	for i := 0; ; i++ {
		want := scanChunk(i, buf)
		sql, args := page(i, want)
		var err error
		buf, err = readVersions(ctx, s.l, buf[:0], sql, args...)
		if err != nil {
			return fmt.Errorf("store: scan %s/%s: %w", source, model, err)
		}
		if len(buf) == 0 {
			return s.l.checkKept(ctx, s.rev.Number)
		}
		for j := range buf {
			if err := fill(&rec, &buf[j]); err != nil {
				return err
			}
			if more, err := fn(&rec); err != nil || !more {
				return err
			}
		}
		if len(buf) < want {
			return nil
		}
		resume(&buf[len(buf)-1])
	}
}

// ScanConnections calls fn with the records of one model of a source that
// are not deleted, whatever connection they belong to, in ascending
// (connection, id) order: first those without a connection (connection
// ""), then each connection's. It starts after the record (afterConn,
// afterID) (all when both are empty); a record's Connection and ID are
// where a later walk resumes. Each statement skips from one source key of
// the source to the next along the primary key (a recursive query: one
// index probe per connection) and reads the model's records of each by id,
// so it never walks other models. The record passed to fn is only valid
// during the call; fn returns false to stop.
func (s *Snapshot) ScanConnections(source, model, afterConn, afterID string, fn func(r *store.StoredRecord) (bool, error)) error {
	ctx, cancel, err := s.enter()
	if err != nil {
		return err
	}
	defer cancel()
	start := store.SourceKey(source, afterConn)
	// Source keys of the source sort in [source, source+"\x20"): the
	// source itself, then source+"\x1f"+connection.
	end := source + "\x20"
	return s.scanPages(ctx, source, model, func(i, want int) (string, []any) {
		args := []any{s.l.id, s.rev.Number, start, end, model, want, source}
		idCond := ``
		if afterID != "" {
			// The start key's records after afterID; every record of
			// the keys after it.
			idCond = ` AND (k.sk > $3 OR r.id > $8)`
			args = append(args, afterID)
		}
		sql := `WITH RECURSIVE k(sk) AS (
				(SELECT r.source_key FROM synclayer_records r
				 WHERE r.layer_id = $1 AND r.source_key >= $3 AND r.source_key < $4
				 ORDER BY r.source_key LIMIT 1)
				UNION ALL
				SELECT (SELECT r.source_key FROM synclayer_records r
				        WHERE r.layer_id = $1 AND r.source_key > k.sk AND r.source_key < $4
				        ORDER BY r.source_key LIMIT 1)
				FROM k WHERE k.sk IS NOT NULL)
			SELECT ` + versionCols + ` FROM k CROSS JOIN LATERAL (
				SELECT r.* FROM synclayer_records r
				WHERE r.layer_id = $1 AND r.source_key = k.sk AND r.model = $5 AND ` + visibleSQL + ` AND r.action <> 3` + idCond + `
				ORDER BY r.id LIMIT $6) r
			WHERE k.sk IS NOT NULL AND (k.sk = $7 OR starts_with(k.sk, $7 || E'\x1f')) AND ` + keptSQL + `
			LIMIT $6`
		return sql, args
	}, func(last *version) { start, afterID = last.sourceKey, last.id }, fn)
}

// Changes calls fn with every record (deleted ones too) whose latest change
// was published after revision since (0 or less: every record), in cursor
// order; a revision never published is store.ErrNoRevision.
// The record passed to fn is only valid during the call.
func (s *Snapshot) Changes(since int64, fn func(r *store.StoredRecord) error) error {
	ctx, cancel, err := s.enter()
	if err != nil {
		return err
	}
	defer cancel()
	if since > 0 {
		var newest *int64
		if err := s.l.s.pool.QueryRow(ctx, `SELECT max(rev) FROM synclayer_revisions WHERE layer_id = $1`, s.l.id).Scan(&newest); err != nil {
			return fmt.Errorf("store: read revision: %w", err)
		}
		if newest == nil || since > *newest {
			return fmt.Errorf("%w: %d", store.ErrNoRevision, since)
		}
	}
	posRev, posSeq := since, int32(math.MaxInt32)
	if since <= 0 {
		posRev, posSeq = 0, 0 // every record
	}
	var buf []version
	var rec store.StoredRecord
	for {
		want := chunkAfter(buf)
		buf, err = readVersions(ctx, s.l, buf[:0], selectVersions+
			` AND (r.from_rev, r.seq) > ($3, $4) ORDER BY r.from_rev, r.seq LIMIT $5`,
			s.l.id, s.rev.Number, posRev, posSeq, want)
		if err != nil {
			return fmt.Errorf("store: read changes: %w", err)
		}
		if len(buf) == 0 {
			return s.l.checkKept(ctx, s.rev.Number)
		}
		for j := range buf {
			if err := fill(&rec, &buf[j]); err != nil {
				return err
			}
			if err := fn(&rec); err != nil {
				return err
			}
		}
		if len(buf) < want {
			return nil
		}
		last := buf[len(buf)-1]
		posRev, posSeq = last.fromRev, last.seq
	}
}

var errOtherLayer = errors.New("store: snapshots of two layers")
