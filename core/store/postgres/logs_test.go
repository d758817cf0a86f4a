package postgres

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// As badger's TestEventsAndRuns (events part): numbers go on after a
// reopening; reads after a number; what was appended comes back.
func TestEventLogNumbersAndReads(t *testing.T) {
	s, dsn := openStore(t)
	l := sysLayer(t, s, "demo")
	at := time.Date(2026, 3, 4, 5, 6, 7, 891, time.UTC)
	es := []store.Event{{Type: "sync.started", Run: "run_1", Source: "crm", Sync: "contacts", Connection: "acme",
		Message: "hello", Fields: map[string]string{"k": "v"}, Time: at}}
	if err := l.AppendEvents(es); err != nil {
		t.Fatal(err)
	}
	if es[0].Seq != 1 || !es[0].Time.Equal(at) {
		t.Fatalf("appended: %+v", es[0])
	}
	for i := range 4 {
		es := []store.Event{{Type: "sync.started", Run: fmt.Sprint(i)}}
		if err := l.AppendEvents(es); err != nil {
			t.Fatal(err)
		}
		if es[0].Time.IsZero() {
			t.Fatal("no time set")
		}
	}
	s.Close()
	l = sysLayer(t, sysHost(t, dsn), "demo")
	es = []store.Event{{Type: "x"}}
	if err := l.AppendEvents(es); err != nil || es[0].Seq != 6 {
		t.Fatalf("seq after reopen = %d, %v", es[0].Seq, err)
	}
	evs, err := l.Events(2, 2)
	if err != nil || len(evs) != 2 || evs[0].Seq != 3 || evs[1].Seq != 4 {
		t.Fatalf("events = %+v %v", evs, err)
	}
	evs, err = l.Events(0, 1)
	if err != nil || len(evs) != 1 || fmt.Sprintf("%+v", evs[0]) != fmt.Sprintf("%+v", store.Event{Seq: 1, Type: "sync.started", Run: "run_1", Source: "crm", Sync: "contacts", Connection: "acme", Message: "hello", Fields: map[string]string{"k": "v"}, Time: at}) {
		t.Fatalf("first event read back: %+v, %v", evs, err)
	}
	if evs, err := l.Events(6, 10); err != nil || evs == nil || len(evs) != 0 {
		t.Fatalf("nothing after the last: %v, %v", evs, err)
	}
	if err := l.AppendEvents(nil); err != nil {
		t.Fatal(err)
	}
}

// As badger's: pruning every entry does not restart the numbering.
func TestEventSequenceSurvivesPruning(t *testing.T) {
	s, dsn := openStore(t)
	l := sysLayer(t, s, "demo")
	for range 5 {
		if err := l.AppendEvents([]store.Event{{Type: "x", Time: time.Now().Add(-time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.AppendAudit(store.AuditEntry{Action: "x", Time: time.Now().Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.AppendEvents([]store.Event{{Type: "young"}}); err != nil {
		t.Fatal(err)
	}
	if n, err := l.PruneEvents(time.Now().Add(-time.Minute)); err != nil || n != 5 {
		t.Fatalf("pruned %d events, %v", n, err)
	}
	if evs, _ := l.Events(0, 10); len(evs) != 1 || evs[0].Type != "young" || evs[0].Seq != 6 {
		t.Fatalf("left after pruning: %+v", evs)
	}
	if n, err := l.PruneEvents(time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("pruned %d events, %v", n, err)
	}
	if n, err := l.PruneAudit(time.Now()); err != nil || n != 5 {
		t.Fatalf("pruned %d audit entries, %v", n, err)
	}
	if seq, err := l.LastEventSeq(); err != nil || seq != 0 {
		t.Fatalf("last event of an empty log: %d, %v", seq, err)
	}
	s.Close()
	l = sysLayer(t, sysHost(t, dsn), "demo")
	es := []store.Event{{Type: "y"}}
	if err := l.AppendEvents(es); err != nil || es[0].Seq != 7 {
		t.Fatalf("event seq after pruning all and reopening = %d, want 7 (%v)", es[0].Seq, err)
	}
	if a, _ := l.AppendAudit(store.AuditEntry{Action: "y"}); a.Seq != 6 {
		t.Fatalf("audit seq after pruning all and reopening = %d, want 6", a.Seq)
	}
}

// As badger's TestEventLogReadersSeeWholeBatches, with the batches
// appended from two hosts at once: numbers grow in commit order, each
// batch's are consecutive, and a follower on either host never skips one.
func TestEventLogFollowersNeverSkipAcrossHosts(t *testing.T) {
	s, dsn := openStore(t)
	hosts := []*Layer{sysLayer(t, s, "demo"), sysLayer(t, sysHost(t, dsn), "demo")}
	const writers, batches, per = 4, 40, 16
	var wg sync.WaitGroup
	for w := range writers {
		l := hosts[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				es := make([]store.Event, per)
				for i := range es {
					es[i] = store.Event{Type: "test", Message: fmt.Sprint(w, "/", b, "/", i)}
				}
				if err := l.AppendEvents(es); err != nil {
					t.Error(err)
					return
				}
				for i := range es {
					if es[i].Seq != es[0].Seq+uint64(i) {
						t.Errorf("batch numbered %d then %d at %d", es[0].Seq, es[i].Seq, i)
						return
					}
				}
			}
		}()
	}
	follow := func(l *Layer) {
		defer wg.Done()
		var after uint64
		var last string
		for after < writers*batches*per && !t.Failed() {
			es, err := l.Events(after, 100)
			if err != nil {
				t.Error(err)
				return
			}
			for _, e := range es {
				if e.Seq != after+1 {
					t.Errorf("read event %d after %d: event %d was skipped", e.Seq, after, after+1)
					return
				}
				// A batch shows whole: its events follow each other.
				var w, b, i int
				fmt.Sscanf(e.Message, "%d/%d/%d", &w, &b, &i)
				if i > 0 && last != fmt.Sprint(w, "/", b, "/", i-1) {
					t.Errorf("event %s follows %s", e.Message, last)
					return
				}
				after, last = e.Seq, e.Message
			}
		}
	}
	wg.Add(2)
	go follow(hosts[0])
	go follow(hosts[1])
	wg.Wait()
	if seq, err := hosts[1].LastEventSeq(); err != nil || seq != writers*batches*per {
		t.Fatalf("last event %d, %v; want %d", seq, err, writers*batches*per)
	}
}

// As badger's TestTail (events part), and the signal on the other host.
func TestEventSignalOnEveryHost(t *testing.T) {
	s, dsn := openStore(t)
	a, b := sysLayer(t, s, "demo"), sysLayer(t, sysHost(t, dsn), "demo")
	if seq, err := a.LastEventSeq(); err != nil || seq != 0 {
		t.Fatalf("empty log: %d %v", seq, err)
	}
	here, there := a.EventSignal(), b.EventSignal()
	if sysSignalled(here) || sysSignalled(there) {
		t.Fatal("the signal is closed before any append")
	}
	if err := a.AppendEvents([]store.Event{{Type: "a"}, {Type: "b"}}); err != nil {
		t.Fatal(err)
	}
	if !sysSignalled(here) {
		t.Fatal("the signal is still open after an append")
	}
	if seq, err := b.LastEventSeq(); err != nil || seq != 2 {
		t.Fatalf("last event: %d %v", seq, err)
	}
	if next := a.EventSignal(); next == here {
		t.Fatal("the closed signal is handed out again")
	}
	sysWaitSignal(t, there, "the other host's event signal after an append")
}

// The audit log: numbered, stamped with the layer, read after a number
// and by its tail, oldest first.
func TestAuditLog(t *testing.T) {
	s, _ := openStore(t)
	l := sysLayer(t, s, "demo")
	if tail, err := l.AuditTail(3); err != nil || tail == nil || len(tail) != 0 {
		t.Fatalf("empty tail: %v %v", tail, err)
	}
	for i := range 5 {
		a, err := l.AppendAudit(store.AuditEntry{Action: fmt.Sprint("act", i), Details: map[string]string{"by": "me"}})
		if err != nil {
			t.Fatal(err)
		}
		if a.Seq != uint64(i+1) || a.Layer != "demo" || a.Time.IsZero() {
			t.Fatalf("appended: %+v", a)
		}
	}
	got, err := l.Audit(1, 2)
	if err != nil || len(got) != 2 || got[0].Action != "act1" || got[1].Action != "act2" || got[0].Details["by"] != "me" || got[0].Layer != "demo" {
		t.Fatalf("audit after 1: %+v %v", got, err)
	}
	tail, err := l.AuditTail(3)
	if err != nil || len(tail) != 3 || tail[0].Seq != 3 || tail[2].Seq != 5 {
		t.Fatalf("tail: %+v %v", tail, err)
	}
	if other, err := sysLayer(t, s, "other").Audit(0, 10); err != nil || len(other) != 0 {
		t.Fatalf("another layer's audit: %+v %v", other, err)
	}
}

// BenchmarkAppendEvents appends batches of 16 events from many goroutines
// of two hosts (they take turns on the layer's event counter).
func BenchmarkAppendEvents(b *testing.B) {
	s, dsn := openStore(b)
	hosts := []*Layer{sysLayer(b, s, "demo"), sysLayer(b, sysHost(b, dsn), "demo")}
	var n atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		l := hosts[n.Add(1)%2]
		for pb.Next() {
			es := make([]store.Event, 16)
			for i := range es {
				es[i] = store.Event{Type: "sync.progress", Run: "run_1", Message: "page fetched"}
			}
			if err := l.AppendEvents(es); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
