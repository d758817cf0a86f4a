package badger

import (
	"errors"

	"github.com/dgraph-io/badger/v4"
)

// ModifyDelivery reads a delivery, lets fn change it and writes it back,
// as one step: every outbox write commits under the layer's publisher
// lock, so no other write to the delivery falls between the read and the
// write (a redelivery asked for by hand and the record of an attempt in
// flight cannot overwrite each other). It returns the delivery as
// written; ErrNotFound when unknown. When fn returns an error nothing is
// written.
func (l *Layer) ModifyDelivery(id string, fn func(d *Delivery) error) (*Delivery, error) {
	var out *Delivery
	err := l.setLatest(func(txn *badger.Txn) error {
		key := deliveryKeyFromID(id)
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		var d *Delivery
		if err := item.Value(func(v []byte) (err error) { d, err = decodeDelivery(v); return }); err != nil {
			return err
		}
		if err := fn(d); err != nil {
			return err
		}
		b, err := encodeDelivery(d)
		if err != nil {
			return err
		}
		out = d
		return txn.Set(key, b)
	})
	return out, err
}
