package badger

import (
	"errors"
	"fmt"
	"math"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"
	"github.com/synclayer/synclayer/core/store"
	"github.com/synclayer/synclayer/core/store/internal/jsonvalid"
)

var (
	errTooManyChanges = errors.New("a run may write at most 4,294,967,294 changes (cursors number them with 32 bits): split the sync")
)

// kvWriter is what both a loader (loader.go) and a transaction offer.
type kvWriter interface {
	Set(k, v []byte) error
	Delete(k []byte) error
}

// applier applies record changes on top of what it reads: the rules of
// SPEC §4 (unchanged saves, soft deletes, revival, merging) in one place,
// for staged runs and for direct publishes alike.
type applier struct {
	source string
	opts   WriterOptions
	// ts is the commit timestamp of the writes; base is the first
	// timestamp of the change set (a staged run's attempts share a base);
	// start is the newest published timestamp when the change set began.
	ts, base, start uint64
	seq             func() uint32
	w               kvWriter
	// payload returns the payload of the record entry at a cursor.
	payload func(c Cursor) ([]byte, error)
	counts  map[string]Counts
	// written is called with every index entry written.
	written func(key []byte, e indexEntry)
	// vlog counts the bytes written to the value log (garbage collection
	// paces itself on them).
	vlog    *vlogWrites
	arena   []byte
	compact []byte // a payload without its white space, until copied
}

// payloadShape is what a caller already knows of a change's JSON, so that
// the applier does not check it twice.
type payloadShape uint8

const (
	shapeUnchecked payloadShape = iota // checked by the applier
	shapeCompact                       // a valid object without white space
	shapeSpaced                        // a valid object with white space to remove
)

// checkShape checks a payload before it is stored (jsonvalid.Record: a JSON
// object without the reserved _metadata key) and returns its shape.
func checkShape(data []byte) (payloadShape, error) {
	switch ws, err := jsonvalid.Record(data); {
	case err != nil:
		return shapeUnchecked, err
	case ws:
		return shapeSpaced, nil
	}
	return shapeCompact, nil
}

// arenaChunk is the size of the chunks keys and values are cut from: one
// allocation for many records instead of four per record. Badger keeps the
// slices until its commit; a chunk is freed when none is referenced. An
// applier's first chunk is arenaFirst, each next one twice the last up to
// arenaChunk: a run of a hundred records (a connection's) allocated a
// whole chunk for a few KiB, a quarter of a host's allocations with
// thousands of connections.
const (
	arenaChunk = 256 << 10
	arenaFirst = 8 << 10
)

// alloc returns an empty slice with capacity n from the arena.
func (a *applier) alloc(n int) []byte {
	if n > arenaChunk/4 {
		return make([]byte, 0, n)
	}
	if cap(a.arena)-len(a.arena) < n {
		size := min(max(2*cap(a.arena), arenaFirst), arenaChunk)
		for size < n {
			size *= 2
		}
		a.arena = make([]byte, 0, size)
	}
	start := len(a.arena)
	a.arena = a.arena[:start+n]
	return a.arena[start : start : start+n]
}

func (a *applier) recordKey(c Cursor) []byte {
	k := a.alloc(1 + store.CursorLen)
	k = append(k, pfxRecord)
	return append(k, c[:]...)
}

// apply applies one change. key is its index key; shape is what the caller
// knows of its JSON (shapeUnchecked: nothing).
func (a *applier) apply(c *Change, shape payloadShape, key []byte, cur indexEntry, found bool) error {
	if found && a.opts.IgnoreIfModifiedAfter {
		// A revision published after this change set began changed the
		// record: that fresher change wins.
		if t := cur.cursor.Timestamp(); t > a.start && t < a.base {
			return nil
		}
	}
	ours := found && cur.cursor.Timestamp() >= a.base // written earlier in this change set
	firstSeen := a.base
	var action Action
	var payload []byte
	var hash uint64
	cnt := a.counts[c.Model]
	defer func() { a.counts[c.Model] = cnt }()
	if c.Delete {
		if !found || cur.deleted {
			return nil
		}
		// Keep the last payload so that readers see what was deleted.
		old, err := a.payload(cur.cursor)
		if err != nil {
			return err
		}
		action, payload, firstSeen, hash = Deleted, old, cur.firstSeen, cur.hash
		switch {
		case ours && cur.firstSeen >= a.base:
			cnt.Added-- // added and deleted within the change set
		case !ours:
			cnt.Deleted++
		default:
			cnt.Updated--
			cnt.Deleted++
		}
	} else {
		hash = xxhash.Sum64(c.Data)
		payload = c.Data
		switch {
		case !found:
			action = Added
			cnt.Added++
		case cur.deleted:
			action, firstSeen = Added, cur.firstSeen
			if ours && cur.firstSeen < a.base {
				cnt.Deleted-- // deleted then saved again within the change set
				cnt.Updated++
				action = Updated
			} else {
				cnt.Added++
			}
		case cur.hash == hash:
			if !ours {
				cnt.Unchanged++
			}
			return nil
		default:
			action, firstSeen = Updated, cur.firstSeen
			if ours && cur.firstSeen >= a.base {
				action = Added // still an addition of this change set
			} else if !ours {
				cnt.Updated++
			}
		}
		// Readers get payloads spliced into JSON answers: only valid
		// objects are stored. (An unchanged payload was checked when it
		// was first stored.) They are stored compact; the hash stays the
		// connector's bytes', so a resend of them is still unchanged.
		if shape == shapeUnchecked {
			var err error
			if shape, err = checkShape(c.Data); err != nil {
				return err
			}
		}
		if shape == shapeSpaced {
			a.compact = jsonvalid.Compact(a.compact[:0], c.Data)
			payload = a.compact
		}
	}
	if found {
		if err := a.w.Delete(a.recordKey(cur.cursor)); err != nil {
			return err
		}
	}
	n := a.seq()
	if n == math.MaxUint32 {
		// Cursors are (timestamp, 32-bit sequence): one change set holds
		// fewer than 2^32 changes, or cursors would repeat.
		return errTooManyChanges
	}
	cursor := store.MakeCursor(a.ts, n)
	ie := indexEntry{cursor: cursor, hash: hash, firstSeen: firstSeen, deleted: action == Deleted}
	val := encodeEntry(a.alloc(32+len(a.source)+len(c.Model)+len(c.ID)+len(payload)), action, firstSeen, a.source, c.Model, c.ID, payload)
	if err := a.w.Set(a.recordKey(cursor), val); err != nil {
		return err
	}
	a.vlog.add(val)
	if err := a.w.Set(key, ie.appendTo(a.alloc(indexValueLen))); err != nil {
		return err
	}
	if a.written != nil {
		a.written(key, ie)
	}
	return nil
}

// readIndex reads an index entry through a transaction.
func readIndex(txn *badger.Txn, key []byte) (indexEntry, bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return indexEntry{}, false, nil
	}
	if err != nil {
		return indexEntry{}, false, err
	}
	var ie indexEntry
	err = item.Value(func(v []byte) (err error) { ie, err = decodeIndex(v); return })
	return ie, err == nil, err
}

// readPayload reads the payload of a record entry through a transaction.
func readPayload(txn *badger.Txn, c Cursor) ([]byte, error) {
	item, err := txn.Get(recordKey(c))
	if err != nil {
		return nil, fmt.Errorf("read record entry: %w", err)
	}
	var payload []byte
	err = item.Value(func(v []byte) error {
		e, err := decodeEntry(v)
		if err != nil {
			return err
		}
		payload = append([]byte(nil), e.payload...)
		return nil
	})
	return payload, err
}
