package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store"
)

func sysDelivery(event, endpoint string) store.Delivery {
	return store.Delivery{EventID: event, Endpoint: endpoint, Type: "sync.started", Body: []byte(`{"id":"` + event + `"}`)}
}

func sysDeliveryIDs(ds []*store.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID() + ":" + d.State
	}
	return out
}

func sysGetDelivery(t *testing.T, l *Layer, id string) *store.Delivery {
	t.Helper()
	d, err := l.GetDelivery(id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// As badger's: what changed since a position, attempts, redeliveries and
// events announced in a publish's transaction among them; reopened (or on
// another host), the whole outbox at its newest state.
func TestOutboxChangesReadsOnlyWhatChanged(t *testing.T) {
	s, dsn := openStore(t)
	l := sysLayer(t, s, "demo")
	if err := l.Enqueue([]store.Delivery{sysDelivery("evt_1", "app"), sysDelivery("evt_1", "ops"), sysDelivery("evt_2", "app")}); err != nil {
		t.Fatal(err)
	}
	ds, pos, err := l.OutboxChanges(0)
	if err != nil || fmt.Sprint(sysDeliveryIDs(ds)) != "[evt_1.app:pending evt_1.ops:pending evt_2.app:pending]" {
		t.Fatalf("first read = %v, %v", sysDeliveryIDs(ds), err)
	}
	if string(ds[0].Body) != `{"id":"evt_1"}` {
		t.Fatalf("body = %s", ds[0].Body)
	}
	if ds, again, err := l.OutboxChanges(pos); err != nil || len(ds) != 0 || again != pos {
		t.Fatalf("nothing changed, read %v at %d (was %d), %v", sysDeliveryIDs(ds), again, pos, err)
	}

	// An attempt, a redelivery and a new event are the changes.
	d := sysGetDelivery(t, l, "evt_1.ops")
	at := time.Now().UTC()
	d.State, d.Attempts = store.DeliveryDelivered, []store.Attempt{{At: at, Status: 204, LatencyMS: 12}}
	if err := l.UpdateDelivery(d); err != nil {
		t.Fatal(err)
	}
	if err := l.Enqueue([]store.Delivery{sysDelivery("evt_3", "app")}); err != nil {
		t.Fatal(err)
	}
	ds, pos, err = l.OutboxChanges(pos)
	if err != nil || fmt.Sprint(sysDeliveryIDs(ds)) != "[evt_1.ops:delivered evt_3.app:pending]" {
		t.Fatalf("after an attempt and an event: %v, %v", sysDeliveryIDs(ds), err)
	}
	if got := ds[0].Attempts; len(got) != 1 || !got[0].At.Equal(at) || got[0].Status != 204 || got[0].LatencyMS != 12 {
		t.Fatalf("attempt read back: %+v", got)
	}
	sig := l.OutboxSignal()
	re, err := l.RedeliverDelivery("evt_1.ops")
	if err != nil || re.State != store.DeliveryPending || re.Redeliveries != 1 {
		t.Fatalf("redelivered: %+v, %v", re, err)
	}
	if !sysSignalled(sig) {
		t.Fatal("a redelivery did not fire the outbox signal")
	}
	ds, pos, err = l.OutboxChanges(pos)
	if err != nil || fmt.Sprint(sysDeliveryIDs(ds)) != "[evt_1.ops:pending]" || len(ds[0].Attempts) != 1 {
		t.Fatalf("after a redelivery: %v, %v", sysDeliveryIDs(ds), err)
	}
	if _, err := l.RedeliverDelivery("evt_9.app"); err != store.ErrNotFound {
		t.Fatalf("redelivering an unknown delivery: %v", err)
	}

	// Events announced in a publish's transaction are changes too, and one
	// written while that transaction is open is not held up by it.
	ctx := context.Background()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := l.Enqueue([]store.Delivery{sysDelivery("evt_4", "app")}); err != nil {
		t.Fatal(err)
	}
	if err := l.sys.enqueue(ctx, tx, l, []store.Delivery{sysDelivery("evt_5", "app")}); err != nil {
		t.Fatal(err)
	}
	ds, pos, err = l.OutboxChanges(pos)
	if err != nil || fmt.Sprint(sysDeliveryIDs(ds)) != "[evt_4.app:pending]" {
		t.Fatalf("while a publish is open: %v, %v", sysDeliveryIDs(ds), err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	ds, pos, err = l.OutboxChanges(pos)
	if err != nil || fmt.Sprint(sysDeliveryIDs(ds)) != "[evt_5.app:pending]" {
		t.Fatalf("after a publish: %v, %v", sysDeliveryIDs(ds), err)
	}
	if err := l.Enqueue([]store.Delivery{sysDelivery("evt_6", "app")}); err != nil {
		t.Fatal(err)
	}
	if ds, _, err = l.OutboxChanges(pos); err != nil || fmt.Sprint(sysDeliveryIDs(ds)) != "[evt_6.app:pending]" {
		t.Fatalf("after a publish, a new event: %v, %v", sysDeliveryIDs(ds), err)
	}

	// Reopened, the whole outbox at its newest state.
	s.Close()
	l = sysLayer(t, sysHost(t, dsn), "demo")
	ds, _, err = l.OutboxChanges(0)
	want := "[evt_1.app:pending evt_1.ops:pending evt_2.app:pending evt_3.app:pending evt_4.app:pending evt_5.app:pending evt_6.app:pending]"
	if err != nil || fmt.Sprint(sysDeliveryIDs(ds)) != want {
		t.Fatalf("after reopening: %v, %v", sysDeliveryIDs(ds), err)
	}
}

// Writers on two hosts add and update deliveries while a reader on one of
// them follows the positions: every write is seen, at its final state.
func TestOutboxChangesMissesNoConcurrentWriteOfTwoHosts(t *testing.T) {
	s, dsn := openStore(t)
	hosts := []*Layer{sysLayer(t, s, "demo"), sysLayer(t, sysHost(t, dsn), "demo")}
	const writers, each = 4, 60
	var wg sync.WaitGroup
	for w := range writers {
		l := hosts[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				// Ids that do not sort in write order.
				ev := fmt.Sprintf("evt_%03d_%d", each-i, w)
				if err := l.Enqueue([]store.Delivery{sysDelivery(ev, "app")}); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					d, err := l.GetDelivery(ev + ".app")
					if err != nil {
						t.Error(err)
						return
					}
					d.State = store.DeliveryDelivered
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
		ds, next, err := hosts[0].OutboxChanges(pos)
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

func TestPruneDeliveriesKeepsPendingAndRecent(t *testing.T) {
	s, _ := openStore(t)
	l := sysLayer(t, s, "demo")
	old := time.Now().Add(-8 * 24 * time.Hour)
	recent := time.Now().Add(-time.Hour)
	mk := func(ev, state string, created time.Time, attempts ...time.Time) store.Delivery {
		d := sysDelivery(ev, "app")
		d.State, d.Created = state, created
		for _, at := range attempts {
			d.Attempts = append(d.Attempts, store.Attempt{At: at, Status: 500})
		}
		return d
	}
	if err := l.Enqueue([]store.Delivery{
		mk("evt_1", store.DeliveryDelivered, old, old),      // pruned
		mk("evt_2", store.DeliveryFailed, old, old, old),    // pruned
		mk("evt_3", store.DeliveryStopped, old),             // pruned: no attempt, created long ago
		mk("evt_4", store.DeliveryPending, old, old),        // kept: still pending
		mk("evt_5", store.DeliveryFailed, old, old, recent), // kept: last attempt recent
		mk("evt_6", store.DeliveryDelivered, recent, recent),
	}); err != nil {
		t.Fatal(err)
	}
	n, err := l.PruneDeliveries(time.Now().Add(-7 * 24 * time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("pruned %d, %v; want 3", n, err)
	}
	ds, err := l.Deliveries("", 100, false)
	if err != nil || fmt.Sprint(sysDeliveryIDs(ds)) != "[evt_4.app:pending evt_5.app:failed evt_6.app:delivered]" {
		t.Fatalf("left %v, %v", sysDeliveryIDs(ds), err)
	}
	if _, err := l.GetDelivery("evt_1.app"); err != store.ErrNotFound {
		t.Fatalf("pruned delivery: %v", err)
	}
}

// Listings come in byte order of event id then endpoint (as the embedded
// driver's keys), page after an id, and filter pending ones.
func TestDeliveriesListing(t *testing.T) {
	s, _ := openStore(t)
	l := sysLayer(t, s, "demo")
	// "Z" < "a" < "a.b" in bytes (a locale's order would differ).
	ds := []store.Delivery{sysDelivery("evt_a", "ops"), sysDelivery("evt_Z", "app"), sysDelivery("evt_a", "app"), sysDelivery("evt_a.b", "app"), sysDelivery("evt_b", "app")}
	ds[4].State = store.DeliveryDelivered
	if err := l.Enqueue(ds); err != nil {
		t.Fatal(err)
	}
	all, err := l.Deliveries("", 100, false)
	if err != nil || fmt.Sprint(sysDeliveryIDs(all)) != "[evt_Z.app:pending evt_a.app:pending evt_a.ops:pending evt_a.b.app:pending evt_b.app:delivered]" {
		t.Fatalf("all: %v, %v", sysDeliveryIDs(all), err)
	}
	var paged []*store.Delivery
	for after := ""; ; {
		page, err := l.Deliveries(after, 2, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1].ID()
	}
	if fmt.Sprint(sysDeliveryIDs(paged)) != fmt.Sprint(sysDeliveryIDs(all)) {
		t.Fatalf("paged by 2: %v", sysDeliveryIDs(paged))
	}
	if p, err := l.Deliveries("evt_a.ops", 10, true); err != nil || fmt.Sprint(sysDeliveryIDs(p)) != "[evt_a.b.app:pending]" {
		t.Fatalf("pending after evt_a.ops: %v, %v", sysDeliveryIDs(p), err)
	}
	if p, err := l.Deliveries("", 0, false); err != nil || p == nil || len(p) != 0 {
		t.Fatalf("limit 0: %v, %v", p, err)
	}
	if _, err := l.GetDelivery("evt_nope.app"); err != store.ErrNotFound {
		t.Fatalf("unknown delivery: %v", err)
	}
	// A layer sees only its own.
	if p, err := sysLayer(t, s, "other").Deliveries("", 10, false); err != nil || len(p) != 0 {
		t.Fatalf("another layer's deliveries: %v, %v", sysDeliveryIDs(p), err)
	}
}

// ModifyDelivery is one atomic step on every host: modifications from two
// hosts at once are all kept; one whose fn fails writes nothing.
func TestModifyDeliveryAcrossHosts(t *testing.T) {
	s, dsn := openStore(t)
	a, b := sysLayer(t, s, "demo"), sysLayer(t, sysHost(t, dsn), "demo")
	if err := a.Enqueue([]store.Delivery{sysDelivery("evt_1", "app")}); err != nil {
		t.Fatal(err)
	}
	const each = 25
	var wg sync.WaitGroup
	for _, l := range []*Layer{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := l.ModifyDelivery("evt_1.app", func(d *store.Delivery) error {
					d.Redeliveries++
					return nil
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if d := sysGetDelivery(t, b, "evt_1.app"); d.Redeliveries != 4*each {
		t.Fatalf("%d modifications kept, want %d", d.Redeliveries, 4*each)
	}
	_, pos, _ := a.OutboxChanges(0)
	boom := errors.New("boom")
	if _, err := a.ModifyDelivery("evt_1.app", func(d *store.Delivery) error {
		d.State = store.DeliveryFailed
		return boom
	}); err != boom {
		t.Fatalf("a failing fn: %v", err)
	}
	if d := sysGetDelivery(t, a, "evt_1.app"); d.State != store.DeliveryPending {
		t.Fatalf("a failing fn wrote %q", d.State)
	}
	if ds, _, _ := a.OutboxChanges(pos); len(ds) != 0 {
		t.Fatalf("a failing fn made a change: %v", sysDeliveryIDs(ds))
	}
	if _, err := a.ModifyDelivery("evt_2.app", func(*store.Delivery) error { return nil }); err != store.ErrNotFound {
		t.Fatalf("modifying an unknown delivery: %v", err)
	}
}

// Claims: due, pending, unclaimed deliveries only; a live claim keeps
// others off until it is released or its lease runs out.
func TestClaimDeliveries(t *testing.T) {
	s, _ := openStore(t)
	l := sysLayer(t, s, "demo")
	due := sysDelivery("evt_1", "app")
	later := sysDelivery("evt_2", "app")
	later.NextAt = time.Now().Add(time.Hour)
	done := sysDelivery("evt_3", "app")
	done.State = store.DeliveryDelivered
	if err := l.Enqueue([]store.Delivery{due, later, done, sysDelivery("evt_4", "app")}); err != nil {
		t.Fatal(err)
	}
	got, err := l.ClaimDeliveries("host-a", 10, time.Minute)
	if err != nil || len(got) != 2 || got[0].ID() != "evt_1.app" || got[1].ID() != "evt_4.app" || string(got[0].Body) != `{"id":"evt_1"}` {
		t.Fatalf("claimed %v, %v; want evt_1.app and evt_4.app", sysDeliveryIDs(got), err)
	}
	if again, err := l.ClaimDeliveries("host-b", 10, time.Minute); err != nil || len(again) != 0 {
		t.Fatalf("claimed again while held: %v, %v", sysDeliveryIDs(again), err)
	}
	// Recording the attempt leaves the claim; a release by another host
	// does nothing; the holder's release frees it.
	if _, err := l.ModifyDelivery("evt_1.app", func(d *store.Delivery) error {
		d.Attempts = append(d.Attempts, store.Attempt{At: time.Now(), Status: 500})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.ReleaseDeliveries("host-b", "evt_1.app"); err != nil {
		t.Fatal(err)
	}
	if again, _ := l.ClaimDeliveries("host-b", 10, time.Minute); len(again) != 0 {
		t.Fatalf("claimed after another host's release: %v", sysDeliveryIDs(again))
	}
	if err := l.ReleaseDeliveries("host-a", "evt_1.app"); err != nil {
		t.Fatal(err)
	}
	if again, err := l.ClaimDeliveries("host-b", 10, time.Minute); err != nil || fmt.Sprint(sysDeliveryIDs(again)) != "[evt_1.app:pending]" || len(again[0].Attempts) != 1 {
		t.Fatalf("claimed after the holder's release: %v, %v", sysDeliveryIDs(again), err)
	}
	// A lease that ran out (moved into the past here, rather than waited
	// for) opens the delivery to any host.
	if _, err := s.pool.Exec(context.Background(), `UPDATE synclayer_deliveries SET claimed_until = now() - interval '1 second' WHERE event_id = 'evt_4'`); err != nil {
		t.Fatal(err)
	}
	if again, err := l.ClaimDeliveries("host-c", 10, time.Minute); err != nil || fmt.Sprint(sysDeliveryIDs(again)) != "[evt_4.app:pending]" {
		t.Fatalf("claimed after the lease ran out: %v, %v", sysDeliveryIDs(again), err)
	}
	if _, err := l.ClaimDeliveries("", 1, time.Minute); err == nil {
		t.Fatal("a claim without a host name")
	}
	if _, err := l.ClaimDeliveries("host-a", 1, 0); err == nil {
		t.Fatal("a claim without a lease")
	}
}

// Hosts claiming at once never get the same delivery, and together they
// get every one.
func TestClaimDeliveriesTwoHostsDisjoint(t *testing.T) {
	s, dsn := openStore(t)
	hosts := []*Layer{sysLayer(t, s, "demo"), sysLayer(t, sysHost(t, dsn), "demo")}
	const n = 400
	var ds []store.Delivery
	for i := range n {
		ds = append(ds, sysDelivery(fmt.Sprintf("evt_%04d", i), "app"))
	}
	if err := hosts[0].Enqueue(ds); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	claims := map[string][]string{}
	var wg sync.WaitGroup
	for w := range 6 {
		l, host := hosts[w%2], fmt.Sprintf("host-%d", w%2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := l.ClaimDeliveries(host, 7, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					claims[d.ID()] = append(claims[d.ID()], fmt.Sprint(host, "/", w))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(claims) != n {
		t.Fatalf("%d deliveries claimed, want %d", len(claims), n)
	}
	var twice []string
	for id, by := range claims {
		if len(by) != 1 {
			twice = append(twice, fmt.Sprint(id, by))
		}
	}
	sort.Strings(twice)
	if len(twice) > 0 {
		t.Fatalf("claimed more than once: %v", twice)
	}
}

// Deliveries written on one host fire the other's outbox signal; a write
// fires its own host's at once.
func TestOutboxSignalOnEveryHost(t *testing.T) {
	s, dsn := openStore(t)
	a, b := sysLayer(t, s, "demo"), sysLayer(t, sysHost(t, dsn), "demo")
	here, there := a.OutboxSignal(), b.OutboxSignal()
	if sysSignalled(here) || sysSignalled(there) {
		t.Fatal("signalled before any write")
	}
	if err := a.Enqueue([]store.Delivery{sysDelivery("evt_1", "app")}); err != nil {
		t.Fatal(err)
	}
	if !sysSignalled(here) {
		t.Fatal("the writing host's signal is still open after Enqueue returned")
	}
	sysWaitSignal(t, there, "the other host's outbox after an Enqueue")
	// An attempt recorded elsewhere is a change too.
	there = b.OutboxSignal()
	d := sysGetDelivery(t, a, "evt_1.app")
	d.State = store.DeliveryDelivered
	if err := a.UpdateDelivery(d); err != nil {
		t.Fatal(err)
	}
	sysWaitSignal(t, there, "the other host's outbox after an UpdateDelivery")
}

// A delivery announced twice in one commit is stored once, as the last.
func TestEnqueueSameDeliveryTwice(t *testing.T) {
	s, _ := openStore(t)
	l := sysLayer(t, s, "demo")
	first, second := sysDelivery("evt_1", "app"), sysDelivery("evt_1", "app")
	second.Type = "sync.completed"
	err := sysTx(t, l, func(ctx context.Context, tx pgx.Tx) error {
		return l.sys.enqueue(ctx, tx, l, []store.Delivery{first, second})
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := sysGetDelivery(t, l, "evt_1.app"); d.Type != "sync.completed" {
		t.Fatalf("stored %q", d.Type)
	}
}

// BenchmarkClaimAndSettle is the delivery loop of a host with claims:
// claim a due delivery, record its attempt, release it; two hosts at once
// over one outbox.
func BenchmarkClaimAndSettle(b *testing.B) {
	s, dsn := openStore(b)
	hosts := []*Layer{sysLayer(b, s, "demo"), sysLayer(b, sysHost(b, dsn), "demo")}
	ds := make([]store.Delivery, b.N)
	for i := range ds {
		ds[i] = sysDelivery(fmt.Sprintf("evt_%09d", i), "app")
	}
	for i := 0; i < len(ds); i += 1000 {
		if err := hosts[0].Enqueue(ds[i:min(i+1000, len(ds))]); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.SetParallelism(2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := n.Add(1)
		l, host := hosts[w%2], fmt.Sprint("host-", w)
		for pb.Next() {
			got, err := l.ClaimDeliveries(host, 1, time.Minute)
			if err != nil {
				b.Error(err)
				return
			}
			if len(got) == 0 {
				continue
			}
			id := got[0].ID()
			if _, err := l.ModifyDelivery(id, func(d *store.Delivery) error {
				d.Attempts = append(d.Attempts, store.Attempt{At: time.Now(), Status: 204})
				d.State = store.DeliveryDelivered
				return nil
			}); err != nil {
				b.Error(err)
				return
			}
			if err := l.ReleaseDeliveries(host, id); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// One delivery claimed by hosts at once goes to one of them; once its
// attempt is recorded (due later) and released, nobody can claim it
// before it is due again.
func TestClaimDeliveryOneWinner(t *testing.T) {
	s, dsn := openStore(t)
	hosts := []*Layer{sysLayer(t, s, "demo"), sysLayer(t, sysHost(t, dsn), "demo")}
	const n = 20
	var ds []store.Delivery
	for i := range n {
		ds = append(ds, sysDelivery(fmt.Sprintf("evt_%02d", i), "app"))
	}
	if err := hosts[0].Enqueue(ds); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("evt_%02d.app", i)
		var wins atomic.Int64
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d, ok, err := hosts[w%2].ClaimDelivery(fmt.Sprint("host-", w), id, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					wins.Add(1)
					if d.ID() != id {
						t.Errorf("claimed %s for %s", d.ID(), id)
					}
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%s claimed %d times, want once", id, wins.Load())
		}
	}
	l := hosts[0]
	var holder string
	if err := s.pool.QueryRow(t.Context(), `SELECT claimed_by FROM synclayer_deliveries WHERE event_id = 'evt_00'`).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ModifyDelivery("evt_00.app", func(d *store.Delivery) error {
		d.Attempts = append(d.Attempts, store.Attempt{At: time.Now(), Status: 503})
		d.NextAt = time.Now().Add(time.Hour)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.ReleaseDeliveries(holder, "evt_00.app"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := hosts[1].ClaimDelivery("host-x", "evt_00.app", time.Hour); ok || err != nil {
		t.Fatalf("claimed before its next attempt is due: %v, %v", ok, err)
	}
	if _, ok, err := l.ClaimDelivery("host-x", "evt_nope.app", time.Hour); ok || err != nil {
		t.Fatalf("claimed an unknown delivery: %v, %v", ok, err)
	}
}
