package graphql

import (
	"encoding/json"
	"testing"
)

func TestPlainASCII(t *testing.T) {
	for _, c := range []struct {
		s    string
		want bool
	}{
		{"", true}, {"abc", true}, {"abcdefghijklmnopqrstuvwxyz 0123456789 ~!@#$%^&*()_+{}|:<>?", true},
		{"abcdefgh\"", false}, {"abcdefghijklmno\\", false}, {"abcdefgh\x1f", false}, {"abcdefgh\x7f", true},
		{"abcdefghijklmnop\x00", false}, {"abc\"defghijklmnop", false}, {"abcdefghijklmnopé", false},
		{"\u2028abcdefghijkl", false}, {"abcdefghijklmnop\n", false},
	} {
		if got := plainASCII([]byte(c.s)); got != c.want {
			t.Errorf("plainASCII(%q) = %t", c.s, got)
		}
	}
}

// FuzzScanObject checks the payload scanner against encoding/json: on a
// JSON object it finds every member, each value decodes to what
// json.Decoder with UseNumber decodes it to, and strings are written as
// encoding/json writes them.
func FuzzScanObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, ` { "a" : "x\"y" , "b":[1,{"c":"]"}], "a\u00e9":true,"n":null } `,
		`{"a":1,"a":2}`, `{"s":"\ud83d\ude00\u2028<>&\u0000"}`, `{"x":-0.5e-3,"y":1E400}`, `{"a":}`, `{"a":1`, `[1]`, `{"a":tru}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fields, err := scanObject([]byte(s), nil)
		var m map[string]json.RawMessage
		jerr := json.Unmarshal([]byte(s), &m)
		if jerr != nil || m == nil {
			if err == nil && json.Valid([]byte(s)) {
				t.Fatalf("scanned a JSON value that is not an object: %q", s)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid object %q: %v", s, err)
		}
		p := []byte(s)
		for k, want := range m {
			raw, ok := lookupRaw(p, fields, k)
			if !ok {
				t.Fatalf("%q: member %q not found", s, k)
			}
			got, err := decodeRaw(raw)
			if err != nil {
				t.Fatalf("%q: member %q: %v", s, k, err)
			}
			ref, _ := decodeRaw(want)
			if js(got) != js(ref) {
				t.Fatalf("%q: member %q: %s, want %s", s, k, js(got), js(ref))
			}
			if str, ok := got.(string); ok {
				b, _ := appendRawString(nil, raw)
				if w, _ := appendJSON(nil, str); string(b) != string(w) {
					t.Fatalf("%q: member %q written %s, want %s", s, k, b, w)
				}
			}
		}
	})
}
