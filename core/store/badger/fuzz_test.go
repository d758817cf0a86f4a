package badger

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/synclayer/synclayer/core/store"
)

// Fuzz targets for the decoders of values read back from Badger and of
// cursors given by clients. Run one with
//
//	go test -run='^$' -fuzz='^FuzzDecodeEntry$' -fuzztime=10s ./core/store
//
// (or `make fuzz`). The seeds below run with every plain `go test`.

// FuzzDecodeEntry: arbitrary bytes never panic, and a decoded entry encodes
// back to exactly the bytes it came from (the encoding has one form per
// entry: canonical uvarints, the payload is the rest).
func FuzzDecodeEntry(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add(encodeEntry(nil, Added, 0, "", "", "", nil))
	f.Add(encodeEntry(nil, Added, 1<<40, "blog", "Post", "p-1", []byte(`{"id":"p-1","title":"One"}`)))
	f.Add(encodeEntry(nil, Deleted, 7, "shop", "Product", "x1", []byte(`{"id":"x1"}`)))
	f.Add(encodeEntry(nil, Updated, ^uint64(0), "s", "m", string(bytes.Repeat([]byte("i"), 300)), []byte("{}")))
	// A length that runs past the end, and an overlong uvarint.
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 'a'})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x00, 0, 0})

	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			return
		}
		// Fields alias b and lie within it.
		if len(e.source)+len(e.model)+len(e.id)+len(e.payload)+9 > len(b) {
			t.Fatalf("decoded fields longer than the input")
		}
		re := encodeEntry(nil, e.action, e.firstSeen, string(e.source), string(e.model), string(e.id), e.payload)
		if canonicalUvarints(b) && !bytes.Equal(re, b) {
			t.Fatalf("decode→encode changed the entry:\n in  %x\n out %x", b, re)
		}
		// Whatever the input, its decoding is a fixed point.
		e2, err := decodeEntry(re)
		if err != nil {
			t.Fatalf("decoding a re-encoded entry: %v", err)
		}
		if e2.action != e.action || e2.firstSeen != e.firstSeen || !bytes.Equal(e2.source, e.source) ||
			!bytes.Equal(e2.model, e.model) || !bytes.Equal(e2.id, e.id) || !bytes.Equal(e2.payload, e.payload) {
			t.Fatalf("round trip: %+v != %+v", e2, e)
		}
	})
}

// canonicalUvarints reports whether the three length prefixes of an entry
// that decoded are written in their shortest form (binary.Uvarint accepts a
// padded form such as 0x80 0x00 for 0, which encodeEntry never writes).
func canonicalUvarints(b []byte) bool {
	b = b[9:]
	for range 3 {
		n, w := binary.Uvarint(b)
		if w != len(binary.AppendUvarint(nil, n)) {
			return false
		}
		b = b[w+int(n):]
	}
	return true
}

// FuzzEncodeEntry: every entry encodeEntry can write decodes to itself.
func FuzzEncodeEntry(f *testing.F) {
	f.Add(byte(1), uint64(0), "", "", "", []byte(nil))
	f.Add(byte(2), uint64(1<<40), "blog", "Post", "p-1", []byte(`{"id":"p-1"}`))
	f.Add(byte(3), ^uint64(0), "s\x00", "m\xff", "id with spaces", []byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, a byte, firstSeen uint64, source, model, id string, payload []byte) {
		b := encodeEntry(nil, Action(a), firstSeen, source, model, id, payload)
		e, err := decodeEntry(b)
		if err != nil {
			t.Fatalf("decodeEntry(encodeEntry(…)): %v", err)
		}
		if e.action != Action(a) || e.firstSeen != firstSeen || string(e.source) != source ||
			string(e.model) != model || string(e.id) != id || !bytes.Equal(e.payload, payload) {
			t.Fatalf("round trip: got %+v", e)
		}
	})
}

// FuzzDecodeIndex: arbitrary bytes never panic; a value of the right length
// decodes, and encodes back to itself once its flag byte is normalised
// (only the deleted bit is kept).
func FuzzDecodeIndex(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, indexValueLen-1))
	f.Add(make([]byte, indexValueLen))
	f.Add(make([]byte, indexValueLen+1))
	f.Add(indexEntry{cursor: store.MakeCursor(1<<33, 7), hash: 0xdeadbeef, firstSeen: 42, deleted: true}.encode())
	f.Add(indexEntry{cursor: store.MakeCursor(^uint64(0), ^uint32(0)), hash: ^uint64(0), firstSeen: ^uint64(0)}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeIndex(b)
		if len(b) != indexValueLen {
			if err == nil {
				t.Fatalf("decodeIndex accepted %d bytes", len(b))
			}
			return
		}
		if err != nil {
			t.Fatalf("decodeIndex refused %d bytes: %v", len(b), err)
		}
		want := append([]byte(nil), b...)
		want[28] &= flagDeleted
		if got := e.encode(); !bytes.Equal(got, want) {
			t.Fatalf("decode→encode:\n in  %x\n out %x", want, got)
		}
		e2, err := decodeIndex(e.encode())
		if err != nil || e2 != e {
			t.Fatalf("round trip: %+v, %v; want %+v", e2, err, e)
		}
	})
}

// FuzzParseCursor: arbitrary strings never panic, through ParseCursor (a
// record's cursor) and ParsePosition (what a client passes as cursor=: a
// cursor or a page token). A cursor that parses prints back as the same
// string, every cursor's string parses back to it, and string order is
// cursor order. A page token that parses carries a positive revision and
// is the same position as the token PageToken makes of it, which starts
// with its cursor's string.
func FuzzParseCursor(f *testing.F) {
	f.Add("")
	f.Add("AAAAAQAAAAUAAAAH")
	f.Add(store.MakeCursor(0, 0).String())
	f.Add(store.MakeCursor(1<<40, 3).String())
	f.Add(store.MakeCursor(^uint64(0), ^uint32(0)).String())
	f.Add("AAAAAQAAAAUAAAA=")
	f.Add("AAAA\nAAAAAAAAAAA")
	f.Add("AAAAAQAAAAUAAAAHX")
	f.Add("!!!!!!!!!!!!!!!!")
	f.Add(PageToken(store.MakeCursor(1<<33, 5), 3))
	f.Add(PageToken(store.MakeCursor(1<<33, 5), 0))
	f.Add(PageToken(store.MakeCursor(1<<33, 5), -1))
	f.Add(PageToken(store.MakeCursor(^uint64(0), ^uint32(0)), 1<<62))
	f.Add("---------------------------")
	f.Add("zzzzzzzzzzzzzzzzzzzzzzzzzzz")
	f.Fuzz(func(t *testing.T, s string) {
		pc, prev, perr := ParsePosition(s)
		if perr == nil {
			switch len(s) {
			case 16:
				if prev != 0 {
					t.Fatalf("ParsePosition(%q): a cursor with revision %d", s, prev)
				}
			case 27:
				if prev <= 0 {
					t.Fatalf("ParsePosition(%q): revision %d", s, prev)
				}
				tok := PageToken(pc, prev)
				if tc, trev, err := ParsePosition(tok); err != nil || tc != pc || trev != prev {
					t.Fatalf("ParsePosition(PageToken(%x, %d)) = %x, %d, %v", pc, prev, tc, trev, err)
				}
				if !strings.HasPrefix(tok, pc.String()) {
					t.Fatalf("PageToken %q does not start with its cursor %q", tok, pc.String())
				}
			default:
				t.Fatalf("ParsePosition accepted %d characters", len(s))
			}
		}

		c, err := ParseCursor(s)
		if (err == nil) != (perr == nil && len(s) == 16) || (err == nil && c != pc) {
			t.Fatalf("ParseCursor(%q) = %x, %v; ParsePosition = %x, %d, %v", s, c, err, pc, prev, perr)
		}
		if err != nil {
			return
		}
		if got := c.String(); got != s {
			t.Fatalf("ParseCursor(%q).String() = %q", s, got)
		}
		// The string's bytes, taken as a cursor, round-trip as well, and
		// string order is cursor order.
		var d Cursor
		copy(d[:], s)
		back, err := ParseCursor(d.String())
		if err != nil || back != d {
			t.Fatalf("ParseCursor(%q) = %x, %v; want %x", d.String(), back, err, d)
		}
		if cmp, scmp := bytes.Compare(c[:], d[:]), compareStrings(s, d.String()); cmp != scmp {
			t.Fatalf("order: cursors compare %d, their strings %d (%q, %q)", cmp, scmp, s, d.String())
		}
	})
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
