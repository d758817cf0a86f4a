package badger

import (
	"encoding/json"

	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The outbox holds outbound events until their endpoints have them. Events
// that announce a revision are written in the same commit as the revision
// (see PublishInfo.Announce): no revision goes unannounced and no
// announcement precedes its data.
//
//	o/<event id>\0<endpoint>   one delivery: the event for one endpoint

type storedDelivery struct {
	Delivery
	Body json.RawMessage `json:"body"`
}

func deliveryKey(eventID, endpoint string) []byte { return strKey(pfxOutbox, eventID, endpoint) }

func encodeDelivery(d *Delivery) ([]byte, error) {
	return json.Marshal(storedDelivery{Delivery: *d, Body: d.Body})
}

func decodeDelivery(b []byte) (*Delivery, error) {
	var sd storedDelivery
	if err := json.Unmarshal(b, &sd); err != nil {
		return nil, fmt.Errorf("decode delivery: %w", err)
	}
	d := sd.Delivery
	d.Body = []byte(sd.Body)
	return &d, nil
}

func putDeliveries(txn *badger.Txn, ds []Delivery) error {
	for i := range ds {
		d := &ds[i]
		if d.State == "" {
			d.State = DeliveryPending
		}
		if d.Created.IsZero() {
			d.Created = time.Now().UTC()
		}
		if d.NextAt.IsZero() {
			d.NextAt = d.Created
		}
		b, err := encodeDelivery(d)
		if err != nil {
			return err
		}
		if err := txn.Set(deliveryKey(d.EventID, d.Endpoint), b); err != nil {
			return err
		}
	}
	return nil
}

// Enqueue adds deliveries that announce no revision (sync.started,
// sync.failed, pins) to the outbox, durably, in one commit.
func (l *Layer) Enqueue(ds []Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	if err := l.setLatest(func(txn *badger.Txn) error { return putDeliveries(txn, ds) }); err != nil {
		return err
	}
	l.signalOutbox()
	return nil
}

// OutboxSignal is closed-and-replaced whenever deliveries are added, so a
// delivery worker can wait for work.
func (l *Layer) OutboxSignal() <-chan struct{} {
	l.outMu.Lock()
	defer l.outMu.Unlock()
	if l.outSig == nil {
		l.outSig = make(chan struct{})
	}
	return l.outSig
}

func (l *Layer) signalOutbox() {
	l.outMu.Lock()
	defer l.outMu.Unlock()
	if l.outSig != nil {
		close(l.outSig)
		l.outSig = nil
	}
}

// Deliveries returns deliveries in event order, after the given delivery
// id ("" from the start), at most limit. With pendingOnly, only those
// waiting for an attempt.
func (l *Layer) Deliveries(after string, limit int, pendingOnly bool) ([]*Delivery, error) {
	out := []*Delivery{}
	err := l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxOutbox}, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		start := []byte{pfxOutbox}
		if after != "" {
			start = append(deliveryKeyFromID(after), 0)
		}
		for it.Seek(start); it.Valid() && len(out) < limit; it.Next() {
			var d *Delivery
			err := it.Item().Value(func(v []byte) (err error) { d, err = decodeDelivery(v); return })
			if err != nil {
				return err
			}
			if pendingOnly && d.State != DeliveryPending {
				continue
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

func deliveryKeyFromID(id string) []byte {
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == '.' {
			return deliveryKey(id[:i], id[i+1:])
		}
	}
	return deliveryKey(id, "")
}

// GetDelivery returns one delivery by its id; ErrNotFound when unknown.
func (l *Layer) GetDelivery(id string) (*Delivery, error) {
	b, err := l.getLatest(deliveryKeyFromID(id))
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, ErrNotFound
	}
	return decodeDelivery(b)
}

// UpdateDelivery records an attempt and the delivery's new state.
func (l *Layer) UpdateDelivery(d *Delivery) error {
	return l.setLatest(func(txn *badger.Txn) error {
		b, err := encodeDelivery(d)
		if err != nil {
			return err
		}
		return txn.Set(deliveryKey(d.EventID, d.Endpoint), b)
	})
}

// RedeliverDelivery makes a delivery pending again, due now, and counts
// the redelivery, in one atomic step (see ModifyDelivery).
func (l *Layer) RedeliverDelivery(id string) (*Delivery, error) {
	d, err := l.ModifyDelivery(id, func(d *Delivery) error {
		d.State, d.NextAt = DeliveryPending, time.Now().UTC()
		d.Redeliveries++
		return nil
	})
	if err != nil {
		return nil, err
	}
	l.signalOutbox()
	return d, nil
}
