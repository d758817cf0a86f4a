package store

import "time"

// Delivery states.
const (
	DeliveryPending   = "pending"   // waiting for its next attempt
	DeliveryDelivered = "delivered" // an attempt got a 2xx
	DeliveryFailed    = "failed"    // the retry schedule ran out
	DeliveryStopped   = "stopped"   // the endpoint answered 410 Gone
)

// Delivery is one event on its way to one notify endpoint.
type Delivery struct {
	// EventID is the event's id, sent as webhook-id: the same on every
	// attempt and for every endpoint.
	EventID  string    `json:"event"`
	Endpoint string    `json:"endpoint"`
	Type     string    `json:"type"`
	Body     []byte    `json:"-"`
	Created  time.Time `json:"created_at"`
	State    string    `json:"state"`
	NextAt   time.Time `json:"next_attempt_at,omitzero"`
	Attempts []Attempt `json:"attempts"`
	// Redeliveries counts the retries asked for by hand: a delivery worker
	// that sees it change under an attempt in flight knows a retry came.
	Redeliveries int `json:"redeliveries,omitempty"`
}

// ID is the delivery's id in the API: event id and endpoint.
func (d *Delivery) ID() string { return d.EventID + "." + d.Endpoint }

// Attempt is one try to deliver an event.
type Attempt struct {
	At        time.Time `json:"at"`
	Status    int       `json:"status,omitempty"`
	LatencyMS int64     `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
}
