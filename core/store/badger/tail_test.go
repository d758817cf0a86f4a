package badger

import (
	"fmt"
	"testing"
	"time"
)

// TestTail: the newest runs newest first, the newest event's number, and
// a signal that closes when events are appended.
func TestTail(t *testing.T) {
	_, l := openLayer(t, t.TempDir())
	if seq, err := l.LastEventSeq(); err != nil || seq != 0 {
		t.Fatalf("empty log: %d %v", seq, err)
	}
	if runs, err := l.RecentRuns(5); err != nil || len(runs) != 0 {
		t.Fatalf("no runs: %v %v", runs, err)
	}
	base := time.Now().UnixMilli()
	for i := range 7 {
		// Run ids begin with their time in hex milliseconds.
		id := fmt.Sprintf("run_%012x%016x", base+int64(i), i)
		if err := l.PutRun(&Run{ID: id, State: RunCompleted, Trigger: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := l.RecentRuns(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 || runs[0].Trigger != "6" || runs[1].Trigger != "5" || runs[2].Trigger != "4" {
		t.Fatalf("recent runs: %+v", runs)
	}

	sig := l.EventSignal()
	select {
	case <-sig:
		t.Fatal("the signal is closed before any append")
	default:
	}
	if err := l.AppendEvents([]Event{{Type: "a"}, {Type: "b"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sig:
	default:
		t.Fatal("the signal is still open after an append")
	}
	if seq, err := l.LastEventSeq(); err != nil || seq != 2 {
		t.Fatalf("last event: %d %v", seq, err)
	}
	if next := l.EventSignal(); next == sig {
		t.Fatal("the closed signal is handed out again")
	}
}

// TestCountRecords: live and deleted records per (source, model) of a
// revision, old revisions included.
func TestCountRecords(t *testing.T) {
	_, l := openLayer(t, t.TempDir())
	publish := func(source string, cs ...Change) {
		t.Helper()
		st, err := l.beginStaging(fmt.Sprintf("run_%d", time.Now().UnixNano()))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.writer(source, WriterOptions{}).Apply(cs); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Publish(PublishInfo{Trigger: "manual", Sources: []string{source}}); err != nil {
			t.Fatal(err)
		}
	}
	put := func(model, id string) Change { return Change{Model: model, ID: id, Data: []byte(`{"x":1}`)} }
	publish("blog", put("Post", "p1"), put("Post", "p2"), put("Post", "p3"), put("Tag", "t1"))
	publish("a", put("Post", "x1"))
	publish("blog", Change{Model: "Post", ID: "p2", Delete: true}, put("Post", "p4"))
	count := func(rev int64) string {
		t.Helper()
		snap, ok, err := l.openSnapshot(rev)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		defer snap.Close()
		counts, err := snap.CountRecords()
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(counts)
	}
	if got, want := count(0), "[{a Post 1 0 false} {blog Post 3 1 false} {blog Tag 1 0 false}]"; got != want {
		t.Errorf("newest: %s, want %s", got, want)
	}
	if got, want := count(1), "[{blog Post 3 0 false} {blog Tag 1 0 false}]"; got != want {
		t.Errorf("revision 1: %s, want %s", got, want)
	}
	// From revision 1's counts and the changes since.
	publish("blog", Change{Model: "Tag", ID: "t1", Delete: true}, put("Post", "p2"), put("Tag", "t2"))
	old, _, err := l.openSnapshot(1)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	base, err := old.CountRecords()
	if err != nil {
		t.Fatal(err)
	}
	for rev := int64(1); rev <= 4; rev++ {
		snap, _, err := l.openSnapshot(rev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := snap.countChanges(old, base)
		snap.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := count(rev); fmt.Sprint(got) != want {
			t.Errorf("revision %d from revision 1: %v, want %s", rev, got, want)
		}
	}
	newest, _, _ := l.openSnapshot(0)
	defer newest.Close()
	if _, err := old.countChanges(newest, nil); err == nil {
		t.Error("counts of an older revision from a newer one")
	}
}
