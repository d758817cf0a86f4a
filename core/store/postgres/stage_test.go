package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/synclayer/synclayer/core/store"
)

// The records half's write side implements its interfaces.
var (
	_ store.Staging     = (*Staging)(nil)
	_ store.StageWriter = (*StageWriter)(nil)
	_ store.Revisions   = (*Layer)(nil)
)

// stLayer opens layer "catalog" of a store on a fresh database.
func stLayer(t *testing.T) (*Store, *Layer, string) {
	t.Helper()
	s, dsn := openStore(t)
	l, err := s.layer("catalog")
	if err != nil {
		t.Fatal(err)
	}
	return s, l, dsn
}

func stSave(model, id, title string) store.Change {
	return store.Change{Model: model, ID: id, Data: []byte(fmt.Sprintf(`{"id":%q,"title":%q}`, id, title))}
}

func stDel(model, id string) store.Change { return store.Change{Model: model, ID: id, Delete: true} }

// stRun stages and publishes one run of changes for source "shop".
func stRun(t *testing.T, l *Layer, run string, changes ...store.Change) store.Revision {
	t.Helper()
	st, err := l.beginStaging(run)
	if err != nil {
		t.Fatal(err)
	}
	w := st.writer("shop", store.WriterOptions{})
	if err := w.Apply(changes); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Publish(store.PublishInfo{Trigger: "manual", Sources: []string{"shop"}})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// stRec is a record version as a reader of one revision sees it.
type stRec struct {
	SourceKey, Model, ID, Title string
	Payload                     string
	Action                      store.Action
	FromRev, FirstSeen          int64
	Cursor                      store.Cursor
}

// stRead reads the versions visible at revision rev (0: the current one),
// in cursor order: the minimal read the write side's tests need (the
// reads themselves are read.go's).
func stRead(t *testing.T, l *Layer, rev int64) []stRec {
	t.Helper()
	r, ok, err := l.revisionAt(rev)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return nil
	}
	rows, err := l.s.pool.Query(context.Background(), `SELECT source_key, model, id, payload, action, from_rev, seq, first_seen_rev
		FROM synclayer_records WHERE layer_id = $1 AND from_rev <= $2 AND (to_rev IS NULL OR to_rev > $2)
		ORDER BY from_rev, seq`, l.id, r.Number)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []stRec
	seen := map[string]bool{}
	for rows.Next() {
		var x stRec
		var payload []byte
		var seq int32
		var action int16
		if err := rows.Scan(&x.SourceKey, &x.Model, &x.ID, &payload, &action, &x.FromRev, &seq, &x.FirstSeen); err != nil {
			t.Fatal(err)
		}
		x.Action, x.Payload, x.Cursor = store.Action(action), string(payload), store.MakeCursor(uint64(x.FromRev), uint32(seq))
		var p struct{ Title string }
		if err := json.Unmarshal(payload, &p); err != nil {
			t.Fatalf("payload %q: %v", payload, err)
		}
		x.Title = p.Title
		k := x.SourceKey + "\x00" + x.Model + "\x00" + x.ID
		if seen[k] {
			t.Fatalf("revision %d shows %s/%s/%s twice", r.Number, x.SourceKey, x.Model, x.ID)
		}
		seen[k] = true
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(out); i++ {
		if string(out[i-1].Cursor[:]) >= string(out[i].Cursor[:]) {
			t.Fatalf("cursors not strictly ascending at %d", i)
		}
	}
	return out
}

// stByID indexes records by id.
func stByID(recs []stRec) map[string]stRec {
	m := map[string]stRec{}
	for _, r := range recs {
		m[r.ID] = r
	}
	return m
}

// stLive lists the ids of the records not deleted of a source key, sorted.
func stLive(t *testing.T, l *Layer, sourceKey string) string {
	t.Helper()
	var ids []string
	for _, r := range stRead(t, l, 0) {
		if r.SourceKey == sourceKey && r.Action != store.Deleted {
			ids = append(ids, r.ID)
		}
	}
	sort.Strings(ids)
	return strings.Join(ids, " ")
}

// stCount counts the rows of a table of the layer.
func stCount(t *testing.T, l *Layer, table string) int {
	t.Helper()
	var n int
	if err := l.s.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table+` WHERE layer_id = $1`, l.id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStageLifecycleActionsAndCursors(t *testing.T) {
	_, l, _ := stLayer(t)
	r1 := stRun(t, l, "run_1", stSave("Product", "a", "A"), stSave("Product", "b", "B"), stSave("Product", "c", "C"))
	if r1.Number != 1 || r1.Counts["shop"]["Product"].Added != 3 || r1.Run != "run_1" || r1.TS != 1 {
		t.Fatalf("revision 1 = %+v", r1)
	}
	all := stRead(t, l, 0)
	if len(all) != 3 {
		t.Fatalf("records %+v", all)
	}
	for _, r := range all {
		if r.Action != store.Added || r.FromRev != 1 || r.FirstSeen != 1 {
			t.Fatalf("record %+v", r)
		}
	}
	last := all[2].Cursor

	// Unchanged save: nothing. Update b, delete c, add d; delete an
	// unknown record: nothing.
	r2 := stRun(t, l, "run_2", stSave("Product", "a", "A"), stSave("Product", "b", "B2"),
		stDel("Product", "c"), stSave("Product", "d", "D"), stDel("Product", "nope"))
	if c := r2.Counts["shop"]["Product"]; c != (store.Counts{Added: 1, Updated: 1, Deleted: 1, Unchanged: 1}) {
		t.Fatalf("counts = %+v", c)
	}
	all = stRead(t, l, 0)
	got := map[string]string{}
	for _, r := range all {
		if string(r.Cursor[:]) > string(last[:]) {
			got[r.ID] = r.Action.String()
		}
	}
	if want := map[string]string{"b": "UPDATED", "c": "DELETED", "d": "ADDED"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after cursor: %v, want %v", got, want)
	}
	if len(all) != 4 {
		t.Fatalf("want 4 records, got %+v", all)
	}
	// The deleted record keeps its payload.
	c := stByID(all)["c"]
	if c.Title != "C" || c.Action != store.Deleted || c.FirstSeen != 1 {
		t.Fatalf("deleted record = %+v", c)
	}
	// Revival keeps first_seen and is ADDED.
	r3 := stRun(t, l, "run_3", stSave("Product", "c", "C again"))
	if c := r3.Counts["shop"]["Product"]; c != (store.Counts{Added: 1}) {
		t.Fatalf("revival counts %+v", c)
	}
	c = stByID(stRead(t, l, 0))["c"]
	if c.Action != store.Added || c.FirstSeen != 1 || c.FromRev != 3 || c.Title != "C again" {
		t.Fatalf("revived = %+v", c)
	}
	// Older revisions are still readable, as they were.
	old := stRead(t, l, 1)
	if len(old) != 3 || stByID(old)["b"].Title != "B" || stByID(old)["c"].Action != store.Added {
		t.Fatalf("revision 1 = %+v", old)
	}
	// Revision times grow strictly.
	revs := l.Revisions()
	if len(revs) != 3 || revs[0].Number != 3 {
		t.Fatalf("revisions %+v", revs)
	}
	for i := 1; i < len(revs); i++ {
		if !revs[i-1].CreatedAt.After(revs[i].CreatedAt) {
			t.Fatalf("created_at not increasing: %+v", revs)
		}
	}
}

// A run that changed nothing still publishes a revision (SPEC §5), with
// its sources' (empty) counts.
func TestStageEmptyRunPublishes(t *testing.T) {
	_, l, _ := stLayer(t)
	stRun(t, l, "run_1", stSave("M", "a", "1"))
	rev := stRun(t, l, "run_2", stSave("M", "a", "1"))
	if rev.Number != 2 || rev.Counts["shop"]["M"] != (store.Counts{Unchanged: 1}) {
		t.Fatalf("revision %+v", rev)
	}
	if recs := stRead(t, l, 0); len(recs) != 1 || recs[0].FromRev != 1 {
		t.Fatalf("an unchanged save made a version: %+v", recs)
	}
	st, _ := l.beginStaging("run_3")
	st.writer("shop", store.WriterOptions{})
	rev, err := st.Publish(store.PublishInfo{Trigger: "manual", Sources: []string{"shop"}})
	if err != nil || rev.Number != 3 || rev.Counts["shop"] == nil || len(rev.Counts["shop"]) != 0 {
		t.Fatalf("empty run: %+v, %v", rev, err)
	}
	if cur, ok := l.Current(); !ok || cur.Number != 3 || cur.Trigger != "manual" || fmt.Sprint(cur.Sources) != "[shop]" {
		t.Fatalf("current %+v", cur)
	}
}

// "Unchanged" is the connector's bytes being the same, as on the embedded
// driver: the payload is stored compact, but a resend with other white
// space is an update.
func TestStageUnchangedIsTheConnectorsBytes(t *testing.T) {
	_, l, _ := stLayer(t)
	spaced := store.Change{Model: "M", ID: "a", Data: []byte(`{ "id": "a", "title": "x" }`)}
	stRun(t, l, "run_1", spaced)
	if r := stRead(t, l, 0)[0]; r.Payload != `{"id":"a","title":"x"}` {
		t.Fatalf("stored %q, want it compact", r.Payload)
	}
	if c := stRun(t, l, "run_2", spaced).Counts["shop"]["M"]; c != (store.Counts{Unchanged: 1}) {
		t.Fatalf("same bytes: %+v", c)
	}
	if c := stRun(t, l, "run_3", stSave("M", "a", "x")).Counts["shop"]["M"]; c != (store.Counts{Updated: 1}) {
		t.Fatalf("other bytes: %+v", c)
	}
}

// Changes to one record within a run fold as the embedded driver applies
// them one after the other.
func TestStageFoldsChangesToOneRecord(t *testing.T) {
	_, l, _ := stLayer(t)
	stRun(t, l, "run_1", stSave("M", "live", "0"), stSave("M", "gone", "0"))
	stRun(t, l, "run_2", stDel("M", "gone"))
	rev := stRun(t, l, "run_3",
		stSave("M", "new", "1"), stDel("M", "new"), // added and deleted: stored deleted, counted as neither
		stSave("M", "twice", "1"), stSave("M", "twice", "2"), // one addition
		stSave("M", "live", "1"), stSave("M", "live", "0"), // changed and back: an update
		stDel("M", "gone"), stSave("M", "gone", "again"), // revived
	)
	if c := rev.Counts["shop"]["M"]; c != (store.Counts{Added: 2, Updated: 1}) {
		t.Fatalf("counts %+v", c)
	}
	recs := stByID(stRead(t, l, 0))
	want := map[string]string{"new": "DELETED 1", "twice": "ADDED 2", "live": "UPDATED 0", "gone": "ADDED again"}
	for id, w := range want {
		if got := recs[id].Action.String() + " " + recs[id].Title; got != w {
			t.Fatalf("%s: %s, want %s", id, got, w)
		}
	}
	if recs["gone"].FirstSeen != 1 || recs["new"].FirstSeen != 3 {
		t.Fatalf("first seen %+v", recs)
	}
}

func TestStagedChangesInvisibleUntilPublishAndAbortLeavesNothing(t *testing.T) {
	_, l, _ := stLayer(t)
	stRun(t, l, "run_1", stSave("M", "a", "1"))
	st, err := l.beginStaging("run_2")
	if err != nil {
		t.Fatal(err)
	}
	w := st.writer("shop", store.WriterOptions{TrackDeletes: []string{"M"}})
	if err := w.Apply([]store.Change{stSave("M", "a", "2"), stSave("M", "b", "2")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint("s", []byte(`{"page":1}`)); err != nil {
		t.Fatal(err)
	}
	if recs := stRead(t, l, 0); len(recs) != 1 || recs[0].Title != "1" {
		t.Fatalf("staged changes visible: %+v", recs)
	}
	if cp, own, err := st.Checkpoint("shop", "s", false); err != nil || !own || string(cp) != `{"page":1}` {
		t.Fatalf("own checkpoint %s %v %v", cp, own, err)
	}
	if cp, _ := l.Checkpoint("shop", "s"); cp != nil {
		t.Fatalf("a staged checkpoint is published: %s", cp)
	}
	if err := st.Abort(); err != nil {
		t.Fatal(err)
	}
	l.rec.bg.Wait() // run_1's staged rows go after its publish
	if err := st.Abort(); !errors.Is(err, store.ErrStagingDone) {
		t.Fatalf("second abort: %v", err)
	}
	if _, err := st.Publish(store.PublishInfo{}); !errors.Is(err, store.ErrStagingDone) {
		t.Fatalf("publish after abort: %v", err)
	}
	for _, table := range []string{"synclayer_staged", "synclayer_seen", "synclayer_staged_checkpoints"} {
		if n := stCount(t, l, table); n != 0 {
			t.Fatalf("%d rows left in %s", n, table)
		}
	}
	if recs := stRead(t, l, 0); len(recs) != 1 || recs[0].Title != "1" {
		t.Fatalf("after abort: %+v", recs)
	}
	if rev, _ := l.Newest(); rev.Number != 1 {
		t.Fatalf("newest %+v", rev)
	}
}

func TestStageRetryResumesAndCountsOnce(t *testing.T) {
	_, l, _ := stLayer(t)
	stRun(t, l, "run_1", stSave("M", "old", "0"))
	st, _ := l.beginStaging("run_2")
	w := st.writer("shop", store.WriterOptions{})
	if err := w.Apply([]store.Change{stSave("M", "a", "1"), stSave("M", "b", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint("s", []byte(`{"after":"b"}`)); err != nil {
		t.Fatal(err)
	}
	if err := w.Apply([]store.Change{stSave("M", "c", "1")}); err != nil { // after the checkpoint
		t.Fatal(err)
	}
	if err := st.NextAttempt(); err == nil {
		t.Fatal("next attempt with a writer open")
	}
	w.Close() // the attempt fails here
	if cp, own, _ := st.Checkpoint("shop", "s", false); !own || string(cp) != `{"after":"b"}` {
		t.Fatalf("resume checkpoint = %s", cp)
	}
	if err := st.NextAttempt(); err != nil {
		t.Fatal(err)
	}
	w = st.writer("shop", store.WriterOptions{})
	// The retry resumes after b: c again, then d.
	if err := w.Apply([]store.Change{stSave("M", "c", "1"), stSave("M", "d", "1")}); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["shop"]["M"]; c != (store.Counts{Added: 4}) {
		t.Fatalf("counts = %+v", c)
	}
	if got := stLive(t, l, "shop"); got != "a b c d old" {
		t.Fatalf("records = %s", got)
	}
	if cp, err := l.Checkpoint("shop", "s"); err != nil || string(cp) != `{"after":"b"}` {
		t.Fatalf("published checkpoint %s %v", cp, err)
	}
	// A new run resumes from the published checkpoint, or from scratch.
	st, _ = l.beginStaging("run_3")
	if cp, own, _ := st.Checkpoint("shop", "s", false); own || string(cp) != `{"after":"b"}` {
		t.Fatalf("next run's checkpoint = %s own %v", cp, own)
	}
	if cp, _, _ := st.Checkpoint("shop", "s", true); cp != nil {
		t.Fatalf("from scratch: %s", cp)
	}
	if err := st.Abort(); err != nil {
		t.Fatal(err)
	}
	// Nothing staged outlives a publish.
	l.rec.bg.Wait()
	for _, table := range []string{"synclayer_staged", "synclayer_seen", "synclayer_staged_checkpoints"} {
		if n := stCount(t, l, table); n != 0 {
			t.Fatalf("%d rows left in %s", n, table)
		}
	}
}

// A run of an id whose earlier attempt died with its host starts clean.
func TestStageBeginDropsWhatADeadAttemptLeft(t *testing.T) {
	_, l, _ := stLayer(t)
	st, _ := l.beginStaging("run_1")
	w := st.writer("shop", store.WriterOptions{})
	if err := w.Apply([]store.Change{stSave("M", "ghost", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint("s", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	// The host dies; the run runs again (on another host) with its id.
	st2, _ := l.beginStaging("run_1")
	if cp, own, _ := st2.Checkpoint("shop", "s", false); own || cp != nil {
		t.Fatalf("the new attempt resumes from the dead one's checkpoint %s", cp)
	}
	if err := st2.writer("shop", store.WriterOptions{}).Apply([]store.Change{stSave("M", "real", "1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := st2.Publish(store.PublishInfo{Trigger: "manual"}); err != nil {
		t.Fatal(err)
	}
	if got := stLive(t, l, "shop"); got != "real" {
		t.Fatalf("records %s", got)
	}
}

func TestStageTrackDeletes(t *testing.T) {
	_, l, _ := stLayer(t)
	stRun(t, l, "run_1", stSave("M", "a", "1"), stSave("M", "b", "1"), stSave("M", "c", "1"), stSave("N", "x", "1"))
	st, _ := l.beginStaging("run_2")
	w := st.writer("shop", store.WriterOptions{TrackDeletes: []string{"M"}})
	if err := w.Apply([]store.Change{stSave("M", "a", "1"), stSave("M", "c", "2"), stSave("M", "c", "2")}); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["shop"]["M"]; c != (store.Counts{Deleted: 1, Updated: 1, Unchanged: 1}) {
		t.Fatalf("counts = %+v", c)
	}
	recs := stByID(stRead(t, l, 0))
	if recs["b"].Action != store.Deleted || recs["x"].Action != store.Added || recs["a"].Action != store.Added {
		t.Fatalf("records %+v", recs)
	}
	// A failed run deletes nothing.
	st, _ = l.beginStaging("run_3")
	w = st.writer("shop", store.WriterOptions{TrackDeletes: []string{"M"}})
	if err := w.Apply([]store.Change{stSave("M", "a", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := stLive(t, l, "shop"); got != "a c x" {
		t.Fatalf("after a failed run: %s", got)
	}
}

// The store writes only valid JSON objects; a bad one fails the change set
// with a clear reason.
func TestStageRejectsInvalidJSON(t *testing.T) {
	_, l, _ := stLayer(t)
	for _, bad := range []string{`{}{}`, `{"a":1} x }`, `{"a":}`, `[1]`} {
		st, err := l.beginStaging("run_x")
		if err != nil {
			t.Fatal(err)
		}
		w := st.writer("shop", store.WriterOptions{})
		err = w.Apply([]store.Change{{Model: "M", ID: "a", Data: []byte(bad)}})
		if err == nil || !strings.Contains(err.Error(), "not a valid JSON object") {
			t.Fatalf("%s: %v", bad, err)
		}
		if _, err := st.Publish(store.PublishInfo{}); err == nil {
			t.Fatal("published a run whose writer failed")
		}
		if err := st.Abort(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook"}, []store.Batch{{Source: "shop", Changes: []store.Change{{Model: "M", ID: "a", Data: []byte(`{"a":`)}}}}); err == nil {
		t.Fatal("a direct publish stored invalid JSON")
	}
	if _, ok := l.Newest(); ok {
		t.Fatal("a revision was published")
	}
}

// Merging: a direct publish (a webhook) lands while a slow run stages
// changes to the same records: override lets the run's change win,
// ignore_if_modified_after keeps the fresher published one. Either way each
// record appears once, and what gives way is not counted.
func TestStageMergingWithChangesPublishedDuringRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ignore bool
		want   string
	}{{"override", false, "run"}, {"ignore_if_modified_after", true, "webhook"}} {
		t.Run(tc.name, func(t *testing.T) {
			_, l, _ := stLayer(t)
			stRun(t, l, "run_1", stSave("M", "a", "0"), stSave("M", "b", "0"))
			st, err := l.beginStaging("run_2")
			if err != nil {
				t.Fatal(err)
			}
			w := st.writer("shop", store.WriterOptions{IgnoreIfModifiedAfter: tc.ignore})
			if err := w.Apply([]store.Change{stSave("M", "a", "run")}); err != nil {
				t.Fatal(err)
			}
			if err := w.Checkpoint("s", []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			rev2, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook"}, []store.Batch{{Source: "shop",
				Changes: []store.Change{stSave("M", "a", "webhook"), stSave("M", "b", "webhook"), stSave("M", "n", "webhook")}}})
			if err != nil {
				t.Fatal(err)
			}
			if got := stRead(t, l, 0); len(got) != 3 {
				t.Fatalf("after webhook: %+v", got)
			}
			if err := w.Apply([]store.Change{stSave("M", "b", "run"), stSave("M", "n", "run"), stSave("M", "z", "run")}); err != nil {
				t.Fatal(err)
			}
			rev3, err := st.Publish(store.PublishInfo{Trigger: "manual"})
			if err != nil {
				t.Fatal(err)
			}
			if rev2.Number != 2 || rev3.Number != 3 || rev3.TS <= rev2.TS || !rev3.CreatedAt.After(rev2.CreatedAt) {
				t.Fatalf("revisions %+v %+v", rev2, rev3)
			}
			got := stRead(t, l, 0)
			if len(got) != 4 {
				t.Fatalf("records %+v", got)
			}
			for _, r := range got {
				want := tc.want
				if r.ID == "z" {
					want = "run"
				}
				if r.Title != want {
					t.Fatalf("record %s = %q, want %q (%+v)", r.ID, r.Title, want, got)
				}
			}
			want := store.Counts{Added: 1, Updated: 3}
			if tc.ignore {
				want = store.Counts{Added: 1}
			}
			if c := rev3.Counts["shop"]["M"]; c != want {
				t.Fatalf("counts %+v, want %+v", c, want)
			}
		})
	}
}

// Merging is per sync: a sync with ignore_if_modified_after gives way to
// fresher webhook changes, another sync of the same source does not.
func TestStageMergingPerSync(t *testing.T) {
	_, l, _ := stLayer(t)
	stRun(t, l, "run_1", stSave("A", "a", "0"), stSave("B", "b", "0"))
	st, _ := l.beginStaging("run_2")
	wa := st.writer("shop", store.WriterOptions{IgnoreIfModifiedAfter: true, Models: []string{"A"}})
	if err := wa.Apply([]store.Change{stSave("A", "a", "run")}); err != nil {
		t.Fatal(err)
	}
	wb := st.writer("shop", store.WriterOptions{Models: []string{"B"}})
	if err := wb.Apply([]store.Change{stSave("B", "b", "run")}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook"}, []store.Batch{{Source: "shop",
		Changes: []store.Change{stSave("A", "a", "hook"), stSave("B", "b", "hook")}}}); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	recs := stByID(stRead(t, l, 0))
	if recs["a"].Title != "hook" || recs["b"].Title != "run" {
		t.Fatalf("records %+v", recs)
	}
	if c := rev.Counts["shop"]["A"]; c.Updated != 0 {
		t.Fatalf("counts of A %+v: the change that gave way is counted", c)
	}
	if c := rev.Counts["shop"]["B"]; c.Updated != 1 {
		t.Fatalf("counts of B %+v", c)
	}
}

// Runs stage side by side (here a source and a connection of another) and
// publish in any order, each as its own revision; a connection's changes
// count under its source.
func TestStageConcurrentStagingsPublishIndependently(t *testing.T) {
	_, l, _ := stLayer(t)
	stRun(t, l, "run_0", stSave("P", "keep", "K"), stSave("P", "both", "old"))
	a, _ := l.beginStaging("run_a")
	b, _ := l.beginStaging("run_b")
	c, _ := l.beginStaging("run_c")
	if err := a.writer("shop", store.WriterOptions{}).Apply([]store.Change{stSave("P", "a1", "A"), stSave("P", "both", "from A")}); err != nil {
		t.Fatal(err)
	}
	bkey := store.SourceKey("crm", "acme")
	wb := b.writer(bkey, store.WriterOptions{})
	if err := wb.Apply([]store.Change{stSave("Contact", "x", "X"), stSave("Contact", "y", "Y"), stSave("Contact", "x", "X2")}); err != nil {
		t.Fatal(err)
	}
	if err := wb.Checkpoint("contacts", []byte(`{"page":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := c.writer("shop", store.WriterOptions{}).Apply([]store.Change{stSave("P", "c1", "C"), stSave("P", "both", "from C")}); err != nil {
		t.Fatal(err)
	}
	if got := stLive(t, l, "shop"); got != "both keep" {
		t.Fatalf("before publishes: %s", got)
	}
	rb, err := b.Publish(store.PublishInfo{Trigger: "manual", Sources: []string{"crm"}})
	if err != nil {
		t.Fatal(err)
	}
	if rb.Number != 2 || rb.Counts["crm"]["Contact"] != (store.Counts{Added: 2}) {
		t.Fatalf("B's revision %+v", rb)
	}
	if got := stLive(t, l, bkey); got != "x y" {
		t.Fatalf("after B: %s", got)
	}
	if stByID(stRead(t, l, 0))["x"].Title != "X2" {
		t.Fatal("x is not its last change")
	}
	if cp, err := l.Checkpoint(bkey, "contacts"); err != nil || string(cp) != `{"page":2}` {
		t.Fatalf("B's checkpoint %q %v", cp, err)
	}
	ra, err := a.Publish(store.PublishInfo{Trigger: "manual", Sources: []string{"shop"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := stLive(t, l, "shop"); got != "a1 both keep" {
		t.Fatalf("after A: %s", got)
	}
	rc, err := c.Publish(store.PublishInfo{Trigger: "manual", Sources: []string{"shop"}})
	if err != nil {
		t.Fatal(err)
	}
	if ra.Number != 3 || rc.Number != 4 {
		t.Fatalf("revision numbers A %d C %d", ra.Number, rc.Number)
	}
	all := stByID(stRead(t, l, 0))
	if len(all) != 6 || all["both"].Title != "from C" || all["both"].FromRev != 4 {
		t.Fatalf("records after C: %+v", all)
	}
	if c := rc.Counts["shop"]["P"]; c != (store.Counts{Added: 1, Updated: 1}) {
		t.Fatalf("C's counts %+v", c)
	}
}

// A connection's full run tracks deletes and merges within its own source
// key: another connection of the source is untouched.
func TestStageConnectionTracksDeletesAndMerges(t *testing.T) {
	_, l, _ := stLayer(t)
	src := store.SourceKey("crm", "acme")
	other := store.SourceKey("crm", "globex")
	for _, k := range []string{src, other} {
		st, _ := l.beginStaging("seed-" + k)
		if err := st.writer(k, store.WriterOptions{}).Apply([]store.Change{stSave("C", "1", "one"), stSave("C", "2", "two"), stSave("C", "3", "three")}); err != nil {
			t.Fatal(err)
		}
		rev, err := st.Publish(store.PublishInfo{Trigger: "startup"})
		if err != nil {
			t.Fatal(err)
		}
		if c := rev.Counts["crm"]["C"]; c.Added != 3 {
			t.Fatalf("counts of a connection under its source: %+v", rev.Counts)
		}
	}
	st, _ := l.beginStaging("run_full")
	w := st.writer(src, store.WriterOptions{TrackDeletes: []string{"C"}, IgnoreIfModifiedAfter: true})
	if err := w.Apply([]store.Change{stSave("C", "1", "one"), stSave("C", "3", "three-new")}); err != nil {
		t.Fatal(err)
	}
	// A webhook changes 3 while the run stages: ignore_if_modified_after
	// keeps the webhook's change.
	if _, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook"}, []store.Batch{{Source: src, Changes: []store.Change{stSave("C", "3", "hook")}}}); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["crm"]["C"]; c != (store.Counts{Deleted: 1, Unchanged: 1}) {
		t.Fatalf("counts %+v", c)
	}
	if got := stLive(t, l, src); got != "1 3" {
		t.Fatalf("acme live %s", got)
	}
	if got := stLive(t, l, other); got != "1 2 3" {
		t.Fatalf("globex untouched: %s", got)
	}
	for _, r := range stRead(t, l, 0) {
		if r.SourceKey == src && r.ID == "3" && r.Title != "hook" {
			t.Fatalf("merged record %+v", r)
		}
	}
}

// A closed store answers store.ErrClosed.
func TestStageClosedStore(t *testing.T) {
	s, l, _ := stLayer(t)
	st, _ := l.beginStaging("run_1")
	if err := st.writer("shop", store.WriterOptions{}).Apply([]store.Change{stSave("M", "a", "1")}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := st.Publish(store.PublishInfo{}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("publish on a closed store: %v", err)
	}
	if _, err := l.beginStaging("run_2"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("begin on a closed store: %v", err)
	}
	if _, err := l.PublishChanges(store.PublishInfo{}, nil); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("direct publish on a closed store: %v", err)
	}
	if err := l.Pin(1); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("pin on a closed store: %v", err)
	}
}

// A writer that failed after writing some changes out still counts them:
// the retry that sends them again publishes each record once.
func TestStageRetryAfterAWriterFailed(t *testing.T) {
	_, l, _ := stLayer(t)
	st, _ := l.beginStaging("run_1")
	w := st.writer("shop", store.WriterOptions{})
	if err := w.Apply([]store.Change{stSave("M", "a", "1"), stSave("M", "b", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Apply([]store.Change{{Model: "M", ID: "c", Data: []byte(`{`)}}); err == nil {
		t.Fatal("invalid JSON staged")
	}
	if err := w.Close(); err == nil {
		t.Fatal("the failed writer closes without its error")
	}
	if err := st.NextAttempt(); err != nil {
		t.Fatal(err)
	}
	w = st.writer("shop", store.WriterOptions{})
	if err := w.Apply([]store.Change{stSave("M", "a", "1"), stSave("M", "b", "2"), stSave("M", "c", "1")}); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["shop"]["M"]; c != (store.Counts{Added: 3}) {
		t.Fatalf("counts %+v", c)
	}
	if recs := stByID(stRead(t, l, 0)); len(recs) != 3 || recs["b"].Title != "2" {
		t.Fatalf("records %+v", recs)
	}
}

// A full run with track_deletes and ignore_if_modified_after does not
// delete a record a webhook added while it staged: that record is fresher
// than the run's view. Under override it is deleted (the run did not see
// it).
func TestStageTrackDeletesAndAFresherWebhookRecord(t *testing.T) {
	for _, ignore := range []bool{true, false} {
		_, l, _ := stLayer(t)
		stRun(t, l, "run_0", stSave("M", "old", "o"), stSave("M", "gone", "g"))
		st, _ := l.beginStaging("run_1")
		if _, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook"}, []store.Batch{{Source: "shop", Changes: []store.Change{stSave("M", "hook", "h")}}}); err != nil {
			t.Fatal(err)
		}
		w := st.writer("shop", store.WriterOptions{IgnoreIfModifiedAfter: ignore, TrackDeletes: []string{"M"}})
		if err := w.Apply([]store.Change{stSave("M", "old", "o")}); err != nil {
			t.Fatal(err)
		}
		rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
		if err != nil {
			t.Fatal(err)
		}
		want, counts := "hook old", store.Counts{Deleted: 1, Unchanged: 1}
		if !ignore {
			want, counts = "old", store.Counts{Deleted: 2, Unchanged: 1}
		}
		if got := stLive(t, l, "shop"); got != want || rev.Counts["shop"]["M"] != counts {
			t.Fatalf("ignore %v: live %q counts %+v, want %q %+v", ignore, got, rev.Counts["shop"]["M"], want, counts)
		}
	}
}
