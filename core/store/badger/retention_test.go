package badger

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/synclayer/synclayer/core/store/internal/render"
)

// A revision that fell out of retention stays gone when retention grows,
// across a restart too: compactions may already have dropped what it
// needs, so serving it would serve records missing.
func TestRaisingKeepDoesNotReviveDroppedRevisions(t *testing.T) {
	dir := t.TempDir()
	s, l := openLayer(t, dir)
	l.SetRetention(1, 0)
	runChanges(t, l, "run_1", save("M", "a", "1"), save("M", "b", "1"))
	runChanges(t, l, "run_2", save("M", "a", "2"))
	runChanges(t, l, "run_3", save("M", "b", "3"))
	l.SetRetention(10, 0)
	if _, err := l.Records(Query{Revision: 1}, func([]byte) error { return nil }); !errors.Is(err, ErrRevisionGone) {
		t.Fatalf("revision 1 after raising keep: %v, want gone", err)
	}
	if err := l.Pin(1); !errors.Is(err, ErrRevisionGone) {
		t.Fatalf("pin 1 after raising keep: %v, want gone", err)
	}
	s.Close()
	s, l = openLayer(t, dir)
	defer s.Close()
	l.SetRetention(10, 0)
	for _, n := range []int64{1, 2} {
		if _, err := l.Records(Query{Revision: n}, func([]byte) error { return nil }); !errors.Is(err, ErrRevisionGone) {
			t.Fatalf("revision %d after a restart with keep 10: %v, want gone", n, err)
		}
	}
	if got, _ := readAll(t, l, Query{Revision: 3}); len(got) != 2 {
		t.Fatalf("revision 3: %+v", got)
	}
}

// Revision records of revisions no longer readable are deleted; records
// last changed by such revisions still render their commit times.
func TestRevisionRecordsArePruned(t *testing.T) {
	dir := t.TempDir()
	s, l := openLayer(t, dir)
	l.SetRetention(3, 0)
	first := runChanges(t, l, "run_0", save("M", "old", "0"))
	for i := 1; i <= 50; i++ {
		runChanges(t, l, fmt.Sprintf("run_%d", i), save("M", "a", fmt.Sprint(i)))
	}
	count := func() int {
		n := 0
		l.viewLatest(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxRevision}})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				n++
			}
			return nil
		})
		return n
	}
	if n := count(); n != 3 {
		t.Fatalf("%d revision records on disk, want 3", n)
	}
	if revs := l.Revisions(); len(revs) != 3 || revs[0].Number != 51 || revs[0].Counts["shop"]["M"].Updated != 1 {
		t.Fatalf("revisions %+v", revs)
	}
	check := func() {
		got, _ := readAll(t, l, Query{Model: "M"})
		if len(got) != 2 || got[0].ID != "old" {
			t.Fatalf("records %+v", got)
		}
		want := first.CreatedAt.Format(render.TimeFormat)
		if got[0].Metadata["last_modified_at"] != want || got[0].Metadata["first_seen_at"] != want || got[0].Metadata["revision"] != float64(1) {
			t.Fatalf("record of a pruned revision: %+v, want modified at %s in revision 1", got[0].Metadata, want)
		}
		got, _ = readAll(t, l, Query{ModifiedAfter: first.CreatedAt})
		if len(got) != 2 {
			t.Fatalf("modified_after the first revision: %+v", got)
		}
		got, _ = readAll(t, l, Query{ModifiedAfter: first.CreatedAt.Add(time.Nanosecond)})
		if len(got) != 1 || got[0].ID != "a" {
			t.Fatalf("modified_after just after the first revision: %+v", got)
		}
	}
	check()
	s.Close()
	s, l = openLayer(t, dir)
	defer s.Close()
	l.SetRetention(3, 0)
	check()
	if n := count(); n != 3 {
		t.Fatalf("%d revision records on disk after a restart, want 3", n)
	}
}

// keep_for keeps young revisions readable beyond keep_revisions.
func TestKeepForKeepsYoungRevisions(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	l.SetRetention(1, time.Hour)
	for i := 1; i <= 5; i++ {
		runChanges(t, l, fmt.Sprintf("run_%d", i), save("M", "a", fmt.Sprint(i)))
	}
	if got, _ := readAll(t, l, Query{Revision: 1}); len(got) != 1 || got[0].Title != "1" {
		t.Fatalf("revision 1 within keep_for: %+v", got)
	}
	if n := len(l.Revisions()); n != 5 {
		t.Fatalf("%d readable revisions, want 5", n)
	}
	l.SetRetention(1, time.Nanosecond)
	if _, err := l.Records(Query{Revision: 4}, func([]byte) error { return nil }); !errors.Is(err, ErrRevisionGone) {
		t.Fatalf("revision 4 once keep_for is over: %v, want gone", err)
	}
}

// A revision a reader is paging stays readable while the walk goes on,
// however many revisions are published meanwhile.
func TestWalkLeaseKeepsItsRevision(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	l.SetRetention(1, 0)
	var cs []Change
	for i := 0; i < 30; i++ {
		cs = append(cs, save("M", fmt.Sprintf("r%02d", i), "1"))
	}
	runChanges(t, l, "run_0", cs...)
	q := Query{Limit: 10}
	var seen int
	for page := 0; ; page++ {
		got, p := readAll(t, l, q)
		seen += len(got)
		if p.Revision.Number != 1 {
			t.Fatalf("page %d read revision %d, want 1", page, p.Revision.Number)
		}
		if p.Next == "" {
			break
		}
		// Churn: each page sees five new revisions published.
		for i := 0; i < 5; i++ {
			runChanges(t, l, fmt.Sprintf("run_%d_%d", page, i), save("M", "x", fmt.Sprint(page, i)))
		}
		c, rev, err := ParsePosition(p.Next)
		if err != nil {
			t.Fatal(err)
		}
		q = Query{After: &c, Revision: rev, Limit: 10}
	}
	if seen != 30 {
		t.Fatalf("the walk saw %d records, want 30", seen)
	}
	// Without a walk, revision 1 is not kept.
	l.mu.Lock()
	l.leases = nil
	l.mu.Unlock()
	runChanges(t, l, "run_last", save("M", "x", "last"))
	if _, err := l.Records(Query{Revision: 1}, func([]byte) error { return nil }); !errors.Is(err, ErrRevisionGone) {
		t.Fatalf("revision 1 without a lease: %v, want gone", err)
	}
}
