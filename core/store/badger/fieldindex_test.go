package badger

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func lookup(t *testing.T, l *Layer, rev int64, field string, values ...any) []string {
	t.Helper()
	s, ok, err := l.openSnapshot(rev)
	if err != nil || !ok {
		t.Fatalf("snapshot %d: %v %v", rev, ok, err)
	}
	defer s.Close()
	ids, _, err := s.Lookup("shop", "M", field, values, 0)
	if err != nil {
		t.Fatalf("lookup %s=%v at %d: %v", field, values, rev, err)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids
}

func doc(id, body string) Change { return Change{Model: "M", ID: id, Data: []byte(body)} }

// The index follows every kind of change, each revision reads its own
// version of it, and only changed records cost work at publish.
func TestFieldIndexFollowsChangesPerRevision(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	if err := l.SetFieldIndexes([]FieldIndex{{Source: "shop", Model: "M", Field: "title"}, {Source: "shop", Model: "M", Field: "tags"}, {Source: "shop", Model: "M", Field: "n"}}); err != nil {
		t.Fatal(err)
	}
	r1 := runChanges(t, l, "run_1",
		doc("a", `{"id":"a","title":"x","tags":["red","blue"],"n":1}`),
		doc("b", `{"id":"b","title":"x","tags":"red","n":1.0}`),
		doc("c", `{"id":"c","title":"y\u0000z","n":true}`))
	eq := func(got []string, want ...string) {
		t.Helper()
		if want == nil {
			want = []string{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	eq(lookup(t, l, r1.Number, "title", "x"), "a", "b")
	eq(lookup(t, l, r1.Number, "title", "y\x00z"), "c")
	eq(lookup(t, l, r1.Number, "tags", "red"), "a", "b")
	eq(lookup(t, l, r1.Number, "tags", "blue", "nope"), "a")
	eq(lookup(t, l, r1.Number, "n", 1), "a", "b")
	eq(lookup(t, l, r1.Number, "n", true), "c")
	eq(lookup(t, l, r1.Number, "n", "1")) // a string is not a number

	// An update, a delete and an unchanged save in one run.
	r2 := runChanges(t, l, "run_2",
		doc("a", `{"id":"a","title":"y\u0000z","tags":["blue"],"n":1}`),
		Change{Model: "M", ID: "b", Delete: true},
		doc("c", `{"id":"c","title":"y\u0000z","n":true}`))
	eq(lookup(t, l, r2.Number, "title", "x"))
	eq(lookup(t, l, r2.Number, "title", "y\x00z"), "a", "c")
	eq(lookup(t, l, r2.Number, "tags", "red"))
	// The older revision still reads its own index.
	eq(lookup(t, l, r1.Number, "title", "x"), "a", "b")

	// A direct publish (payload webhook) revives b.
	r3, err := l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: "shop", Changes: []Change{doc("b", `{"id":"b","title":"w"}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	eq(lookup(t, l, r3.Number, "title", "w"), "b")
	eq(lookup(t, l, r2.Number, "title", "w"))

	// A long value is indexed by its hash and still found.
	long := strings.Repeat("é", 300)
	r4 := runChanges(t, l, "run_4", doc("d", fmt.Sprintf(`{"id":"d","title":%q}`, long)))
	eq(lookup(t, l, r4.Number, "title", long), "d")
	eq(lookup(t, l, r4.Number, "title", long+"x"))
}

// A webhook publish while a run stages, both changing one record: the
// index ends as the record does.
func TestFieldIndexWithInterveningPublish(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	if err := l.SetFieldIndexes([]FieldIndex{{Source: "shop", Model: "M", Field: "title"}}); err != nil {
		t.Fatal(err)
	}
	runChanges(t, l, "run_1", save("M", "a", "1"))
	st, err := l.beginStaging("run_2")
	if err != nil {
		t.Fatal(err)
	}
	w := st.writer("shop", WriterOptions{})
	if err := w.Apply([]Change{save("M", "a", "staged")}); err != nil {
		t.Fatal(err)
	}
	r2, err := l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: "shop", Changes: []Change{save("M", "a", "hook")}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, l, r2.Number, "title", "hook"); len(got) != 1 {
		t.Fatalf("hook value at r2: %v", got)
	}
	r3, err := st.Publish(PublishInfo{Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, l, r3.Number, "title", "staged"); len(got) != 1 {
		t.Fatalf("staged value at r3: %v", got)
	}
	if got := lookup(t, l, r3.Number, "title", "hook"); len(got) != 0 {
		t.Fatalf("hook value still indexed at r3: %v", got)
	}
}

// An index declared over existing data is built for the newest revision;
// older revisions have none; a dropped index is gone; an aborted run leaves
// the index as it was.
func TestFieldIndexBuildDropAndAbort(t *testing.T) {
	dir := t.TempDir()
	s, l := openLayer(t, dir)
	r1 := runChanges(t, l, "run_1", save("M", "a", "1"), save("M", "b", "2"))
	r2 := runChanges(t, l, "run_2", save("M", "a", "2"))
	if err := l.SetFieldIndexes([]FieldIndex{{Source: "shop", Model: "M", Field: "title"}}); err != nil {
		t.Fatal(err)
	}
	if got := lookup(t, l, r2.Number, "title", "2"); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("built index: %v", got)
	}
	snap, _, _ := l.openSnapshot(r1.Number)
	if _, _, err := snap.Lookup("shop", "M", "title", []any{"1"}, 0); !errors.Is(err, ErrNotIndexed) {
		t.Fatalf("older revision: %v", err)
	}
	snap.Close()

	st, _ := l.beginStaging("run_3")
	w := st.writer("shop", WriterOptions{})
	if err := w.Apply([]Change{save("M", "a", "3")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Abort(); err != nil {
		t.Fatal(err)
	}
	// Reopened without SetFieldIndexes, the layer keeps maintaining it.
	s.Close()
	s, l = openLayer(t, dir)
	defer s.Close()
	r4 := runChanges(t, l, "run_4", save("M", "b", "4"))
	if got := lookup(t, l, r4.Number, "title", "2"); !reflect.DeepEqual(got, []string{"a"}) {
		t.Fatalf("after abort and reopen: %v", got)
	}
	if got := lookup(t, l, r4.Number, "title", "4"); !reflect.DeepEqual(got, []string{"b"}) {
		t.Fatalf("after reopen: %v", got)
	}
	if err := l.SetFieldIndexes(nil); err != nil {
		t.Fatal(err)
	}
	snap, _, _ = l.openSnapshot(0)
	defer snap.Close()
	if snap.Indexed("shop", "M", "title") {
		t.Fatal("dropped index still readable")
	}
}

func TestSnapshotGetScanChanges(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	var many []Change
	for i := 0; i < 600; i++ {
		many = append(many, save("M", fmt.Sprintf("id%04d", 599-i), "t"))
	}
	many = append(many, save("N", "x", "other model"))
	r1 := runChanges(t, l, "run_1", many...)
	r2 := runChanges(t, l, "run_2", Change{Model: "M", ID: "id0001", Delete: true}, save("M", "id0002", "changed"))
	snap, ok, err := l.openSnapshot(0)
	if err != nil || !ok {
		t.Fatal(err)
	}
	defer snap.Close()
	if snap.Revision().Number != r2.Number {
		t.Fatalf("revision %d", snap.Revision().Number)
	}
	rec, found, err := snap.Get("shop", "M", "id0001")
	if err != nil || !found || !rec.Deleted() || rec.Revision != r2.Number || rec.FirstSeenAt != r1.CreatedAt {
		t.Fatalf("get deleted: %+v %v %v", rec, found, err)
	}
	if _, found, _ := snap.Get("shop", "M", "nope"); found {
		t.Fatal("found a record that does not exist")
	}
	var ids []string
	err = snap.Scan("shop", "M", "id0000", func(r *StoredRecord) (bool, error) {
		if r.Model != "M" || !strings.Contains(string(r.Payload), r.ID) {
			return false, fmt.Errorf("record %+v with payload %s", r, r.Payload)
		}
		ids = append(ids, r.ID)
		return len(ids) < 400, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 400 || ids[0] != "id0002" || ids[399] != "id0401" {
		t.Fatalf("scan: %d ids, %v … %v", len(ids), ids[0], ids[len(ids)-1])
	}
	var changed []string
	if err := snap.Changes(r1.Number, func(r *StoredRecord) error { changed = append(changed, r.ID+":"+r.Action.String()); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(changed, []string{"id0001:DELETED", "id0002:UPDATED"}) {
		t.Fatalf("changes since r1: %v", changed)
	}
	n := 0
	if err := snap.Changes(0, func(*StoredRecord) error { n++; return nil }); err != nil || n != 601 {
		t.Fatalf("all changes: %d %v", n, err)
	}
}
