package engine

import (
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// AuditDeliveryRetried is the audit action of a redelivery asked for by
// hand (the API's retry, the dashboard's Redeliver).
const AuditDeliveryRetried = "delivery.retried"

// Redeliver makes a delivery of a layer pending again, due now, whatever
// its state, and writes it to the audit log. Its event goes out with the
// same webhook-id. store.ErrNotFound when the layer has no such delivery.
func (e *Engine) Redeliver(layerName, id string) (*store.Delivery, error) {
	l, err := e.layer(layerName)
	if err != nil {
		return nil, err
	}
	d, err := l.db.RedeliverDelivery(id)
	if err != nil {
		return nil, err
	}
	l.audit(AuditDeliveryRetried, map[string]string{"delivery": d.ID(), "event": d.EventID, "endpoint": d.Endpoint, "type": d.Type})
	return d, nil
}

// NextRuns tells when each scheduled sync of a layer is due next (paused
// ones included: their time passes without a run). Syncs without a
// schedule are absent; so is everything before the engine has started.
func (e *Engine) NextRuns(layerName string) (map[store.SyncRef]time.Time, error) {
	l, err := e.layer(layerName)
	if err != nil {
		return nil, err
	}
	if e.clusterOpts != nil {
		return l.nextRunsClustered(), nil
	}
	l.nextMu.Lock()
	defer l.nextMu.Unlock()
	out := map[store.SyncRef]time.Time{}
	for ref, it := range l.sched {
		if ref.Connection == "" { // connections: GetConnection
			out[ref] = it.at
		}
	}
	return out, nil
}
