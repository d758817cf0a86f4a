package badger

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func delivery(event, endpoint string) Delivery {
	return Delivery{EventID: event, Endpoint: endpoint, Type: "sync.started", Body: []byte(`{"id":"` + event + `"}`)}
}

func ids(ds []*Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID() + ":" + d.State
	}
	return out
}

func TestOutboxChangesReadsOnlyWhatChanged(t *testing.T) {
	dir := t.TempDir()
	s, l := openLayer(t, dir)
	if err := l.Enqueue([]Delivery{delivery("evt_1", "app"), delivery("evt_1", "ops"), delivery("evt_2", "app")}); err != nil {
		t.Fatal(err)
	}
	ds, pos, err := l.OutboxChanges(0)
	if err != nil || fmt.Sprint(ids(ds)) != "[evt_1.app:pending evt_1.ops:pending evt_2.app:pending]" {
		t.Fatalf("first read = %v, %v", ids(ds), err)
	}
	if string(ds[0].Body) != `{"id":"evt_1"}` {
		t.Fatalf("body = %s", ds[0].Body)
	}
	if ds, again, err := l.OutboxChanges(pos); err != nil || len(ds) != 0 || again != pos {
		t.Fatalf("nothing changed, read %v at %d (was %d), %v", ids(ds), again, pos, err)
	}

	// An attempt, a redelivery and a new event are the changes.
	d := ds0(t, l, "evt_1.ops")
	d.State, d.Attempts = DeliveryDelivered, []Attempt{{At: time.Now(), Status: 204}}
	if err := l.UpdateDelivery(d); err != nil {
		t.Fatal(err)
	}
	if err := l.Enqueue([]Delivery{delivery("evt_3", "app")}); err != nil {
		t.Fatal(err)
	}
	ds, pos, err = l.OutboxChanges(pos)
	if err != nil || fmt.Sprint(ids(ds)) != "[evt_1.ops:delivered evt_3.app:pending]" {
		t.Fatalf("after an attempt and an event: %v, %v", ids(ds), err)
	}
	if _, err := l.RedeliverDelivery("evt_1.ops"); err != nil {
		t.Fatal(err)
	}
	ds, pos, err = l.OutboxChanges(pos)
	if err != nil || fmt.Sprint(ids(ds)) != "[evt_1.ops:pending]" || len(ds[0].Attempts) != 1 {
		t.Fatalf("after a redelivery: %v, %v", ids(ds), err)
	}

	// Events announced by a revision, written while a run stages and when
	// it publishes, are changes too.
	st, err := l.beginStaging("run_1")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.writer("shop", WriterOptions{}).Apply([]Change{save("Product", "a", "A")}); err != nil {
		t.Fatal(err)
	}
	if err := l.Enqueue([]Delivery{delivery("evt_4", "app")}); err != nil {
		t.Fatal(err)
	}
	ds, pos, err = l.OutboxChanges(pos)
	if err != nil || fmt.Sprint(ids(ds)) != "[evt_4.app:pending]" {
		t.Fatalf("while a run stages: %v, %v", ids(ds), err)
	}
	if _, err := st.Publish(PublishInfo{Trigger: "manual", Sources: []string{"shop"}, Announce: func(Revision) []Delivery {
		return []Delivery{delivery("evt_5", "app")}
	}}); err != nil {
		t.Fatal(err)
	}
	ds, pos, err = l.OutboxChanges(pos)
	if err != nil || fmt.Sprint(ids(ds)) != "[evt_5.app:pending]" {
		t.Fatalf("after a publish: %v, %v", ids(ds), err)
	}
	if err := l.Enqueue([]Delivery{delivery("evt_6", "app")}); err != nil {
		t.Fatal(err)
	}
	if ds, _, err = l.OutboxChanges(pos); err != nil || fmt.Sprint(ids(ds)) != "[evt_6.app:pending]" {
		t.Fatalf("after a publish, a new event: %v, %v", ids(ds), err)
	}

	// Reopened, the whole outbox at its newest state.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, l = openLayer(t, dir)
	defer s.Close()
	ds, _, err = l.OutboxChanges(0)
	want := "[evt_1.app:pending evt_1.ops:pending evt_2.app:pending evt_3.app:pending evt_4.app:pending evt_5.app:pending evt_6.app:pending]"
	if err != nil || fmt.Sprint(ids(ds)) != want {
		t.Fatalf("after reopening: %v, %v", ids(ds), err)
	}
}

func ds0(t *testing.T, l *Layer, id string) *Delivery {
	t.Helper()
	d, err := l.GetDelivery(id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestOutboxChangesMissesNoConcurrentWrite reads changes while other
// goroutines add and update deliveries: every write is seen, at its final
// state, by following the positions.
func TestOutboxChangesMissesNoConcurrentWrite(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	const writers, each = 4, 150
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				// Ids that do not sort in write order.
				ev := fmt.Sprintf("evt_%03d_%d", each-i, w)
				if err := l.Enqueue([]Delivery{delivery(ev, "app")}); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					d, err := l.GetDelivery(ev + ".app")
					if err != nil {
						t.Error(err)
						return
					}
					d.State = DeliveryDelivered
					if err := l.UpdateDelivery(d); err != nil {
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
	var pos uint64
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true // one more read after the last write
		default:
		}
		ds, next, err := l.OutboxChanges(pos)
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
	if len(seen) != writers*each {
		t.Fatalf("saw %d deliveries, want %d", len(seen), writers*each)
	}
	for w := range writers {
		for i := range each {
			id := fmt.Sprintf("evt_%03d_%d.app", each-i, w)
			want := DeliveryPending
			if i%3 == 0 {
				want = DeliveryDelivered
			}
			if seen[id] != want {
				t.Fatalf("%s last seen %q, want %q", id, seen[id], want)
			}
		}
	}
}

func TestPruneDeliveriesKeepsPendingAndRecent(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	old := time.Now().Add(-8 * 24 * time.Hour)
	recent := time.Now().Add(-time.Hour)
	mk := func(ev, state string, created time.Time, attempts ...time.Time) Delivery {
		d := delivery(ev, "app")
		d.State, d.Created = state, created
		for _, at := range attempts {
			d.Attempts = append(d.Attempts, Attempt{At: at, Status: 500})
		}
		return d
	}
	if err := l.Enqueue([]Delivery{
		mk("evt_1", DeliveryDelivered, old, old),      // pruned
		mk("evt_2", DeliveryFailed, old, old, old),    // pruned
		mk("evt_3", DeliveryStopped, old),             // pruned: no attempt, created long ago
		mk("evt_4", DeliveryPending, old, old),        // kept: still pending
		mk("evt_5", DeliveryFailed, old, old, recent), // kept: last attempt recent
		mk("evt_6", DeliveryDelivered, recent, recent),
	}); err != nil {
		t.Fatal(err)
	}
	n, err := l.PruneDeliveries(time.Now().Add(-7 * 24 * time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("pruned %d, %v; want 3", n, err)
	}
	ds, err := l.Deliveries("", 100, false)
	if err != nil || fmt.Sprint(ids(ds)) != "[evt_4.app:pending evt_5.app:failed evt_6.app:delivered]" {
		t.Fatalf("left %v, %v", ids(ds), err)
	}
	if _, err := l.GetDelivery("evt_1.app"); err != ErrNotFound {
		t.Fatalf("pruned delivery: %v", err)
	}
}
