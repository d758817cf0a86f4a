package badger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

func openLayer(t *testing.T, dir string) (*Store, *Layer) {
	t.Helper()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.layer("catalog")
	if err != nil {
		t.Fatal(err)
	}
	return s, l
}

type rec struct {
	ID       string         `json:"id"`
	Title    string         `json:"title"`
	Metadata map[string]any `json:"_metadata"`
}

func readAll(t *testing.T, l *Layer, q Query) ([]rec, Page) {
	t.Helper()
	var out []rec
	page, err := l.Records(q, func(b []byte) error {
		var r rec
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%w: %s", err, b)
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, page
}

func save(model, id, title string) Change {
	return Change{Model: model, ID: id, Data: []byte(fmt.Sprintf(`{"id":%q,"title":%q}`, id, title))}
}

// runChanges stages and publishes one run of changes for source "shop".
func runChanges(t *testing.T, l *Layer, run string, changes ...Change) Revision {
	t.Helper()
	st, err := l.beginStaging(run)
	if err != nil {
		t.Fatal(err)
	}
	w := st.writer("shop", WriterOptions{})
	if err := w.Apply(changes); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Publish(PublishInfo{Trigger: "manual", Sources: []string{"shop"}})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func TestLifecycleActionsAndCursors(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()

	r1 := runChanges(t, l, "run_1", save("Product", "a", "A"), save("Product", "b", "B"), save("Product", "c", "C"))
	if r1.Number != 1 || r1.Counts["shop"]["Product"].Added != 3 {
		t.Fatalf("revision 1 = %+v", r1)
	}
	all, page := readAll(t, l, Query{})
	if len(all) != 3 || page.Next != "" || page.Revision.Number != 1 {
		t.Fatalf("got %d records, page %+v", len(all), page)
	}
	for _, r := range all {
		if r.Metadata["last_action"] != "ADDED" || r.Metadata["revision"].(float64) != 1 || r.Metadata["deleted_at"] != nil {
			t.Fatalf("bad metadata %+v", r.Metadata)
		}
	}
	last := all[2].Metadata["cursor"].(string)

	// Unchanged save: nothing. Update b, delete c, add d.
	r2 := runChanges(t, l, "run_2", save("Product", "a", "A"), save("Product", "b", "B2"),
		Change{Model: "Product", ID: "c", Delete: true}, save("Product", "d", "D"))
	if c := r2.Counts["shop"]["Product"]; c.Added != 1 || c.Updated != 1 || c.Deleted != 1 || c.Unchanged != 1 {
		t.Fatalf("counts = %+v", c)
	}
	cur, _ := ParseCursor(last)
	changed, _ := readAll(t, l, Query{After: &cur})
	got := map[string]string{}
	for _, r := range changed {
		got[r.ID] = r.Metadata["last_action"].(string)
	}
	want := map[string]string{"b": "UPDATED", "c": "DELETED", "d": "ADDED"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after cursor: %v, want %v", got, want)
	}
	// Cursor order is strictly ascending and each record appears once.
	all, _ = readAll(t, l, Query{})
	if len(all) != 4 {
		t.Fatalf("want 4 records, got %d", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].Metadata["cursor"].(string) >= all[i].Metadata["cursor"].(string) {
			t.Fatal("cursors not ascending")
		}
	}
	// The deleted record keeps its payload and gets deleted_at.
	del, _ := readAll(t, l, Query{IDs: []string{"c"}, Model: "Product", Sources: []string{"shop"}})
	if len(del) != 1 || del[0].Title != "C" || del[0].Metadata["deleted_at"] == nil {
		t.Fatalf("deleted record = %+v", del)
	}
	firstSeen := del[0].Metadata["first_seen_at"]

	// Revival keeps first_seen_at and is ADDED.
	runChanges(t, l, "run_3", save("Product", "c", "C again"))
	rev, _ := readAll(t, l, Query{IDs: []string{"c"}, Model: "Product", Sources: []string{"shop"}})
	if rev[0].Metadata["last_action"] != "ADDED" || rev[0].Metadata["deleted_at"] != nil || rev[0].Metadata["first_seen_at"] != firstSeen {
		t.Fatalf("revived = %+v (first seen %v)", rev[0].Metadata, firstSeen)
	}

	// Filters.
	dels, _ := readAll(t, l, Query{Actions: MaskUpdated})
	if len(dels) != 1 || dels[0].ID != "b" {
		t.Fatalf("filter updated: %+v", dels)
	}
	// Older revisions are still readable.
	old, _ := readAll(t, l, Query{Revision: 1})
	if len(old) != 3 || old[1].Title != "B" {
		t.Fatalf("revision 1 = %+v", old)
	}
}

func TestModifiedAfterIsInclusive(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	runChanges(t, l, "run_1", save("M", "a", "1"), save("M", "b", "1"))
	r2 := runChanges(t, l, "run_2", save("M", "b", "2"))
	runChanges(t, l, "run_3", save("M", "c", "3"))
	got, _ := readAll(t, l, Query{ModifiedAfter: r2.CreatedAt})
	if len(got) != 2 || got[0].ID != "b" || got[1].ID != "c" {
		t.Fatalf("modified_after = %+v", got)
	}
	got, _ = readAll(t, l, Query{ModifiedAfter: r2.CreatedAt.Add(time.Microsecond)})
	if len(got) != 1 || got[0].ID != "c" {
		t.Fatalf("modified_after+1µs = %+v", got)
	}
}

func TestPagination(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	var cs []Change
	for i := 0; i < 25; i++ {
		cs = append(cs, save("M", fmt.Sprintf("r%02d", i), "x"))
	}
	runChanges(t, l, "run_1", cs...)
	var ids []string
	q := Query{Limit: 10}
	for pages := 0; ; pages++ {
		got, page := readAll(t, l, q)
		for _, r := range got {
			ids = append(ids, r.ID)
		}
		if page.Next == "" {
			break
		}
		c, rev, err := ParsePosition(page.Next)
		if err != nil || rev != page.Revision.Number {
			t.Fatal(err, rev)
		}
		q.After = &c
		if pages > 5 {
			t.Fatal("too many pages")
		}
	}
	if len(ids) != 25 || ids[24] != "r24" {
		t.Fatalf("walked %v", ids)
	}
}

func TestStagedChangesInvisibleUntilPublishAndAtomic(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	runChanges(t, l, "run_1", save("M", "a", "1"))

	st, err := l.beginStaging("run_2")
	if err != nil {
		t.Fatal(err)
	}
	// A second run stages privately beside it.
	if other, err := l.beginStaging("run_x"); err != nil || !other.private {
		t.Fatalf("second staging: %v (private %v)", err, other != nil && other.private)
	} else if err := other.Abort(); err != nil {
		t.Fatal(err)
	}
	w := st.writer("shop", WriterOptions{})
	const n = 3000
	var stop sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 4)
	for r := 0; r < 2; r++ {
		stop.Add(1)
		go func() {
			defer stop.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				count := 0
				page, err := l.Records(Query{Limit: 10000}, func([]byte) error { count++; return nil })
				if err != nil {
					errs <- err
					return
				}
				want := 1
				if page.Revision.Number == 2 {
					want = n + 1
				}
				if count != want {
					errs <- fmt.Errorf("revision %d showed %d records, want %d", page.Revision.Number, count, want)
					return
				}
			}
		}()
	}
	for i := 0; i < n; i += 100 {
		var cs []Change
		for j := i; j < i+100; j++ {
			cs = append(cs, save("M", fmt.Sprintf("n%05d", j), "x"))
		}
		if err := w.Apply(cs); err != nil {
			t.Fatal(err)
		}
		if i == 1500 {
			if err := w.Checkpoint("s", []byte(`{"i":1500}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if cp, _ := l.Checkpoint("shop", "s"); cp != nil {
		t.Fatal("checkpoint committed before publish")
	}
	if _, err := st.Publish(PublishInfo{Trigger: "manual"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	close(done)
	stop.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if cp, _ := l.Checkpoint("shop", "s"); string(cp) != `{"i":1500}` {
		t.Fatalf("checkpoint = %s", cp)
	}
}

func TestAbortRestoresPublishedState(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	runChanges(t, l, "run_1", save("M", "a", "1"), save("M", "b", "1"))
	st, _ := l.beginStaging("run_2")
	w := st.writer("shop", WriterOptions{})
	if err := w.Apply([]Change{save("M", "a", "2"), {Model: "M", ID: "b", Delete: true}, save("M", "c", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Abort(); err != nil {
		t.Fatal(err)
	}
	// The next run sees the published state: a and b unchanged, c new.
	r := runChanges(t, l, "run_3", save("M", "a", "1"), save("M", "b", "1"), save("M", "c", "1"))
	if c := r.Counts["shop"]["M"]; c.Added != 1 || c.Unchanged != 2 || c.Updated != 0 {
		t.Fatalf("after abort: %+v", c)
	}
	all, _ := readAll(t, l, Query{})
	if len(all) != 3 {
		t.Fatalf("records = %+v", all)
	}
}

func TestInterruptedStagingRolledBackOnOpen(t *testing.T) {
	dir := t.TempDir()
	s, l := openLayer(t, dir)
	runChanges(t, l, "run_1", save("M", "a", "1"))
	st, _ := l.beginStaging("run_2")
	w := st.writer("shop", WriterOptions{})
	if err := w.Apply([]Change{save("M", "a", "2"), save("M", "b", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint("s", []byte(`{}`)); err != nil { // flushes to disk
		t.Fatal(err)
	}
	s.Close() // as a crash would: no publish
	s, l = openLayer(t, dir)
	defer s.Close()
	all, _ := readAll(t, l, Query{})
	if len(all) != 1 || all[0].Title != "1" {
		t.Fatalf("after reopen: %+v", all)
	}
	// The run queued again under the same id must not resume from the
	// checkpoint of changes that were rolled back.
	st, err := l.beginStaging("run_2")
	if err != nil {
		t.Fatal(err)
	}
	if cp, own, err := st.Checkpoint("shop", "s", false); err != nil || own || cp != nil {
		t.Fatalf("checkpoint of the interrupted run after reopen: %s own=%v %v", cp, own, err)
	}
	if err := st.Abort(); err != nil {
		t.Fatal(err)
	}
	r := runChanges(t, l, "run_3", save("M", "a", "1"), save("M", "b", "1"))
	if c := r.Counts["shop"]["M"]; c.Added != 1 || c.Unchanged != 1 {
		t.Fatalf("after recovery: %+v", c)
	}
	if r.Number != 2 {
		t.Fatalf("revision = %d", r.Number)
	}
}

func TestDuplicateSavesInOneFreshRun(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	st, _ := l.beginStaging("run_1")
	w := st.writer("shop", WriterOptions{})
	for i := 0; i < 3; i++ {
		if err := w.Apply([]Change{save("M", "a", fmt.Sprint(i)), save("M", "b", "x")}); err != nil {
			t.Fatal(err)
		}
		if err := w.Checkpoint("s", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	rev, err := st.Publish(PublishInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["shop"]["M"]; c.Added != 2 {
		t.Fatalf("counts = %+v", c)
	}
	all, _ := readAll(t, l, Query{})
	if len(all) != 2 || all[1].ID != "a" || all[1].Title != "2" || all[1].Metadata["last_action"] != "ADDED" {
		t.Fatalf("records = %+v", all)
	}
}

func TestEventsAndRuns(t *testing.T) {
	dir := t.TempDir()
	s, l := openLayer(t, dir)
	for i := 0; i < 5; i++ {
		if _, err := l.AppendEvent(Event{Type: "sync.started", Run: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.PutRun(&Run{ID: "run_1", State: RunCompleted}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, l = openLayer(t, dir)
	defer s.Close()
	e, _ := l.AppendEvent(Event{Type: "x"})
	if e.Seq != 6 {
		t.Fatalf("seq after reopen = %d", e.Seq)
	}
	evs, err := l.Events(2, 2)
	if err != nil || len(evs) != 2 || evs[0].Seq != 3 {
		t.Fatalf("events = %+v %v", evs, err)
	}
	r, err := l.GetRun("run_1")
	if err != nil || r.State != RunCompleted {
		t.Fatalf("run = %+v %v", r, err)
	}
	if _, err := l.GetRun("nope"); err != ErrNotFound {
		t.Fatalf("missing run: %v", err)
	}
}

// Pruning every event must not restart the numbering: clients poll with
// after=<last seq they saw>.
func TestEventSequenceSurvivesPruning(t *testing.T) {
	dir := t.TempDir()
	s, l := openLayer(t, dir)
	for i := 0; i < 5; i++ {
		if _, err := l.AppendEvent(Event{Type: "x", Time: time.Now().Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.AppendAudit(AuditEntry{Action: "x", Time: time.Now().Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.PruneEvents(time.Now()); err != nil || n != 5 {
		t.Fatalf("pruned %d events, %v", n, err)
	}
	if n, err := l.PruneAudit(time.Now()); err != nil || n != 5 {
		t.Fatalf("pruned %d audit entries, %v", n, err)
	}
	s.Close()
	s, l = openLayer(t, dir)
	defer s.Close()
	if e, _ := l.AppendEvent(Event{Type: "y"}); e.Seq != 6 {
		t.Fatalf("event seq after pruning all and reopening = %d, want 6", e.Seq)
	}
	if a, _ := l.AppendAudit(AuditEntry{Action: "y"}); a.Seq != 6 {
		t.Fatalf("audit seq after pruning all and reopening = %d, want 6", a.Seq)
	}
}

// A start reads only the queued and running runs; finished runs are pruned
// by age.
func TestActiveRunsAndPruning(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	old := time.Now().Add(-48 * time.Hour)
	id := func(at time.Time, n int) string { return fmt.Sprintf("run_%012x%04d", at.UnixMilli(), n) }
	fin := old.Add(time.Minute)
	for i := 0; i < 3; i++ {
		if err := l.PutRun(&Run{ID: id(old, i), State: RunCompleted, FinishedAt: &fin}); err != nil {
			t.Fatal(err)
		}
	}
	queued := &Run{ID: id(old, 9), State: RunQueued}
	if err := l.PutRun(queued); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	recent := &Run{ID: id(now, 1), State: RunRunning}
	if err := l.PutRun(recent); err != nil {
		t.Fatal(err)
	}
	active, err := l.ActiveRuns()
	if err != nil || len(active) != 2 {
		t.Fatalf("active runs %+v %v", active, err)
	}
	recent.State, recent.FinishedAt = RunCompleted, &now
	if err := l.PutRun(recent); err != nil {
		t.Fatal(err)
	}
	if active, _ = l.ActiveRuns(); len(active) != 1 || active[0].ID != queued.ID {
		t.Fatalf("active runs after one finished: %+v", active)
	}
	if n, err := l.PruneRuns(time.Now().Add(-time.Hour)); err != nil || n != 3 {
		t.Fatalf("pruned %d runs, %v; want 3", n, err)
	}
	runs, _ := l.Runs()
	if len(runs) != 2 {
		t.Fatalf("runs left %+v", runs)
	}
}

func TestCursorParsing(t *testing.T) {
	c := store.MakeCursor(42, 7)
	p, err := ParseCursor(c.String())
	if err != nil || p != c {
		t.Fatal("round trip")
	}
	for _, bad := range []string{"", "x", "AAAAAAAAAAAAAAAAAAAA", "!!!!!!!!!!!!!!!!"} {
		if _, err := ParseCursor(bad); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
}

func grepDir(t *testing.T, dir string, needle []byte) string {
	t.Helper()
	var hit string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || hit != "" {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, needle) {
			hit = p
		}
		return nil
	})
	return hit
}

func TestCursorStringsSortLikeCursors(t *testing.T) {
	var prev string
	for _, ts := range []uint64{1, 2, 63, 64, 255, 256, 1 << 32, 1<<32 + 1, 1 << 40} {
		for _, seq := range []uint32{0, 1, 51, 52, 62, 63, 64, 1 << 20} {
			s := store.MakeCursor(ts, seq).String()
			if s <= prev {
				t.Fatalf("cursor (%d,%d) = %q sorts before %q", ts, seq, s, prev)
			}
			prev = s
		}
	}
}

// A walk that follows next_cursor stays on the revision it started on,
// even when a revision is published meanwhile; a record's own cursor reads
// the current revision.
func TestWalkStaysOnItsRevision(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	runChanges(t, l, "run_1", save("M", "a", "1"), save("M", "b", "1"), save("M", "c", "1"))
	got, page := readAll(t, l, Query{Limit: 2})
	if len(got) != 2 || page.Next == "" {
		t.Fatalf("first page %+v %+v", got, page)
	}
	runChanges(t, l, "run_2", save("M", "a", "2"))
	c, rev, err := ParsePosition(page.Next)
	if err != nil || rev != 1 {
		t.Fatal(err, rev)
	}
	rest, page2 := readAll(t, l, Query{After: &c, Revision: rev, Limit: 2})
	if len(rest) != 1 || rest[0].ID != "c" || page2.Revision.Number != 1 || page2.Next != "" {
		t.Fatalf("rest of the walk %+v %+v", rest, page2)
	}
	// From the last record's cursor, the current revision shows a's update.
	last, _, _ := ParsePosition(rest[0].Metadata["cursor"].(string))
	newer, _ := readAll(t, l, Query{After: &last})
	if len(newer) != 1 || newer[0].ID != "a" || newer[0].Title != "2" {
		t.Fatalf("changes after the walk: %+v", newer)
	}
}

func TestIDsHonourLimit(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	runChanges(t, l, "run_1", save("M", "a", "1"), save("M", "b", "1"), save("M", "c", "1"))
	q := Query{Model: "M", IDs: []string{"c", "a", "b", "zz"}, Sources: []string{"shop"}, Limit: 2}
	got, page := readAll(t, l, q)
	if len(got) != 2 || got[0].ID != "a" || got[1].ID != "b" || page.Next == "" {
		t.Fatalf("first page %+v %+v", got, page)
	}
	c, rev, err := ParsePosition(page.Next)
	if err != nil || rev != 1 {
		t.Fatal(err, rev)
	}
	q.After, q.Revision = &c, rev
	got, page = readAll(t, l, q)
	if len(got) != 1 || got[0].ID != "c" || page.Next != "" {
		t.Fatalf("second page %+v %+v", got, page)
	}
}
