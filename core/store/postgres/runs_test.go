package postgres

import (
	"fmt"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// As badger's: a start reads only the queued and running runs; finished
// runs are pruned by age.
func TestActiveRunsAndPruning(t *testing.T) {
	s, _ := openStore(t)
	l := sysLayer(t, s, "demo")
	old := time.Now().Add(-48 * time.Hour)
	id := func(at time.Time, n int) string { return fmt.Sprintf("run_%012x%04d", at.UnixMilli(), n) }
	fin := old.Add(time.Minute)
	for i := 0; i < 3; i++ {
		if err := l.PutRun(&store.Run{ID: id(old, i), State: store.RunCompleted, FinishedAt: &fin}); err != nil {
			t.Fatal(err)
		}
	}
	queued := &store.Run{ID: id(old, 9), State: store.RunQueued}
	if err := l.PutRun(queued); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	recent := &store.Run{ID: id(now, 1), State: store.RunRunning}
	if err := l.PutRun(recent); err != nil {
		t.Fatal(err)
	}
	active, err := l.ActiveRuns()
	if err != nil || len(active) != 2 || active[0].ID != queued.ID || active[1].ID != recent.ID {
		t.Fatalf("active runs %+v %v", active, err)
	}
	recent.State, recent.FinishedAt = store.RunCompleted, &now
	if err := l.PutRun(recent); err != nil {
		t.Fatal(err)
	}
	if active, _ = l.ActiveRuns(); len(active) != 1 || active[0].ID != queued.ID {
		t.Fatalf("active runs after one finished: %+v", active)
	}
	if n, err := l.PruneRuns(time.Now().Add(-time.Hour)); err != nil || n != 3 {
		t.Fatalf("pruned %d runs, %v; want 3", n, err)
	}
	runs, _ := l.Runs()
	if len(runs) != 2 || runs[0].ID != queued.ID || runs[1].ID != recent.ID {
		t.Fatalf("runs left %+v", runs)
	}
}

// A run reads back as saved; unknown runs say so; the newest come first.
func TestRunsReadBack(t *testing.T) {
	s, dsn := openStore(t)
	l := sysLayer(t, s, "demo")
	if runs, err := l.RecentRuns(5); err != nil || len(runs) != 0 {
		t.Fatalf("no runs: %v %v", runs, err)
	}
	started := time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC)
	r := &store.Run{ID: "run_0000000000010", State: store.RunCompleted, Trigger: "manual", Full: true,
		Syncs:    []store.SyncRef{{Source: "crm", Sync: "contacts", Connection: "acme"}},
		Counts:   map[string]map[string]store.Counts{"crm": {"Contact": {Added: 3, Updated: 1}}},
		Revision: 7, Attempt: 2, QueuedAt: started, StartedAt: &started}
	if err := l.PutRun(r); err != nil {
		t.Fatal(err)
	}
	got, err := sysLayer(t, sysHost(t, dsn), "demo").GetRun("run_0000000000010")
	if err != nil || fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", *r) || !got.StartedAt.Equal(started) {
		t.Fatalf("run read back: %+v %v", got, err)
	}
	if _, err := l.GetRun("nope"); err != store.ErrNotFound {
		t.Fatalf("missing run: %v", err)
	}
	base := time.Now().UnixMilli()
	for i := range 7 {
		// Run ids begin with their time in hex milliseconds.
		id := fmt.Sprintf("run_%012x%016x", base+int64(i), i)
		if err := l.PutRun(&store.Run{ID: id, State: store.RunCompleted, Trigger: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := l.RecentRuns(3)
	if err != nil || len(runs) != 3 || runs[0].Trigger != "6" || runs[1].Trigger != "5" || runs[2].Trigger != "4" {
		t.Fatalf("recent runs: %+v", runs)
	}
}

// A run's announcement is stored with it, and fires the outbox signal.
func TestPutRunAnnounces(t *testing.T) {
	s, _ := openStore(t)
	l := sysLayer(t, s, "demo")
	sig := l.OutboxSignal()
	if err := l.PutRun(&store.Run{ID: "run_1", State: store.RunRunning}, sysDelivery("evt_1", "app")); err != nil {
		t.Fatal(err)
	}
	if !sysSignalled(sig) {
		t.Fatal("a run's announcement did not fire the outbox signal")
	}
	ds, _, err := l.OutboxChanges(0)
	if err != nil || fmt.Sprint(sysDeliveryIDs(ds)) != "[evt_1.app:pending]" {
		t.Fatalf("announced: %v %v", sysDeliveryIDs(ds), err)
	}
}
