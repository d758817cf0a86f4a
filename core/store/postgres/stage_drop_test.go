package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// A published run's staged rows go after its publish: the whole table is
// truncated when they are all it holds, and otherwise only they are
// deleted; other runs' rows (of this layer or another) stay.
func TestDropPublishedKeepsOtherRunsRows(t *testing.T) {
	s, _ := openStore(t)
	l, err := s.layer("catalog")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.layer("other")
	if err != nil {
		t.Fatal(err)
	}
	staged := func(l *Layer, run string) int {
		t.Helper()
		var n int
		if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM synclayer_staged WHERE layer_id = $1 AND run = $2`, l.id, run).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// Beside a run of this layer and one of another, a big run publishes.
	mine := stageItems(t, l, "run_a", 10)
	theirs := stageItems(t, other, "run_a", 10)
	big := stageItems(t, l, "run_b", 12000)
	publishStaged(t, l, big)
	if n := staged(l, "run_b"); n != 0 {
		t.Fatalf("%d staged rows of the published run left", n)
	}
	if a, b := staged(l, "run_a"), staged(other, "run_a"); a != 10 || b != 10 {
		t.Fatalf("the other runs' staged rows: %d and %d, want 10 and 10", a, b)
	}
	publishStaged(t, l, mine)
	publishStaged(t, other, theirs)
	// Alone, a big run's rows go with the table's truncation.
	publishStaged(t, l, stageItems(t, l, "run_c", 12000))
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM synclayer_staged`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d staged rows left (%v)", n, err)
	}
}

// A large publish has the record table vacuumed and analyzed after it (its
// new rows' hint bits set, the planner's statistics current); a small one
// leaves it to autovacuum.
func TestLargePublishSettlesTheRecords(t *testing.T) {
	defer func(was int64) { settleAfter = was }(settleAfter)
	settleAfter = 1000
	s, _ := openStore(t)
	l, err := s.layer("catalog")
	if err != nil {
		t.Fatal(err)
	}
	vacuumed := func() bool {
		t.Helper()
		var v bool
		if err := s.pool.QueryRow(context.Background(), `SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL
			FROM pg_stat_user_tables WHERE relname = 'synclayer_records'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	publish := func(run string, n int) { publishStaged(t, l, stageItems(t, l, run, n)) }
	publish("run_small", 10)
	if n := l.rec.settles.Load(); n != 0 {
		t.Fatalf("a publish of 10 records asked to vacuum the record table (%d)", n)
	}
	publish("run_large", 1500)
	if n := l.rec.settles.Load(); n != 1 {
		t.Fatalf("a publish of 1,500 records asked to vacuum the record table %d times, want once", n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !vacuumed() {
		if time.Now().After(deadline) {
			t.Fatal("the record table was not vacuumed after a publish of 1,500 records")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stageItems stages a run of n Items of source gen in l.
func stageItems(t *testing.T, l *Layer, run string, n int) *Staging {
	t.Helper()
	st, err := l.beginStaging(run)
	if err != nil {
		t.Fatal(err)
	}
	w := st.writer("gen", store.WriterOptions{})
	var cs []store.Change
	for i := 0; i < n; i++ {
		cs = append(cs, store.Change{Model: "Item", ID: fmt.Sprintf("%s-%d", run, i), Data: []byte(`{"v":1}`)})
	}
	if err := w.Apply(cs); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return st
}

// publishStaged publishes st and waits for what follows a publish in the
// background (the drop of its staged rows, the ask to settle).
func publishStaged(t *testing.T, l *Layer, st *Staging) {
	t.Helper()
	if _, err := st.Publish(store.PublishInfo{Trigger: "manual"}); err != nil {
		t.Fatal(err)
	}
	l.rec.bg.Wait()
}
