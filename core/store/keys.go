package store

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// ConnSep separates a source's name from a connection's id in a source key.
// ConnSep separates a source from its connection in a source key.
const ConnSep = '\x1f'

// SourceKey is how the store names the records of one connection of a
// source (connection "" : the source itself, for a source without
// connections). Every per-source argument of the store (Writer, Checkpoint,
// Query.Source with Query.Connection, …) takes it.
func SourceKey(source, connection string) string {
	if connection == "" {
		return source
	}
	return source + string(ConnSep) + connection
}

// SplitSourceKey is the inverse of SourceKey.
func SplitSourceKey(key string) (source, connection string) {
	for i := 0; i < len(key); i++ {
		if key[i] == ConnSep {
			return key[:i], key[i+1:]
		}
	}
	return key, ""
}

// CursorLen is the length of a decoded cursor: the commit timestamp of the
// staging that wrote the change and a sequence number within it.
const CursorLen = 12

// Cursor identifies one record change. Cursors of a layer sort in the order
// their changes were published.
type Cursor [CursorLen]byte

// MakeCursor is the cursor of the seq-th change written by the commit at
// timestamp ts. A driver's timestamps must grow in publish order.
func MakeCursor(ts uint64, seq uint32) Cursor {
	var c Cursor
	binary.BigEndian.PutUint64(c[:8], ts)
	binary.BigEndian.PutUint32(c[8:], seq)
	return c
}

// Timestamp is the commit timestamp the cursor was made with.
func (c Cursor) Timestamp() uint64 { return binary.BigEndian.Uint64(c[:8]) }

// cursorEncoding is base64 with its alphabet in ASCII order, so that cursor
// strings sort as the cursors do, and URL-safe.
var cursorEncoding = base64.NewEncoding("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz").WithPadding(base64.NoPadding)

// String is the opaque form of the cursor given to clients. Cursor strings
// of a layer sort in the order of their changes.
func (c Cursor) String() string { return cursorEncoding.EncodeToString(c[:]) }

// pageTokenLen is the length of a page token: a cursor and the revision
// the page was read from.
const pageTokenLen = CursorLen + 8

// PageToken is the next_cursor of a page: where the page ended and on which
// revision, so that a walk that follows it stays on one revision.
func PageToken(c Cursor, revision int64) string {
	var b [pageTokenLen]byte
	copy(b[:], c[:])
	binary.BigEndian.PutUint64(b[CursorLen:], uint64(revision))
	return cursorEncoding.EncodeToString(b[:])
}

// ParsePosition decodes what a client passes as cursor=: a record's cursor
// (revision 0: read the current revision) or a page token (the revision
// the walk started on).
func ParsePosition(s string) (Cursor, int64, error) {
	if len(s) == 16 {
		c, err := ParseCursor(s)
		return c, 0, err
	}
	var c Cursor
	var b [pageTokenLen]byte
	if len(s) != 27 {
		return c, 0, ErrBadCursor
	}
	n, err := cursorEncoding.Decode(b[:], []byte(s))
	if err != nil || n != pageTokenLen {
		return c, 0, ErrBadCursor
	}
	copy(c[:], b[:CursorLen])
	rev := int64(binary.BigEndian.Uint64(b[CursorLen:]))
	if rev <= 0 {
		return c, 0, ErrBadCursor
	}
	return c, rev, nil
}

// ErrBadCursor is returned for a cursor that this store did not make.
var ErrBadCursor = errors.New("invalid cursor")

// ParseCursor decodes a cursor given by a client.
func ParseCursor(s string) (Cursor, error) {
	var c Cursor
	if len(s) != 16 {
		return c, ErrBadCursor
	}
	n, err := cursorEncoding.Decode(c[:], []byte(s))
	if err != nil || n != CursorLen {
		return c, ErrBadCursor
	}
	return c, nil
}

// Action is a record's last action.
type Action byte

// Record actions, as SPEC §4 names them.
const (
	Added   Action = 1
	Updated Action = 2
	Deleted Action = 3
)

func (a Action) String() string {
	switch a {
	case Added:
		return "ADDED"
	case Updated:
		return "UPDATED"
	case Deleted:
		return "DELETED"
	}
	return "UNKNOWN"
}
