package engine

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/synclayer/synclayer/core/store"
)

// Metrics are the engine's Prometheus metrics: counters the engine moves
// as things happen, and gauges read from the running engine (the one
// started last) when /metrics is scraped. One set serves every engine of
// the host's life, across reloads.
type Metrics struct {
	Runs           *prometheus.CounterVec
	Records        *prometheus.CounterVec
	PluginStarts   *prometheus.CounterVec
	PluginCrashes  *prometheus.CounterVec
	PluginRestarts *prometheus.CounterVec

	engine atomic.Pointer[Engine]
	now    func() time.Time

	runsActive, revision, revisionsKept, inboxPending, inboxOldest, storeBytes, pluginProcs *prometheus.Desc
}

// Run states of the synclayer_runs gauge.
const (
	gaugeQueued  = "queued"
	gaugeRunning = "running"
)

// NewMetrics creates the engine's metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		Runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "synclayer_runs_total", Help: "Runs that ended, by layer and state.",
		}, []string{"layer", "state"}),
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "synclayer_records_written_total", Help: "Record changes published, by layer and action.",
		}, []string{"layer", "action"}),
		PluginStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "synclayer_plugin_starts_total", Help: "Plugin processes started, by plugin.",
		}, []string{"plugin"}),
		PluginCrashes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "synclayer_plugin_crashes_total", Help: "Plugin processes that died during a call, by plugin.",
		}, []string{"plugin"}),
		PluginRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "synclayer_plugin_restarts_total", Help: "Plugin processes started again because the one before had exited, by plugin.",
		}, []string{"plugin"}),
		now: time.Now,
		runsActive: prometheus.NewDesc("synclayer_runs",
			"Runs not yet ended, by layer and state (queued, running).", []string{"layer", "state"}, nil),
		revision: prometheus.NewDesc("synclayer_revision",
			"The current revision of a layer (the pinned one when pinned); 0 before the first.", []string{"layer"}, nil),
		revisionsKept: prometheus.NewDesc("synclayer_revisions_kept",
			"Revisions a layer keeps readable (keep_revisions, those younger than keep_for, the pinned one, those being paged).", []string{"layer"}, nil),
		inboxPending: prometheus.NewDesc("synclayer_inbox_pending",
			"Payload webhooks accepted (202) and not yet published, by layer.", []string{"layer"}, nil),
		inboxOldest: prometheus.NewDesc("synclayer_inbox_oldest_age_seconds",
			"Age of the oldest payload webhook not yet published, by layer; 0 when none waits.", []string{"layer"}, nil),
		storeBytes: prometheus.NewDesc("synclayer_store_bytes",
			"Bytes a layer's database takes on disk, by part: lsm (keys, index, small values) and vlog (record payloads). Refreshed about once a minute.", []string{"layer", "part"}, nil),
		pluginProcs: prometheus.NewDesc("synclayer_plugin_processes",
			"Plugin processes alive, by plugin.", []string{"plugin"}, nil),
	}
}

// Register adds the metrics to a registry.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.Runs, m.Records, m.PluginStarts, m.PluginCrashes, m.PluginRestarts, m} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// observe makes e the engine the gauges are read from, and makes every
// labelled counter of its layers and plugins present at zero.
func (m *Metrics) observe(e *Engine) {
	for _, name := range e.order {
		l := e.layers[name]
		for _, st := range []string{store.RunCompleted, store.RunFailed} {
			m.Runs.WithLabelValues(name, st)
		}
		for _, a := range []string{"added", "updated", "deleted"} {
			m.Records.WithLabelValues(name, a)
		}
		for _, s := range l.sources {
			m.PluginStarts.WithLabelValues(s.cfg.Plugin)
			m.PluginCrashes.WithLabelValues(s.cfg.Plugin)
			m.PluginRestarts.WithLabelValues(s.cfg.Plugin)
		}
	}
	m.engine.Store(e)
}

// Describe implements prometheus.Collector for the gauges.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.runsActive, m.revision, m.revisionsKept, m.inboxPending, m.inboxOldest, m.storeBytes, m.pluginProcs} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the gauges, read from the
// running engine now.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	e := m.engine.Load()
	if e == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	now := m.now()
	procs := map[string]int{}
	for _, name := range e.order {
		l := e.layers[name]
		l.mu.Lock()
		queued, running := len(l.queue), l.activeLocked()
		l.mu.Unlock()
		gauge(m.runsActive, float64(queued), name, gaugeQueued)
		gauge(m.runsActive, float64(running), name, gaugeRunning)
		for _, s := range l.sources {
			procs[s.cfg.Plugin] += s.liveProcesses()
		}
		db := l.db
		if db == nil {
			continue
		}
		var rev float64
		if r, ok := db.Current(); ok {
			rev = float64(r.Number)
		}
		gauge(m.revision, rev, name)
		gauge(m.revisionsKept, float64(db.KeptRevisions()), name)
		if n, oldest, err := db.InboxStats(); err == nil {
			age := 0.0
			if n > 0 && !oldest.IsZero() {
				age = max(now.Sub(oldest).Seconds(), 0)
			}
			gauge(m.inboxPending, float64(n), name)
			gauge(m.inboxOldest, age, name)
		}
		lsm, vlog := db.DiskSize()
		gauge(m.storeBytes, float64(lsm), name, "lsm")
		gauge(m.storeBytes, float64(vlog), name, "vlog")
	}
	for p, n := range procs {
		gauge(m.pluginProcs, float64(n), p)
	}
}

// liveProcesses is 1 when the source's plugin process runs, else 0. A
// source whose plugin is being started holds its lock for the start: it
// is counted at the next scrape rather than waited for.
func (s *source) liveProcesses() int {
	for range 20 {
		if s.mu.TryLock() {
			defer s.mu.Unlock()
			if s.inst != nil && !s.inst.Exited() {
				return 1
			}
			return 0
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0
}
