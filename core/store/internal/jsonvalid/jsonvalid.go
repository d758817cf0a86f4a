// Package jsonvalid checks and compacts the JSON objects records hold, the
// same way for every store driver (so a payload reads back byte for byte
// the same whichever stored it).
package jsonvalid

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
)

// ReservedKey is the top-level key a record may not have: readers add
// their own _metadata to every record (SPEC §4).
const ReservedKey = "_metadata"

// Errors of Record.
var (
	ErrNotObject = errors.New("the record is not a valid JSON object")
	ErrReserved  = errors.New("the record has a top-level _metadata field, which synclayer reserves")
)

// Record checks the JSON of a record about to be stored: nil if b is
// exactly one JSON object (surrounding white space allowed, by the grammar
// of RFC 8259 as encoding/json.Valid reads it) without the top-level key
// _metadata, however that key is spelled ("\u005fmetadata" is the same key
// to a decoder); ws tells whether b holds insignificant white space
// (between tokens, or around the object): whether Compact would shorten
// it. It is one walk of b, the key check a length comparison per top-level
// key. It exists because records are checked on every write and
// encoding/json's byte-at-a-time state machine was a fifth of the host's
// CPU during ingest; a fuzz test holds it to encoding/json's verdicts.
func Record(b []byte) (ws bool, err error) {
	var st state
	if !object(b, &st) {
		return st.ws, ErrNotObject
	}
	if st.reserved {
		return st.ws, ErrReserved
	}
	return st.ws, nil
}

// state is what a walk learns besides validity.
type state struct {
	ws       bool // insignificant white space seen
	reserved bool // the top-level key ReservedKey seen
}

// object walks b, which must be one JSON object with white space around it
// allowed, and tells whether it is.
func object(b []byte, st *state) bool {
	i := skipWS(b, 0)
	st.ws = i > 0
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i, ok := value(b, i, 0, st)
	if !ok {
		return false
	}
	if j := skipWS(b, i); j != i {
		st.ws = true
		i = j
	}
	return i == len(b)
}

// reservedKey tells whether the quoted key q is ReservedKey.
func reservedKey(q []byte) bool {
	raw := q[1 : len(q)-1]
	if string(raw) == ReservedKey {
		return true
	}
	if len(raw) < len(ReservedKey) || bytes.IndexByte(raw, '\\') < 0 {
		return false
	}
	// Spelled with escapes (rare): decode it.
	var k string
	return json.Unmarshal(q, &k) == nil && k == ReservedKey
}

// Compact appends valid JSON src to dst without its insignificant white
// space, byte for byte what encoding/json.Compact writes (strings are left
// as they are), without its byte-at-a-time state machine.
func Compact(dst, src []byte) []byte {
	start := 0 // of the run of bytes to copy
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '"':
			// Skip the string; src is valid, so it ends.
			for i++; src[i] != '"'; i++ {
				if src[i] == '\\' {
					i++
				}
			}
		case ' ', '\t', '\n', '\r':
			dst = append(dst, src[start:i]...)
			start = i + 1
		}
	}
	return append(dst, src[start:]...)
}

const maxDepth = 10000

// skipWSNote is skipWS that sets *ws when it skips anything.
func skipWSNote(b []byte, i int, ws *bool) int {
	if i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			*ws = true
			return skipWS(b, i+1)
		}
	}
	return i
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// value parses the JSON value at b[i:] (no leading white space) and returns
// the index after it.
func value(b []byte, i, depth int, st *state) (int, bool) {
	ws := &st.ws
	if i >= len(b) || depth > maxDepth {
		return i, false
	}
	switch c := b[i]; {
	case c == '{':
		i = skipWSNote(b, i+1, ws)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			var ok bool
			k := i
			if i, ok = str(b, i); !ok {
				return i, false
			}
			if depth == 0 && reservedKey(b[k:i]) {
				st.reserved = true
			}
			i = skipWSNote(b, i, ws)
			if i >= len(b) || b[i] != ':' {
				return i, false
			}
			if i, ok = value(b, skipWSNote(b, i+1, ws), depth+1, st); !ok {
				return i, false
			}
			i = skipWSNote(b, i, ws)
			if i >= len(b) {
				return i, false
			}
			if b[i] == '}' {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			i = skipWSNote(b, i+1, ws)
		}
	case c == '[':
		i = skipWSNote(b, i+1, ws)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = value(b, i, depth+1, st); !ok {
				return i, false
			}
			i = skipWSNote(b, i, ws)
			if i >= len(b) {
				return i, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			i = skipWSNote(b, i+1, ws)
		}
	case c == '"':
		return str(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return number(b, i)
	}
	return i, false
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// SWAR constants: one in each byte, and each byte's high bit.
const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plain8 tells whether none of the 8 bytes in x (one per byte) is '"', '\\'
// or a control character below 0x20, the bytes that end or change a
// string's plain run. Each test is the classic "has a byte less than n"
// word trick, exact as to whether such a byte exists.
func plain8(x uint64) bool {
	quote := x ^ ('"' * lsb)
	bslash := x ^ ('\\' * lsb)
	special := ((quote - lsb) &^ quote) | ((bslash - lsb) &^ bslash) | ((x - 0x20*lsb) &^ x)
	return special&msb == 0
}

// str parses a string starting at the opening quote b[i].
func str(b []byte, i int) (int, bool) {
	i++
	for i < len(b) {
		// Runs of plain bytes, 8 at a time: the payloads of records are
		// mostly long strings.
		for len(b)-i >= 8 && plain8(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, true
		case c == '\\':
			i++
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if len(b)-i < 5 {
					return i, false
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return i, false
					}
				}
				i += 5
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		default:
			i++
		}
	}
	return i, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// number parses a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func number(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, false
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return i, false
		}
	}
	return i, true
}
