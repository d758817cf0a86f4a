package store

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func jsonObjectByStdlib(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n")
	return json.Valid(b) && len(t) > 0 && t[0] == '{'
}

var validObjectSeeds = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a":[1,2,{"b":null}],"c":"x\"y\\z\u00e9"}`, `{"n":-0.5e+10,"m":0,"o":1E3}`,
	`{"a":true,"b":false}`, `{"a":"\t"}`, "{\"a\":\"\x01\"}", `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`,
	`{"a":1,}`, `{,}`, `{"a"}`, `{"a":}`, `{"a" 1}`, `[]`, `"x"`, `1`, `{}{}`, `{"a":[1,]}`, `{"a":"\x"}`,
	`{"a":"\u12"}`, `{"a":tru}`, `{"a":nul}`, `{"a":"unterminated}`, `{` + strings.Repeat(`"a":{`, 50) + strings.Repeat(`}`, 51),
	"{\"a\":\"\xff\xfe\"}", `{"a":1e}`, `{"a":-01}`, `{"é":"ü"}`, "\n{\"a\":[]}\n",
}

func TestValidObjectAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range validObjectSeeds {
		if got, want := validObject([]byte(s)), jsonObjectByStdlib([]byte(s)); got != want {
			t.Errorf("validObject(%q) = %v, encoding/json says %v", s, got, want)
		}
	}
}

// FuzzValidObject holds the validator to encoding/json's verdicts.
func FuzzValidObject(f *testing.F) {
	for _, s := range validObjectSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validObject(b), jsonObjectByStdlib(b); got != want {
			t.Fatalf("validObject(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}

func BenchmarkValidObject(b *testing.B) {
	p := benchPayload(7, 0)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if !validObject(p) {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkValidObjectStdlib(b *testing.B) {
	p := benchPayload(7, 0)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if !json.Valid(p) {
			b.Fatal("invalid")
		}
	}
}
