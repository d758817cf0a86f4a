package jsonvalid

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// validObject is the walk of Record without its key check: whether b is
// one JSON object.
func validObject(b []byte) bool { return object(b, &state{}) }

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

// checkCompact holds Compact and the white space verdict of Record to
// encoding/json.Compact, for a valid object b (with the reserved key or
// not: Record walks it whole either way).
func checkCompact(t *testing.T, b []byte) {
	t.Helper()
	ws, err := Record(b)
	if err == ErrNotObject {
		return
	}
	var want bytes.Buffer
	if err := json.Compact(&want, b); err != nil {
		t.Fatalf("json.Compact(%q): %v", b, err)
	}
	if got := Compact([]byte("prefix:"), b); string(got) != "prefix:"+want.String() {
		t.Fatalf("Compact(%q) = %q, encoding/json says %q", b, got[len("prefix:"):], want.Bytes())
	}
	if ws != (want.Len() < len(b)) {
		t.Fatalf("Record(%q) says white space %v; compact is %d of %d bytes", b, ws, want.Len(), len(b))
	}
}

var compactSeeds = []string{
	"{ \"a\" : [ 1 , 2 ] ,\n\t\"b\":{\r\n}}", `{"s":"  keep \" inner  \\ spaces  ","t":" "}`,
	"{\"a\":1}\n", " {}", `{"a":"x\\"}`, `{"<&>":"\u2028"}`,
}

func TestCompactAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range append(append([]string(nil), validObjectSeeds...), compactSeeds...) {
		checkCompact(t, []byte(s))
	}
	if ws, _ := Record([]byte(`{"a":[1,{"b":"c d"}]}`)); ws {
		t.Error("white space inside a string counted as insignificant")
	}
}

// checkRecord holds Record's verdict to encoding/json: an error exactly
// when b is not an object, or is one whose decoded top-level keys include
// _metadata (its white space verdict: checkCompact).
func checkRecord(t *testing.T, b []byte) {
	t.Helper()
	_, err := Record(b)
	var m map[string]json.RawMessage
	var want error
	switch {
	case !jsonObjectByStdlib(b) || json.Unmarshal(b, &m) != nil:
		want = ErrNotObject
	default:
		if _, ok := m[ReservedKey]; ok {
			want = ErrReserved
		}
	}
	if err != want {
		t.Fatalf("Record(%q) = %v, encoding/json says %v", b, err, want)
	}
}

var recordSeeds = []string{
	`{"_metadata":1}`, `{"id":"1","_metadata":{"a":1}}`, `{ "_metadata" : null }`, `{"\u005fmetadata":1}`,
	`{"_m\u0065t\u0061data":1}`, `{"\u005Fmetadata":1}`, `{"x":{"_metadata":1}}`, `{"x":[{"_metadata":1}]}`,
	`{"k":"_metadata"}`, `{"_metadata2":1}`, `{"_metadat":1}`, `{"_Metadata":1}`, `{"\\u005fmetadata":1}`,
	`{"_metadata":1,"_metadata":2}`, `{"a":1,"_metadata":[1,2]`, `{"\u005fmetadata\u0000":1}`,
}

// allSeeds are every seed of the package's tests.
func allSeeds() []string {
	return append(append(append([]string(nil), validObjectSeeds...), compactSeeds...), recordSeeds...)
}

func TestRecordAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range allSeeds() {
		checkRecord(t, []byte(s))
		checkCompact(t, []byte(s))
	}
	for s, want := range map[string]error{`{"_metadata":1}`: ErrReserved, `{"\u005fmetadata":1}`: ErrReserved, `{"x":{"_metadata":1}}`: nil, `[]`: ErrNotObject} {
		if _, err := Record([]byte(s)); err != want {
			t.Errorf("Record(%s) = %v, want %v", s, err, want)
		}
	}
}

// FuzzValidObject holds the validator, the compaction of what it accepts
// and the reserved key check to encoding/json.
func FuzzValidObject(f *testing.F) {
	for _, s := range allSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validObject(b), jsonObjectByStdlib(b); got != want {
			t.Fatalf("validObject(%q) = %v, encoding/json says %v", b, got, want)
		}
		checkCompact(t, b)
		checkRecord(t, b)
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

// benchPayload is a record of about 1 KiB, like the generator's.
func benchPayload(i, version int) []byte {
	b := fmt.Appendf(nil, `{"id":"item-%09d","version":%d,"data":"`, i, version)
	for len(b) < 1022 {
		b = append(b, byte('a'+(i+len(b))%26))
	}
	return append(b, `"}`...)
}
