package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// stVersions counts the stored versions of a record.
func stVersions(t *testing.T, l *Layer, id string) int {
	t.Helper()
	var n int
	if err := l.s.pool.QueryRow(context.Background(), `SELECT count(*) FROM synclayer_records WHERE layer_id = $1 AND id = $2`, l.id, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRevisionsRetentionAndPinning(t *testing.T) {
	_, l, dsn := stLayer(t)
	l.SetRetention(3, 0)
	for i := 1; i <= 5; i++ {
		stRun(t, l, fmt.Sprintf("run_%d", i), stSave("M", "a", fmt.Sprint(i)))
	}
	revs := l.Revisions()
	if len(revs) != 3 || revs[0].Number != 5 || revs[2].Number != 3 || revs[0].Counts["shop"]["M"].Updated != 1 {
		t.Fatalf("revisions = %+v", revs)
	}
	if n := l.KeptRevisions(); n != 3 {
		t.Fatalf("kept %d", n)
	}
	if _, _, err := l.revisionAt(2); !errors.Is(err, store.ErrRevisionGone) {
		t.Fatalf("revision 2: %v, want gone", err)
	}
	if _, _, err := l.revisionAt(9); !errors.Is(err, store.ErrNoRevision) {
		t.Fatalf("revision 9: %v, want no revision", err)
	}
	if err := l.Pin(2); !errors.Is(err, store.ErrRevisionGone) {
		t.Fatalf("pin of a dropped revision: %v", err)
	}
	if err := l.Pin(9); !errors.Is(err, store.ErrNoRevision) {
		t.Fatalf("pin of a revision to come: %v", err)
	}
	if err := l.Pin(3); err != nil {
		t.Fatal(err)
	}
	// Syncs go on; readers stay on the pinned revision, which stays kept.
	for i := 6; i <= 9; i++ {
		stRun(t, l, fmt.Sprintf("run_%d", i), stSave("M", "a", fmt.Sprint(i)))
	}
	if err := l.pruneVersions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := stRead(t, l, 0); len(got) != 1 || got[0].Title != "3" {
		t.Fatalf("pinned read: %+v", got)
	}
	revs = l.Revisions()
	if len(revs) != 4 || revs[3].Number != 3 || !revs[3].Pinned || revs[0].Pinned {
		t.Fatalf("revisions while pinned = %+v", revs)
	}
	if cur, _ := l.Current(); cur.Number != 3 || !cur.Pinned {
		t.Fatalf("current = %+v", cur)
	}
	if n, _ := l.Newest(); n.Number != 9 || n.Pinned {
		t.Fatalf("newest = %+v", n)
	}
	// Another host sees the pin at once.
	s2, err := Open(context.Background(), Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	l2, _ := s2.layer("catalog")
	if l2.Pinned() != 3 {
		t.Fatalf("pinned on the other host = %d", l2.Pinned())
	}
	was, err := l2.Unpin()
	if err != nil || was != 3 {
		t.Fatalf("unpin = %d, %v", was, err)
	}
	if l.Pinned() != 0 {
		t.Fatal("the unpin on another host is not seen")
	}
	if got := stRead(t, l, 0); got[0].Title != "9" {
		t.Fatalf("after unpin: %+v", got)
	}
	if _, _, err := l.revisionAt(3); !errors.Is(err, store.ErrRevisionGone) {
		t.Fatalf("revision 3 after unpin: %v, want gone", err)
	}
	if was, err := l.Unpin(); err != nil || was != 0 {
		t.Fatalf("unpin without a pin = %d, %v", was, err)
	}
}

// A revision that fell out of retention stays gone when retention grows,
// on a host that opens the store later too.
func TestRevisionsRaisingKeepDoesNotReviveDroppedRevisions(t *testing.T) {
	_, l, dsn := stLayer(t)
	l.SetRetention(1, 0)
	stRun(t, l, "run_1", stSave("M", "a", "1"), stSave("M", "b", "1"))
	stRun(t, l, "run_2", stSave("M", "a", "2"))
	stRun(t, l, "run_3", stSave("M", "b", "3"))
	l.SetRetention(10, 0)
	if _, _, err := l.revisionAt(1); !errors.Is(err, store.ErrRevisionGone) {
		t.Fatalf("revision 1 after raising keep: %v, want gone", err)
	}
	if err := l.Pin(1); !errors.Is(err, store.ErrRevisionGone) {
		t.Fatalf("pin 1 after raising keep: %v, want gone", err)
	}
	s2, err := Open(context.Background(), Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	l2, _ := s2.layer("catalog")
	l2.SetRetention(10, 0)
	for _, n := range []int64{1, 2} {
		if _, _, err := l2.revisionAt(n); !errors.Is(err, store.ErrRevisionGone) {
			t.Fatalf("revision %d on another host with keep 10: %v, want gone", n, err)
		}
	}
	if got := stRead(t, l2, 3); len(got) != 2 {
		t.Fatalf("revision 3: %+v", got)
	}
}

// Revisions no longer readable lose their info but keep their row: records
// last changed by them still have their commit time.
func TestRevisionsDroppedKeepTheirCommitTimes(t *testing.T) {
	_, l, _ := stLayer(t)
	l.SetRetention(3, 0)
	first := stRun(t, l, "run_0", stSave("M", "old", "0"))
	for i := 1; i <= 20; i++ {
		stRun(t, l, fmt.Sprintf("run_%d", i), stSave("M", "a", fmt.Sprint(i)))
	}
	if n := l.KeptRevisions(); n != 3 {
		t.Fatalf("%d revisions kept, want 3", n)
	}
	if revs := l.Revisions(); len(revs) != 3 || revs[0].Number != 21 || revs[0].Counts["shop"]["M"].Updated != 1 || revs[0].Run != "run_20" {
		t.Fatalf("revisions %+v", revs)
	}
	var at time.Time
	var kept bool
	if err := l.s.pool.QueryRow(context.Background(), `SELECT created_at, kept FROM synclayer_revisions WHERE layer_id = $1 AND rev = 1`, l.id).Scan(&at, &kept); err != nil {
		t.Fatal(err)
	}
	if !at.Equal(first.CreatedAt) || kept {
		t.Fatalf("revision 1's row: %s kept %v, want %s", at, kept, first.CreatedAt)
	}
	if err := l.pruneVersions(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := stByID(stRead(t, l, 0))
	if recs["old"].FromRev != 1 || recs["a"].FromRev != 21 {
		t.Fatalf("records %+v", recs)
	}
	// Only the versions kept revisions need stay: a's versions of
	// revisions 19, 20 and 21.
	if n := stVersions(t, l, "a"); n != 3 {
		t.Fatalf("%d versions of a, want 3", n)
	}
}

// keep_for keeps young revisions readable beyond keep_revisions.
func TestRevisionsKeepForKeepsYoungRevisions(t *testing.T) {
	_, l, _ := stLayer(t)
	l.SetRetention(1, time.Hour)
	for i := 1; i <= 5; i++ {
		stRun(t, l, fmt.Sprintf("run_%d", i), stSave("M", "a", fmt.Sprint(i)))
	}
	if got := stRead(t, l, 1); len(got) != 1 || got[0].Title != "1" {
		t.Fatalf("revision 1 within keep_for: %+v", got)
	}
	if n := len(l.Revisions()); n != 5 {
		t.Fatalf("%d readable revisions, want 5", n)
	}
	l.SetRetention(1, time.Nanosecond)
	if _, _, err := l.revisionAt(4); !errors.Is(err, store.ErrRevisionGone) {
		t.Fatalf("revision 4 once keep_for is over: %v, want gone", err)
	}
	if n := l.KeptRevisions(); n != 1 {
		t.Fatalf("%d kept", n)
	}
}

// A revision a reader is paging (leased) stays readable, with every
// version it needs, however many revisions are published meanwhile, on
// every host; once the lease lapses it goes.
func TestRevisionsLeaseKeepsItsRevision(t *testing.T) {
	_, l, dsn := stLayer(t)
	l.SetRetention(1, 0)
	var cs []store.Change
	for i := 0; i < 30; i++ {
		cs = append(cs, stSave("M", fmt.Sprintf("r%02d", i), "1"))
	}
	stRun(t, l, "run_0", cs...)
	l.Lease(1)
	s2, err := Open(context.Background(), Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	l2, _ := s2.layer("catalog")
	l2.SetRetention(1, 0)
	for i := 0; i < 5; i++ {
		// The other host's publishes change every record.
		var upd []store.Change
		for j := 0; j < 30; j++ {
			upd = append(upd, stSave("M", fmt.Sprintf("r%02d", j), fmt.Sprint(i+2)))
		}
		stRun(t, l2, fmt.Sprintf("run_%d", i+1), upd...)
	}
	if err := l2.pruneVersions(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := stRead(t, l, 1)
	if len(got) != 30 || got[0].Title != "1" {
		t.Fatalf("leased revision 1: %d records, %+v", len(got), got[0])
	}
	if _, _, err := l.revisionAt(2); !errors.Is(err, store.ErrRevisionGone) {
		t.Fatalf("revision 2 (not leased): %v, want gone", err)
	}
	// The lease lapses.
	if _, err := l.s.pool.Exec(context.Background(), `UPDATE synclayer_leases SET expires_at = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	stRun(t, l, "run_last", stSave("M", "x", "last"))
	if _, _, err := l.revisionAt(1); !errors.Is(err, store.ErrRevisionGone) {
		t.Fatalf("revision 1 without a lease: %v, want gone", err)
	}
	if err := l.pruneVersions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := stVersions(t, l, "r00"); n != 1 {
		t.Fatalf("%d versions of r00 once nothing needs the old ones, want 1", n)
	}
	// A lease of a revision no longer readable does nothing.
	l.Lease(1)
	if n := stCount(t, l, "synclayer_leases"); n != 0 {
		t.Fatalf("%d leases", n)
	}
}
