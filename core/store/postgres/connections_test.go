package postgres

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

func TestConnectionsPutGet(t *testing.T) {
	s, dsn := openStore(t)
	l := sysLayer(t, s, "demo")
	at := time.Date(2026, 1, 1, 0, 0, 0, 5, time.UTC)
	c := &store.Connection{Source: "crm", ID: "acme", Config: []byte{1, 2, 3}, Metadata: []byte(`{"plan":"gold"}`),
		Tags: map[string]string{"t": "1"}, Every: map[string]string{"contacts": "1h"}, Paused: []string{"deals"},
		State: "active", LastRuns: map[string]string{"contacts": "run_1"}, CreatedAt: at, UpdatedAt: at}
	if err := l.PutConnection(c, true); err != nil {
		t.Fatal(err)
	}
	if err := l.PutConnection(c, true); !errors.Is(err, store.ErrExists) {
		t.Fatalf("creating it again: %v", err)
	}
	other := sysLayer(t, sysHost(t, dsn), "demo")
	got, err := other.GetConnection("crm", "acme")
	if err != nil || fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", *c) {
		t.Fatalf("read back on the other host: %+v %v", got, err)
	}
	c.State, c.Error = "needs_attention", "401"
	if err := l.PutConnection(c, false); err != nil {
		t.Fatal(err)
	}
	if got, _ := other.GetConnection("crm", "acme"); got.State != "needs_attention" || got.Error != "401" {
		t.Fatalf("updated: %+v", got)
	}
	if _, err := other.GetConnection("crm", "nope"); err != store.ErrNotFound {
		t.Fatalf("unknown connection: %v", err)
	}
	if _, err := sysLayer(t, s, "other").GetConnection("crm", "acme"); err != store.ErrNotFound {
		t.Fatalf("another layer's connection: %v", err)
	}
}

// Listings in source then id order (bytes), after an id, stopping when
// told, over more than one page.
func TestConnectionsListing(t *testing.T) {
	s, _ := openStore(t)
	l := sysLayer(t, s, "demo")
	var want []string
	for i := range connectionsPage + 44 {
		id := fmt.Sprintf("c%04d", i)
		if err := l.PutConnection(&store.Connection{Source: "crm", ID: id, State: "active"}, true); err != nil {
			t.Fatal(err)
		}
		want = append(want, "crm/"+id)
	}
	// "Zed" < "alpha" in bytes.
	for _, k := range [][2]string{{"shop", "alpha"}, {"shop", "Zed"}, {"Ads", "x"}} {
		if err := l.PutConnection(&store.Connection{Source: k[0], ID: k[1], State: "active"}, true); err != nil {
			t.Fatal(err)
		}
	}
	list := func(source, after string, stop int) []string {
		t.Helper()
		var out []string
		if err := l.Connections(source, after, func(c *store.Connection) bool {
			out = append(out, c.Source+"/"+c.ID)
			return len(out) != stop
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := list("", "", -1)
	wantAll := append(append([]string{"Ads/x"}, want...), "shop/Zed", "shop/alpha")
	if fmt.Sprint(all) != fmt.Sprint(wantAll) {
		t.Fatalf("every connection: %d of them, first %v, last %v", len(all), all[:3], all[len(all)-3:])
	}
	if got := list("crm", "", -1); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("crm's: %d of them", len(got))
	}
	if got := list("crm", "c0297", -1); fmt.Sprint(got) != fmt.Sprint(want[298:]) {
		t.Fatalf("crm's after c0297: %v", got)
	}
	if got := list("shop", "", 1); fmt.Sprint(got) != "[shop/Zed]" {
		t.Fatalf("stopped after one: %v", got)
	}
	// With every source, after means nothing (as on the embedded driver).
	if got := list("", "c0100", 2); fmt.Sprint(got) != "[Ads/x crm/c0000]" {
		t.Fatalf("every source, after ignored: %v", got)
	}
}

// Hosts creating the same connection at once: one wins, the others are
// told it exists.
func TestConnectionCreateRaceAcrossHosts(t *testing.T) {
	s, dsn := openStore(t)
	hosts := []*Layer{sysLayer(t, s, "demo"), sysLayer(t, sysHost(t, dsn), "demo")}
	var mu sync.Mutex
	created, exists := 0, 0
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := hosts[w%2].PutConnection(&store.Connection{Source: "crm", ID: "acme", State: fmt.Sprint(w)}, true)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.Is(err, store.ErrExists):
				exists++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if created != 1 || exists != 5 {
		t.Fatalf("created %d, told it exists %d; want 1 and 5", created, exists)
	}
}

// A connection's announcement is stored with it; a refused create
// announces nothing.
func TestPutConnectionAnnounces(t *testing.T) {
	s, _ := openStore(t)
	l := sysLayer(t, s, "demo")
	c := &store.Connection{Source: "crm", ID: "acme", State: "active"}
	if err := l.PutConnection(c, true, sysDelivery("evt_1", "app")); err != nil {
		t.Fatal(err)
	}
	if err := l.PutConnection(c, true, sysDelivery("evt_2", "app")); !errors.Is(err, store.ErrExists) {
		t.Fatal(err)
	}
	ds, _, err := l.OutboxChanges(0)
	if err != nil || fmt.Sprint(sysDeliveryIDs(ds)) != "[evt_1.app:pending]" {
		t.Fatalf("announced: %v %v", sysDeliveryIDs(ds), err)
	}
}
