package notify_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	badgerstore "github.com/synclayer/synclayer/core/store/badger"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/notify"
	"github.com/synclayer/synclayer/core/store"
)

// verifySignature checks a delivery by the Standard Webhooks scheme,
// independently of the library that signs: HMAC-SHA256 keyed with the
// base64-decoded part of the whsec_ secret, over id.timestamp.body,
// base64-encoded after "v1,", among the space-separated signatures.
func verifySignature(secret string, h http.Header, body []byte) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not Unix seconds", ts)
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("webhook-timestamp %s is %s away from now", ts, d)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("no signature matches: got %q", sigs)
}

func newSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// received is one request an endpoint got.
type received struct {
	At     time.Time
	Header http.Header
	Body   []byte
	// Seen is how many requests with this webhook-id came before.
	Seen int
	// SigErr is the signature check's verdict (nil: valid).
	SigErr error
}

func (r received) ID() string { return r.Header.Get("webhook-id") }

// receiver is a test endpoint. Its answer comes from reply (nil: 204);
// it records every request and checks its signature.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string
	reply  atomic.Pointer[func(r received, w http.ResponseWriter)]

	mu       sync.Mutex
	reqs     []received
	inflight int
	maxIn    int
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{t: t, secret: newSecret(t)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r := received{At: time.Now(), Header: req.Header.Clone(), Body: body, SigErr: verifySignature(rc.secret, req.Header, body)}
		rc.mu.Lock()
		for _, p := range rc.reqs {
			if p.ID() == r.ID() {
				r.Seen++
			}
		}
		rc.reqs = append(rc.reqs, r)
		rc.inflight++
		rc.maxIn = max(rc.maxIn, rc.inflight)
		rc.mu.Unlock()
		defer func() { rc.mu.Lock(); rc.inflight--; rc.mu.Unlock() }()
		if f := rc.reply.Load(); f != nil {
			(*f)(r, w)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) answer(f func(r received, w http.ResponseWriter)) { rc.reply.Store(&f) }

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

func (rc *receiver) notify(name string) *config.Notify {
	return &config.Notify{Name: name, URL: rc.srv.URL + "/hooks/" + name, Secret: rc.secret}
}

// fixture is a store with layer "cat" and a Notifier over it.
type fixture struct {
	t    *testing.T
	st   store.Store
	db   store.Layer
	cfg  *config.Config
	opts notify.Options
	n    *notify.Notifier
	seq  atomic.Int64
}

// fast is a schedule for tests: three retries, milliseconds apart.
var fast = []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}

func newFixture(t *testing.T, opts notify.Options, endpoints ...*config.Notify) *fixture {
	t.Helper()
	st, err := badgerstore.Open(badgerstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db, err := st.Layer("cat")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Schedule == nil {
		opts.Schedule = fast
	}
	if opts.Rand == nil {
		opts.Rand = func() float64 { return 0.5 } // no jitter
	}
	opts.Store = st
	opts.Config = &config.Config{Layers: []*config.Layer{{Name: "cat", Notify: endpoints}}}
	return &fixture{t: t, st: st, db: db, cfg: opts.Config, opts: opts}
}

// start starts a Notifier (again, after stop: a restart).
func (f *fixture) start() {
	f.t.Helper()
	f.opts.Config = f.cfg
	f.n = notify.New(f.opts)
	if err := f.n.Start(); err != nil {
		f.t.Fatal(err)
	}
	n := f.n
	f.t.Cleanup(func() { n.Stop(context.Background()) })
}

func (f *fixture) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f.n.Stop(ctx)
}

// enqueue puts an event of type typ in the outbox for the endpoints (all
// configured ones when none are named) and returns its id.
func (f *fixture) enqueue(typ string, endpoints ...string) string {
	f.t.Helper()
	id := fmt.Sprintf("evt_%012x%016x", time.Now().UnixMilli(), f.seq.Add(1))
	body, _ := json.Marshal(map[string]any{"type": typ, "id": id, "layer": "cat", "run": "run_1", "trigger": "manual",
		"error": "connector said: <boom> & more"})
	if len(endpoints) == 0 {
		for _, n := range f.cfg.Layers[0].Notify {
			endpoints = append(endpoints, n.Name)
		}
	}
	var ds []store.Delivery
	for _, e := range endpoints {
		ds = append(ds, store.Delivery{EventID: id, Endpoint: e, Type: typ, Body: body})
	}
	if err := f.db.Enqueue(ds); err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) get(id string) *store.Delivery {
	f.t.Helper()
	d, err := f.db.GetDelivery(id)
	if err != nil {
		f.t.Fatalf("delivery %s: %v", id, err)
	}
	return d
}

// waitState waits until a delivery is in state.
func (f *fixture) waitState(id, state string) *store.Delivery {
	f.t.Helper()
	var d *store.Delivery
	waitFor(f.t, "delivery "+id+" "+state, func() bool { d = f.get(id); return d.State == state })
	if d.State != state {
		f.t.Fatalf("delivery %s is %s, want %s: %+v", id, d.State, state, d)
	}
	return d
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("timed out waiting for %s", what)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func statuses(d *store.Delivery) string {
	var s []string
	for _, a := range d.Attempts {
		s = append(s, strconv.Itoa(a.Status))
	}
	return strings.Join(s, ",")
}

func TestDeliveryIsSignedByStandardWebhooks(t *testing.T) {
	rc := newReceiver(t)
	f := newFixture(t, notify.Options{}, rc.notify("app"))
	f.start()
	id := f.enqueue("sync.completed")
	d := f.waitState(id+".app", store.DeliveryDelivered)

	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.SigErr != nil {
		t.Fatalf("signature: %v", r.SigErr)
	}
	if err := verifySignature(newSecret(t), r.Header, r.Body); err == nil {
		t.Fatal("the signature also verifies with another secret: the check is broken")
	}
	if r.ID() != id || r.Header.Get("X-Synclayer-Event") != "sync.completed" || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", r.Header)
	}
	if string(r.Body) != string(d.Body) {
		t.Fatalf("body %s, want the event %s", r.Body, d.Body)
	}
	if len(d.Attempts) != 1 || d.Attempts[0].Status != 204 || d.Attempts[0].Error != "" || d.Attempts[0].At.IsZero() || !d.NextAt.IsZero() {
		t.Fatalf("delivery %+v", d)
	}
}

func TestServerErrorIsRetriedWithTheSameID(t *testing.T) {
	rc := newReceiver(t)
	rc.answer(func(r received, w http.ResponseWriter) {
		if r.Seen < 2 {
			http.Error(w, "database down\nsorry", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	f := newFixture(t, notify.Options{}, rc.notify("app"))
	f.start()
	id := f.enqueue("sync.failed")
	d := f.waitState(id+".app", store.DeliveryDelivered)
	if statuses(d) != "500,500,200" {
		t.Fatalf("attempts %s, want 500,500,200", statuses(d))
	}
	if e := d.Attempts[0].Error; !strings.Contains(e, "500") || !strings.Contains(e, "database down sorry") {
		t.Fatalf("attempt error %q", e)
	}
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if r.ID() != id || r.SigErr != nil || string(r.Body) != string(reqs[0].Body) {
			t.Fatalf("request %d: id %q, signature %v", i, r.ID(), r.SigErr)
		}
	}
	// The waits follow the schedule (no jitter in this test).
	for i := 1; i < 3; i++ {
		if gap := reqs[i].At.Sub(reqs[i-1].At); gap < fast[i-1] {
			t.Fatalf("retry %d came %s after the attempt before, want at least %s", i, gap, fast[i-1])
		}
	}
}

func TestScheduleRunsOutAndTheDeliveryFails(t *testing.T) {
	rc := newReceiver(t)
	rc.answer(func(_ received, w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) })
	f := newFixture(t, notify.Options{}, rc.notify("app"))
	f.start()
	id := f.enqueue("sync.started")
	d := f.waitState(id+".app", store.DeliveryFailed)
	// One attempt, then one per step of the schedule; the failed state is
	// written after the last one, so there can be no other.
	if statuses(d) != "503,503,503,503" || len(rc.requests()) != 4 {
		t.Fatalf("attempts %s, %d requests", statuses(d), len(rc.requests()))
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	rc := newReceiver(t)
	rc.answer(func(r received, w http.ResponseWriter) {
		if r.Seen == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	f := newFixture(t, notify.Options{Schedule: []time.Duration{10 * time.Millisecond, time.Hour}}, rc.notify("app"))
	f.start()
	id := f.enqueue("sync.completed")
	f.waitState(id+".app", store.DeliveryDelivered)
	reqs := rc.requests()
	// Retry-After (1 s) replaces the first step of the schedule (10 ms).
	if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second || gap > 5*time.Second {
		t.Fatalf("the retry came %s after a Retry-After of 1 s", gap)
	}
}

func TestTimeoutIsAFailedAttempt(t *testing.T) {
	rc := newReceiver(t)
	release := make(chan struct{})
	defer close(release)
	rc.answer(func(r received, w http.ResponseWriter) {
		if r.Seen == 0 {
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	f := newFixture(t, notify.Options{Timeout: 100 * time.Millisecond}, rc.notify("app"))
	f.start()
	id := f.enqueue("sync.completed")
	d := f.waitState(id+".app", store.DeliveryDelivered)
	if len(d.Attempts) != 2 || d.Attempts[0].Error != "no answer within 100ms" || d.Attempts[0].Status != 0 || d.Attempts[0].LatencyMS < 100 {
		t.Fatalf("attempts %+v", d.Attempts)
	}
}

func TestGoneStopsTheEndpoint(t *testing.T) {
	gone, ok := newReceiver(t), newReceiver(t)
	gone.answer(func(_ received, w http.ResponseWriter) { w.WriteHeader(http.StatusGone) })
	f := newFixture(t, notify.Options{Concurrency: 1}, gone.notify("app"), ok.notify("ops"))
	// Queued before the start: the first goes to "app" first.
	e1, e2, e3 := f.enqueue("sync.started"), f.enqueue("sync.completed"), f.enqueue("sync.failed")
	f.start()
	d := f.waitState(e1+".app", store.DeliveryStopped)
	if statuses(d) != "410" || !strings.Contains(d.Attempts[0].Error, "410") {
		t.Fatalf("attempts %+v", d.Attempts)
	}
	for _, e := range []string{e2, e3} {
		if d := f.waitState(e+".app", store.DeliveryStopped); len(d.Attempts) != 0 {
			t.Fatalf("%s was sent to a stopped endpoint: %+v", e, d.Attempts)
		}
		f.waitState(e+".ops", store.DeliveryDelivered)
	}
	// A new event for the stopped endpoint is stopped too, unsent; the
	// other endpoint gets it.
	e4 := f.enqueue("sync.completed")
	f.waitState(e4+".ops", store.DeliveryDelivered)
	if d := f.waitState(e4+".app", store.DeliveryStopped); len(d.Attempts) != 0 {
		t.Fatalf("new event sent to a stopped endpoint: %+v", d.Attempts)
	}
	if n := len(gone.requests()); n != 1 {
		t.Fatalf("the stopped endpoint got %d requests, want 1", n)
	}
	audit, err := f.db.Audit(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, a := range audit {
		if a.Action == notify.AuditEndpointStopped {
			found = a.Details["endpoint"] == "app" && a.Details["event"] == e1 && a.Details["status"] == "410"
		}
	}
	if !found {
		t.Fatalf("no audit entry %s for app: %+v", notify.AuditEndpointStopped, audit)
	}

	// The same configuration again changes nothing.
	f.n.Reload(&config.Config{Layers: []*config.Layer{{Name: "cat", Notify: []*config.Notify{gone.notify("app"), ok.notify("ops")}}}})
	e5 := f.enqueue("sync.completed")
	f.waitState(e5+".ops", store.DeliveryDelivered)
	f.waitState(e5+".app", store.DeliveryStopped)

	// A changed notify block starts the endpoint again.
	moved := newReceiver(t)
	app := moved.notify("app")
	f.n.Reload(&config.Config{Layers: []*config.Layer{{Name: "cat", Notify: []*config.Notify{app, ok.notify("ops")}}}})
	e6 := f.enqueue("sync.completed")
	f.waitState(e6+".app", store.DeliveryDelivered)
	if n := len(gone.requests()); n != 1 {
		t.Fatalf("the old endpoint got %d requests, want 1", n)
	}
}

func TestManualRetryStartsAStoppedEndpointAgain(t *testing.T) {
	rc := newReceiver(t)
	rc.answer(func(r received, w http.ResponseWriter) {
		if len(rc.requests()) == 1 {
			w.WriteHeader(http.StatusGone)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	f := newFixture(t, notify.Options{Concurrency: 1}, rc.notify("app"))
	e1, e2 := f.enqueue("sync.started"), f.enqueue("sync.completed")
	f.start()
	f.waitState(e1+".app", store.DeliveryStopped)
	f.waitState(e2+".app", store.DeliveryStopped)
	// Retrying one that was never sent (stopped with its endpoint).
	if _, err := f.db.RedeliverDelivery(e2 + ".app"); err != nil {
		t.Fatal(err)
	}
	f.waitState(e2+".app", store.DeliveryDelivered)
	e3 := f.enqueue("sync.completed")
	f.waitState(e3+".app", store.DeliveryDelivered)
	// And one that was: it goes with the same id.
	if _, err := f.db.RedeliverDelivery(e1 + ".app"); err != nil {
		t.Fatal(err)
	}
	d := f.waitState(e1+".app", store.DeliveryDelivered)
	if statuses(d) != "410,200" {
		t.Fatalf("attempts %s", statuses(d))
	}
	reqs := rc.requests()
	if reqs[0].ID() != e1 || reqs[len(reqs)-1].ID() != e1 {
		t.Fatalf("requests %v", reqs)
	}
}

func TestRedeliveryOfADeliveredEvent(t *testing.T) {
	rc := newReceiver(t)
	f := newFixture(t, notify.Options{}, rc.notify("app"))
	f.start()
	id := f.enqueue("sync.completed")
	f.waitState(id+".app", store.DeliveryDelivered)
	if _, err := f.db.RedeliverDelivery(id + ".app"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a second attempt", func() bool { return len(f.get(id+".app").Attempts) == 2 })
	d := f.waitState(id+".app", store.DeliveryDelivered)
	reqs := rc.requests()
	if len(reqs) != 2 || reqs[1].ID() != id || reqs[1].Seen != 1 || reqs[1].SigErr != nil || statuses(d) != "204,204" {
		t.Fatalf("requests %+v, attempts %s", reqs, statuses(d))
	}
}

func TestConcurrencyIsBoundedPerEndpointAndOldestGoFirst(t *testing.T) {
	a, b := newReceiver(t), newReceiver(t)
	release := make(chan struct{})
	hold := func(_ received, w http.ResponseWriter) {
		<-release
		w.WriteHeader(http.StatusOK)
	}
	a.answer(hold)
	b.answer(hold)
	f := newFixture(t, notify.Options{}, a.notify("a"), b.notify("b"))
	var ids []string
	for range 10 {
		ids = append(ids, f.enqueue("sync.completed"))
	}
	f.start()
	waitFor(t, "4 requests in flight at each endpoint", func() bool {
		return len(a.requests()) == notify.DefaultConcurrency && len(b.requests()) == notify.DefaultConcurrency
	})
	// Nothing more starts while 4 are in flight: give it the time of many
	// loop rounds.
	time.Sleep(50 * time.Millisecond)
	if n := len(a.requests()); n != notify.DefaultConcurrency {
		t.Fatalf("%d requests in flight, want %d", n, notify.DefaultConcurrency)
	}
	got := map[string]bool{}
	for _, r := range a.requests() {
		got[r.ID()] = true
	}
	for _, id := range ids[:notify.DefaultConcurrency] {
		if !got[id] {
			t.Fatalf("the oldest events went not first: in flight %v, want %v", got, ids[:4])
		}
	}
	close(release)
	for _, id := range ids {
		f.waitState(id+".a", store.DeliveryDelivered)
		f.waitState(id+".b", store.DeliveryDelivered)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.maxIn != notify.DefaultConcurrency || len(a.reqs) != 10 {
		t.Fatalf("at most %d in flight, %d requests", a.maxIn, len(a.reqs))
	}
}

// TestRestartDeliversWhatWasQueued stops the notifier with an attempt in
// flight: a graceful stop waits for it and records it (no duplicate); a
// stop that runs out of time cuts it, and the next start sends it again.
func TestRestartDeliversWhatWasQueued(t *testing.T) {
	rc := newReceiver(t)
	arrived := make(chan string, 10)
	release := make(chan struct{})
	rc.answer(func(r received, w http.ResponseWriter) {
		arrived <- r.ID()
		if r.Seen == 0 {
			<-release
		}
		w.WriteHeader(http.StatusOK)
	})
	f := newFixture(t, notify.Options{Concurrency: 1}, rc.notify("app"))
	e1, e2 := f.enqueue("sync.started"), f.enqueue("sync.completed")
	f.start()
	if got := <-arrived; got != e1 {
		t.Fatalf("first request for %s, want %s", got, e1)
	}
	stopped := make(chan struct{})
	go func() { f.stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned with an attempt in flight")
	case <-time.After(50 * time.Millisecond):
	}
	release <- struct{}{}
	<-stopped
	if d := f.get(e1 + ".app"); d.State != store.DeliveryDelivered {
		t.Fatalf("the attempt in flight at Stop is %s", d.State)
	}
	if d := f.get(e2 + ".app"); d.State != store.DeliveryPending || len(d.Attempts) != 0 {
		t.Fatalf("an attempt started after Stop: %+v", d)
	}

	// Restart; this time the stop runs out of time.
	f.start()
	if got := <-arrived; got != e2 {
		t.Fatalf("after the restart, a request for %s, want %s", got, e2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	f.n.Stop(ctx)
	cancel()
	if d := f.get(e2 + ".app"); d.State != store.DeliveryPending || len(d.Attempts) != 0 {
		t.Fatalf("a cut attempt was recorded: %+v", d)
	}
	f.start()
	f.waitState(e2+".app", store.DeliveryDelivered)
	close(release)
	if n := len(rc.requests()); n != 3 {
		t.Fatalf("%d requests, want 3 (e1 once, e2 cut and again)", n)
	}
}

func TestSlackFormat(t *testing.T) {
	rc := newReceiver(t)
	ops := &config.Notify{Name: "ops", URL: rc.srv.URL + "/services/T000/B000/XXXX", Format: notify.FormatSlack}
	f := newFixture(t, notify.Options{}, ops)
	f.start()
	id := f.enqueue("sync.failed")
	f.waitState(id+".ops", store.DeliveryDelivered)
	r := rc.requests()[0]
	if r.Header.Get("webhook-signature") != "" || r.Header.Get("webhook-id") != "" {
		t.Fatalf("a Slack message is signed: %v", r.Header)
	}
	var msg struct {
		Text   string           `json:"text"`
		Blocks []map[string]any `json:"blocks"`
	}
	if err := json.Unmarshal(r.Body, &msg); err != nil {
		t.Fatalf("not JSON: %s", r.Body)
	}
	if !strings.Contains(msg.Text, "Sync failed in layer cat") || !strings.Contains(msg.Text, "connector said: &lt;boom&gt; &amp; more") {
		t.Fatalf("text %q", msg.Text)
	}
	if len(msg.Blocks) < 3 || msg.Blocks[0]["type"] != "section" || !strings.Contains(string(r.Body), "run_1") {
		t.Fatalf("blocks %s", r.Body)
	}
}

func TestErrorsNeverShowTheURL(t *testing.T) {
	// A closed port: connection refused. Slack URLs are credentials.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/services/T000/B000/secret-part"
	srv.Close()
	ops := &config.Notify{Name: "ops", URL: url, Format: notify.FormatSlack}
	f := newFixture(t, notify.Options{Schedule: []time.Duration{}}, ops)
	f.start()
	id := f.enqueue("sync.failed")
	d := f.waitState(id+".ops", store.DeliveryFailed)
	if e := d.Attempts[0].Error; e == "" || strings.Contains(e, "secret-part") {
		t.Fatalf("attempt error %q", e)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	rc := newReceiver(t)
	rc.answer(func(r received, w http.ResponseWriter) {
		if strings.HasSuffix(r.Header.Get("X-Test-Path"), "") && r.Seen == 0 {
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	f := newFixture(t, notify.Options{}, rc.notify("app"))
	f.start()
	id := f.enqueue("sync.completed")
	d := f.waitState(id+".app", store.DeliveryDelivered)
	if statuses(d) != "302,200" || !strings.Contains(d.Attempts[0].Error, "redirects are not followed") {
		t.Fatalf("attempts %+v", d.Attempts)
	}
}

func TestReloadAddsEndpointsAndLayers(t *testing.T) {
	rc := newReceiver(t)
	f := newFixture(t, notify.Options{}, rc.notify("app"))
	f.start()
	other, err := f.st.Layer("other")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Layers: []*config.Layer{
		{Name: "cat", Notify: []*config.Notify{rc.notify("app"), rc.notify("new")}},
		{Name: "other", Notify: []*config.Notify{rc.notify("app")}},
	}}
	f.n.Reload(cfg)
	f.cfg = cfg
	id := f.enqueue("sync.completed", "app", "new")
	f.waitState(id+".new", store.DeliveryDelivered)
	f.waitState(id+".app", store.DeliveryDelivered)
	if err := other.Enqueue([]store.Delivery{{EventID: "evt_other", Endpoint: "app", Type: "sync.started", Body: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new layer's event", func() bool {
		d, err := other.GetDelivery("evt_other.app")
		return err == nil && d.State == store.DeliveryDelivered
	})
	// An endpoint taken out of the configuration gets nothing more; its
	// deliveries wait.
	f.n.Reload(&config.Config{Layers: []*config.Layer{{Name: "cat", Notify: []*config.Notify{rc.notify("app")}}}})
	id = f.enqueue("sync.completed", "app", "new")
	f.waitState(id+".app", store.DeliveryDelivered)
	if d := f.get(id + ".new"); d.State != store.DeliveryPending || len(d.Attempts) != 0 {
		t.Fatalf("delivered to a removed endpoint: %+v", d)
	}
}

func TestSettledDeliveriesArePruned(t *testing.T) {
	rc := newReceiver(t)
	f := newFixture(t, notify.Options{Retention: time.Hour}, rc.notify("app"))
	old := time.Now().Add(-2 * time.Hour)
	if err := f.db.Enqueue([]store.Delivery{
		{EventID: "evt_old", Endpoint: "app", Type: "sync.started", Body: []byte(`{}`), Created: old, State: store.DeliveryDelivered,
			Attempts: []store.Attempt{{At: old, Status: 200}}},
	}); err != nil {
		t.Fatal(err)
	}
	f.start()
	waitFor(t, "the old delivery pruned", func() bool {
		_, err := f.db.GetDelivery("evt_old.app")
		return errors.Is(err, store.ErrNotFound)
	})
}
