// Package engine runs syncs: it prepares each layer's sources (plugin
// process, description, decoded configuration), takes triggers, queues and
// coalesces runs, drives plugins through a run, stages their changes and
// publishes each completed run as one revision. It keeps the sync event log.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/synclayer/synclayer/core/cluster"
	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/internal/redact"
	"github.com/synclayer/synclayer/core/internal/seal"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
)

// Options configure an Engine.
type Options struct {
	Config  *config.Config
	Store   store.Store
	Plugins *plugin.Manager
	Logger  hclog.Logger
	Metrics *Metrics // nil: a fresh set, not registered anywhere
	// Redactor collects the secrets of the configuration (sensitive config
	// values of every source) and keeps them out of run errors and events;
	// give the same one to the host's log output. nil: a private one.
	Redactor *redact.Redactor
	// Cluster, when set, makes this engine one of the hosts that share a
	// PostgreSQL (SPEC §16): Start opens a core/cluster Cluster with these
	// options, and the layers' runs, schedules and webhook inboxes go
	// through it instead of this process's queue, dispatcher and scheduler
	// (see cluster.go). Set Pool and HostID; Runner and NewRunID are the
	// engine's own; MaxRuns defaults to the service's max_concurrent_runs;
	// Logger to the engine's. Stop closes the Cluster (the pool stays
	// open). nil: one host, everything in this process.
	Cluster *cluster.Options
}

// Engine owns the layers of a configuration at run time.
type Engine struct {
	cfg     *config.Config
	store   store.Store
	plugins *plugin.Manager
	log     hclog.Logger
	metrics *Metrics
	redact  *redact.Redactor

	// clusterOpts is Options.Cluster; cluster is the Cluster Start opened
	// with it (nil before, and always without clusterOpts).
	clusterOpts *cluster.Options
	cluster     atomic.Pointer[cluster.Cluster]

	layers map[string]*layer
	order  []string
	// limits bounds the runs in progress on the host and per source.
	limits *limiter
	// sealer seals connection configs at rest (nil until a source with
	// connections needs it).
	sealer *seal.Sealer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.RWMutex
	ready bool
	// emptyStore is true when Start found no layer in the store.
	emptyStore bool
	// stopped is set by Stop: a stopped engine queues nothing (a trigger
	// that reaches it during a reload would wait for the next start).
	stopped bool
}

// Errors the API maps to statuses.
var (
	ErrUnknownLayer  = errors.New("unknown layer")
	ErrUnknownSource = errors.New("unknown source")
	ErrUnknownSync   = errors.New("unknown sync")
	ErrUnknownRun    = errors.New("unknown run")
	ErrNotReady      = errors.New("layer is not ready")
	// ErrUnknownConnection: no such connection of the source.
	ErrUnknownConnection = errors.New("unknown connection")
)

// New builds an engine for a loaded configuration. Nothing starts until
// Start.
func New(opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	if opts.Redactor == nil {
		opts.Redactor = redact.New()
	}
	e := &Engine{
		cfg:     opts.Config,
		store:   opts.Store,
		plugins: opts.Plugins,
		log:     opts.Logger,
		metrics: opts.Metrics,
		redact:  opts.Redactor,
		layers:  map[string]*layer{},

		clusterOpts: opts.Cluster,
	}
	e.limits = newLimiter(opts.Config.Service.MaxConcurrentRuns, e.kickAll)
	for _, lc := range opts.Config.Layers {
		l := &layer{e: e, cfg: lc, log: e.log.With("layer", lc.Name), wake: make(chan struct{}, 1), events: make(chan store.Event, 4096), eventsSync: make(chan chan struct{}),
			running: map[string]*pending{}, schedWake: make(chan struct{}, 1)}
		for _, sc := range lc.Sources {
			l.sources = append(l.sources, &source{l: l, cfg: sc, log: l.log.With("source", sc.Name)})
		}
		e.layers[lc.Name] = l
		e.order = append(e.order, lc.Name)
	}
	return e, nil
}

// Start opens every layer, starts and describes every source's plugin,
// checks the config blocks against the connectors' schemas, and queues the
// first run of new layers and of layers whose configuration changed.
func (e *Engine) Start(ctx context.Context) error {
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if names, err := e.store.LayerNames(); err == nil {
		e.emptyStore = len(names) == 0
	}
	var errs []error
	for _, name := range e.order {
		l := e.layers[name]
		db, err := e.store.Layer(name)
		if err != nil {
			return err
		}
		l.db = db
		db.SetRetention(l.cfg.KeepRevisions, l.cfg.KeepFor)
		db.SetInboxLimit(l.cfg.InboxLimit)
		l.open.Store(true) // publishes l.db to handlers (see layer)
		e.wg.Add(1)
		go l.eventWriter()
		for _, s := range l.sources {
			if err := s.prepare(ctx); err != nil {
				errs = append(errs, err)
			}
			if s.cfg.Connections {
				if err := s.loadConnections(); err != nil {
					return err
				}
			}
		}
		// After prepare: the sync.failed events of interrupted runs need
		// the sources' descriptions. (In a cluster, River keeps the queued
		// runs and rescues the interrupted ones.)
		if e.clusterOpts == nil {
			if err := l.recoverRuns(); err != nil {
				return err
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, name := range e.order {
		l := e.layers[name]
		if err := l.setFieldIndexes(); err != nil {
			return err
		}
		if e.clusterOpts != nil {
			continue // startCluster starts the layer, once the cluster is open
		}
		e.wg.Add(4)
		go l.worker()
		go l.pruneLoop()
		go l.scheduleLoop()
		go l.inboxLoop()
		for _, s := range l.sources {
			e.wg.Add(1)
			go s.watchLoop()
		}
		if err := l.initialRun(); err != nil {
			return err
		}
	}
	if e.clusterOpts != nil {
		if err := e.startCluster(ctx); err != nil {
			return err
		}
	}
	e.wg.Add(1)
	go e.idleLoop()
	e.mu.Lock()
	e.ready = true
	e.mu.Unlock()
	e.metrics.observe(e)
	return nil
}

// Ready tells whether every layer is open and every plugin described.
func (e *Engine) Ready() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.ready
}

// Stop cancels running syncs, waits for the workers and stops the plugins.
// Staged changes of a cancelled run are rolled back; the run is queued
// again on the next start (it was never published).
func (e *Engine) Stop(ctx context.Context) {
	e.mu.Lock()
	e.ready, e.stopped = false, true
	e.mu.Unlock()
	if c := e.cluster.Load(); c != nil {
		// First, while the engine still runs: the runs it interrupts
		// (cause cluster.ErrClosed) go back to River's queue, for another
		// host or the next start.
		if err := c.Close(ctx); err != nil {
			e.log.Warn("shutdown: the cluster did not stop cleanly", "error", err)
		}
	}
	if e.cancel != nil {
		e.cancel()
	}
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		e.log.Warn("shutdown: runs did not stop in time")
	}
	for _, l := range e.layers {
		if l.db != nil {
			l.flushEvents()
		}
	}
	e.plugins.Shutdown()
}

// kickAll wakes every layer's dispatcher (run slots were freed).
func (e *Engine) kickAll() {
	for _, l := range e.layers {
		l.kick()
	}
}

func (e *Engine) layer(name string) (*layer, error) {
	l, ok := e.layers[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownLayer, name)
	}
	if !l.open.Load() {
		// Start has not opened its store yet (the HTTP server answers
		// before the engine has started).
		return nil, fmt.Errorf("%w: %q", ErrNotReady, name)
	}
	return l, nil
}

// LayerNames returns the configured layers in file order.
func (e *Engine) LayerNames() []string { return append([]string(nil), e.order...) }

// layer is one configured layer at run time.
type layer struct {
	// open is set once Start has set db; handlers look it up through
	// Engine.layer, which checks open first.
	open    atomic.Bool
	e       *Engine
	cfg     *config.Layer
	log     hclog.Logger
	db      store.Layer
	sources []*source

	// events feeds the event writer; eventsSync asks it to write what is
	// queued and close the channel sent (syncEvents).
	events     chan store.Event
	eventsSync chan chan struct{}

	mu      sync.Mutex
	queue   []*pending           // waiting runs, oldest first
	waiting map[waitKey]*pending // waiting runs by sync (queue.go)
	running map[string]*pending  // by run id
	wake    chan struct{}

	// clusterMu orders, on this host, a clustered run's queueing (River,
	// then its queued record) before its start (cluster.go).
	clusterMu sync.Mutex

	// The schedule (schedule.go): every scheduled sync by due time.
	nextMu    sync.Mutex
	sched     map[store.SyncRef]*schedItem
	heap      schedHeap
	schedWake chan struct{}
}

func (l *layer) source(name string) *source {
	for _, s := range l.sources {
		if s.cfg.Name == name {
			return s
		}
	}
	return nil
}

// source is one configured source: its plugin process and what the
// connector said about it.
type source struct {
	l   *layer
	cfg *config.Source
	log hclog.Logger

	mu        sync.Mutex
	inst      *plugin.Instance
	desc      *plugin.Description // for the current configuration
	configRaw []byte              // the evaluated config block, JSON
	hash      string
	// conns are the source's connections (connections = true), by id.
	conns map[string]*conn
	// lastUse is when a call of the plugin last ended (idle stop).
	lastUse time.Time
	inUse   int

	// connMu serializes the changes of the source's connections.
	connMu sync.Mutex
}

// dir is the folder of the file that declares the source: the plugin's
// working directory.
func (s *source) dir() string {
	if f := s.cfg.Range.Filename; f != "" {
		if abs, err := filepath.Abs(filepath.Dir(f)); err == nil {
			return abs
		}
	}
	return "."
}

// acquire returns a running plugin process, starting one if there is none
// or the last one died, and holds it in use (the idle reaper leaves it
// alone) until release is called.
func (s *source) acquire(ctx context.Context) (inst *plugin.Instance, release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, err = s.instanceLocked(ctx)
	if err != nil {
		return nil, nil, err
	}
	s.inUse++
	var once sync.Once
	return inst, func() { once.Do(func() { s.busy(-1) }) }, nil
}

// instanceLocked is acquire's start of the process. Call with s.mu held.
func (s *source) instanceLocked(ctx context.Context) (*plugin.Instance, error) {
	s.lastUse = time.Now()
	if s.inst != nil && !s.inst.Exited() {
		return s.inst, nil
	}
	restart := s.inst != nil
	if s.inst != nil {
		s.inst.Kill()
		s.inst = nil
	}
	inst, err := s.l.e.plugins.Launch(ctx, plugin.LaunchSpec{Plugin: s.cfg.Plugin, Layer: s.l.cfg.Name, Source: s.cfg.Name, Dir: s.dir(), MemoryLimit: s.cfg.MemoryLimit})
	if err != nil {
		return nil, fmt.Errorf("layer %q source %q: %w", s.l.cfg.Name, s.cfg.Name, err)
	}
	s.l.e.metrics.PluginStarts.WithLabelValues(s.cfg.Plugin).Inc()
	if restart {
		s.l.e.metrics.PluginRestarts.WithLabelValues(s.cfg.Plugin).Inc()
	}
	s.inst = inst
	s.lastUse = time.Now()
	return inst, nil
}

// busy counts the calls in progress of the source's plugin (acquire adds
// one, its release takes it back): the idle reaper leaves a busy plugin
// alone.
func (s *source) busy(delta int) {
	s.mu.Lock()
	s.inUse += delta
	s.lastUse = time.Now()
	s.mu.Unlock()
}

// stopIfIdle stops the plugin process when nothing used it for idle.
func (s *source) stopIfIdle(idle time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inst == nil || s.inUse > 0 || time.Since(s.lastUse) < idle {
		return
	}
	if s.desc != nil && s.desc.Watches {
		return // a watching plugin streams for good
	}
	s.log.Debug("stopping an idle plugin process; it starts again on demand", "idle", idle)
	s.inst.Kill()
	s.inst = nil
}

// idleLoop stops plugin processes idle for the service's
// plugin_idle_timeout.
func (e *Engine) idleLoop() {
	defer e.wg.Done()
	idle := e.cfg.Service.PluginIdleTimeout
	if idle <= 0 {
		return
	}
	tick := time.NewTicker(min(max(idle/4, 100*time.Millisecond), 30*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-tick.C:
		}
		for _, name := range e.order {
			for _, s := range e.layers[name].sources {
				s.stopIfIdle(idle)
			}
		}
	}
}

// prepare starts the plugin, decodes the config block against its schema
// and learns the syncs and models of this configuration.
func (s *source) prepare(ctx context.Context) error {
	inst, release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	schema, err := inst.Describe(ctx, "", "", nil)
	if err != nil {
		return fmt.Errorf("layer %q source %q: describe: %w", s.l.cfg.Name, s.cfg.Name, err)
	}
	raw, diags := config.DecodeSourceConfig(s.cfg, schema.Config)
	if diags.HasErrors() {
		return &ConfigError{Diags: config.FormatDiagnostics(diags)}
	}
	s.l.e.redact.Add(config.SensitiveValues(s.cfg, schema.Config, raw)...)
	desc, err := inst.Describe(ctx, s.l.cfg.Name, s.cfg.Name, raw)
	if err != nil {
		// The connector refused the block: say where it is.
		return &ConfigError{Diags: config.FormatDiagnostics(hcl.Diagnostics{config.SourceDiagnostic(s.cfg, "Invalid config",
			fmt.Sprintf("Plugin %q refused the config block of source %q (layer %q): %s", s.cfg.Plugin, s.cfg.Name, s.l.cfg.Name, s.l.e.redact.Replace(err.Error())))})}
	}
	desc.Config = schema.Config
	if err := checkSyncBlocks(s.cfg, desc); err != nil {
		return err
	}
	s.mu.Lock()
	s.configRaw = raw
	s.desc = desc
	s.hash = config.SourceHash(s.cfg.Plugin, raw, s.cfg.Syncs)
	s.mu.Unlock()
	return nil
}

// ConfigError carries configuration diagnostics found once plugins were
// described (a config block that does not fit the connector's schema).
type ConfigError struct{ Diags string }

func (e *ConfigError) Error() string { return e.Diags }

func checkSyncBlocks(sc *config.Source, d *plugin.Description) error {
	var names []string
	for _, y := range d.Syncs {
		names = append(names, y.Name)
	}
	var msgs []string
	for _, y := range sc.Syncs {
		if y.Cron != "" {
			if _, err := parseCron(y.Cron); err != nil {
				msgs = append(msgs, fmt.Sprintf("%s: error: Invalid cron expression; sync %q: %v (five fields: minute hour day-of-month month day-of-week, or @hourly, @daily, …)",
					rangeString(y.Range.Filename, y.Range.Start.Line, y.Range.Start.Column), y.Name, err))
			}
		}
		spec := d.Sync(y.Name)
		if spec == nil {
			msgs = append(msgs, fmt.Sprintf("%s: error: Unknown sync; source %q (plugin %q) has no sync %q; its syncs are: %s.%s",
				rangeString(y.Range.Filename, y.Range.Start.Line, y.Range.Start.Column), sc.Name, sc.Plugin, y.Name, strings.Join(names, ", "), config.DidYouMean(y.Name, names)))
			continue
		}
		for _, m := range y.Models {
			if !contains(spec.Models, m) {
				msgs = append(msgs, fmt.Sprintf("%s: error: Unknown model; sync %q of source %q has no model %q; its models are: %s.%s",
					rangeString(y.Range.Filename, y.Range.Start.Line, y.Range.Start.Column), y.Name, sc.Name, m, strings.Join(spec.Models, ", "), config.DidYouMean(m, spec.Models)))
			}
		}
	}
	if len(msgs) > 0 {
		return &ConfigError{Diags: strings.Join(msgs, "\n")}
	}
	return nil
}

func rangeString(file string, line, col int) string { return fmt.Sprintf("%s:%d:%d", file, line, col) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// newID returns a time-ordered id with 64 random bits: prefix_<time><rand>.
func newID(prefix string) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%s_%012x%s", prefix, time.Now().UnixMilli(), hex.EncodeToString(b[:]))
}

// Validate starts and describes every source's plugin and checks the config
// blocks against the connectors' schemas, without opening the store. The
// plugins are stopped afterwards.
func (e *Engine) Validate(ctx context.Context) error {
	defer e.plugins.Shutdown()
	var errs []error
	for _, name := range e.order {
		for _, s := range e.layers[name].sources {
			if err := s.prepare(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
