package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/store"
)

// MaxDeliveriesLimit bounds one page of GET …/deliveries.
const MaxDeliveriesLimit = 1000

// AuditDeliveryRetried is the audit action of a redelivery asked for by hand.
const AuditDeliveryRetried = engine.AuditDeliveryRetried

var deliveryStates = []string{store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed, store.DeliveryStopped}

func (s *Server) deliveryRoutes() {
	s.handle("GET /v1/layers/{layer}/deliveries", s.listDeliveries)
	s.handle("POST /v1/layers/{layer}/deliveries/{id}/retry", s.retryDelivery)
}

// deliveryView is a delivery as the API shows it: the event, its endpoint,
// its state and every attempt.
type deliveryView struct {
	ID       string          `json:"id"`
	Event    string          `json:"event"`
	Endpoint string          `json:"endpoint"`
	Type     string          `json:"type"`
	State    string          `json:"state"`
	Created  time.Time       `json:"created_at"`
	NextAt   *time.Time      `json:"next_attempt_at"`
	Attempts []store.Attempt `json:"attempts"`
	// Payload is the event's JSON body.
	Payload json.RawMessage `json:"payload,omitempty"`
}

func viewDelivery(d *store.Delivery) deliveryView {
	v := deliveryView{ID: d.ID(), Event: d.EventID, Endpoint: d.Endpoint, Type: d.Type, State: d.State, Created: d.Created, Attempts: d.Attempts}
	if v.Attempts == nil {
		v.Attempts = []store.Attempt{}
	}
	if d.State == store.DeliveryPending && !d.NextAt.IsZero() {
		at := d.NextAt
		v.NextAt = &at
	}
	if json.Valid(d.Body) {
		v.Payload = d.Body
	}
	return v
}

// listDeliveries answers GET /v1/layers/{layer}/deliveries?after=&limit=&state=:
// deliveries in event order, after the delivery id `after`, at most limit,
// only those in the states of the comma list `state` when given. `next`
// is the id to pass as `after` for the next page (null at the end).
func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) {
	db, err := s.eng().Store(r.PathValue("layer"))
	if err != nil {
		s.engineError(w, err)
		return
	}
	limit, ok := intParam(w, r, "limit", DefaultLimit, 1, MaxDeliveriesLimit)
	if !ok {
		return
	}
	states := map[string]bool{}
	if v := r.URL.Query().Get("state"); v != "" {
		for _, st := range strings.Split(v, ",") {
			st = strings.ToLower(strings.TrimSpace(st))
			if !slices.Contains(deliveryStates, st) {
				writeError(w, http.StatusBadRequest, "bad_state", "state is a comma list of "+strings.Join(deliveryStates, ", "))
				return
			}
			states[st] = true
		}
	}
	pendingOnly := len(states) == 1 && states[store.DeliveryPending]
	out := []deliveryView{}
	after := r.URL.Query().Get("after")
	batch := int(max(limit, DefaultLimit))
	var next *string
	for {
		page, err := db.Deliveries(after, batch, pendingOnly)
		if err != nil {
			s.engineError(w, err)
			return
		}
		for _, d := range page {
			after = d.ID()
			if len(states) > 0 && !states[d.State] {
				continue
			}
			out = append(out, viewDelivery(d))
			if len(out) == int(limit) {
				break
			}
		}
		if len(out) == int(limit) {
			next = &after
			break
		}
		if len(page) < batch {
			break
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": out, "next": next})
}

// retryDelivery answers POST /v1/layers/{layer}/deliveries/{id}/retry: the
// delivery is pending again, due now, whatever its state; its event goes
// with the same webhook-id. 202: the attempt itself comes later.
func (s *Server) retryDelivery(w http.ResponseWriter, r *http.Request) {
	layer, id := r.PathValue("layer"), r.PathValue("id")
	d, err := s.eng().Redeliver(layer, id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "layer "+layer+" has no delivery "+id+"; GET /v1/layers/"+layer+"/deliveries lists them")
		return
	}
	if err != nil {
		s.engineError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"delivery": viewDelivery(d)})
}
