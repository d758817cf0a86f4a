package notify_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/synclayer/synclayer/core/notify"
	"github.com/synclayer/synclayer/core/store"
)

// TestRedeliverDuringAnAttemptIsNotLost: a retry asked for by hand while an
// attempt is in flight gets an attempt of its own, whatever the outcome of
// the one in flight: its last failure (which would fail the delivery) or
// a success.
func TestRedeliverDuringAnAttemptIsNotLost(t *testing.T) {
	for _, first := range []int{http.StatusServiceUnavailable, http.StatusOK} {
		t.Run(http.StatusText(first), func(t *testing.T) {
			rc := newReceiver(t)
			inFlight := make(chan struct{})
			release := make(chan struct{})
			rc.answer(func(r received, w http.ResponseWriter) {
				if r.Seen == 0 {
					close(inFlight)
					<-release
					w.WriteHeader(first)
					return
				}
				w.WriteHeader(http.StatusNoContent)
			})
			m := notify.NewMetrics()
			// No retries: a failed first attempt alone would fail the
			// delivery.
			f := newFixture(t, notify.Options{Schedule: []time.Duration{}, Metrics: m}, rc.notify("app"))
			f.start()
			id := f.enqueue("sync.completed") + ".app"
			<-inFlight
			if _, err := f.db.RedeliverDelivery(id); err != nil {
				t.Fatal(err)
			}
			close(release)
			d := f.waitState(id, store.DeliveryDelivered)
			waitFor(t, "two attempts", func() bool { d = f.get(id); return len(d.Attempts) == 2 })
			if want := http.StatusText(first); statuses(d) != strconv.Itoa(first)+",204" {
				t.Fatalf("attempts %s, want %s then the retry's 204 (%s)", statuses(d), strconv.Itoa(first), want)
			}
			if n := len(rc.requests()); n != 2 {
				t.Fatalf("%d requests, want 2", n)
			}
			if d.Redeliveries != 1 {
				t.Errorf("redeliveries %d, want 1", d.Redeliveries)
			}
			if got := testutil.ToFloat64(m.Attempts.WithLabelValues("cat", "app")); got != 2 {
				t.Errorf("synclayer_delivery_attempts_total %v, want 2", got)
			}
			wantFail := 0.0
			if first != http.StatusOK {
				wantFail = 1
			}
			if got := testutil.ToFloat64(m.Failures.WithLabelValues("cat", "app")); got != wantFail {
				t.Errorf("synclayer_delivery_failures_total %v, want %v", got, wantFail)
			}
		})
	}
}

// TestQueueMetrics: the delivery queue's depth and the age of its oldest
// delivery, per layer, present at zero before anything is queued.
func TestQueueMetrics(t *testing.T) {
	rc := newReceiver(t)
	rc.answer(func(_ received, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
	m := notify.NewMetrics()
	reg := prometheus.NewRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, notify.Options{Schedule: []time.Duration{time.Hour}, Metrics: m}, rc.notify("app"))
	f.start()
	sample := func(name string) (float64, bool) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				for _, s := range mf.GetMetric() {
					if hasLabel(s.GetLabel(), "layer", "cat") {
						if s.GetGauge() != nil {
							return s.GetGauge().GetValue(), true
						}
						return s.GetCounter().GetValue(), true
					}
				}
			}
		}
		return 0, false
	}
	waitFor(t, "the queue gauges", func() bool { _, ok := sample("synclayer_deliveries_pending"); return ok })
	for _, name := range []string{"synclayer_deliveries_pending", "synclayer_delivery_oldest_pending_age_seconds", "synclayer_delivery_attempts_total", "synclayer_delivery_failures_total"} {
		if v, ok := sample(name); !ok || v != 0 {
			t.Errorf("%s{layer=\"cat\"} is %v (present: %v) before any event, want 0", name, v, ok)
		}
	}
	id := f.enqueue("sync.completed") + ".app"
	// The first attempt fails; the retry is an hour away.
	waitFor(t, "a failed attempt", func() bool { return len(f.get(id).Attempts) == 1 })
	waitFor(t, "one pending delivery", func() bool { v, _ := sample("synclayer_deliveries_pending"); return v == 1 })
	waitFor(t, "the oldest pending delivery's age", func() bool {
		v, _ := sample("synclayer_delivery_oldest_pending_age_seconds")
		return v > 0
	})
	if v, _ := sample("synclayer_delivery_failures_total"); v != 1 {
		t.Errorf("failures %v, want 1", v)
	}
	// The receiver recovers, then the delivery is asked for again (the
	// other way round, the redelivery can reach it while it still fails).
	rc.answer(func(_ received, w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) })
	if _, err := f.db.RedeliverDelivery(id); err != nil {
		t.Fatal(err)
	}
	f.waitState(id, store.DeliveryDelivered)
	waitFor(t, "an empty queue", func() bool {
		p, _ := sample("synclayer_deliveries_pending")
		a, _ := sample("synclayer_delivery_oldest_pending_age_seconds")
		return p == 0 && a == 0
	})
	if t.Failed() {
		var b strings.Builder
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			b.WriteString(mf.String() + "\n")
		}
		t.Log(b.String())
	}
}

func hasLabel(labels []*dto.LabelPair, name, value string) bool {
	for _, l := range labels {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
