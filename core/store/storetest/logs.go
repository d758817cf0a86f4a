package storetest

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// testLogs: the sync event log (read by followers, SPEC §7 events) and
// the audit log.
func testLogs(t *testing.T, d Driver) {
	// Events are numbered from 1 in the order they are appended, stamped
	// when they have no time, and read after a number.
	test(t, d, "Events", func(t *testing.T, e *env) {
		l := e.l
		if seq, err := l.LastEventSeq(); err != nil || seq != 0 {
			t.Fatalf("last event of an empty log: %d %v", seq, err)
		}
		if es, err := l.Events(0, 10); err != nil || len(es) != 0 {
			t.Fatalf("events of an empty log: %+v %v", es, err)
		}
		sig := l.EventSignal()
		at := time.Date(2026, 5, 6, 7, 8, 9, 10000, time.UTC)
		full := store.Event{Time: at, Type: "sync.completed", Run: "run_1", Source: "crm", Sync: "contacts", Connection: "acme",
			Message: "done", Fields: map[string]string{"revision": "3", "added": "2"}}
		batch := []store.Event{full, {Type: "sync.started"}, {Type: "coalesced"}}
		before := time.Now().Add(-time.Second)
		if err := l.AppendEvents(batch); err != nil {
			t.Fatal(err)
		}
		waitSignal(t, sig, "event signal after an append")
		for i, ev := range batch {
			if ev.Seq != uint64(i+1) {
				t.Fatalf("event %d numbered %d", i, ev.Seq)
			}
		}
		if batch[1].Time.Before(before) || !batch[0].Time.Equal(at) {
			t.Fatalf("event times %v %v", batch[0].Time, batch[1].Time)
		}
		for i := 0; i < 3; i++ {
			if err := l.AppendEvents([]store.Event{{Type: fmt.Sprint("e", i)}}); err != nil {
				t.Fatal(err)
			}
		}
		if seq, err := l.LastEventSeq(); err != nil || seq != 6 {
			t.Fatalf("last event %d %v", seq, err)
		}
		es, err := l.Events(0, 10)
		if err != nil || len(es) != 6 {
			t.Fatalf("events %+v %v", es, err)
		}
		got := es[0]
		if !got.Time.Equal(at) {
			t.Fatalf("event time %s, appended %s", got.Time, at)
		}
		got.Time = at
		full.Seq = 1
		if !reflect.DeepEqual(got, full) {
			t.Fatalf("event read back as\n%+v\nappended as\n%+v", got, full)
		}
		if es, _ := l.Events(2, 2); len(es) != 2 || es[0].Seq != 3 || es[1].Seq != 4 || es[1].Type != "e0" {
			t.Fatalf("events after 2, limit 2: %+v", es)
		}
		if es, _ := l.Events(6, 10); len(es) != 0 {
			t.Fatalf("events after the last: %+v", es)
		}
	})

	// A follower reading by number never skips one while others append:
	// each batch shows whole or not at all.
	test(t, d, "FollowerSkipsNothing", func(t *testing.T, e *env) {
		followEvents(t, []store.Layer{e.l, e.l}, e.l)
	})

	// Pruning old events keeps the numbering going, even when every event
	// was pruned.
	test(t, d, "PruneKeepsNumbering", func(t *testing.T, e *env) {
		l := e.l
		old := time.Now().Add(-time.Hour)
		for i := 0; i < 5; i++ {
			if err := l.AppendEvents([]store.Event{{Type: "x", Time: old}}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.AppendAudit(store.AuditEntry{Action: "x", Time: old}); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.AppendEvents([]store.Event{{Type: "new"}}); err != nil {
			t.Fatal(err)
		}
		if n, err := l.PruneEvents(time.Now().Add(-time.Minute)); err != nil || n != 5 {
			t.Fatalf("pruned %d events, %v; want 5", n, err)
		}
		if es, _ := l.Events(0, 10); len(es) != 1 || es[0].Seq != 6 || es[0].Type != "new" {
			t.Fatalf("events left %+v", es)
		}
		if n, err := l.PruneEvents(time.Now().Add(time.Minute)); err != nil || n != 1 {
			t.Fatalf("pruned %d events, %v; want 1", n, err)
		}
		if n, err := l.PruneAudit(time.Now()); err != nil || n != 5 {
			t.Fatalf("pruned %d audit entries, %v; want 5", n, err)
		}
		ev := []store.Event{{Type: "y"}}
		if err := l.AppendEvents(ev); err != nil || ev[0].Seq != 7 {
			t.Fatalf("event after pruning all: seq %d, %v; want 7", ev[0].Seq, err)
		}
		if seq, _ := l.LastEventSeq(); seq != 7 {
			t.Fatalf("last event %d", seq)
		}
		if a, err := l.AppendAudit(store.AuditEntry{Action: "y"}); err != nil || a.Seq != 6 {
			t.Fatalf("audit entry after pruning all: seq %d, %v; want 6", a.Seq, err)
		}
	})

	// The audit log: numbered, stamped, named after the layer, read after
	// a number or from its tail.
	test(t, d, "Audit", func(t *testing.T, e *env) {
		l := e.l
		if got, err := l.Audit(0, 10); err != nil || len(got) != 0 {
			t.Fatalf("audit of a new layer %+v %v", got, err)
		}
		before := time.Now().Add(-time.Second)
		a, err := l.AppendAudit(store.AuditEntry{Action: "revision.pinned", Details: map[string]string{"revision": "3"}})
		if err != nil || a.Seq != 1 || a.Layer != layerName || a.Time.Before(before) {
			t.Fatalf("appended %+v %v", a, err)
		}
		for _, act := range []string{"revision.unpinned", "webhook.added", "webhook.deleted", "sync.manual"} {
			if _, err := l.AppendAudit(store.AuditEntry{Action: act}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := l.Audit(0, 10)
		if err != nil || len(got) != 5 || got[0].Details["revision"] != "3" || got[1].Action != "revision.unpinned" || got[0].Layer != layerName {
			t.Fatalf("audit %+v %v", got, err)
		}
		if got, _ := l.Audit(1, 2); len(got) != 2 || got[0].Seq != 2 || got[1].Seq != 3 {
			t.Fatalf("audit after 1, limit 2: %+v", got)
		}
		tail, err := l.AuditTail(2)
		if err != nil || len(tail) != 2 || tail[0].Action != "webhook.deleted" || tail[1].Action != "sync.manual" {
			t.Fatalf("audit tail %+v %v", tail, err)
		}
		if tail, _ := l.AuditTail(10); len(tail) != 5 || tail[0].Seq != 1 {
			t.Fatalf("audit tail longer than the log %+v", tail)
		}
	})

	// Appenders on several hosts number events once each, and a follower
	// on another host skips none and is woken.
	hostsTest(t, d, "AcrossHosts", 3, func(t *testing.T, ls []store.Layer) {
		sig := ls[2].EventSignal()
		if err := ls[0].AppendEvents([]store.Event{{Type: "first"}}); err != nil {
			t.Fatal(err)
		}
		waitSignal(t, sig, "event signal of host c after host a appended")
		if es, err := ls[2].Events(0, 10); err != nil || len(es) != 1 || es[0].Type != "first" {
			t.Fatalf("host c reads %+v %v", es, err)
		}
		followEvents(t, ls[:2], ls[2])
		if _, err := ls[1].AppendAudit(store.AuditEntry{Action: "x"}); err != nil {
			t.Fatal(err)
		}
		if a, err := ls[0].AppendAudit(store.AuditEntry{Action: "y"}); err != nil || a.Seq != 2 {
			t.Fatalf("audit entries of two hosts numbered %d, %v", a.Seq, err)
		}
	})
}

// followEvents appends batches of events through the appenders, all at
// once, while reader follows the log by number: it must see every event
// once, in order, none skipped.
func followEvents(t *testing.T, appenders []store.Layer, reader store.Layer) {
	t.Helper()
	const batches, per = 100, 16
	start, err := reader.LastEventSeq()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i, l := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				es := make([]store.Event, per)
				for j := range es {
					es[j] = store.Event{Type: "test", Message: fmt.Sprint(i, "/", b, "/", j)}
				}
				if err := l.AppendEvents(es); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	total := start + uint64(len(appenders)*batches*per)
	seen := map[string]bool{}
	after := start
	deadline := time.Now().Add(waitFor)
	for after < total && !t.Failed() {
		if time.Now().After(deadline) {
			t.Fatalf("the follower read up to %d of %d within %s", after, total, waitFor)
		}
		es, err := reader.Events(after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Seq != after+1 {
				t.Fatalf("read event %d after %d: event %d was skipped", e.Seq, after, after+1)
			}
			if seen[e.Message] {
				t.Fatalf("event %q numbered twice", e.Message)
			}
			seen[e.Message] = true
			after = e.Seq
		}
	}
	wg.Wait()
	if last, err := reader.LastEventSeq(); err != nil || last != total {
		t.Fatalf("last event %d, want %d (%v)", last, total, err)
	}
}
