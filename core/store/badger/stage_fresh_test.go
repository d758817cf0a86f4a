package badger

import (
	"fmt"
	"testing"
)

// A first run (into a model with no records) reads no index entry for an id
// it did not write yet, and finds every one it did: in the writer's pending
// entries before a flush, through the filter of written ids after one.
// Either way a record sent twice is stored once and counted as updated.
func TestFreshModelFindsItsOwnRecordsAcrossFlushes(t *testing.T) {
	s, l, st, w := stagingWriter(t)
	defer s.Close()
	n := pendingLimit + 500 // one flush on the way
	var batch []Change
	for i := 0; i < n; i++ {
		batch = append(batch, save("M", fmt.Sprint(i), "v1"))
		if len(batch) == 1000 {
			if err := w.Apply(batch); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	if err := w.Apply(batch); err != nil {
		t.Fatal(err)
	}
	if w.seen.bits == nil {
		t.Fatal("no filter of written ids after a flush")
	}
	// Again: ids flushed long ago, and ids still pending.
	again := []Change{save("M", "0", "v2"), save("M", "7", "v2"), save("M", fmt.Sprint(n-1), "v2"), save("M", fmt.Sprint(n-2), "v2")}
	if err := w.Apply(again); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Publish(PublishInfo{Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["shop"]["M"]; c.Added != int64(n) || c.Updated != 0 {
		// Changes of one run to a record it added count once, as added.
		t.Fatalf("counts %+v, want %d added", c, n)
	}
	got := liveOf(t, l, Query{Limit: 100000})
	if len(got) != n {
		t.Fatalf("%d records, want %d", len(got), n)
	}
	recs, _ := readAll(t, l, Query{IDs: []string{"0", "7", fmt.Sprint(n - 1)}, Source: "shop", Model: "M"})
	for _, r := range recs {
		if r.Title != "v2" {
			t.Fatalf("record %s = %q, want v2", r.ID, r.Title)
		}
	}

	// A small first run never makes the filter.
	st, _ = l.beginStaging("run_2")
	w = st.writer("other", WriterOptions{})
	if err := w.Apply([]Change{save("M", "a", "1"), save("M", "b", "1"), save("M", "a", "2")}); err != nil {
		t.Fatal(err)
	}
	// Its last checkpoint flushes it: the filter is made only if a change
	// follows, and then it has the flushed ids.
	if err := w.Checkpoint("sync", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if w.seen.bits != nil {
		t.Fatal("a run of three records made the filter of written ids")
	}
	if err := w.Apply([]Change{save("M", "b", "2")}); err != nil {
		t.Fatal(err)
	}
	if w.seen.bits == nil || w.flushed != nil {
		t.Fatal("a change after a flush did not make the filter from the flushed ids")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if rev, err = st.Publish(PublishInfo{Trigger: "manual"}); err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["other"]["M"]; c.Added != 2 {
		t.Fatalf("counts %+v, want 2 added", c)
	}
}
