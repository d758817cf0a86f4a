package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store"
)

// Revisions, pins and retention.
//
// A revision is readable while it is kept (synclayer_revisions.kept), at or
// above the layer's discard point, and one of: the newest keep, younger
// than keepFor, the pinned one, or leased by a reader paging it
// (store.LeaseTTL, synclayer_leases). Every commit that moves retention
// (a publish, SetRetention, Unpin) does so under the layer's lock: the
// revisions no longer readable lose kept (and their info; the row stays,
// for the commit time of the records they last changed), and the discard
// point rises to the oldest revision still readable. The versions no
// revision at or above the discard point needs (to_rev <= discard) are
// then deleted by the pruner, after the commit, in batches. A revision that
// stopped being readable never becomes readable again.

// retentionNow returns this host's retention settings.
func (l *Layer) retentionNow() (keep int, keepFor time.Duration) {
	l.rec.mu.Lock()
	defer l.rec.mu.Unlock()
	return l.rec.keep, l.rec.keepFor
}

// revState is what every revision question starts from.
type revState struct {
	newest, pinned, discard int64
}

func (l *Layer) readRevState(ctx context.Context, q pgx.Tx) (revState, error) {
	var s revState
	sql := `SELECT pinned, discard_rev, coalesce((SELECT max(rev) FROM synclayer_revisions WHERE layer_id = $1), 0)
		FROM synclayer_layers WHERE id = $1`
	var err error
	if q != nil {
		err = q.QueryRow(ctx, sql+` FOR NO KEY UPDATE`, l.id).Scan(&s.pinned, &s.discard, &s.newest)
	} else {
		err = l.s.pool.QueryRow(ctx, sql, l.id).Scan(&s.pinned, &s.discard, &s.newest)
	}
	return s, err
}

// revRow is a revision row with what readability needs.
type revRow struct {
	rev     store.Revision
	kept    bool
	leaseTo *time.Time
}

const revRowCols = `r.rev, r.created_at, r.info, r.kept,
	(SELECT expires_at FROM synclayer_leases e WHERE e.layer_id = r.layer_id AND e.rev = r.rev)`

func scanRevRow(row pgx.Row) (revRow, error) {
	var rr revRow
	var at time.Time
	var info []byte
	if err := row.Scan(&rr.rev.Number, &at, &info, &rr.kept, &rr.leaseTo); err != nil {
		return rr, err
	}
	if err := json.Unmarshal(info, &rr.rev); err != nil {
		return rr, fmt.Errorf("decode revision %d: %w", rr.rev.Number, err)
	}
	rr.rev.CreatedAt = at.UTC()
	rr.rev.TS = uint64(rr.rev.Number)
	if rr.rev.Sources == nil {
		rr.rev.Sources = []string{}
	}
	return rr, nil
}

// readRev reads revision n's row (ok false: none).
func (l *Layer) readRev(ctx context.Context, q pgx.Tx, n int64) (revRow, bool, error) {
	sql := `SELECT ` + revRowCols + ` FROM synclayer_revisions r WHERE r.layer_id = $1 AND r.rev = $2`
	var row pgx.Row
	if q != nil {
		row = q.QueryRow(ctx, sql, l.id, n)
	} else {
		row = l.s.pool.QueryRow(ctx, sql, l.id, n)
	}
	rr, err := scanRevRow(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return rr, false, nil
	}
	return rr, err == nil, err
}

// readable tells whether a revision row is readable now.
func (l *Layer) revReadable(rr revRow, s revState, now time.Time) bool {
	n := rr.rev.Number
	if !rr.kept || n < s.discard || n > s.newest {
		return false
	}
	keep, keepFor := l.retentionNow()
	if n > s.newest-int64(keep) || n == s.pinned {
		return true
	}
	if keepFor > 0 && now.Sub(rr.rev.CreatedAt) < keepFor {
		return true
	}
	return rr.leaseTo != nil && now.Before(*rr.leaseTo)
}

// revisionAt returns the revision a reader should see: n, or when n is 0
// the pinned revision if any, else the newest. It fails with
// store.ErrNoRevision for a revision that never existed and
// store.ErrRevisionGone for one no longer readable; with n = 0 and nothing
// published, ok is false.
func (l *Layer) revisionAt(n int64) (store.Revision, bool, error) {
	if err := l.recClosed(); err != nil {
		return store.Revision{}, false, err
	}
	ctx, cancel := l.ctx()
	defer cancel()
	s, err := l.readRevState(ctx, nil)
	if err != nil {
		return store.Revision{}, false, err
	}
	if n == 0 {
		n = s.pinned
	}
	if n == 0 {
		n = s.newest
		if n == 0 {
			return store.Revision{}, false, nil
		}
	}
	if n < 1 || n > s.newest {
		return store.Revision{}, false, fmt.Errorf("%w: %d", store.ErrNoRevision, n)
	}
	rr, ok, err := l.readRev(ctx, nil, n)
	if err != nil {
		return store.Revision{}, false, err
	}
	if !ok || !l.revReadable(rr, s, time.Now()) {
		keep, keepFor := l.retentionNow()
		return store.Revision{}, false, fmt.Errorf("%w: %d (the layer keeps its newest %d, those younger than %s, the pinned one and those being paged)",
			store.ErrRevisionGone, n, keep, keepFor)
	}
	rr.rev.Pinned = n == s.pinned
	return rr.rev, true, nil
}

// Lease keeps revision n readable for store.LeaseTTL from now, on every
// host (a reader is paging it). It does nothing for a revision no longer
// readable.
func (l *Layer) Lease(n int64) {
	ctx, cancel := l.ctx()
	defer cancel()
	// Not under the layer's lock: a reader's page must not wait for a
	// publish. A publish that drops the revision meanwhile wins, as it
	// would had it come before the page (the next page answers that the
	// revision is gone).
	err := func() error {
		s, err := l.readRevState(ctx, nil)
		if err != nil {
			return err
		}
		rr, ok, err := l.readRev(ctx, nil, n)
		if err != nil || !ok || !l.revReadable(rr, s, time.Now()) {
			return err
		}
		_, err = l.s.pool.Exec(ctx, `INSERT INTO synclayer_leases (layer_id, rev, expires_at) VALUES ($1, $2, $3)
			ON CONFLICT (layer_id, rev) DO UPDATE SET expires_at = greatest(synclayer_leases.expires_at, EXCLUDED.expires_at)`,
			l.id, n, time.Now().Add(store.LeaseTTL))
		return err
	}()
	if err != nil {
		l.log.Warn("could not lease a revision being paged", "revision", n, "error", err)
	}
}

// Revisions returns the layer's readable revisions, newest first, with the
// pinned flag set on the pinned one.
func (l *Layer) Revisions() []store.Revision {
	out := []store.Revision{}
	ctx, cancel := l.ctx()
	defer cancel()
	s, err := l.readRevState(ctx, nil)
	if err != nil {
		l.log.Warn("could not list the revisions", "error", err)
		return out
	}
	rows, err := l.s.pool.Query(ctx, `SELECT `+revRowCols+` FROM synclayer_revisions r
		WHERE r.layer_id = $1 AND r.kept AND r.rev >= $2 ORDER BY r.rev DESC`, l.id, s.discard)
	if err != nil {
		l.log.Warn("could not list the revisions", "error", err)
		return out
	}
	defer rows.Close()
	now := time.Now()
	for rows.Next() {
		rr, err := scanRevRow(rows)
		if err != nil {
			l.log.Warn("skipping a revision that does not decode", "error", err)
			continue
		}
		if l.revReadable(rr, s, now) {
			rr.rev.Pinned = rr.rev.Number == s.pinned
			out = append(out, rr.rev)
		}
	}
	if err := rows.Err(); err != nil {
		l.log.Warn("could not list the revisions", "error", err)
	}
	return out
}

// Current returns the revision readers see now (pinned or newest) and
// whether the layer has any revision.
func (l *Layer) Current() (store.Revision, bool) {
	ctx, cancel := l.ctx()
	defer cancel()
	s, err := l.readRevState(ctx, nil)
	if err != nil {
		l.log.Warn("could not read the current revision", "error", err)
		return store.Revision{}, false
	}
	n := s.pinned
	if n == 0 {
		n = s.newest
	}
	return l.revisionRow(ctx, n, s)
}

// Newest returns the newest revision, pinned or not.
func (l *Layer) Newest() (store.Revision, bool) {
	ctx, cancel := l.ctx()
	defer cancel()
	s, err := l.readRevState(ctx, nil)
	if err != nil {
		l.log.Warn("could not read the newest revision", "error", err)
		return store.Revision{}, false
	}
	return l.revisionRow(ctx, s.newest, s)
}

func (l *Layer) revisionRow(ctx context.Context, n int64, s revState) (store.Revision, bool) {
	if n == 0 {
		return store.Revision{}, false
	}
	rr, ok, err := l.readRev(ctx, nil, n)
	if err != nil {
		l.log.Warn("could not read a revision", "revision", n, "error", err)
	}
	if !ok {
		return store.Revision{}, false
	}
	rr.rev.Pinned = n == s.pinned
	return rr.rev, true
}

// Pinned returns the pinned revision number, 0 when none.
func (l *Layer) Pinned() int64 {
	ctx, cancel := l.ctx()
	defer cancel()
	s, err := l.readRevState(ctx, nil)
	if err != nil {
		l.log.Warn("could not read the pinned revision", "error", err)
	}
	return s.pinned
}

// KeptRevisions counts the revisions kept: the readable ones and those the
// next commit of retention drops.
func (l *Layer) KeptRevisions() int {
	ctx, cancel := l.ctx()
	defer cancel()
	var n int
	if err := l.s.pool.QueryRow(ctx, `SELECT count(*) FROM synclayer_revisions WHERE layer_id = $1 AND kept`, l.id).Scan(&n); err != nil {
		l.log.Warn("could not count the kept revisions", "error", err)
	}
	return n
}

// SetRetention keeps readable the newest keep revisions (at least 1),
// those younger than keepFor, the pinned one and those being paged. A
// revision that stopped being readable never becomes readable again, even
// when keep or keepFor grow.
func (l *Layer) SetRetention(keep int, keepFor time.Duration) {
	l.rec.mu.Lock()
	l.rec.keep, l.rec.keepFor = max(keep, 1), max(keepFor, 0)
	l.rec.mu.Unlock()
	if err := l.retainNow(); err != nil {
		l.log.Warn("could not prune revisions", "error", err)
	}
}

// retainNow applies retention in a commit of its own.
func (l *Layer) retainNow() error {
	ctx, cancel := l.ctx()
	defer cancel()
	err := l.tx(ctx, func(tx pgx.Tx) error {
		s, err := l.readRevState(ctx, tx)
		if err != nil || s.newest == 0 {
			return err
		}
		return l.retainRevisions(ctx, tx, s.newest, s.discard, s.pinned)
	})
	if err == nil {
		l.afterPublish()
	}
	return err
}

// retain drops the revisions no longer readable once newest is published,
// and raises the discard point to the oldest one still readable. Call in
// a transaction holding the layer's lock.
func (l *Layer) retainRevisions(ctx context.Context, tx pgx.Tx, newest, discard, pinned int64) error {
	keep, keepFor := l.retentionNow()
	now := time.Now()
	boundary := max(newest-int64(keep)+1, 1)
	if keepFor > 0 {
		var young *int64
		if err := tx.QueryRow(ctx, `SELECT min(rev) FROM synclayer_revisions WHERE layer_id = $1 AND kept AND created_at > $2`,
			l.id, now.Add(-keepFor)).Scan(&young); err != nil {
			return err
		}
		if young != nil {
			boundary = min(boundary, *young)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM synclayer_leases WHERE layer_id = $1 AND expires_at <= $2`, l.id, now); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT rev FROM synclayer_leases WHERE layer_id = $1`, l.id)
	if err != nil {
		return err
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	if pinned != 0 {
		held = append(held, pinned)
	}
	oldest := boundary
	for _, h := range held {
		if h >= discard && h < oldest {
			oldest = h
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE synclayer_revisions SET kept = false, info = '{}'
		WHERE layer_id = $1 AND kept AND rev < $2 AND rev <> ALL($3::bigint[])`, l.id, boundary, held); err != nil {
		return err
	}
	if oldest > discard {
		if _, err := tx.Exec(ctx, `UPDATE synclayer_layers SET discard_rev = $2 WHERE id = $1`, l.id, oldest); err != nil {
			return err
		}
	}
	return nil
}

// pruneBatch bounds the versions one statement of the pruner deletes.
const pruneBatch = 5000

// pruneLoop deletes, when woken, the versions that no revision at or above
// the discard point needs, until the layer closes.
func (l *Layer) pruneLoop() {
	defer close(l.rec.done)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-l.rec.stop
		cancel()
	}()
	for {
		select {
		case <-l.rec.stop:
			return
		case <-l.rec.settle:
			if err := l.settleRecords(ctx); err != nil && ctx.Err() == nil {
				l.log.Warn("could not vacuum the records after a large publish", "error", err)
			}
			continue
		case <-l.rec.prune:
		}
		if err := l.pruneVersions(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("could not prune old versions of records", "error", err)
		}
		if err := l.pruneStagings(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("could not drop the stagings of ended runs", "error", err)
		}
	}
}

// settleAfter is how many staged changes make a publish large enough to
// settle the record table after it (settleRecords).
var settleAfter int64 = 50_000

// settleRecords vacuums and analyzes synclayer_records. After a large
// publish its new rows have no hint bits yet and the planner's statistics
// predate them: the first reader then sets the hint bits of every page it
// reads (writing them), which made the first walk of a 1 M-record layer
// read at 11 k records/s where the next ones read at 55-59 k. Autovacuum
// would do the same, a minute or more later; VACUUM skips the pages
// already all-visible, so the cost follows what the publish wrote.
func (l *Layer) settleRecords(ctx context.Context) error {
	_, err := l.s.pool.Exec(ctx, `VACUUM (ANALYZE) synclayer_records`)
	return err
}

// pruneStagings drops what runs that ended without publishing left staged:
// a run whose host died is marked failed by the host that runs it again
// (under a new id), and nothing else would ever read its staging.
func (l *Layer) pruneStagings(ctx context.Context) error {
	for _, table := range []string{"synclayer_staged", "synclayer_seen", "synclayer_staged_checkpoints"} {
		_, err := l.s.pool.Exec(ctx, `DELETE FROM `+table+` s WHERE s.layer_id = $1 AND EXISTS (
			SELECT 1 FROM synclayer_runs r WHERE r.layer_id = s.layer_id AND r.id = s.run AND r.state NOT IN ('queued', 'running'))`, l.id)
		if err != nil {
			return err
		}
	}
	return nil
}

func (l *Layer) pruneVersions(ctx context.Context) error {
	var discard int64
	if err := l.s.pool.QueryRow(ctx, `SELECT discard_rev FROM synclayer_layers WHERE id = $1`, l.id).Scan(&discard); err != nil {
		return err
	}
	for ctx.Err() == nil {
		tag, err := l.s.pool.Exec(ctx, `DELETE FROM synclayer_records WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM synclayer_records WHERE layer_id = $1 AND to_rev IS NOT NULL AND to_rev <= $2 LIMIT $3))`,
			l.id, discard, pruneBatch)
		if err != nil {
			return err
		}
		if tag.RowsAffected() < pruneBatch {
			return nil
		}
	}
	return ctx.Err()
}

// Pin makes revision n the one readers see until Unpin, on every host.
// Syncs go on publishing newer revisions meanwhile. announce are the
// outbound events of the pin, committed with it.
func (l *Layer) Pin(n int64, announce ...store.Delivery) error {
	if err := l.recClosed(); err != nil {
		return err
	}
	ctx, cancel := l.ctx()
	defer cancel()
	return l.tx(ctx, func(tx pgx.Tx) error {
		s, err := l.readRevState(ctx, tx)
		if err != nil {
			return err
		}
		if n < 1 || n > s.newest {
			return fmt.Errorf("%w: %d", store.ErrNoRevision, n)
		}
		rr, ok, err := l.readRev(ctx, tx, n)
		if err != nil {
			return err
		}
		if !ok || !l.revReadable(rr, s, time.Now()) {
			return fmt.Errorf("%w: %d", store.ErrRevisionGone, n)
		}
		if _, err := tx.Exec(ctx, `UPDATE synclayer_layers SET pinned = $2 WHERE id = $1`, l.id, n); err != nil {
			return err
		}
		if err := l.sys.enqueue(ctx, tx, l, announce); err != nil {
			return err
		}
		return l.notify(ctx, tx, kindPin, strconv.FormatInt(n, 10))
	})
}

// kindPin is the notification of a pin or unpin (payload: the pinned
// revision, 0 for none).
const kindPin = "pin"

// Unpin lets readers see the newest revision again. It returns the
// revision that was pinned (0: none).
func (l *Layer) Unpin() (int64, error) { return l.UnpinWith(nil) }

// UnpinWith is Unpin, with the outbound events that announce it (given
// the revision that was pinned) committed with it.
func (l *Layer) UnpinWith(announce func(was int64) []store.Delivery) (int64, error) {
	if err := l.recClosed(); err != nil {
		return 0, err
	}
	ctx, cancel := l.ctx()
	defer cancel()
	var was int64
	err := l.tx(ctx, func(tx pgx.Tx) error {
		s, err := l.readRevState(ctx, tx)
		if err != nil {
			return err
		}
		was = s.pinned
		if _, err := tx.Exec(ctx, `UPDATE synclayer_layers SET pinned = 0 WHERE id = $1`, l.id); err != nil {
			return err
		}
		if announce != nil && was != 0 {
			if err := l.sys.enqueue(ctx, tx, l, announce(was)); err != nil {
				return err
			}
		}
		if err := l.notify(ctx, tx, kindPin, "0"); err != nil {
			return err
		}
		if s.newest == 0 {
			return nil
		}
		s.pinned = 0
		return l.retainRevisions(ctx, tx, s.newest, s.discard, 0)
	})
	if err != nil {
		return 0, err
	}
	l.afterPublish()
	return was, nil
}
