package badger

import (
	"fmt"
	"sort"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// liveOf returns the ids of a query's records that are not deleted, sorted.
func liveOf(t *testing.T, l *Layer, q Query) []string {
	t.Helper()
	all, _ := readAll(t, l, q)
	var out []string
	for _, r := range all {
		if r.Metadata["last_action"] != "DELETED" {
			out = append(out, r.ID)
		}
	}
	sort.Strings(out)
	return out
}

func TestConcurrentStagingsPublishIndependently(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	runChanges(t, l, "run_0", save("P", "keep", "K"), save("P", "both", "old"))

	// A stages in place, B (a connection of another source) and C stage
	// privately; B publishes first, then A, then C.
	a, err := l.beginStaging("run_a")
	if err != nil || a.private {
		t.Fatalf("first staging: %v private=%v", err, a != nil && a.private)
	}
	b, err := l.beginStaging("run_b")
	if err != nil || !b.private {
		t.Fatalf("second staging: %v", err)
	}
	c, err := l.beginStaging("run_c")
	if err != nil || !c.private {
		t.Fatalf("third staging: %v", err)
	}
	wa := a.writer("shop", WriterOptions{})
	if err := wa.Apply([]Change{save("P", "a1", "A"), save("P", "both", "from A")}); err != nil {
		t.Fatal(err)
	}
	bkey := SourceKey("crm", "acme")
	wb := b.writer(bkey, WriterOptions{})
	if err := wb.Apply([]Change{save("Contact", "x", "X"), save("Contact", "y", "Y"), save("Contact", "x", "X2")}); err != nil {
		t.Fatal(err)
	}
	if err := wb.Checkpoint("contacts", []byte(`{"page":2}`)); err != nil {
		t.Fatal(err)
	}
	wc := c.writer("shop", WriterOptions{})
	if err := wc.Apply([]Change{save("P", "c1", "C"), save("P", "both", "from C")}); err != nil {
		t.Fatal(err)
	}
	// Nothing staged is visible.
	if got := liveOf(t, l, Query{}); fmt.Sprint(got) != "[both keep]" {
		t.Fatalf("before publishes: %v", got)
	}

	rb, err := b.Publish(PublishInfo{Trigger: "manual", Sources: []string{"crm"}})
	if err != nil {
		t.Fatal(err)
	}
	if rb.Number != 2 || rb.Counts["crm"]["Contact"].Added != 2 {
		t.Fatalf("B's revision %+v", rb)
	}
	// B's records only: A and C still stage.
	if got := liveOf(t, l, Query{}); fmt.Sprint(got) != "[both keep x y]" {
		t.Fatalf("after B: %v", got)
	}
	recs, _ := readAll(t, l, Query{Connection: "acme"})
	if len(recs) != 2 || recs[0].Metadata["source"] != "crm" || recs[0].Metadata["connection"] != "acme" {
		t.Fatalf("connection records %+v", recs)
	}
	if recs, _ := readAll(t, l, Query{Source: "crm", Model: "Contact", IDs: []string{"x"}, Connection: "acme"}); len(recs) != 1 || recs[0].Title != "X2" {
		t.Fatalf("by id: %+v", recs)
	}
	if cp, err := l.Checkpoint(bkey, "contacts"); err != nil || string(cp) != `{"page":2}` {
		t.Fatalf("B's checkpoint %q %v", cp, err)
	}

	ra, err := a.Publish(PublishInfo{Trigger: "manual", Sources: []string{"shop"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := liveOf(t, l, Query{}); fmt.Sprint(got) != "[a1 both keep x y]" {
		t.Fatalf("after A: %v", got)
	}
	rc, err := c.Publish(PublishInfo{Trigger: "manual", Sources: []string{"shop"}})
	if err != nil {
		t.Fatal(err)
	}
	if rc.Number != 4 || ra.Number != 3 {
		t.Fatalf("revision numbers A %d C %d", ra.Number, rc.Number)
	}
	// C published last: its change of "both" stands, as an update.
	all, _ := readAll(t, l, Query{})
	byID := map[string]rec{}
	last := ""
	for _, r := range all {
		cur := r.Metadata["cursor"].(string)
		if cur <= last {
			t.Fatalf("cursors not ascending: %s after %s", cur, last)
		}
		last = cur
		byID[r.ID] = r
	}
	if len(all) != 6 || byID["both"].Title != "from C" || byID["both"].Metadata["revision"].(float64) != 4 {
		t.Fatalf("records after C: %+v", all)
	}
	if c := rc.Counts["shop"]["P"]; c.Added != 1 || c.Updated != 1 {
		t.Fatalf("C's counts %+v", c)
	}
	// Nothing private is left behind.
	if n := countPrefix(t, l, []byte{pfxPrivate}); n != 0 {
		t.Fatalf("%d private keys left", n)
	}
}

func countPrefix(t *testing.T, l *Layer, pfx []byte) int {
	t.Helper()
	n := 0
	if err := l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// Both ways of a private staging: in memory, and on its keys.
func TestPrivateStagingTracksDeletesAndMerges(t *testing.T) {
	for _, mem := range []int{privateMemBytes, 0} {
		t.Run(fmt.Sprintf("memory=%d", mem), func(t *testing.T) {
			defer func(was int) { privateMemBytes = was }(privateMemBytes)
			privateMemBytes = mem
			testPrivateStagingTracksDeletesAndMerges(t)
		})
	}
}

func testPrivateStagingTracksDeletesAndMerges(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	src := SourceKey("crm", "acme")
	other := SourceKey("crm", "globex")
	seedCounts := map[string]int64{}
	for _, k := range []string{src, other} {
		st, _ := l.beginStaging("seed-" + k)
		w := st.writer(k, WriterOptions{})
		if err := w.Apply([]Change{save("C", "1", "one"), save("C", "2", "two"), save("C", "3", "three")}); err != nil {
			t.Fatal(err)
		}
		rev, err := st.Publish(PublishInfo{Trigger: "startup"})
		if err != nil {
			t.Fatal(err)
		}
		seedCounts[k] = rev.Counts["crm"]["C"].Added
	}
	// In place, too, a connection's changes count under its source.
	if c := seedCounts[src]; c != 3 {
		t.Fatalf("in-place counts of a connection: %d added under crm", c)
	}
	hold, _ := l.beginStaging("run_hold") // in place, so the next ones are private
	st, _ := l.beginStaging("run_full")
	if !st.private {
		t.Fatal("not private")
	}
	w := st.writer(src, WriterOptions{TrackDeletes: []string{"C"}, IgnoreIfModifiedAfter: true})
	if err := w.Apply([]Change{save("C", "1", "one"), save("C", "3", "three-new")}); err != nil {
		t.Fatal(err)
	}
	// A webhook changes 3 while the run stages: ignore_if_modified_after
	// keeps the webhook's change.
	if _, err := l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: src, Changes: []Change{save("C", "3", "hook")}}}); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Publish(PublishInfo{Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["crm"]["C"]; c.Deleted != 1 || c.Unchanged != 1 {
		t.Fatalf("counts %+v", c)
	}
	if got := liveOf(t, l, Query{Connection: "acme"}); fmt.Sprint(got) != "[1 3]" {
		t.Fatalf("acme live %v", got)
	}
	if got := liveOf(t, l, Query{Connection: "globex"}); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("globex untouched: %v", got)
	}
	recs, _ := readAll(t, l, Query{Connection: "acme", IDs: []string{"3"}, Source: "crm", Model: "C"})
	if len(recs) != 1 || recs[0].Title != "hook" {
		t.Fatalf("merged record %+v", recs)
	}
	if err := hold.Abort(); err != nil {
		t.Fatal(err)
	}
	// An aborted private staging leaves nothing, and its records never show.
	st2, _ := l.beginStaging("run_in_place")
	st3, _ := l.beginStaging("run_aborted")
	w3 := st3.writer(src, WriterOptions{})
	if err := w3.Apply([]Change{save("C", "9", "nine")}); err != nil {
		t.Fatal(err)
	}
	if err := w3.Checkpoint("s", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if err := st3.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := st2.Abort(); err != nil {
		t.Fatal(err)
	}
	if n := countPrefix(t, l, []byte{pfxPrivate}) + countPrefix(t, l, []byte{pfxPendingCP}); n != 0 {
		t.Fatalf("%d keys left after abort", n)
	}
	if got := liveOf(t, l, Query{Connection: "acme"}); fmt.Sprint(got) != "[1 3]" {
		t.Fatalf("after abort %v", got)
	}
}

func TestPrivateStagingDroppedOnRestart(t *testing.T) {
	dir := t.TempDir()
	s, l := openLayer(t, dir)
	runChanges(t, l, "run_0", save("P", "a", "A"))
	_, _ = l.beginStaging("run_in_place")
	st, _ := l.beginStaging("run_private")
	w := st.writer("shop", WriterOptions{})
	if err := w.Apply([]Change{save("P", "b", "B")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint("s", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // the process stops mid-run
		t.Fatal(err)
	}
	s, l = openLayer(t, dir)
	defer s.Close()
	if n := countPrefix(t, l, []byte{pfxPrivate}) + countPrefix(t, l, []byte{pfxPendingCP}); n != 0 {
		t.Fatalf("%d keys of interrupted runs left", n)
	}
	if got := liveOf(t, l, Query{}); fmt.Sprint(got) != "[a]" {
		t.Fatalf("records %v", got)
	}
}

// A private staging keeps its changes in memory (no key written) until
// they pass privateMemBytes; then what it holds moves to its keys, in
// order with its seen markers, and the rest follows there. Published, it
// is the same revision either way, and its keys are gone.
func TestPrivateStagingSpillsPastItsMemory(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	var seed []Change
	for i := 1; i <= 6; i++ {
		seed = append(seed, save("C", fmt.Sprint(i), "v1"))
	}
	runChanges(t, l, "run_0", seed...)
	defer func(was int) { privateMemBytes = was }(privateMemBytes)
	c := save("C", "1", "v1")
	privateMemBytes = 3 * memSize(&c)

	hold, _ := l.beginStaging("run_hold") // in place: the next one is private
	defer hold.Abort()
	st, _ := l.beginStaging("run_private")
	if !st.private {
		t.Fatal("not private")
	}
	w := st.writer("shop", WriterOptions{TrackDeletes: []string{"C"}})
	if err := w.Apply([]Change{save("C", "1", "v1"), save("C", "2", "v2")}); err != nil {
		t.Fatal(err)
	}
	if n := countPrefix(t, l, []byte{pfxPrivate}); n != 0 {
		t.Fatalf("%d private keys for changes that fit in memory", n)
	}
	if err := w.Apply([]Change{save("C", "3", "v1"), save("C", "2", "v2b")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Apply([]Change{save("C", "5", "v1"), {Model: "C", ID: "4", Delete: true}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint("s", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if err := w.settle(); err != nil { // the checkpoint's flush, in flight
		t.Fatal(err)
	}
	// 6 changes and 5 seen markers (ids 1, 2, 3, 5; 2 twice).
	if n := countPrefix(t, l, []byte{pfxPrivate}); n != 10 {
		t.Fatalf("%d private keys after spilling, want 10", n)
	}
	rev, err := st.Publish(PublishInfo{Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	// 1, 3, 5 unchanged; 2 updated; 4 deleted by the run, 6 as unseen.
	if c := rev.Counts["shop"]["C"]; c.Unchanged != 3 || c.Updated != 1 || c.Deleted != 2 || c.Added != 0 {
		t.Fatalf("counts %+v", c)
	}
	if got := liveOf(t, l, Query{}); fmt.Sprint(got) != "[1 2 3 5]" {
		t.Fatalf("live %v", got)
	}
	if recs, _ := readAll(t, l, Query{IDs: []string{"2"}, Source: "shop", Model: "C"}); len(recs) != 1 || recs[0].Title != "v2b" {
		t.Fatalf("record 2: %+v", recs)
	}
	if n := countPrefix(t, l, []byte{pfxPrivate}); n != 0 {
		t.Fatalf("%d private keys left after the publish", n)
	}
}
