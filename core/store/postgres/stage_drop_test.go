package postgres

import (
	"context"
	"fmt"
	"testing"

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
	stage := func(l *Layer, run string, n int) *Staging {
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
	publish := func(l *Layer, st *Staging) {
		t.Helper()
		if _, err := st.Publish(store.PublishInfo{Trigger: "manual"}); err != nil {
			t.Fatal(err)
		}
		l.rec.bg.Wait() // the drop runs after the publish returns
	}

	// Beside a run of this layer and one of another, a big run publishes.
	mine := stage(l, "run_a", 10)
	theirs := stage(other, "run_a", 10)
	big := stage(l, "run_b", 12000)
	publish(l, big)
	if n := staged(l, "run_b"); n != 0 {
		t.Fatalf("%d staged rows of the published run left", n)
	}
	if a, b := staged(l, "run_a"), staged(other, "run_a"); a != 10 || b != 10 {
		t.Fatalf("the other runs' staged rows: %d and %d, want 10 and 10", a, b)
	}
	publish(l, mine)
	publish(other, theirs)
	// Alone, a big run's rows go with the table's truncation.
	publish(l, stage(l, "run_c", 12000))
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM synclayer_staged`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d staged rows left (%v)", n, err)
	}
}
