package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// The staging of a run that ended without publishing (its host died; the
// host that ran it again marked it failed) is dropped by the pruner; a
// live run's staging is kept.
func TestPrunerDropsStagingsOfEndedRuns(t *testing.T) {
	s, _ := openStore(t)
	l, err := s.layer("demo")
	if err != nil {
		t.Fatal(err)
	}
	stage := func(run string) {
		st, err := l.BeginStaging(run)
		if err != nil {
			t.Fatal(err)
		}
		w := st.Writer("src", store.WriterOptions{})
		if err := w.Apply([]store.Change{{Model: "M", ID: run, Data: []byte(`{"id":"x"}`)}}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	stage("run_dead")
	stage("run_live")
	if err := l.PutRun(&store.Run{ID: "run_dead", State: store.RunFailed, QueuedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := l.PutRun(&store.Run{ID: "run_live", State: store.RunRunning, QueuedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// A publish wakes the pruner.
	if _, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook"}, []store.Batch{{Source: "src", Changes: []store.Change{{Model: "M", ID: "w", Data: []byte(`{"id":"w"}`)}}}}); err != nil {
		t.Fatal(err)
	}
	count := func(run string) int {
		var n int
		if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM synclayer_staged WHERE run = $1`, run).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(20 * time.Second); count("run_dead") != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the ended run's staging is still there")
		}
	}
	if count("run_live") == 0 {
		t.Fatal("the live run's staging was dropped")
	}
}
