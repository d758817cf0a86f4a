package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// testConnections: the connections of sources (SPEC §12).
func testConnections(t *testing.T, d Driver) {
	// A connection is stored whole; create refuses one that exists.
	test(t, d, "PutGetCreate", func(t *testing.T, e *env) {
		l := e.l
		if _, err := l.GetConnection("crm", "acme"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get of an unknown connection: %v", err)
		}
		at := time.Date(2026, 2, 3, 4, 5, 6, 7000, time.UTC)
		c := &store.Connection{Source: "crm", ID: "acme", Config: []byte("sealed\x00bytes"), Metadata: json.RawMessage(`{"plan":"pro","n":[1,2]}`),
			Tags: map[string]string{"plan": "pro"}, Every: map[string]string{"contacts": "1h"}, Paused: []string{"deals"},
			State: "active", LastRuns: map[string]string{"contacts": "run_1"}, CreatedAt: at, UpdatedAt: at}
		if err := l.PutConnection(c, true); err != nil {
			t.Fatal(err)
		}
		got, err := l.GetConnection("crm", "acme")
		if err != nil || connJSON(t, got) != connJSON(t, c) {
			t.Fatalf("connection read back as\n%s\nstored as\n%s (%v)", connJSON(t, got), connJSON(t, c), err)
		}
		again := *c
		again.State = "needs_attention"
		if err := l.PutConnection(&again, true); !errors.Is(err, store.ErrExists) {
			t.Fatalf("create of an existing connection: %v", err)
		}
		if got, _ := l.GetConnection("crm", "acme"); got.State != "active" {
			t.Fatalf("a refused create changed the connection: %+v", got)
		}
		again.Error = "401 from the API"
		if err := l.PutConnection(&again, false); err != nil {
			t.Fatal(err)
		}
		if got, _ := l.GetConnection("crm", "acme"); got.State != "needs_attention" || got.Error != "401 from the API" {
			t.Fatalf("after an update: %+v", got)
		}
		if _, err := l.GetConnection("crm2", "acme"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the connection of another source: %v", err)
		}
	})

	// Creates that race: exactly one wins.
	test(t, d, "CreateRace", func(t *testing.T, e *env) {
		createRace(t, []store.Layer{e.l})
	})

	// Connections are listed by id, after an id, until fn says stop; those
	// of other sources are not.
	test(t, d, "List", func(t *testing.T, e *env) {
		l := e.l
		for _, c := range []struct{ source, id string }{{"crm", "b"}, {"crm", "a"}, {"crm", "a.b"}, {"crm", "a-b"}, {"crm", "c"}, {"crm2", "a"}, {"cr", "z"}} {
			if err := l.PutConnection(&store.Connection{Source: c.source, ID: c.id, State: "active"}, true); err != nil {
				t.Fatal(err)
			}
		}
		list := func(source, after string, stop int) string {
			t.Helper()
			var out []string
			err := l.Connections(source, after, func(c *store.Connection) bool {
				if c.Source != source {
					t.Fatalf("listed %s/%s for source %s", c.Source, c.ID, source)
				}
				out = append(out, c.ID)
				return stop == 0 || len(out) < stop
			})
			if err != nil {
				t.Fatal(err)
			}
			return strings.Join(out, " ")
		}
		if got := list("crm", "", 0); got != "a a-b a.b b c" {
			t.Fatalf("connections of crm: %s", got)
		}
		if got := list("crm", "a-b", 0); got != "a.b b c" {
			t.Fatalf("after a-b: %s", got)
		}
		if got := list("crm", "a0", 0); got != "b c" {
			t.Fatalf("after a0, which does not exist: %s", got)
		}
		if got := list("crm", "", 2); got != "a a-b" {
			t.Fatalf("stopped after 2: %s", got)
		}
		if got := list("crm2", "", 0); got != "a" {
			t.Fatalf("connections of crm2: %s", got)
		}
		if got := list("nope", "", 0); got != "" {
			t.Fatalf("connections of a source without any: %s", got)
		}
	})

	// Deleting a connection soft-deletes its records and drops its
	// checkpoints in one revision, and the connection goes.
	test(t, d, "Delete", func(t *testing.T, e *env) {
		l := e.l
		acme, globex := store.SourceKey("crm", "acme"), store.SourceKey("crm", "globex")
		for _, id := range []string{"acme", "globex"} {
			if err := l.PutConnection(&store.Connection{Source: "crm", ID: id, State: "active"}, true); err != nil {
				t.Fatal(err)
			}
		}
		st, _ := l.BeginStaging("run_1")
		for _, id := range []string{"acme", "globex"} {
			w := st.Writer(store.SourceKey("crm", id), store.WriterOptions{})
			if err := w.Apply([]store.Change{save("M", "1", id), save("M", "2", id), save("N", "3", id)}); err != nil {
				t.Fatal(err)
			}
			if err := w.Checkpoint("s", []byte(`{"k":1}`)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.Publish(store.PublishInfo{Trigger: "manual"}); err != nil {
			t.Fatal(err)
		}
		r2 := publish(t, l, "run_2", acme, del("M", "2"))
		if _, err := l.DeleteConnection(store.PublishInfo{Trigger: "manual"}, "crm", "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete of an unknown connection: %v", err)
		}
		if nw, _ := l.Newest(); nw.Number != 2 {
			t.Fatalf("a failed delete published revision %d", nw.Number)
		}
		sig := l.OutboxSignal()
		rev, err := l.DeleteConnection(store.PublishInfo{Trigger: "manual", Sources: []string{"crm"}, Announce: func(r store.Revision) []store.Delivery {
			return []store.Delivery{delivery(fmt.Sprintf("evt_deleted%d", r.Number), "app")}
		}}, "crm", "acme")
		if err != nil {
			t.Fatal(err)
		}
		if rev.Number != 3 || rev.Trigger != "manual" || rev.Counts["crm"]["M"].Deleted != 1 || rev.Counts["crm"]["N"].Deleted != 1 {
			t.Fatalf("revision of the delete %+v", rev)
		}
		waitSignal(t, sig, "outbox after a connection's delete")
		if _, err := l.GetDelivery("evt_deleted3.app"); err != nil {
			t.Fatalf("announcement of the delete: %v", err)
		}
		got, _ := readAll(t, l, store.Query{Connection: "acme"})
		if live(got) != "" || len(got) != 3 {
			t.Fatalf("acme's records after the delete: %+v", got)
		}
		for _, r := range got {
			want := rev.Number
			if r.ID == "2" {
				want = r2.Number // deleted before: unchanged
			}
			if r.revision() != want || r.Title != "acme" {
				t.Fatalf("record %s: revision %d (want %d), payload title %q", r.ID, r.revision(), want, r.Title)
			}
		}
		if got, _ := readAll(t, l, store.Query{Connection: "globex"}); live(got) != "1 2 3" {
			t.Fatalf("globex's records: %s", live(got))
		}
		if cp, _ := l.Checkpoint(acme, "s"); cp != nil {
			t.Fatalf("acme's checkpoint after the delete: %s", cp)
		}
		if cp, _ := l.Checkpoint(globex, "s"); string(cp) != `{"k":1}` {
			t.Fatalf("globex's checkpoint: %s", cp)
		}
		if _, err := l.GetConnection("crm", "acme"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the deleted connection: %v", err)
		}
		if _, err := l.DeleteConnection(store.PublishInfo{Trigger: "manual"}, "crm", "acme"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		// Created again, it starts afresh; its records revive as added.
		if err := l.PutConnection(&store.Connection{Source: "crm", ID: "acme", State: "active"}, true); err != nil {
			t.Fatalf("create after a delete: %v", err)
		}
		r4 := publish(t, l, "run_4", acme, save("M", "1", "again"))
		if c := r4.Counts["crm"]["M"]; c.Added != 1 {
			t.Fatalf("counts after re-creating %+v", c)
		}
	})

	// A connection's outbound events are committed with it.
	test(t, d, "Announce", func(t *testing.T, e *env) {
		l := e.l
		sig := l.OutboxSignal()
		if err := l.PutConnection(&store.Connection{Source: "crm", ID: "acme", State: "active"}, true, delivery("evt_created", "app")); err != nil {
			t.Fatal(err)
		}
		waitSignal(t, sig, "outbox after a connection with announcements")
		if _, err := l.GetDelivery("evt_created.app"); err != nil {
			t.Fatalf("announcement: %v", err)
		}
		if err := l.PutConnection(&store.Connection{Source: "crm", ID: "acme"}, true, delivery("evt_again", "app")); !errors.Is(err, store.ErrExists) {
			t.Fatalf("create of an existing connection: %v", err)
		}
		if _, err := l.GetDelivery("evt_again.app"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a refused create stored its announcement: %v", err)
		}
	})

	// Every host sees the connections; creates on several hosts race to
	// one winner; a delete on one is seen on all.
	hostsTest(t, d, "AcrossHosts", 3, func(t *testing.T, ls []store.Layer) {
		createRace(t, ls)
		if err := ls[0].PutConnection(&store.Connection{Source: "crm", ID: "b", State: "active"}, true); err != nil {
			t.Fatal(err)
		}
		var got []string
		if err := ls[1].Connections("crm", "", func(c *store.Connection) bool { got = append(got, c.ID); return true }); err != nil || fmt.Sprint(got) != "[b race]" {
			t.Fatalf("host b lists %v %v", got, err)
		}
		publish(t, ls[1], "run_1", store.SourceKey("crm", "b"), save("M", "1", "x"))
		rev, err := ls[2].DeleteConnection(store.PublishInfo{Trigger: "manual"}, "crm", "b")
		if err != nil || rev.Number != 2 {
			t.Fatalf("delete on host c: %+v %v", rev, err)
		}
		if _, err := ls[0].GetConnection("crm", "b"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("host a reads the deleted connection: %v", err)
		}
		if got, _ := readAll(t, ls[0], store.Query{Connection: "b", Revision: rev.Number}); len(got) != 1 || !got[0].deleted() {
			t.Fatalf("host a reads the records of the delete %+v", got)
		}
	})
}

// createRace creates one connection from many goroutines over the layers:
// exactly one create succeeds.
func createRace(t *testing.T, ls []store.Layer) {
	t.Helper()
	var ok, exists atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := ls[i%len(ls)].PutConnection(&store.Connection{Source: "crm", ID: "race", State: "active", Error: fmt.Sprint(i)}, true)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrExists):
				exists.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || exists.Load() != 7 {
		t.Fatalf("%d creates succeeded and %d found it existing, want 1 and 7", ok.Load(), exists.Load())
	}
}

// connJSON renders a connection with its times in UTC, to compare.
func connJSON(t testing.TB, c *store.Connection) string {
	t.Helper()
	if c == nil {
		return "null"
	}
	x := *c
	x.CreatedAt, x.UpdatedAt = x.CreatedAt.UTC(), x.UpdatedAt.UTC()
	if len(x.Metadata) > 0 {
		// Metadata is compared as JSON values, not bytes.
		var v any
		if err := json.Unmarshal(x.Metadata, &v); err != nil {
			t.Fatalf("metadata %s: %v", x.Metadata, err)
		}
		b, _ := json.Marshal(v)
		x.Metadata = b
	}
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
