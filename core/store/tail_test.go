package store

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
