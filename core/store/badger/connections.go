package badger

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

func connectionKey(source, id string) []byte { return strKey(pfxConnection, source, id) }

// PutConnection stores a connection, with outbound events in the same
// commit. With create, it fails with ErrExists when the connection exists.
func (l *Layer) PutConnection(c *Connection, create bool, announce ...Delivery) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	err = l.setLatest(func(txn *badger.Txn) error {
		key := connectionKey(c.Source, c.ID)
		if create {
			if _, err := txn.Get(key); err == nil {
				return fmt.Errorf("connection %q of source %q: %w", c.ID, c.Source, ErrExists)
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
		}
		if err := txn.Set(key, b); err != nil {
			return err
		}
		return putDeliveries(txn, announce)
	})
	if err == nil && len(announce) > 0 {
		l.signalOutbox()
	}
	return err
}

// GetConnection returns one connection, or ErrNotFound.
func (l *Layer) GetConnection(source, id string) (*Connection, error) {
	b, err := l.getLatest(connectionKey(source, id))
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, ErrNotFound
	}
	var c Connection
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("store: connection %s/%s: %w", source, id, err)
	}
	return &c, nil
}

// Connections calls fn with the connections of a source (every source when
// source is ""), in source and id order, starting after the id after (of
// source); fn returns false to stop.
func (l *Layer) Connections(source, after string, fn func(c *Connection) bool) error {
	return l.viewLatest(func(txn *badger.Txn) error {
		pfx := []byte{pfxConnection}
		if source != "" {
			pfx = append(strKey(pfxConnection, source), 0)
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx, PrefetchValues: true})
		defer it.Close()
		start := pfx
		if after != "" && source != "" {
			start = append(connectionKey(source, after), 0)
		}
		for it.Seek(start); it.Valid(); it.Next() {
			var c Connection
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &c) }); err != nil {
				return fmt.Errorf("store: connection %q: %w", it.Item().Key(), err)
			}
			if !fn(&c) {
				return nil
			}
		}
		return nil
	})
}

// DeleteConnection removes a connection in one revision: its records
// become deleted (soft, as any delete), and its checkpoints and the
// connection itself go in the revision's commit. Outbound events come
// from info.Announce as for any revision.
func (l *Layer) DeleteConnection(info PublishInfo, source, id string) (Revision, error) {
	if l.closed.Load() {
		return Revision{}, ErrClosed
	}
	rev, err := l.deleteConnection(info, source, id)
	return l.madeVisible(rev, err, "delete connection "+source+"/"+id)
}

// deleteConnection commits a connection's removal as a revision, under
// l.pub.
func (l *Layer) deleteConnection(info PublishInfo, source, id string) (Revision, error) {
	l.pub.Lock()
	defer l.pub.Unlock()
	if b, err := l.getLatest(connectionKey(source, id)); err != nil {
		return Revision{}, err
	} else if b == nil {
		return Revision{}, ErrNotFound
	}
	key := SourceKey(source, id)
	d, err := l.beginDirect(0)
	if err != nil {
		return Revision{}, err
	}
	defer d.discard()
	// The connection's live records, as published.
	pub := l.db.NewTransactionAt(d.ts-1, false)
	defer pub.Discard()
	pfx := append(append([]byte{pfxIndex}, key...), 0)
	it := pub.NewIterator(badger.IteratorOptions{Prefix: pfx})
	for it.Rewind(); it.Valid(); it.Next() {
		var ie indexEntry
		if err := it.Item().Value(func(v []byte) (err error) { ie, err = decodeIndex(v); return }); err != nil {
			it.Close()
			return d.fail(err)
		}
		if ie.deleted {
			continue
		}
		_, model, rid := splitIndexKey(it.Item().Key())
		c := Change{Model: model, ID: rid, Delete: true}
		if err := d.apply(key, WriterOptions{}, &c, shapeUnchecked); err != nil {
			it.Close()
			return d.fail(err)
		}
	}
	it.Close()
	return d.finish(info, func(txn *badger.Txn) error {
		cps := append(append([]byte{pfxCheckpoint}, key...), 0)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: cps})
		var keys [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		it.Close()
		keys = append(keys, connectionKey(source, id))
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
