package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// testRuns: the records of runs, kept for the API and for recovery
// (SPEC §6, §7).
func testRuns(t *testing.T, d Driver) {
	// A run is stored whole and replaced by its next state.
	test(t, d, "PutGet", func(t *testing.T, e *env) {
		l := e.l
		if _, err := l.GetRun("run_nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get of an unknown run: %v", err)
		}
		at := time.Date(2026, 7, 8, 9, 10, 11, 12000, time.UTC)
		started, retry := at.Add(time.Second), at.Add(time.Hour)
		r := &store.Run{ID: runID(at, 1), State: store.RunRunning, Trigger: "webhook",
			Syncs: []store.SyncRef{{Source: "shop", Sync: "products"}, {Source: "crm", Sync: "contacts", Connection: "acme"}},
			Full:  true, Reset: true, Counts: map[string]map[string]store.Counts{"shop": {"Product": {Added: 1, Updated: 2, Deleted: 3, Unchanged: 4}}},
			Attempt: 2, RetryAt: &retry, QueuedAt: at, StartedAt: &started}
		if err := l.PutRun(r); err != nil {
			t.Fatal(err)
		}
		got, err := l.GetRun(r.ID)
		if err != nil || runJSON(t, got) != runJSON(t, r) {
			t.Fatalf("run read back as\n%s\nstored as\n%s (%v)", runJSON(t, got), runJSON(t, r), err)
		}
		finished := started.Add(time.Minute)
		r.State, r.Revision, r.Error, r.FinishedAt, r.RetryAt = store.RunFailed, 0, "the plugin crashed", &finished, nil
		if err := l.PutRun(r); err != nil {
			t.Fatal(err)
		}
		if got, _ := l.GetRun(r.ID); runJSON(t, got) != runJSON(t, r) {
			t.Fatalf("run after its update\n%s\nwant\n%s", runJSON(t, got), runJSON(t, r))
		}
	})

	// A start reads only queued and running runs; finished ones are pruned
	// by age; lists are by id, recent ones newest first.
	test(t, d, "ActiveRecentPrune", func(t *testing.T, e *env) {
		l := e.l
		if runs, err := l.RecentRuns(5); err != nil || len(runs) != 0 {
			t.Fatalf("recent runs of a new layer %+v %v", runs, err)
		}
		old := time.Now().Add(-48 * time.Hour)
		fin := old.Add(time.Minute)
		for i := 0; i < 3; i++ {
			if err := l.PutRun(&store.Run{ID: runID(old, i), State: store.RunCompleted, Trigger: "old", FinishedAt: &fin}); err != nil {
				t.Fatal(err)
			}
		}
		queued := &store.Run{ID: runID(old, 9), State: store.RunQueued, Trigger: "queued"}
		if err := l.PutRun(queued); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		recent := &store.Run{ID: runID(now, 1), State: store.RunRunning, Trigger: "recent"}
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
		rr, err := l.RecentRuns(2)
		if err != nil || len(rr) != 2 || rr[0].ID != recent.ID || rr[1].ID != queued.ID {
			t.Fatalf("recent runs %+v %v", rr, err)
		}
		all, err := l.Runs()
		if err != nil || len(all) != 5 || all[0].ID != runID(old, 0) || all[4].ID != recent.ID {
			t.Fatalf("runs %+v %v", all, err)
		}
		if n, err := l.PruneRuns(time.Now().Add(-time.Hour)); err != nil || n != 3 {
			t.Fatalf("pruned %d runs, %v; want 3", n, err)
		}
		if runs, _ := l.Runs(); len(runs) != 2 || runs[0].ID != queued.ID {
			t.Fatalf("runs left %+v", runs)
		}
	})

	// A run's outbound events are committed with it.
	test(t, d, "Announce", func(t *testing.T, e *env) {
		l := e.l
		sig := l.OutboxSignal()
		r := &store.Run{ID: runID(time.Now(), 1), State: store.RunRunning, Trigger: "manual"}
		if err := l.PutRun(r, delivery("evt_started", "app"), delivery("evt_started", "ops")); err != nil {
			t.Fatal(err)
		}
		waitSignal(t, sig, "outbox after a run with announcements")
		if ds, err := l.Deliveries("", 10, true); err != nil || deliveryIDs(ds) != "evt_started.app:pending evt_started.ops:pending" {
			t.Fatalf("deliveries %s %v", deliveryIDs(ds), err)
		}
	})

	// Every host reads the runs, checkpoints and settings any host wrote.
	hostsTest(t, d, "AcrossHosts", 2, func(t *testing.T, ls []store.Layer) {
		a, b := ls[0], ls[1]
		r := &store.Run{ID: runID(time.Now(), 1), State: store.RunQueued, Trigger: "schedule"}
		if err := a.PutRun(r); err != nil {
			t.Fatal(err)
		}
		if got, err := b.GetRun(r.ID); err != nil || got.State != store.RunQueued {
			t.Fatalf("host b reads %+v %v", got, err)
		}
		if active, err := b.ActiveRuns(); err != nil || len(active) != 1 {
			t.Fatalf("host b's active runs %+v %v", active, err)
		}
		st, _ := a.BeginStaging(r.ID)
		w := st.Writer("shop", store.WriterOptions{})
		if err := w.Checkpoint("products", []byte(`{"page":9}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Publish(store.PublishInfo{Trigger: "schedule"}); err != nil {
			t.Fatal(err)
		}
		if cp, err := b.Checkpoint("shop", "products"); err != nil || string(cp) != `{"page":9}` {
			t.Fatalf("host b's checkpoint %s %v", cp, err)
		}
		if err := a.SetMeta("k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if v, err := b.Meta("k"); err != nil || string(v) != "v" {
			t.Fatalf("host b's meta %q %v", v, err)
		}
	})
}

// runJSON renders a run with its times in UTC, to compare runs read back.
func runJSON(t testing.TB, r *store.Run) string {
	t.Helper()
	if r == nil {
		return "null"
	}
	c := *r
	c.QueuedAt = c.QueuedAt.UTC()
	for _, p := range []**time.Time{&c.RetryAt, &c.StartedAt, &c.FinishedAt} {
		if *p != nil {
			u := (*p).UTC()
			*p = &u
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
