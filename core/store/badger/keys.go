package badger

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/synclayer/synclayer/core/store"
)

// Key layout of a layer's Badger database (managed mode: every version of a
// key carries the commit timestamp it was written at).
//
//	c/<ts:8><seq:4>              record entry, one per record, keyed by its cursor
//	r/<source>\0<model>\0<id>    record index: cursor, payload hash, first-seen ts, flags
//	v/<revision:8>               revision
//	u/<run>                      run
//	k/<source>\0<sync>           committed checkpoint of a sync
//	p/<run>\0<source>\0<sync>    checkpoint of a run in progress (moves to k/ on publish)
//	e/<seq:8>                    event log
//	a/<seq:8>                    audit log
//	s/<run>\0<source>\0<model>\0<id> seen by a run (track_deletes), while it stages
//	o/<event>\0<endpoint>        outbox: an outbound event for one endpoint
//	w/<id>                       trigger webhook
//	n/<seq:8>                    inbox: a payload webhook waiting to be published
//	m/<name>                     layer metadata (config hashes, pin, …)
//	t/<ts:8>                     revision ref: number and commit time (kept for good)
//	q/<run>                      a queued or running run (index of u/)
//	x/<seq:8>                    a payload webhook set aside: it could not be processed
//	g/<run>\0c<seq:8>            a change of a run staging privately (see private.go)
//	g/<run>\0s<src>\0<model>\0<id> seen by a run staging privately (track_deletes)
//	j/<source>\0<connection>     a connection of a source (its config sealed)
//
// <source> in record keys (c/ entries, r/, k/, p/, s/) is a source key: the
// source's name, or for a connection's records the name, 0x1f and the
// connection's id (SourceKey), so that a connection's records, checkpoints
// and seen markers sort together under their source and a source without
// connections keeps the keys it always had.
//
// Record entries (c/) and the record index (r/) are the only keys that readers
// look at through a revision's timestamp; they are written exclusively at a
// timestamp that becomes, or lies below, a published revision's timestamp.
// Everything else is read at the newest version.
const (
	pfxRecord     = 'c'
	pfxIndex      = 'r'
	pfxRevision   = 'v'
	pfxRun        = 'u'
	pfxCheckpoint = 'k'
	pfxPendingCP  = 'p'
	pfxEvent      = 'e'
	pfxAudit      = 'a'
	pfxSeen       = 's'
	pfxOutbox     = 'o'
	pfxWebhook    = 'w'
	pfxInbox      = 'n'
	pfxMeta       = 'm'
	pfxRevRef     = 't'
	pfxActiveRun  = 'q'
	pfxSetAside   = 'x'
	pfxPrivate    = 'g'
	pfxConnection = 'j'
)

// splitSourceBytes is SplitSourceKey on bytes, without copying.
func splitSourceBytes(key []byte) (source, connection []byte) {
	for i, c := range key {
		if c == store.ConnSep {
			return key[:i], key[i+1:]
		}
	}
	return key, nil
}

func recordKey(c Cursor) []byte {
	k := make([]byte, 1+store.CursorLen)
	k[0] = pfxRecord
	copy(k[1:], c[:])
	return k
}

func indexPrefix(source, model string) []byte {
	k := make([]byte, 0, 3+len(source)+len(model))
	k = append(k, pfxIndex)
	k = append(k, source...)
	k = append(k, 0)
	k = append(k, model...)
	k = append(k, 0)
	return k
}

func indexKey(source, model, id string) []byte {
	return appendIndexKey(make([]byte, 0, 3+len(source)+len(model)+len(id)), source, model, id)
}

// appendIndexKey appends the index key of a record to k (usually empty with
// enough capacity).
func appendIndexKey(k []byte, source, model, id string) []byte {
	k = append(k, pfxIndex)
	k = append(k, source...)
	k = append(k, 0)
	k = append(k, model...)
	k = append(k, 0)
	k = append(k, id...)
	return k
}

func u64Key(prefix byte, n uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], n)
	return k
}

func strKey(prefix byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += len(p) + 1
	}
	k := make([]byte, 0, n)
	k = append(k, prefix)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

// Record index value: cursor(12) hash(8) firstSeenTs(8) flags(1).
const indexValueLen = store.CursorLen + 8 + 8 + 1

const flagDeleted = 1

type indexEntry struct {
	cursor    Cursor
	hash      uint64
	firstSeen uint64
	deleted   bool
}

func (e indexEntry) encode() []byte { return e.appendTo(make([]byte, 0, indexValueLen)) }

// appendTo appends the encoded entry to b.
func (e indexEntry) appendTo(b []byte) []byte {
	b = append(b, e.cursor[:]...)
	b = binary.BigEndian.AppendUint64(b, e.hash)
	b = binary.BigEndian.AppendUint64(b, e.firstSeen)
	var flags byte
	if e.deleted {
		flags = flagDeleted
	}
	return append(b, flags)
}

func decodeIndex(b []byte) (indexEntry, error) {
	var e indexEntry
	if len(b) != indexValueLen {
		return e, fmt.Errorf("store: corrupt record index value (%d bytes)", len(b))
	}
	copy(e.cursor[:], b)
	e.hash = binary.BigEndian.Uint64(b[12:])
	e.firstSeen = binary.BigEndian.Uint64(b[20:])
	e.deleted = b[28]&flagDeleted != 0
	return e, nil
}

// Record entry value: action(1) firstSeenTs(8) uvarint(len source) source
// uvarint(len model) model uvarint(len id) id payload.
func encodeEntry(dst []byte, a Action, firstSeen uint64, source, model, id string, payload []byte) []byte {
	dst = append(dst, byte(a))
	dst = binary.BigEndian.AppendUint64(dst, firstSeen)
	dst = binary.AppendUvarint(dst, uint64(len(source)))
	dst = append(dst, source...)
	dst = binary.AppendUvarint(dst, uint64(len(model)))
	dst = append(dst, model...)
	dst = binary.AppendUvarint(dst, uint64(len(id)))
	dst = append(dst, id...)
	return append(dst, payload...)
}

// entry is a decoded record entry; its byte slices alias the value they were
// decoded from.
type entry struct {
	action    Action
	firstSeen uint64
	source    []byte
	model     []byte
	id        []byte
	payload   []byte
}

var errCorruptEntry = errors.New("store: corrupt record entry")

func decodeEntry(b []byte) (entry, error) {
	var e entry
	if len(b) < 9 {
		return e, errCorruptEntry
	}
	e.action = Action(b[0])
	e.firstSeen = binary.BigEndian.Uint64(b[1:9])
	b = b[9:]
	var ok bool
	if e.source, b, ok = lenPrefixed(b); !ok {
		return e, errCorruptEntry
	}
	if e.model, b, ok = lenPrefixed(b); !ok {
		return e, errCorruptEntry
	}
	if e.id, b, ok = lenPrefixed(b); !ok {
		return e, errCorruptEntry
	}
	e.payload = b
	return e, nil
}

func lenPrefixed(b []byte) (field, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return nil, nil, false
	}
	return b[w : w+int(n)], b[w+int(n):], true
}
