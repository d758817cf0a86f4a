package integration

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// restAPI is a fake upstream: posts with an updated_at, two per page
// behind a cursor, filtered by ?updated_since= (inclusive), behind a
// bearer token.
type restAPI struct {
	mu       sync.Mutex
	posts    map[int]map[string]any
	clock    time.Time
	requests []string
}

func newRestAPI(t *testing.T, n int) (*restAPI, *httptest.Server) {
	a := &restAPI{posts: map[int]map[string]any{}, clock: time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)}
	for i := 1; i <= n; i++ {
		a.set(i, fmt.Sprintf("post %d", i))
	}
	srv := httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(srv.Close)
	return a, srv
}

func (a *restAPI) set(id int, title string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clock = a.clock.Add(time.Second)
	at := a.clock.Format(time.RFC3339)
	a.posts[id] = map[string]any{"id": id, "title": title, "updated_at": at}
	return at
}

func (a *restAPI) log() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.requests...)
}

func (a *restAPI) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests = append(a.requests, r.URL.RequestURI())
	var list []map[string]any
	since := r.URL.Query().Get("updated_since")
	for _, p := range a.posts {
		if since == "" || p["updated_at"].(string) >= since {
			list = append(list, p)
		}
	}
	a.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer api-t0ken" {
		http.Error(w, `{"error":"unauthorized"}`, 401)
		return
	}
	sort.Slice(list, func(i, j int) bool { return list[i]["id"].(int) < list[j]["id"].(int) })
	from, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
	page := list[min(from, len(list)):min(from+2, len(list))]
	next := ""
	if from+2 < len(list) {
		next = strconv.Itoa(from + 2)
	}
	json.NewEncoder(w).Encode(map[string]any{"data": page, "meta": map[string]any{"next": next}})
}

func restLayer(url string) string {
	return fmt.Sprintf(`
layer "blog" {
  source "api" {
    plugin = "rest"
    config {
      base_url       = %q
      headers        = { Authorization = "Bearer api-t0ken" }
      webhook_secret = "whsec-integration"
      models = {
        Post = {
          path        = "/posts"
          records     = "data"
          updated_at  = "updated_at"
          since_param = "updated_since"
          page = { type = "cursor", param = "cursor", next = "meta.next" }
        }
      }
    }
  }
}
`, url)
}

// TestRestSourceEndToEnd serves a layer with a rest source through the real
// binaries: the first run reads every page, an incremental run asks with
// the since param and brings only what changed, and a signed payload
// webhook is applied while a forged one is refused.
func TestRestSourceEndToEnd(t *testing.T) {
	api, srv := newRestAPI(t, 5)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "layer.hcl"), restLayer(srv.URL))
	h := startHost(t, filepath.Join(dir, "layer.hcl"), "")
	h.waitRevision("blog", 1, 30*time.Second)

	all := h.records("blog", "model=Post")
	if len(all) != 5 {
		t.Fatalf("first run: %d records: %v\n%s", len(all), all, h.logs())
	}
	for _, r := range all {
		if r.meta("source") != "api" || r.meta("model") != "Post" || !strings.HasPrefix(r["title"].(string), "post ") {
			t.Fatalf("record %v", r)
		}
	}
	if got := api.log(); strings.Join(got, " ") != "/posts /posts?cursor=2 /posts?cursor=4" {
		t.Fatalf("first run requests: %v", got)
	}

	// Post 2 changes, post 6 appears: an incremental run.
	before := len(api.log())
	api.set(2, "post 2, edited")
	api.set(6, "post 6")
	var started struct {
		Run string `json:"run"`
	}
	h.call("POST", "/v1/layers/blog/syncs", map[string]any{}, 202, &started)
	if r := h.waitRun("blog", started.Run, 30*time.Second); r.State != "completed" {
		t.Fatalf("incremental run: %+v\n%s", r, h.logs())
	}
	reqs := api.log()[before:]
	if len(reqs) == 0 || !strings.Contains(reqs[0], "updated_since=2026-11-23T07%3A00%3A05Z") {
		t.Fatalf("incremental run requests %v: want updated_since of the highest updated_at", reqs)
	}
	titles := map[string]any{}
	for _, r := range h.records("blog", "model=Post&ids=2,6") {
		titles[fmt.Sprint(r["id"])] = r["title"]
	}
	if len(titles) != 2 || titles["2"] != "post 2, edited" || titles["6"] != "post 6" {
		t.Fatalf("after the incremental run: %v", titles)
	}
	if got := h.records("blog", "model=Post&filter=updated"); len(got) != 1 || got[0]["id"].(float64) != 2 {
		t.Fatalf("updated records: %v", got)
	}

	// Payload webhooks: signed is applied, forged and unsigned are not.
	body := `[{"model":"Post","action":"upsert","record":{"id":99,"title":"pushed"}},{"model":"Post","action":"delete","id":"1"}]`
	mac := hmac.New(sha256.New, []byte("whsec-integration"))
	mac.Write([]byte(body))
	url := h.url("/hooks/sources/blog/api")
	if code, resp := post(t, url, map[string]string{"X-Signature-256": "sha256=" + strings.Repeat("0", 64)}, body); code != 401 {
		t.Fatalf("forged signature: %d %s", code, resp)
	}
	if code, resp := post(t, url, nil, body); code != 401 {
		t.Fatalf("missing signature: %d %s", code, resp)
	}
	if code, resp := post(t, url, map[string]string{"X-Signature-256": "sha256=" + hex.EncodeToString(mac.Sum(nil))}, body); code != 202 {
		t.Fatalf("signed webhook: %d %s", code, resp)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := map[string]record{}
		for _, r := range h.records("blog", "model=Post&ids=1,99") {
			got[fmt.Sprint(r["id"])] = r
		}
		if len(got) == 2 && got["1"].meta("last_action") == "DELETED" && got["99"]["title"] == "pushed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the signed webhook was not applied: %v\n%s", got, h.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(h.logs(), "api-t0ken") || strings.Contains(h.logs(), "whsec-integration") {
		t.Fatalf("a secret reached the host log:\n%s", h.logs())
	}
}
