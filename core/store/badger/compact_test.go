package badger

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestRecordsAreStoredCompact: a record sent with white space is stored
// and read compact, strings untouched; sending the same bytes again is
// unchanged; a compact record is stored as it is. Runs staging in place and
// privately (their records checked once, when staged) store the same.
func TestRecordsAreStoredCompact(t *testing.T) {
	t.Run("in place", func(t *testing.T) { testRecordsAreStoredCompact(t, false) })
	t.Run("privately", func(t *testing.T) { testRecordsAreStoredCompact(t, true) })
}

func testRecordsAreStoredCompact(t *testing.T, private bool) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	if private {
		// While a run stages in place, the others stage privately.
		hold, err := l.beginStaging("run_hold")
		if err != nil {
			t.Fatal(err)
		}
		defer hold.Abort()
	}
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
