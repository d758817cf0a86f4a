package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// testRestart: what a restart of the host keeps (everything published or
// acknowledged) and what it must not (a run that did not publish).
func testRestart(t *testing.T, d Driver) {
	// Published records, revisions, pins, checkpoints and field indexes
	// survive; numbering, cursors and commit times go on from them.
	test(t, d, "PublishedSurvives", func(t *testing.T, e *env) {
		l := e.l
		l.SetRetention(3, 0)
		if err := l.SetFieldIndexes([]store.FieldIndex{{Source: "shop", Model: "M", Field: "title"}}); err != nil {
			t.Fatal(err)
		}
		publish(t, l, "run_1", "shop", save("M", "a", "1"), save("M", "b", "1"))
		st, _ := l.BeginStaging("run_2")
		w := st.Writer("shop", store.WriterOptions{})
		if err := w.Apply([]store.Change{save("M", "a", "2"), del("M", "b")}); err != nil {
			t.Fatal(err)
		}
		if err := w.Checkpoint("s", []byte(`{"v":2}`)); err != nil {
			t.Fatal(err)
		}
		r2, err := st.Publish(store.PublishInfo{Trigger: "schedule", Sources: []string{"shop"}})
		if err != nil {
			t.Fatal(err)
		}
		r3 := direct(t, l, "shop", save("M", "c", "3"))
		r4 := publish(t, l, "run_4", store.SourceKey("crm", "acme"), save("C", "x", "1"))
		if err := l.Pin(3); err != nil {
			t.Fatal(err)
		}
		before, _ := readAll(t, l, store.Query{Revision: 4})
		revsBefore := l.Revisions()

		e.reopen()
		l = e.l
		l.SetRetention(3, 0)
		if l.Pinned() != 3 {
			t.Fatalf("pinned after a restart: %d", l.Pinned())
		}
		if cur, ok := l.Current(); !ok || cur.Number != 3 || !cur.Pinned {
			t.Fatalf("current after a restart: %+v", cur)
		}
		if nw, ok := l.Newest(); !ok || nw.Number != 4 || !nw.CreatedAt.Equal(r4.CreatedAt) {
			t.Fatalf("newest after a restart: %+v", nw)
		}
		revs := l.Revisions()
		if len(revs) != len(revsBefore) || len(revs) != 3 {
			t.Fatalf("revisions after a restart %+v, before %+v", revs, revsBefore)
		}
		for i := range revs {
			a, b := revs[i], revsBefore[i]
			if a.Number != b.Number || !a.CreatedAt.Equal(b.CreatedAt) || a.Trigger != b.Trigger || a.Run != b.Run || a.Pinned != b.Pinned ||
				fmt.Sprint(a.Sources) != fmt.Sprint(b.Sources) || fmt.Sprint(a.Counts) != fmt.Sprint(b.Counts) {
				t.Fatalf("revision after a restart %+v, before %+v", a, b)
			}
		}
		if revs[2].Number != r2.Number || revs[2].Trigger != "schedule" {
			t.Fatalf("revision 2 after a restart %+v", revs[2])
		}
		after, _ := readAll(t, l, store.Query{Revision: 4})
		if len(after) != len(before) {
			t.Fatalf("revision 4 after a restart: %s, before %s", ids(after), ids(before))
		}
		for i := range after {
			if string(after[i].Raw) != string(before[i].Raw) {
				t.Fatalf("record after a restart\n%s\nbefore\n%s", after[i].Raw, before[i].Raw)
			}
		}
		if got, page := readAll(t, l, store.Query{}); page.Revision.Number != 3 || live(got) != "a c" {
			t.Fatalf("the pinned revision after a restart: %s at %d", live(got), page.Revision.Number)
		}
		if _, err := l.Records(store.Query{Revision: 1}, func([]byte) error { return nil }); !errors.Is(err, store.ErrRevisionGone) {
			t.Fatalf("revision 1, gone before the restart: %v", err)
		}
		if cp, _ := l.Checkpoint("shop", "s"); string(cp) != `{"v":2}` {
			t.Fatalf("checkpoint after a restart: %s", cp)
		}
		// Revisions, cursors and commit times go on.
		r5 := publish(t, l, "run_5", "shop", save("M", "d", "5"), save("M", "a", "5"))
		if r5.Number != 5 || !r5.CreatedAt.After(r4.CreatedAt) || !r3.CreatedAt.Before(r4.CreatedAt) {
			t.Fatalf("revision after a restart %+v", r5)
		}
		all, _ := readAll(t, l, store.Query{Revision: 5})
		checkAscending(t, all)
		if ids(all) != "b c x d a" {
			t.Fatalf("records after a restart, in cursor order: %s", ids(all))
		}
		// The field index is still kept.
		if got := lookup(t, l, 5, "shop", "title", "5", "2", "3"); fmt.Sprint(got) != "[a c d]" {
			t.Fatalf("field index after a restart: %v", got)
		}
		if names, err := e.st.LayerNames(); err != nil || fmt.Sprint(names) != "[catalog]" {
			t.Fatalf("layer names after a restart: %v %v", names, err)
		}
	})

	// A run that had not published when the host stopped leaves nothing:
	// not its records, not its checkpoints, for in-place and side-by-side
	// stagings alike.
	test(t, d, "UnpublishedStagingDropped", func(t *testing.T, e *env) {
		l := e.l
		publish(t, l, "run_1", "shop", save("M", "a", "1"))
		a, _ := l.BeginStaging("run_a")
		b, _ := l.BeginStaging("run_b")
		for _, st := range []store.Staging{a, b} {
			w := st.Writer("shop", store.WriterOptions{TrackDeletes: []string{"M"}})
			if err := w.Apply([]store.Change{save("M", "a", st.Run()), save("M", st.Run(), "x")}); err != nil {
				t.Fatal(err)
			}
			if err := w.Checkpoint("s", []byte(`{"run":"`+st.Run()+`"}`)); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Writer("blog", store.WriterOptions{}).Apply([]store.Change{save("P", "p", "x")}); err != nil {
			t.Fatal(err)
		}
		e.reopen() // as a crash would: no publish
		l = e.l
		if got, page := readAll(t, l, store.Query{}); ids(got) != "a" || got[0].Title != "1" || page.Revision.Number != 1 {
			t.Fatalf("after a restart: %+v at revision %d", got, page.Revision.Number)
		}
		if cp, _ := l.Checkpoint("shop", "s"); cp != nil {
			t.Fatalf("an unpublished run's checkpoint after a restart: %s", cp)
		}
		// Queued again under the same id, the runs start from scratch.
		for _, run := range []string{"run_a", "run_b"} {
			st, err := l.BeginStaging(run)
			if err != nil {
				t.Fatal(err)
			}
			if cp, own, err := st.Checkpoint("shop", "s", false); err != nil || own || cp != nil {
				t.Fatalf("checkpoint of %s after a restart: %s own=%v %v", run, cp, own, err)
			}
			if err := st.Abort(); err != nil {
				t.Fatal(err)
			}
		}
		r := publish(t, l, "run_3", "shop", save("M", "a", "1"), save("M", "b", "1"))
		if c := r.Counts["shop"]["M"]; c != (store.Counts{Added: 1, Unchanged: 1}) || r.Number != 2 {
			t.Fatalf("the first run after a restart: revision %d, counts %+v", r.Number, c)
		}
		if got, _ := readAll(t, l, store.Query{}); ids(got) != "a b" {
			t.Fatalf("records %s", ids(got))
		}
	})

	// A host that restarts drops its own unpublished runs, never another
	// host's: that run publishes whole, checkpoint included.
	t.Run("OtherHostsStagingSurvives", func(t *testing.T) {
		if d.Hosts == nil {
			t.Skipf("driver %s has no hosts (Driver.Hosts is nil): this case needs 2 hosts on one database", d.Name)
		}
		t.Parallel()
		sts := d.Hosts(t, 2)
		if len(sts) != 2 {
			t.Fatalf("driver %s: Hosts(2) opened %d stores", d.Name, len(sts))
		}
		t.Cleanup(func() {
			for _, st := range sts {
				st.Close()
			}
		})
		a, b := layerOf(t, sts[0], layerName), layerOf(t, sts[1], layerName)
		publish(t, a, "run_1", "shop", save("M", "a", "1"))
		st, err := b.BeginStaging("run_b")
		if err != nil {
			t.Fatal(err)
		}
		w := st.Writer("shop", store.WriterOptions{TrackDeletes: []string{"M"}})
		if err := w.Apply([]store.Change{save("M", "b", "b")}); err != nil {
			t.Fatal(err)
		}
		if err := w.Checkpoint("s", []byte(`{"b":1}`)); err != nil {
			t.Fatal(err)
		}
		// Host a restarts while host b's run stages, and stages one of
		// its own that it does not publish.
		sa, err := a.BeginStaging("run_a")
		if err != nil {
			t.Fatal(err)
		}
		if err := sa.Writer("shop", store.WriterOptions{}).Apply([]store.Change{save("M", "c", "a")}); err != nil {
			t.Fatal(err)
		}
		sts[0] = d.Reopen(t, sts[0])
		a = layerOf(t, sts[0], layerName)
		if err := w.Apply([]store.Change{save("M", "d", "b")}); err != nil {
			t.Fatal(err)
		}
		rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
		if err != nil {
			t.Fatalf("host b's run after host a restarted: %v", err)
		}
		if c := rev.Counts["shop"]["M"]; c != (store.Counts{Added: 2, Deleted: 1}) {
			t.Fatalf("counts of host b's run %+v", c)
		}
		got, _ := readAll(t, a, store.Query{Revision: rev.Number})
		if live(got) != "b d" || len(got) != 3 {
			t.Fatalf("host a reads host b's revision: %+v", got)
		}
		if cp, _ := a.Checkpoint("shop", "s"); string(cp) != `{"b":1}` {
			t.Fatalf("host b's checkpoint: %s", cp)
		}
	})

	// What a 202 or an API answer acknowledged survives: the inbox, the
	// outbox, events and audit, runs, connections, webhooks, settings.
	test(t, d, "SystemStateSurvives", func(t *testing.T, e *env) {
		l := e.l
		var seqs []uint64
		for i := range 3 {
			seq, err := l.AppendInbox(store.InboxItem{Source: "shop", Body: []byte(fmt.Sprintf(`{"n":%d}`, i))})
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, seq)
		}
		if err := l.DropInbox(seqs[0]); err != nil {
			t.Fatal(err)
		}
		hook, err := l.AddWebhook("cms")
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Enqueue([]store.Delivery{delivery("evt_1", "app"), delivery("evt_2", "app")}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.ModifyDelivery("evt_1.app", func(d *store.Delivery) error { d.State = store.DeliveryDelivered; return nil }); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Hour)
		if err := l.AppendEvents([]store.Event{{Type: "a", Time: old}, {Type: "b", Time: old}, {Type: "c"}}); err != nil {
			t.Fatal(err)
		}
		if n, err := l.PruneEvents(time.Now().Add(-time.Minute)); err != nil || n != 2 {
			t.Fatalf("pruned %d events, %v", n, err)
		}
		for range 2 {
			if _, err := l.AppendAudit(store.AuditEntry{Action: "x", Time: old}); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := l.PruneAudit(time.Now()); err != nil || n != 2 {
			t.Fatalf("pruned %d audit entries, %v", n, err)
		}
		run := &store.Run{ID: runID(time.Now(), 1), State: store.RunRunning, Trigger: "manual"}
		if err := l.PutRun(run); err != nil {
			t.Fatal(err)
		}
		if err := l.PutConnection(&store.Connection{Source: "crm", ID: "acme", State: "active", Config: []byte("sealed")}, true); err != nil {
			t.Fatal(err)
		}
		if err := l.SetMeta("k", []byte("v")); err != nil {
			t.Fatal(err)
		}

		e.reopen()
		l = e.l
		items, err := l.PendingInbox(0, 10)
		if err != nil || len(items) != 2 || items[0].Seq != seqs[1] || string(items[1].Body) != `{"n":2}` || l.InboxDepth() != 2 {
			t.Fatalf("inbox after a restart %+v depth %d %v", items, l.InboxDepth(), err)
		}
		if seq, err := l.AppendInbox(store.InboxItem{Source: "shop", Body: []byte(`{}`)}); err != nil || seq <= seqs[2] {
			t.Fatalf("an inbox item after a restart numbered %d (last before %d): %v", seq, seqs[2], err)
		}
		if w, ok := l.LookupWebhook(hook.ID); !ok || w.Name != "cms" || !l.HasWebhooks() {
			t.Fatalf("webhook after a restart %+v %v", w, ok)
		}
		if ds, _, err := l.OutboxChanges(0); err != nil || deliveryIDs(ds) != "evt_1.app:delivered evt_2.app:pending" {
			t.Fatalf("outbox after a restart %s %v", deliveryIDs(ds), err)
		}
		if ds, _ := l.Deliveries("", 10, true); deliveryIDs(ds) != "evt_2.app:pending" {
			t.Fatalf("pending deliveries after a restart %s", deliveryIDs(ds))
		}
		if es, _ := l.Events(0, 10); len(es) != 1 || es[0].Seq != 3 || es[0].Type != "c" {
			t.Fatalf("events after a restart %+v", es)
		}
		if err := l.AppendEvents([]store.Event{{Type: "d"}}); err != nil {
			t.Fatal(err)
		}
		if seq, _ := l.LastEventSeq(); seq != 4 {
			t.Fatalf("an event after a restart numbered %d, want 4", seq)
		}
		if err := l.AppendEvents([]store.Event{{Type: "e", Time: old}}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.PruneEvents(time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if a, err := l.AppendAudit(store.AuditEntry{Action: "y"}); err != nil || a.Seq != 3 {
			t.Fatalf("an audit entry after pruning all and a restart numbered %d, want 3 (%v)", a.Seq, err)
		}
		if active, err := l.ActiveRuns(); err != nil || len(active) != 1 || active[0].ID != run.ID {
			t.Fatalf("active runs after a restart %+v %v", active, err)
		}
		if c, err := l.GetConnection("crm", "acme"); err != nil || string(c.Config) != "sealed" {
			t.Fatalf("connection after a restart %+v %v", c, err)
		}
		if v, _ := l.Meta("k"); string(v) != "v" {
			t.Fatalf("meta after a restart %q", v)
		}
		// Pruned logs keep their numbering across a restart as well.
		e.reopen()
		l = e.l
		if err := l.AppendEvents([]store.Event{{Type: "f"}}); err != nil {
			t.Fatal(err)
		}
		if seq, _ := l.LastEventSeq(); seq != 6 {
			t.Fatalf("an event after pruning all and two restarts numbered %d, want 6", seq)
		}
	})
}
