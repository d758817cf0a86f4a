package badger

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

// checkCompact holds compactJSON and the white space verdict of
// validObjectWS to encoding/json.Compact, for a valid object b.
func checkCompact(t *testing.T, b []byte) {
	t.Helper()
	ok, ws := validObjectWS(b)
	if !ok {
		return
	}
	var want bytes.Buffer
	if err := json.Compact(&want, b); err != nil {
		t.Fatalf("json.Compact(%q): %v", b, err)
	}
	if got := compactJSON([]byte("prefix:"), b); string(got) != "prefix:"+want.String() {
		t.Fatalf("compactJSON(%q) = %q, encoding/json says %q", b, got[len("prefix:"):], want.Bytes())
	}
	if ws != (want.Len() < len(b)) {
		t.Fatalf("validObjectWS(%q) says white space %v; compact is %d of %d bytes", b, ws, want.Len(), len(b))
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
	if _, ws := validObjectWS([]byte(`{"a":[1,{"b":"c d"}]}`)); ws {
		t.Error("white space inside a string counted as insignificant")
	}
}

// FuzzValidObject holds the validator, and the compaction of what it
// accepts, to encoding/json.
func FuzzValidObject(f *testing.F) {
	for _, s := range append(append([]string(nil), validObjectSeeds...), compactSeeds...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validObject(b), jsonObjectByStdlib(b); got != want {
			t.Fatalf("validObject(%q) = %v, encoding/json says %v", b, got, want)
		}
		checkCompact(t, b)
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

// TestRecordsAreStoredCompact: a record sent with white space is stored
// and read compact, strings untouched; sending the same bytes again is
// unchanged; a compact record is stored as it is.
func TestRecordsAreStoredCompact(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	spaced := "{\n  \"id\": \"a\",\n  \"title\": \"two  spaces\",\n  \"tags\": [ \"x\" , \"y\" ]\n}"
	compact := `{"id":"b","title":" edge "}`
	runChanges(t, l, "run_1", Change{Model: "Post", ID: "a", Data: []byte(spaced)}, Change{Model: "Post", ID: "b", Data: []byte(compact)})
	got := map[string]string{}
	if _, err := l.Records(Query{}, func(b []byte) error {
		var r struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		// The record's own attributes come before the host's _metadata.
		got[r.ID] = string(b[:bytes.Index(b, []byte(`,"_metadata"`))])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"a","title":"two  spaces","tags":["x","y"]`; got["a"] != want {
		t.Errorf("stored %s, want %s…", got["a"], want)
	}
	if want := compact[:len(compact)-1]; got["b"] != want {
		t.Errorf("stored %s, want %s…", got["b"], want)
	}
	rev := runChanges(t, l, "run_2", Change{Model: "Post", ID: "a", Data: []byte(spaced)})
	if c := rev.Counts["shop"]["Post"]; c.Unchanged != 1 || c.Updated != 0 {
		t.Errorf("resending the same bytes: %+v, want unchanged", c)
	}
}
