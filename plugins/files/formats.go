package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// emitFunc receives one record: the line it starts on, its id and its JSON
// object (which it may not retain).
type emitFunc func(line int, id string, data []byte) error

// recordID returns the id of a record: the value of field, a string or a
// number (a number's JSON text).
func recordID(obj []byte, field string) (string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		return "", fmt.Errorf("invalid JSON object: %w", err)
	}
	raw, ok := m[field]
	if !ok {
		return "", fmt.Errorf("record has no %q attribute (the id_field)", field)
	}
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", fmt.Errorf("record has a null %q (the id_field)", field)
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		if s == "" {
			return "", fmt.Errorf("record has an empty %q (the id_field)", field)
		}
		return s, nil
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		return string(raw), nil
	}
	return "", fmt.Errorf("record's %q (the id_field) must be a string or a number, not %s", field, raw)
}

// readJSON reads a JSON array of objects, streaming.
func readJSON(r io.Reader, path, idField string, emit emitFunc) error {
	lr := &lineReader{r: r, line: 1}
	dec := json.NewDecoder(lr)
	syntax := func(err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("%s line %d: invalid JSON: %v", path, lr.lineAt(se.Offset), err)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%s: the JSON array is cut short", path)
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	tok, err := dec.Token()
	if err == io.EOF {
		return nil // an empty file holds no records
	}
	if err != nil {
		return syntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("%s line %d: expected a JSON array of objects", path, lr.lineAt(dec.InputOffset()))
	}
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return syntax(err)
		}
		line := lr.lineAt(dec.InputOffset() - int64(len(raw)))
		if raw[0] != '{' {
			return fmt.Errorf("%s line %d: a record must be a JSON object", path, line)
		}
		id, err := recordID(raw, idField)
		if err != nil {
			return fmt.Errorf("%s line %d: %w", path, line, err)
		}
		if err := emit(line, id, raw); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing ]
		return syntax(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%s line %d: unexpected content after the JSON array", path, lr.lineAt(dec.InputOffset()))
	}
	return nil
}

// lineReader counts lines of what passes through it, so that a byte offset
// the JSON decoder reports can be turned into a line number. Offsets asked
// for must not decrease; it keeps only the newlines read ahead of them.
type lineReader struct {
	r    io.Reader
	off  int64   // bytes read so far
	nl   []int64 // offsets of newlines not yet passed by lineAt
	line int     // line number at the last lineAt offset
}

// Read implements io.Reader.
func (l *lineReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for i := 0; i < n; {
		j := bytes.IndexByte(p[i:n], '\n')
		if j < 0 {
			break
		}
		l.nl = append(l.nl, l.off+int64(i+j))
		i += j + 1
	}
	l.off += int64(n)
	return n, err
}

func (l *lineReader) lineAt(off int64) int {
	i := 0
	for i < len(l.nl) && l.nl[i] < off {
		i++
	}
	l.line += i
	l.nl = l.nl[i:]
	return l.line
}

// readJSONL reads one JSON object per line; blank lines are skipped.
func readJSONL(r io.Reader, path, idField string, emit emitFunc) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if b[0] != '{' {
			return fmt.Errorf("%s line %d: a record must be a JSON object", path, line)
		}
		id, err := recordID(b, idField)
		if err != nil {
			return fmt.Errorf("%s line %d: %w", path, line, err)
		}
		if err := emit(line, id, b); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s line %d: a line is longer than 64 MiB", path, line+1)
		}
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

// readCSV reads a header row, then one record per row with every value a
// string.
func readCSV(r io.Reader, path, idField string, emit emitFunc) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return csvError(path, err)
	}
	header = append([]string(nil), header...)
	header[0] = string(bytes.TrimPrefix([]byte(header[0]), []byte("\ufeff"))) // Excel's BOM
	idCol := -1
	keys := make([][]byte, len(header))
	for i, h := range header {
		for j := range i {
			if header[j] == h {
				return fmt.Errorf("%s line 1: column %q appears twice in the header", path, h)
			}
		}
		if h == idField {
			idCol = i
		}
		keys[i], _ = json.Marshal(h)
	}
	if idCol < 0 {
		return fmt.Errorf("%s line 1: the header has no %q column (the id_field)", path, idField)
	}
	var buf []byte
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return csvError(path, err)
		}
		line, _ := cr.FieldPos(0)
		id := rec[idCol]
		if id == "" {
			return fmt.Errorf("%s line %d: record has an empty %q (the id_field)", path, line, idField)
		}
		buf = append(buf[:0], '{')
		for i, v := range rec {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, keys[i]...)
			buf = append(buf, ':')
			buf = appendJSONString(buf, v)
		}
		buf = append(buf, '}')
		if err := emit(line, id, buf); err != nil {
			return err
		}
	}
}

// appendJSONString appends s as a JSON string.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			b, _ := json.Marshal(s)
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

func csvError(path string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s line %d: invalid CSV: %v", path, pe.Line, pe.Err)
	}
	return fmt.Errorf("reading %s: %w", path, err)
}
