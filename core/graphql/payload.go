package graphql

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
)

// A record's payload is a JSON object. Decoding all of it into a map for
// every record read costs more than everything else a query does, and a
// query mostly selects a few attributes; so a payload is scanned once for
// where its top-level values are (rawField), and only the values a query
// selects, filters or sorts on are decoded or copied to the answer.

// rawField is one top-level member of a payload: where its name and its
// value (JSON text) are in the payload, and the name unescaped when it has
// escapes. Offsets rather than slices let a node move its payload.
type rawField struct {
	k0, k1, v0, v1 int32
	escKey         []byte
}

var errNotObject = errors.New("the payload is not a JSON object")

// scanObject finds the top-level members of the JSON object p, appending
// them to dst in document order. It checks the object's structure (and
// literals and numbers at top level); strings and nested values are
// checked when they are decoded.
func scanObject(p []byte, dst []rawField) ([]rawField, error) {
	if len(p) > math.MaxInt32 {
		return dst, errors.New("the payload is larger than 2 GiB")
	}
	i := skipWS(p, 0)
	if i >= len(p) || p[i] != '{' {
		return dst, errNotObject
	}
	i = skipWS(p, i+1)
	if i < len(p) && p[i] == '}' {
		return dst, trailing(p, i+1)
	}
	for {
		if i >= len(p) || p[i] != '"' {
			return dst, errors.New("the payload has a member without a quoted name")
		}
		end, esc, err := scanString(p, i)
		if err != nil {
			return dst, err
		}
		f := rawField{k0: int32(i + 1), k1: int32(end - 1)}
		if esc || !utf8.Valid(p[i+1:end-1]) { // decoded as encoding/json does
			var s string
			if err := json.Unmarshal(p[i:end], &s); err != nil {
				return dst, err
			}
			f.escKey = []byte(s)
		}
		i = skipWS(p, end)
		if i >= len(p) || p[i] != ':' {
			return dst, errors.New("the payload has a member name without ':'")
		}
		i = skipWS(p, i+1)
		start := i
		if i, err = skipValue(p, i); err != nil {
			return dst, err
		}
		f.v0, f.v1 = int32(start), int32(i)
		dst = append(dst, f)
		i = skipWS(p, i)
		if i < len(p) && p[i] == ',' {
			i = skipWS(p, i+1)
			continue
		}
		if i < len(p) && p[i] == '}' {
			return dst, trailing(p, i+1)
		}
		return dst, errors.New("the payload's object is not closed")
	}
}

func trailing(p []byte, i int) error {
	if skipWS(p, i) != len(p) {
		return errors.New("the payload has data after its object")
	}
	return nil
}

func skipWS(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\n' || p[i] == '\t' || p[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index after the string starting at p[i] (a
// quote) and whether it has escapes.
func scanString(p []byte, i int) (end int, esc bool, err error) {
	j := i + 1
	for {
		k := bytes.IndexByte(p[j:], '"')
		if k < 0 {
			return 0, false, errors.New("the payload has an unterminated string")
		}
		q := j + k
		n := 0
		for b := q - 1; b > i && p[b] == '\\'; b-- {
			n++
		}
		if n%2 == 0 {
			return q + 1, bytes.IndexByte(p[i+1:q], '\\') >= 0, nil
		}
		j = q + 1
	}
}

// skipValue returns the index after the JSON value starting at p[i].
func skipValue(p []byte, i int) (int, error) {
	if i >= len(p) {
		return i, errors.New("the payload ends inside a value")
	}
	switch c := p[i]; {
	case c == '"':
		end, _, err := scanString(p, i)
		return end, err
	case c == '{' || c == '[':
		depth := 0
		for i < len(p) {
			switch p[i] {
			case '"':
				end, _, err := scanString(p, i)
				if err != nil {
					return i, err
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return i, errors.New("the payload has an unclosed object or array")
	default:
		j := i
		for j < len(p) && p[j] != ',' && p[j] != '}' && p[j] != ']' && p[j] != ' ' && p[j] != '\n' && p[j] != '\t' && p[j] != '\r' {
			j++
		}
		lit := p[i:j]
		switch string(lit) {
		case "true", "false", "null":
			return j, nil
		}
		if !validNumber(lit) {
			return j, errors.New("the payload has an invalid literal")
		}
		return j, nil
	}
}

// validNumber tells whether b is a JSON number.
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(b)
}

// lookupRaw returns the value of member name (the last one when a name
// repeats, as decoding into a map keeps).
func lookupRaw(p []byte, fields []rawField, name string) ([]byte, bool) {
	for i := len(fields) - 1; i >= 0; i-- {
		f := &fields[i]
		key := p[f.k0:f.k1]
		if f.escKey != nil {
			key = f.escKey
		}
		if string(key) == name {
			return p[f.v0:f.v1], true
		}
	}
	return nil, false
}

// plainASCII tells whether a string's text (between its quotes) can be
// copied to an answer as it is: printable ASCII without escapes.
func plainASCII(s []byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for len(s) >= 8 {
		w := binary.LittleEndian.Uint64(s)
		q, bs := w^(lo*'"'), w^(lo*'\\')
		if w&hi != 0 || // a byte ≥ 0x80
			(w-lo*0x20)&^w&hi != 0 || // a byte < 0x20
			(q-lo)&^q&hi != 0 || (bs-lo)&^bs&hi != 0 { // a quote or a backslash
			break // the bytes are looked at one by one below
		}
		s = s[8:]
	}
	for _, c := range s {
		if c < 0x20 || c >= 0x80 || c == '\\' || c == '"' {
			return false
		}
	}
	return true
}

// decodeRaw decodes one JSON value as json.Decoder with UseNumber does:
// strings, json.Number, bools, nil, []any and map[string]any.
func decodeRaw(v []byte) (any, error) {
	if len(v) == 0 {
		return nil, errors.New("empty value")
	}
	switch c := v[0]; {
	case c == '"':
		if len(v) >= 2 && v[len(v)-1] == '"' && plainASCII(v[1:len(v)-1]) {
			return string(v[1 : len(v)-1]), nil
		}
		var s string
		err := json.Unmarshal(v, &s)
		return s, err
	case c == 't' && string(v) == "true":
		return true, nil
	case c == 'f' && string(v) == "false":
		return false, nil
	case c == 'n' && string(v) == "null":
		return nil, nil
	case c == '-' || (c >= '0' && c <= '9'):
		if !validNumber(v) {
			return nil, errors.New("invalid number")
		}
		return json.Number(v), nil
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the value")
	}
	return x, nil
}

// The answer is written as encoding/json (without HTML escaping) writes
// the values graphql-go's scalars serialize to.

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, as encoding/json does with
// SetEscapeHTML(false).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendRawString appends the JSON string raw (quotes included) as a
// GraphQL String: copied when it is plain ASCII, else decoded and
// written again. ok is false when raw is not a valid JSON string.
func appendRawString(b []byte, raw []byte) ([]byte, bool) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && plainASCII(raw[1:len(raw)-1]) {
		return append(b, raw...), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return b, false
	}
	return appendString(b, s), true
}

// appendFloat appends f as encoding/json writes a float64.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json writes it
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendJSON appends any value as encoding/json writes it (map keys
// sorted, no HTML escaping).
func appendJSON(b []byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return b, err
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...), nil
}
