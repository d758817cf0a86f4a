package postgres

import (
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

var _ store.Snapshot = (*Snapshot)(nil)

func TestSnapshotRevisionsAndRetention(t *testing.T) {
	l := testLayer(t)
	if s, ok, err := l.OpenSnapshot(0); s != nil || ok || err != nil {
		t.Fatalf("snapshot of an empty layer: %v %v %v", s, ok, err)
	}
	if _, ok, err := l.OpenSnapshot(1); ok || !errors.Is(err, store.ErrNoRevision) {
		t.Fatalf("snapshot of a revision never published: %v %v", ok, err)
	}
	publish(t, l, t0, save("shop", "items", "a", item("a", "1")), save("shop", "items", "b", item("b", "1")))
	publish(t, l, t0.Add(time.Second), save("shop", "items", "a", item("a", "2")), del("shop", "items", "b"))
	publish(t, l, t0.Add(2*time.Second), save("shop", "items", "c", item("c", "3")))

	cur, ok, err := l.OpenSnapshot(0)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	defer cur.Close()
	if r := cur.Revision(); r.Number != 3 || !r.CreatedAt.Equal(t0.Add(2*time.Second)) || r.Pinned {
		t.Fatalf("current: %+v", r)
	}
	pin(t, l, 1)
	s1, ok, err := l.OpenSnapshot(0)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if r := s1.Revision(); r.Number != 1 || !r.Pinned {
		t.Fatalf("pinned: %+v", r)
	}
	// A deleted record is there for Get, not for Scan.
	rec, ok, err := cur.Get("shop", "items", "b")
	if err != nil || !ok || !rec.Deleted() || string(rec.Payload) != item("b", "1") || rec.Revision != 2 || !rec.FirstSeenAt.Equal(t0) {
		t.Fatalf("deleted b: %+v %v %v", rec, ok, err)
	}
	var scanned []string
	if err := cur.Scan("shop", "items", "", func(r *store.StoredRecord) (bool, error) { scanned = append(scanned, r.ID); return true, nil }); err != nil {
		t.Fatal(err)
	}
	eq(t, "scan", scanned, []string{"a", "c"})
	rec, _, _ = s1.Get("shop", "items", "a")
	if string(rec.Payload) != item("a", "1") {
		t.Fatalf("a at revision 1: %s", rec.Payload)
	}
	pin(t, l, 0)

	// Revision 1 pruned: the snapshot open on it says so, and fails
	// rather than answering with what is left of it.
	s2, _, err := l.OpenSnapshot(2)
	if err != nil {
		t.Fatal(err)
	}
	prune(t, l, 1)
	if s1.Retained() || !s2.Retained() || !cur.Retained() {
		t.Fatalf("retained: 1 %v, 2 %v, 3 %v", s1.Retained(), s2.Retained(), cur.Retained())
	}
	gone := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrRevisionGone) {
			t.Fatalf("%s of a pruned revision: %v", what, err)
		}
	}
	_, _, err = s1.Get("shop", "items", "a")
	gone("Get", err)
	gone("Scan", s1.Scan("shop", "items", "", func(*store.StoredRecord) (bool, error) { return true, nil }))
	gone("ScanConnections", s1.ScanConnections("shop", "items", "", "", func(*store.StoredRecord) (bool, error) { return true, nil }))
	gone("Changes", s1.Changes(0, func(*store.StoredRecord) error { return nil }))
	_, err = s1.CountRecords()
	gone("CountRecords", err)
	_, err = s1.CountSource("shop")
	gone("CountSource", err)
	_, err = cur.CountChanges(s1, nil)
	gone("CountChanges", err)
	if _, _, err := l.OpenSnapshot(1); !errors.Is(err, store.ErrRevisionGone) {
		t.Fatalf("open a pruned revision: %v", err)
	}
	// Revision 2 reads whole.
	rec, ok, err = s2.Get("shop", "items", "a")
	if err != nil || !ok || string(rec.Payload) != item("a", "2") || !rec.FirstSeenAt.Equal(t0) || !rec.LastModifiedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("a at revision 2: %+v %v %v", rec, ok, err)
	}
	counts, err := s2.CountRecords()
	if err != nil || len(counts) != 1 || counts[0] != (store.ModelCount{Source: "shop", Model: "items", Live: 1, Deleted: 1}) {
		t.Fatalf("counts at revision 2: %+v %v", counts, err)
	}
	// Closed, a snapshot reads no more.
	s2.Close()
	s2.Close()
	if _, _, err := s2.Get("shop", "items", "a"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Get on a closed snapshot: %v", err)
	}
	if _, err := cur.CountChanges(s2, counts); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("CountChanges from a closed snapshot: %v", err)
	}
	// The store closed: no reads.
	l.s.Close()
	if _, _, err := cur.Get("shop", "items", "a"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Get after the store closed: %v", err)
	}
	if _, err := l.Records(store.Query{}, func([]byte) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Records after the store closed: %v", err)
	}
}

// Scans read in statements of growing size: a walk longer than them all
// is whole and in order, and one that stops early stops.
func TestScansAcrossStatements(t *testing.T) {
	l := testLayer(t)
	var cs []chg
	var want, wantConn []string
	for i := 0; i < 1500; i++ {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
		cs = append(cs, save("shop", "items", id, item(id, "x")))
		want = append(want, id)
	}
	for c := 0; c < 120; c++ {
		key := store.SourceKey("crm", string(rune('a'+c%26))+string(rune('a'+c/26)))
		for i := 0; i < 12; i++ {
			id := string(rune('a' + i))
			cs = append(cs, save(key, "contacts", id, item(id, "x")))
			_, conn := store.SplitSourceKey(key)
			wantConn = append(wantConn, conn+"/"+id)
		}
	}
	publish(t, l, t0, cs...)
	sort.Strings(want)
	sort.Strings(wantConn)
	s, _, err := l.OpenSnapshot(0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []string
	if err := s.Scan("shop", "items", "", func(r *store.StoredRecord) (bool, error) { got = append(got, r.ID); return true, nil }); err != nil {
		t.Fatal(err)
	}
	eq(t, "scan", got, want)
	got = got[:0]
	if err := s.Scan("shop", "items", want[700], func(r *store.StoredRecord) (bool, error) { got = append(got, r.ID); return len(got) < 400, nil }); err != nil {
		t.Fatal(err)
	}
	eq(t, "scan from the middle, stopped", got, want[701:1101])
	got = got[:0]
	err = s.ScanConnections("crm", "contacts", "", "", func(r *store.StoredRecord) (bool, error) {
		got = append(got, r.Connection+"/"+r.ID)
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "scan connections", got, wantConn)
	boom := errors.New("boom")
	if err := s.ScanConnections("crm", "contacts", "", "", func(*store.StoredRecord) (bool, error) { return true, boom }); err != boom {
		t.Fatalf("ScanConnections returned %v, not fn's error", err)
	}
	if err := s.Changes(0, func(*store.StoredRecord) error { return boom }); err != boom {
		t.Fatalf("Changes returned %v, not fn's error", err)
	}
	n := 0
	if err := s.Changes(0, func(*store.StoredRecord) error { n++; return nil }); err != nil || n != len(want)+len(wantConn) {
		t.Fatalf("Changes: %d records, %v", n, err)
	}
}
