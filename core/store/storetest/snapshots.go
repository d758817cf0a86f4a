package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/synclayer/synclayer/core/store"
)

// testSnapshots: reads of one revision by id, by model and by change;
// record counts; field indexes (the readers of GraphQL and the dashboard).
func testSnapshots(t *testing.T, d Driver) {
	// OpenSnapshot: nothing before the first publish; the current, a given
	// or a missing revision.
	test(t, d, "Open", func(t *testing.T, e *env) {
		l := e.l
		if s, ok, err := l.OpenSnapshot(0); err != nil || ok || s != nil {
			t.Fatalf("snapshot of an empty layer: %v %v", ok, err)
		}
		r1 := publish(t, l, "run_1", "shop", save("M", "a", "1"))
		s1 := snapshot(t, l, 0)
		r2 := publish(t, l, "run_2", "shop", save("M", "a", "2"), save("M", "b", "2"))
		// An open snapshot keeps reading its revision.
		if rv := s1.Revision(); rv.Number != r1.Number || !rv.CreatedAt.Equal(r1.CreatedAt) {
			t.Fatalf("snapshot revision %+v, want %+v", rv, r1)
		}
		if r, ok, err := s1.Get("shop", "M", "a"); err != nil || !ok || string(r.Payload) != `{"id":"a","title":"1"}` {
			t.Fatalf("snapshot 1 after revision 2: %s %v %v", r.Payload, ok, err)
		}
		if _, ok, err := s1.Get("shop", "M", "b"); err != nil || ok {
			t.Fatalf("snapshot 1 sees a record of revision 2: %v %v", ok, err)
		}
		if s := snapshot(t, l, 0); s.Revision().Number != r2.Number || s.Revision().Pinned {
			t.Fatalf("current snapshot %+v", s.Revision())
		}
		if s := snapshot(t, l, 1); s.Revision().Number != 1 {
			t.Fatalf("snapshot 1 %+v", s.Revision())
		}
		if err := l.Pin(1); err != nil {
			t.Fatal(err)
		}
		if s := snapshot(t, l, 0); s.Revision().Number != 1 || !s.Revision().Pinned {
			t.Fatalf("current snapshot while 1 is pinned: %+v", s.Revision())
		}
		if s := snapshot(t, l, 2); s.Revision().Number != 2 || s.Revision().Pinned {
			t.Fatalf("snapshot 2 while 1 is pinned: %+v", s.Revision())
		}
		if s, ok, err := l.OpenSnapshot(9); !errors.Is(err, store.ErrNoRevision) || ok || s != nil {
			t.Fatalf("snapshot of a revision that never was: %v %v", ok, err)
		}
	})

	// Retained tells when a snapshot's revision stopped being kept.
	test(t, d, "Retained", func(t *testing.T, e *env) {
		l := e.l
		l.SetRetention(1, 0)
		publish(t, l, "run_1", "shop", save("M", "a", "1"))
		s := snapshot(t, l, 1)
		if !s.Retained() {
			t.Fatal("the newest revision is not retained")
		}
		publish(t, l, "run_2", "shop", save("M", "a", "2"))
		publish(t, l, "run_3", "shop", save("M", "a", "3"))
		if s.Retained() {
			t.Fatal("revision 1 is retained beyond keep_revisions = 1")
		}
		if _, ok, err := l.OpenSnapshot(1); !errors.Is(err, store.ErrRevisionGone) || ok {
			t.Fatalf("snapshot of a revision no longer kept: %v %v", ok, err)
		}
	})

	// Get, Scan and Changes of one revision.
	test(t, d, "GetScanChanges", func(t *testing.T, e *env) {
		l := e.l
		var cs []store.Change
		for i := 0; i < 300; i++ {
			cs = append(cs, save("M", fmt.Sprintf("id%04d", 299-i), "t"))
		}
		cs = append(cs, save("N", "x", "other model"))
		r1 := publish(t, l, "run_1", "shop", cs...)
		publish(t, l, "run_o", "other", save("M", "id0005", "other source"))
		r3 := publish(t, l, "run_3", "shop", del("M", "id0001"), save("M", "id0002", "changed"))
		snap := snapshot(t, l, 0)
		if snap.Revision().Number != r3.Number {
			t.Fatalf("snapshot of revision %d", snap.Revision().Number)
		}
		rec, found, err := snap.Get("shop", "M", "id0001")
		if err != nil || !found || !rec.Deleted() || rec.Action != store.Deleted || rec.Revision != r3.Number ||
			!rec.FirstSeenAt.Equal(r1.CreatedAt) || !rec.LastModifiedAt.Equal(r3.CreatedAt) ||
			rec.Source != "shop" || rec.Model != "M" || rec.ID != "id0001" || rec.Connection != "" || string(rec.Payload) != `{"id":"id0001","title":"t"}` {
			t.Fatalf("get of a deleted record: %+v %v %v", rec, found, err)
		}
		upd, _, _ := snap.Get("shop", "M", "id0002")
		if upd.Action != store.Updated || upd.Revision != r3.Number || string(upd.Payload) != `{"id":"id0002","title":"changed"}` {
			t.Fatalf("get of an updated record: %+v", upd)
		}
		// The cursor is the one Records shows.
		recs, _ := readAll(t, l, store.Query{Model: "M", IDs: []string{"id0002"}, Sources: []string{"shop"}})
		if len(recs) != 1 || upd.Cursor.String() != recs[0].cursor() {
			t.Fatalf("cursor %s, records show %+v", upd.Cursor, recs)
		}
		if _, found, err := snap.Get("shop", "M", "nope"); err != nil || found {
			t.Fatalf("get of a missing record: %v %v", found, err)
		}
		if _, found, _ := snap.Get("shop", "N", "id0005"); found {
			t.Fatal("get found a record of another model")
		}
		// Scan: by id, after an id, deleted ones left out, until fn stops.
		var got []string
		err = snap.Scan("shop", "M", "id0000", func(r *store.StoredRecord) (bool, error) {
			if r.Model != "M" || r.Source != "shop" || !strings.Contains(string(r.Payload), `"`+r.ID+`"`) || r.Deleted() {
				return false, fmt.Errorf("scanned %+v with payload %s", r, r.Payload)
			}
			got = append(got, r.ID)
			return len(got) < 200, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 200 || got[0] != "id0002" || got[199] != "id0201" {
			t.Fatalf("scan: %d ids, %v", len(got), got)
		}
		n := 0
		if err := snap.Scan("shop", "M", "", func(*store.StoredRecord) (bool, error) { n++; return true, nil }); err != nil || n != 299 {
			t.Fatalf("scan of every live record: %d %v", n, err)
		}
		stop := errors.New("stop")
		if err := snap.Scan("shop", "M", "", func(*store.StoredRecord) (bool, error) { return true, stop }); !errors.Is(err, stop) {
			t.Fatalf("scan returned %v for fn's error", err)
		}
		// Changes: after a revision, deleted ones too, in cursor order.
		var changed []string
		if err := snap.Changes(r1.Number, func(r *store.StoredRecord) error {
			changed = append(changed, r.Source+"/"+r.ID+":"+r.Action.String())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if want := []string{"other/id0005:ADDED", "shop/id0001:DELETED", "shop/id0002:UPDATED"}; !reflect.DeepEqual(changed, want) {
			t.Fatalf("changes since revision 1: %v, want %v", changed, want)
		}
		changed = nil
		if err := snap.Changes(2, func(r *store.StoredRecord) error { changed = append(changed, r.ID); return nil }); err != nil || fmt.Sprint(changed) != "[id0001 id0002]" {
			t.Fatalf("changes since revision 2: %v %v", changed, err)
		}
		n = 0
		if err := snap.Changes(0, func(*store.StoredRecord) error { n++; return nil }); err != nil || n != 302 {
			t.Fatalf("every record: %d %v", n, err)
		}
		if err := snap.Changes(0, func(*store.StoredRecord) error { return stop }); !errors.Is(err, stop) {
			t.Fatalf("changes returned %v for fn's error", err)
		}
		// An older snapshot's Changes end at its revision.
		old := snapshot(t, l, 2)
		changed = nil
		if err := old.Changes(r1.Number, func(r *store.StoredRecord) error { changed = append(changed, r.ID); return nil }); err != nil || fmt.Sprint(changed) != "[id0005]" {
			t.Fatalf("changes of snapshot 2 since 1: %v %v", changed, err)
		}
	})

	// ScanConnections walks a model over the source's own records and every
	// connection's, in (connection, id) order, and resumes after any record.
	test(t, d, "ScanConnections", func(t *testing.T, e *env) {
		l := e.l
		connRecords(t, l)
		snap := snapshot(t, l, 0)
		scan := func(source, model, afterConn, afterID string, stopAfter int) []string {
			t.Helper()
			var got []string
			err := snap.ScanConnections(source, model, afterConn, afterID, func(r *store.StoredRecord) (bool, error) {
				if r.Source != source || r.Model != model || !strings.Contains(string(r.Payload), `"`+r.ID+`"`) {
					return false, fmt.Errorf("record %+v", r)
				}
				got = append(got, r.Connection+"/"+r.ID)
				return stopAfter == 0 || len(got) < stopAfter, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		want := []string{"/own1", "acme/1", "acme/2", "acme/3", "acme-corp/1", "c.d/1", "c.d/9"}
		if got := scan("crm", "M", "", "", 0); !reflect.DeepEqual(got, want) {
			t.Fatalf("scan: %v, want %v", got, want)
		}
		for i, pos := range want {
			conn, id, _ := strings.Cut(pos, "/")
			if got := scan("crm", "M", conn, id, 0); len(got)+len(want[:i+1]) != len(want) || (len(got) > 0 && !reflect.DeepEqual(got, want[i+1:])) {
				t.Errorf("after %s: %v, want %v", pos, got, want[i+1:])
			}
		}
		if got := scan("crm", "M", "acme", "2a", 0); !reflect.DeepEqual(got, want[3:]) {
			t.Errorf("after acme/2a, a record that does not exist: %v", got)
		}
		if got := scan("crm", "M", "b", "", 0); !reflect.DeepEqual(got, want[5:]) {
			t.Errorf("after connection b: %v", got)
		}
		if got := scan("crm", "M", "", "", 2); !reflect.DeepEqual(got, want[:2]) {
			t.Errorf("stopped after 2: %v", got)
		}
		if got := scan("crm", "N", "", "", 0); !reflect.DeepEqual(got, []string{"acme/n1", "beta/n1"}) {
			t.Errorf("model N: %v", got)
		}
		if got := scan("crm2", "M", "", "", 0); !reflect.DeepEqual(got, []string{"/x", "acme/y"}) {
			t.Errorf("crm2: %v", got)
		}
		// Scan reads one connection's records by its source key.
		var one []string
		if err := snap.Scan(store.SourceKey("crm", "acme"), "M", "1", func(r *store.StoredRecord) (bool, error) {
			one = append(one, r.Connection+"/"+r.ID)
			return true, nil
		}); err != nil || !reflect.DeepEqual(one, []string{"acme/2", "acme/3"}) {
			t.Errorf("scan of acme: %v %v", one, err)
		}
		if r, ok, err := snap.Get(store.SourceKey("crm", "acme"), "M", "2"); err != nil || !ok || r.Source != "crm" || r.Connection != "acme" {
			t.Errorf("get of a connection's record: %+v %v %v", r, ok, err)
		}
		// A deleted record is left out.
		publishKeys(t, l, "run_del", map[string][]store.Change{store.SourceKey("crm", "acme"): {del("M", "2")}})
		snap = snapshot(t, l, 0)
		if got := scan("crm", "M", "", "", 0); !reflect.DeepEqual(got, []string{"/own1", "acme/1", "acme/3", "acme-corp/1", "c.d/1", "c.d/9"}) {
			t.Errorf("after a delete: %v", got)
		}
	})

	// Counts of live and deleted records per (source, model), over every
	// connection, at any revision; derived from an older revision's.
	test(t, d, "Counts", func(t *testing.T, e *env) {
		l := e.l
		put := func(model, id string) store.Change {
			return store.Change{Model: model, ID: id, Data: []byte(`{"x":1}`)}
		}
		publish(t, l, "run_1", "blog", put("Post", "p1"), put("Post", "p2"), put("Post", "p3"), put("Tag", "t1"))
		publish(t, l, "run_2", "a", put("Post", "x1"))
		publish(t, l, "run_3", "blog", del("Post", "p2"), put("Post", "p4"))
		count := func(rev int64) string {
			t.Helper()
			c, err := snapshot(t, l, rev).CountRecords()
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprint(c)
		}
		if got, want := count(0), "[{a Post 1 0 false} {blog Post 3 1 false} {blog Tag 1 0 false}]"; got != want {
			t.Errorf("newest: %s, want %s", got, want)
		}
		if got, want := count(1), "[{blog Post 3 0 false} {blog Tag 1 0 false}]"; got != want {
			t.Errorf("revision 1: %s, want %s", got, want)
		}
		publish(t, l, "run_4", "blog", del("Tag", "t1"), put("Post", "p2"), put("Tag", "t2"))
		old := snapshot(t, l, 1)
		base, err := old.CountRecords()
		if err != nil {
			t.Fatal(err)
		}
		for rev := int64(1); rev <= 4; rev++ {
			got, err := snapshot(t, l, rev).CountChanges(old, base)
			if err != nil {
				t.Fatal(err)
			}
			if want := count(rev); fmt.Sprint(got) != want {
				t.Errorf("revision %d from revision 1's counts: %v, want %s", rev, got, want)
			}
		}
		if _, err := old.CountChanges(snapshot(t, l, 0), nil); err == nil {
			t.Error("counts of an older revision from a newer one")
		}
		per, err := snapshot(t, l, 0).CountSource("blog")
		if err != nil || fmt.Sprint(per) != "[{blog Post 4 0 false} {blog Tag 1 1 false}]" {
			t.Errorf("counts of blog: %v %v", per, err)
		}
		if per, err := snapshot(t, l, 0).CountSource("nope"); err != nil || len(per) != 0 {
			t.Errorf("counts of a source without records: %v %v", per, err)
		}
	})

	// Counts over connections say which models' records belong to them.
	test(t, d, "CountsOverConnections", func(t *testing.T, e *env) {
		l := e.l
		r1 := connRecords(t, l)
		publishKeys(t, l, "run_2", map[string][]store.Change{
			store.SourceKey("crm", "acme"): {del("M", "2"), {Model: "M", ID: "4", Data: []byte(`{}`)}},
			store.SourceKey("crm", "new"):  {{Model: "N", ID: "n1", Data: []byte(`{}`)}},
		})
		want := "[{crm M 7 1 true} {crm N 3 0 true} {crm2 M 2 0 true} {crmx M 1 0 true}]"
		snap := snapshot(t, l, 0)
		got, err := snap.CountRecords()
		if err != nil || fmt.Sprint(got) != want {
			t.Fatalf("counts: %v %v, want %s", got, err, want)
		}
		old := snapshot(t, l, r1.Number)
		base, err := old.CountRecords()
		if err != nil || fmt.Sprint(base) != "[{crm M 7 0 true} {crm N 2 0 true} {crm2 M 2 0 true} {crmx M 1 0 true}]" {
			t.Fatalf("counts of revision 1: %v %v", base, err)
		}
		derived, err := snap.CountChanges(old, base)
		if err != nil || fmt.Sprint(derived) != want {
			t.Errorf("derived counts: %v %v, want %s", derived, err, want)
		}
		per, err := snap.CountSource(store.SourceKey("crm", "acme"))
		if err != nil || fmt.Sprint(per) != "[{crm M 3 1 true} {crm N 1 0 true}]" {
			t.Errorf("counts of acme: %v %v", per, err)
		}
	})

	// A field index follows every kind of change; each revision reads its
	// own version of it.
	test(t, d, "FieldIndexFollowsChanges", func(t *testing.T, e *env) {
		l := e.l
		if err := l.SetFieldIndexes([]store.FieldIndex{{Source: "shop", Model: "M", Field: "title"}, {Source: "shop", Model: "M", Field: "tags"}, {Source: "shop", Model: "M", Field: "n"}}); err != nil {
			t.Fatal(err)
		}
		doc := func(id, body string) store.Change { return store.Change{Model: "M", ID: id, Data: []byte(body)} }
		r1 := publish(t, l, "run_1", "shop",
			doc("a", `{"id":"a","title":"x","tags":["red","blue"],"n":1}`),
			doc("b", `{"id":"b","title":"x","tags":"red","n":1.0}`),
			doc("c", `{"id":"c","title":"y\u0000z","n":true}`),
			doc("z", `{"id":"z","title":null,"n":0}`))
		eq := func(rev int64, field string, values []any, want ...string) {
			t.Helper()
			if want == nil {
				want = []string{}
			}
			if got := lookup(t, l, rev, "shop", field, values...); !reflect.DeepEqual(got, want) {
				t.Fatalf("revision %d %s in %v: %v, want %v", rev, field, values, got, want)
			}
		}
		eq(r1.Number, "title", []any{"x"}, "a", "b")
		eq(r1.Number, "title", []any{"y\x00z"}, "c")
		eq(r1.Number, "tags", []any{"red"}, "a", "b")
		eq(r1.Number, "tags", []any{"blue", "nope"}, "a")
		eq(r1.Number, "n", []any{1}, "a", "b")
		eq(r1.Number, "n", []any{1.0}, "a", "b")
		eq(r1.Number, "n", []any{true}, "c")
		eq(r1.Number, "n", []any{"1"}) // a string is not a number
		eq(r1.Number, "n", []any{0}, "z")
		eq(r1.Number, "title", []any{"x", "y\x00z", "x"}, "a", "b", "c")
		// An update, a delete and an unchanged save in one run.
		r2 := publish(t, l, "run_2", "shop",
			doc("a", `{"id":"a","title":"y\u0000z","tags":["blue"],"n":1}`),
			del("M", "b"),
			doc("c", `{"id":"c","title":"y\u0000z","n":true}`))
		eq(r2.Number, "title", []any{"x"})
		eq(r2.Number, "title", []any{"y\x00z"}, "a", "c")
		eq(r2.Number, "tags", []any{"red"})
		eq(r1.Number, "title", []any{"x"}, "a", "b") // the older revision reads its own
		// A direct publish revives b.
		r3 := direct(t, l, "shop", doc("b", `{"id":"b","title":"w"}`))
		eq(r3.Number, "title", []any{"w"}, "b")
		eq(r2.Number, "title", []any{"w"})
		// A long value is found too.
		long := strings.Repeat("é", 300)
		r4 := publish(t, l, "run_4", "shop", doc("d", fmt.Sprintf(`{"id":"d","title":%q}`, long)))
		eq(r4.Number, "title", []any{long}, "d")
		eq(r4.Number, "title", []any{long + "x"})
		// Limit: the first ids, and whether there were more.
		snap := snapshot(t, l, r4.Number)
		got, more, err := snap.Lookup("shop", "M", "title", []any{"y\x00z", "w"}, 2)
		if err != nil || !more || fmt.Sprint(got) != "[a b]" {
			t.Fatalf("lookup with a limit: %v more=%v %v", got, more, err)
		}
		if got, more, err := snap.Lookup("shop", "M", "title", []any{"y\x00z", "w"}, 3); err != nil || more || fmt.Sprint(got) != "[a b c]" {
			t.Fatalf("lookup with a limit it fits: %v more=%v %v", got, more, err)
		}
		// A field that is not indexed.
		if _, _, err := snap.Lookup("shop", "M", "id", []any{"a"}, 0); !errors.Is(err, store.ErrNotIndexed) {
			t.Fatalf("lookup of a field not indexed: %v", err)
		}
		if _, _, err := snap.Lookup("blog", "M", "title", []any{"a"}, 0); !errors.Is(err, store.ErrNotIndexed) {
			t.Fatalf("lookup of another source: %v", err)
		}
	})

	// A webhook publish while a run stages, both changing one record: the
	// index ends as the record does.
	test(t, d, "FieldIndexWithInterveningPublish", func(t *testing.T, e *env) {
		l := e.l
		if err := l.SetFieldIndexes([]store.FieldIndex{{Source: "shop", Model: "M", Field: "title"}}); err != nil {
			t.Fatal(err)
		}
		publish(t, l, "run_1", "shop", save("M", "a", "1"))
		for _, beside := range []bool{false, true} {
			var hold store.Staging
			if beside {
				hold, _ = l.BeginStaging("run_hold")
			}
			st, err := l.BeginStaging(fmt.Sprintf("run_%v", beside))
			if err != nil {
				t.Fatal(err)
			}
			w := st.Writer("shop", store.WriterOptions{})
			staged := fmt.Sprintf("staged %v", beside)
			if err := w.Apply([]store.Change{save("M", "a", staged)}); err != nil {
				t.Fatal(err)
			}
			hook := direct(t, l, "shop", save("M", "a", "hook"))
			if got := lookup(t, l, hook.Number, "shop", "title", "hook"); fmt.Sprint(got) != "[a]" {
				t.Fatalf("the webhook's value at its revision: %v", got)
			}
			rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
			if err != nil {
				t.Fatal(err)
			}
			if got := lookup(t, l, rev.Number, "shop", "title", staged); fmt.Sprint(got) != "[a]" {
				t.Fatalf("the run's value at its revision (beside %v): %v", beside, got)
			}
			if got := lookup(t, l, rev.Number, "shop", "title", "hook", "1"); len(got) != 0 {
				t.Fatalf("older values still indexed (beside %v): %v", beside, got)
			}
			if hold != nil {
				if err := hold.Abort(); err != nil {
					t.Fatal(err)
				}
			}
		}
	})

	// An index declared over existing records covers them; an aborted run
	// leaves it as it was; a dropped index is gone.
	test(t, d, "FieldIndexBuildAbortDrop", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_1", "shop", save("M", "a", "1"), save("M", "b", "2"))
		publish(t, l, "run_2", "shop", save("M", "a", "2"), save("M", "c", "3"))
		publish(t, l, "run_x", "shop", del("M", "c"))
		if err := l.SetFieldIndexes([]store.FieldIndex{{Source: "shop", Model: "M", Field: "title"}}); err != nil {
			t.Fatal(err)
		}
		if got := lookup(t, l, 0, "shop", "title", "2"); fmt.Sprint(got) != "[a b]" {
			t.Fatalf("index built over existing records: %v", got)
		}
		if got := lookup(t, l, 0, "shop", "title", "3"); len(got) != 0 {
			t.Fatalf("a deleted record is indexed: %v", got)
		}
		st, _ := l.BeginStaging("run_3")
		if err := st.Writer("shop", store.WriterOptions{}).Apply([]store.Change{save("M", "a", "3")}); err != nil {
			t.Fatal(err)
		}
		if err := st.Abort(); err != nil {
			t.Fatal(err)
		}
		r4 := publish(t, l, "run_4", "shop", save("M", "b", "4"))
		if got := lookup(t, l, r4.Number, "shop", "title", "2"); fmt.Sprint(got) != "[a]" {
			t.Fatalf("after an aborted run: %v", got)
		}
		if got := lookup(t, l, r4.Number, "shop", "title", "3"); len(got) != 0 {
			t.Fatalf("an aborted run's value is indexed: %v", got)
		}
		// Adding an index keeps the others; dropping one keeps the rest.
		if err := l.SetFieldIndexes([]store.FieldIndex{{Source: "shop", Model: "M", Field: "title"}, {Source: "shop", Model: "M", Field: "id"}}); err != nil {
			t.Fatal(err)
		}
		if got := lookup(t, l, 0, "shop", "title", "4"); fmt.Sprint(got) != "[b]" {
			t.Fatalf("the index after another was added: %v", got)
		}
		if got := lookup(t, l, 0, "shop", "id", "a", "b"); fmt.Sprint(got) != "[a b]" {
			t.Fatalf("the added index: %v", got)
		}
		if err := l.SetFieldIndexes([]store.FieldIndex{{Source: "shop", Model: "M", Field: "id"}}); err != nil {
			t.Fatal(err)
		}
		snap := snapshot(t, l, 0)
		if _, _, err := snap.Lookup("shop", "M", "title", []any{"4"}, 0); !errors.Is(err, store.ErrNotIndexed) {
			t.Fatalf("a dropped index: %v", err)
		}
		if got, _, err := snap.Lookup("shop", "M", "id", []any{"b"}, 0); err != nil || fmt.Sprint(got) != "[b]" {
			t.Fatalf("the index kept: %v %v", got, err)
		}
	})

	// A field index covers every connection of its source: looked up per
	// connection or over all of them.
	test(t, d, "FieldIndexOverConnections", func(t *testing.T, e *env) {
		l := e.l
		connRecords(t, l)
		if err := l.SetFieldIndexes([]store.FieldIndex{{Source: "crm", Model: "M", Field: "color"}}); err != nil {
			t.Fatal(err)
		}
		all := func(snap store.Snapshot, values ...any) string {
			t.Helper()
			keys, _, err := snap.LookupConnections("crm", "M", "color", values, 0)
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprint(keys)
		}
		check := func(rev int64, key, color string, want string) {
			t.Helper()
			if got := fmt.Sprint(lookup(t, l, rev, key, "color", color)); got != want {
				t.Errorf("revision %d %q color=%s: %s, want %s", rev, key, color, got, want)
			}
		}
		snap := snapshot(t, l, 0)
		r1 := snap.Revision().Number
		check(r1, "crm", "red", "[own1]")
		check(r1, store.SourceKey("crm", "acme"), "red", "[1 3]")
		check(r1, store.SourceKey("crm", "acme"), "blue", "[2]")
		check(r1, store.SourceKey("crm", "acme-corp"), "blue", "[1]")
		check(r1, store.SourceKey("crm", "c.d"), "blue", "[]")
		if got := all(snap, "red", "blue"); got != "[{ own1} {acme 1} {acme 2} {acme 3} {acme-corp 1} {c.d 1}]" {
			t.Errorf("every connection: %s", got)
		}
		if keys, more, err := snap.LookupConnections("crm", "M", "color", []any{"red", "blue"}, 2); err != nil || !more || fmt.Sprint(keys) != "[{ own1} {acme 1}]" {
			t.Errorf("every connection, limit 2: %v %v %v", keys, more, err)
		}
		if _, _, err := snap.LookupConnections("crm2", "M", "color", []any{"red"}, 0); !errors.Is(err, store.ErrNotIndexed) {
			t.Errorf("lookup of a source without the index: %v", err)
		}
		r2 := publishKeys(t, l, "run_2", map[string][]store.Change{
			store.SourceKey("crm", "acme"): {{Model: "M", ID: "1", Data: []byte(`{"color":"blue"}`)}, del("M", "3")},
			store.SourceKey("crm", "zed"):  {{Model: "M", ID: "1", Data: []byte(`{"color":"red"}`)}},
		})
		check(r2.Number, store.SourceKey("crm", "acme"), "red", "[]")
		check(r2.Number, store.SourceKey("crm", "acme"), "blue", "[1 2]")
		check(r2.Number, store.SourceKey("crm", "zed"), "red", "[1]")
		if got := all(snapshot(t, l, r2.Number), "red"); got != "[{ own1} {c.d 1} {zed 1}]" {
			t.Errorf("every connection after changes: %s", got)
		}
		if got := all(snap, "red"); got != "[{ own1} {acme 1} {acme 3} {c.d 1}]" {
			t.Errorf("the older revision reads its own index: %s", got)
		}
	})

	// A revision one host published opens on another, with the field
	// indexes another host declared kept by the publish.
	hostsTest(t, d, "AcrossHosts", 2, func(t *testing.T, ls []store.Layer) {
		a, b := ls[0], ls[1]
		publish(t, b, "run_1", "shop", save("M", "a", "1"))
		if err := a.SetFieldIndexes([]store.FieldIndex{{Source: "shop", Model: "M", Field: "title"}}); err != nil {
			t.Fatal(err)
		}
		r2 := publish(t, b, "run_2", "shop", save("M", "b", "1"), save("M", "c", "2"))
		r3 := direct(t, b, "shop", save("M", "a", "2"))
		for h, l := range ls {
			if got := lookup(t, l, r2.Number, "shop", "title", "1"); fmt.Sprint(got) != "[a b]" {
				t.Fatalf("host %d looks up revision 2: %v", h, got)
			}
			if got := lookup(t, l, r3.Number, "shop", "title", "2"); fmt.Sprint(got) != "[a c]" {
				t.Fatalf("host %d looks up revision 3: %v", h, got)
			}
			s := snapshot(t, l, r3.Number)
			if r, ok, err := s.Get("shop", "M", "a"); err != nil || !ok || r.Revision != r3.Number || !r.LastModifiedAt.Equal(r3.CreatedAt) {
				t.Fatalf("host %d gets %+v %v %v", h, r, ok, err)
			}
			if c, err := s.CountRecords(); err != nil || fmt.Sprint(c) != "[{shop M 3 0 false}]" {
				t.Fatalf("host %d counts %v %v", h, c, err)
			}
		}
	})
}

// lookup looks values up in the field index of (source, M, field) at
// revision rev (0: current); never nil.
func lookup(t testing.TB, l store.Layer, rev int64, source, field string, values ...any) []string {
	t.Helper()
	s, ok, err := l.OpenSnapshot(rev)
	if err != nil || !ok {
		t.Fatalf("snapshot %d: %v %v", rev, ok, err)
	}
	defer s.Close()
	ids, _, err := s.Lookup(source, "M", field, values, 0)
	if err != nil {
		t.Fatalf("lookup %s=%v at %d: %v", field, values, rev, err)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids
}

// connRecords seeds source "crm" with records of its own and of
// connections, models M and N interleaved, and sources whose names start
// like it.
func connRecords(t testing.TB, l store.Layer) store.Revision {
	t.Helper()
	put := func(model, id, color string) store.Change {
		return store.Change{Model: model, ID: id, Data: []byte(fmt.Sprintf(`{"id":%q,"color":%q}`, id, color))}
	}
	return publishKeys(t, l, "run_seed", map[string][]store.Change{
		"crm":                                {put("M", "own1", "red")},
		store.SourceKey("crm", "acme"):       {put("M", "1", "red"), put("M", "2", "blue"), put("N", "n1", "red"), put("M", "3", "red")},
		store.SourceKey("crm", "beta"):       {put("N", "n1", "red")},
		store.SourceKey("crm", "c.d"):        {put("M", "1", "red"), put("M", "9", "green")},
		store.SourceKey("crm", "acme-corp"):  {put("M", "1", "blue")},
		"crm2":                               {put("M", "x", "red")},
		store.SourceKey("crm2", "acme"):      {put("M", "y", "red")},
		store.SourceKey("crmx", "something"): {put("M", "z", "red")},
	})
}
