package engine

// Running as one of N hosts that share a PostgreSQL (SPEC §16), when
// Options.Cluster is set. The engine keeps its shape; what changes is
// where runs wait and who starts them:
//
//   - Queue: a trigger's runs go to River (core/cluster EnqueueRun), one
//     per connection group as always. A trigger for the same set of syncs
//     (with the same reset and full) as a run waiting on any host
//     coalesces into it; unlike the local queue, a narrower or wider
//     trigger queues a run of its own, which takes turns with the waiting
//     one on their shared syncs, and the waiting run keeps its trigger.
//     This process's queue,
//     dispatcher (worker, dispatchLocked) and recoverRuns are not used:
//     River keeps the waiting runs, rescues those of a dead host, and a
//     run takes its syncs' advisory locks (one active run per sync across
//     the hosts).
//   - Run: River hands a run to runClustered on some host, which runs it
//     through execute as runOne does (l.running, the limiter's slots, so
//     that the sources' max_concurrent_runs hold on each host).
//   - Schedule: each scheduled sync is a row of the cluster's schedule
//     table, upserted by every host at start and as connections change;
//     one host fires each due row. The heap and scheduleLoop are not used.
//   - Inbox: one host at a time publishes a layer's payload webhooks: the
//     leader of "inbox/<layer>" (cluster.TryLead); the others try again
//     every inboxLeaderRetry.
//
// A sync's state in the status calls is read from River's jobs (runState).
// What stays per host: the watch streams (each host's trigger coalesces),
// retention pruning.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/synclayer/synclayer/core/cluster"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
)

// inboxLeaderRetry is how often a host that does not lead a layer's inbox
// tries to take it over (its leader stopped or died).
const inboxLeaderRetry = time.Second

// inboxPoll is how often the leader of a layer's inbox looks at it even
// without a signal from the store (webhooks appended on other hosts).
const inboxPoll = 5 * time.Second

// startCluster opens the cluster and starts the layers on it: their inbox
// leadership, schedules, watch streams, and first runs.
func (e *Engine) startCluster(ctx context.Context) error {
	opts := *e.clusterOpts
	opts.Runner = e.runClustered
	opts.NewRunID = func() string { return newID("run") }
	if opts.MaxRuns <= 0 {
		opts.MaxRuns = e.cfg.Service.MaxConcurrentRuns
	}
	if opts.Logger == nil {
		opts.Logger = e.log
	}
	if opts.Pool != nil {
		runs := opts.MaxRuns
		if runs <= 0 {
			runs = cluster.DefaultMaxRuns
		}
		need := runs + cluster.ReservedConns + len(e.order)
		if have := int(opts.Pool.Config().MaxConns); have < need {
			return fmt.Errorf("cluster: the database pool has %d connections; %d runs at once, River and the webhook inboxes of %d layers need %d: raise pool_max_conns in the DSN or lower max_concurrent_runs", have, runs, len(e.order), need)
		}
	}
	c, err := cluster.Open(ctx, opts)
	if err != nil {
		return err
	}
	e.cluster.Store(c)
	for _, name := range e.order {
		l := e.layers[name]
		e.wg.Add(2)
		go l.pruneLoop()
		go l.inboxLeaderLoop()
		for _, s := range l.sources {
			e.wg.Add(1)
			go s.watchLoop()
		}
		if err := l.upsertSchedules(); err != nil {
			return err
		}
		if err := l.initialRun(); err != nil {
			return err
		}
	}
	return nil
}

// syncKeys are refs as the cluster names them.
func syncKeys(refs []store.SyncRef) []cluster.SyncKey {
	out := make([]cluster.SyncKey, len(refs))
	for i, r := range refs {
		out[i] = cluster.SyncKey{Source: r.Source, Connection: r.Connection, Sync: r.Sync}
	}
	return out
}

// enqueueClustered queues a run of refs in River. When a run of the same
// syncs (and the same reset and full) waits on any host, the trigger
// coalesces into it: its id is returned, and the waiting run keeps its
// own trigger. Otherwise the run's record is written queued.
func (l *layer) enqueueClustered(refs []store.SyncRef, trigger string, reset, full bool) (string, error) {
	c, err := l.e.openCluster()
	if err != nil {
		return "", err
	}
	// Its record is written before this host's Runner may start it
	// (claimRun takes the same lock). (Another host may start it sooner:
	// with a store shared by the hosts, EnqueueRunTx in the store's
	// transaction would close that window.)
	l.clusterMu.Lock()
	defer l.clusterMu.Unlock()
	id := newID("run")
	got, coalesced, err := c.EnqueueRun(l.e.ctx, cluster.RunJob{Layer: l.cfg.Name, Run: id, Syncs: syncKeys(refs), Reset: reset, Full: full, Trigger: trigger})
	if err != nil {
		return "", err
	}
	if coalesced {
		l.event(store.Event{Type: "coalesced", Run: got, Message: fmt.Sprintf("%s trigger merged into the waiting run", trigger)})
		return got, nil
	}
	// Another host may have taken the run already (and written its
	// record, running or even ended): a queued record must not overwrite
	// it. (What is left is the instant between this read and the write.)
	if _, err := l.db.GetRun(id); err == nil {
		return id, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	run := &store.Run{ID: id, State: store.RunQueued, Trigger: trigger, Syncs: refs, Full: full, Reset: reset, QueuedAt: time.Now().UTC()}
	if err := l.db.PutRun(run); err != nil {
		return "", err
	}
	l.event(store.Event{Type: "run.queued", Run: id, Message: trigger, Connection: connectionOf(refs)})
	return id, nil
}

// runClustered is the cluster's Runner: it runs on this host a run River
// gave it, as runOne does (l.running, the sources' slots, execute). Its
// context is ctx (the cluster stops the run through it) joined with the
// engine's. It returns an error only for a run that must go again: one
// interrupted by this host's stop (back to River's queue), or lost to
// another host; a run that ended, completed or failed, returns nil.
func (e *Engine) runClustered(ctx context.Context, cr cluster.Run) error {
	l := e.layers[cr.Layer]
	if l == nil || !l.open.Load() {
		return fmt.Errorf("%w %q: this host's configuration does not have it", ErrUnknownLayer, cr.Layer)
	}
	refs := make([]store.SyncRef, len(cr.Syncs))
	for i, k := range cr.Syncs {
		refs[i] = store.SyncRef{Source: k.Source, Sync: k.Sync, Connection: k.Connection}
	}
	if cr.Trigger == TriggerSchedule {
		if refs = l.scheduledRefs(refs); len(refs) == 0 {
			return nil
		}
	}
	p, err := l.claimRun(cr, refs)
	if err != nil || p == nil {
		return err
	}
	rctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(e.ctx, func() { cancel(context.Canceled) })
	defer stop()
	l.mu.Lock()
	p.ctx, p.cancel, p.done = rctx, cancel, make(chan struct{})
	l.running[p.run.ID] = p
	l.mu.Unlock()
	if err := l.acquireSlots(rctx, p); err == nil {
		l.execute(p)
	} else if cause := context.Cause(rctx); e.ctx.Err() == nil && !errors.Is(cause, cluster.ErrClosed) && !errors.Is(cause, cluster.ErrLost) {
		// Cancelled (its connection deleted) while it waited for a slot
		// of its sources: it never started.
		now := time.Now().UTC()
		l.updateRun(p, func(r *store.Run) {
			r.State, r.Error, r.FinishedAt = store.RunFailed, e.redact.Replace(cause.Error()), &now
		})
	}
	cancel(nil)
	l.finishRun(p)
	// execute cancelled rctx on its way out: ctx tells why the run stopped.
	switch cause := context.Cause(ctx); {
	case e.ctx.Err() != nil || errors.Is(cause, cluster.ErrClosed):
		return fmt.Errorf("run %s interrupted by this host's stop: %w", p.run.ID, context.Canceled)
	case errors.Is(cause, cluster.ErrLost):
		return cause
	}
	if p.run.ID != cr.Run {
		if err := l.db.DeleteMeta(resumedKey(cr.Run)); err != nil {
			l.log.Warn("could not drop the record of a resumed run", "run", cr.Run, "error", err)
		}
	}
	return nil
}

// resumedKey holds the id under which a resumed cluster run goes (its
// earlier attempt's record was marked failed, so it goes under a new id).
func resumedKey(run string) string { return "cluster-resumed/" + run }

// claimRun makes the pending run of a cluster run, from its record:
//
//   - A first attempt: its queued record (written by enqueueClustered on
//     the host that queued it), or a new one (a run fired by a schedule,
//     or queued by a host whose store this one does not share).
//   - A resumed run (an earlier attempt started and never ended): when
//     that attempt's record is still running, it is marked failed
//     "interrupted", with its sync.failed event, as recoverRuns does, and
//     the run goes again under a new id, from the last published
//     checkpoints. A record left queued (a host stopping put it back) goes
//     on under its id. A record that ended (its host died before River
//     heard of it) needs nothing more: claimRun returns nil.
func (l *layer) claimRun(cr cluster.Run, refs []store.SyncRef) (*pending, error) {
	l.clusterMu.Lock()
	defer l.clusterMu.Unlock()
	id := cr.Run
	if cr.Resumed {
		if v, err := l.db.Meta(resumedKey(cr.Run)); err == nil && len(v) > 0 {
			id = string(v)
		}
	}
	prev, err := l.db.GetRun(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		prev = nil
	case err != nil:
		return nil, err
	}
	if prev != nil && cr.Resumed {
		switch prev.State {
		case store.RunCompleted, store.RunFailed:
			l.log.Info("a resumed run had ended already", "run", prev.ID, "state", prev.State)
			return nil, nil
		case store.RunRunning:
			if err := l.failInterrupted(prev, time.Now().UTC()); err != nil {
				return nil, err
			}
			id, prev = newID("run"), nil
			if err := l.db.SetMeta(resumedKey(cr.Run), []byte(id)); err != nil {
				return nil, err
			}
		}
	}
	run := &store.Run{ID: id, State: store.RunQueued, Trigger: cr.Trigger, Syncs: refs, Full: cr.Full, Reset: cr.Reset, QueuedAt: cr.QueuedAt.UTC()}
	if prev != nil {
		run.QueuedAt = prev.QueuedAt
	} else {
		l.event(store.Event{Type: "run.queued", Run: id, Message: cr.Trigger, Connection: connectionOf(refs)})
	}
	return &pending{run: run}, nil
}

// scheduledRefs keeps, of the syncs of a run a schedule fired, those this
// host still schedules. The schedule of a sync gone from the configuration
// (its source, its sync, its schedule) or of a deleted connection is
// deleted; a paused sync is left out.
func (l *layer) scheduledRefs(refs []store.SyncRef) []store.SyncRef {
	var out []store.SyncRef
	for _, r := range refs {
		scheduled, paused := false, false
		s := l.source(r.Source)
		switch {
		case s == nil || s.cfg.Connections != (r.Connection != ""):
		case r.Connection == "":
			_, scheduled = s.scheduleOf(r.Sync)
			paused = l.paused(r)
		default:
			s.mu.Lock()
			known := s.desc != nil && s.desc.Sync(r.Sync) != nil
			s.mu.Unlock()
			c, err := l.db.GetConnection(r.Source, r.Connection)
			switch {
			case err == nil:
				scheduled, paused = known, slices.Contains(c.Paused, r.Sync)
			case !errors.Is(err, store.ErrNotFound):
				scheduled = true // cannot tell: run it
			}
		}
		switch {
		case !scheduled:
			l.log.Info("a scheduled sync is no longer scheduled here; deleting its schedule", "source", r.Source, "connection", r.Connection, "sync", r.Sync)
			if err := l.putSchedule(r, schedule{}, false, time.Time{}); err != nil {
				l.log.Warn("could not delete a schedule", "source", r.Source, "sync", r.Sync, "error", err)
			}
		case !paused:
			out = append(out, r)
		}
	}
	return out
}

// putSchedule saves a sync's schedule in the cluster (on), due first at
// first (zero: one period from now), or deletes it.
func (l *layer) putSchedule(ref store.SyncRef, sc schedule, on bool, first time.Time) error {
	c, err := l.e.openCluster()
	if err != nil {
		return err
	}
	cs := l.clusterSchedule(ref, sc, first)
	if !on {
		_, err := c.DeleteSchedule(l.e.ctx, l.cfg.Name, cs.SyncKey)
		return err
	}
	return c.UpsertSchedule(l.e.ctx, cs)
}

// clusterSchedule is the cluster's schedule of a sync of the layer.
func (l *layer) clusterSchedule(ref store.SyncRef, sc schedule, first time.Time) cluster.Schedule {
	key := cluster.SyncKey{Source: ref.Source, Connection: ref.Connection, Sync: ref.Sync}
	return cluster.Schedule{Layer: l.cfg.Name, SyncKey: key, Every: sc.every, Cron: sc.expr, First: first}
}

// openCluster returns the cluster, or ErrNotReady before it is open.
func (e *Engine) openCluster() (*cluster.Cluster, error) {
	c := e.cluster.Load()
	if c == nil {
		return nil, fmt.Errorf("%w: the cluster is not open yet", ErrNotReady)
	}
	return c, nil
}

// connPaused tells whether a connection's sync is paused.
func connPaused(s *source, mc *conn, sync string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return mc.paused[sync]
}

// upsertSchedules saves, at start, the schedule of every sync of the
// layer's sources and connections (every host does; an unchanged schedule
// keeps its beat), and deletes those of paused or unscheduled syncs. The
// first runs of the connections spread over one period, as in
// scheduleLoop.
func (l *layer) upsertSchedules() error {
	c, err := l.e.openCluster()
	if err != nil {
		return err
	}
	now := time.Now()
	var puts []cluster.Schedule
	var dels []cluster.SyncKey
	err = l.eachSchedule(func(s *source, mc *conn, ref store.SyncRef, sc schedule, ok bool) error {
		var first time.Time
		var on bool
		if mc == nil {
			on = ok && !l.paused(ref)
		} else {
			on = ok && !connPaused(s, mc, ref.Sync)
			if ok {
				first = spread(sc, now)
			}
		}
		if cs := l.clusterSchedule(ref, sc, first); on {
			puts = append(puts, cs)
		} else {
			dels = append(dels, cs.SyncKey)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := c.UpsertSchedules(l.e.ctx, puts); err != nil {
		return err
	}
	return c.DeleteScheduleKeys(l.e.ctx, l.cfg.Name, dels)
}

// scheduleConnectionClustered is scheduleConnection in a cluster.
func (l *layer) scheduleConnectionClustered(s *source, mc *conn, desc *plugin.Description, first bool) {
	now := time.Now()
	for _, y := range desc.Syncs {
		name := y.Name
		ref := store.SyncRef{Source: s.cfg.Name, Sync: name, Connection: mc.id}
		sc, ok := l.connSchedule(s, mc, name)
		var at time.Time
		if ok {
			at = sc.next(now)
			if first {
				at = spread(sc, now)
			}
		}
		if err := l.putSchedule(ref, sc, ok && !connPaused(s, mc, name), at); err != nil {
			l.log.Error("could not save the schedule of a connection", "source", s.cfg.Name, "connection", mc.id, "sync", name, "error", err)
		}
	}
}

// unscheduleConnectionClustered is unscheduleConnection in a cluster.
func (l *layer) unscheduleConnectionClustered(source, id string) {
	c := l.e.cluster.Load()
	if c == nil {
		return
	}
	if _, err := c.DeleteSchedules(l.e.ctx, cluster.ScheduleFilter{Layer: l.cfg.Name, Source: source, Connection: id}); err != nil {
		l.log.Error("could not delete the schedules of a connection", "source", source, "connection", id, "error", err)
	}
}

// queuedRunsOf lists the runs of a connection whose records say queued
// (in a cluster, their runs wait in River): the connection's delete marks
// them failed.
func (l *layer) queuedRunsOf(source, id string) []*pending {
	runs, err := l.db.ActiveRuns()
	if err != nil {
		l.log.Error("could not list the queued runs of a deleted connection", "connection", id, "error", err)
		return nil
	}
	var out []*pending
	for _, r := range runs {
		if r.State == store.RunQueued && connectionOf(r.Syncs) == id && r.Syncs[0].Source == source {
			out = append(out, &pending{run: r})
		}
	}
	return out
}

// nextRunClustered is nextRun in a cluster: the next firing of the sync's
// schedule row.
func (l *layer) nextRunClustered(ref store.SyncRef) (time.Time, bool) {
	c := l.e.cluster.Load()
	if c == nil {
		return time.Time{}, false
	}
	at, ok, err := c.NextRun(l.e.ctx, l.cfg.Name, cluster.SyncKey{Source: ref.Source, Connection: ref.Connection, Sync: ref.Sync})
	if err != nil {
		l.log.Warn("could not read a sync's next run", "source", ref.Source, "sync", ref.Sync, "error", err)
		return time.Time{}, false
	}
	return at, ok
}

// nextRunsClustered is NextRuns in a cluster: the syncs of the sources
// without connections. (A paused sync has no schedule row.)
func (l *layer) nextRunsClustered() map[store.SyncRef]time.Time {
	out := map[store.SyncRef]time.Time{}
	for _, s := range l.sources {
		s.mu.Lock()
		desc := s.desc
		s.mu.Unlock()
		if s.cfg.Connections || desc == nil {
			continue
		}
		for _, y := range desc.Syncs {
			ref := store.SyncRef{Source: s.cfg.Name, Sync: y.Name}
			if at, ok := l.nextRunClustered(ref); ok {
				out[ref] = at
			}
		}
	}
	return out
}

// inboxLeaderLoop publishes the layer's payload webhooks while this host
// leads its inbox ("inbox/<layer>"), so that two hosts never publish the
// same items; it tries to lead every inboxLeaderRetry, and stops
// publishing at once when it loses the lead.
func (l *layer) inboxLeaderLoop() {
	defer l.e.wg.Done()
	key := "inbox/" + l.cfg.Name
	failing := false // logged once per streak of failures
	for l.e.ctx.Err() == nil {
		lead, err := l.e.cluster.Load().TryLead(l.e.ctx, key)
		if err != nil && !failing && l.e.ctx.Err() == nil {
			l.log.Warn("could not try to lead the layer's webhook inbox; trying again every second", "error", err)
		}
		failing = err != nil
		if lead == nil {
			l.pause(inboxLeaderRetry)
			continue
		}
		l.log.Debug("this host publishes the layer's payload webhooks")
		ctx, cancel := context.WithCancel(lead.Context())
		stop := context.AfterFunc(l.e.ctx, cancel)
		l.processInbox(ctx, inboxPoll)
		stop()
		cancel()
		lead.Release()
		if cause := context.Cause(lead.Context()); errors.Is(cause, cluster.ErrLeadershipLost) {
			l.log.Warn("this host lost the lead of the layer's webhook inbox", "error", cause)
		}
	}
}
