// Package cluster distributes a layer's runs over the N synclayer hosts
// that share one PostgreSQL (SPEC §16), through River
// (github.com/riverqueue/river with its pgx driver): every host runs a
// River client working the queue "runs", and a schedule loop.
//
// # What it guarantees
//
//   - Coalescing across hosts. EnqueueRun queues a River job whose
//     river:"unique" args are the layer, the set of syncs, Reset and Full.
//     While a run of the same set waits (River states available, scheduled,
//     retryable, pending), a new one coalesces into it: EnqueueRun returns
//     the waiting run's id. River insists that unique states include
//     "running"; a run leaves the set when it starts its work instead (its
//     unique key is cleared once it holds its sync locks), so a trigger
//     storm spread over the hosts makes at most one running and one waiting
//     run of a set. Runs of overlapping but different sets do not coalesce;
//     they take turns on their shared syncs.
//   - One active run per sync across hosts. A run takes, on a pool
//     connection it holds for its whole duration, the advisory lock of each
//     of its syncs (a 64-bit hash of layer, source, connection and sync;
//     pg_try_advisory_lock, all or none). When another run holds one, the
//     run's job snoozes (Options.LockRetry, doubling, at most 5 s) and
//     tries again, still a waiting run; the run holding the sync wakes it
//     when it ends. The locks go with the connection: released at the
//     run's end, or by PostgreSQL when the host dies.
//   - A run whose host dies runs again on another host within a bound.
//     River's rescuer (internal/maintenance/job_rescuer.go, with the query
//     JobGetStuck in riverdriver/riverpgxv5/internal/dbsqlc/river_job.sql:
//     state = 'running' AND attempted_at < now - RescueStuckJobsAfter) takes
//     back jobs whose attempted_at is old. While a run goes, its host
//     touches its job's attempted_at every RescueAfter/6 (an UPDATE by job
//     id while it is running and this host's attempt), on the connection
//     holding the locks. A dead host's heartbeats stop, and River runs its
//     run again on another host: see "The rescue bound". The run that
//     starts again has Run.Resumed set.
//   - Schedules fire once across hosts. The table synclayer_cluster_schedules
//     holds one row per scheduled sync (a period or a cron expression, and
//     next_at). Every host's loop claims due rows with SELECT ... FOR UPDATE
//     SKIP LOCKED, moves next_at on (from the previous next_at, skipping
//     missed periods, so the beat does not drift) and enqueues the run
//     (Trigger "schedule") in the same transaction (River's InsertTx): a
//     firing happens once, by one host. This is preferred to River's
//     leader running a periodic job: the table holds 10,000s of
//     per-connection schedules that change at run time (River's periodic
//     jobs are a per-client list in memory), no firing waits for a leader
//     election when the leader dies, and the exactly-once comes from the
//     row lock and the transaction, not from who is leader.
//   - One leader per task. TryLead gives a named task (a layer's webhook
//     inbox) to one host at a time: a session advisory lock on a pool
//     connection the Leadership holds until Release. Other hosts are told
//     no at once and try again later; a dead host's connection, and so its
//     lock, goes with it, and the leader's own context ends
//     (ErrLeadershipLost) within about a second when its connection breaks.
//
// # The rescue bound
//
// A dead host's run is due for rescue RescueAfter after its last
// heartbeat. River v0.51's maintenance intervals are fixed (not
// configurable from outside River), and run on River's leader only, so
// the run starts again on another host within
//
//	RescueAfter (default 30 s, Options.RescueAfter)
//	+ 30 s  until the leader's rescuer looks again (JobRescuerIntervalDefault)
//	+ 5 s   until the leader's scheduler makes the job available
//	+ ~1 s  until a host fetches it
//
// about RescueAfter + 36 s, 66 s with the default. When the dead host was
// River's leader, another is elected meanwhile, within River's leadership
// TTL (about 15 s), and its rescuer looks at once. Measured with
// RescueAfter 2 s (TestRescueAfterHostDies), from kill -9 to the run
// starting on the survivor: about 18 s when the dead host was the leader
// (the leadership TTL dominates), about 26 s when the survivor was (the
// rescuer's 30 s interval dominates).
//
// River's rescuer leaves alone jobs without a timeout, and jobs whose
// timeout has not passed since attempted_at: a run's job has a nominal
// timeout of RescueAfter, which the worker does not obey (the run's context
// is not River's; a run lasts as long as it needs), and River's stuck-job
// report (JobStuckThreshold) is pushed out of reach.
//
// The hosts need not agree on anything but the database: no host's memory
// holds a guarantee.
//
// # Tables
//
// Open migrates River's tables (river_job, river_leader, river_queue, ...,
// through rivermigrate) and the cluster's own (synclayer_cluster_*,
// embedded, versioned in synclayer_cluster_migrations), all under one
// advisory lock, so N hosts starting at once take turns (rivermigrate
// takes no lock of its own). `synclayer migrate` may call Migrate alone.
//
// # Connections
//
// A running run holds one pool connection (its locks and heartbeats);
// River needs a few more: the pool must have MaxRuns + ReservedConns
// connections at least (Open checks). A held Leadership takes one more
// each (the engine: one per layer whose inbox this host leads).
//
// # Wiring into the engine
//
// core/engine uses a Cluster when engine.Options.Cluster is set (see
// core/engine/cluster.go); without it, one host, nothing changes.
//
//   - Start opens the Cluster once the layers are open and their sources
//     described, with Runner set to the engine's (it finds the layer,
//     makes the run's pending from its record, and runs it through
//     execute under l.running and the limiter's slots, so that per-source
//     max_concurrent_runs holds on each host); MaxRuns defaults to the
//     service's max_concurrent_runs; NewRunID makes the engine's ids.
//     Stop closes it first: the runs it interrupts (ErrClosed) are put
//     back queued, for another host or the next start.
//   - layer.enqueue calls EnqueueRun per connection group: coalesced, the
//     trigger gets the waiting run's id and a "coalesced" event; otherwise
//     the run's record is written queued, with its run.queued event. The
//     local queue, dispatcher and recoverRuns are not used.
//   - A Resumed run whose record says running: that record is marked
//     failed "interrupted" with its sync.failed event (as recoverRuns
//     does) and the run goes again under a new id from the last published
//     checkpoints; a record put back queued goes on under its id; a record
//     that ended needs nothing more. A run cancelled with ErrLost records
//     and publishes nothing (the engine checks its context right before
//     publishing).
//   - Schedules: every host upserts the schedule of each scheduled sync of
//     its sources and connections at start; connection create and update
//     upsert, Pause deletes and Resume upserts, a connection's delete
//     calls DeleteSchedules and CancelConnection; NextRun answers the
//     status calls. The engine's heap and scheduleLoop are not used. A
//     fired run whose sync is no longer scheduled (source, sync or
//     connection gone) deletes its schedule.
//   - Each layer's webhook inbox is processed by the host that leads
//     "inbox/<layer>" (TryLead), the others trying every second.
package cluster
