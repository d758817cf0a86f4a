package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/synclayer/synclayer/core/store"
	"github.com/synclayer/synclayer/core/store/internal/jsonvalid"
)

// Staging is a run's change set in progress. Its writers append the
// changes, in order, to synclayer_staged (an unlogged table no reader
// looks at), with the run's seen markers (synclayer_seen) and checkpoints
// (synclayer_staged_checkpoints) beside them; Publish turns them into one
// revision in one transaction (publish.go), at a cost in proportion to the
// run's changes. Any number of runs of a layer stage at once, on any host;
// their publishes take turns on the layer's lock.
//
// A staging lives in the process that runs its run: the changes it staged
// survive a failed attempt (NextAttempt), and the retry resumes from the
// run's own checkpoint; a run whose host died runs again from its
// published checkpoints (BeginStaging drops what the dead attempt left).
type Staging struct {
	l   *Layer
	run string
	// start is the newest revision when the staging began: a change to a
	// record that a later revision modified gives way under
	// ignore_if_modified_after.
	start int64
	// seq numbers the staged changes of every writer, in order.
	seq atomic.Int64
	// byID is set once a writer staged a delete by id alone.
	byID atomic.Bool
	// deletes is set once a writer staged any delete.
	deletes atomic.Bool

	mu      sync.Mutex
	writers []*StageWriter
	done    bool
	// sourceKeys are the writers' source keys; their sources (without
	// connection) each have an entry in the revision's counts, as on the
	// embedded driver.
	sourceKeys map[string]bool
	// tracked are the (source key, model) pairs whose records the run did
	// not save are deleted when it publishes (track_deletes).
	tracked map[[2]string]bool
	// ignore are the (source key, model) pairs whose sync merges with
	// ignore_if_modified_after (model "": every model of the source key).
	ignore map[[2]string]bool
	// keys are the hashes of the records the closed writers staged
	// changes of (until there are too many to keep): a run that changed
	// each record once publishes without folding.
	keys     []uint64
	manyKeys bool
}

// maxKeyHashes bounds the record hashes a staging keeps (8 bytes each).
const maxKeyHashes = 4 << 20

// addKeys adds a closed writer's record hashes (many: it has more than
// it kept).
func (st *Staging) addKeys(keys []uint64, many bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if many || st.manyKeys || len(st.keys)+len(keys) > maxKeyHashes {
		st.manyKeys, st.keys = true, nil
		return
	}
	st.keys = append(st.keys, keys...)
}

// oncePerRecord tells whether every record the staging changed was changed
// once (a hash collision only makes it answer no).
func (st *Staging) oncePerRecord() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.manyKeys {
		return false
	}
	slices.Sort(st.keys)
	for i := 1; i < len(st.keys); i++ {
		if st.keys[i] == st.keys[i-1] {
			return false
		}
	}
	return true
}

// BeginStaging starts staging the changes of run.
func (l *Layer) BeginStaging(run string) (store.Staging, error) {
	st, err := l.beginStaging(run)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (l *Layer) beginStaging(run string) (*Staging, error) {
	if run == "" {
		return nil, errors.New("store: a staging needs its run's id")
	}
	if err := l.recClosed(); err != nil {
		return nil, err
	}
	ctx, cancel := l.ctx()
	defer cancel()
	st := &Staging{l: l, run: run, sourceKeys: map[string]bool{}, tracked: map[[2]string]bool{}, ignore: map[[2]string]bool{}}
	err := l.tx(ctx, func(tx pgx.Tx) error {
		// What an attempt of this run on a host that died left.
		if err := dropStaged(ctx, tx, l.id, run); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT coalesce(max(rev), 0) FROM synclayer_revisions WHERE layer_id = $1`, l.id).Scan(&st.start)
	})
	if err != nil {
		return nil, fmt.Errorf("store: begin staging run %s: %w", run, err)
	}
	return st, nil
}

// dropStaged deletes everything a run staged.
func dropStaged(ctx context.Context, q stageExecer, layer int64, run string) error {
	for _, t := range []string{"synclayer_staged", "synclayer_seen", "synclayer_staged_checkpoints"} {
		if _, err := q.Exec(ctx, `DELETE FROM `+t+` WHERE layer_id = $1 AND run = $2`, layer, run); err != nil {
			return err
		}
	}
	return nil
}

// dropPublished drops what a published run staged. When its changes are
// all synclayer_staged holds (a large sync alone), the table is truncated:
// deleting row by row would cost as much as writing them did.
func (l *Layer) dropPublished(run string, maxSeq int64) {
	ctx, cancel := l.ctx()
	defer cancel()
	errBusy := errors.New("busy")
	err := l.tx(ctx, func(tx pgx.Tx) error {
		if maxSeq >= 10000 {
			// Under the table's lock no one stages meanwhile; without it
			// at once, a plain delete.
			if _, err := tx.Exec(ctx, `LOCK TABLE synclayer_staged IN ACCESS EXCLUSIVE MODE NOWAIT`); err != nil {
				return errBusy
			}
			// Alone when the first and the last staged rows in the primary
			// key's order are both this run's: two probes of the index's
			// ends. (A row comparison in EXISTS let the planner, without
			// statistics on the table, scan every staged row: 1.0-1.2 s
			// after a 1 M ingest, under the table's lock, which a run
			// staging meanwhile waited for.)
			alone := true
			for _, q := range []string{
				`SELECT layer_id, run FROM synclayer_staged ORDER BY layer_id, run, seq LIMIT 1`,
				`SELECT layer_id, run FROM synclayer_staged ORDER BY layer_id DESC, run DESC, seq DESC LIMIT 1`,
			} {
				var layer int64
				var r string
				err := tx.QueryRow(ctx, q).Scan(&layer, &r)
				if errors.Is(err, pgx.ErrNoRows) {
					break
				}
				if err != nil {
					return err
				}
				alone = alone && layer == l.id && r == run
			}
			if alone {
				if _, err := tx.Exec(ctx, `TRUNCATE synclayer_staged`); err != nil {
					return err
				}
			}
		}
		return dropStaged(ctx, tx, l.id, run)
	})
	if errors.Is(err, errBusy) {
		err = l.tx(ctx, func(tx pgx.Tx) error { return dropStaged(ctx, tx, l.id, run) })
	}
	if err != nil {
		l.log.Warn("could not drop the staged changes of a published run", "run", run, "error", err)
	}
}

// stageExecer is a transaction, a connection or the pool.
type stageExecer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Run is the id of the staging's run.
func (st *Staging) Run() string { return st.run }

// NextAttempt prepares the staging for a retry of its run: the writers of
// the failed attempt must be closed; the changes they staged stay.
func (st *Staging) NextAttempt() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		return store.ErrStagingDone
	}
	for _, w := range st.writers {
		if !w.closed {
			return errors.New("store: next attempt with a writer still open")
		}
	}
	st.writers = nil
	return nil
}

// Checkpoint returns the checkpoint a sync should resume from: the last
// one this run staged (own is then true: a retry continues its failed
// attempt), else (unless fromScratch) the sync's published checkpoint.
func (st *Staging) Checkpoint(source, sync string, fromScratch bool) (cp []byte, own bool, err error) {
	l := st.l
	ctx, cancel := l.ctx()
	defer cancel()
	err = l.s.pool.QueryRow(ctx, `SELECT state FROM synclayer_staged_checkpoints
		WHERE layer_id = $1 AND run = $2 AND source_key = $3 AND sync = $4`, l.id, st.run, source, sync).Scan(&cp)
	if err == nil {
		return cp, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, fmt.Errorf("store: checkpoint of %s/%s: %w", source, sync, err)
	}
	if fromScratch {
		return nil, false, nil
	}
	cp, err = l.Checkpoint(source, sync)
	return cp, false, err
}

// Writer returns a writer for one source key's changes. Writers may be
// used concurrently; one writer is not safe for concurrent use.
func (st *Staging) Writer(source string, opts store.WriterOptions) store.StageWriter {
	return st.writer(source, opts)
}

func (st *Staging) writer(source string, opts store.WriterOptions) *StageWriter {
	w := &StageWriter{st: st, source: source, track: map[string]bool{}, q: st.l.s.pool}
	for _, m := range opts.TrackDeletes {
		w.track[m] = true
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		w.err = store.ErrStagingDone
	}
	st.writers = append(st.writers, w)
	st.sourceKeys[source] = true
	opts.AddPairs(source, st.tracked, st.ignore)
	return w
}

// Limits of a chunk: what a writer holds before it writes it out. A
// writer fills one chunk while the one before is copied, so staging
// overlaps the connector's work with the server's; it holds at most two.
const (
	flushRows  = 10000
	flushBytes = 8 << 20
)

// stagedRow is one change a writer holds: its payload is buf[off:off+n].
type stagedRow struct {
	seq     int64
	model   string
	id      string
	deleted bool
	off, n  int
	hash    int64
}

// stageChunk is a run of changes written out in one COPY, with the seen
// markers of its saves of tracked models.
type stageChunk struct {
	rows                []stagedRow
	buf                 []byte
	seenModels, seenIDs []string
}

func (c *stageChunk) reset() {
	c.rows, c.buf, c.seenModels, c.seenIDs = c.rows[:0], c.buf[:0], c.seenModels[:0], c.seenIDs[:0]
}

// StageWriter stages one source key's changes.
type StageWriter struct {
	st     *Staging
	source string
	track  map[string]bool
	// q writes the changes out: the pool, or the transaction of a direct
	// publish (never used by two goroutines at once: the writer waits for
	// its chunk in flight before anything else uses q).
	q interface {
		stageExecer
		CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error)
	}

	// cur is the chunk being filled; spare the one copied before.
	cur, spare *stageChunk
	// inflight, when set, gets the result of the chunk being copied.
	inflight chan error
	// keys are the hashes of the records changed (see Staging.keys);
	// scratch builds what they hash.
	keys    []uint64
	scratch []byte

	err    error
	closed bool
}

// Apply stages a batch of changes, in order. A payload must be a JSON
// object; it is stored without its insignificant white space.
func (w *StageWriter) Apply(changes []store.Change) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("store: writer closed")
	}
	if w.cur == nil {
		w.cur = &stageChunk{}
	}
	for i := range changes {
		c := &changes[i]
		k := w.cur
		r := stagedRow{seq: w.st.seq.Add(1), model: c.Model, id: c.ID, deleted: c.Delete, off: len(k.buf)}
		if len(w.keys) < maxKeyHashes {
			w.scratch = append(append(append(append(append(w.scratch[:0], w.source...), 0), c.Model...), 0), c.ID...)
			w.keys = append(w.keys, xxhash.Sum64(w.scratch))
		}
		if c.Delete {
			w.st.deletes.Store(true)
			if c.Model == "" {
				w.st.byID.Store(true)
			}
		} else {
			ws, err := jsonvalid.Record(c.Data)
			if err != nil {
				w.err = fmt.Errorf("store: %s %s/%s: %w", w.source, c.Model, c.ID, err)
				return w.err
			}
			// The hash is of the connector's bytes (a resend of them is
			// unchanged), the payload compact.
			r.hash = int64(xxhash.Sum64(c.Data))
			if ws {
				k.buf = jsonvalid.Compact(k.buf, c.Data)
			} else {
				k.buf = append(k.buf, c.Data...)
			}
			r.n = len(k.buf) - r.off
			if w.track[c.Model] {
				k.seenModels = append(k.seenModels, c.Model)
				k.seenIDs = append(k.seenIDs, c.ID)
			}
		}
		k.rows = append(k.rows, r)
		if len(k.rows) >= flushRows || len(k.buf) >= flushBytes {
			if err := w.ship(); err != nil {
				w.err = err
				return err
			}
		}
	}
	return nil
}

// stagedCols are the columns a writer copies into synclayer_staged.
var stagedCols = []string{"layer_id", "run", "seq", "source_key", "model", "id", "deleted", "payload", "hash"}

// copyRows is a chunk as a source for CopyFrom.
type copyRows struct {
	w    *StageWriter
	k    *stageChunk
	i    int
	vals []any
}

func (c *copyRows) Next() bool { c.i++; return c.i <= len(c.k.rows) }

func (c *copyRows) Values() ([]any, error) {
	w, k := c.w, c.k
	r := &k.rows[c.i-1]
	var payload []byte
	if !r.deleted {
		payload = k.buf[r.off : r.off+r.n]
	}
	c.vals = append(c.vals[:0], w.st.l.id, w.st.run, r.seq, w.source, r.model, r.id, r.deleted, payload, r.hash)
	return c.vals, nil
}

func (c *copyRows) Err() error { return nil }

// copyChunk writes a chunk out.
func (w *StageWriter) copyChunk(k *stageChunk) error {
	l := w.st.l
	ctx, cancel := l.ctx()
	defer cancel()
	if len(k.rows) > 0 {
		if _, err := w.q.CopyFrom(ctx, pgx.Identifier{"synclayer_staged"}, stagedCols, &copyRows{w: w, k: k}); err != nil {
			return fmt.Errorf("store: stage changes of %s: %w", w.source, err)
		}
	}
	if len(k.seenIDs) > 0 {
		if _, err := w.q.Exec(ctx, `INSERT INTO synclayer_seen (layer_id, run, source_key, model, id)
			SELECT $1, $2, $3, m, i FROM unnest($4::text[], $5::text[]) AS u(m, i)
			ON CONFLICT DO NOTHING`, l.id, w.st.run, w.source, k.seenModels, k.seenIDs); err != nil {
			return fmt.Errorf("store: stage seen markers of %s: %w", w.source, err)
		}
	}
	return nil
}

// ship sends the current chunk to be copied, once the one before is, and
// starts filling the spare.
func (w *StageWriter) ship() error {
	if err := w.wait(); err != nil {
		return err
	}
	k := w.cur
	if k == nil || len(k.rows) == 0 && len(k.seenIDs) == 0 {
		return nil
	}
	if w.spare == nil {
		w.spare = &stageChunk{}
	}
	w.cur, w.spare = w.spare, k
	w.cur.reset()
	done := make(chan error, 1)
	w.inflight = done
	go func() { done <- w.copyChunk(k) }()
	return nil
}

// wait waits for the chunk in flight, if any.
func (w *StageWriter) wait() error {
	if w.inflight == nil {
		return nil
	}
	err := <-w.inflight
	w.inflight = nil
	return err
}

// flush writes out everything applied so far.
func (w *StageWriter) flush() error {
	if err := w.ship(); err != nil {
		return err
	}
	return w.wait()
}

// Checkpoint writes out the changes applied so far and stages the
// checkpoint of one of the source key's syncs: it is published with the
// run, and a retry of the run resumes from it.
func (w *StageWriter) Checkpoint(sync string, state []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("store: writer closed")
	}
	if err := w.flush(); err != nil {
		w.err = err
		return err
	}
	if !json.Valid(state) {
		return fmt.Errorf("store: checkpoint of %s/%s is not valid JSON", w.source, sync)
	}
	l := w.st.l
	ctx, cancel := l.ctx()
	defer cancel()
	_, err := l.s.pool.Exec(ctx, `INSERT INTO synclayer_staged_checkpoints (layer_id, run, source_key, sync, state)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (layer_id, run, source_key, sync) DO UPDATE SET state = EXCLUDED.state`,
		l.id, w.st.run, w.source, sync, state)
	if err != nil {
		return fmt.Errorf("store: stage checkpoint of %s/%s: %w", w.source, sync, err)
	}
	return nil
}

// Close writes out what the writer holds. It returns the writer's first
// error, if any.
func (w *StageWriter) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		w.wait()
	} else if err := w.flush(); err != nil {
		w.err = err
	}
	// Whatever it staged, failed or not, counts for the publish's check
	// that each record changed once.
	w.st.addKeys(w.keys, len(w.keys) >= maxKeyHashes)
	w.keys = nil
	return w.err
}

// Abort drops the staging: its changes, seen markers and checkpoints.
func (st *Staging) Abort() error {
	st.mu.Lock()
	if st.done {
		st.mu.Unlock()
		return store.ErrStagingDone
	}
	st.done = true
	writers := append([]*StageWriter(nil), st.writers...)
	st.mu.Unlock()
	for _, w := range writers {
		// What they hold is dropped with the rest (once the chunk in
		// flight, if any, is written: it would come after the drop).
		w.wait()
		w.closed, w.cur, w.spare = true, nil, nil
	}
	l := st.l
	ctx, cancel := l.ctx()
	defer cancel()
	if err := l.tx(ctx, func(tx pgx.Tx) error { return dropStaged(ctx, tx, l.id, st.run) }); err != nil {
		return fmt.Errorf("store: roll back run %s: %w", st.run, err)
	}
	return nil
}
