package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// deliveriesFixture is the API fixture with two notify endpoints: "app"
// takes every event, "ops" (Slack) only failures. No notifier runs, so
// the startup run's sync.started and sync.completed wait for "app".
func deliveriesFixture(t *testing.T) *fixture {
	return newFixture(t, fixtureOpts{token: "admin-token-2", layerExtra: `
  notify "app" {
    url    = "http://127.0.0.1:9/hooks"
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
  }
  notify "ops" {
    url    = "http://127.0.0.1:9/services/T/B/X"
    format = "slack"
    events = ["sync.failed"]
  }`})
}

type deliveryJSON struct {
	ID       string     `json:"id"`
	Event    string     `json:"event"`
	Endpoint string     `json:"endpoint"`
	Type     string     `json:"type"`
	State    string     `json:"state"`
	Created  time.Time  `json:"created_at"`
	NextAt   *time.Time `json:"next_attempt_at"`
	Attempts []struct {
		At        time.Time `json:"at"`
		Status    int       `json:"status"`
		LatencyMS int64     `json:"latency_ms"`
		Error     string    `json:"error"`
	} `json:"attempts"`
	Payload map[string]any `json:"payload"`
}

type deliveriesPage struct {
	Deliveries []deliveryJSON `json:"deliveries"`
	Next       *string        `json:"next"`
}

func (f *fixture) deliveries(query string) deliveriesPage {
	f.t.Helper()
	var p deliveriesPage
	b := f.do("GET", "/v1/layers/cat/deliveries"+query, "", 200, &p)
	if p.Deliveries == nil {
		f.t.Fatalf("deliveries is not a list: %s", b)
	}
	return p
}

func TestDeliveriesListsEventsAndAttempts(t *testing.T) {
	f := deliveriesFixture(t)
	all := f.deliveries("")
	types := map[string]deliveryJSON{}
	for _, d := range all.Deliveries {
		types[d.Type] = d
		if d.Endpoint != "app" || d.ID != d.Event+".app" || !strings.HasPrefix(d.Event, "evt_") {
			t.Fatalf("delivery %+v", d)
		}
		if d.State != "pending" || d.NextAt == nil || len(d.Attempts) != 0 || d.Created.IsZero() {
			t.Fatalf("a fresh delivery %+v", d)
		}
		if d.Payload["type"] != d.Type || d.Payload["id"] != d.Event || d.Payload["layer"] != "cat" {
			t.Fatalf("payload %v", d.Payload)
		}
	}
	if len(all.Deliveries) != 2 || types["sync.started"].ID == "" || types["sync.completed"].ID == "" || all.Next != nil {
		t.Fatalf("deliveries %+v", all)
	}

	// Pages follow `next`, without overlap, until it is null.
	p1 := f.deliveries("?limit=1")
	if len(p1.Deliveries) != 1 || p1.Next == nil || *p1.Next != p1.Deliveries[0].ID || p1.Deliveries[0].ID != all.Deliveries[0].ID {
		t.Fatalf("page 1 %+v", p1)
	}
	p2 := f.deliveries("?limit=1&after=" + *p1.Next)
	if len(p2.Deliveries) != 1 || p2.Deliveries[0].ID != all.Deliveries[1].ID || p2.Next == nil {
		t.Fatalf("page 2 %+v", p2)
	}
	if p3 := f.deliveries("?limit=1&after=" + *p2.Next); len(p3.Deliveries) != 0 || p3.Next != nil {
		t.Fatalf("page 3 %+v", p3)
	}

	// Attempts as a delivery worker records them.
	db := f.db()
	d, err := db.GetDelivery(types["sync.completed"].ID)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	d.Attempts = []store.Attempt{{At: at, Status: 500, LatencyMS: 12, Error: "the endpoint answered 500 Internal Server Error"}, {At: at.Add(5 * time.Second), Status: 204, LatencyMS: 3}}
	d.State, d.NextAt = store.DeliveryDelivered, time.Time{}
	if err := db.UpdateDelivery(d); err != nil {
		t.Fatal(err)
	}
	got := f.deliveries("?state=delivered")
	if len(got.Deliveries) != 1 {
		t.Fatalf("state=delivered: %+v", got)
	}
	g := got.Deliveries[0]
	if g.ID != d.ID() || g.State != "delivered" || g.NextAt != nil || len(g.Attempts) != 2 ||
		!g.Attempts[0].At.Equal(at) || g.Attempts[0].Status != 500 || g.Attempts[0].LatencyMS != 12 || g.Attempts[0].Error == "" ||
		g.Attempts[1].Status != 204 || g.Attempts[1].Error != "" {
		t.Fatalf("delivered %+v", g)
	}
	if p := f.deliveries("?state=pending"); len(p.Deliveries) != 1 || p.Deliveries[0].Type != "sync.started" {
		t.Fatalf("state=pending: %+v", p)
	}
	if p := f.deliveries("?state=failed,stopped"); len(p.Deliveries) != 0 {
		t.Fatalf("state=failed,stopped: %+v", p)
	}
	if p := f.deliveries("?state=Pending,delivered&limit=1000"); len(p.Deliveries) != 2 {
		t.Fatalf("state=pending,delivered: %+v", p)
	}

	f.fail("GET", "/v1/layers/cat/deliveries?state=gone", "", 400, "bad_state")
	f.fail("GET", "/v1/layers/cat/deliveries?limit=0", "", 400, "bad_limit")
	f.fail("GET", "/v1/layers/cat/deliveries?limit=1001", "", 400, "bad_limit")
	f.fail("GET", "/v1/layers/nope/deliveries", "", 404, "not_found")
}

// TestDeliveriesFilterAcrossPages has more deliveries than one scan: a
// state filter still fills its page and follows on.
func TestDeliveriesFilterAcrossPages(t *testing.T) {
	f := deliveriesFixture(t)
	db := f.db()
	var ds []store.Delivery
	for i := range 250 {
		st := store.DeliveryDelivered
		if i%50 == 49 {
			st = store.DeliveryFailed
		}
		ds = append(ds, store.Delivery{EventID: fmt.Sprintf("evt_zz%04d", i), Endpoint: "app", Type: "sync.started", Body: []byte(`{}`), State: st})
	}
	if err := db.Enqueue(ds); err != nil {
		t.Fatal(err)
	}
	var ids []string
	q := "?state=failed&limit=2"
	for {
		p := f.deliveries(q)
		for _, d := range p.Deliveries {
			if d.State != "failed" {
				t.Fatalf("state=failed gave %+v", d)
			}
			ids = append(ids, d.ID)
		}
		if p.Next == nil {
			break
		}
		q = "?state=failed&limit=2&after=" + *p.Next
	}
	if fmt.Sprint(ids) != "[evt_zz0049.app evt_zz0099.app evt_zz0149.app evt_zz0199.app evt_zz0249.app]" {
		t.Fatalf("failed deliveries %v", ids)
	}
}

func TestRetryDelivery(t *testing.T) {
	f := deliveriesFixture(t)
	db := f.db()
	first := f.deliveries("?limit=1").Deliveries[0]
	d, err := db.GetDelivery(first.ID)
	if err != nil {
		t.Fatal(err)
	}
	d.State, d.NextAt = store.DeliveryFailed, time.Time{}
	d.Attempts = []store.Attempt{{At: time.Now(), Status: 503}}
	if err := db.UpdateDelivery(d); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	var out struct {
		Delivery deliveryJSON `json:"delivery"`
	}
	f.do("POST", "/v1/layers/cat/deliveries/"+first.ID+"/retry", "", 202, &out)
	if out.Delivery.ID != first.ID || out.Delivery.State != "pending" || out.Delivery.NextAt == nil || out.Delivery.NextAt.Before(before.Add(-time.Second)) || len(out.Delivery.Attempts) != 1 {
		t.Fatalf("retried %+v", out.Delivery)
	}
	if got, err := db.GetDelivery(first.ID); err != nil || got.State != store.DeliveryPending {
		t.Fatalf("stored %+v, %v", got, err)
	}
	var audit struct {
		Audit []store.AuditEntry `json:"audit"`
	}
	f.do("GET", "/v1/audit?layer=cat", "", 200, &audit)
	found := false
	for _, a := range audit.Audit {
		found = found || (a.Action == "delivery.retried" && a.Details["delivery"] == first.ID && a.Details["endpoint"] == "app")
	}
	if !found {
		t.Fatalf("no delivery.retried audit entry: %+v", audit.Audit)
	}
	f.fail("POST", "/v1/layers/cat/deliveries/evt_nope.app/retry", "", 404, "not_found")
	f.fail("POST", "/v1/layers/cat/deliveries/nodot/retry", "", 404, "not_found")
	f.fail("POST", "/v1/layers/nope/deliveries/"+first.ID+"/retry", "", 404, "not_found")

	// Both routes need the admin token.
	f.token = ""
	for _, r := range [][2]string{{"GET", "/v1/layers/cat/deliveries"}, {"POST", "/v1/layers/cat/deliveries/" + first.ID + "/retry"}} {
		if status, _, body := f.request(r[0], r[1], nil, nil); status != 401 {
			t.Errorf("%s %s without a token: %d %s", r[0], r[1], status, body)
		}
	}
	var check json.RawMessage
	f.token = "admin-token-2"
	f.do("GET", "/v1/layers/cat/deliveries", "", 200, &check)
}
