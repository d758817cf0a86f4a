package integration

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRestWebhooksNeedASecret: a rest source without webhook_secret takes
// no payload webhooks at all (404, signed or not, and nothing is stored);
// one with a secret refuses unsigned ones (401) and takes signed ones (202).
func TestRestWebhooksNeedASecret(t *testing.T) {
	_, srv := newRestAPI(t, 2)
	dir := t.TempDir()
	model := `models = { Post = { path = "/posts", records = "data", page = { type = "cursor", param = "cursor", next = "meta.next" } } }`
	writeFile(t, filepath.Join(dir, "layer.hcl"), fmt.Sprintf(`
layer "blog" {
  source "open" {
    plugin = "rest"
    config {
      base_url = %[1]q
      headers  = { Authorization = "Bearer api-t0ken" }
      %[2]s
    }
  }
  source "signed" {
    plugin = "rest"
    config {
      base_url       = %[1]q
      headers        = { Authorization = "Bearer api-t0ken" }
      webhook_secret = "whsec-integration"
      %[2]s
    }
  }
}
`, srv.URL, model))
	h := startHost(t, filepath.Join(dir, "layer.hcl"), "")
	h.waitRevision("blog", 1, 30*time.Second)
	h.idle("blog", 30*time.Second)

	body := `{"model":"Post","action":"upsert","record":{"id":99,"title":"pushed"}}`
	mac := hmac.New(sha256.New, []byte("whsec-integration"))
	mac.Write([]byte(body))
	signed := map[string]string{"X-Signature-256": "sha256=" + hex.EncodeToString(mac.Sum(nil))}

	for _, hdr := range []map[string]string{nil, signed} {
		if code, resp := post(t, h.url("/hooks/sources/blog/open"), hdr, body); code != 404 {
			t.Fatalf("a webhook to the source without webhook_secret (header %v): %d %s, want 404", hdr, code, resp)
		}
	}
	if code, resp := post(t, h.url("/hooks/sources/blog/signed"), nil, body); code != 401 {
		t.Fatalf("an unsigned webhook to the source with a secret: %d %s, want 401", code, resp)
	}
	if code, resp := post(t, h.url("/hooks/sources/blog/signed"), signed, body); code != 202 {
		t.Fatalf("a signed webhook: %d %s, want 202", code, resp)
	}
	// Webhooks are published in arrival order: once the signed one is in,
	// anything stored before it would be too.
	deadline := time.Now().Add(30 * time.Second)
	for len(h.records("blog", "model=Post&source=signed&ids=99")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the signed webhook was not applied\n%s", h.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := h.records("blog", "model=Post&source=open&ids=99"); len(got) != 0 {
		t.Fatalf("a webhook to the source without webhook_secret was stored: %v", got)
	}
	if got := h.records("blog", "model=Post&source=open"); len(got) != 2 {
		t.Fatalf("source open: %d records, want its 2 synced ones", len(got))
	}
}

// TestHungPluginIsKilledAndRelaunched: a sync that goes silent past its
// progress_timeout fails with a clear error, its plugin process is killed,
// and the next run starts a new one and completes.
func TestHungPluginIsKilledAndRelaunched(t *testing.T) {
	dir := t.TempDir()
	cfg, hang := filepath.Join(dir, "layer.hcl"), filepath.Join(dir, "hang")
	writeFile(t, hang, "")
	writeFile(t, cfg, hookLayer(hookPlugin(t), fmt.Sprintf(`    config {
      token     = "x"
      hang_file = %q
    }
    sync "posts" {
      progress_timeout = "1s"
    }`, hang)))
	h := startHost(t, cfg, "")
	// The start-up run hangs after one record.
	h.idle("rt", time.Minute)
	var evs struct {
		Events []struct{ Type, Message string } `json:"events"`
	}
	h.call("GET", "/v1/layers/rt/events?limit=1000", nil, 200, &evs)
	failed := ""
	for _, e := range evs.Events {
		if e.Type == "sync.failed" {
			failed = e.Message
		}
	}
	if !strings.Contains(failed, "no batch, checkpoint, progress or log message for 1s") || !strings.Contains(failed, "progress_timeout") {
		t.Fatalf("the hung run did not fail with the progress timeout: %q\n%s", failed, h.logs())
	}
	if n := len(h.records("rt", "model=Post")); n != 0 {
		t.Fatalf("the failed run published %d records", n)
	}

	os.Remove(hang)
	var run struct{ Run string }
	h.call("POST", "/v1/layers/rt/syncs", map[string]any{}, 202, &run)
	if r := h.waitRun("rt", run.Run, 30*time.Second); r.State != "completed" {
		t.Fatalf("the run after the hang: %+v\n%s", r, h.logs())
	}
	if n := len(h.records("rt", "model=Post")); n != 3 {
		t.Fatalf("%d records after the run, want 3", n)
	}
	if n := h.metric(`synclayer_plugin_starts_total{plugin="hook"}`); n < 2 {
		t.Fatalf("plugin starts = %v: the hung plugin was not replaced", n)
	}
	if pids := children(t, h.cmd.Process.Pid, hookPlugin(t)); len(pids) != 1 {
		t.Fatalf("hook plugin processes of the host: %v, want 1 (the hung one killed)", pids)
	}
}

// metric reads one sample of the host's /metrics.
func (h *host) metric(name string) float64 {
	h.t.Helper()
	resp, err := http.Get(h.url("/metrics"))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				h.t.Fatal(err)
			}
			return f
		}
	}
	h.t.Fatalf("no metric %s", name)
	return 0
}

// children returns the live child processes of ppid that run exe.
func children(t *testing.T, ppid int, exe string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 || f[0] == "Z" || f[0] == "X" || f[1] != strconv.Itoa(ppid) {
			continue
		}
		if path, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && path == exe {
			out = append(out, pid)
		}
	}
	return out
}
