package badger

import (
	"bytes"
	"sort"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"
)

// A delete by id alone is a Change with Delete set and an empty Model: the
// connector knows a record went away but not what kind it was (Contentful's
// DeletedEntry). It deletes the record with that id in every model of the
// source that holds a live one, found through the record index
// (r/<source>\0<model>\0<id>); an id no model holds changes nothing.

// byID reports whether c is a delete by id alone.
func byID(c *Change) bool { return c.Delete && c.Model == "" }

// indexedModels lists the models of source that have index entries visible
// to txn, in order: one seek per model, not a walk over the records.
func indexedModels(txn *badger.Txn, source string) []string {
	pfx := append(append([]byte{pfxIndex}, source...), 0)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
	defer it.Close()
	var models []string
	for it.Seek(pfx); it.Valid(); {
		rest := it.Item().Key()[len(pfx):]
		end := bytes.IndexByte(rest, 0)
		if end < 0 {
			it.Next()
			continue
		}
		models = append(models, string(rest[:end]))
		// Past every key of this model: <model>\x01 sorts after <model>\0….
		next := append(append(append([]byte(nil), pfx...), rest[:end]...), 1)
		it.Seek(next)
	}
	return models
}

// resolveByID returns the deletes of id in the models of the writer's
// source that hold it live: the models in the index as of the last flush
// and those this writer has written to since.
func (w *StageWriter) resolveByID(id string) ([]Change, error) {
	var models []string
	if err := w.st.l.viewLatest(func(txn *badger.Txn) error {
		models = indexedModels(txn, w.source)
		return nil
	}); err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(models))
	for _, m := range models {
		have[m] = true
	}
	for m := range w.fresh {
		if !have[m] {
			models = append(models, m)
		}
	}
	sort.Strings(models)
	var out []Change
	for _, m := range models {
		key := indexKey(w.source, m, id)
		cur, found, err := w.unflushed(xxhash.Sum64(key), key)
		if err != nil {
			return nil, err
		}
		if !found {
			if cur, found, err = w.lookup(key); err != nil {
				return nil, err
			}
		}
		if found && !cur.deleted {
			out = append(out, Change{Model: m, ID: id, Delete: true})
		}
	}
	return out, nil
}

// resolveByIDTxn is resolveByID for a direct publish, reading through its
// transaction (which sees the publish's own writes).
func resolveByIDTxn(txn *badger.Txn, source, id string) ([]Change, error) {
	var out []Change
	for _, m := range indexedModels(txn, source) {
		cur, found, err := readIndex(txn, indexKey(source, m, id))
		if err != nil {
			return nil, err
		}
		if found && !cur.deleted {
			out = append(out, Change{Model: m, ID: id, Delete: true})
		}
	}
	return out, nil
}
