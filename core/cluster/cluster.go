package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// Queue is the River queue the runs go through.
const Queue = "runs"

// Defaults of Options.
const (
	DefaultMaxRuns      = 10
	DefaultRescueAfter  = 30 * time.Second
	DefaultLockRetry    = time.Second
	DefaultSchedulePoll = time.Second
)

// ReservedConns is how many connections of Options.Pool River needs beside
// the runs: its LISTEN connection, its fetches, completions, leader
// election and maintenance. Open refuses a pool smaller than
// MaxRuns + ReservedConns, because each running run holds one connection
// for its sync locks and heartbeats.
const ReservedConns = 4

// ErrClosed is the cause of the cancellation of runs interrupted by Close:
// River makes their jobs available again, for this host or another.
var ErrClosed = errors.New("cluster: the host is stopping")

// RunFunc runs one run on this host. ctx is cancelled when the run must
// stop: the host closes (ErrClosed), the run was cancelled (ErrCancelled),
// or the run was lost (ErrLost): its host no longer holds its sync locks,
// and another host may take it over. Use context.Cause(ctx) to tell them
// apart.
//
// Return nil when the run ended, whatever its outcome: the engine records
// failures on the run itself and retries with its own policy. A non-nil
// error ends the run's job for good (River does not retry it) and is
// logged; a run interrupted by Close is the exception: it goes back to the
// queue for the next host.
type RunFunc func(ctx context.Context, run Run) error

// Options configure Open.
type Options struct {
	// Pool is the host's connection pool to the PostgreSQL shared by the
	// hosts. It needs at least MaxRuns + ReservedConns connections
	// (pool_max_conns in the DSN). Close leaves it open.
	Pool *pgxpool.Pool
	// HostID names this host among the others (River's client ID; it shows
	// in river_job.attempted_by). Unique per process; default River's
	// (the host name and the start time).
	HostID string
	// Logger receives the cluster's log, River's included (River's routine
	// lifecycle messages at Debug). Default: none.
	Logger hclog.Logger
	// MaxRuns is how many runs this host runs at once (River's MaxWorkers
	// for the "runs" queue). Default DefaultMaxRuns.
	MaxRuns int
	// Runner runs a run. Required.
	Runner RunFunc
	// RescueAfter is how long a run's heartbeat may be missing before River
	// takes the run from its host (presumed dead) and runs it again on
	// another; heartbeats go every RescueAfter/6. See the package doc for
	// the whole bound. Default DefaultRescueAfter; at least 1 s.
	RescueAfter time.Duration
	// LockRetry is how long a run whose sync another run holds first waits
	// (River snooze) before it tries again; the wait doubles with each try,
	// up to max(LockRetry, 5 s). The run holding the sync wakes the runs
	// waiting for it when it ends. Default DefaultLockRetry.
	LockRetry time.Duration
	// SchedulePoll is the longest the schedule loop sleeps between looks at
	// the schedule table (it sleeps until the next due firing when that is
	// sooner, and wakes at once when this host changes a schedule).
	// Default DefaultSchedulePoll.
	SchedulePoll time.Duration
	// NewRunID makes the id of a run fired by a schedule. Default: ids
	// shaped like the engine's ("run_" + time + random hex).
	NewRunID func() string
	// NoSchedules turns this host's schedule loop off (the others fire the
	// schedules). Default false: every host takes part.
	NoSchedules bool

	// fired, when set (tests), is told of each firing this host made.
	fired func(Schedule, time.Time)
	// leaderCheck, when set (tests), replaces DefaultLeaderCheck.
	leaderCheck time.Duration
}

// Cluster is one host's part in running the layers' runs across the hosts
// that share a PostgreSQL: a River client working the "runs" queue, and a
// schedule loop. Its methods are safe for concurrent use.
type Cluster struct {
	opts   Options
	pool   *pgxpool.Pool
	log    hclog.Logger
	client *river.Client[pgx.Tx]

	// base is the parent of every run's context; cancelled by Close.
	base       context.Context
	cancelBase context.CancelCauseFunc

	schedWake chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open migrates River's and the cluster's tables (safe when N hosts start
// at once), starts a River client working the "runs" queue with
// MaxRuns workers, and starts the schedule loop. ctx bounds Open only:
// Close stops them.
func Open(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Pool == nil {
		return nil, errors.New("cluster: Options.Pool is required")
	}
	if opts.Runner == nil {
		return nil, errors.New("cluster: Options.Runner is required")
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.MaxRuns <= 0 {
		opts.MaxRuns = DefaultMaxRuns
	}
	if opts.MaxRuns > 10_000 {
		return nil, fmt.Errorf("cluster: MaxRuns is %d; at most 10000 runs may go at once on one host", opts.MaxRuns)
	}
	if opts.RescueAfter == 0 {
		opts.RescueAfter = DefaultRescueAfter
	}
	if opts.RescueAfter < time.Second {
		return nil, fmt.Errorf("cluster: RescueAfter is %s; it must be at least 1s (heartbeats go every RescueAfter/6)", opts.RescueAfter)
	}
	if opts.LockRetry <= 0 {
		opts.LockRetry = DefaultLockRetry
	}
	if opts.SchedulePoll <= 0 {
		opts.SchedulePoll = DefaultSchedulePoll
	}
	if opts.NewRunID == nil {
		opts.NewRunID = newRunID
	}
	if have, need := opts.Pool.Config().MaxConns, int32(opts.MaxRuns+ReservedConns); have < need {
		return nil, fmt.Errorf("cluster: the database pool has %d connections, and %d runs at once need %d (one each for their sync locks, and %d for River): raise pool_max_conns in the DSN or lower the runs at once", have, opts.MaxRuns, need, ReservedConns)
	}
	log := opts.Logger.Named("cluster")
	if err := Migrate(ctx, opts.Pool, log); err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, pool: opts.Pool, log: log, schedWake: make(chan struct{}, 1)}
	c.base, c.cancelBase = context.WithCancelCause(context.WithoutCancel(ctx))

	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &runWorker{c: c}); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	client, err := river.NewClient(riverpgxv5.New(opts.Pool), &river.Config{
		ID:     opts.HostID,
		Logger: newSlog(log),
		Queues: map[string]river.QueueConfig{Queue: {MaxWorkers: opts.MaxRuns}},
		// River rescues a running job when its attempted_at is older than
		// RescueStuckJobsAfter; the worker's heartbeat keeps it fresh while
		// its host lives (see runWorker).
		RescueStuckJobsAfter: opts.RescueAfter,
		// River's rescuer leaves alone a job whose timeout has not passed
		// since attempted_at, and never rescues one without a timeout (-1):
		// a run gets a timeout of RescueAfter, which the worker does not
		// obey (a run lasts as long as it needs), so that a job whose
		// heartbeat stopped is rescued RescueAfter after the last one.
		JobTimeout: opts.RescueAfter,
		// So runs outlive their nominal timeout as a rule: River must not
		// report them as stuck.
		JobStuckThreshold: 100 * 365 * 24 * time.Hour,
		MaxAttempts:       maxAttempts,
		Workers:           workers,
	})
	if err != nil {
		c.cancelBase(ErrClosed)
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c.client = client
	// River's client lives as long as its Start context: until Close, not
	// until ctx (which bounds Open) ends.
	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		c.cancelBase(ErrClosed)
		return nil, fmt.Errorf("cluster: starting River: %w", err)
	}
	if !opts.NoSchedules {
		c.wg.Add(1)
		go c.scheduleLoop()
	}
	log.Debug("cluster started", "host", client.ID(), "max_runs", opts.MaxRuns, "rescue_after", opts.RescueAfter)
	return c, nil
}

// HostID is this host's id among the others (River's client ID).
func (c *Cluster) HostID() string { return c.client.ID() }

// Close stops the schedule loop, interrupts the runs going on this host
// (their context is cancelled with ErrClosed; River makes their jobs
// available again, for another host or the next start), and waits, until
// ctx ends, for them to return and for River to stop. The pool stays open.
func (c *Cluster) Close(ctx context.Context) error {
	c.closeOnce.Do(func() {
		// River first: it stops fetching and cancels the runs' River
		// contexts with its stop cause, so that their jobs go back to
		// available with their attempt given back. Our own cancel reaches
		// the runs past their nominal timeout, whose River context is done
		// already (see runWorker).
		stopped := make(chan error, 1)
		go func() { stopped <- c.client.StopAndCancel(ctx) }()
		c.cancelBase(ErrClosed)
		c.wg.Wait()
		if err := <-stopped; err != nil {
			c.closeErr = fmt.Errorf("cluster: stopping River: %w", err)
		}
	})
	return c.closeErr
}

// newRunID makes a run id shaped like the engine's: "run_", the time in
// milliseconds and 8 random bytes, in hex.
func newRunID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return fmt.Sprintf("run_%012x%s", time.Now().UnixMilli(), hex.EncodeToString(b[:]))
}
