package badger

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// liveIDs lists source's records as model/id, deleted ones marked "-".
func liveIDs(t *testing.T, l *Layer, source string) string {
	t.Helper()
	var out []string
	recs, _ := readAll(t, l, Query{Source: source})
	for _, r := range recs {
		s := r.Metadata["model"].(string) + "/" + r.ID
		if r.Metadata["deleted_at"] != nil {
			s = "-" + s
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func byIDDelete(id string) Change { return Change{ID: id, Delete: true} }

func TestDeleteByIDResolvesTheModel(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()

	runChanges(t, l, "run_1", save("Post", "p1", "P1"), save("Post", "p2", "P2"), save("Post", "x", "X"),
		save("Author", "a1", "A1"), save("Author", "x", "X"))
	// Another source's record with the same id is not this source's.
	st, err := l.beginStaging("run_other")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.writer("blog", WriterOptions{}).Apply([]Change{save("Post", "p1", "theirs")}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Publish(PublishInfo{Trigger: "manual", Sources: []string{"blog"}}); err != nil {
		t.Fatal(err)
	}

	// p1 and a1 are in one model each, x in both; zz in none. c1 is saved
	// in a model new in this run and deleted by id in the same batch,
	// before anything is flushed.
	rev := runChanges(t, l, "run_2", byIDDelete("p1"), byIDDelete("a1"), byIDDelete("x"), byIDDelete("zz"),
		save("Comment", "c1", "C1"), byIDDelete("c1"), save("Comment", "c2", "C2"))
	if got, want := liveIDs(t, l, "shop"), "-Author/a1 -Author/x -Comment/c1 -Post/p1 -Post/x Comment/c2 Post/p2"; got != want {
		t.Fatalf("shop after the deletes by id:\n got %s\nwant %s", got, want)
	}
	if got := liveIDs(t, l, "blog"); got != "Post/p1" {
		t.Fatalf("the other source's record was touched: %s", got)
	}
	c := rev.Counts["shop"]
	if c["Post"].Deleted != 2 || c["Author"].Deleted != 2 || c["Comment"].Added != 1 || c["Comment"].Deleted != 0 {
		t.Fatalf("counts %+v", c)
	}
	if _, ok := c[""]; ok {
		t.Fatalf("counts name an empty model: %+v", c)
	}

	// Deleting again by id is harmless: nothing changes, no revision counts.
	rev = runChanges(t, l, "run_3", byIDDelete("p1"), byIDDelete("x"))
	for m, n := range rev.Counts["shop"] {
		if n != (Counts{}) {
			t.Fatalf("a repeated delete by id counted %s %+v", m, n)
		}
	}

	// A direct publish (payload webhooks) resolves the same way, seeing its
	// own earlier changes.
	_, err = l.PublishChanges(PublishInfo{Trigger: "webhook", Sources: []string{"shop"}}, []Batch{{Source: "shop",
		Changes: []Change{byIDDelete("p2"), save("Tag", "t1", "T"), byIDDelete("t1"), byIDDelete("zz")}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := liveIDs(t, l, "shop"), "-Author/a1 -Author/x -Comment/c1 -Post/p1 -Post/p2 -Post/x -Tag/t1 Comment/c2"; got != want {
		t.Fatalf("shop after the direct publish:\n got %s\nwant %s", got, want)
	}
}

// TestDeleteByIDAfterFlush: a record saved earlier in the run and flushed
// (as past the writer's pending limit) is found through the index.
func TestDeleteByIDAfterFlush(t *testing.T) {
	s, l, st, w := stagingWriter(t)
	defer s.Close()
	var batch []Change
	for i := range 50 {
		batch = append(batch, save("Big", fmt.Sprintf("b%06d", i), "B"))
	}
	if err := w.Apply(batch); err != nil {
		t.Fatal(err)
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	if len(w.pending) != 0 {
		t.Fatalf("%d entries pending after a flush", len(w.pending))
	}
	if err := w.Apply([]Change{byIDDelete("b000003")}); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Publish(PublishInfo{Trigger: "manual", Sources: []string{"shop"}})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["shop"]["Big"]; c.Added != 49 {
		t.Fatalf("counts %+v", c)
	}
	recs, _ := readAll(t, l, Query{IDs: []string{"b000003", "b000004"}, Model: "Big", Sources: []string{"shop"}})
	deleted := map[string]bool{}
	for _, r := range recs {
		deleted[r.ID] = r.Metadata["deleted_at"] != nil
	}
	if len(recs) != 2 || !deleted["b000003"] || deleted["b000004"] {
		t.Fatalf("want b000003 deleted, b000004 live; got %+v", recs)
	}
}
