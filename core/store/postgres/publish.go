package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/synclayer/synclayer/core/store"
)

// Publishing.
//
// Every publish (a run's staging, a direct publish of payload webhooks, a
// connection's records deleted) is one transaction that takes the layer's
// row lock first: revisions, cursors and commit times grow in commit order
// across hosts. The lock is FOR NO KEY UPDATE: it serialises publishes
// (and pins, retention) without blocking the rows that reference the
// layer (their foreign keys take FOR KEY SHARE), so runs stage while
// another publishes; a transaction that inserted such rows and then took
// FOR UPDATE would deadlock with another doing the same. Its changes are rows of synclayer_staged under one run id;
// the transaction works them out set-based, in SQL, so that it costs in
// proportion to the changes and never to the layer's size:
//
//  1. synclayer_chg (a temporary table) gets one row per record the change
//     set touches: its changes folded (the last one wins; a save identical
//     to the published payload, by the hash of the connector's bytes, is
//     unchanged), joined with its live version, and what the publish does
//     with it (kind: given way to a fresher revision under
//     ignore_if_modified_after, unchanged, no-op, or a new version with
//     its action and its cursor's sequence number);
//  2. the live versions replaced get to_rev = the new revision;
//  3. the new versions are inserted, payloads straight from the staged
//     rows (or, for a delete, from the version it replaces);
//  4. counts come from synclayer_chg; the run's checkpoints are moved;
//     the revision row, the inbox items consumed, the deliveries that
//     announce the revision and the retention it moves go in the same
//     commit.
//
// The rules are the embedded driver's (core/store/badger/apply.go): a
// delete of an unknown or deleted record does nothing; a save of a deleted
// record revives it as ADDED (UPDATED when the change set then saves it
// again with another payload, as the embedded driver applies one change
// after the other) and keeps its first_seen; a record added and deleted by
// one change set is stored as deleted and counted as neither. Counts
// follow what the record was before and after: added, updated or deleted.

// changeSet is what a publish applies.
type changeSet struct {
	// run names the change set's rows in synclayer_staged, seen markers
	// and staged checkpoints.
	run string
	// direct is set for a change set without staging: its merging never
	// gives way (it began at the newest revision).
	direct bool
	// start is the newest revision when the change set began.
	start int64
	// maxSeq is the greatest sequence number of its staged rows.
	maxSeq int64
	// byID is set when a staged row is a delete by id alone (empty model).
	byID bool
	// tracked are (source key, model) pairs whose live records without a
	// seen marker of run are deleted after the staged changes; model ""
	// is every model of the source key.
	tracked [][2]string
	// ignore are the (source key, model) pairs merged with
	// ignore_if_modified_after (model "": every model).
	ignore [][2]string
	// sources have an entry in the revision's counts even without
	// changes.
	sources []string
	// sourceKeys are the source keys of the staged rows (set by a
	// staging: see saves).
	sourceKeys []string
	// saves is set when once is and every staged row is a save: if no
	// record of sourceKeys is live, each row is a new record (fresh).
	saves bool
	// checkpoints: move the run's staged checkpoints.
	checkpoints bool
	// once is set when every record of the change set has one staged
	// change: the publish need not fold them.
	once bool
}

// revInfo is what synclayer_revisions.info holds: a store.Revision without
// Number, CreatedAt, Pinned and TS.
type revInfo struct {
	Trigger string                             `json:"trigger"`
	Run     string                             `json:"run,omitempty"`
	Sources []string                           `json:"sources"`
	Counts  map[string]map[string]store.Counts `json:"counts"`
}

// Publish closes the writers and makes the staged changes one revision,
// with the run's checkpoints; records of tracked models the run did not
// save become deleted. Readers see all of it or none.
func (st *Staging) Publish(info store.PublishInfo) (store.Revision, error) {
	if err := st.l.recClosed(); err != nil {
		return store.Revision{}, err
	}
	st.mu.Lock()
	if st.done {
		st.mu.Unlock()
		return store.Revision{}, store.ErrStagingDone
	}
	writers := append([]*StageWriter(nil), st.writers...)
	st.mu.Unlock()
	for _, w := range writers {
		if err := w.Close(); err != nil {
			return store.Revision{}, fmt.Errorf("store: publish run %s: source %s: %w", st.run, w.source, err)
		}
	}

	st.mu.Lock()
	cs := changeSet{run: st.run, start: st.start, maxSeq: st.seq.Load(), byID: st.byID.Load(), checkpoints: true,
		tracked: sortedPairs(st.tracked), ignore: sortedPairs(st.ignore)}
	once := !cs.byID && len(cs.tracked) == 0 && cs.maxSeq < math.MaxInt32
	sources := map[string]bool{}
	for k := range st.sourceKeys {
		cs.sourceKeys = append(cs.sourceKeys, k)
		if plain, _ := store.SplitSourceKey(k); !sources[plain] {
			sources[plain] = true
			cs.sources = append(cs.sources, plain)
		}
	}
	st.mu.Unlock()
	cs.once = once && st.oncePerRecord()
	cs.saves = cs.once && !st.deletes.Load()
	if info.Run == "" {
		info.Run = st.run
	}
	l := st.l
	ctx, cancel := l.ctx()
	defer cancel()
	var rev store.Revision
	err := l.tx(ctx, func(tx pgx.Tx) (err error) {
		rev, err = l.publish(ctx, tx, cs, info, nil)
		return err
	})
	if err != nil {
		return store.Revision{}, fmt.Errorf("store: publish run %s: %w", st.run, err)
	}
	st.mu.Lock()
	st.done = true
	st.mu.Unlock()
	l.afterPublish()
	// Nothing reads the staged rows any more: they go after the publish
	// returns (a failure leaves them to the next attempt of a run of that
	// id).
	l.rec.bg.Add(1)
	go func() {
		defer l.rec.bg.Done()
		l.dropPublished(st.run, cs.maxSeq)
		if cs.maxSeq >= settleAfter {
			l.rec.settles.Add(1)
			select {
			case l.rec.settle <- struct{}{}:
			default: // one is already asked for
			}
		}
	}()
	return rev, nil
}

func sortedPairs(m map[[2]string]bool) [][2]string {
	out := make([][2]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i][0] != out[j][0] {
			return out[i][0] < out[j][0]
		}
		return out[i][1] < out[j][1]
	})
	return out
}

// directRun is a fresh run id for a change set published without staging:
// its rows live and die in the publish's transaction.
func directRun() string {
	var b [12]byte
	rand.Read(b[:])
	return "~direct-" + hex.EncodeToString(b[:])
}

// PublishChanges publishes changes outside a run (payload webhooks) as one
// revision. Every payload is checked first: a publish never fails half-way
// for bad input.
func (l *Layer) PublishChanges(info store.PublishInfo, batches []store.Batch) (store.Revision, error) {
	if err := l.recClosed(); err != nil {
		return store.Revision{}, err
	}
	for _, b := range batches {
		if err := store.CheckChanges(b.Source, b.Changes); err != nil {
			return store.Revision{}, fmt.Errorf("store: %w", err)
		}
	}
	ctx, cancel := l.ctx()
	defer cancel()
	cs := changeSet{run: directRun(), direct: true}
	var rev store.Revision
	err := l.tx(ctx, func(tx pgx.Tx) error {
		st := &Staging{l: l, run: cs.run}
		for _, b := range batches {
			w := &StageWriter{st: st, source: b.Source, q: tx}
			if err := w.Apply(b.Changes); err != nil {
				return err
			}
			if err := w.flush(); err != nil {
				return err
			}
		}
		cs.maxSeq, cs.byID = st.seq.Load(), st.byID.Load()
		var err error
		if rev, err = l.publish(ctx, tx, cs, info, nil); err != nil {
			return err
		}
		return dropStaged(ctx, tx, l.id, cs.run)
	})
	if err != nil {
		return store.Revision{}, fmt.Errorf("store: publish: %w", err)
	}
	l.afterPublish()
	return rev, nil
}

// errTooManyChanges: a cursor's sequence number within its revision has
// 31 bits here (the schema's integer).
var errTooManyChanges = errors.New("a revision may hold at most 2,147,483,647 changes: split the sync")

// publish applies cs and commits it as the next revision, in tx. pre, when
// set, runs first, once the layer's lock is held.
func (l *Layer) publish(ctx context.Context, tx pgx.Tx, cs changeSet, info store.PublishInfo, pre func() error) (store.Revision, error) {
	var discard, pinned int64
	if err := tx.QueryRow(ctx, `SELECT discard_rev, pinned FROM synclayer_layers WHERE id = $1 FOR NO KEY UPDATE`, l.id).Scan(&discard, &pinned); err != nil {
		return store.Revision{}, fmt.Errorf("lock the layer: %w", err)
	}
	if pre != nil {
		if err := pre(); err != nil {
			return store.Revision{}, err
		}
	}
	var prev int64
	var prevAt *time.Time
	err := tx.QueryRow(ctx, `SELECT rev, created_at FROM synclayer_revisions WHERE layer_id = $1 ORDER BY rev DESC LIMIT 1`, l.id).Scan(&prev, &prevAt)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return store.Revision{}, err
	}
	n := prev + 1
	start := cs.start
	if cs.direct {
		start = prev
	}
	// The statements below join a change set with the live versions of
	// its records record by record, through the indexes (lateral
	// subqueries the planner cannot flatten) or by ctid: never a scan of
	// the layer, whatever the planner's estimates of the staged rows and
	// the temporary table. Folding sorts and hashes the change set.
	if _, err := tx.Exec(ctx, `SET LOCAL work_mem = '64MB'`); err != nil {
		return store.Revision{}, err
	}
	byID, err := l.resolveByID(ctx, tx, cs)
	if err != nil {
		return store.Revision{}, fmt.Errorf("deletes by id: %w", err)
	}
	fresh := false
	if cs.saves && !cs.direct && len(cs.sourceKeys) > 0 {
		if err := tx.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM synclayer_records
			WHERE layer_id = $1 AND source_key = ANY($2::text[]) AND to_rev IS NULL)`, l.id, cs.sourceKeys).Scan(&fresh); err != nil {
			return store.Revision{}, fmt.Errorf("look for live records: %w", err)
		}
	}
	var counts map[string]map[string]store.Counts
	if fresh {
		counts, err = l.insertFresh(ctx, tx, cs, n)
	} else {
		counts, err = l.foldAndWrite(ctx, tx, cs, byID, start, n)
	}
	if err != nil {
		return store.Revision{}, err
	}
	if cs.checkpoints {
		if _, err := tx.Exec(ctx, `INSERT INTO synclayer_checkpoints (layer_id, source_key, sync, state)
			SELECT layer_id, source_key, sync, state FROM synclayer_staged_checkpoints WHERE layer_id = $1 AND run = $2
			ON CONFLICT (layer_id, source_key, sync) DO UPDATE SET state = EXCLUDED.state`, l.id, cs.run); err != nil {
			return store.Revision{}, fmt.Errorf("publish the checkpoints: %w", err)
		}
	}
	sources := append([]string{}, info.Sources...)
	sort.Strings(sources)
	rev := store.Revision{Number: n, Trigger: info.Trigger, Run: info.Run, Sources: sources, Counts: counts, TS: uint64(n)}
	b, err := json.Marshal(revInfo{Trigger: rev.Trigger, Run: rev.Run, Sources: rev.Sources, Counts: rev.Counts})
	if err != nil {
		return store.Revision{}, err
	}
	// Commit times grow strictly per layer, whatever the clock does.
	var at time.Time
	if err := tx.QueryRow(ctx, `INSERT INTO synclayer_revisions (layer_id, rev, created_at, info)
		VALUES ($1, $2, greatest(clock_timestamp(), $3::timestamptz + interval '1 microsecond'), $4)
		RETURNING created_at`, l.id, n, prevAt, b).Scan(&at); err != nil {
		return store.Revision{}, fmt.Errorf("write the revision: %w", err)
	}
	rev.CreatedAt = at.UTC()
	if err := l.sys.consumeInbox(ctx, tx, l, info.Consume); err != nil {
		return store.Revision{}, fmt.Errorf("consume the inbox: %w", err)
	}
	if info.Announce != nil {
		if err := l.sys.enqueue(ctx, tx, l, info.Announce(rev)); err != nil {
			return store.Revision{}, fmt.Errorf("announce the revision: %w", err)
		}
	}
	if err := l.setMeta(ctx, tx, info.Meta); err != nil {
		return store.Revision{}, err
	}
	if err := l.retainRevisions(ctx, tx, n, discard, pinned); err != nil {
		return store.Revision{}, fmt.Errorf("retention: %w", err)
	}
	if err := l.notify(ctx, tx, kindRevision, strconv.FormatInt(n, 10)); err != nil {
		return store.Revision{}, err
	}
	if testHookBeforeCommit != nil {
		if err := testHookBeforeCommit(); err != nil {
			return store.Revision{}, err
		}
	}
	return rev, nil
}

// foldAndWrite folds the change set into synclayer_chg against the live
// versions of its records, closes the versions it replaces, writes the new
// ones and counts them.
func (l *Layer) foldAndWrite(ctx context.Context, tx pgx.Tx, cs changeSet, byID byIDRows, start, n int64) (map[string]map[string]store.Counts, error) {
	var err error
	if _, err := tx.Exec(ctx, createChg); err != nil {
		return nil, err
	}
	var tsk, tm, isk, im []string
	for _, p := range cs.tracked {
		tsk, tm = append(tsk, p[0]), append(tm, p[1])
	}
	for _, p := range cs.ignore {
		isk, im = append(isk, p[0]), append(im, p[1])
	}
	var tag pgconn.CommandTag
	if cs.once {
		tag, err = tx.Exec(ctx, fillChgOnce, l.id, cs.run, start, isk, im, n)
	} else {
		tag, err = tx.Exec(ctx, fillChg, l.id, cs.run, start,
			byID.sk, byID.model, byID.id, byID.seq,
			tsk, tm, cs.maxSeq, isk, im, n)
	}
	if err != nil {
		return nil, fmt.Errorf("fold the changes: %w", err)
	}
	if tag.RowsAffected() > math.MaxInt32 {
		return nil, errTooManyChanges
	}
	// The live versions replaced, by ctid: nothing else changes them
	// while the layer's lock is held (the pruner deletes only versions
	// replaced long ago).
	if _, err := tx.Exec(ctx, `UPDATE synclayer_records SET to_rev = $2
		WHERE ctid = ANY(ARRAY(SELECT p_ctid FROM synclayer_chg WHERE kind = 3 AND p_ctid IS NOT NULL))
		AND layer_id = $1 AND to_rev IS NULL`, l.id, n); err != nil {
		return nil, fmt.Errorf("close the replaced versions: %w", err)
	}
	// In new_seq order (synclayer_chg's rows are, as the window
	// function sorted them), so that the heap follows the cursors.
	if _, err := tx.Exec(ctx, `INSERT INTO synclayer_records
		(layer_id, source_key, model, id, from_rev, to_rev, seq, action, first_seen_rev, payload, hash)
		SELECT $1, c.source_key, c.model, c.id, $3, NULL, c.new_seq, c.action, c.first_seen,
			coalesce(c.payload, p.payload), CASE WHEN c.payload IS NULL THEN p.hash ELSE c.maxh END
		FROM synclayer_chg c LEFT JOIN LATERAL (
			SELECT s.payload, s.hash FROM synclayer_staged s
			WHERE c.payload IS NULL AND c.save_seq IS NOT NULL AND s.layer_id = $1 AND s.run = $2 AND s.seq = c.save_seq
			UNION ALL
			SELECT o.payload, o.hash FROM synclayer_records o
			WHERE c.payload IS NULL AND c.save_seq IS NULL AND o.layer_id = $1 AND o.source_key = c.source_key
				AND o.model = c.model AND o.id = c.id AND o.from_rev = c.p_from
		) p ON true
		WHERE c.kind = 3`, l.id, cs.run, n); err != nil {
		return nil, fmt.Errorf("write the new versions: %w", err)
	}
	return l.countChg(ctx, tx, cs.sources)
}

// insertFresh publishes a change set of saves, each of a different record,
// none of which is live (a first run into its sources, the 1 M ingest of
// make bench): every row is a new record, added at revision n under its
// staged sequence number, which is its cursor, as fillChgOnce would make
// it. It skips the fold's temporary table, which held every payload once
// more. Rows go in the staged table's order, which is the writers' order
// of seq: the heap follows the cursors without a sort of the payloads.
func (l *Layer) insertFresh(ctx context.Context, tx pgx.Tx, cs changeSet, n int64) (map[string]map[string]store.Counts, error) {
	rows, err := tx.Query(ctx, `WITH ins AS (
		INSERT INTO synclayer_records
			(layer_id, source_key, model, id, from_rev, to_rev, seq, action, first_seen_rev, payload, hash)
		SELECT $1, source_key, model, id, $3, NULL, seq, 1, $3, payload, hash
		FROM synclayer_staged WHERE layer_id = $1 AND run = $2
		RETURNING source_key, model
	)
	SELECT split_part(source_key, $4, 1), model, count(*), 0::bigint, 0::bigint, 0::bigint FROM ins GROUP BY 1, 2`, l.id, cs.run, n, string(store.ConnSep))
	if err != nil {
		return nil, fmt.Errorf("write the new records: %w", err)
	}
	counts, err := scanCounts(rows, cs.sources)
	if err != nil {
		return nil, fmt.Errorf("write the new records: %w", err)
	}
	return counts, nil
}

// testHookBeforeCommit, when set (tests only), runs at the end of a
// publish's transaction, before it commits.
var testHookBeforeCommit func() error

// kindRevision is the notification of a published revision (payload: its
// number).
const kindRevision = "revision"

// createChg is the per-publish table of the records a change set touches.
const createChg = `CREATE TEMP TABLE synclayer_chg (
	source_key text, model text, id text,
	last_seq bigint, save_seq bigint, n bigint, nsaves bigint, minh bigint, maxh bigint, lead_hash bigint, lead_n bigint,
	p_from bigint, p_action smallint, p_hash bigint, p_first bigint, p_ctid tid,
	last_deleted boolean, ignored boolean, kind integer,
	action smallint, first_seen bigint, new_seq bigint, payload bytea
) ON COMMIT DROP`

// fillChg folds a change set into synclayer_chg. Parameters: $1 layer, $2
// run, $3 start (revisions above it modified a record after the change set
// began), $4-$7 deletes by id resolved (source key, model, id, seq), $8-$9
// tracked (source key, model; "" every model), $10 the greatest staged
// sequence number, $11-$12 ignore_if_modified_after (source key, model),
// $13 the new revision.
//
// kind: 0 gives way (ignore_if_modified_after), 1 unchanged, 2 nothing to
// do (a delete of what is not live), 3 a new version. lead_n counts the
// saves of lead_hash the record's changes begin with: as the embedded
// driver applies changes one by one, those are unchanged when the live
// version has that hash, whatever comes after them.
var fillChg = `INSERT INTO synclayer_chg
WITH c AS (
	SELECT source_key, model, id, seq, deleted, hash
	FROM synclayer_staged WHERE layer_id = $1 AND run = $2 AND model <> ''
	UNION ALL
	SELECT source_key, model, id, seq, true, 0
	FROM unnest($4::text[], $5::text[], $6::text[], $7::bigint[]) AS b(source_key, model, id, seq)
	UNION ALL
	SELECT u.source_key, u.model, u.id, $10 + row_number() OVER (ORDER BY u.source_key, u.model, u.id), true, 0
	FROM unnest($8::text[], $9::text[]) AS t(source_key, model)
	CROSS JOIN LATERAL (
		SELECT r.source_key, r.model, r.id FROM synclayer_records r
		WHERE r.layer_id = $1 AND r.source_key = t.source_key AND (t.model = '' OR r.model = t.model)
			AND r.to_rev IS NULL AND r.action <> 3
			AND NOT EXISTS (SELECT 1 FROM synclayer_seen s WHERE s.layer_id = $1 AND s.run = $2
				AND s.source_key = r.source_key AND s.model = r.model AND s.id = r.id OFFSET 0)
	) u
), c1 AS (
	SELECT c.*, first_value(deleted) OVER w AS first_deleted, first_value(hash) OVER w AS first_hash
	FROM c WINDOW w AS (PARTITION BY source_key, model, id ORDER BY seq)
), c2 AS (
	-- broken: a change other than a save of the first change's payload
	-- came at or before this one.
	SELECT c1.*, bool_or(deleted OR first_deleted OR hash <> first_hash)
		OVER (PARTITION BY source_key, model, id ORDER BY seq) AS broken
	FROM c1
), a AS (
	SELECT source_key, model, id, max(seq) AS last_seq,
		max(seq) FILTER (WHERE NOT deleted) AS save_seq,
		count(*) AS n, count(*) FILTER (WHERE NOT deleted) AS nsaves,
		min(hash) FILTER (WHERE NOT deleted) AS minh, max(hash) FILTER (WHERE NOT deleted) AS maxh,
		min(first_hash) FILTER (WHERE NOT first_deleted) AS lead_hash, count(*) FILTER (WHERE NOT broken) AS lead_n
	FROM c2 GROUP BY source_key, model, id
` + fmt.Sprintf(chgTail, "$11::text[]", "$12::text[]", "$13",
	"CASE WHEN kind = 3 THEN row_number() OVER (PARTITION BY kind = 3 ORDER BY last_seq, model) END", "NULL::bytea")

// fillChgOnce is fillChg for a change set that changes each record once
// (no delete by id, no track_deletes): no folding, a change's staged
// sequence number is its cursor's, and the payloads come along (the rows
// of synclayer_staged are read once). Parameters: $1 layer, $2 run, $3
// start, $4-$5 ignore_if_modified_after, $6 the new revision.
var fillChgOnce = `INSERT INTO synclayer_chg
WITH a AS (
	SELECT source_key, model, id, seq AS last_seq, CASE WHEN deleted THEN NULL ELSE seq END AS save_seq,
		1::bigint AS n, CASE WHEN deleted THEN 0 ELSE 1 END::bigint AS nsaves,
		CASE WHEN deleted THEN NULL ELSE hash END AS minh, CASE WHEN deleted THEN NULL ELSE hash END AS maxh,
		CASE WHEN deleted THEN NULL ELSE hash END AS lead_hash, CASE WHEN deleted THEN 0 ELSE 1 END::bigint AS lead_n,
		payload
	FROM synclayer_staged WHERE layer_id = $1 AND run = $2
` + fmt.Sprintf(chgTail, "$4::text[]", "$5::text[]", "$6", "CASE WHEN kind = 3 THEN last_seq END", "CASE WHEN kind = 3 THEN payload END")

// countChg counts synclayer_chg by source and model: what a change that
// gave way did is not counted, and its model is not named.
func (l *Layer) countChg(ctx context.Context, tx pgx.Tx, sources []string) (map[string]map[string]store.Counts, error) {
	rows, err := tx.Query(ctx, `SELECT split_part(source_key, $1, 1), model,
			count(*) FILTER (WHERE kind = 3 AND NOT last_deleted AND (p_action IS NULL OR p_action = 3)),
			count(*) FILTER (WHERE kind = 3 AND NOT last_deleted AND p_action IN (1, 2)),
			count(*) FILTER (WHERE kind = 3 AND last_deleted AND p_action IN (1, 2)),
			coalesce(sum(lead_n) FILTER (WHERE p_action IN (1, 2) AND lead_hash = p_hash), 0)::bigint
		FROM synclayer_chg WHERE kind <> 0 GROUP BY 1, 2`, string(store.ConnSep))
	if err != nil {
		return nil, fmt.Errorf("count the changes: %w", err)
	}
	return scanCounts(rows, sources)
}

// scanCounts reads a revision's counts from rows of (source, model,
// added, updated, deleted, unchanged); each of sources has an entry, with
// changes or without.
func scanCounts(rows pgx.Rows, sources []string) (map[string]map[string]store.Counts, error) {
	defer rows.Close()
	counts := map[string]map[string]store.Counts{}
	for _, s := range sources {
		counts[s] = map[string]store.Counts{}
	}
	for rows.Next() {
		var source, model string
		var c store.Counts
		if err := rows.Scan(&source, &model, &c.Added, &c.Updated, &c.Deleted, &c.Unchanged); err != nil {
			return nil, err
		}
		m := counts[source]
		if m == nil {
			m = map[string]store.Counts{}
			counts[source] = m
		}
		m[model] = c
	}
	return counts, rows.Err()
}

// byIDRows are deletes by id resolved to the models that hold the id.
type byIDRows struct {
	sk, model, id []string
	seq           []int64
}

// resolveByID resolves the change set's deletes by id alone: each deletes
// the record with that id in every model of its source key that holds it
// (published, or saved earlier in the change set).
func (l *Layer) resolveByID(ctx context.Context, tx pgx.Tx, cs changeSet) (byIDRows, error) {
	var out byIDRows
	if !cs.byID {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT source_key, id, seq FROM synclayer_staged
		WHERE layer_id = $1 AND run = $2 AND model = '' AND deleted`, l.id, cs.run)
	if err != nil {
		return out, err
	}
	var bsk, bid []string
	var bseq []int64
	keys := map[string]bool{}
	for rows.Next() {
		var sk, id string
		var seq int64
		if err := rows.Scan(&sk, &id, &seq); err != nil {
			rows.Close()
			return out, err
		}
		bsk, bid, bseq = append(bsk, sk), append(bid, id), append(bseq, seq)
		keys[sk] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, err
	}
	// The models of each source key: the published ones (one index probe
	// per model) and those staged.
	var msk, mm []string
	for sk := range keys {
		rows, err := tx.Query(ctx, `WITH RECURSIVE m(model) AS (
				SELECT min(model) FROM synclayer_records WHERE layer_id = $1 AND source_key = $2 AND to_rev IS NULL
				UNION ALL
				SELECT (SELECT min(model) FROM synclayer_records WHERE layer_id = $1 AND source_key = $2
					AND to_rev IS NULL AND model > m.model)
				FROM m WHERE m.model IS NOT NULL)
			SELECT model FROM m WHERE model IS NOT NULL
			UNION
			SELECT DISTINCT model FROM synclayer_staged WHERE layer_id = $1 AND run = $3 AND source_key = $2 AND model <> ''`,
			l.id, sk, cs.run)
		if err != nil {
			return out, err
		}
		ms, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return out, err
		}
		for _, m := range ms {
			msk, mm = append(msk, sk), append(mm, m)
		}
	}
	rows, err = tx.Query(ctx, `SELECT b.sk, m.model, b.id, b.seq
		FROM unnest($3::text[], $4::text[], $5::bigint[]) AS b(sk, id, seq)
		JOIN unnest($6::text[], $7::text[]) AS m(sk, model) ON m.sk = b.sk
		WHERE EXISTS (SELECT 1 FROM synclayer_records r WHERE r.layer_id = $1 AND r.source_key = b.sk
				AND r.model = m.model AND r.id = b.id AND r.to_rev IS NULL AND r.action <> 3)
			OR EXISTS (SELECT 1 FROM synclayer_staged s WHERE s.layer_id = $1 AND s.run = $2 AND s.source_key = b.sk
				AND s.model = m.model AND s.id = b.id AND s.seq < b.seq)
		ORDER BY b.seq, m.model`, l.id, cs.run, bsk, bid, bseq, msk, mm)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var sk, model, id string
		var seq int64
		if err := rows.Scan(&sk, &model, &id, &seq); err != nil {
			return out, err
		}
		out.sk, out.model, out.id, out.seq = append(out.sk, sk), append(out.model, model), append(out.id, id), append(out.seq, seq)
	}
	return out, rows.Err()
}

// chgTail is what fillChg and fillChgOnce do with a change set folded per
// record (the CTE a): join each record's live version, decide what the
// change set does to it (kind: 0 ignored by ignore_if_modified_after, 1
// unchanged, 2 a delete of what is deleted or absent, 3 a new version) and
// its action, first-seen revision, cursor sequence and payload. Its verbs
// are the ignore_if_modified_after source keys and models (text[]), the new
// revision, the cursor sequence of a new version and its payload.
const chgTail = `), j AS (
	SELECT a.*, r.from_rev AS p_from, r.action AS p_action, r.hash AS p_hash, r.first_seen_rev AS p_first, r.ctid AS p_ctid,
		(a.save_seq IS NULL OR a.save_seq < a.last_seq) AS last_deleted,
		CASE WHEN r.from_rev > $3 AND cardinality(%[1]s) > 0 THEN EXISTS (
			SELECT 1 FROM unnest(%[1]s, %[2]s) AS i(source_key, model)
			WHERE i.source_key = a.source_key AND (i.model = '' OR i.model = a.model)) ELSE false END AS ignored
	FROM a LEFT JOIN LATERAL (
		SELECT r.ctid, r.from_rev, r.action, r.hash, r.first_seen_rev FROM synclayer_records r
		WHERE r.layer_id = $1 AND r.source_key = a.source_key AND r.model = a.model AND r.id = a.id AND r.to_rev IS NULL
		OFFSET 0) r ON true
), k AS (
	SELECT j.*, CASE
		WHEN ignored THEN 0
		WHEN NOT last_deleted AND p_action IN (1, 2) AND nsaves = n AND minh = maxh AND minh = p_hash THEN 1
		WHEN last_deleted AND nsaves = 0 AND (p_action IS NULL OR p_action = 3) THEN 2
		ELSE 3 END AS kind
	FROM j
)
SELECT source_key, model, id, last_seq, save_seq, n, nsaves, minh, maxh, lead_hash, lead_n,
	p_from, p_action, p_hash, p_first, p_ctid, last_deleted, ignored, kind,
	CASE WHEN last_deleted THEN 3 WHEN p_action IS NULL THEN 1
		WHEN p_action = 3 AND NOT (nsaves = n AND minh <> maxh) THEN 1 ELSE 2 END::smallint,
	coalesce(p_first, %[3]s),
	%[4]s,
	%[5]s
FROM k`
