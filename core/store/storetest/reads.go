package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// testReads: Records queries (SPEC §4, §5, §7, §13).
func testReads(t *testing.T, d Driver) {
	// Nothing published: an empty page, no error.
	test(t, d, "EmptyLayer", func(t *testing.T, e *env) {
		got, page, err := tryRead(e.l, store.Query{})
		if err != nil || len(got) != 0 || page.Next != "" || page.Revision.Number != 0 {
			t.Fatalf("records of an empty layer: %d, %+v, %v", len(got), page, err)
		}
	})

	// Cursors grow strictly across runs and direct publishes; a read after
	// a record's cursor returns exactly the changes after it, each record
	// once at its latest state.
	test(t, d, "CursorsAcrossRevisions", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_1", "shop", save("M", "a", "1"), save("M", "b", "1"), save("M", "c", "1"))
		direct(t, l, "shop", save("M", "b", "2"), save("M", "d", "1"))
		publish(t, l, "run_3", "blog", save("P", "p", "1"))
		direct(t, l, "shop", save("M", "a", "2"), del("M", "c"))
		publish(t, l, "run_5", "shop", save("M", "e", "1"), save("M", "b", "3"))
		all, _ := readAll(t, l, store.Query{})
		checkAscending(t, all)
		if ids(all) != "d p a c e b" {
			t.Fatalf("records in cursor order: %s", ids(all))
		}
		for i := 1; i < len(all); i++ {
			if all[i].revision() < all[i-1].revision() {
				t.Fatalf("cursor order is not revision order: %s (%d) then %s (%d)", all[i-1].ID, all[i-1].revision(), all[i].ID, all[i].revision())
			}
		}
		for i, r := range all {
			after, _ := readAll(t, l, store.Query{After: cursorOf(t, r)})
			if ids(after) != ids(all[i+1:]) {
				t.Fatalf("after %s: %s, want %s", r.ID, ids(after), ids(all[i+1:]))
			}
		}
		if m := byID(all); m["b"].Title != "3" || m["a"].Title != "2" || !m["c"].deleted() {
			t.Fatalf("latest states %+v", all)
		}
	})

	// Pages follow page tokens in cursor order; Limit 0 reads 100.
	test(t, d, "Pagination", func(t *testing.T, e *env) {
		l := e.l
		var cs []store.Change
		for i := 0; i < 150; i++ {
			cs = append(cs, save("M", fmt.Sprintf("r%03d", i), "x"))
		}
		publish(t, l, "run_1", "shop", cs...)
		q := store.Query{Limit: 40}
		var got []string
		pages := 0
		for {
			recs, page := readAll(t, l, q)
			pages++
			if len(recs) > 40 {
				t.Fatalf("a page of %d records with limit 40", len(recs))
			}
			for _, r := range recs {
				got = append(got, r.ID)
			}
			if page.Next == "" {
				break
			}
			c, rev, err := store.ParsePosition(page.Next)
			if err != nil || rev != page.Revision.Number {
				t.Fatalf("page token %q: revision %d, %v", page.Next, rev, err)
			}
			q.After, q.Revision = &c, rev
		}
		if pages != 4 || len(got) != 150 || got[0] != "r000" || got[149] != "r149" {
			t.Fatalf("%d pages, %d records", pages, len(got))
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("walk order %s after %s", got[i], got[i-1])
			}
		}
		recs, page := readAll(t, l, store.Query{})
		if len(recs) != 100 || page.Next == "" {
			t.Fatalf("default page: %d records, next %q", len(recs), page.Next)
		}
		// A page that ends exactly at the last record has no next.
		recs, page = readAll(t, l, store.Query{Limit: 150})
		if len(recs) != 150 || page.Next != "" {
			t.Fatalf("a page of every record: %d, next %q", len(recs), page.Next)
		}
	})

	// A walk that follows page tokens stays on its revision while newer
	// ones are published; from a record's own cursor, reads see the newest.
	test(t, d, "WalkStaysOnItsRevision", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_1", "shop", save("M", "a", "1"), save("M", "b", "1"), save("M", "c", "1"))
		got, page := readAll(t, l, store.Query{Limit: 2})
		if len(got) != 2 || page.Next == "" {
			t.Fatalf("first page %s %+v", ids(got), page)
		}
		publish(t, l, "run_2", "shop", save("M", "a", "2"), del("M", "c"))
		c, rev, err := store.ParsePosition(page.Next)
		if err != nil || rev != 1 {
			t.Fatalf("page token: revision %d, %v", rev, err)
		}
		rest, page2 := readAll(t, l, store.Query{After: &c, Revision: rev, Limit: 2})
		if ids(rest) != "c" || rest[0].deleted() || page2.Revision.Number != 1 || page2.Next != "" {
			t.Fatalf("rest of the walk %+v %+v", rest, page2)
		}
		newer, page3 := readAll(t, l, store.Query{After: cursorOf(t, rest[0])})
		if ids(newer) != "a c" || newer[0].Title != "2" || !newer[1].deleted() || page3.Revision.Number != 2 {
			t.Fatalf("changes after the walk: %+v", newer)
		}
	})

	// modified_after is inclusive and exact to the microsecond (SPEC §8):
	// a revision's commit time returns its records and later ones.
	test(t, d, "ModifiedAfter", func(t *testing.T, e *env) {
		l := e.l
		r1 := publish(t, l, "run_1", "shop", save("M", "a", "1"), save("M", "b", "1"))
		r2 := publish(t, l, "run_2", "shop", save("M", "b", "2"), save("N", "x", "1"))
		r3 := direct(t, l, "shop", save("M", "c", "3"))
		check := func(q store.Query, want string) {
			t.Helper()
			got, _ := readAll(t, l, q)
			if ids(got) != want {
				t.Fatalf("modified_after %s (revision 1 at %s, 2 at %s, 3 at %s) %+v: %q, want %q",
					q.ModifiedAfter.Format(time.RFC3339Nano), rendered(r1.CreatedAt), rendered(r2.CreatedAt), rendered(r3.CreatedAt), q, ids(got), want)
			}
		}
		check(store.Query{ModifiedAfter: r1.CreatedAt.Add(-time.Hour)}, "a b x c")
		check(store.Query{ModifiedAfter: r1.CreatedAt}, "a b x c")
		check(store.Query{ModifiedAfter: r2.CreatedAt}, "b x c")
		check(store.Query{ModifiedAfter: r2.CreatedAt.Add(time.Nanosecond)}, "c")
		check(store.Query{ModifiedAfter: r2.CreatedAt.Add(time.Microsecond)}, "c")
		check(store.Query{ModifiedAfter: r3.CreatedAt}, "c")
		check(store.Query{ModifiedAfter: r3.CreatedAt.Add(time.Microsecond)}, "")
		// With other filters.
		check(store.Query{ModifiedAfter: r2.CreatedAt, Model: "M"}, "b c")
		check(store.Query{ModifiedAfter: r2.CreatedAt, Model: "M", IDs: []string{"a", "b"}, Sources: []string{"shop"}}, "b")
		got, _ := readAll(t, l, store.Query{ModifiedAfter: r2.CreatedAt, Limit: 1})
		if len(got) != 1 {
			t.Fatalf("modified_after with a limit: %s", ids(got))
		}
		check(store.Query{ModifiedAfter: r2.CreatedAt, After: cursorOf(t, got[0])}, "x c")
		// An older revision read with modified_after sees its own records.
		check(store.Query{ModifiedAfter: r2.CreatedAt, Revision: 2}, "b x")
		// The time's zone does not matter.
		check(store.Query{ModifiedAfter: r2.CreatedAt.In(time.FixedZone("X", 5*3600))}, "b x c")
	})

	// Metadata is rendered as SPEC §4 (_metadata) and §13 (_nango_metadata)
	// show, byte for byte, after the record's own fields.
	test(t, d, "MetadataRendering", func(t *testing.T, e *env) {
		l := e.l
		r1 := publish(t, l, "run_1", "shop", save("M", "a", "A"), save("M", "b", "B"), store.Change{Model: "E", ID: "e", Data: []byte(`{}`)})
		r2 := publish(t, l, "run_2", "shop", save("M", "a", "A2"), del("M", "b"))
		r3 := publish(t, l, "run_3", store.SourceKey("crm", "acme"), save("C", "x", "X"))
		all, _ := readAll(t, l, store.Query{})
		m := byID(all)
		m["e"] = m[""] // the record without fields
		t1, t2, t3 := rendered(r1.CreatedAt), rendered(r2.CreatedAt), rendered(r3.CreatedAt)
		want := map[string]string{
			"e": `{"_metadata":{"source":"shop","model":"E","first_seen_at":"` + t1 + `","last_modified_at":"` + t1 + `","last_action":"ADDED","deleted_at":null,"cursor":"` + m["e"].cursor() + `","revision":1}}`,
			"a": `{"id":"a","title":"A2","_metadata":{"source":"shop","model":"M","first_seen_at":"` + t1 + `","last_modified_at":"` + t2 + `","last_action":"UPDATED","deleted_at":null,"cursor":"` + m["a"].cursor() + `","revision":2}}`,
			"b": `{"id":"b","title":"B","_metadata":{"source":"shop","model":"M","first_seen_at":"` + t1 + `","last_modified_at":"` + t2 + `","last_action":"DELETED","deleted_at":"` + t2 + `","cursor":"` + m["b"].cursor() + `","revision":2}}`,
			"x": `{"id":"x","title":"X","_metadata":{"source":"crm","connection":"acme","model":"C","first_seen_at":"` + t3 + `","last_modified_at":"` + t3 + `","last_action":"ADDED","deleted_at":null,"cursor":"` + m["x"].cursor() + `","revision":3}}`,
		}
		for id, w := range want {
			if string(m[id].Raw) != w {
				t.Errorf("record %s:\n got %s\nwant %s", id, m[id].Raw, w)
			}
		}
		nango, _ := readAll(t, l, store.Query{Metadata: store.MetadataNango})
		n := byID(nango)
		n["e"] = n[""]
		wantNango := map[string]string{
			"a": `{"id":"a","title":"A2","_nango_metadata":{"first_seen_at":"` + t1 + `","last_modified_at":"` + t2 + `","last_action":"UPDATED","deleted_at":null,"cursor":"` + m["a"].cursor() + `","pruned_at":null}}`,
			"b": `{"id":"b","title":"B","_nango_metadata":{"first_seen_at":"` + t1 + `","last_modified_at":"` + t2 + `","last_action":"DELETED","deleted_at":"` + t2 + `","cursor":"` + m["b"].cursor() + `","pruned_at":null}}`,
			"e": `{"_nango_metadata":{"first_seen_at":"` + t1 + `","last_modified_at":"` + t1 + `","last_action":"ADDED","deleted_at":null,"cursor":"` + m["e"].cursor() + `","pruned_at":null}}`,
		}
		for id, w := range wantNango {
			if string(n[id].Raw) != w {
				t.Errorf("record %s in Nango's shape:\n got %s\nwant %s", id, n[id].Raw, w)
			}
		}
		for _, r := range all {
			if _, err := store.ParseCursor(r.cursor()); err != nil {
				t.Errorf("cursor %q of %s: %v", r.cursor(), r.ID, err)
			}
		}
	})

	// A payload is served as the connector wrote it: key order, numbers
	// and strings kept (white space may be dropped); a resend of the same
	// bytes is unchanged.
	test(t, d, "PayloadKeptAsWritten", func(t *testing.T, e *env) {
		l := e.l
		exact := `{"z":1,"a":{"y":[1,2.50,"x",true,null],"b":null},"id":"k","n":1e3,"big":12345678901234567890,"u":"é\u00e9\"\\","empty":{}}`
		spaced := "{ \"id\" : \"w\" ,\n\t\"v\" : [ 1 , 2 ] , \"s\": \"a  b\" }"
		r1 := publish(t, l, "run_1", "shop", store.Change{Model: "M", ID: "k", Data: []byte(exact)}, store.Change{Model: "M", ID: "w", Data: []byte(spaced)})
		got, _ := readAll(t, l, store.Query{})
		m := byID(got)
		if raw := m["k"].Raw; !bytes.HasPrefix(raw, []byte(exact[:len(exact)-1]+`,"_metadata":{`)) {
			t.Fatalf("payload rendered as\n%s\nwritten as\n%s", raw, exact)
		}
		var w map[string]any
		if err := json.Unmarshal(m["w"].Raw, &w); err != nil || w["s"] != "a  b" || fmt.Sprint(w["v"]) != "[1 2]" {
			t.Fatalf("payload with white space rendered as %s", m["w"].Raw)
		}
		snap := snapshot(t, l, r1.Number)
		if r, ok, err := snap.Get("shop", "M", "k"); err != nil || !ok || string(r.Payload) != exact {
			t.Fatalf("snapshot payload %s, written %s (%v %v)", r.Payload, exact, ok, err)
		}
		r2 := publish(t, l, "run_2", "shop", store.Change{Model: "M", ID: "k", Data: []byte(exact)}, store.Change{Model: "M", ID: "w", Data: []byte(spaced)})
		if c := r2.Counts["shop"]["M"]; c != (store.Counts{Unchanged: 2}) {
			t.Fatalf("a resend of the same bytes counted %+v", c)
		}
	})

	// Action filters select records by their last action.
	test(t, d, "ActionFilters", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_1", "shop", save("M", "u", "1"), save("M", "d", "1"))
		publish(t, l, "run_2", "shop", save("M", "u", "2"), del("M", "d"), save("M", "a", "1"))
		for mask, want := range map[store.ActionMask]string{
			0:                                     "u d a",
			store.MaskAdded:                       "a",
			store.MaskUpdated:                     "u",
			store.MaskDeleted:                     "d",
			store.MaskAdded | store.MaskUpdated:   "u a",
			store.MaskAdded | store.MaskDeleted:   "d a",
			store.MaskUpdated | store.MaskDeleted: "u d",
			store.MaskAdded | store.MaskUpdated | store.MaskDeleted: "u d a",
		} {
			if got, _ := readAll(t, l, store.Query{Actions: mask}); ids(got) != want {
				t.Errorf("actions %03b: %q, want %q", mask, ids(got), want)
			}
		}
		// A filtered walk pages over what matches only.
		got, _ := walk(t, l, store.Query{Actions: store.MaskAdded | store.MaskDeleted, Limit: 1})
		if ids(got) != "d a" {
			t.Fatalf("filtered walk %s", ids(got))
		}
	})

	// Source, model and connection filters, with source names that start
	// alike.
	test(t, d, "Filters", func(t *testing.T, e *env) {
		l := e.l
		publishKeys(t, l, "run_1", map[string][]store.Change{
			"crm":                           {save("M", "own", "1")},
			store.SourceKey("crm", "acme"):  {save("M", "a1", "1"), save("N", "a2", "1")},
			store.SourceKey("crm", "beta"):  {save("M", "b1", "1")},
			"crm2":                          {save("M", "x", "1")},
			store.SourceKey("crm2", "acme"): {save("M", "y", "1")},
		})
		check := func(q store.Query, want string) {
			t.Helper()
			got, _ := readAll(t, l, q)
			if s := strings.Join(sorted(strings.Fields(ids(got))), " "); s != want {
				t.Fatalf("query %+v: %q, want %q", q, s, want)
			}
		}
		check(store.Query{Source: "crm"}, "a1 a2 b1 own")
		check(store.Query{Source: "crm2"}, "x y")
		check(store.Query{Model: "N"}, "a2")
		check(store.Query{Source: "crm", Model: "M"}, "a1 b1 own")
		check(store.Query{Connection: "acme"}, "a1 a2 y")
		check(store.Query{Source: "crm", Connection: "acme"}, "a1 a2")
		check(store.Query{Source: "crm", Connection: "acme", Model: "M"}, "a1")
		check(store.Query{Source: "cr"}, "")
		check(store.Query{Connection: "acm"}, "")
	})

	// ids= selects records by id (deleted ones too), in cursor order, with
	// limit and page tokens.
	test(t, d, "IDs", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_1", "shop", save("M", "a", "1"), save("M", "b", "1"), save("M", "c", "1"), save("N", "a", "other model"))
		publish(t, l, "run_2", "shop", del("M", "b"))
		publish(t, l, "run_3", "blog", save("M", "a", "blog"))
		publish(t, l, "run_4", store.SourceKey("crm", "acme"), save("M", "a", "acme"))
		q := store.Query{Model: "M", IDs: []string{"c", "a", "b", "zz", "a"}, Sources: []string{"shop"}, Limit: 2}
		got, page := readAll(t, l, q)
		if ids(got) != "a c" || page.Next == "" {
			t.Fatalf("first page %s, next %q", ids(got), page.Next)
		}
		c, rev, err := store.ParsePosition(page.Next)
		if err != nil || rev != 4 {
			t.Fatalf("page token: revision %d, %v", rev, err)
		}
		q.After, q.Revision = &c, rev
		got, page = readAll(t, l, q)
		if ids(got) != "b" || !got[0].deleted() || page.Next != "" {
			t.Fatalf("second page %+v, next %q", got, page.Next)
		}
		check := func(q store.Query, want string) {
			t.Helper()
			got, _ := readAll(t, l, q)
			var s []string
			for _, r := range got {
				s = append(s, r.str("source")+":"+r.Title)
			}
			if strings.Join(s, " ") != want {
				t.Fatalf("query %+v: %q, want %q", q, strings.Join(s, " "), want)
			}
		}
		check(store.Query{Model: "M", IDs: []string{"a"}, Sources: []string{"shop", "blog"}}, "shop:1 blog:blog")
		check(store.Query{Model: "M", IDs: []string{"a"}, Source: "blog"}, "blog:blog")
		check(store.Query{Model: "M", IDs: []string{"a"}, Source: "crm", Connection: "acme"}, "crm:acme")
		check(store.Query{Model: "N", IDs: []string{"a"}, Sources: []string{"shop"}}, "shop:other model")
		check(store.Query{Model: "M", IDs: []string{"a", "b"}, Sources: []string{"shop"}, Actions: store.MaskDeleted}, "shop:1")
		check(store.Query{Model: "M", IDs: []string{"a"}, Sources: []string{"shop"}, Revision: 1}, "shop:1")
		check(store.Query{Model: "M", IDs: []string{"b"}, Sources: []string{"shop"}, Revision: 1}, "shop:1")
		check(store.Query{Model: "M", IDs: []string{"a"}, Sources: []string{"nope"}}, "")
	})

	// An error from emit ends the read and is returned.
	test(t, d, "EmitError", func(t *testing.T, e *env) {
		publish(t, e.l, "run_1", "shop", save("M", "a", "1"), save("M", "b", "1"))
		stop := errors.New("client went away")
		n := 0
		_, err := e.l.Records(store.Query{}, func([]byte) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Fatalf("records after an emit error: %d emitted, %v", n, err)
		}
	})

	// Records of a revision read after the records of later ones were
	// written are still those of that revision.
	test(t, d, "OlderRevisions", func(t *testing.T, e *env) {
		l := e.l
		l.SetRetention(10, 0)
		var want []string
		for i := 1; i <= 4; i++ {
			publish(t, l, fmt.Sprintf("run_%d", i), "shop", save("M", "a", fmt.Sprint(i)), save("M", fmt.Sprintf("n%d", i), "x"))
			got, _ := readAll(t, l, store.Query{})
			want = append(want, fmt.Sprint(titles(got)))
		}
		for i := 1; i <= 4; i++ {
			got, page := readAll(t, l, store.Query{Revision: int64(i)})
			if page.Revision.Number != int64(i) || fmt.Sprint(titles(got)) != want[i-1] {
				t.Fatalf("revision %d: %v at %d, want %s", i, titles(got), page.Revision.Number, want[i-1])
			}
		}
	})

	testReadsAcrossHosts(t, d)
}

// testReadsAcrossHosts: a cursor walk whose pages go to different hosts
// stays on its revision, which every host keeps while it goes on.
func testReadsAcrossHosts(t *testing.T, d Driver) {
	hostsTest(t, d, "AcrossHosts", 3, func(t *testing.T, ls []store.Layer) {
		for _, l := range ls {
			l.SetRetention(1, 0)
		}
		publish(t, ls[0], "run_0", "shop", many(30, "1")...)
		q := store.Query{Limit: 10}
		seen := 0
		for page := 0; ; page++ {
			got, p := readAll(t, ls[page%2], q)
			seen += len(got)
			if p.Revision.Number != 1 {
				t.Fatalf("page %d on host %d read revision %d, want 1", page, page%2, p.Revision.Number)
			}
			if p.Next == "" {
				break
			}
			for i := 0; i < 3; i++ {
				publish(t, ls[2], fmt.Sprintf("run_%d_%d", page, i), "shop", save("M", "x", fmt.Sprint(page, i)))
			}
			c, rev, err := store.ParsePosition(p.Next)
			if err != nil {
				t.Fatal(err)
			}
			q = store.Query{After: &c, Revision: rev, Limit: 10}
		}
		if seen != 30 {
			t.Fatalf("the walk saw %d records, want 30", seen)
		}
		// A revision one host just published reads on every other.
		rev := publish(t, ls[2], "run_last", "shop", save("M", "y", "last"))
		for h, l := range ls {
			if got, page := readAll(t, l, store.Query{Revision: rev.Number, IDs: []string{"y"}, Model: "M", Sources: []string{"shop"}}); len(got) != 1 || page.Revision.Number != rev.Number {
				t.Fatalf("host %d reads revision %d: %s at %d", h, rev.Number, ids(got), page.Revision.Number)
			}
			eventually(t, fmt.Sprintf("host %d reads revision %d by default", h, rev.Number), func() bool {
				_, page := readAll(t, l, store.Query{Limit: 1})
				return page.Revision.Number == rev.Number
			})
		}
	})
}

// titles maps records' ids to titles.
func titles(rs []rec) map[string]string {
	m := map[string]string{}
	for _, r := range rs {
		m[r.ID] = r.Title
	}
	return m
}
