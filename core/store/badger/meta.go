package badger

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Metadata names (m/ keys).
const (
	metaStaging = "staging" // the run staging in place, while it stages
	// metaPublishing is set while a direct publish too large for one
	// commit writes its changes in several.
	metaPublishing = "publishing"
)

func metaKey(name string) []byte { return strKey(pfxMeta, name) }

// getLatest returns a copy of the newest value of key, nil when absent.
func (l *Layer) getLatest(key []byte) ([]byte, error) {
	var out []byte
	err := l.viewLatest(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	return out, err
}

// Meta returns a layer metadata value (nil when unset).
func (l *Layer) Meta(name string) ([]byte, error) { return l.getLatest(metaKey("x/" + name)) }

// SetMeta sets a layer metadata value.
func (l *Layer) SetMeta(name string, value []byte) error {
	return l.setLatest(func(txn *badger.Txn) error { return txn.Set(metaKey("x/"+name), value) })
}

// DeleteMeta removes layer metadata values.
func (l *Layer) DeleteMeta(names ...string) error {
	return l.setLatest(func(txn *badger.Txn) error {
		for _, name := range names {
			if err := txn.Delete(metaKey("x/" + name)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Checkpoint returns the committed checkpoint of a source's sync, nil when
// there is none.
func (l *Layer) Checkpoint(source, sync string) ([]byte, error) {
	return l.getLatest(strKey(pfxCheckpoint, source, sync))
}

// ResetCheckpoint drops the committed checkpoint of a source's sync.
func (l *Layer) ResetCheckpoint(source, sync string) error {
	return l.setLatest(func(txn *badger.Txn) error { return txn.Delete(strKey(pfxCheckpoint, source, sync)) })
}

// AppendEvent adds an event to the log and returns it with its sequence
// number and time set.
func (l *Layer) AppendEvent(e Event) (Event, error) {
	es := []Event{e}
	err := l.AppendEvents(es)
	return es[0], err
}

// AppendEvents adds events to the log in one commit, setting their
// sequence numbers and (when zero) times.
func (l *Layer) AppendEvents(es []Event) error {
	defer l.signalEvents()
	return l.setLatest(func(txn *badger.Txn) error {
		for i := range es {
			e := &es[i]
			l.eventSeq++
			e.Seq = l.eventSeq
			if e.Time.IsZero() {
				e.Time = time.Now().UTC()
			}
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := txn.Set(u64Key(pfxEvent, e.Seq), b); err != nil {
				return err
			}
		}
		return nil
	})
}

// Events returns up to limit events with a sequence number above after.
func (l *Layer) Events(after uint64, limit int) ([]Event, error) {
	out := []Event{}
	err := l.viewCommitted(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxEvent}, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Seek(u64Key(pfxEvent, after+1)); it.Valid() && len(out) < limit; it.Next() {
			var e Event
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("decode event: %w", err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// PutRun saves a run record, and in the same commit the outbound events
// that announce its change (sync.started, sync.failed), so that one is
// never on disk without the other. Queued and running runs are also
// indexed (q/<run>), so that a start reads only those.
func (l *Layer) PutRun(r *Run, announce ...Delivery) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	err = l.setLatest(func(txn *badger.Txn) error {
		if err := txn.Set(strKey(pfxRun, r.ID), b); err != nil {
			return err
		}
		if err := putDeliveries(txn, announce); err != nil {
			return err
		}
		if r.State == RunQueued || r.State == RunRunning {
			return txn.Set(strKey(pfxActiveRun, r.ID), nil)
		}
		return txn.Delete(strKey(pfxActiveRun, r.ID))
	})
	if err == nil && len(announce) > 0 {
		l.signalOutbox()
	}
	return err
}

const metaActiveRuns = "activeruns"

// ActiveRuns returns the queued and running runs, by id. It reads the run
// index; a layer written before the index existed is scanned once and
// indexed.
func (l *Layer) ActiveRuns() ([]*Run, error) {
	done, err := l.getLatest(metaKey(metaActiveRuns))
	if err != nil {
		return nil, err
	}
	if done == nil {
		runs, err := l.Runs()
		if err != nil {
			return nil, err
		}
		var active []*Run
		for _, r := range runs {
			if r.State == RunQueued || r.State == RunRunning {
				active = append(active, r)
			}
		}
		err = l.setLatest(func(txn *badger.Txn) error {
			for _, r := range active {
				if err := txn.Set(strKey(pfxActiveRun, r.ID), nil); err != nil {
					return err
				}
			}
			return txn.Set(metaKey(metaActiveRuns), []byte("1"))
		})
		return active, err
	}
	var ids []string
	err = l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxActiveRun}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			ids = append(ids, string(k[1:]))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*Run, 0, len(ids))
	for _, id := range ids {
		r, err := l.GetRun(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// PruneRuns deletes the records of runs that finished before the cutoff
// and returns how many. Run ids start with their creation time (see
// RunIDTime), so the walk stops at the first run created after it.
func (l *Layer) PruneRuns(before time.Time) (int, error) {
	var keys [][]byte
	err := l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxRun}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if created, ok := RunIDTime(string(k[1:])); ok && !created.Before(before) {
				break
			}
			var r Run
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return err
			}
			if r.FinishedAt != nil && r.FinishedAt.Before(before) && r.State != RunQueued && r.State != RunRunning {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return l.deleteKeys(keys, nil)
}

// deleteKeys deletes keys in commits of up to 1,000, calling also (when
// set) in each commit with the chunk it deletes. It returns how many were
// deleted.
func (l *Layer) deleteKeys(keys [][]byte, also func(txn *badger.Txn, chunk [][]byte) error) (int, error) {
	for i := 0; i < len(keys); i += 1000 {
		chunk := keys[i:min(i+1000, len(keys))]
		if err := l.setLatest(func(txn *badger.Txn) error {
			for _, k := range chunk {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			if also != nil {
				return also(txn, chunk)
			}
			return nil
		}); err != nil {
			return i, err
		}
	}
	return len(keys), nil
}

// GetRun loads a run record; ErrNotFound when unknown.
func (l *Layer) GetRun(id string) (*Run, error) {
	b, err := l.getLatest(strKey(pfxRun, id))
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, ErrNotFound
	}
	var r Run
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode run %s: %w", id, err)
	}
	return &r, nil
}

// Runs returns every run record (order by id).
func (l *Layer) Runs() ([]*Run, error) {
	var out []*Run
	err := l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxRun}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var r Run
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return err
			}
			out = append(out, &r)
		}
		return nil
	})
	return out, err
}

// AppendAudit adds an entry to the layer's audit log.
func (l *Layer) AppendAudit(a AuditEntry) (AuditEntry, error) {
	err := l.setLatest(func(txn *badger.Txn) error {
		l.auditSeq++
		a.Seq = l.auditSeq
		a.Layer = l.name
		if a.Time.IsZero() {
			a.Time = time.Now().UTC()
		}
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		return txn.Set(u64Key(pfxAudit, a.Seq), b)
	})
	return a, err
}

// Audit returns up to limit audit entries with a sequence number above
// after, oldest first.
func (l *Layer) Audit(after uint64, limit int) ([]AuditEntry, error) {
	out := []AuditEntry{}
	err := l.viewCommitted(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxAudit}, PrefetchValues: true})
		defer it.Close()
		for it.Seek(u64Key(pfxAudit, after+1)); it.Valid() && len(out) < limit; it.Next() {
			var a AuditEntry
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &a) }); err != nil {
				return fmt.Errorf("decode audit entry: %w", err)
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

// lastSeq returns the highest sequence number under a u64-keyed prefix.
func (l *Layer) lastSeq(prefix byte) (uint64, error) {
	var seq uint64
	err := l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}, Reverse: true})
		defer it.Close()
		it.Seek([]byte{prefix, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		if it.Valid() {
			seq = binary.BigEndian.Uint64(it.Item().Key()[1:])
		}
		return nil
	})
	return seq, err
}

// PruneEvents deletes events older than the cutoff and returns how many.
// The sequence numbers of later events go on from the highest ever
// handed out, even when every event was pruned (clients poll with after=).
func (l *Layer) PruneEvents(before time.Time) (int, error) {
	return l.pruneLog(pfxEvent, metaEventSeq, before)
}

// PruneAudit deletes audit entries older than the cutoff and returns how
// many.
func (l *Layer) PruneAudit(before time.Time) (int, error) {
	return l.pruneLog(pfxAudit, metaAuditSeq, before)
}

// Where the highest sequence number of a log is kept once its entries are
// pruned.
const (
	metaEventSeq = "eventseq"
	metaAuditSeq = "auditseq"
)

// pruneLog deletes the entries of a time-ordered, u64-keyed log (events,
// audit) older than before, and records the highest sequence number it
// deleted so that numbering never restarts.
func (l *Layer) pruneLog(prefix byte, seqMeta string, before time.Time) (int, error) {
	var keys [][]byte
	err := l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var e struct {
				Time time.Time `json:"time"`
			}
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return err
			}
			if !e.Time.Before(before) {
				break // entries are in time order
			}
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return l.deleteKeys(keys, func(txn *badger.Txn, chunk [][]byte) error {
		last := binary.BigEndian.Uint64(chunk[len(chunk)-1][1:])
		return txn.Set(metaKey(seqMeta), []byte(strconv.FormatUint(last, 10)))
	})
}

// loadSeq returns the next-to-last sequence number of a log: the highest
// of its entries and of the pruned ones.
func (l *Layer) loadSeq(prefix byte, seqMeta string) (uint64, error) {
	seq, err := l.lastSeq(prefix)
	if err != nil {
		return 0, err
	}
	b, err := l.getLatest(metaKey(seqMeta))
	if err != nil || b == nil {
		return seq, err
	}
	pruned, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("corrupt %s %q", seqMeta, b)
	}
	return max(seq, pruned), nil
}

// AuditTail returns the newest limit audit entries, oldest first.
func (l *Layer) AuditTail(limit int) ([]AuditEntry, error) {
	l.pub.Lock()
	last := l.auditSeq
	l.pub.Unlock()
	after := uint64(0)
	if last > uint64(limit) {
		after = last - uint64(limit)
	}
	return l.Audit(after, limit)
}
