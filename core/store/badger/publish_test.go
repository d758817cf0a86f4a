package badger

import (
	"errors"
	"fmt"
	"testing"
)

func manyChanges(n int, title string) []Change {
	cs := make([]Change, n)
	for i := range cs {
		cs[i] = save("M", fmt.Sprintf("r%06d", i), title)
	}
	return cs
}

// A direct publish larger than one commit (a big payload webhook: above
// ~13,000 changes it used to fail with "Txn is too big" and stall the
// inbox for good) publishes as one revision, committed in parts. 6,000
// changes make three parts; integration's TestBigWebhookDoesNotStallTheInbox
// sends 16,000 through the real host.
func TestLargeDirectPublish(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	runChanges(t, l, "run_1", save("M", "r000000", "before"))
	rev, err := l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: "shop", Changes: manyChanges(6000, "big")}})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["shop"]["M"]; c.Added != 5999 || c.Updated != 1 || rev.Number != 2 {
		t.Fatalf("revision %d counts %+v", rev.Number, c)
	}
	got, _ := readAll(t, l, Query{Limit: 10000})
	if len(got) != 6000 {
		t.Fatalf("first page %d", len(got))
	}
	old, _ := readAll(t, l, Query{Revision: 1})
	if len(old) != 1 || old[0].Title != "before" {
		t.Fatalf("revision 1 after the big publish: %+v", old)
	}
	if b, _ := l.getLatest(metaKey(metaPublishing)); b != nil {
		t.Fatal("the partial-publish marker is left behind")
	}
}

// A big publish that fails after some of its parts were committed leaves
// nothing of it behind.
func TestLargeDirectPublishFailureRollsBack(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	runChanges(t, l, "run_1", save("M", "r000001", "before"))
	testHookPublishPart = func(part int) error {
		if part == 3 {
			return errors.New("injected")
		}
		return nil
	}
	defer func() { testHookPublishPart = nil }()
	if _, err := l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: "shop", Changes: manyChanges(10000, "big")}}); err == nil {
		t.Fatal("publish succeeded")
	}
	testHookPublishPart = nil
	got, page := readAll(t, l, Query{})
	if len(got) != 1 || got[0].Title != "before" || page.Revision.Number != 1 {
		t.Fatalf("after a failed publish: %+v rev %d", got, page.Revision.Number)
	}
	rev := runChanges(t, l, "run_2", manyChanges(3, "after")...)
	if c := rev.Counts["shop"]["M"]; c.Added != 2 || c.Updated != 1 {
		t.Fatalf("the next run sees leftovers: %+v", c)
	}
	all, _ := readAll(t, l, Query{})
	if len(all) != 3 {
		t.Fatalf("records %+v", all)
	}
}

// A crash between the parts of a big publish (simulated by a panic that
// stops it) is rolled back when the layer opens again.
func TestInterruptedLargeDirectPublishRolledBackOnOpen(t *testing.T) {
	dir := t.TempDir()
	s, l := openLayer(t, dir)
	runChanges(t, l, "run_1", save("M", "r000001", "before"))
	testHookPublishPart = func(part int) error {
		if part == 2 {
			panic("crash")
		}
		return nil
	}
	func() {
		defer func() { recover() }()
		l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: "shop", Changes: manyChanges(10000, "big")}})
	}()
	testHookPublishPart = nil
	s.Close()
	s, l = openLayer(t, dir)
	defer s.Close()
	got, _ := readAll(t, l, Query{})
	if len(got) != 1 || got[0].Title != "before" {
		t.Fatalf("after reopen: %d records, first %+v", len(got), got[0])
	}
	rev := runChanges(t, l, "run_2", manyChanges(3, "after")...)
	if c := rev.Counts["shop"]["M"]; c.Added != 2 || c.Updated != 1 {
		t.Fatalf("the next run sees leftovers: %+v", c)
	}
}

// A staging publish whose reconcile takes several commits (5,000 records
// changed by webhooks while it staged: three parts) publishes.
func TestLargeReconcilePublishes(t *testing.T) {
	s, l, st, w := stagingWriter(t)
	defer s.Close()
	if err := w.Apply(manyChanges(5000, "staged")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Webhooks change every record while the run stages.
	if _, err := l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: "shop", Changes: manyChanges(5000, "webhook")}}); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Publish(PublishInfo{Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if rev.Number != 2 {
		t.Fatalf("revision %d", rev.Number)
	}
	n := 0
	q := Query{Limit: 10000}
	for {
		got, page := readAll(t, l, q)
		for _, r := range got {
			if r.Title != "staged" {
				t.Fatalf("record %s: %q, want the run's (override)", r.ID, r.Title)
			}
		}
		n += len(got)
		if page.Next == "" {
			break
		}
		c, rv, _ := ParsePosition(page.Next)
		q = Query{After: &c, Revision: rv, Limit: 10000}
	}
	if n != 5000 {
		t.Fatalf("%d records, want 5000 (one entry each)", n)
	}
}

// Merging is per sync: a sync with ignore_if_modified_after gives way to
// fresher webhook changes, another sync of the same source does not; what
// gives way is not counted.
func TestMergingPerSyncAndCounts(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	runChanges(t, l, "run_1", save("A", "a", "0"), save("B", "b", "0"))
	st, err := l.beginStaging("run_2")
	if err != nil {
		t.Fatal(err)
	}
	wa := st.writer("shop", WriterOptions{IgnoreIfModifiedAfter: true, Models: []string{"A"}})
	if err := wa.Apply([]Change{save("A", "a", "run")}); err != nil {
		t.Fatal(err)
	}
	wb := st.writer("shop", WriterOptions{Models: []string{"B"}})
	if err := wb.Apply([]Change{save("B", "b", "run")}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: "shop", Changes: []Change{save("A", "a", "hook"), save("B", "b", "hook")}}}); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Publish(PublishInfo{Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := readAll(t, l, Query{})
	titles := map[string]string{}
	for _, r := range got {
		titles[r.ID] = r.Title
	}
	if titles["a"] != "hook" || titles["b"] != "run" {
		t.Fatalf("records %v: want a from the webhook (ignore_if_modified_after), b from the run (override)", titles)
	}
	if c := rev.Counts["shop"]["A"]; c.Updated != 0 {
		t.Fatalf("counts of A %+v: the change that gave way is counted", c)
	}
	if c := rev.Counts["shop"]["B"]; c.Updated != 1 {
		t.Fatalf("counts of B %+v", c)
	}
}

// A direct publish to a model with no record yet reads nothing from the
// tree for its changes (direct.fresh), yet sees its own: a record saved
// twice is added once, one saved then deleted is never live, and a second
// publish reads the first's records as usual.
func TestDirectPublishToAFreshModel(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	src := SourceKey("crm", "acme")
	rev, err := l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: src, Changes: []Change{
		save("C", "1", "one"), save("C", "2", "two"), save("C", "1", "one-b"),
		save("C", "3", "three"), {Model: "C", ID: "3", Delete: true},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["crm"]["C"]; c.Added != 2 || c.Updated != 0 || c.Deleted != 0 {
		t.Fatalf("counts of the first publish %+v", c)
	}
	if got := liveOf(t, l, Query{Connection: "acme"}); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("live %v", got)
	}
	if recs, _ := readAll(t, l, Query{Connection: "acme", IDs: []string{"1"}, Source: "crm", Model: "C"}); len(recs) != 1 || recs[0].Title != "one-b" {
		t.Fatalf("record 1: %+v", recs)
	}
	rev, err = l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: src, Changes: []Change{
		save("C", "1", "one-b"), save("C", "2", "two-b"), {Model: "C", ID: "1", Delete: true}, save("C", "4", "four"),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["crm"]["C"]; c.Added != 1 || c.Updated != 1 || c.Deleted != 1 {
		t.Fatalf("counts of the second publish %+v", c)
	}
	if got := liveOf(t, l, Query{Connection: "acme"}); fmt.Sprint(got) != "[2 4]" {
		t.Fatalf("live after the second publish %v", got)
	}
}
