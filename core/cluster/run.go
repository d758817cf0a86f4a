package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Kind is the River job kind of a run.
const Kind = "synclayer_run"

// maxAttempts bounds how often a run is started again after it was
// interrupted (its host died or stopped): a run's own failures end its job
// at once (RunFunc), so attempts count interruptions only.
const maxAttempts = 100

// uniqueStates are the River states in which a run takes in later
// triggers of the same syncs (coalescing): those of a waiting job, and
// "running", which River requires in every unique set (insert_opts.go,
// requiredV3states). A run leaves the set when it starts its work instead:
// its unique key is cleared then (see Cluster.work).
var uniqueStates = []rivertype.JobState{
	rivertype.JobStateAvailable,
	rivertype.JobStatePending,
	rivertype.JobStateRetryable,
	rivertype.JobStateRunning,
	rivertype.JobStateScheduled,
}

// Errors a run's context is cancelled with (context.Cause), beside ErrClosed.
var (
	// ErrLost: this host no longer holds the run: its connection holding
	// the sync locks broke, or River gave the run to another host (its
	// heartbeat was missing for RescueAfter). Stop at once, publish
	// nothing: the run goes again, here or on another host.
	ErrLost = errors.New("cluster: this host lost the run (its sync locks or its job); it will run again")
	// ErrCancelled: CancelRun or CancelConnection cancelled the run.
	ErrCancelled = errors.New("cluster: the run was cancelled")
)

// SyncKey names one sync of a layer: of one connection of a source with
// connections, or of a source without (Connection "").
type SyncKey struct {
	Source     string `json:"source"`
	Connection string `json:"connection"`
	Sync       string `json:"sync"`
}

func (k SyncKey) compare(o SyncKey) int {
	return cmp.Or(strings.Compare(k.Source, o.Source), strings.Compare(k.Connection, o.Connection), strings.Compare(k.Sync, o.Sync))
}

// RunJob is a run to enqueue: which syncs of which layer, and how.
type RunJob struct {
	// Layer is the layer's name.
	Layer string
	// Run is the run's id (the engine's), returned by EnqueueRun unless the
	// run coalesced into a waiting one.
	Run string
	// Syncs are the syncs the run covers (order and duplicates do not
	// matter).
	Syncs []SyncKey
	// Reset drops the syncs' checkpoints: the run starts from scratch.
	Reset bool
	// Full reads the syncs in full (and so tracks deletes).
	Full bool
	// Trigger is why the run goes (the engine's Trigger* names); default
	// "manual".
	Trigger string
}

// Run is a run handed to the RunFunc on the host that runs it.
type Run struct {
	RunJob
	// JobID is the run's River job id.
	JobID int64
	// Attempt counts the run's attempts, 1 for the first; an attempt
	// interrupted by its host's death counts, one interrupted by Close
	// does not.
	Attempt int
	// Resumed is true when an earlier attempt of this run started its work
	// (took its sync locks) and never finished: its host died, stopped or
	// lost the run. What that attempt left (a staging, a run record
	// "running") is abandoned: the engine should drop it and start over
	// from the last published checkpoints.
	Resumed bool
	// QueuedAt is when the run was enqueued.
	QueuedAt time.Time
}

// runArgs are a run's River job args. The river:"unique" fields make the
// coalescing key: a run of the same syncs of the same layer, with the same
// reset and full flags, coalesces into a waiting one. The run id and the
// trigger do not count.
type runArgs struct {
	Layer   string    `json:"layer" river:"unique"`
	Syncs   []SyncKey `json:"syncs" river:"unique"`
	Reset   bool      `json:"reset" river:"unique"`
	Full    bool      `json:"full" river:"unique"`
	Run     string    `json:"run"`
	Trigger string    `json:"trigger"`
}

// Kind is River's job kind.
func (runArgs) Kind() string { return Kind }

// InsertOpts puts runs on the "runs" queue, unique among the waiting ones.
func (runArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       Queue,
		MaxAttempts: maxAttempts,
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByState: uniqueStates},
	}
}

func (a runArgs) job() RunJob {
	return RunJob{Layer: a.Layer, Run: a.Run, Syncs: a.Syncs, Reset: a.Reset, Full: a.Full, Trigger: a.Trigger}
}

// argsOf checks a RunJob and makes its args: the syncs sorted and without
// duplicates, so that the same set makes the same coalescing key.
func argsOf(j RunJob) (runArgs, error) {
	if j.Layer == "" {
		return runArgs{}, errors.New("cluster: a run needs its layer")
	}
	if j.Run == "" {
		return runArgs{}, errors.New("cluster: a run needs its id (RunJob.Run)")
	}
	if len(j.Syncs) == 0 {
		return runArgs{}, fmt.Errorf("cluster: run %s names no sync", j.Run)
	}
	syncs := slices.Clone(j.Syncs)
	for _, s := range syncs {
		if s.Source == "" || s.Sync == "" {
			return runArgs{}, fmt.Errorf("cluster: run %s: a sync needs its source and its name (got source %q, sync %q)", j.Run, s.Source, s.Sync)
		}
	}
	slices.SortFunc(syncs, SyncKey.compare)
	syncs = slices.Compact(syncs)
	return runArgs{Layer: j.Layer, Syncs: syncs, Reset: j.Reset, Full: j.Full, Run: j.Run, Trigger: cmp.Or(j.Trigger, "manual")}, nil
}

// EnqueueRun queues a run for whichever host is free. While a run of the
// same syncs (same layer, same set of syncs, same Reset and Full) waits —
// queued, snoozed behind a running run of one of its syncs, or about to
// retry — on any host, the new one coalesces into it: EnqueueRun returns
// the waiting run's id and coalesced = true, and queues nothing. A run
// leaves the waiting set when it starts its work, so a storm of triggers
// over N hosts makes at most one running and one waiting run of a set.
func (c *Cluster) EnqueueRun(ctx context.Context, j RunJob) (runID string, coalesced bool, err error) {
	return c.enqueue(ctx, nil, j)
}

// EnqueueRunTx is EnqueueRun in the caller's transaction (on the shared
// database): the run is queued when tx commits, and not at all if it rolls
// back. A coalescing answer holds only if tx commits.
func (c *Cluster) EnqueueRunTx(ctx context.Context, tx pgx.Tx, j RunJob) (runID string, coalesced bool, err error) {
	if tx == nil {
		return "", false, errors.New("cluster: EnqueueRunTx needs a transaction")
	}
	return c.enqueue(ctx, tx, j)
}

func (c *Cluster) enqueue(ctx context.Context, tx pgx.Tx, j RunJob) (string, bool, error) {
	args, err := argsOf(j)
	if err != nil {
		return "", false, err
	}
	var res *rivertype.JobInsertResult
	if tx != nil {
		res, err = c.client.InsertTx(ctx, tx, args, nil)
	} else {
		res, err = c.client.Insert(ctx, args, nil)
	}
	if err != nil {
		return "", false, fmt.Errorf("cluster: queueing run %s of layer %s: %w", args.Run, args.Layer, err)
	}
	if !res.UniqueSkippedAsDuplicate {
		return args.Run, false, nil
	}
	var waiting runArgs
	if err := json.Unmarshal(res.Job.EncodedArgs, &waiting); err != nil || waiting.Run == "" {
		return "", false, fmt.Errorf("cluster: the waiting run (job %d) that run %s coalesced into has unreadable args: %v", res.Job.ID, args.Run, err)
	}
	return waiting.Run, true, nil
}

// CancelRun cancels a run wherever it is: a waiting run is dropped; a
// running one has its context cancelled with ErrCancelled on its host
// (within RescueAfter/6 at most). It reports whether a run was found.
func (c *Cluster) CancelRun(ctx context.Context, runID string) (bool, error) {
	filter, _ := json.Marshal(map[string]string{"run": runID})
	n, err := c.cancelWhere(ctx, filter)
	return n > 0, err
}

// CancelConnection cancels every run, waiting or running on any host, that
// covers a sync of the connection (a connection deleted). It reports how
// many it found.
func (c *Cluster) CancelConnection(ctx context.Context, layer, source, connection string) (int, error) {
	filter, _ := json.Marshal(map[string]any{"layer": layer, "syncs": []map[string]string{{"source": source, "connection": connection}}})
	return c.cancelWhere(ctx, filter)
}

// cancelWhere cancels the runs whose args contain filter (River cancels a
// waiting job at once and tells the host of a running one).
func (c *Cluster) cancelWhere(ctx context.Context, filter []byte) (int, error) {
	ids, err := c.activeJobs(ctx, filter)
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if _, err := c.client.JobCancel(ctx, id); err != nil && !errors.Is(err, river.ErrNotFound) {
			return 0, fmt.Errorf("cluster: cancelling run job %d: %w", id, err)
		}
	}
	return len(ids), nil
}

// activeJobs lists the jobs of runs not yet finalized whose args contain
// filter (river_job has a GIN index on args).
func (c *Cluster) activeJobs(ctx context.Context, filter []byte) ([]int64, error) {
	rows, err := c.pool.Query(ctx, `SELECT id FROM river_job
		WHERE kind = $1 AND args @> $2::jsonb AND state NOT IN ('completed', 'cancelled', 'discarded')`, Kind, string(filter))
	if err != nil {
		return nil, fmt.Errorf("cluster: listing runs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("cluster: listing runs: %w", err)
	}
	return ids, nil
}

// SyncState tells whether a run of the sync is running on some host
// ("running"), waiting ("queued"), or neither (""), across every host: the
// state of the layer's River jobs that hold the sync.
func (c *Cluster) SyncState(ctx context.Context, layer string, k SyncKey) (string, error) {
	filter, err := json.Marshal(map[string]any{"layer": layer, "syncs": []SyncKey{k}})
	if err != nil {
		return "", err
	}
	var running, waiting bool
	err = c.pool.QueryRow(ctx, `SELECT
			coalesce(bool_or(state = 'running'), false),
			coalesce(bool_or(state IN ('available', 'scheduled', 'retryable', 'pending')), false)
		FROM river_job
		WHERE kind = $1 AND args @> $2::jsonb AND state NOT IN ('completed', 'cancelled', 'discarded')`, Kind, string(filter)).Scan(&running, &waiting)
	if err != nil {
		return "", fmt.Errorf("cluster: the state of %s/%s: %w", layer, k.Sync, err)
	}
	switch {
	case running:
		return "running", nil
	case waiting:
		return "queued", nil
	}
	return "", nil
}
