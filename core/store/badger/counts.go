package badger

import (
	"bytes"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/synclayer/synclayer/core/store"
)

// CountRecords counts the records of each (source, model) in the
// snapshot's revision, in source and model order: one row per model of a
// source, whatever number of connections its records belong to. It walks
// the record index only (keys and their small values, no payload), so it
// costs a fraction of reading the records, but still in proportion to
// their number: callers that show it often cache it per revision.
func (s *Snapshot) CountRecords() ([]ModelCount, error) {
	it := s.txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxIndex}, PrefetchValues: true, PrefetchSize: 1000})
	defer it.Close()
	rows := ModelCounts{}
	var cur *ModelCount
	var curPfx []byte // r/<source key>\0<model>\0 of cur
	for it.Rewind(); it.Valid(); it.Next() {
		key := it.Item().Key()
		if cur == nil || !bytes.HasPrefix(key, curPfx) {
			sourceKey, model, _ := splitIndexKey(key)
			cur = rows.Row(sourceKey, model)
			curPfx = indexPrefix(sourceKey, model)
		}
		if err := countItem(cur, it.Item()); err != nil {
			return nil, err
		}
	}
	return rows.Sorted(), nil
}

// CountSource counts the records of each model of one source key (a
// source, or one connection of it) in the snapshot's revision: it walks
// that source key's index only.
func (s *Snapshot) CountSource(sourceKey string) ([]ModelCount, error) {
	pfx := append(append([]byte{pfxIndex}, sourceKey...), 0)
	it := s.txn.NewIterator(badger.IteratorOptions{Prefix: pfx, PrefetchValues: true, PrefetchSize: 1000})
	defer it.Close()
	var out []ModelCount
	var cur *ModelCount
	for it.Rewind(); it.Valid(); it.Next() {
		_, model, _ := splitIndexKey(it.Item().Key())
		if cur == nil || cur.Model != model {
			src, conn := SplitSourceKey(sourceKey)
			out = append(out, ModelCount{Source: src, Model: model, Connections: conn != ""})
			cur = &out[len(out)-1]
		}
		if err := countItem(cur, it.Item()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CountChanges derives the counts of the snapshot's revision from the
// counts of an older snapshot's (from CountRecords or CountChanges): it
// walks only the records changed since the older revision, so it costs in
// proportion to the change, not to the layer.
func (s *Snapshot) countChanges(old *Snapshot, oldCounts []ModelCount) ([]ModelCount, error) {
	if old.rev.Number > s.rev.Number {
		return nil, fmt.Errorf("store: counts of revision %d cannot come from a later one (%d)", s.rev.Number, old.rev.Number)
	}
	byModel := store.ModelCountsOf(oldCounts)
	err := s.Changes(old.rev.Number, func(r *StoredRecord) error {
		mc := byModel.Row(SourceKey(r.Source, r.Connection), r.Model)
		was, found, err := readIndex(old.txn, indexKey(SourceKey(r.Source, r.Connection), r.Model, r.ID))
		if err != nil {
			return err
		}
		if found && was.deleted {
			mc.Deleted--
		} else if found {
			mc.Live--
		}
		if r.Deleted() {
			mc.Deleted++
		} else {
			mc.Live++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return byModel.Sorted(), nil
}
