package badger

import (
	"fmt"
	"strings"
	"testing"
)

// Scan reaches the next record of a batch by stepping when it is near and
// by seeking when it is not: records of two models interleaved with gaps
// of every size, in id order and against it, each read once, in id order,
// with its own payload.
func TestScanStepsAndSeeks(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	var cs []Change
	want := map[string]bool{}
	for i := 0; i < 700; i++ {
		id := fmt.Sprintf("m%04d", i)
		if i%3 == 2 {
			id = fmt.Sprintf("m%04d", 2000-i) // against id order
		}
		cs = append(cs, save("M", id, "t"))
		want[id] = true
		for j := 0; j < i%(2*scanSteps+3); j++ { // a gap of another model
			cs = append(cs, save("N", fmt.Sprintf("n%04d-%02d", i, j), "other"))
		}
	}
	runChanges(t, l, "run_1", cs...)
	snap, _, err := l.openSnapshot(0)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	prev := ""
	n := 0
	err = snap.Scan("shop", "M", "", func(r *StoredRecord) (bool, error) {
		if r.ID <= prev || !want[r.ID] || !strings.Contains(string(r.Payload), `"`+r.ID+`"`) {
			return false, fmt.Errorf("record %s after %s, payload %s", r.ID, prev, r.Payload)
		}
		prev = r.ID
		n++
		return true, nil
	})
	if err != nil || n != len(want) {
		t.Fatalf("scan read %d of %d: %v", n, len(want), err)
	}
}
