package integration

import (
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
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testSchedule is the retry schedule of these tests (SYNCLAYER_NOTIFY_SCHEDULE):
// SPEC §8's shape, in milliseconds to seconds.
const testSchedule = "20ms,40ms,80ms,160ms,320ms,640ms,1s,2s,4s"

// verifyWebhook checks the Standard Webhooks signature independently of the
// library that signs: HMAC-SHA256, keyed with the base64-decoded part of the
// whsec_ secret, over "id.timestamp.body", as "v1,<base64>".
func verifyWebhook(secret string, h http.Header, body []byte) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("webhook-timestamp %q is not Unix seconds near now", ts)
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
	return fmt.Errorf("no signature matches %q", sigs)
}

// outEvent is an outbound event's body, as far as these tests read it.
type outEvent struct {
	Type          string `json:"type"`
	ID            string `json:"id"`
	Layer         string `json:"layer"`
	Run           string `json:"run"`
	Revision      int64  `json:"revision"`
	ModifiedAfter string `json:"modifiedAfter"`
}

// hit is one request a notifyReceiver answered.
type hit struct {
	At     time.Time
	ID     string
	Event  outEvent
	Status int
	// Gen is the receiver's generation when it answered (tests bump it
	// when they kill the host).
	Gen int
}

// notifyReceiver is an app endpoint: it checks every signature (a bad one
// fails the test) and answers by answer (nil: 200).
type notifyReceiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string

	mu     sync.Mutex
	hits   []hit
	gen    int
	answer func(ev outEvent, seen int, w http.ResponseWriter) int
}

func newNotifyReceiver(t *testing.T) *notifyReceiver {
	b := make([]byte, 32)
	rand.Read(b)
	rc := &notifyReceiver{t: t, secret: "whsec_" + base64.StdEncoding.EncodeToString(b)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verifyWebhook(rc.secret, r.Header, body); err != nil {
			t.Errorf("a delivery with a bad signature: %v\n%s", err, body)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev outEvent
		if err := json.Unmarshal(body, &ev); err != nil || ev.ID != r.Header.Get("webhook-id") || ev.Type != r.Header.Get("X-Synclayer-Event") {
			t.Errorf("body %s does not match headers %v", body, r.Header)
		}
		rc.mu.Lock()
		seen := 0
		for _, h := range rc.hits {
			if h.ID == ev.ID {
				seen++
			}
		}
		answer, gen := rc.answer, rc.gen
		rc.mu.Unlock()
		status := http.StatusOK
		if answer != nil {
			status = answer(ev, seen, w)
		} else {
			w.WriteHeader(status)
		}
		rc.mu.Lock()
		rc.hits = append(rc.hits, hit{At: time.Now(), ID: ev.ID, Event: ev, Status: status, Gen: gen})
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *notifyReceiver) setAnswer(f func(ev outEvent, seen int, w http.ResponseWriter) int) {
	rc.mu.Lock()
	rc.answer = f
	rc.mu.Unlock()
}

func (rc *notifyReceiver) all() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

// acked returns the requests answered 2xx.
func (rc *notifyReceiver) acked() []hit {
	var out []hit
	for _, h := range rc.all() {
		if h.Status/100 == 2 {
			out = append(out, h)
		}
	}
	return out
}

// waitAcked waits for a 2xx answer to an event that matches.
func (rc *notifyReceiver) waitAcked(h *host, what string, match func(outEvent) bool) outEvent {
	rc.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, x := range rc.acked() {
			if match(x.Event) {
				return x.Event
			}
		}
		if time.Now().After(deadline) {
			rc.t.Fatalf("no %s delivered; requests %+v\nhost log:\n%s", what, rc.all(), h.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type deliveryList struct {
	Deliveries []struct {
		ID       string `json:"id"`
		Event    string `json:"event"`
		Endpoint string `json:"endpoint"`
		Type     string `json:"type"`
		State    string `json:"state"`
		Attempts []struct {
			Status    int    `json:"status"`
			LatencyMS int64  `json:"latency_ms"`
			Error     string `json:"error"`
		} `json:"attempts"`
	} `json:"deliveries"`
	Next *string `json:"next"`
}

func notifyConfig(dataDir string, endpoints ...string) string {
	return fmt.Sprintf(`
layer "blog" {
  source "content" {
    plugin = "files"
    config {
      dir = %q
    }
  }
%s
}
`, dataDir, strings.Join(endpoints, "\n"))
}

func notifyBlock(name, url, secret string) string {
	return fmt.Sprintf("  notify %q {\n    url    = %q\n    secret = %q\n  }", name, url, secret)
}

// TestNotifyEndToEnd runs the real host with a notify endpoint: events are
// signed, a 500 is retried with the same webhook-id, every attempt shows
// under deliveries (API and CLI), a manual retry sends the event again, and
// a sync.completed's modifiedAfter reads exactly the records its run
// changed plus later ones.
func TestNotifyEndToEnd(t *testing.T) { onEachStore(t, testNotifyEndToEnd) }

func testNotifyEndToEnd(t *testing.T) {
	t.Setenv("SYNCLAYER_NOTIFY_SCHEDULE", testSchedule)
	rc := newNotifyReceiver(t)
	var failedOnce atomic.Bool
	rc.setAnswer(func(ev outEvent, seen int, w http.ResponseWriter) int {
		if ev.Type == "sync.completed" && failedOnce.CompareAndSwap(false, true) {
			http.Error(w, "not now", http.StatusInternalServerError)
			return 500
		}
		w.WriteHeader(http.StatusNoContent)
		return 204
	})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "data", "Post.json"), `[
  {"id": "p-1", "title": "One"},
  {"id": "p-2", "title": "Two"},
  {"id": "p-3", "title": "Three"}
]`)
	writeFile(t, filepath.Join(dir, "data", "Author.csv"), "id,name\na-1,Ada\n")
	writeFile(t, filepath.Join(dir, "layer.hcl"), notifyConfig(filepath.Join(dir, "data"), notifyBlock("app", rc.srv.URL+"/hooks/synclayer", rc.secret)))
	start := time.Now()
	h := startHost(t, filepath.Join(dir, "layer.hcl"), "")

	isCompleted := func(rev int64) func(outEvent) bool {
		return func(e outEvent) bool { return e.Type == "sync.completed" && e.Revision == rev }
	}
	ev1 := rc.waitAcked(h, "sync.completed of revision 1", isCompleted(1))
	t.Logf("first sync.completed delivered %s after the start", time.Since(start).Round(time.Millisecond))
	var tries []hit
	for _, x := range rc.all() {
		if x.ID == ev1.ID {
			tries = append(tries, x)
		}
	}
	if len(tries) != 2 || tries[0].Status != 500 || tries[1].Status != 204 {
		t.Fatalf("attempts of %s: %+v", ev1.ID, tries)
	}

	// The receiver's 2xx comes before the host records the attempt: wait
	// for the record.
	var dl deliveryList
	for deadline := time.Now().Add(10 * time.Second); ; {
		h.call("GET", "/v1/layers/blog/deliveries?limit=1000", nil, 200, &dl)
		settled := true
		for _, d := range dl.Deliveries {
			settled = settled && (d.Event != ev1.ID || d.State != "pending")
		}
		if settled || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	found := false
	for _, d := range dl.Deliveries {
		if d.Event != ev1.ID {
			continue
		}
		found = true
		if d.State != "delivered" || len(d.Attempts) != 2 || d.Attempts[0].Status != 500 || !strings.Contains(d.Attempts[0].Error, "not now") || d.Attempts[1].Status != 204 {
			t.Fatalf("delivery of %s: %+v", ev1.ID, d)
		}
	}
	if !found {
		t.Fatalf("%s not under deliveries: %+v", ev1.ID, dl)
	}

	// Run 2 changes p-2, p-3 and p-4; run 3 changes p-1.
	writeFile(t, filepath.Join(dir, "data", "Post.json"), `[
  {"id": "p-1", "title": "One"},
  {"id": "p-2", "title": "Two, edited"},
  {"id": "p-4", "title": "Four"}
]`)
	if _, err := h.cli("sync", "blog", "--wait"); err != nil {
		t.Fatal(err)
	}
	ev2 := rc.waitAcked(h, "sync.completed of revision 2", isCompleted(2))
	writeFile(t, filepath.Join(dir, "data", "Post.json"), `[
  {"id": "p-1", "title": "One, edited"},
  {"id": "p-2", "title": "Two, edited"},
  {"id": "p-4", "title": "Four"}
]`)
	if _, err := h.cli("sync", "blog", "--wait"); err != nil {
		t.Fatal(err)
	}
	ev3 := rc.waitAcked(h, "sync.completed of revision 3", isCompleted(3))

	changedSince := func(ev outEvent) map[string]string {
		t.Helper()
		got := map[string]string{}
		for _, r := range h.records("blog", "modified_after="+url.QueryEscape(ev.ModifiedAfter)) {
			got[fmt.Sprint(r["id"])] = r.meta("last_action").(string)
			if lm := r.meta("last_modified_at").(string); lm < ev.ModifiedAfter {
				t.Errorf("record %v modified at %s, before %s", r["id"], lm, ev.ModifiedAfter)
			}
		}
		return got
	}
	for _, tc := range []struct {
		ev   outEvent
		want map[string]string
	}{
		{ev3, map[string]string{"p-1": "UPDATED"}},
		{ev2, map[string]string{"p-1": "UPDATED", "p-2": "UPDATED", "p-3": "DELETED", "p-4": "ADDED"}},
		{ev1, map[string]string{"p-1": "UPDATED", "p-2": "UPDATED", "p-3": "DELETED", "p-4": "ADDED", "a-1": "ADDED"}},
	} {
		if got := changedSince(tc.ev); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("modified_after=%s (revision %d): %v, want %v", tc.ev.ModifiedAfter, tc.ev.Revision, got, tc.want)
		}
	}
	// Exact: the run's own records carry its modifiedAfter to the
	// microsecond, so one microsecond later they are gone.
	for _, r := range h.records("blog", "modified_after="+url.QueryEscape(ev2.ModifiedAfter)+"&filter=added") {
		if r.meta("last_modified_at") != ev2.ModifiedAfter {
			t.Errorf("p-4 last_modified_at %v, want the event's modifiedAfter %s", r.meta("last_modified_at"), ev2.ModifiedAfter)
		}
	}
	ma, err := time.Parse(time.RFC3339Nano, ev3.ModifiedAfter)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.records("blog", "modified_after="+url.QueryEscape(ma.Add(time.Microsecond).Format(time.RFC3339Nano))); len(got) != 0 {
		t.Errorf("records after revision 3's modifiedAfter + 1µs: %v", got)
	}

	// The CLI lists the deliveries; a retry sends the event again, same id.
	out, err := h.cli("deliveries", "blog", "--state", "delivered")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, ev1.ID+".app") || !strings.Contains(out, "sync.completed") || !strings.Contains(out, "delivered") {
		t.Fatalf("synclayer deliveries:\n%s", out)
	}
	if out, err := h.cli("deliveries", "retry", "blog", ev2.ID+".app"); err != nil || !strings.Contains(out, ev2.ID) {
		t.Fatalf("deliveries retry: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n < 2; {
		n = 0
		for _, x := range rc.acked() {
			if x.ID == ev2.ID {
				n++
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the retried event was acknowledged %d times", n)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Every event went out, once each but the retried one.
	h.call("GET", "/v1/layers/blog/deliveries?limit=1000", nil, 200, &dl)
	count := map[string]int{}
	for _, x := range rc.acked() {
		count[x.ID]++
	}
	types := map[string]int{}
	for _, d := range dl.Deliveries {
		types[d.Type]++
		want := 1
		if d.Event == ev2.ID {
			want = 2
		}
		if d.State == "delivered" && count[d.Event] != want {
			t.Errorf("%s (%s) acknowledged %d times, want %d", d.Event, d.Type, count[d.Event], want)
		}
	}
	if types["sync.started"] != 3 || types["sync.completed"] != 3 {
		t.Errorf("deliveries by type %v, want 3 sync.started and 3 sync.completed", types)
	}
}

// TestNotifyRetryAfterAndGone: one endpoint answers 503 with Retry-After:
// 1, the next attempt waits a second; another answers 410, and gets no
// other request: its deliveries stop, it is audited, new events for it
// stop unsent while the first endpoint still gets them.
func TestNotifyRetryAfterAndGone(t *testing.T) {
	t.Setenv("SYNCLAYER_NOTIFY_SCHEDULE", testSchedule)
	slow, gone := newNotifyReceiver(t), newNotifyReceiver(t)
	slow.setAnswer(func(ev outEvent, seen int, w http.ResponseWriter) int {
		if ev.Type == "sync.completed" && seen == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return 503
		}
		w.WriteHeader(http.StatusOK)
		return 200
	})
	gone.setAnswer(func(_ outEvent, _ int, w http.ResponseWriter) int { w.WriteHeader(http.StatusGone); return 410 })
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "data", "Post.json"), `[{"id": "p-1", "title": "One"}]`)
	writeFile(t, filepath.Join(dir, "layer.hcl"), notifyConfig(filepath.Join(dir, "data"),
		notifyBlock("slow", slow.srv.URL, slow.secret), notifyBlock("gone", gone.srv.URL, gone.secret)))
	h := startHost(t, filepath.Join(dir, "layer.hcl"), "")

	ev := slow.waitAcked(h, "sync.completed", func(e outEvent) bool { return e.Type == "sync.completed" })
	var at []time.Time
	for _, x := range slow.all() {
		if x.ID == ev.ID {
			at = append(at, x.At)
		}
	}
	if len(at) != 2 || at[1].Sub(at[0]) < time.Second {
		t.Fatalf("after a Retry-After of 1 s the retry came %v later (attempts %d)", at[len(at)-1].Sub(at[0]), len(at))
	}

	// By now "gone" answered 410 to the startup run's events: to one, or
	// to both if they were in flight together (up to 4 may be).
	stoppedAfter := len(gone.all())
	if stoppedAfter < 1 || stoppedAfter > 2 {
		t.Fatalf("the gone endpoint got %d requests for the 2 events of the first run", stoppedAfter)
	}

	// Another run: its events reach "slow" but not "gone".
	if _, err := h.cli("sync", "blog", "--wait"); err != nil {
		t.Fatal(err)
	}
	slow.waitAcked(h, "sync.completed of revision 2", func(e outEvent) bool { return e.Type == "sync.completed" && e.Revision == 2 })
	var dl deliveryList
	deadline := time.Now().Add(30 * time.Second)
	for {
		h.call("GET", "/v1/layers/blog/deliveries?limit=1000&state=stopped", nil, 200, &dl)
		if len(dl.Deliveries) == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(dl.Deliveries) != 4 {
		t.Fatalf("stopped deliveries %+v, want the 4 events for gone", dl)
	}
	attempted := 0
	for _, d := range dl.Deliveries {
		if d.Endpoint != "gone" {
			t.Fatalf("stopped %+v", d)
		}
		if len(d.Attempts) > 0 {
			attempted++
			if d.Attempts[0].Status != 410 {
				t.Fatalf("attempt %+v", d.Attempts[0])
			}
		}
	}
	if n := len(gone.all()); attempted != stoppedAfter || n != stoppedAfter {
		t.Fatalf("the gone endpoint got %d requests, %d deliveries attempted; want %d, before it stopped", n, attempted, stoppedAfter)
	}
	var audit struct {
		Audit []struct {
			Action  string            `json:"action"`
			Details map[string]string `json:"details"`
		} `json:"audit"`
	}
	h.call("GET", "/v1/audit?layer=blog", nil, 200, &audit)
	stops := 0
	for _, a := range audit.Audit {
		if a.Action == "notify.endpoint_stopped" && a.Details["endpoint"] == "gone" {
			stops++
		}
	}
	if stops != 1 {
		t.Fatalf("audit %+v: want one notify.endpoint_stopped for gone", audit.Audit)
	}
	if !strings.Contains(h.logs(), "410 Gone") {
		t.Fatalf("the host log does not say the endpoint answered 410:\n%s", h.logs())
	}

	// The endpoint moves; a SIGHUP with its new notify block starts
	// delivery to it again.
	moved := newNotifyReceiver(t)
	writeFile(t, filepath.Join(dir, "layer.hcl"), notifyConfig(filepath.Join(dir, "data"),
		notifyBlock("slow", slow.srv.URL, slow.secret), notifyBlock("gone", moved.srv.URL, moved.secret)))
	h.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, h, "reloaded the configuration")
	if _, err := h.cli("sync", "blog", "--wait"); err != nil {
		t.Fatal(err)
	}
	moved.waitAcked(h, "sync.completed of revision 3 at the moved endpoint", func(e outEvent) bool { return e.Type == "sync.completed" && e.Revision == 3 })
	if n := len(gone.all()); n != stoppedAfter {
		t.Fatalf("the old endpoint got %d requests, want %d", n, stoppedAfter)
	}
}

// TestNotifyEventsSurviveKillNine queues events while the endpoint fails,
// kills the host with SIGKILL while it delivers them, restarts it, and
// checks every event id is acknowledged at least once, and more than once
// only across the crash.
func TestNotifyEventsSurviveKillNine(t *testing.T) { onEachStore(t, testNotifyEventsSurviveKillNine) }

func testNotifyEventsSurviveKillNine(t *testing.T) {
	t.Setenv("SYNCLAYER_NOTIFY_SCHEDULE", testSchedule)
	rc := newNotifyReceiver(t)
	rc.setAnswer(func(_ outEvent, _ int, w http.ResponseWriter) int {
		w.WriteHeader(http.StatusServiceUnavailable)
		return 503
	})
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "data", "Post.json"), `[{"id": "p-1", "title": "One"}]`)
	writeFile(t, filepath.Join(dir, "layer.hcl"), notifyConfig(filepath.Join(dir, "data"), notifyBlock("app", rc.srv.URL, rc.secret)))
	h := startHost(t, filepath.Join(dir, "layer.hcl"), t.TempDir())
	h.waitRevision("blog", 1, 30*time.Second)
	for range 10 {
		h.call("PUT", "/v1/layers/blog/pin", map[string]int64{"revision": 1}, 200, nil)
		h.call("DELETE", "/v1/layers/blog/pin", nil, 200, nil)
	}
	const events = 22 // sync.started, sync.completed, 10 × pinned and unpinned
	var dl deliveryList
	deadline := time.Now().Add(30 * time.Second)
	for {
		h.call("GET", "/v1/layers/blog/deliveries?limit=1000", nil, 200, &dl)
		tried := 0
		for _, d := range dl.Deliveries {
			if len(d.Attempts) > 0 {
				tried++
			}
		}
		if len(dl.Deliveries) == events && tried == events {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries, %d tried; want %d", len(dl.Deliveries), tried, events)
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := map[string]bool{}
	for _, d := range dl.Deliveries {
		if d.State != "pending" {
			t.Fatalf("delivery %+v while the endpoint fails", d)
		}
		want[d.Event] = true
	}

	// The endpoint recovers, slowly; the host dies while it delivers.
	rc.setAnswer(func(_ outEvent, _ int, w http.ResponseWriter) int {
		time.Sleep(30 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
		return 200
	})
	for len(rc.acked()) < 8 {
		time.Sleep(2 * time.Millisecond)
	}
	// What the host has recorded as delivered is never sent again.
	h.call("GET", "/v1/layers/blog/deliveries?limit=1000&state=delivered", nil, 200, &dl)
	recorded := map[string]bool{}
	for _, d := range dl.Deliveries {
		recorded[d.Event] = true
	}
	h.kill()
	rc.mu.Lock()
	rc.gen = 1
	rc.mu.Unlock()
	before := len(rc.acked())
	h.start()

	deadline = time.Now().Add(30 * time.Second)
	for {
		got := map[string]bool{}
		for _, x := range rc.acked() {
			got[x.ID] = true
		}
		if len(got) == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart %d of %d events acknowledged\nhost log:\n%s", len(got), len(want), h.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	perGen := map[[2]string]int{}
	total := map[string]int{}
	for _, x := range rc.acked() {
		if !want[x.ID] {
			t.Errorf("an event that was not in the outbox: %+v", x)
		}
		total[x.ID]++
		perGen[[2]string{x.ID, strconv.Itoa(x.Gen)}]++
	}
	if len(recorded) == 0 {
		t.Errorf("nothing recorded as delivered before the kill: the check below checks nothing")
	}
	for id := range recorded {
		if total[id] != 1 {
			t.Errorf("%s was recorded as delivered before the kill, and acknowledged %d times", id, total[id])
		}
	}
	var dups []string
	for k, n := range perGen {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s ×%d in generation %s", k[0], n, k[1]))
		}
	}
	sort.Strings(dups)
	if len(dups) > 0 {
		t.Fatalf("events acknowledged twice without a crash between: %v", dups)
	}
	// The receiver's 2xx comes before the host records the attempt: wait
	// for the records of the last ones.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		h.call("GET", "/v1/layers/blog/deliveries?limit=1000", nil, 200, &dl)
		settled := true
		for _, d := range dl.Deliveries {
			settled = settled && d.State == "delivered"
		}
		if settled || time.Now().After(deadline) {
			break
		}
	}
	for _, d := range dl.Deliveries {
		if d.State != "delivered" {
			t.Errorf("after the restart %s is %s", d.ID, d.State)
		}
	}
	t.Logf("%d events: %d acknowledged before the kill (%d of them recorded), %d requests answered 2xx in all", len(want), before, len(recorded), len(rc.acked()))
}
