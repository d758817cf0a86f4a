package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// gatedAPI is an upstream of posts, two per page, whose page at cursor 2
// can be held back: a sync is then in flight, staging what it read so far.
type gatedAPI struct {
	mu      sync.Mutex
	titles  map[int]string
	gate    chan struct{} // non-nil: cursor=2 waits for it to close
	reached chan struct{} // closed when a request waits at the gate
}

func (a *gatedAPI) serve(w http.ResponseWriter, r *http.Request) {
	from, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
	a.mu.Lock()
	gate, reached := a.gate, a.reached
	if from == 2 && gate != nil {
		a.gate, a.reached = nil, nil
	}
	a.mu.Unlock()
	if from == 2 && gate != nil {
		close(reached)
		<-gate
	}
	a.mu.Lock()
	var page []map[string]any
	for id := from + 1; id <= from+2 && id <= len(a.titles); id++ {
		page = append(page, map[string]any{"id": id, "title": a.titles[id]})
	}
	next := ""
	if from+2 < len(a.titles) {
		next = strconv.Itoa(from + 2)
	}
	a.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"data": page, "meta": map[string]any{"next": next}})
}

const (
	backupToken = "adm-backup-t0ken"
	backupKey   = "0123456789abcdef0123456789abcdef"
)

func backupConfig(url string, withKey bool) string {
	key := ""
	if withKey {
		key = fmt.Sprintf("encryption_key = %q", backupKey)
	}
	return fmt.Sprintf(`
service {
  admin_token = %q
  %s
}
layer "blog" {
  keep_revisions = 5
  source "api" {
    plugin = "rest"
    config {
      base_url = %q
      models = {
        Post = {
          path    = "/posts"
          records = "data"
          page    = { type = "cursor", param = "cursor", next = "meta.next" }
        }
      }
    }
  }
}
`, backupToken, key, url)
}

// authGet reads a JSON answer with the admin token.
func authGet(t *testing.T, h *host, path string, out any) {
	t.Helper()
	req, _ := http.NewRequest("GET", h.url(path), nil)
	req.Header.Set("Authorization", "Bearer "+backupToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s\n%s", path, resp.StatusCode, b, h.logs())
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}

// tokenCLI runs the CLI against h with the admin token.
func tokenCLI(t *testing.T, h *host, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("synclayer"), args...)
	cmd.Env = append(os.Environ(), "SYNCLAYER_ADDR=http://"+h.addr, "SYNCLAYER_TOKEN="+backupToken)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// layerState is what readers of the layer see: revisions, the pin, and
// every record of revisions 1 and 2 with their metadata (cursors,
// timestamps).
type layerState struct {
	Revisions []map[string]any
	Pinned    any
	Records   map[int][]any
}

func readLayerState(t *testing.T, h *host) layerState {
	t.Helper()
	var revs struct {
		Revisions []map[string]any `json:"revisions"`
	}
	authGet(t, h, "/v1/layers/blog/revisions", &revs)
	st := layerState{Records: map[int][]any{}}
	for _, r := range revs.Revisions {
		if n := r["revision"].(float64); n <= 2 {
			st.Revisions = append(st.Revisions, r)
		}
		if r["pinned"] == true {
			st.Pinned = r["revision"]
		}
	}
	for n := 1; n <= len(st.Revisions); n++ {
		var page struct {
			Records []any `json:"records"`
		}
		authGet(t, h, fmt.Sprintf("/v1/layers/blog/records?revision=%d&limit=1000", n), &page)
		st.Records[n] = page.Records
	}
	return st
}

// TestOnlineBackupAndRestore backs up a running host through the CLI,
// while a sync is in flight, encrypted with the service's key; restores
// it into an empty data dir and serves it: same revisions, records and
// pin, and nothing of the run that was staging.
func TestOnlineBackupAndRestore(t *testing.T) {
	api := &gatedAPI{titles: map[int]string{}}
	for i := 1; i <= 6; i++ {
		api.titles[i] = fmt.Sprintf("post %d", i)
	}
	srv := httptest.NewServer(http.HandlerFunc(api.serve))
	defer srv.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "layer.hcl")
	writeFile(t, cfg, backupConfig(srv.URL, true))
	h := startHost(t, cfg, "")
	waitFor(t, h, "revision 1", func() bool { return len(readLayerState(t, h).Revisions) == 1 })

	api.mu.Lock()
	api.titles[2] = "post 2, edited"
	api.mu.Unlock()
	if out, err := tokenCLI(t, h, "sync", "blog", "--wait"); err != nil {
		t.Fatalf("sync: %v\n%s", err, out)
	}
	if out, err := tokenCLI(t, h, "pin", "blog", "1"); err != nil {
		t.Fatalf("pin: %v\n%s", err, out)
	}
	before := readLayerState(t, h)
	if len(before.Revisions) != 2 || before.Pinned != float64(1) || len(before.Records[1]) != 6 {
		t.Fatalf("before the backup: %+v", before)
	}

	// A sync in flight: its first page is staged, its second held back.
	api.mu.Lock()
	api.titles[3] = "post 3, staged only"
	api.titles[5] = "post 5, never read before the backup"
	gate, reached := make(chan struct{}), make(chan struct{})
	api.gate, api.reached = gate, reached
	api.mu.Unlock()
	// Released on every way out: a failure below must not leave the
	// fake's handler blocked, which would hang srv.Close.
	release := sync.OnceFunc(func() { close(gate) })
	defer release()
	out, err := tokenCLI(t, h, "sync", "blog", "--reset")
	if err != nil {
		t.Fatalf("sync: %v\n%s", err, out)
	}
	run := strings.TrimSpace(out)
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatalf("the sync never asked for its second page\n%s", h.logs())
	}

	backup := filepath.Join(t.TempDir(), "blog.backup")
	out, err = tokenCLI(t, h, "backup", backup)
	if err != nil || !strings.Contains(out, "from the host at") || !strings.Contains(out, "encrypted") {
		t.Fatalf("online backup: %v\n%s\nhost log:\n%s", err, out, h.logs())
	}
	release()
	var r runStatus
	waitFor(t, h, "run "+run, func() bool {
		authGet(t, h, "/v1/layers/blog/runs/"+run, &r)
		return r.State == "completed" || r.State == "failed"
	})
	if r.State != "completed" || r.Revision != 3 {
		t.Fatalf("the run in flight during the backup: %+v", r)
	}
	h.stop()

	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("post 2, edited")) {
		t.Fatal("the backup holds records in clear")
	}

	// Without the key: refused, with a clear reason, leaving nothing.
	fresh := t.TempDir()
	noKey := filepath.Join(dir, "nokey.hcl")
	writeFile(t, noKey, backupConfig(srv.URL, false))
	if out, err := runCLI("restore", backup, "--config", noKey, "--data-dir", fresh); err == nil || !strings.Contains(out, "encrypted") {
		t.Fatalf("restore without the key: %v\n%s", err, out)
	}
	if out, err := runCLI("restore", backup, "--config", cfg, "--data-dir", fresh); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	h2 := startHost(t, cfg, fresh)
	after := readLayerState(t, h2)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("restored layer differs\nbefore: %+v\nafter:  %+v", before, after)
	}
	var all struct {
		Records []map[string]any `json:"records"`
	}
	authGet(t, h2, "/v1/layers/blog/records?revision=2&limit=1000", &all)
	for _, rec := range all.Records {
		if strings.Contains(fmt.Sprint(rec["title"]), "staged only") {
			t.Fatalf("the restored layer holds a change of the run that was staging: %v", rec)
		}
	}
}

func waitFor(t *testing.T, h *host, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, h.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
