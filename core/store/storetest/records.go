package storetest

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// testRecords: staging and publishing record changes (SPEC §4, §5, §12).
func testRecords(t *testing.T, d Driver) {
	// A run's saves, updates and deletes: actions, counts, cursors, soft
	// deletes that keep the payload, revival that keeps first_seen_at.
	test(t, d, "ActionsAndCounts", func(t *testing.T, e *env) {
		l := e.l
		r1 := publish(t, l, "run_1", "shop", save("Product", "a", "A"), save("Product", "b", "B"), save("Product", "c", "C"))
		if r1.Number != 1 || r1.Counts["shop"]["Product"] != (store.Counts{Added: 3}) {
			t.Fatalf("revision 1 = %+v", r1)
		}
		all, page := readAll(t, l, store.Query{})
		if len(all) != 3 || page.Next != "" || page.Revision.Number != 1 {
			t.Fatalf("revision 1 reads %d records, page %+v", len(all), page)
		}
		for _, r := range all {
			if r.action() != "ADDED" || r.revision() != 1 || r.deleted() {
				t.Fatalf("metadata of a new record: %+v", r.Meta)
			}
		}
		last := cursorOf(t, all[2])
		// An unchanged save, an update, a delete and an addition.
		r2 := publish(t, l, "run_2", "shop", save("Product", "a", "A"), save("Product", "b", "B2"), del("Product", "c"), save("Product", "d", "D"))
		if c := r2.Counts["shop"]["Product"]; c != (store.Counts{Added: 1, Updated: 1, Deleted: 1, Unchanged: 1}) {
			t.Fatalf("counts of revision 2 = %+v", c)
		}
		changed, _ := readAll(t, l, store.Query{After: last})
		got := map[string]string{}
		for _, r := range changed {
			got[r.ID] = r.action()
		}
		if want := map[string]string{"b": "UPDATED", "c": "DELETED", "d": "ADDED"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("changes after the last cursor of revision 1: %v, want %v", got, want)
		}
		all, _ = readAll(t, l, store.Query{})
		if len(all) != 4 {
			t.Fatalf("%d records, want 4, each once", len(all))
		}
		checkAscending(t, all)
		// The deleted record keeps its payload, with deleted_at set.
		c := byID(all)["c"]
		if c.Title != "C" || !c.deleted() || c.str("deleted_at") != c.str("last_modified_at") || c.revision() != 2 {
			t.Fatalf("deleted record %+v", c)
		}
		// A later save revives it as ADDED, first_seen_at kept.
		r3 := publish(t, l, "run_3", "shop", save("Product", "c", "C again"))
		if c := r3.Counts["shop"]["Product"]; c != (store.Counts{Added: 1}) {
			t.Fatalf("counts of a revival %+v", c)
		}
		got3, _ := readAll(t, l, store.Query{Model: "Product", IDs: []string{"c"}, Sources: []string{"shop"}})
		if len(got3) != 1 || got3[0].action() != "ADDED" || got3[0].deleted() || got3[0].Title != "C again" ||
			got3[0].str("first_seen_at") != rendered(r1.CreatedAt) || got3[0].str("last_modified_at") != rendered(r3.CreatedAt) {
			t.Fatalf("revived record %+v (revision 1 at %s, 3 at %s)", got3, rendered(r1.CreatedAt), rendered(r3.CreatedAt))
		}
		// An update keeps first_seen_at too.
		b := byID(all)["b"]
		if b.str("first_seen_at") != rendered(r1.CreatedAt) || b.str("last_modified_at") != rendered(r2.CreatedAt) {
			t.Fatalf("updated record %+v", b.Meta)
		}
	})

	// A save of a payload identical to the stored one changes nothing: no
	// new cursor, no new revision of the record, counted as unchanged.
	test(t, d, "UnchangedSaveKeepsCursor", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_1", "shop", save("M", "a", "1"), save("M", "b", "1"))
		before, _ := readAll(t, l, store.Query{})
		r2 := publish(t, l, "run_2", "shop", save("M", "a", "1"), save("M", "b", "1"))
		if c := r2.Counts["shop"]["M"]; c != (store.Counts{Unchanged: 2}) {
			t.Fatalf("counts of unchanged saves %+v", c)
		}
		after, page := readAll(t, l, store.Query{})
		if page.Revision.Number != 2 {
			t.Fatalf("read revision %d", page.Revision.Number)
		}
		for i := range after {
			if after[i].cursor() != before[i].cursor() || after[i].revision() != 1 {
				t.Fatalf("an unchanged save moved record %s: %+v, was %+v", after[i].ID, after[i].Meta, before[i].Meta)
			}
		}
		if got, _ := readAll(t, l, store.Query{After: cursorOf(t, after[1])}); len(got) != 0 {
			t.Fatalf("changes after unchanged saves: %s", ids(got))
		}
		// Deleting a deleted record is unchanged as well.
		publish(t, l, "run_3", "shop", del("M", "a"))
		r4 := publish(t, l, "run_4", "shop", del("M", "a"), del("M", "never"))
		if c := r4.Counts["shop"]["M"]; c.Changed() != 0 {
			t.Fatalf("deleting deleted and unknown records counted %+v", c)
		}
		if got, _ := readAll(t, l, store.Query{IDs: []string{"never"}, Model: "M", Sources: []string{"shop"}}); len(got) != 0 {
			t.Fatalf("a delete of an unknown record made one: %+v", got)
		}
	})

	// Changes to one record within a run: the last one stands and the
	// record counts once.
	test(t, d, "ChangesWithinOneRun", func(t *testing.T, e *env) {
		l := e.l
		st, err := l.BeginStaging("run_1")
		if err != nil {
			t.Fatal(err)
		}
		if st.Run() != "run_1" {
			t.Fatalf("staging of run %q", st.Run())
		}
		w := st.Writer("shop", store.WriterOptions{})
		for i := 0; i < 3; i++ {
			if err := w.Apply([]store.Change{save("M", "a", fmt.Sprint(i)), save("M", "b", "x")}); err != nil {
				t.Fatal(err)
			}
			if err := w.Checkpoint("s", []byte(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
				t.Fatal(err)
			}
		}
		// Added and deleted within the run: not counted.
		if err := w.Apply([]store.Change{save("M", "gone", "x"), del("M", "gone")}); err != nil {
			t.Fatal(err)
		}
		rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
		if err != nil {
			t.Fatal(err)
		}
		if c := rev.Counts["shop"]["M"]; c.Added != 2 || c.Updated != 0 || c.Deleted != 0 {
			t.Fatalf("counts %+v", c)
		}
		got := byID(func() []rec { r, _ := readAll(t, l, store.Query{}); return r }())
		if a := got["a"]; a.Title != "2" || a.action() != "ADDED" || got["b"].action() != "ADDED" || got["gone"].ID != "" && !got["gone"].deleted() {
			t.Fatalf("records %+v", got)
		}
		// In the next run: updated then deleted counts as a delete;
		// deleted then saved again as an update.
		st, _ = l.BeginStaging("run_2")
		w = st.Writer("shop", store.WriterOptions{})
		if err := w.Apply([]store.Change{save("M", "a", "3"), del("M", "a"), del("M", "b"), save("M", "b", "y")}); err != nil {
			t.Fatal(err)
		}
		rev, err = st.Publish(store.PublishInfo{Trigger: "manual"})
		if err != nil {
			t.Fatal(err)
		}
		if c := rev.Counts["shop"]["M"]; c.Added != 0 || c.Updated != 1 || c.Deleted != 1 {
			t.Fatalf("counts of update+delete, delete+save: %+v", c)
		}
		got = byID(func() []rec { r, _ := readAll(t, l, store.Query{}); return r }())
		if !got["a"].deleted() || got["b"].deleted() || got["b"].Title != "y" || got["b"].action() != "UPDATED" {
			t.Fatalf("records %+v", got)
		}
	})

	// A delete by id alone (an empty model) deletes the record of that id
	// in every model of the source that holds it live.
	test(t, d, "DeleteByID", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_1", "shop", save("Post", "p1", "P1"), save("Post", "p2", "P2"), save("Post", "x", "X"),
			save("Author", "a1", "A1"), save("Author", "x", "X"))
		publish(t, l, "run_other", "blog", save("Post", "p1", "theirs"))
		state := func(source string) string {
			recs, _ := readAll(t, l, store.Query{Source: source})
			var out []string
			for _, r := range recs {
				s := r.str("model") + "/" + r.ID
				if r.deleted() {
					s = "-" + s
				}
				out = append(out, s)
			}
			return strings.Join(sorted(out), " ")
		}
		// c1 is saved in a model new in this run and deleted by id in
		// the same batch.
		rev := publish(t, l, "run_2", "shop", delByID("p1"), delByID("a1"), delByID("x"), delByID("zz"),
			save("Comment", "c1", "C1"), delByID("c1"), save("Comment", "c2", "C2"))
		if got, want := state("shop"), "-Author/a1 -Author/x -Comment/c1 -Post/p1 -Post/x Comment/c2 Post/p2"; got != want {
			t.Fatalf("after deletes by id:\n got %s\nwant %s", got, want)
		}
		if got := state("blog"); got != "Post/p1" {
			t.Fatalf("another source's record with the id was touched: %s", got)
		}
		c := rev.Counts["shop"]
		if c["Post"].Deleted != 2 || c["Author"].Deleted != 2 || c["Comment"].Added != 1 || c["Comment"].Deleted != 0 {
			t.Fatalf("counts %+v", c)
		}
		if _, ok := c[""]; ok {
			t.Fatalf("counts name an empty model: %+v", c)
		}
		rev = publish(t, l, "run_3", "shop", delByID("p1"), delByID("x"))
		for m, n := range rev.Counts["shop"] {
			if n.Changed() != 0 {
				t.Fatalf("a repeated delete by id counted %s %+v", m, n)
			}
		}
		// A direct publish resolves the same way, seeing its own changes.
		direct(t, l, "shop", delByID("p2"), save("Tag", "t1", "T"), delByID("t1"), delByID("zz"))
		if got, want := state("shop"), "-Author/a1 -Author/x -Comment/c1 -Post/p1 -Post/p2 -Post/x -Tag/t1 Comment/c2"; got != want {
			t.Fatalf("after a direct publish:\n got %s\nwant %s", got, want)
		}
	})

	// Only JSON objects are stored: a bad payload fails its change set and
	// nothing of it is published.
	test(t, d, "InvalidJSONRejected", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_0", "shop", save("M", "ok", "1"))
		for i, bad := range []string{`{}{}`, `{"a":1} x }`, `{"a":}`, `[1]`, `"s"`, ``} {
			if err := stageBad(t, l, fmt.Sprintf("run_bad_%d", i), bad); err == nil {
				t.Fatalf("the payload %q was published", bad)
			}
			if n, _ := l.Newest(); n.Number != 1 {
				t.Fatalf("a change set with the payload %q published revision %d", bad, n.Number)
			}
		}
		_, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook"}, []store.Batch{{Source: "shop",
			Changes: []store.Change{save("M", "good", "x"), {Model: "M", ID: "a", Data: []byte(`{"a":`)}}}})
		if err == nil {
			t.Fatal("a direct publish stored invalid JSON")
		}
		if got, page := readAll(t, l, store.Query{}); ids(got) != "ok" || page.Revision.Number != 1 {
			t.Fatalf("after rejected change sets: %s at revision %d", ids(got), page.Revision.Number)
		}
	})

	// Readers add _metadata to every record: a record may not have it at
	// its top level, however its key is spelled, staged in place, staged
	// beside another run or published directly. Nested, or as a value, it
	// is the record's own.
	test(t, d, "ReservedKeyRejected", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_0", "shop", save("M", "ok", "1"))
		rejected := func(what string, err error) {
			t.Helper()
			if err == nil || !strings.Contains(err.Error(), "_metadata") {
				t.Fatalf("%s: error %v, want one about _metadata", what, err)
			}
		}
		for i, bad := range []string{`{"_metadata":{"source":"x"}}`, `{"id":"a","\u005fmetadata":1}`, `{ "_metadata" : null }`} {
			for _, beside := range []bool{false, true} {
				var other store.Staging
				if beside {
					var err error
					if other, err = l.BeginStaging(fmt.Sprintf("run_other_%d", i)); err != nil {
						t.Fatal(err)
					}
				}
				err := stageBad(t, l, fmt.Sprintf("run_bad_%d_%v", i, beside), bad)
				rejected(fmt.Sprintf("staging %s (beside another run: %v)", bad, beside), err)
				if other != nil {
					_ = other.Abort()
				}
			}
			_, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook"}, []store.Batch{{Source: "shop",
				Changes: []store.Change{save("M", "good", "x"), {Model: "M", ID: "a", Data: []byte(bad)}}}})
			rejected("direct publish of "+bad, err)
		}
		if got, page := readAll(t, l, store.Query{}); ids(got) != "ok" || page.Revision.Number != 1 {
			t.Fatalf("after rejected change sets: %s at revision %d", ids(got), page.Revision.Number)
		}
		publish(t, l, "run_1", "shop", store.Change{Model: "M", ID: "n", Data: []byte(`{"id":"n","x":{"_metadata":1},"k":"_metadata","_metadata2":1}`)})
		if got, _ := readAll(t, l, store.Query{}); ids(got) != "ok n" {
			t.Fatalf("records %s, want ok n", ids(got))
		}
	})

	// A run's changes are invisible until it publishes, then all visible at
	// once: readers during the publish see revision 1 whole or revision 2
	// whole.
	test(t, d, "StagedInvisibleUntilPublish", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_1", "shop", save("M", "a", "1"))
		st, err := l.BeginStaging("run_2")
		if err != nil {
			t.Fatal(err)
		}
		w := st.Writer("shop", store.WriterOptions{})
		const n = 2000
		done := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var readErr error
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-done:
						return
					default:
					}
					count := 0
					page, err := l.Records(store.Query{Limit: 10000}, func([]byte) error { count++; return nil })
					want := 1
					if page.Revision.Number == 2 {
						want = n + 1
					}
					if err == nil && count != want {
						err = fmt.Errorf("revision %d showed %d records, want %d", page.Revision.Number, count, want)
					}
					if err != nil {
						mu.Lock()
						readErr = err
						mu.Unlock()
						return
					}
				}
			}()
		}
		for i := 0; i < n; i += 100 {
			var cs []store.Change
			for j := i; j < i+100; j++ {
				cs = append(cs, save("M", fmt.Sprintf("n%05d", j), "x"))
			}
			if err := w.Apply(cs); err != nil {
				t.Fatal(err)
			}
			if i == 1000 {
				if err := w.Checkpoint("s", []byte(`{"i":1000}`)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if cp, err := l.Checkpoint("shop", "s"); err != nil || cp != nil {
			t.Fatalf("checkpoint committed before the publish: %s %v", cp, err)
		}
		if got, page := readAll(t, l, store.Query{Limit: 10000}); len(got) != 1 || page.Revision.Number != 1 {
			t.Fatalf("while staging: %d records at revision %d", len(got), page.Revision.Number)
		}
		if nw, _ := l.Newest(); nw.Number != 1 {
			t.Fatalf("newest revision while staging: %d", nw.Number)
		}
		rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
		if err != nil {
			t.Fatal(err)
		}
		// Let the readers see the new revision before they stop.
		eventually(t, "readers see revision 2", func() bool {
			_, page := readAll(t, l, store.Query{Limit: 1})
			return page.Revision.Number == rev.Number
		})
		close(done)
		wg.Wait()
		if readErr != nil {
			t.Fatal(readErr)
		}
		if got, _ := walk(t, l, store.Query{Limit: 1000}); len(got) != n+1 {
			t.Fatalf("after publish: %d records, want %d", len(got), n+1)
		}
		if cp, _ := l.Checkpoint("shop", "s"); string(cp) != `{"i":1000}` {
			t.Fatalf("checkpoint after publish = %s", cp)
		}
	})

	// A run's checkpoints become the syncs' committed checkpoints with its
	// revision; a retry resumes from its own; an aborted run's are dropped.
	test(t, d, "CheckpointsPublishedWithRevision", func(t *testing.T, e *env) {
		l := e.l
		conn := store.SourceKey("crm", "acme")
		if cp, err := l.Checkpoint("shop", "s"); err != nil || cp != nil {
			t.Fatalf("checkpoint of a new layer: %s %v", cp, err)
		}
		st, _ := l.BeginStaging("run_1")
		w := st.Writer("shop", store.WriterOptions{})
		if err := w.Apply([]store.Change{save("M", "a", "1")}); err != nil {
			t.Fatal(err)
		}
		if err := w.Checkpoint("s", []byte(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		wc := st.Writer(conn, store.WriterOptions{})
		if err := wc.Checkpoint("contacts", []byte(`{"page":2}`)); err != nil {
			t.Fatal(err)
		}
		if err := w.Checkpoint("bad", []byte(`not json`)); err == nil {
			t.Fatal("a checkpoint that is not JSON was staged")
		}
		if _, err := st.Publish(store.PublishInfo{Trigger: "manual"}); err != nil {
			t.Fatal(err)
		}
		if cp, _ := l.Checkpoint("shop", "s"); string(cp) != `{"v":1}` {
			t.Fatalf("committed checkpoint %s", cp)
		}
		if cp, _ := l.Checkpoint(conn, "contacts"); string(cp) != `{"page":2}` {
			t.Fatalf("committed checkpoint of a connection %s", cp)
		}
		if cp, _ := l.Checkpoint("crm", "contacts"); cp != nil {
			t.Fatalf("the connection's checkpoint is the source's too: %s", cp)
		}
		// The next run resumes from the committed checkpoint, or from
		// scratch.
		st, _ = l.BeginStaging("run_2")
		if cp, own, err := st.Checkpoint("shop", "s", false); err != nil || own || string(cp) != `{"v":1}` {
			t.Fatalf("resume checkpoint %s own=%v %v", cp, own, err)
		}
		if cp, own, err := st.Checkpoint("shop", "s", true); err != nil || own || cp != nil {
			t.Fatalf("from scratch %s own=%v %v", cp, own, err)
		}
		w = st.Writer("shop", store.WriterOptions{})
		if err := w.Checkpoint("s", []byte(`{"v":2}`)); err != nil {
			t.Fatal(err)
		}
		// Its own checkpoint wins, even from scratch (a retry continues).
		for _, scratch := range []bool{false, true} {
			if cp, own, err := st.Checkpoint("shop", "s", scratch); err != nil || !own || string(cp) != `{"v":2}` {
				t.Fatalf("own checkpoint (from scratch %v) %s own=%v %v", scratch, cp, own, err)
			}
		}
		if cp, _ := l.Checkpoint("shop", "s"); string(cp) != `{"v":1}` {
			t.Fatalf("a staged checkpoint is committed before its revision: %s", cp)
		}
		if _, err := st.Publish(store.PublishInfo{Trigger: "manual"}); err != nil {
			t.Fatal(err)
		}
		if cp, _ := l.Checkpoint("shop", "s"); string(cp) != `{"v":2}` {
			t.Fatalf("committed checkpoint %s", cp)
		}
		// An aborted run's checkpoint is dropped, for its next attempt too.
		st, _ = l.BeginStaging("run_3")
		w = st.Writer("shop", store.WriterOptions{})
		if err := w.Checkpoint("s", []byte(`{"v":3}`)); err != nil {
			t.Fatal(err)
		}
		if err := st.Abort(); err != nil {
			t.Fatal(err)
		}
		if cp, _ := l.Checkpoint("shop", "s"); string(cp) != `{"v":2}` {
			t.Fatalf("checkpoint after an abort %s", cp)
		}
		st, _ = l.BeginStaging("run_3")
		if cp, own, err := st.Checkpoint("shop", "s", false); err != nil || own || string(cp) != `{"v":2}` {
			t.Fatalf("the aborted run's checkpoint came back: %s own=%v %v", cp, own, err)
		}
		if err := st.Abort(); err != nil {
			t.Fatal(err)
		}
	})

	// Every completed run publishes a revision, even one that changed
	// nothing; the revision says what made it.
	test(t, d, "RevisionOfEmptyRun", func(t *testing.T, e *env) {
		l := e.l
		st, err := l.BeginStaging("run_empty")
		if err != nil {
			t.Fatal(err)
		}
		r1, err := st.Publish(store.PublishInfo{Trigger: "schedule", Sources: []string{"shop", "blog"}})
		if err != nil {
			t.Fatal(err)
		}
		if r1.Number != 1 || r1.Trigger != "schedule" || r1.Run != "run_empty" || fmt.Sprint(r1.Sources) != "[blog shop]" || r1.CreatedAt.IsZero() {
			t.Fatalf("revision of an empty run %+v", r1)
		}
		for s, m := range r1.Counts {
			for model, c := range m {
				if c != (store.Counts{}) {
					t.Fatalf("an empty run counted %s/%s %+v", s, model, c)
				}
			}
		}
		if !r1.CreatedAt.Equal(r1.CreatedAt.Truncate(time.Microsecond)) {
			t.Fatalf("commit time %s is finer than the microseconds records show", r1.CreatedAt)
		}
		st, _ = l.BeginStaging("run_x")
		r2, err := st.Publish(store.PublishInfo{Trigger: "manual", Run: "run_named"})
		if err != nil {
			t.Fatal(err)
		}
		if r2.Number != 2 || r2.Run != "run_named" || len(r2.Sources) != 0 || !r2.CreatedAt.After(r1.CreatedAt) {
			t.Fatalf("second revision %+v after %+v", r2, r1)
		}
		r3 := direct(t, l, "shop")
		if r3.Number != 3 || r3.Trigger != "webhook" || !r3.CreatedAt.After(r2.CreatedAt) {
			t.Fatalf("an empty direct publish %+v", r3)
		}
		if nw, ok := l.Newest(); !ok || nw.Number != 3 || nw.Trigger != "webhook" || fmt.Sprint(nw.Sources) != "[shop]" {
			t.Fatalf("newest %+v %v", nw, ok)
		}
	})

	// Runs stage side by side and each publishes as its own revision, in
	// the order they publish, not the order they began.
	test(t, d, "StagingsSideBySide", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_0", "shop", save("P", "keep", "K"), save("P", "both", "old"))
		a, err := l.BeginStaging("run_a")
		if err != nil {
			t.Fatal(err)
		}
		b, err := l.BeginStaging("run_b")
		if err != nil {
			t.Fatal(err)
		}
		c, err := l.BeginStaging("run_c")
		if err != nil {
			t.Fatal(err)
		}
		wa := a.Writer("shop", store.WriterOptions{})
		if err := wa.Apply([]store.Change{save("P", "a1", "A"), save("P", "both", "from A")}); err != nil {
			t.Fatal(err)
		}
		bkey := store.SourceKey("crm", "acme")
		wb := b.Writer(bkey, store.WriterOptions{})
		if err := wb.Apply([]store.Change{save("Contact", "x", "X"), save("Contact", "y", "Y"), save("Contact", "x", "X2")}); err != nil {
			t.Fatal(err)
		}
		if err := wb.Checkpoint("contacts", []byte(`{"page":2}`)); err != nil {
			t.Fatal(err)
		}
		wc := c.Writer("shop", store.WriterOptions{})
		if err := wc.Apply([]store.Change{save("P", "c1", "C"), save("P", "both", "from C")}); err != nil {
			t.Fatal(err)
		}
		if err := wc.Checkpoint("s", []byte(`{"c":1}`)); err != nil {
			t.Fatal(err)
		}
		if got, _ := readAll(t, l, store.Query{}); live(got) != "both keep" {
			t.Fatalf("before any publish: %s", live(got))
		}
		rb, err := b.Publish(store.PublishInfo{Trigger: "manual", Sources: []string{"crm"}})
		if err != nil {
			t.Fatal(err)
		}
		if rb.Number != 2 || rb.Counts["crm"]["Contact"].Added != 2 {
			t.Fatalf("B's revision %+v", rb)
		}
		if got, _ := readAll(t, l, store.Query{}); live(got) != "both keep x y" {
			t.Fatalf("after B: %s", live(got))
		}
		recs, _ := readAll(t, l, store.Query{Connection: "acme"})
		if len(recs) != 2 || recs[0].str("source") != "crm" || recs[0].str("connection") != "acme" {
			t.Fatalf("connection records %+v", recs)
		}
		if cp, err := l.Checkpoint(bkey, "contacts"); err != nil || string(cp) != `{"page":2}` {
			t.Fatalf("B's checkpoint %s %v", cp, err)
		}
		if cp, _ := l.Checkpoint("shop", "s"); cp != nil {
			t.Fatalf("C's checkpoint is committed with B's revision: %s", cp)
		}
		ra, err := a.Publish(store.PublishInfo{Trigger: "manual", Sources: []string{"shop"}})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := readAll(t, l, store.Query{}); live(got) != "a1 both keep x y" {
			t.Fatalf("after A: %s", live(got))
		}
		rc, err := c.Publish(store.PublishInfo{Trigger: "manual", Sources: []string{"shop"}})
		if err != nil {
			t.Fatal(err)
		}
		if ra.Number != 3 || rc.Number != 4 {
			t.Fatalf("revision numbers A %d, C %d", ra.Number, rc.Number)
		}
		all, _ := readAll(t, l, store.Query{})
		checkAscending(t, all)
		m := byID(all)
		if len(all) != 6 || m["both"].Title != "from C" || m["both"].revision() != 4 || m["both"].action() != "UPDATED" {
			t.Fatalf("records after C: %+v", all)
		}
		if c := rc.Counts["shop"]["P"]; c.Added != 1 || c.Updated != 1 {
			t.Fatalf("C's counts %+v", c)
		}
		if cp, _ := l.Checkpoint("shop", "s"); string(cp) != `{"c":1}` {
			t.Fatalf("C's checkpoint %s", cp)
		}
	})

	// Runs staging and publishing from many goroutines, beside direct
	// publishes: one revision each, numbered in publish order; cursors and
	// commit times grow with the revision; modified_after is exact.
	test(t, d, "StagingsInParallel", func(t *testing.T, e *env) {
		l := e.l
		const runs, hooks, per = 4, 2, 100
		var wg sync.WaitGroup
		revs := make(chan store.Revision, runs+hooks)
		for i := range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				src := fmt.Sprintf("s%d", i)
				st, err := l.BeginStaging("run_" + src)
				if err != nil {
					t.Error(err)
					return
				}
				w := st.Writer(src, store.WriterOptions{})
				for j := 0; j < per; j += 10 {
					var cs []store.Change
					for k := j; k < j+10; k++ {
						cs = append(cs, save("M", fmt.Sprintf("%s-%03d", src, k), src))
					}
					if err := w.Apply(cs); err != nil {
						t.Error(err)
						return
					}
				}
				rev, err := st.Publish(store.PublishInfo{Trigger: "manual", Sources: []string{src}})
				if err != nil {
					t.Error(err)
					return
				}
				revs <- rev
			}()
		}
		for i := range hooks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				src := fmt.Sprintf("h%d", i)
				var cs []store.Change
				for k := 0; k < per; k++ {
					cs = append(cs, save("M", fmt.Sprintf("%s-%03d", src, k), src))
				}
				rev, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook", Sources: []string{src}}, []store.Batch{{Source: src, Changes: cs}})
				if err != nil {
					t.Error(err)
					return
				}
				revs <- rev
			}()
		}
		wg.Wait()
		close(revs)
		if t.Failed() {
			return
		}
		checkRevisionOrder(t, l, collect(revs), (runs+hooks)*per)
	})

	// Writers of different sources of one staging may be used at once.
	test(t, d, "WritersInParallel", func(t *testing.T, e *env) {
		l := e.l
		st, err := l.BeginStaging("run_1")
		if err != nil {
			t.Fatal(err)
		}
		const sources, per = 4, 250
		var wg sync.WaitGroup
		for i := range sources {
			w := st.Writer(fmt.Sprintf("s%d", i), store.WriterOptions{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < per; j += 50 {
					var cs []store.Change
					for k := j; k < j+50; k++ {
						cs = append(cs, save("M", fmt.Sprintf("r%03d", k), "x"))
					}
					if err := w.Apply(cs); err != nil {
						t.Error(err)
						return
					}
				}
				if err := w.Checkpoint("s", []byte(`{"done":true}`)); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
		if err != nil {
			t.Fatal(err)
		}
		for i := range sources {
			src := fmt.Sprintf("s%d", i)
			if c := rev.Counts[src]["M"]; c != (store.Counts{Added: per}) {
				t.Fatalf("counts of %s %+v", src, c)
			}
			if cp, _ := l.Checkpoint(src, "s"); string(cp) != `{"done":true}` {
				t.Fatalf("checkpoint of %s: %s", src, cp)
			}
		}
		all, _ := walk(t, l, store.Query{Limit: 300})
		if len(all) != sources*per {
			t.Fatalf("%d records, want %d", len(all), sources*per)
		}
		checkAscending(t, all)
	})

	// Abort drops a run's changes: the next run sees the published state.
	test(t, d, "AbortRestoresPublished", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_1", "shop", save("M", "a", "1"), save("M", "b", "1"))
		for _, beside := range []bool{false, true} {
			var hold store.Staging
			if beside {
				hold, _ = l.BeginStaging("run_hold")
			}
			st, err := l.BeginStaging("run_2")
			if err != nil {
				t.Fatal(err)
			}
			w := st.Writer("shop", store.WriterOptions{TrackDeletes: []string{"M"}})
			if err := w.Apply([]store.Change{save("M", "a", "2"), del("M", "b"), save("M", "c", "1")}); err != nil {
				t.Fatal(err)
			}
			if err := st.Abort(); err != nil {
				t.Fatal(err)
			}
			if hold != nil {
				if err := hold.Abort(); err != nil {
					t.Fatal(err)
				}
			}
			if got, page := readAll(t, l, store.Query{}); live(got) != "a b" || byID(got)["a"].Title != "1" || page.Revision.Number != 1 {
				t.Fatalf("after an abort (beside another staging: %v): %s at revision %d", beside, live(got), page.Revision.Number)
			}
		}
		r := publish(t, l, "run_3", "shop", save("M", "a", "1"), save("M", "b", "1"), save("M", "c", "1"))
		if c := r.Counts["shop"]["M"]; c != (store.Counts{Added: 1, Unchanged: 2}) {
			t.Fatalf("the run after aborts counted %+v", c)
		}
		if r.Number != 2 {
			t.Fatalf("aborted runs took revision numbers: %d", r.Number)
		}
	})

	// A staging is done once published or aborted.
	test(t, d, "StagingDone", func(t *testing.T, e *env) {
		l := e.l
		st, _ := l.BeginStaging("run_1")
		if _, err := st.Publish(store.PublishInfo{Trigger: "manual"}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Publish(store.PublishInfo{Trigger: "manual"}); !errors.Is(err, store.ErrStagingDone) {
			t.Fatalf("second publish: %v, want ErrStagingDone", err)
		}
		if err := st.Abort(); !errors.Is(err, store.ErrStagingDone) {
			t.Fatalf("abort after publish: %v, want ErrStagingDone", err)
		}
		if err := st.NextAttempt(); !errors.Is(err, store.ErrStagingDone) {
			t.Fatalf("next attempt after publish: %v, want ErrStagingDone", err)
		}
		st, _ = l.BeginStaging("run_2")
		if err := st.Abort(); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Publish(store.PublishInfo{Trigger: "manual"}); !errors.Is(err, store.ErrStagingDone) {
			t.Fatalf("publish after abort: %v, want ErrStagingDone", err)
		}
		if err := st.Abort(); !errors.Is(err, store.ErrStagingDone) {
			t.Fatalf("second abort: %v, want ErrStagingDone", err)
		}
		if nw, _ := l.Newest(); nw.Number != 1 {
			t.Fatalf("newest %d", nw.Number)
		}
	})

	// A failed attempt's changes stay staged; the retry writes on top of
	// them from the run's checkpoint, and each record counts once.
	test(t, d, "NextAttemptResumes", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_1", "shop", save("M", "old", "0"))
		for _, beside := range []bool{false, true} {
			var hold store.Staging
			if beside {
				hold, _ = l.BeginStaging("run_hold")
			}
			run := fmt.Sprintf("run_retry_%v", beside)
			st, _ := l.BeginStaging(run)
			w := st.Writer("shop", store.WriterOptions{})
			if err := w.Apply([]store.Change{save("M", "a", run), save("M", "b", run)}); err != nil {
				t.Fatal(err)
			}
			if err := w.Checkpoint("s", []byte(`{"after":"b"}`)); err != nil {
				t.Fatal(err)
			}
			if err := w.Apply([]store.Change{save("M", "c", run)}); err != nil {
				t.Fatal(err)
			}
			w.Close() // the attempt fails here
			if cp, own, _ := st.Checkpoint("shop", "s", false); !own || string(cp) != `{"after":"b"}` {
				t.Fatalf("resume checkpoint %s own=%v", cp, own)
			}
			if err := st.NextAttempt(); err != nil {
				t.Fatal(err)
			}
			w = st.Writer("shop", store.WriterOptions{})
			if err := w.Apply([]store.Change{save("M", "c", run), save("M", "d", run)}); err != nil {
				t.Fatal(err)
			}
			rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
			if err != nil {
				t.Fatal(err)
			}
			want := store.Counts{Added: 4}
			if beside {
				want = store.Counts{Updated: 4}
			}
			if c := rev.Counts["shop"]["M"]; c != want {
				t.Fatalf("counts of a retried run (beside another staging: %v) %+v, want %+v", beside, c, want)
			}
			got, _ := readAll(t, l, store.Query{})
			if len(got) != 5 {
				t.Fatalf("records %s", ids(got))
			}
			for _, id := range []string{"a", "b", "c", "d"} {
				if byID(got)[id].Title != run {
					t.Fatalf("record %s = %+v", id, byID(got)[id])
				}
			}
			if hold != nil {
				if err := hold.Abort(); err != nil {
					t.Fatal(err)
				}
			}
		}
	})

	// track_deletes: records of a tracked model the run did not save become
	// deleted when it publishes; other models and a failed run delete
	// nothing.
	// A payload webhook adds a record while a full run with
	// track_deletes stages (in place, or beside another staging): under
	// ignore_if_modified_after it stays, a change after the staging began
	// not being the run's to undo; under override the run, which did not
	// see it, deletes it. Either way it is in the revision, readable.
	for _, c := range []struct {
		name            string
		ignore, besides bool
	}{{"TrackDeletesSpareAFresherWebhook", true, false}, {"TrackDeletesOverrideAFresherWebhook", false, false},
		{"TrackDeletesSpareAFresherWebhookBesideAnother", true, true}, {"TrackDeletesOverrideAFresherWebhookBesideAnother", false, true}} {
		test(t, d, c.name, func(t *testing.T, e *env) {
			l := e.l
			first, err := l.BeginStaging("run_0")
			if err != nil {
				t.Fatal(err)
			}
			if err := first.Writer("shop", store.WriterOptions{}).Apply([]store.Change{save("M", "old", "o"), save("M", "gone", "g")}); err != nil {
				t.Fatal(err)
			}
			if _, err := first.Publish(store.PublishInfo{Trigger: "manual"}); err != nil {
				t.Fatal(err)
			}
			if c.besides {
				other, err := l.BeginStaging("run_other")
				if err != nil {
					t.Fatal(err)
				}
				defer other.Abort()
			}
			st, err := l.BeginStaging("run_1")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook"}, []store.Batch{{Source: "shop", Changes: []store.Change{save("M", "hook", "h")}}}); err != nil {
				t.Fatal(err)
			}
			w := st.Writer("shop", store.WriterOptions{IgnoreIfModifiedAfter: c.ignore, TrackDeletes: []string{"M"}})
			if err := w.Apply([]store.Change{save("M", "old", "o")}); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
			if err != nil {
				t.Fatal(err)
			}
			snap, ok, err := l.OpenSnapshot(rev.Number)
			if err != nil || !ok {
				t.Fatalf("snapshot %d: %v %v", rev.Number, ok, err)
			}
			defer snap.Close()
			got := map[string]string{}
			for _, id := range []string{"old", "gone", "hook"} {
				r, ok, err := snap.Get("shop", "M", id)
				if err != nil {
					t.Fatalf("get %s: %v", id, err)
				}
				if ok {
					got[id] = r.Action.String()
				}
			}
			want := map[string]string{"old": "ADDED", "gone": "DELETED", "hook": "DELETED"}
			if c.ignore {
				want["hook"] = "ADDED"
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("records %v (counts %+v), want %v", got, rev.Counts["shop"]["M"], want)
			}
		})
	}

	test(t, d, "TrackDeletes", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_0", "shop", save("N", "x", "1"))
		for i, beside := range []bool{false, true} {
			src := fmt.Sprintf("src%d", i)
			publish(t, l, "seed_"+src, src, save("M", "a", "1"), save("M", "b", "1"), save("M", "c", "1"), save("N", "x", "1"))
			var hold store.Staging
			if beside {
				hold, _ = l.BeginStaging("run_hold")
			}
			st, _ := l.BeginStaging("run_full_" + src)
			w := st.Writer(src, store.WriterOptions{TrackDeletes: []string{"M"}})
			if err := w.Apply([]store.Change{save("M", "a", "1"), save("M", "c", "2")}); err != nil {
				t.Fatal(err)
			}
			rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
			if err != nil {
				t.Fatal(err)
			}
			if c := rev.Counts[src]["M"]; c != (store.Counts{Deleted: 1, Updated: 1, Unchanged: 1}) {
				t.Fatalf("counts (beside another staging: %v) %+v", beside, c)
			}
			got, _ := readAll(t, l, store.Query{Source: src, Actions: store.MaskDeleted})
			if ids(got) != "b" {
				t.Fatalf("deleted (beside another staging: %v): %s", beside, ids(got))
			}
			// A failed run deletes nothing.
			st, _ = l.BeginStaging("run_failed_" + src)
			w = st.Writer(src, store.WriterOptions{TrackDeletes: []string{"M", "N"}})
			if err := w.Apply([]store.Change{save("M", "a", "1")}); err != nil {
				t.Fatal(err)
			}
			if err := st.Abort(); err != nil {
				t.Fatal(err)
			}
			if hold != nil {
				if err := hold.Abort(); err != nil {
					t.Fatal(err)
				}
			}
			got, _ = readAll(t, l, store.Query{Source: src})
			if live(got) != "a c x" {
				t.Fatalf("after a failed run: live %s", live(got))
			}
		}
		if got, _ := readAll(t, l, store.Query{Source: "shop"}); live(got) != "x" {
			t.Fatalf("another source: %s", live(got))
		}
	})

	// track_deletes of one connection leaves the others alone; counts of
	// connections add up under their source.
	test(t, d, "TrackDeletesPerConnection", func(t *testing.T, e *env) {
		l := e.l
		acme, globex := store.SourceKey("crm", "acme"), store.SourceKey("crm", "globex")
		for _, k := range []string{acme, globex} {
			rev := publish(t, l, "seed_"+k, k, save("C", "1", "one"), save("C", "2", "two"), save("C", "3", "three"))
			if c := rev.Counts["crm"]["C"]; c.Added != 3 {
				t.Fatalf("a connection's changes count under its source: %+v", rev.Counts)
			}
		}
		rev := publishWith(t, l, "run_full", acme, store.WriterOptions{TrackDeletes: []string{"C"}}, save("C", "1", "one"), save("C", "3", "three"))
		if c := rev.Counts["crm"]["C"]; c != (store.Counts{Deleted: 1, Unchanged: 2}) {
			t.Fatalf("counts %+v", c)
		}
		if got, _ := readAll(t, l, store.Query{Connection: "acme"}); live(got) != "1 3" {
			t.Fatalf("acme live %s", live(got))
		}
		if got, _ := readAll(t, l, store.Query{Connection: "globex"}); live(got) != "1 2 3" {
			t.Fatalf("globex live %s", live(got))
		}
	})

	// Merging strategies (SPEC §4) against a change published while the
	// run staged: override applies the run's change, ignore_if_modified_after
	// keeps the fresher published one and does not count the run's. Each
	// record is read once either way.
	for _, beside := range []bool{false, true} {
		for _, ignore := range []bool{false, true} {
			name := fmt.Sprintf("Merging/ignore=%v/beside=%v", ignore, beside)
			test(t, d, name, func(t *testing.T, e *env) {
				l := e.l
				publish(t, l, "run_1", "shop", save("M", "a", "0"), save("M", "b", "0"))
				var hold store.Staging
				if beside {
					hold, _ = l.BeginStaging("run_hold")
					defer hold.Abort()
				}
				st, err := l.BeginStaging("run_2")
				if err != nil {
					t.Fatal(err)
				}
				w := st.Writer("shop", store.WriterOptions{IgnoreIfModifiedAfter: ignore})
				// The run changes a before the webhook does...
				if err := w.Apply([]store.Change{save("M", "a", "run")}); err != nil {
					t.Fatal(err)
				}
				if err := w.Checkpoint("s", []byte(`{}`)); err != nil {
					t.Fatal(err)
				}
				hook := direct(t, l, "shop", save("M", "a", "webhook"), save("M", "b", "webhook"), save("M", "n", "webhook"))
				if got, _ := readAll(t, l, store.Query{}); len(got) != 3 {
					t.Fatalf("after the webhook: %s", ids(got))
				}
				// ...and b and n after it.
				if err := w.Apply([]store.Change{save("M", "b", "run"), save("M", "n", "run")}); err != nil {
					t.Fatal(err)
				}
				rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
				if err != nil {
					t.Fatal(err)
				}
				if hook.Number != 2 || rev.Number != 3 {
					t.Fatalf("revisions %d then %d", hook.Number, rev.Number)
				}
				want, counts := "run", store.Counts{Updated: 3}
				if ignore {
					want, counts = "webhook", store.Counts{}
				}
				got, _ := readAll(t, l, store.Query{})
				if len(got) != 3 {
					t.Fatalf("records read more than once: %s", ids(got))
				}
				checkAscending(t, got)
				for _, r := range got {
					if r.Title != want {
						t.Fatalf("record %s = %q, want %q", r.ID, r.Title, want)
					}
				}
				if c := rev.Counts["shop"]["M"]; c.Added != counts.Added || c.Updated != counts.Updated || c.Deleted != counts.Deleted {
					t.Fatalf("counts %+v, want %+v", c, counts)
				}
			})
		}
	}

	// Merging is per sync (WriterOptions.Models): one sync of a source
	// gives way to fresher changes, another of the same source does not.
	test(t, d, "MergingPerSync", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_1", "shop", save("A", "a", "0"), save("B", "b", "0"))
		st, err := l.BeginStaging("run_2")
		if err != nil {
			t.Fatal(err)
		}
		wa := st.Writer("shop", store.WriterOptions{IgnoreIfModifiedAfter: true, Models: []string{"A"}})
		if err := wa.Apply([]store.Change{save("A", "a", "run")}); err != nil {
			t.Fatal(err)
		}
		wb := st.Writer("shop", store.WriterOptions{Models: []string{"B"}})
		if err := wb.Apply([]store.Change{save("B", "b", "run")}); err != nil {
			t.Fatal(err)
		}
		direct(t, l, "shop", save("A", "a", "hook"), save("B", "b", "hook"))
		rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := readAll(t, l, store.Query{})
		m := byID(got)
		if len(got) != 2 || m["a"].Title != "hook" || m["b"].Title != "run" {
			t.Fatalf("records %+v: want a from the webhook (ignore_if_modified_after), b from the run (override)", got)
		}
		if c := rev.Counts["shop"]["A"]; c.Updated != 0 {
			t.Fatalf("counts of A %+v: the change that gave way is counted", c)
		}
		if c := rev.Counts["shop"]["B"]; c.Updated != 1 {
			t.Fatalf("counts of B %+v", c)
		}
	})

	// A direct publish is a revision of its own, with its trigger and counts.
	test(t, d, "PublishChanges", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_1", "shop", save("M", "a", "1"), save("M", "b", "1"))
		rev, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook", Sources: []string{"shop", "crm"}}, []store.Batch{
			{Source: "shop", Changes: []store.Change{save("M", "a", "2"), del("M", "b"), save("M", "c", "1"), save("M", "c", "2")}},
			{Source: store.SourceKey("crm", "acme"), Changes: []store.Change{save("C", "x", "1")}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if rev.Number != 2 || rev.Trigger != "webhook" || fmt.Sprint(rev.Sources) != "[crm shop]" {
			t.Fatalf("revision %+v", rev)
		}
		if c := rev.Counts["shop"]["M"]; c.Added != 1 || c.Updated != 1 || c.Deleted != 1 {
			t.Fatalf("counts of shop %+v", c)
		}
		if c := rev.Counts["crm"]["C"]; c.Added != 1 {
			t.Fatalf("counts of crm %+v", rev.Counts)
		}
		got, page := readAll(t, l, store.Query{})
		m := byID(got)
		if page.Revision.Number != 2 || len(got) != 4 || m["a"].Title != "2" || !m["b"].deleted() || m["c"].Title != "2" || m["x"].str("connection") != "acme" {
			t.Fatalf("records %+v", got)
		}
		for _, r := range []rec{m["a"], m["b"], m["c"], m["x"]} {
			if r.revision() != 2 || r.str("last_modified_at") != rendered(rev.CreatedAt) {
				t.Fatalf("record %s of the direct publish: %+v", r.ID, r.Meta)
			}
		}
	})

	// A publish announces its revision and consumes the inbox items it
	// holds in the same commit: the announcement names the revision.
	test(t, d, "AnnounceAndConsume", func(t *testing.T, e *env) {
		l := e.l
		var seqs []uint64
		for range 3 {
			seq, err := l.AppendInbox(store.InboxItem{Source: "shop", Method: "POST", Path: "/hooks", Body: []byte(`{}`)})
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, seq)
		}
		sig := l.OutboxSignal()
		var announced int64
		rev, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook", Consume: seqs[:2], Announce: func(r store.Revision) []store.Delivery {
			announced = r.Number
			return []store.Delivery{delivery(fmt.Sprintf("evt_rev%d", r.Number), "app")}
		}}, []store.Batch{{Source: "shop", Changes: []store.Change{save("M", "a", "1")}}})
		if err != nil {
			t.Fatal(err)
		}
		if announced != rev.Number || rev.Number != 1 {
			t.Fatalf("announce saw revision %d, publish made %d", announced, rev.Number)
		}
		waitSignal(t, sig, "outbox after an announced publish")
		dl, err := l.GetDelivery("evt_rev1.app")
		if err != nil || dl.State != store.DeliveryPending {
			t.Fatalf("announcement of revision 1: %+v %v", dl, err)
		}
		if depth := l.InboxDepth(); depth != 1 {
			t.Fatalf("inbox depth %d after consuming 2 of 3", depth)
		}
		if items, _ := l.PendingInbox(0, 10); len(items) != 1 || items[0].Seq != seqs[2] {
			t.Fatalf("pending inbox %+v", items)
		}
		// A run's publish does the same.
		st, _ := l.BeginStaging("run_2")
		if err := st.Writer("shop", store.WriterOptions{}).Apply([]store.Change{save("M", "b", "1")}); err != nil {
			t.Fatal(err)
		}
		rev, err = st.Publish(store.PublishInfo{Trigger: "manual", Consume: seqs[2:], Announce: func(r store.Revision) []store.Delivery {
			return []store.Delivery{delivery(fmt.Sprintf("evt_rev%d", r.Number), "app"), delivery(fmt.Sprintf("evt_rev%d", r.Number), "ops")}
		}})
		if err != nil {
			t.Fatal(err)
		}
		ds, err := l.Deliveries("", 10, true)
		if err != nil || deliveryIDs(ds) != "evt_rev1.app:pending evt_rev2.app:pending evt_rev2.ops:pending" {
			t.Fatalf("deliveries %s %v", deliveryIDs(ds), err)
		}
		if depth := l.InboxDepth(); depth != 0 {
			t.Fatalf("inbox depth %d after consuming all", depth)
		}
		if items, _ := l.PendingInbox(0, 10); len(items) != 0 {
			t.Fatalf("pending inbox %+v", items)
		}
	})

	// A direct publish of any size is one revision.
	test(t, d, "LargeDirectPublish", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_1", "shop", save("M", "r000000", "before"))
		rev := direct(t, l, "shop", many(4500, "big")...)
		if c := rev.Counts["shop"]["M"]; c.Added != 4499 || c.Updated != 1 || rev.Number != 2 {
			t.Fatalf("revision %d counts %+v", rev.Number, c)
		}
		got, r := walk(t, l, store.Query{Limit: 2000})
		if len(got) != 4500 || r != 2 {
			t.Fatalf("%d records at revision %d", len(got), r)
		}
		checkAscending(t, got)
		if old, _ := readAll(t, l, store.Query{Revision: 1}); len(old) != 1 || old[0].Title != "before" {
			t.Fatalf("revision 1 after the big publish: %+v", old)
		}
	})

	// A run that staged records that webhooks changed meanwhile, all of
	// them, publishes with each record once (override: the run's).
	test(t, d, "ManyChangesPublishedMeanwhile", func(t *testing.T, e *env) {
		l := e.l
		st, err := l.BeginStaging("run_1")
		if err != nil {
			t.Fatal(err)
		}
		w := st.Writer("shop", store.WriterOptions{})
		if err := w.Apply(many(2500, "staged")); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		direct(t, l, "shop", many(2500, "webhook")...)
		rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
		if err != nil {
			t.Fatal(err)
		}
		got, r := walk(t, l, store.Query{Limit: 1000})
		if r != rev.Number || rev.Number != 2 || len(got) != 2500 {
			t.Fatalf("%d records at revision %d (published %d), want 2500, one each", len(got), r, rev.Number)
		}
		for _, g := range got {
			if g.Title != "staged" || g.revision() != 2 {
				t.Fatalf("record %s = %q at revision %d, want the run's", g.ID, g.Title, g.revision())
			}
		}
	})

	// Hosts stage and publish at once: revisions are numbered in commit
	// order over every host, cursors and commit times grow with them, and
	// every host reads the same layer.
	hostsTest(t, d, "AcrossHosts", 3, func(t *testing.T, ls []store.Layer) {
		const per = 50
		var wg sync.WaitGroup
		revs := make(chan store.Revision, 6)
		for h := range ls {
			for k := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					l := ls[h]
					src := fmt.Sprintf("h%d-%d", h, k)
					var cs []store.Change
					for i := 0; i < per; i++ {
						cs = append(cs, save("M", fmt.Sprintf("%s-%03d", src, i), src))
					}
					var rev store.Revision
					var err error
					if h == 2 {
						rev, err = l.PublishChanges(store.PublishInfo{Trigger: "webhook", Sources: []string{src}}, []store.Batch{{Source: src, Changes: cs}})
					} else {
						var st store.Staging
						if st, err = l.BeginStaging("run_" + src); err == nil {
							w := st.Writer(src, store.WriterOptions{})
							if err = w.Apply(cs); err == nil {
								if err = w.Checkpoint("s", []byte(`{"h":1}`)); err == nil {
									rev, err = st.Publish(store.PublishInfo{Trigger: "manual", Sources: []string{src}})
								}
							}
						}
					}
					if err != nil {
						t.Error(err)
						return
					}
					revs <- rev
				}()
			}
		}
		wg.Wait()
		close(revs)
		if t.Failed() {
			return
		}
		all := collect(revs)
		for _, l := range ls {
			checkRevisionOrder(t, l, all, 6*per)
		}
		if cp, err := ls[2].Checkpoint("h0-1", "s"); err != nil || string(cp) != `{"h":1}` {
			t.Fatalf("host c reads host a's checkpoint %s %v", cp, err)
		}
		// Merging holds against a change another host published while
		// the run staged.
		publish(t, ls[0], "run_seed", "m", save("M", "a", "0"), save("M", "b", "0"))
		for _, ignore := range []bool{false, true} {
			id := map[bool]string{false: "a", true: "b"}[ignore]
			st, err := ls[0].BeginStaging(fmt.Sprint("run_merge_", ignore))
			if err != nil {
				t.Fatal(err)
			}
			w := st.Writer("m", store.WriterOptions{IgnoreIfModifiedAfter: ignore})
			if err := w.Apply([]store.Change{save("M", id, "run")}); err != nil {
				t.Fatal(err)
			}
			direct(t, ls[1], "m", save("M", id, "hook"))
			rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
			if err != nil {
				t.Fatal(err)
			}
			want := map[bool]string{false: "run", true: "hook"}[ignore]
			got, _ := readAll(t, ls[2], store.Query{Source: "m", Revision: rev.Number})
			if m := byID(got); len(got) != 2 || m[id].Title != want {
				t.Fatalf("ignore_if_modified_after=%v over hosts: %+v, want %s's", ignore, got, want)
			}
		}
	})
}

// sorted sorts a slice of strings in place and returns it.
func sorted(s []string) []string {
	sort.Strings(s)
	return s
}

// collect drains a channel of revisions.
func collect(ch <-chan store.Revision) []store.Revision {
	var out []store.Revision
	for r := range ch {
		out = append(out, r)
	}
	return out
}

// checkRevisionOrder checks, after revisions published concurrently, that
// they are numbered 1..n with commit times growing with the number, that
// the layer's records (total of them) have cursors growing with their
// revision, and that modified_after of each revision's commit time returns
// exactly the records of it and later ones.
func checkRevisionOrder(t testing.TB, l store.Layer, revs []store.Revision, total int) {
	t.Helper()
	byNum := map[int64]store.Revision{}
	for _, r := range revs {
		if _, dup := byNum[r.Number]; dup {
			t.Fatalf("revision %d published twice", r.Number)
		}
		byNum[r.Number] = r
	}
	for n := int64(1); n <= int64(len(revs)); n++ {
		r, ok := byNum[n]
		if !ok {
			t.Fatalf("revision numbers %v are not 1..%d", byNum, len(revs))
		}
		if p, ok := byNum[n-1]; ok && !r.CreatedAt.After(p.CreatedAt) {
			t.Fatalf("revision %d committed at %s, not after revision %d at %s", n, r.CreatedAt, n-1, p.CreatedAt)
		}
	}
	newest := int64(len(revs))
	all, _ := walk(t, l, store.Query{Revision: newest, Limit: 1000})
	if len(all) != total {
		t.Fatalf("%d records, want %d", len(all), total)
	}
	checkAscending(t, all)
	for i := 1; i < len(all); i++ {
		if all[i].revision() < all[i-1].revision() {
			t.Fatalf("record %s of revision %d has a cursor above %s of revision %d", all[i-1].ID, all[i-1].revision(), all[i].ID, all[i].revision())
		}
	}
	for _, r := range all {
		rv := byNum[r.revision()]
		if r.str("last_modified_at") != rendered(rv.CreatedAt) {
			t.Fatalf("record %s modified at %s, its revision %d committed at %s", r.ID, r.str("last_modified_at"), rv.Number, rendered(rv.CreatedAt))
		}
	}
	for n := int64(1); n <= int64(len(revs)); n++ {
		got, _ := walk(t, l, store.Query{Revision: newest, ModifiedAfter: byNum[n].CreatedAt, Limit: 1000})
		want := 0
		for _, r := range all {
			if r.revision() >= n {
				want++
			}
		}
		for _, r := range got {
			if r.revision() < n {
				t.Fatalf("modified_after revision %d's commit time returned %s of revision %d", n, r.ID, r.revision())
			}
		}
		if len(got) != want {
			t.Fatalf("modified_after revision %d's commit time: %d records, want %d", n, len(got), want)
		}
	}
}

// stageBad stages a run of a good record and the payload bad in l and
// publishes it, and returns the first error on the way (nil if it
// published); the staging is ended either way.
func stageBad(t *testing.T, l store.Layer, run, bad string) error {
	t.Helper()
	st, err := l.BeginStaging(run)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Abort() // ErrStagingDone when Publish already ended it
	w := st.Writer("shop", store.WriterOptions{})
	err = w.Apply([]store.Change{save("M", "good", "x"), {Model: "M", ID: "a", Data: []byte(bad)}})
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		_, err = st.Publish(store.PublishInfo{Trigger: "manual"})
	}
	return err
}
