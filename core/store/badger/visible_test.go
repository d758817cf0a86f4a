package badger

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// A revision's fsync runs outside the publisher lock: while it runs, system
// commits and the next publish go ahead, readers see neither revision, and
// both become visible in order once an fsync covers them (one more fsync
// for the second, not one each behind the lock).
func TestRevisionsVisibleInOrderAfterTheirFsync(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	runChanges(t, l, "run_1", save("M", "a", "1"))

	var syncs atomic.Int64
	hold := make(chan struct{})
	var held atomic.Bool
	held.Store(true)
	testHookSync = func() {
		syncs.Add(1)
		if held.Load() {
			<-hold
		}
	}
	defer func() { testHookSync = nil }()
	committed := func() int {
		l.mu.RLock()
		defer l.mu.RUnlock()
		return len(l.refs)
	}

	type result struct {
		rev Revision
		err error
	}
	publish := func(id string) chan result {
		ch := make(chan result, 1)
		go func() {
			rev, err := l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: "shop", Changes: []Change{save("M", id, id)}}})
			ch <- result{rev, err}
		}()
		return ch
	}
	first := publish("b")
	for syncs.Load() == 0 { // its fsync is held
		time.Sleep(time.Millisecond)
	}
	// The publisher lock is free: a system commit and the next publish
	// go ahead.
	if err := l.SetMeta("probe", []byte("1")); err != nil {
		t.Fatal(err)
	}
	second := publish("c")
	for committed() < 3 {
		time.Sleep(time.Millisecond)
	}
	// Committed, neither visible: readers stay on revision 1.
	if r, _ := l.Newest(); r.Number != 1 {
		t.Fatalf("newest %d while the fsync of revision 2 runs, want 1", r.Number)
	}
	for _, n := range []int64{2, 3} {
		if _, err := l.Records(Query{Revision: n}, func([]byte) error { return nil }); !errors.Is(err, ErrNoRevision) {
			t.Fatalf("revision %d read before its fsync: %v", n, err)
		}
	}
	if got := len(l.Revisions()); got != 1 {
		t.Fatalf("%d revisions listed while 2 and 3 wait for their fsync, want 1", got)
	}
	select {
	case r := <-first:
		t.Fatalf("the first publish returned before its fsync: %+v", r)
	case r := <-second:
		t.Fatalf("the second publish returned before any fsync covered it: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}

	held.Store(false)
	close(hold)
	r1, r2 := <-first, <-second
	if r1.err != nil || r2.err != nil {
		t.Fatal(r1.err, r2.err)
	}
	if r1.rev.Number != 2 || r2.rev.Number != 3 {
		t.Fatalf("revisions %d and %d, want 2 and 3", r1.rev.Number, r2.rev.Number)
	}
	if r, _ := l.Newest(); r.Number != 3 {
		t.Fatalf("newest %d after both returned, want 3", r.Number)
	}
	if n := syncs.Load(); n != 2 {
		t.Fatalf("%d fsyncs for two revisions, the second committed while the first's ran: want 2", n)
	}
	got, _ := readAll(t, l, Query{})
	if len(got) != 3 {
		t.Fatalf("%d records in revision 3, want 3", len(got))
	}
	if got, _ := readAll(t, l, Query{Revision: 2}); len(got) != 2 {
		t.Fatalf("%d records in revision 2, want 2", len(got))
	}
}

// After a failed fsync the revision stays invisible, and so does every
// later one: the layer refuses to publish until it is opened again, and
// then finds what was committed.
func TestFailedFsyncStopsPublishing(t *testing.T) {
	dir := t.TempDir()
	s, l := openLayer(t, dir)
	runChanges(t, l, "run_1", save("M", "a", "1"))
	failing := errors.New("injected: I/O error")
	var fail atomic.Bool
	fail.Store(true)
	testHookSyncErr = func() error {
		if fail.Load() {
			return failing
		}
		return nil
	}
	defer func() { testHookSyncErr = nil }()
	_, err := l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: "shop", Changes: []Change{save("M", "b", "2")}}})
	if !errors.Is(err, failing) {
		t.Fatalf("publish with a failed fsync: %v", err)
	}
	if r, _ := l.Newest(); r.Number != 1 {
		t.Fatalf("newest %d after a failed fsync, want 1", r.Number)
	}
	fail.Store(false) // the disk answers again: the layer still refuses
	if _, err := l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: "shop", Changes: []Change{save("M", "c", "3")}}}); !errors.Is(err, failing) {
		t.Fatalf("a publish after a failed fsync: %v, want it refused", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, l = openLayer(t, dir)
	defer s.Close()
	if r, _ := l.Newest(); r.Number != 2 {
		t.Fatalf("newest %d after reopening, want 2 (committed before the failed fsync)", r.Number)
	}
	if got, _ := readAll(t, l, Query{}); len(got) != 2 {
		t.Fatalf("%d records after reopening, want 2", len(got))
	}
}
