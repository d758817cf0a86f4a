package notify

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus metrics of outbound deliveries. Register them
// once; a Notifier updates them.
type Metrics struct {
	// Attempts counts delivery attempts by layer and endpoint; Failures
	// those of them that got no 2xx answer (errors, timeouts, 3xx to 5xx).
	Attempts *prometheus.CounterVec
	Failures *prometheus.CounterVec

	pendingDesc, oldestDesc *prometheus.Desc

	mu     sync.Mutex
	queues map[string]queueStat
	now    func() time.Time
}

// queueStat is a layer's outbox as its delivery loop last saw it.
type queueStat struct {
	pending int
	oldest  time.Time // creation of the oldest pending delivery; zero: none
}

// NewMetrics creates the delivery metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "synclayer_delivery_attempts_total",
			Help: "Outbound event delivery attempts, by layer and notify endpoint.",
		}, []string{"layer", "endpoint"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "synclayer_delivery_failures_total",
			Help: "Outbound event delivery attempts that got no 2xx answer, by layer and notify endpoint.",
		}, []string{"layer", "endpoint"}),
		pendingDesc: prometheus.NewDesc("synclayer_deliveries_pending",
			"Outbound deliveries waiting for an attempt or a retry (the delivery queue), by layer.", []string{"layer"}, nil),
		oldestDesc: prometheus.NewDesc("synclayer_delivery_oldest_pending_age_seconds",
			"Age of the oldest outbound delivery still pending, by layer; 0 when none is.", []string{"layer"}, nil),
		queues: map[string]queueStat{},
		now:    time.Now,
	}
}

// Register adds the metrics to a registry.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.Attempts, m.Failures, m} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Describe implements prometheus.Collector for the queue gauges.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.pendingDesc
	ch <- m.oldestDesc
}

// Collect implements prometheus.Collector for the queue gauges: the age
// is taken at scrape time.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for layer, q := range m.queues {
		ch <- prometheus.MustNewConstMetric(m.pendingDesc, prometheus.GaugeValue, float64(q.pending), layer)
		age := 0.0
		if !q.oldest.IsZero() {
			age = max(now.Sub(q.oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(m.oldestDesc, prometheus.GaugeValue, age, layer)
	}
}

func (m *Metrics) setQueue(layer string, pending int, oldest time.Time) {
	m.mu.Lock()
	m.queues[layer] = queueStat{pending: pending, oldest: oldest}
	m.mu.Unlock()
}

func (m *Metrics) dropQueue(layer string) {
	m.mu.Lock()
	delete(m.queues, layer)
	m.mu.Unlock()
}

// endpoint makes the counters of an endpoint present (at zero) from the
// start.
func (m *Metrics) endpoint(layer, name string) {
	m.Attempts.WithLabelValues(layer, name)
	m.Failures.WithLabelValues(layer, name)
}

func (m *Metrics) attempt(layer, endpoint string, ok bool) {
	m.Attempts.WithLabelValues(layer, endpoint).Inc()
	if !ok {
		m.Failures.WithLabelValues(layer, endpoint).Inc()
	}
}
