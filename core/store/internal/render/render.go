// Package render writes a record as the read API answers it: the
// connector's JSON object with the store's metadata spliced in, in either
// shape (SPEC §4's "_metadata", SPEC §13's "_nango_metadata"). Every store
// driver renders through it, so that a record reads back byte for byte the
// same whichever driver stored it.
package render

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/synclayer/synclayer/core/store"
)

// TimeFormat is how metadata times are written (UTC, microseconds).
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// text is a string or a byte slice: the drivers hold record keys as one or
// the other, and neither converts on the read path.
type text interface{ ~string | ~[]byte }

// Meta is what a record's metadata says besides its payload.
type Meta[T text] struct {
	// SourceKey is store.SourceKey(source, connection).
	SourceKey T
	Model, ID T
	Action    store.Action
	Cursor    store.Cursor
	// FirstSeen and Modified are the commit times of the revision that
	// first saw the record and of the one that last changed it, formatted
	// with TimeFormat (callers cache them by revision).
	FirstSeen, Modified []byte
	// Revision is the revision that last changed the record.
	Revision int64
}

// Append appends the record (payload, a JSON object) with its metadata in
// format to b.
func Append[T text](b, payload []byte, m *Meta[T], format store.MetadataFormat) ([]byte, error) {
	p := trimSpace(payload)
	if len(p) < 2 || p[0] != '{' || p[len(p)-1] != '}' {
		return nil, fmt.Errorf("store: record %s/%s is not a JSON object", m.Model, m.ID)
	}
	b = append(b, p[:len(p)-1]...)
	if len(trimSpace(p[1:len(p)-1])) > 0 {
		b = append(b, ',')
	}
	if format == store.MetadataNango {
		b = append(b, `"_nango_metadata":{"first_seen_at":"`...)
		b = appendHistory(b, m)
		return append(b, `","pruned_at":null}}`...), nil
	}
	src, conn, hasConn := splitSourceKey(m.SourceKey)
	b = append(b, `"_metadata":{"source":`...)
	b = appendJSONString(b, src)
	if hasConn {
		b = append(b, `,"connection":`...)
		b = appendJSONString(b, conn)
	}
	b = append(b, `,"model":`...)
	b = appendJSONString(b, m.Model)
	b = append(b, `,"first_seen_at":"`...)
	b = appendHistory(b, m)
	b = append(b, `","revision":`...)
	b = strconv.AppendInt(b, m.Revision, 10)
	return append(b, "}}"...), nil
}

// appendHistory appends the metadata fields both shapes share, from the
// value of first_seen_at to the cursor's: first_seen_at, last_modified_at,
// last_action, deleted_at, cursor (its closing quote left to the caller).
func appendHistory[T text](b []byte, m *Meta[T]) []byte {
	b = append(b, m.FirstSeen...)
	b = append(b, `","last_modified_at":"`...)
	b = append(b, m.Modified...)
	b = append(b, `","last_action":"`...)
	b = append(b, m.Action.String()...)
	b = append(b, `","deleted_at":`...)
	if m.Action == store.Deleted {
		b = append(b, '"')
		b = append(b, m.Modified...)
		b = append(b, '"')
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"cursor":"`...)
	return append(b, m.Cursor.String()...)
}

// splitSourceKey splits a source key at store.ConnSep, without copying.
func splitSourceKey[T text](k T) (source, connection T, ok bool) {
	for i := 0; i < len(k); i++ {
		if k[i] == store.ConnSep {
			return k[:i], k[i+1:], true
		}
	}
	return k, k[:0], false
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// appendJSONString appends s as a JSON string: as it is when it needs no
// escaping, else as encoding/json writes it.
func appendJSONString[T text](b []byte, s T) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(string(s))
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
