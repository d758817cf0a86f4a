package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// testOutbox: outbound deliveries, durable until their endpoints have them
// (SPEC §8).
func testOutbox(t *testing.T, d Driver) {
	// Enqueued deliveries are pending, due now, listed in event order.
	test(t, d, "EnqueueAndList", func(t *testing.T, e *env) {
		l := e.l
		if ds, err := l.Deliveries("", 10, false); err != nil || len(ds) != 0 {
			t.Fatalf("deliveries of a new layer: %s %v", deliveryIDs(ds), err)
		}
		sig := l.OutboxSignal()
		before := time.Now().Add(-time.Second)
		if err := l.Enqueue([]store.Delivery{delivery("evt_2", "app"), delivery("evt_1", "ops"), delivery("evt_1", "app")}); err != nil {
			t.Fatal(err)
		}
		waitSignal(t, sig, "outbox after an enqueue")
		if err := l.Enqueue(nil); err != nil {
			t.Fatalf("an empty enqueue: %v", err)
		}
		ds, err := l.Deliveries("", 10, false)
		if err != nil || deliveryIDs(ds) != "evt_1.app:pending evt_1.ops:pending evt_2.app:pending" {
			t.Fatalf("deliveries %s %v", deliveryIDs(ds), err)
		}
		d0 := ds[0]
		if d0.EventID != "evt_1" || d0.Endpoint != "app" || d0.Type != "sync.started" || string(d0.Body) != `{"id":"evt_1"}` ||
			d0.Created.Before(before) || !d0.NextAt.Equal(d0.Created) || len(d0.Attempts) != 0 {
			t.Fatalf("delivery %+v", d0)
		}
		if ds, _ := l.Deliveries("evt_1.app", 1, false); deliveryIDs(ds) != "evt_1.ops:pending" {
			t.Fatalf("after evt_1.app, limit 1: %s", deliveryIDs(ds))
		}
		if ds, _ := l.Deliveries("evt_2.app", 10, false); len(ds) != 0 {
			t.Fatalf("after the last: %s", deliveryIDs(ds))
		}
		got, err := l.GetDelivery("evt_1.ops")
		if err != nil || got.ID() != "evt_1.ops" || string(got.Body) != `{"id":"evt_1"}` {
			t.Fatalf("get %+v %v", got, err)
		}
		if _, err := l.GetDelivery("evt_9.app"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get of an unknown delivery: %v", err)
		}
		// A delivery given its state and times keeps them.
		at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
		done := delivery("evt_0", "app")
		done.State, done.Created, done.NextAt = store.DeliveryDelivered, at, at.Add(time.Minute)
		done.Attempts = []store.Attempt{{At: at, Status: 204, LatencyMS: 12}}
		if err := l.Enqueue([]store.Delivery{done}); err != nil {
			t.Fatal(err)
		}
		got, _ = l.GetDelivery("evt_0.app")
		if got.State != store.DeliveryDelivered || !got.Created.Equal(at) || !got.NextAt.Equal(at.Add(time.Minute)) ||
			len(got.Attempts) != 1 || got.Attempts[0].Status != 204 || got.Attempts[0].LatencyMS != 12 || !got.Attempts[0].At.Equal(at) {
			t.Fatalf("delivery with its state %+v", got)
		}
		if ds, _ := l.Deliveries("", 10, true); deliveryIDs(ds) != "evt_1.app:pending evt_1.ops:pending evt_2.app:pending" {
			t.Fatalf("pending only: %s", deliveryIDs(ds))
		}
	})

	// Attempts, changes under the outbox's lock and redeliveries.
	test(t, d, "UpdateModifyRedeliver", func(t *testing.T, e *env) {
		l := e.l
		if err := l.Enqueue([]store.Delivery{delivery("evt_1", "app")}); err != nil {
			t.Fatal(err)
		}
		dl, _ := l.GetDelivery("evt_1.app")
		at := time.Now().UTC().Truncate(time.Microsecond)
		dl.State, dl.Attempts = store.DeliveryFailed, []store.Attempt{{At: at, Status: 500, LatencyMS: 3, Error: "HTTP 500"}}
		if err := l.UpdateDelivery(dl); err != nil {
			t.Fatal(err)
		}
		got, _ := l.GetDelivery("evt_1.app")
		if got.State != store.DeliveryFailed || len(got.Attempts) != 1 || got.Attempts[0].Error != "HTTP 500" {
			t.Fatalf("after an update %+v", got)
		}
		boom := errors.New("boom")
		if _, err := l.ModifyDelivery("evt_1.app", func(d *store.Delivery) error { d.State = store.DeliveryStopped; return boom }); !errors.Is(err, boom) {
			t.Fatalf("modify whose fn fails: %v", err)
		}
		if got, _ := l.GetDelivery("evt_1.app"); got.State != store.DeliveryFailed {
			t.Fatalf("a failed modify wrote %+v", got)
		}
		if _, err := l.ModifyDelivery("evt_9.app", func(*store.Delivery) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("modify of an unknown delivery: %v", err)
		}
		out, err := l.ModifyDelivery("evt_1.app", func(d *store.Delivery) error { d.State = store.DeliveryStopped; return nil })
		if err != nil || out.State != store.DeliveryStopped {
			t.Fatalf("modify %+v %v", out, err)
		}
		sig := l.OutboxSignal()
		before := time.Now().Add(-time.Second)
		red, err := l.RedeliverDelivery("evt_1.app")
		if err != nil || red.State != store.DeliveryPending || red.Redeliveries != 1 || red.NextAt.Before(before) || len(red.Attempts) != 1 {
			t.Fatalf("redeliver %+v %v", red, err)
		}
		waitSignal(t, sig, "outbox after a redelivery")
		if got, _ := l.GetDelivery("evt_1.app"); got.State != store.DeliveryPending || got.Redeliveries != 1 {
			t.Fatalf("after a redelivery %+v", got)
		}
		if _, err := l.RedeliverDelivery("evt_9.app"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("redeliver of an unknown delivery: %v", err)
		}
	})

	// Changes made under the lock from many goroutines are none of them
	// lost.
	test(t, d, "ModifyIsAtomic", func(t *testing.T, e *env) {
		l := e.l
		if err := l.Enqueue([]store.Delivery{delivery("evt_1", "app")}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 25 {
					if _, err := l.ModifyDelivery("evt_1.app", func(d *store.Delivery) error { d.Redeliveries++; return nil }); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if got, _ := l.GetDelivery("evt_1.app"); got.Redeliveries != 100 {
			t.Fatalf("100 increments left %d", got.Redeliveries)
		}
	})

	// OutboxChanges returns what changed since a position: new events,
	// attempts, redeliveries, and events announced by revisions.
	test(t, d, "Changes", func(t *testing.T, e *env) {
		l := e.l
		if err := l.Enqueue([]store.Delivery{delivery("evt_1", "app"), delivery("evt_1", "ops"), delivery("evt_2", "app")}); err != nil {
			t.Fatal(err)
		}
		ds, pos, err := l.OutboxChanges(0)
		if err != nil || deliveryIDs(ds) != "evt_1.app:pending evt_1.ops:pending evt_2.app:pending" || string(ds[0].Body) != `{"id":"evt_1"}` {
			t.Fatalf("first read %s %v", deliveryIDs(ds), err)
		}
		if ds, again, err := l.OutboxChanges(pos); err != nil || len(ds) != 0 || again != pos {
			t.Fatalf("nothing changed: read %s at %d (was %d), %v", deliveryIDs(ds), again, pos, err)
		}
		dl, _ := l.GetDelivery("evt_1.ops")
		dl.State, dl.Attempts = store.DeliveryDelivered, []store.Attempt{{At: time.Now(), Status: 204}}
		if err := l.UpdateDelivery(dl); err != nil {
			t.Fatal(err)
		}
		if err := l.Enqueue([]store.Delivery{delivery("evt_3", "app")}); err != nil {
			t.Fatal(err)
		}
		ds, pos, err = l.OutboxChanges(pos)
		if err != nil || deliveryIDs(ds) != "evt_1.ops:delivered evt_3.app:pending" {
			t.Fatalf("after an attempt and an event: %s %v", deliveryIDs(ds), err)
		}
		if _, err := l.RedeliverDelivery("evt_1.ops"); err != nil {
			t.Fatal(err)
		}
		ds, pos, err = l.OutboxChanges(pos)
		if err != nil || deliveryIDs(ds) != "evt_1.ops:pending" || len(ds[0].Attempts) != 1 {
			t.Fatalf("after a redelivery: %s %v", deliveryIDs(ds), err)
		}
		// While a run stages, and when it publishes with announcements.
		st, err := l.BeginStaging("run_1")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Writer("shop", store.WriterOptions{}).Apply([]store.Change{save("Product", "a", "A")}); err != nil {
			t.Fatal(err)
		}
		if err := l.Enqueue([]store.Delivery{delivery("evt_4", "app")}); err != nil {
			t.Fatal(err)
		}
		ds, pos, err = l.OutboxChanges(pos)
		if err != nil || deliveryIDs(ds) != "evt_4.app:pending" {
			t.Fatalf("while a run stages: %s %v", deliveryIDs(ds), err)
		}
		if _, err := st.Publish(store.PublishInfo{Trigger: "manual", Announce: func(store.Revision) []store.Delivery {
			return []store.Delivery{delivery("evt_5", "app")}
		}}); err != nil {
			t.Fatal(err)
		}
		ds, pos, err = l.OutboxChanges(pos)
		if err != nil || deliveryIDs(ds) != "evt_5.app:pending" {
			t.Fatalf("after a publish: %s %v", deliveryIDs(ds), err)
		}
		if err := l.Enqueue([]store.Delivery{delivery("evt_6", "app")}); err != nil {
			t.Fatal(err)
		}
		if ds, _, err = l.OutboxChanges(pos); err != nil || deliveryIDs(ds) != "evt_6.app:pending" {
			t.Fatalf("a new event after a publish: %s %v", deliveryIDs(ds), err)
		}
	})

	// Following OutboxChanges while others write misses no write and ends
	// on every delivery's last state.
	test(t, d, "ChangesMissNoConcurrentWrite", func(t *testing.T, e *env) {
		followChanges(t, []store.Layer{e.l}, e.l)
	})

	// A delivery worker that follows OutboxChanges never reads the
	// announcement of a revision before the revision is readable.
	test(t, d, "AnnouncementAfterItsRevision", func(t *testing.T, e *env) {
		announceFollow(t, e.l, e.l)
	})

	// Finished deliveries older than the cutoff go; pending and recent
	// ones stay.
	test(t, d, "Prune", func(t *testing.T, e *env) {
		l := e.l
		old := time.Now().Add(-8 * 24 * time.Hour)
		recent := time.Now().Add(-time.Hour)
		mk := func(ev, state string, created time.Time, attempts ...time.Time) store.Delivery {
			d := delivery(ev, "app")
			d.State, d.Created = state, created
			for _, at := range attempts {
				d.Attempts = append(d.Attempts, store.Attempt{At: at, Status: 500})
			}
			return d
		}
		if err := l.Enqueue([]store.Delivery{
			mk("evt_1", store.DeliveryDelivered, old, old),
			mk("evt_2", store.DeliveryFailed, old, old, old),
			mk("evt_3", store.DeliveryStopped, old),
			mk("evt_4", store.DeliveryPending, old, old),
			mk("evt_5", store.DeliveryFailed, old, old, recent),
			mk("evt_6", store.DeliveryDelivered, recent, recent),
		}); err != nil {
			t.Fatal(err)
		}
		n, err := l.PruneDeliveries(time.Now().Add(-7 * 24 * time.Hour))
		if err != nil || n != 3 {
			t.Fatalf("pruned %d, %v; want 3", n, err)
		}
		ds, err := l.Deliveries("", 100, false)
		if err != nil || deliveryIDs(ds) != "evt_4.app:pending evt_5.app:failed evt_6.app:delivered" {
			t.Fatalf("left %s, %v", deliveryIDs(ds), err)
		}
		if _, err := l.GetDelivery("evt_1.app"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("pruned delivery: %v", err)
		}
	})

	// Every host sees every host's deliveries, and changes under the lock
	// are atomic across hosts.
	hostsTest(t, d, "AcrossHosts", 3, func(t *testing.T, ls []store.Layer) {
		a, b := ls[0], ls[1]
		sig := b.OutboxSignal()
		if err := a.Enqueue([]store.Delivery{delivery("evt_1", "app")}); err != nil {
			t.Fatal(err)
		}
		waitSignal(t, sig, "outbox of host b after host a enqueued")
		if got, err := b.GetDelivery("evt_1.app"); err != nil || got.State != store.DeliveryPending {
			t.Fatalf("host b reads %+v %v", got, err)
		}
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					if _, err := ls[i%len(ls)].ModifyDelivery("evt_1.app", func(d *store.Delivery) error { d.Redeliveries++; return nil }); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if got, _ := a.GetDelivery("evt_1.app"); got.Redeliveries != 40 {
			t.Fatalf("40 increments over hosts left %d", got.Redeliveries)
		}
		followChanges(t, ls, ls[2])
		announceFollow(t, ls[0], ls[1])
	})
}

// announceFollow publishes revisions on writer, each announced, while a
// follower of reader's OutboxChanges checks that every announcement it
// reads names a revision reader can already read.
func announceFollow(t *testing.T, writer, reader store.Layer) {
	t.Helper()
	const revisions = 20
	_, pos, err := reader.OutboxChanges(0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range revisions {
			_, err := writer.PublishChanges(store.PublishInfo{Trigger: "webhook", Announce: func(r store.Revision) []store.Delivery {
				return []store.Delivery{delivery(fmt.Sprintf("evt_announce_%d", r.Number), "app")}
			}}, []store.Batch{{Source: "ann", Changes: []store.Change{save("M", "a", fmt.Sprint(i))}}})
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	seen := 0
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		ds, next, err := reader.OutboxChanges(pos)
		if err != nil {
			t.Fatal(err)
		}
		pos = next
		for _, d := range ds {
			var n int64
			if _, err := fmt.Sscanf(d.EventID, "evt_announce_%d", &n); err != nil {
				continue
			}
			seen++
			// Gone (retention moved past it while this reader was
			// slow) means it was published; only "no such revision"
			// means the announcement came first.
			if _, err := reader.Records(store.Query{Revision: n, Limit: 1}, func([]byte) error { return nil }); err != nil && !errors.Is(err, store.ErrRevisionGone) {
				t.Fatalf("the announcement of revision %d was read before the revision: %v", n, err)
			}
		}
	}
	if !t.Failed() && seen != revisions {
		t.Fatalf("read %d announcements, want %d", seen, revisions)
	}
}

// followChanges has every writer layer add and update deliveries while
// reader follows OutboxChanges: every write is seen, at its final state.
func followChanges(t *testing.T, writers []store.Layer, reader store.Layer) {
	t.Helper()
	const goroutines, each = 4, 50
	// Start from what the outbox holds already.
	_, pos, err := reader.OutboxChanges(0)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range goroutines {
		l := writers[w%len(writers)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				ev := fmt.Sprintf("evt_%03d_%d", each-i, w) // ids that do not sort in write order
				if err := l.Enqueue([]store.Delivery{delivery(ev, "app")}); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if _, err := l.ModifyDelivery(ev+".app", func(d *store.Delivery) error { d.State = store.DeliveryDelivered; return nil }); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[string]string{}
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true // one more read after the last write
		default:
		}
		ds, next, err := reader.OutboxChanges(pos)
		if err != nil {
			t.Fatal(err)
		}
		if next < pos {
			t.Fatalf("position went back from %d to %d", pos, next)
		}
		for _, d := range ds {
			seen[d.ID()] = d.State
		}
		pos = next
	}
	if t.Failed() {
		return
	}
	if len(seen) != goroutines*each {
		t.Fatalf("saw %d deliveries, want %d", len(seen), goroutines*each)
	}
	for w := range goroutines {
		for i := range each {
			id := fmt.Sprintf("evt_%03d_%d.app", each-i, w)
			want := store.DeliveryPending
			if i%3 == 0 {
				want = store.DeliveryDelivered
			}
			if seen[id] != want {
				t.Fatalf("%s last seen %q, want %q", id, seen[id], want)
			}
		}
	}
}
