package engine

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the engine's Prometheus metrics.
type Metrics struct {
	Runs          *prometheus.CounterVec
	Records       *prometheus.CounterVec
	PluginStarts  *prometheus.CounterVec
	PluginCrashes *prometheus.CounterVec
}

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
	}
}

// Register adds the metrics to a registry.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.Runs, m.Records, m.PluginStarts, m.PluginCrashes} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
