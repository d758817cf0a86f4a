package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// runWorker is River's worker for runs.
type runWorker struct {
	river.WorkerDefaults[runArgs]
	c *Cluster
}

// Timeout is the run's nominal timeout: RescueAfter. River cancels the
// job's context then, which the worker ignores (a run lasts as long as it
// needs; see Cluster.work); River's rescuer needs a positive timeout to
// rescue a job at all, and one no longer than RescueAfter to rescue it
// RescueAfter after its last heartbeat.
func (w *runWorker) Timeout(*river.Job[runArgs]) time.Duration { return w.c.opts.RescueAfter }

// NextRetry: a run goes back to the queue only when its attempt was
// interrupted (its host died or stopped): it goes again at once.
func (w *runWorker) NextRetry(*river.Job[runArgs]) time.Time { return time.Now().Add(time.Second) }

// Work runs a run.
func (w *runWorker) Work(ctx context.Context, job *river.Job[runArgs]) error {
	return w.c.work(ctx, job)
}

// lockKey is the advisory lock key of a sync: one active run per sync
// across the hosts. (A collision of two syncs' 64-bit hashes only makes
// them take turns.)
func lockKey(layer string, s SyncKey) int64 {
	d := xxhash.New()
	for _, part := range []string{"synclayer/run", layer, s.Source, s.Connection, s.Sync} {
		d.WriteString(part)
		d.Write([]byte{0})
	}
	return int64(d.Sum64())
}

func lockKeys(a runArgs) []int64 {
	keys := make([]int64, 0, len(a.Syncs))
	for _, s := range a.Syncs {
		keys = append(keys, lockKey(a.Layer, s))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// work runs one attempt of a run:
//
//  1. On a connection of its own, it takes the advisory lock of each of
//     its syncs (pg_try_advisory_lock): when another host runs one of them,
//     the job snoozes LockRetry and tries again (it stays a waiting run).
//  2. It leaves the waiting set (its unique key cleared), so that a later
//     trigger queues a new run rather than coalescing into this one, whose
//     work starts now.
//  3. It runs the RunFunc, heartbeating on the lock connection every
//     RescueAfter/6 (river_job.attempted_at, which River's rescuer reads).
//  4. It releases the locks. A dead host's locks go with its connections.
func (c *Cluster) work(rctx context.Context, job *river.Job[runArgs]) error {
	a := job.Args
	if c.base.Err() != nil {
		return fmt.Errorf("run %s: %w", a.Run, context.Canceled) // closing: back to the queue
	}
	if cancelRequested(job.Metadata) {
		return river.JobCancel(fmt.Errorf("run %s: %w", a.Run, ErrCancelled))
	}
	acq, err := c.pool.Acquire(rctx)
	if err != nil {
		return fmt.Errorf("run %s: no database connection for its sync locks: %w", a.Run, err)
	}
	conn := acq.Conn()
	release := func() { c.release(acq, nil) }
	got, err := tryLocks(rctx, conn, lockKeys(a))
	if err != nil {
		release()
		return fmt.Errorf("run %s: taking its sync locks: %w", a.Run, err)
	}
	if !got {
		release()
		return river.JobSnooze(c.snooze(job.Metadata))
	}
	var starts int
	var cancelled bool
	err = conn.QueryRow(rctx, `UPDATE river_job
		SET unique_key = NULL,
		    metadata = metadata || jsonb_build_object('synclayer_starts', coalesce((metadata->>'synclayer_starts')::int, 0) + 1)
		WHERE id = $1 AND state = 'running'
		RETURNING (metadata->>'synclayer_starts')::int, (metadata -> 'cancel_attempted_at') IS NOT NULL`, job.ID).Scan(&starts, &cancelled)
	if err != nil {
		release()
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("run %s: %w", a.Run, ErrLost)
		}
		return fmt.Errorf("run %s: starting: %w", a.Run, err)
	}
	if cancelled {
		release()
		return river.JobCancel(fmt.Errorf("run %s: %w", a.Run, ErrCancelled))
	}

	runCtx, cancel := context.WithCancelCause(c.base)
	defer cancel(nil)
	done := make(chan struct{})
	// River cancels its context on its own stop (Close) or a remote
	// cancel, and at the nominal timeout, which the run ignores.
	go func() {
		select {
		case <-rctx.Done():
			switch cause := context.Cause(rctx); {
			case errors.Is(cause, context.DeadlineExceeded):
			case errors.Is(cause, rivertype.ErrJobCancelledRemotely):
				cancel(ErrCancelled)
			default:
				cancel(fmt.Errorf("%w (%w)", ErrClosed, cause))
			}
		case <-done:
		}
	}()
	hb := make(chan struct{})
	go func() {
		defer close(hb)
		c.heartbeat(conn, job, cancel, done)
	}()

	run := Run{RunJob: a.job(), JobID: job.ID, Attempt: job.Attempt, Resumed: starts > 1, QueuedAt: job.CreatedAt}
	err = c.runSafely(runCtx, run)
	close(done)
	<-hb
	cause := context.Cause(runCtx)
	c.release(acq, &a)

	switch {
	case err == nil:
		return nil
	case errors.Is(cause, ErrLost):
		// River completes a job only while it is running here: this
		// answer changes nothing when the job went to another host.
		return fmt.Errorf("run %s: %w", a.Run, ErrLost)
	case errors.Is(cause, ErrClosed):
		// Back to the queue (River gives the attempt back when it was
		// stopping).
		return fmt.Errorf("run %s interrupted: %w: %w", a.Run, context.Canceled, err)
	case errors.Is(cause, ErrCancelled):
		return river.JobCancel(fmt.Errorf("run %s: %w", a.Run, ErrCancelled))
	default:
		c.log.Error("run failed", "layer", a.Layer, "run", a.Run, "error", err)
		return river.JobCancel(fmt.Errorf("run %s: %w", a.Run, err))
	}
}

// release gives a run's lock connection back to the pool, its locks
// released; then, for a run that ran (ran != nil), it wakes the runs that
// waited for its syncs.
func (c *Cluster) release(acq *pgxpool.Conn, ran *runArgs) {
	defer acq.Release()
	conn := acq.Conn()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
		// Never hand a connection that may hold locks back to the pool:
		// closed, the pool drops it (and the server frees its locks).
		conn.Close(ctx)
		return
	}
	if ran != nil {
		c.wake(ctx, conn, *ran)
	}
}

// snooze is how long a run whose syncs another run holds waits before it
// tries again: LockRetry, doubling with each try, at most
// max(LockRetry, 5 s); the run holding the syncs wakes it when it ends
// (wake), so the waits only bound the cost of the waiting runs' tries.
// (Up to River's scheduler interval, 5 s, a snoozed job stays
// "available", due later, and a wake makes it due at once.)
func (c *Cluster) snooze(metadata []byte) time.Duration {
	var m struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(metadata, &m)
	ceiling := max(c.opts.LockRetry, 5*time.Second)
	d := c.opts.LockRetry << min(max(m.Snoozes, 0), 16)
	if d <= 0 || d > ceiling {
		d = ceiling
	}
	return d
}

// wake makes due at once the waiting runs that share a sync with a run
// that ends (they snoozed behind it), so the next one starts without
// waiting out its snooze. It only moves scheduled_at sooner, as River's
// own scheduler would find it; a failure only costs the waiting runs their
// snooze.
func (c *Cluster) wake(ctx context.Context, conn *pgx.Conn, a runArgs) {
	var terms []string
	params := []any{Kind}
	for _, s := range a.Syncs {
		f, err := json.Marshal(map[string]any{"layer": a.Layer, "syncs": []SyncKey{s}})
		if err != nil {
			return
		}
		params = append(params, string(f))
		terms = append(terms, fmt.Sprintf("args @> $%d::jsonb", len(params)))
	}
	_, err := conn.Exec(ctx, `UPDATE river_job SET scheduled_at = now()
		WHERE kind = $1 AND state IN ('available', 'scheduled') AND scheduled_at > now()
		  AND (`+strings.Join(terms, " OR ")+`)`, params...)
	if err != nil {
		c.log.Debug("could not wake the runs waiting behind a run", "run", a.Run, "error", err)
	}
}

// cancelRequested tells whether River's job metadata holds a cancel
// request (River's JobCancel of a running job sets cancel_attempted_at; a
// job that snoozed since keeps it).
func cancelRequested(metadata []byte) bool {
	var m struct {
		CancelAttemptedAt *json.RawMessage `json:"cancel_attempted_at"`
	}
	return json.Unmarshal(metadata, &m) == nil && m.CancelAttemptedAt != nil
}

// runSafely calls the RunFunc; a panic fails the run rather than the host.
func (c *Cluster) runSafely(ctx context.Context, run Run) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the run panicked: %v", p)
		}
	}()
	return c.opts.Runner(ctx, run)
}

// tryLocks takes the advisory locks keys on conn, all or none: it reports
// false (holding none) when another session holds any.
func tryLocks(ctx context.Context, conn *pgx.Conn, keys []int64) (bool, error) {
	var all bool
	err := conn.QueryRow(ctx, `SELECT bool_and(pg_try_advisory_lock(k)) FROM unnest($1::bigint[]) AS k`, keys).Scan(&all)
	if err != nil {
		return false, err
	}
	if !all {
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
			return false, err
		}
	}
	return all, nil
}

// heartbeat touches the job's attempted_at every RescueAfter/6 until done,
// on the connection that holds the run's locks. It cancels the run with
// ErrLost when the connection broke (the locks are gone) or the job is no
// longer this attempt's (River rescued it), and with ErrCancelled when the
// job was cancelled (CancelRun).
func (c *Cluster) heartbeat(conn *pgx.Conn, job *river.Job[runArgs], cancel context.CancelCauseFunc, done <-chan struct{}) {
	every := c.opts.RescueAfter / 6
	t := time.NewTicker(every)
	defer t.Stop()
	host := c.client.ID()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		ctx, stop := context.WithTimeout(context.Background(), c.opts.RescueAfter/2)
		var cancelled bool
		err := conn.QueryRow(ctx, `UPDATE river_job SET attempted_at = now()
			WHERE id = $1 AND state = 'running' AND attempt = $2
			  AND attempted_by[cardinality(attempted_by)] = $3
			RETURNING (metadata -> 'cancel_attempted_at') IS NOT NULL`, job.ID, job.Attempt, host).Scan(&cancelled)
		stop()
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			c.log.Warn("run lost: River gave it to another host (its heartbeat was late); stopping it here", "run", job.Args.Run, "job", job.ID)
			cancel(ErrLost)
			return
		case err != nil && conn.IsClosed():
			c.log.Warn("run lost: the connection holding its sync locks broke; stopping it here", "run", job.Args.Run, "error", err)
			cancel(ErrLost)
			return
		case err != nil:
			c.log.Warn("run heartbeat failed; trying again", "run", job.Args.Run, "error", err)
		case cancelled:
			cancel(ErrCancelled)
			return
		}
	}
}
