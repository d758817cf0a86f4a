package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// Triggers, as SPEC §6 names them.
const (
	TriggerSchedule = "schedule"
	TriggerWebhook  = "webhook"
	TriggerManual   = "manual"
	TriggerConfig   = "config"
	TriggerStartup  = "startup"
)

// TriggerRequest asks for a run: the whole layer, one source, or one sync,
// of one connection (of a source with connections) or of all of them.
type TriggerRequest struct {
	Source     string
	Sync       string
	Connection string
	// Reset drops the checkpoints of the syncs and runs them from scratch.
	Reset   bool
	Trigger string // default TriggerManual
}

// pending is a queued or running run.
type pending struct {
	run      *store.Run
	syncType string
	// received counts the changes received so far while running.
	received atomicInt
	// progress is what the connectors last reported while running.
	progress progressTable
	// slots is set while the run holds its slots of the limiter (under
	// the layer's lock).
	slots bool
	// unsynced are the run's syncs that never completed (syncTypeOf):
	// its publish marks them.
	unsynced []store.SyncRef
	// srcs are the sources of the run's syncs, for srcsOf syncs
	// (runSources).
	srcs   []*source
	srcsOf int
	// ctx is the run's context and cancel stops it (a connection
	// deleted), both set when it starts; done is closed when it has ended.
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}

	fullMu sync.Mutex
	// full records, per "source\x00sync", whether the run reads it in
	// full (and so tracks deletes). It is decided by the run's first
	// attempt and kept by its retries: a retry resumes from the attempt's
	// own checkpoint, yet is still the same full run.
	full map[string]bool
}

// decideFull returns whether the run reads source/sync in full: decided
// once per run, by first.
func (p *pending) decideFull(source, sync string, first func() bool) bool {
	p.fullMu.Lock()
	defer p.fullMu.Unlock()
	k := source + "\x00" + sync
	if f, ok := p.full[k]; ok {
		return f
	}
	if p.full == nil {
		p.full = map[string]bool{}
	}
	f := first()
	p.full[k] = f
	return f
}

// Trigger queues a run and returns its id. A trigger for syncs that a
// waiting run already covers merges into that run (coalesced): at most one
// run waits behind the running one for any sync.
func (e *Engine) Trigger(layerName string, req TriggerRequest) (string, error) {
	l, err := e.layer(layerName)
	if err != nil {
		return "", err
	}
	e.mu.RLock()
	stopped := e.stopped
	e.mu.RUnlock()
	if stopped {
		return "", fmt.Errorf("%w: the host is stopping or reloading; try again", ErrNotReady)
	}
	if req.Trigger == "" {
		req.Trigger = TriggerManual
	}
	refs, err := l.resolve(req.Source, req.Sync, req.Connection)
	if err != nil {
		return "", err
	}
	full := req.Reset || req.Trigger == TriggerConfig || req.Trigger == TriggerStartup
	// One run for the sources without connections (one revision, as
	// always), one per connection: connections run side by side.
	var id string
	for _, group := range groupByConnection(refs) {
		gid, err := l.enqueue(group, req.Trigger, req.Reset, full)
		if err != nil {
			return "", err
		}
		if id == "" {
			id = gid
		}
	}
	if req.Trigger == TriggerManual {
		fields := map[string]string{"run": id, "source": req.Source, "sync": req.Sync, "reset": fmt.Sprint(req.Reset)}
		if req.Connection != "" {
			fields["connection"] = req.Connection
		}
		l.audit("sync.triggered", fields)
	}
	return id, nil
}

// errNoConnections: the syncs named belong to sources with connections,
// and there are none yet (nothing to run, nothing wrong).
var errNoConnections = fmt.Errorf("%w: no connections", ErrUnknownConnection)

// groupByConnection splits refs into the refs of sources without
// connections (first) and those of each connection.
func groupByConnection(refs []store.SyncRef) [][]store.SyncRef {
	var plain []store.SyncRef
	byConn := map[string][]store.SyncRef{}
	var order []string
	for _, r := range refs {
		if r.Connection == "" {
			plain = append(plain, r)
			continue
		}
		k := r.Key()
		if _, ok := byConn[k]; !ok {
			order = append(order, k)
		}
		byConn[k] = append(byConn[k], r)
	}
	var out [][]store.SyncRef
	if len(plain) > 0 {
		out = append(out, plain)
	}
	for _, k := range order {
		out = append(out, byConn[k])
	}
	return out
}

// resolve lists the syncs a trigger names. For a source with connections,
// they are the syncs of the named connection, or of every connection.
func (l *layer) resolve(sourceName, syncName, connection string) ([]store.SyncRef, error) {
	if sourceName == "" && syncName != "" {
		return nil, fmt.Errorf("%w: a sync needs its source", ErrUnknownSync)
	}
	if connection != "" {
		s := l.source(sourceName)
		if s == nil || !s.cfg.Connections {
			return nil, fmt.Errorf("%w %q in layer %q with connections", ErrUnknownSource, sourceName, l.cfg.Name)
		}
		if !s.hasConnection(connection) {
			return nil, fmt.Errorf("%w %q of source %q", ErrUnknownConnection, connection, sourceName)
		}
	}
	var refs []store.SyncRef
	for _, s := range l.sources {
		if sourceName != "" && s.cfg.Name != sourceName {
			continue
		}
		s.mu.Lock()
		desc := s.desc
		s.mu.Unlock()
		if desc == nil {
			return nil, fmt.Errorf("%w: source %q has not been described yet", ErrNotReady, s.cfg.Name)
		}
		conns := []string{""}
		if s.cfg.Connections {
			if connection != "" {
				conns = []string{connection}
			} else {
				conns = s.connectionIDs()
			}
		}
		for _, y := range desc.Syncs {
			if syncName != "" && y.Name != syncName {
				continue
			}
			for _, c := range conns {
				refs = append(refs, store.SyncRef{Source: s.cfg.Name, Sync: y.Name, Connection: c})
			}
		}
	}
	if sourceName != "" && l.source(sourceName) == nil {
		return nil, fmt.Errorf("%w %q in layer %q", ErrUnknownSource, sourceName, l.cfg.Name)
	}
	if len(refs) > 0 {
		return refs, nil
	}
	if syncName != "" {
		s := l.source(sourceName)
		s.mu.Lock()
		known := s.desc != nil && s.desc.Sync(syncName) != nil
		s.mu.Unlock()
		if !known {
			return nil, fmt.Errorf("%w %q in source %q", ErrUnknownSync, syncName, sourceName)
		}
	}
	if sourceName != "" {
		return nil, fmt.Errorf("%w: source %q has no connections yet", errNoConnections, sourceName)
	}
	for _, s := range l.sources {
		if !s.cfg.Connections {
			return nil, fmt.Errorf("%w: nothing to sync", ErrUnknownSync)
		}
	}
	return nil, fmt.Errorf("%w: layer %q has only sources with connections, and no connection yet", errNoConnections, l.cfg.Name)
}

func refsKey(refs []store.SyncRef) string {
	parts := make([]string, len(refs))
	for i, r := range refs {
		parts[i] = r.Source + "/" + r.Sync
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// union adds refs to a run's syncs; it reports whether any was new.
func union(run *store.Run, refs []store.SyncRef) bool {
	have := map[store.SyncRef]bool{}
	for _, r := range run.Syncs {
		have[r] = true
	}
	added := false
	for _, r := range refs {
		if !have[r] {
			run.Syncs = append(run.Syncs, r)
			have[r] = true
			added = true
		}
	}
	return added
}

// enqueue queues a run of refs. A sync runs once at a time, so a trigger
// that arrives while a run of any of its syncs waits merges into it
// (coalesced): the waiting run takes the union of the syncs, and the
// newest trigger's details win. So at most one run waits behind a running
// one for any sync (of any connection). A reset trigger merges only into a
// waiting reset run, so that a reset never spreads to syncs nobody asked
// to reset. Runs that share no sync run side by side (dispatch).
//
// In a cluster, the run goes to River instead (enqueueClustered).
func (l *layer) enqueue(refs []store.SyncRef, trigger string, reset, full bool) (string, error) {
	if l.e.clusterOpts != nil {
		return l.enqueueClustered(refs, trigger, reset, full)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// The oldest waiting run of any of the syncs (an index: thousands of
	// connection runs may wait).
	var p *pending
	for _, r := range refs {
		if w := l.waiting[waitKey{r, reset}]; w != nil && (p == nil || w.run.QueuedAt.Before(p.run.QueuedAt)) {
			p = w
		}
	}
	if p != nil {
		prev := *p.run
		prev.Syncs = append([]store.SyncRef(nil), p.run.Syncs...)
		widened := union(p.run, refs)
		p.run.Trigger = trigger
		p.run.Full = p.run.Full || full
		if widened || prev.Trigger != p.run.Trigger || prev.Full != p.run.Full {
			if err := l.db.PutRun(p.run); err != nil {
				*p.run = prev
				return "", err
			}
		}
		l.indexWaiting(p)
		l.event(store.Event{Type: "coalesced", Run: p.run.ID, Message: fmt.Sprintf("%s trigger merged into the waiting run (was %s)", trigger, prev.Trigger)})
		return p.run.ID, nil
	}
	run := &store.Run{
		ID:       newID("run"),
		State:    store.RunQueued,
		Trigger:  trigger,
		Syncs:    refs,
		Full:     full,
		Reset:    reset,
		QueuedAt: time.Now().UTC(),
	}
	// Durable before acknowledged: a queued run survives a restart.
	if err := l.db.PutRun(run); err != nil {
		return "", err
	}
	np := &pending{run: run}
	l.queue = append(l.queue, np)
	l.indexWaiting(np)
	l.event(store.Event{Type: "run.queued", Run: run.ID, Message: trigger, Connection: connectionOf(refs)})
	l.kick()
	return run.ID, nil
}

// waitKey indexes waiting runs by sync: a reset run and a plain one may
// wait for the same sync.
type waitKey struct {
	ref   store.SyncRef
	reset bool
}

// indexWaiting records a waiting run under each of its syncs. Call with
// l.mu held.
func (l *layer) indexWaiting(p *pending) {
	if l.waiting == nil {
		l.waiting = map[waitKey]*pending{}
	}
	for _, r := range p.run.Syncs {
		k := waitKey{r, p.run.Reset}
		if w := l.waiting[k]; w == nil || p.run.QueuedAt.Before(w.run.QueuedAt) {
			l.waiting[k] = p
		}
	}
}

// unindexWaiting forgets a run that no longer waits. Call with l.mu held.
func (l *layer) unindexWaiting(p *pending) {
	for _, r := range p.run.Syncs {
		k := waitKey{r, p.run.Reset}
		if l.waiting[k] == p {
			delete(l.waiting, k)
		}
	}
}

// connectionOf is the connection of a run's syncs ("" for sources without
// connections: a run covers one connection at most).
func connectionOf(refs []store.SyncRef) string {
	for _, r := range refs {
		if r.Connection != "" {
			return r.Connection
		}
	}
	return ""
}

// kick wakes the layer's dispatcher.
func (l *layer) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// recoverRuns requeues the runs a previous process left queued, and queues
// again (from their last published checkpoints) the runs it left running,
// after marking those failed.
func (l *layer) recoverRuns() error {
	runs, err := l.db.ActiveRuns()
	if err != nil {
		return err
	}
	for _, r := range runs {
		switch r.State {
		case store.RunQueued:
			l.queue = append(l.queue, &pending{run: r})
		case store.RunRunning:
			now := time.Now().UTC()
			if err := l.failInterrupted(r, now); err != nil {
				return err
			}
			again := &store.Run{ID: newID("run"), State: store.RunQueued, Trigger: r.Trigger, Syncs: r.Syncs, Full: r.Full, Reset: r.Reset, QueuedAt: now}
			if err := l.db.PutRun(again); err != nil {
				return err
			}
			l.queue = append(l.queue, &pending{run: again})
		}
	}
	sort.SliceStable(l.queue, func(i, j int) bool { return l.queue[i].run.QueuedAt.Before(l.queue[j].run.QueuedAt) })
	for _, p := range l.queue {
		l.indexWaiting(p)
	}
	return nil
}

// failInterrupted marks failed a run that a host left running (it stopped
// or died during the run): it is run again, under a new id.
func (l *layer) failInterrupted(r *store.Run, now time.Time) error {
	r.State, r.Error, r.FinishedAt = store.RunFailed, "interrupted: the host stopped during the run; its changes were not published and it was queued again", &now
	// Its sync.started went out: so does its sync.failed, in the same
	// commit as the failure.
	p := &pending{run: r}
	p.syncType = l.syncTypeOf(p)
	ev := l.runEvent(EventSyncFailed, p)
	ev.FinishedAt, ev.Error = fmtTime(now), r.Error
	if err := l.db.PutRun(r, l.deliveries(ev, false)...); err != nil {
		return err
	}
	l.event(store.Event{Type: "sync.failed", Run: r.ID, Message: r.Error})
	return nil
}

// initialRun queues the first run of a new layer, or a full run when a
// source's configuration changed since the last run that published.
func (l *layer) initialRun() error {
	l.mu.Lock()
	queued := len(l.queue) > 0
	l.mu.Unlock()
	if queued {
		l.kick()
	}
	if _, ok := l.db.Newest(); !ok {
		if queued {
			return nil
		}
		// startup on the first start with an empty store; a layer added to
		// a store that holds others is a configuration change.
		trigger := TriggerConfig
		if l.e.emptyStore {
			trigger = TriggerStartup
		}
		_, err := l.e.Trigger(l.cfg.Name, TriggerRequest{Trigger: trigger})
		if errors.Is(err, errNoConnections) {
			return nil // its first revision comes with its first connection
		}
		return err
	}
	var changed []string
	for _, s := range l.sources {
		old, err := l.db.Meta(configHashKey(s.cfg.Name))
		if err != nil {
			return err
		}
		if string(old) != s.hash {
			changed = append(changed, s.cfg.Name)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	l.log.Info("configuration changed since the last run: running a full sync", "sources", strings.Join(changed, ","))
	l.audit("config.changed", map[string]string{"sources": strings.Join(changed, ",")})
	_, err := l.e.Trigger(l.cfg.Name, TriggerRequest{Trigger: TriggerConfig})
	if errors.Is(err, errNoConnections) {
		return nil
	}
	return err
}

func configHashKey(source string) string { return "config-hash/" + source }

// worker starts the layer's queued runs as they can go: a run whose syncs
// no running or earlier waiting run holds, within the host's and its
// sources' limits of runs at once. Each run goes in its own goroutine and
// publishes as its own revision.
func (l *layer) worker() {
	defer l.e.wg.Done()
	for {
		select {
		case <-l.e.ctx.Done():
			return
		case <-l.wake:
		}
		l.mu.Lock()
		l.dispatchLocked()
		l.mu.Unlock()
	}
}

// dispatchLocked starts what can start, oldest first. Call with l.mu held.
// It costs a few steps per waiting run: with thousands of connection runs
// waiting for their source's slots, each pass stays cheap.
func (l *layer) dispatchLocked() {
	if l.e.ctx.Err() != nil || len(l.queue) == 0 {
		return
	}
	held := map[store.SyncRef]bool{}
	for _, p := range l.running {
		for _, r := range p.run.Syncs {
			held[r] = true
		}
	}
	full := map[*source]bool{} // sources out of slots in this pass
	kept := l.queue[:0:0]
	for i, p := range l.queue {
		if !l.e.limits.hostRoom() || len(full) == len(l.sources) {
			// Nothing more can start: the rest waits as it is (thousands
			// of connection runs may wait for their source's slots).
			kept = append(kept, l.queue[i:]...)
			break
		}
		blocked := false
		for _, r := range p.run.Syncs {
			if held[r] {
				blocked = true
				break
			}
		}
		srcs := l.runSources(p)
		for _, s := range srcs {
			if full[s] {
				blocked = true
				break
			}
		}
		if !blocked {
			if l.e.limits.tryAcquire(srcs) {
				l.unindexWaiting(p)
				p.slots = true
				p.done = make(chan struct{})
				// Cancellable from now on (a connection deleted before
				// the run's goroutine got going).
				p.ctx, p.cancel = context.WithCancelCause(l.e.ctx)
				l.running[p.run.ID] = p
				for _, r := range p.run.Syncs {
					held[r] = true
				}
				l.e.wg.Add(1)
				go l.runOne(p)
				continue
			}
			for _, s := range srcs {
				if !l.e.limits.sourceRoom(s) {
					full[s] = true
				}
			}
		}
		// It waits. (Coalescing keeps one waiting run per sync, so no
		// later run of its syncs can overtake it.)
		kept = append(kept, p)
	}
	l.queue = kept
}

// runOne runs one run to its end and lets the next ones go.
func (l *layer) runOne(p *pending) {
	defer l.e.wg.Done()
	l.execute(p)
	l.finishRun(p)
}

// finishRun ends the bookkeeping of a run that ran: it leaves l.running,
// gives its slots back, and lets the next ones go.
func (l *layer) finishRun(p *pending) {
	l.mu.Lock()
	close(p.done)
	delete(l.running, p.run.ID)
	held := p.slots
	p.slots = false
	l.mu.Unlock()
	if held {
		l.e.limits.release(l.runSources(p)) // wakes every layer
	} else {
		l.kick()
	}
}

// runSources are the distinct sources of a run's syncs.
// They are kept on the run (a dispatch pass asks for those of every
// waiting run) and made again when coalescing added syncs.
func (l *layer) runSources(p *pending) []*source {
	if p.srcs != nil && p.srcsOf == len(p.run.Syncs) {
		return p.srcs
	}
	out := []*source{}
	for _, r := range p.run.Syncs {
		if s := l.source(r.Source); s != nil && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	p.srcs, p.srcsOf = out, len(p.run.Syncs)
	return out
}

// event adds an entry to the layer's event log. Entries are written by the
// layer's event writer, many per commit, so that a burst of triggers does
// not cost a commit each; they appear within milliseconds.
func (l *layer) event(ev store.Event) {
	// Events reach API answers: no secret in them.
	ev.Message = l.e.redact.Replace(ev.Message)
	for k, v := range ev.Fields {
		ev.Fields[k] = l.e.redact.Replace(v)
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	select {
	case l.events <- ev:
	default:
		l.appendEvents([]store.Event{ev}) // the writer is behind or gone
	}
}

func (l *layer) appendEvents(es []store.Event) {
	if err := l.db.AppendEvents(es); err != nil && !errors.Is(err, store.ErrClosed) {
		l.log.Error("could not append to the event log", "error", err)
	}
}

// eventWriter writes queued events in batches until the engine stops, then
// writes what is left.
func (l *layer) eventWriter() {
	defer l.e.wg.Done()
	for {
		select {
		case ev := <-l.events:
			batch := []store.Event{ev}
		more:
			for len(batch) < 512 {
				select {
				case ev := <-l.events:
					batch = append(batch, ev)
				default:
					break more
				}
			}
			l.appendEvents(batch)
		case done := <-l.eventsSync:
			l.flushEvents()
			close(done)
		case <-l.e.ctx.Done():
			l.flushEvents()
			return
		}
	}
}

// syncEvents returns once every event queued before the call is in the
// log (or the engine stopped, which writes them too).
func (l *layer) syncEvents() {
	done := make(chan struct{})
	select {
	case l.eventsSync <- done:
		<-done
	case <-l.e.ctx.Done():
	}
}

// flushEvents writes the events still queued.
func (l *layer) flushEvents() {
	var batch []store.Event
	for {
		select {
		case ev := <-l.events:
			batch = append(batch, ev)
		default:
			if len(batch) > 0 {
				l.appendEvents(batch)
			}
			return
		}
	}
}
