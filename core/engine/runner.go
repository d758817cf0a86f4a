package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/synclayer/synclayer/core/cluster"
	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/internal/redact"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
)

// Limits on what a plugin may send.
const (
	MaxRecordBytes = 4 << 20
	MaxIDBytes     = 1024
)

type atomicInt struct{ atomic.Int64 }

// execute runs one queued run to its end: every sync of it stages into one
// staging, published as one revision only if all of them completed. A
// failed attempt is retried per the syncs' retry blocks, on the same
// staging and from the run's last checkpoints; a run given up is rolled
// back. A run cut short by shutdown is left queued for the next start.
func (l *layer) execute(p *pending) {
	now := time.Now().UTC()
	l.mu.Lock()
	ctx, cancel := p.ctx, p.cancel
	l.mu.Unlock()
	defer cancel(nil)
	p.syncType = l.syncTypeOf(p)
	run := l.updateRun(p, func(r *store.Run) { r.State, r.StartedAt, r.Attempt = store.RunRunning, &now, 1 },
		func() *outEvent { return l.runEvent(EventSyncStarted, p) })
	connection := connectionOf(run.Syncs)
	l.event(store.Event{Type: "sync.started", Run: run.ID, Message: run.Trigger, Connection: connection})
	l.log.Info("run started", "run", run.ID, "trigger", run.Trigger, "syncs", refsKey(run.Syncs))

	rev, err := l.stageAndPublish(ctx, p)
	if err != nil && l.e.ctx.Err() == nil && context.Cause(ctx) != nil {
		err = context.Cause(ctx) // cancelled: the connection was deleted
	}
	if err != nil && errors.Is(err, cluster.ErrLost) {
		// This host no longer holds the run (cluster): it runs again, here
		// or on another host, which records it. Nothing was published.
		l.log.Warn("run lost to the cluster; it will run again", "run", run.ID)
		return
	}
	finished := time.Now().UTC()
	// A connection's run is recorded on the connection (its last run, its
	// state) after the run's own record and before its event: what follows
	// the event log (the dashboard) then finds both.
	switch {
	case err != nil && (l.e.ctx.Err() != nil || errors.Is(err, cluster.ErrClosed)):
		// Shutdown: nothing was published; the next start runs it again.
		run = l.updateRun(p, func(r *store.Run) { r.State, r.StartedAt, r.Error, r.RetryAt = store.RunQueued, nil, "", nil })
		l.afterConnectionRun(p, err)
		l.log.Info("run interrupted by shutdown; it will run again at the next start", "run", run.ID)
	case err != nil:
		msg := l.e.redact.Replace(err.Error())
		run = l.updateRun(p, func(r *store.Run) {
			r.FinishedAt = &finished
			r.State, r.Error, r.RetryAt = store.RunFailed, msg, nil
		}, func() *outEvent {
			ev := l.runEvent(EventSyncFailed, p)
			ev.FinishedAt, ev.Error = fmtTime(finished), msg
			return ev
		})
		l.e.metrics.Runs.WithLabelValues(l.cfg.Name, store.RunFailed).Inc()
		l.afterConnectionRun(p, err)
		l.event(store.Event{Type: "sync.failed", Run: run.ID, Message: run.Error, Connection: connection})
		l.log.Error("run failed", "run", run.ID, "error", run.Error)
	default:
		// Saved after the revision is visible: a reader that sees the run
		// completed can read its revision.
		run = l.updateRun(p, func(r *store.Run) { completeRun(r, rev) })
		finished = *run.FinishedAt
		l.e.metrics.Runs.WithLabelValues(l.cfg.Name, store.RunCompleted).Inc()
		l.countRecords(rev.Counts)
		l.afterConnectionRun(p, nil)
		l.event(store.Event{Type: "sync.completed", Run: run.ID, Message: fmt.Sprintf("revision %d", rev.Number), Connection: connection})
		l.log.Info("run completed", "run", run.ID, "revision", rev.Number, "took", finished.Sub(*run.StartedAt).Round(time.Millisecond))
	}
}

// completeRun marks a run completed by a revision: it finished when the
// revision was committed.
func completeRun(r *store.Run, rev store.Revision) {
	fin := rev.CreatedAt
	r.FinishedAt = &fin
	r.State, r.Revision, r.Counts, r.Error, r.RetryAt = store.RunCompleted, rev.Number, rev.Counts, "", nil
}

// updateRun changes a run under the layer's lock (readers copy it under the
// same lock), saves it, and returns a copy. The outbound events of
// announce (optional, built after fn) are committed with it.
func (l *layer) updateRun(p *pending, fn func(r *store.Run), announce ...func() *outEvent) *store.Run {
	l.mu.Lock()
	fn(p.run)
	c := copyRun(p.run)
	l.mu.Unlock()
	var ds []store.Delivery
	for _, mk := range announce {
		ds = append(ds, l.deliveries(mk(), false)...)
	}
	if err := l.db.PutRun(c, ds...); err != nil {
		l.log.Error("could not record a run", "run", c.ID, "error", err)
	}
	return c
}

// retryPolicy is the most generous retry block among the run's syncs.
func (l *layer) retryPolicy(p *pending) config.Retry {
	var r config.Retry
	for _, ref := range p.run.Syncs {
		s := l.source(ref.Source)
		if s == nil {
			continue
		}
		if b := s.cfg.Sync(ref.Sync); b != nil {
			r.Attempts = max(r.Attempts, b.Retry.Attempts)
			r.Backoff = max(r.Backoff, b.Retry.Backoff)
			r.Max = max(r.Max, b.Retry.Max)
		}
	}
	if r.Backoff <= 0 {
		r.Backoff = 10 * time.Second
	}
	if r.Max <= 0 {
		r.Max = 10 * time.Minute
	}
	return r
}

// backoff is the delay before retry number n (1-based): doubling from the
// base, capped, with up to 20% jitter either way.
func backoff(r config.Retry, n int) time.Duration {
	d := r.Backoff
	for i := 1; i < n && d < r.Max; i++ {
		d *= 2
	}
	d = min(d, r.Max)
	jitter := time.Duration(mathrand.Int64N(int64(d)/5+1)) * 2
	return d - d/5 + jitter
}

func (l *layer) stageAndPublish(ctx context.Context, p *pending) (store.Revision, error) {
	st, err := l.db.BeginStaging(p.run.ID)
	if err != nil {
		return store.Revision{}, err
	}
	// The run's syncs by source key: a source, or one connection of it.
	bySource := map[store.SyncRef][]string{}
	var order []store.SyncRef
	var names []string
	for _, r := range p.run.Syncs {
		k := store.SyncRef{Source: r.Source, Connection: r.Connection}
		if _, ok := bySource[k]; !ok {
			order = append(order, k)
			if !contains(names, r.Source) {
				names = append(names, r.Source)
			}
		}
		bySource[k] = append(bySource[k], r.Sync)
	}
	policy := l.retryPolicy(p)
	for attempt := 1; ; attempt++ {
		errs := make([]error, len(order))
		var wg sync.WaitGroup
		for i, k := range order {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := l.source(k.Source)
				if s == nil {
					errs[i] = fmt.Errorf("%w %q (removed from the configuration)", ErrUnknownSource, k.Source)
					return
				}
				errs[i] = s.runSyncs(ctx, p, st, k.Connection, bySource[k])
			}()
		}
		wg.Wait()
		err = errors.Join(errs...)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			// Shutting down (or reloading, which starts a new engine on
			// this same store): roll the staging back, and the next start
			// runs the run again. Or the run's connection was deleted.
			l.abort(st, p)
			return store.Revision{}, err
		}
		if attempt > policy.Attempts || plugin.IsUnauthorized(err) {
			// An authentication failure needs its credentials fixed:
			// retrying would fail the same way.
			if aerr := st.Abort(); aerr != nil {
				l.log.Error("could not roll back a failed run", "run", p.run.ID, "error", aerr)
			}
			if policy.Attempts > 0 && attempt > 1 {
				err = fmt.Errorf("gave up after %d attempts: %w", attempt, err)
			}
			return store.Revision{}, err
		}
		delay := backoff(policy, attempt)
		retryAt := time.Now().UTC().Add(delay)
		l.updateRun(p, func(r *store.Run) {
			r.Error, r.RetryAt, r.Attempt = l.e.redact.Replace(err.Error()), &retryAt, attempt+1
		})
		l.event(store.Event{Type: "sync.retrying", Run: p.run.ID, Message: err.Error(), Connection: connectionOf(p.run.Syncs),
			Fields: map[string]string{"attempt": fmt.Sprint(attempt + 1), "delay": delay.Round(time.Millisecond).String()}})
		l.log.Warn("run failed; retrying from its last checkpoint", "run", p.run.ID, "attempt", attempt, "delay", delay, "error", err)
		// The backoff holds no slot: other runs go meanwhile.
		l.releaseSlots(p)
		select {
		case <-ctx.Done():
			l.abort(st, p)
			return store.Revision{}, context.Cause(ctx)
		case <-time.After(delay):
		}
		if err := l.acquireSlots(ctx, p); err != nil {
			l.abort(st, p)
			return store.Revision{}, err
		}
		if err := st.NextAttempt(); err != nil {
			return store.Revision{}, err
		}
	}
	if ctx.Err() != nil {
		// Cancelled as its work ended (shutdown, its connection deleted,
		// the run lost to another host): publish nothing.
		l.abort(st, p)
		return store.Revision{}, context.Cause(ctx)
	}
	rev, err := st.Publish(store.PublishInfo{Trigger: p.run.Trigger, Sources: names, Announce: l.announceCompleted(p), Meta: l.learned(p, names)})
	if err != nil {
		if aerr := st.Abort(); aerr != nil {
			l.log.Error("could not roll back a run whose publish failed", "run", p.run.ID, "error", aerr)
		}
		return store.Revision{}, err
	}
	return rev, nil
}

// learned is what the revision of a run records for the runs after it, in
// its own commit (a commit less per run than setting each afterwards):
// that its syncs completed once (their next runs are not INITIAL), and,
// for a full run of a whole source, that the source's configuration is
// the one the layer holds.
func (l *layer) learned(p *pending, names []string) map[string][]byte {
	m := map[string][]byte{}
	for _, r := range p.unsynced { // as syncTypeOf found them when the run began
		m[syncedKey(r)] = []byte("1")
	}
	if p.run.Full && connectionOf(p.run.Syncs) == "" {
		for _, name := range names {
			if s := l.source(name); s != nil && l.coversSource(p, s) {
				m[configHashKey(name)] = []byte(s.hash)
			}
		}
	}
	return m
}

// abort rolls back a run's staging.
func (l *layer) abort(st store.Staging, p *pending) {
	if err := st.Abort(); err != nil {
		l.log.Error("could not roll back an interrupted run; the next start of the host will", "run", p.run.ID, "error", err)
	}
}

// coversSource tells whether the run synced every sync of the source.
func (l *layer) coversSource(p *pending, s *source) bool {
	s.mu.Lock()
	desc := s.desc
	s.mu.Unlock()
	for _, y := range desc.Syncs {
		if !contains(syncsOf(p.run.Syncs, s.cfg.Name), y.Name) {
			return false
		}
	}
	return true
}

func syncsOf(refs []store.SyncRef, source string) []string {
	var out []string
	for _, r := range refs {
		if r.Source == source {
			out = append(out, r.Sync)
		}
	}
	return out
}

// runSyncs runs a source's syncs of one run (of one of its connections,
// when connection is set), one after the other, in its plugin process.
func (s *source) runSyncs(ctx context.Context, p *pending, st store.Staging, connection string, syncs []string) error {
	inst, release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	rc := runConfig{sourceKey: s.cfg.Name, redact: s.l.e.redact}
	if connection == "" {
		s.mu.Lock()
		rc.raw = s.configRaw
		s.mu.Unlock()
	} else {
		var rd *redact.Redactor
		if rc.raw, rd, err = s.connectionConfig(connection); err != nil {
			return s.fail(connection, err)
		}
		rc.sourceKey, rc.connection = store.SourceKey(s.cfg.Name, connection), connection
		rc.redact = chainRedactor{s.l.e.redact, rd}
	}
	// Models may depend on the upstream (a new file, a new table): ask
	// again for this run.
	desc, err := inst.Describe(ctx, s.l.cfg.Name, s.cfg.Name, rc.raw)
	if err != nil {
		return s.failWith(rc, "describe", err)
	}
	if connection == "" {
		s.mu.Lock()
		desc.Config = s.desc.Config
		s.desc = desc
		s.mu.Unlock()
	}
	sort.Strings(syncs)
	for _, name := range syncs {
		if err := s.runSync(ctx, inst, desc, p, st, rc, name); err != nil {
			return s.failWith(rc, name, err)
		}
	}
	return nil
}

// runConfig is what a run of a source (or of one connection of it) uses.
type runConfig struct {
	raw        []byte // the config, JSON
	sourceKey  string // where its records and checkpoints go
	connection string
	redact     replacer
}

// replacer takes secrets out of text.
type replacer interface{ Replace(string) string }

// chainRedactor applies the host's redactor, then a connection's.
type chainRedactor [2]*redact.Redactor

func (c chainRedactor) Replace(s string) string { return c[1].Replace(c[0].Replace(s)) }

// failWith is fail for a run of rc, its secrets taken out of the error.
func (s *source) failWith(rc runConfig, what string, err error) error {
	if rc.connection == "" {
		return s.fail(what, err)
	}
	var crash *plugin.CrashError
	if errors.As(err, &crash) {
		s.l.e.metrics.PluginCrashes.WithLabelValues(s.cfg.Plugin).Inc()
		s.l.event(store.Event{Type: "plugin.crashed", Source: s.cfg.Name, Connection: rc.connection, Message: rc.redact.Replace(err.Error())})
	}
	return &runError{msg: fmt.Sprintf("source %q connection %q sync %q: %s", s.cfg.Name, rc.connection, what, rc.redact.Replace(err.Error())), err: err}
}

// runError is a run's error with its secrets taken out, still wrapping the
// plugin's error (so that its kind, transient or unauthorized, shows).
type runError struct {
	msg string
	err error
}

func (e *runError) Error() string { return e.msg }
func (e *runError) Unwrap() error { return e.err }

func (s *source) fail(what string, err error) error {
	redact := s.l.e.redact
	var crash *plugin.CrashError
	if errors.As(err, &crash) {
		s.l.e.metrics.PluginCrashes.WithLabelValues(s.cfg.Plugin).Inc()
		s.l.event(store.Event{Type: "plugin.crashed", Source: s.cfg.Name, Message: redact.Replace(err.Error())})
	}
	return &runError{msg: fmt.Sprintf("source %q sync %q: %s", s.cfg.Name, what, redact.Replace(err.Error())), err: err}
}

func (s *source) runSync(ctx context.Context, inst *plugin.Instance, desc *plugin.Description, p *pending, st store.Staging, rc runConfig, name string) error {
	spec := desc.Sync(name)
	if spec == nil {
		return fmt.Errorf("%w: the connector no longer offers it", ErrUnknownSync)
	}
	block := s.cfg.Sync(name)
	models := spec.Models
	opts := store.WriterOptions{}
	var timeout, progressTimeout time.Duration
	if block != nil {
		if len(block.Models) > 0 {
			models = block.Models
		}
		opts.IgnoreIfModifiedAfter = block.Merging == config.MergeIgnoreIfModifiedAfter
		timeout, progressTimeout = block.Timeout, block.ProgressTimeout
	}
	if timeout <= 0 {
		timeout = config.DefaultSyncTimeout
	}
	// Resume from this run's own last checkpoint (a retry), else from the
	// sync's committed one unless the run resets it.
	cp, own, err := st.Checkpoint(rc.sourceKey, name, p.run.Reset)
	if err != nil {
		return err
	}
	// Full or not (and so tracking deletes or not) is the first attempt's
	// decision: a retry resuming from its own checkpoint is still that
	// full run, and its saves must count as seen.
	full := p.decideFull(rc.sourceKey, name, func() bool { return p.run.Full || cp == nil })
	if full && block != nil && block.TrackDeletes {
		opts.TrackDeletes = models
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, fmt.Errorf("timed out after %s (the sync's timeout)", timeout))
		defer cancel()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	opts.Models = models
	allowed := make(map[string]bool, len(models))
	for _, m := range models {
		allowed[m] = true
	}
	w := st.Writer(rc.sourceKey, opts)
	log := inst.Logger().With("sync", name, "run", p.run.ID)
	if rc.connection != "" {
		log = log.With("connection", rc.connection)
	}

	// The store applies batches while the next ones arrive.
	type item struct {
		changes    []store.Change
		checkpoint []byte
	}
	ch := make(chan item, 4)
	applyErr := make(chan error, 1)
	go func() {
		var err error
		for it := range ch {
			if err != nil {
				continue // drain
			}
			if it.changes != nil {
				err = w.Apply(it.changes)
			} else {
				err = w.Checkpoint(name, it.checkpoint)
			}
			if err != nil {
				cancel(err)
			}
		}
		if err == nil {
			err = w.Close()
		} else {
			w.Close()
		}
		applyErr <- err
	}()
	syncErr := inst.Sync(ctx, plugin.SyncRequest{
		Layer: s.l.cfg.Name, Source: s.cfg.Name, Config: rc.raw,
		Sync: name, Models: models, Full: full, Resume: own, Checkpoint: cp,
		ProgressTimeout: progressTimeout,
	}, func(m *plugin.Message) error {
		switch {
		case m.Changes != nil:
			cs, err := validate(m.Changes, allowed)
			if err != nil {
				return err
			}
			p.received.Add(int64(len(cs)))
			select {
			case ch <- item{changes: cs}:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		case m.Checkpoint != nil:
			if !json.Valid(m.Checkpoint) {
				return errors.New("the connector sent a checkpoint that is not JSON")
			}
			select {
			case ch <- item{checkpoint: m.Checkpoint}:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		case m.Progress != nil:
			p.progress.set(s.cfg.Name, name, m.Progress.Model, m.Progress.Done, m.Progress.Total)
		case m.Log != nil:
			args := make([]interface{}, 0, len(m.Log.Fields))
			for _, f := range m.Log.Fields {
				if rc.connection != "" {
					f = rc.redact.Replace(f)
				}
				args = append(args, f)
			}
			msg := m.Log.Message
			if rc.connection != "" {
				msg = rc.redact.Replace(msg)
			}
			log.Log(m.Log.Level, msg, args...)
			if m.Log.Level >= hclog.Warn {
				s.l.event(store.Event{Type: "plugin.log", Run: p.run.ID, Source: s.cfg.Name, Sync: name, Connection: rc.connection, Message: msg,
					Fields: map[string]string{"level": m.Log.Level.String()}})
			}
		}
		return nil
	})
	close(ch)
	werr := <-applyErr
	if syncErr != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		return syncErr
	}
	return werr
}

// validate checks a batch from a plugin: declared models only, ids present
// and bounded, records JSON objects within the size limit.
func validate(in []plugin.Change, allowed map[string]bool) ([]store.Change, error) {
	out := make([]store.Change, len(in))
	for i := range in {
		c := &in[i]
		// Saves must be of a declared model. Deletes may name a model the
		// connector no longer declares (a files source whose file vanished),
		// or none at all (a delete by id, resolved across the source's
		// models): they can only remove that source's own records.
		if !allowed[c.Model] && !c.Delete {
			return nil, fmt.Errorf("the connector sent a record of model %q, which this sync does not declare", c.Model)
		}
		if c.ID == "" {
			return nil, fmt.Errorf("the connector sent a %s record without an id", c.Model)
		}
		if len(c.ID) > MaxIDBytes {
			return nil, fmt.Errorf("the connector sent a %s record whose id is longer than %d bytes", c.Model, MaxIDBytes)
		}
		if !c.Delete {
			if len(c.Data) > MaxRecordBytes {
				return nil, fmt.Errorf("record %s/%s is %d bytes, more than the limit of %d", c.Model, c.ID, len(c.Data), MaxRecordBytes)
			}
			// The store checks the whole JSON of what it writes, reserved
			// _metadata key included, in the walk that validates it (an
			// unchanged record was checked when first stored); here only
			// its shape.
			d := bytes.TrimSpace(c.Data)
			if len(d) < 2 || d[0] != '{' || d[len(d)-1] != '}' {
				return nil, fmt.Errorf("record %s/%s is not a JSON object", c.Model, c.ID)
			}
			c.Data = d
		}
		out[i] = store.Change{Model: c.Model, ID: c.ID, Data: c.Data, Delete: c.Delete}
	}
	return out, nil
}

// releaseSlots gives back a run's slots (while it waits to retry).
func (l *layer) releaseSlots(p *pending) {
	l.mu.Lock()
	held := p.slots
	p.slots = false
	l.mu.Unlock()
	if held {
		l.e.limits.release(l.runSources(p))
	}
}

// acquireSlots takes a run's slots again after its backoff.
func (l *layer) acquireSlots(ctx context.Context, p *pending) error {
	if err := l.e.limits.acquire(ctx, l.runSources(p)); err != nil {
		return err
	}
	l.mu.Lock()
	p.slots = true
	l.mu.Unlock()
	return nil
}
