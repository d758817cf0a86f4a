package integration

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitRecords polls a records query until check accepts the answer.
func (h *host) waitRecords(layer, query string, timeout time.Duration, check func([]record) bool) []record {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := h.records(layer, query)
		if check(got) {
			return got
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("records?%s never matched; last answer %d records\n%s", query, len(got), h.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// One signed webhook of 16,000 changes (about 1 MiB, more than one Badger
// transaction holds) is published as one revision, and the webhook after
// it is published too: it used to fail with "Txn is too big" forever and
// block every later webhook of the layer.
func TestBigWebhookDoesNotStallTheInbox(t *testing.T) {
	api, srv := newRestAPI(t, 2)
	_ = api
	dir := t.TempDir()
	cfg := filepath.Join(dir, "layer.hcl")
	writeFile(t, cfg, restLayer(srv.URL))
	h := startHost(t, cfg, t.TempDir())
	h.waitRevision("blog", 1, 30*time.Second)
	url := h.url("/hooks/sources/blog/api")
	sign := func(body string) map[string]string {
		mac := hmac.New(sha256.New, []byte("whsec-integration"))
		mac.Write([]byte(body))
		return map[string]string{"X-Signature-256": "sha256=" + hex.EncodeToString(mac.Sum(nil))}
	}
	var b strings.Builder
	b.WriteByte('[')
	const n = 16000
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"model":"Post","action":"upsert","record":{"id":"b%05d"}}`, i)
	}
	b.WriteByte(']')
	big := b.String()
	if code, resp := post(t, url, sign(big), big); code != 202 {
		t.Fatalf("big webhook (%d bytes): %d %s", len(big), code, resp)
	}
	small := `{"model":"Post","action":"upsert","record":{"id":"after","title":"later"}}`
	if code, resp := post(t, url, sign(small), small); code != 202 {
		t.Fatalf("small webhook: %d %s", code, resp)
	}
	h.waitRecords("blog", "model=Post&ids=after,b15999", 60*time.Second, func(r []record) bool { return len(r) == 2 })
	var evs struct {
		Events []struct{ Type, Message string } `json:"events"`
	}
	h.call("GET", "/v1/layers/blog/events?limit=1000", nil, 200, &evs)
	for _, e := range evs.Events {
		if e.Type == "webhook.failed" {
			t.Fatalf("a webhook failed: %s", e.Message)
		}
	}
}

// A payload webhook whose handling fails for a passing reason (the
// upstream answers 503) is retried, not dropped, and later webhooks wait
// for it (their order matters); one whose changes can never be published
// is set aside at once with an event, and does not block the queue.
func TestWebhookFailuresRetriedOrSetAside(t *testing.T) {
	onEachStore(t, testWebhookFailuresRetriedOrSetAside)
}

func testWebhookFailuresRetriedOrSetAside(t *testing.T) {
	dir := t.TempDir()
	failFile := filepath.Join(dir, "fail")
	writeFile(t, failFile, "3") // as often as a permanent error is tried: it is marked transient, so it goes on
	cfg := filepath.Join(dir, "layer.hcl")
	writeFile(t, cfg, hookLayer(hookPlugin(t), fmt.Sprintf(`    config {
      token     = "tok"
      fail_file = %q
    }`, failFile)))
	h := startHost(t, cfg, t.TempDir())
	h.waitRevision("rt", 1, 30*time.Second)
	url := h.url("/hooks/sources/rt/h")
	hdr := map[string]string{"X-Test-Token": "tok"}
	for _, body := range []string{
		`{"id":"w1","title":"first"}`,
		`{"id":"w1","title":"second"}`,
		`{"id":"bad","_metadata":{"forged":true}}`,
		`{"id":"w2","title":"after the bad one"}`,
	} {
		if code, resp := post(t, url, hdr, body); code != 202 {
			t.Fatalf("webhook %s: %d %s", body, code, resp)
		}
	}
	got := h.waitRecords("rt", "model=Post&ids=w1,w2,bad", 60*time.Second, func(r []record) bool { return len(r) == 2 })
	for _, r := range got {
		if r["id"] == "w1" && r["title"] != "second" {
			t.Fatalf("w1 = %v: the webhooks were applied out of order", r)
		}
	}
	var evs struct {
		Events []struct{ Type, Message string } `json:"events"`
	}
	h.call("GET", "/v1/layers/rt/events?limit=1000", nil, 200, &evs)
	failed := 0
	for _, e := range evs.Events {
		if e.Type == "webhook.failed" {
			failed++
			if !strings.Contains(e.Message, "_metadata") {
				t.Errorf("webhook.failed event %q does not say why", e.Message)
			}
		}
	}
	if failed != 1 {
		t.Fatalf("%d webhook.failed events, want 1 (the bad webhook only)", failed)
	}
}

// Beyond inbox_limit payload webhooks waiting, the host answers 429 with
// Retry-After instead of queueing without bound; what it accepted is all
// published.
func TestInboxBackPressure(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "layer.hcl")
	writeFile(t, cfg, strings.Replace(hookLayer(hookPlugin(t), `    config {
      token           = "tok"
      handle_delay_ms = 300
    }`), `layer "rt" {`, "layer \"rt\" {\n  inbox_limit = 3", 1))
	h := startHost(t, cfg, t.TempDir())
	h.waitRevision("rt", 1, 30*time.Second)
	url := h.url("/hooks/sources/rt/h")
	var accepted, refused atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", url, strings.NewReader(fmt.Sprintf(`{"id":"p%d","title":"t"}`, i)))
			req.Header.Set("X-Test-Token", "tok")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case 202:
				accepted.Add(1)
			case 429:
				if resp.Header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
				refused.Add(1)
			default:
				t.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	if refused.Load() == 0 || accepted.Load() < 3 {
		t.Fatalf("accepted %d, refused %d: want some of each with inbox_limit = 3", accepted.Load(), refused.Load())
	}
	want := int(accepted.Load())
	h.waitRecords("rt", "model=Post&limit=100", 60*time.Second, func(r []record) bool {
		n := 0
		for _, x := range r {
			if strings.HasPrefix(fmt.Sprint(x["id"]), "p") {
				n++
			}
		}
		return n == want
	})
}
