package integration

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/synclayer/synclayer/internal/testbin"
)

var (
	hookPluginOnce sync.Once
	hookPluginPath string
	hookPluginErr  error
)

// hookPlugin builds the test connector of testdata/hookplugin once.
func hookPlugin(t *testing.T) string {
	t.Helper()
	hookPluginOnce.Do(func() {
		dir, err := os.MkdirTemp("", "synclayer-hookplugin-")
		if err != nil {
			hookPluginErr = err
			return
		}
		hookPluginPath = filepath.Join(dir, "synclayer-plugin-hook")
		hookPluginErr = testbin.Build(dir, map[string]string{"synclayer-plugin-hook": "./integration/testdata/hookplugin"})
	})
	if hookPluginErr != nil {
		t.Fatal(hookPluginErr)
	}
	return hookPluginPath
}

func post(t *testing.T, url string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// TestTriggerHooksCoalesceDuringALongRun sends 40 trigger hooks while the
// first run of a large generator source runs: they give at most one more
// run.
func TestTriggerHooksCoalesceDuringALongRun(t *testing.T) {
	onEachStore(t, testTriggerHooksCoalesceDuringALongRun)
}

func testTriggerHooksCoalesceDuringALongRun(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "layer.hcl"), `
layer "big" {
  source "g" {
    plugin = "generator"
    config {
      records       = 300000
      payload_bytes = 256
    }
  }
}
`)
	h := startHost(t, filepath.Join(dir, "layer.hcl"), "")
	state := func() string {
		var st struct {
			Sources []struct {
				Syncs []struct{ State string } `json:"syncs"`
			} `json:"sources"`
		}
		h.call("GET", "/v1/layers/big", nil, 200, &st)
		return st.Sources[0].Syncs[0].State
	}
	// The startup run is queued at readiness, and starts at once on one
	// host; with replicas a host's River worker fetches it within a poll.
	for deadline := time.Now().Add(30 * time.Second); state() == "queued" && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if s := state(); s != "running" {
		t.Fatalf("the first run is %s, not running: make it longer", s)
	}
	runs := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body := post(t, h.url("/hooks/layers/big"), nil, `{"ignored": true}`)
			if code != 202 {
				t.Errorf("hook answered %d: %s", code, body)
				return
			}
			mu.Lock()
			runs[body] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if s := state(); s != "running" {
		t.Fatalf("the first run ended (%s) before the 40 hooks were answered: make it longer", s)
	}
	h.idle("big", 2*time.Minute)
	var revs revisionList
	h.call("GET", "/v1/layers/big/revisions", nil, 200, &revs)
	if len(revs.Revisions) > 2 {
		t.Fatalf("40 hooks during a long run gave %d revisions, want at most 2", len(revs.Revisions))
	}
	if len(runs) > 2 {
		t.Fatalf("the hooks were answered with %d different runs, want at most 2", len(runs))
	}
	var evs struct {
		Events []struct{ Type string } `json:"events"`
	}
	h.call("GET", "/v1/layers/big/events?limit=1000", nil, 200, &evs)
	coalesced := 0
	for _, e := range evs.Events {
		if e.Type == "coalesced" {
			coalesced++
		}
	}
	if coalesced < 38 {
		t.Fatalf("%d coalesced events, want at least 38", coalesced)
	}
}

// TestTriggerHooksSourceHeaderAndAddedWebhooks checks X-Data-Source, the
// Netlify paths, and that added webhooks turn the default hook off.
func TestTriggerHooksSourceHeaderAndAddedWebhooks(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "layer.hcl"), `
layer "two" {
  source "a" {
    plugin = "files"
    config { dir = "./a" }
  }
  source "b" {
    plugin = "files"
    config { dir = "./b" }
  }
}
`)
	writeFile(t, filepath.Join(dir, "a", "A.json"), `[{"id":"1"}]`)
	writeFile(t, filepath.Join(dir, "b", "B.json"), `[{"id":"1"}]`)
	h := startHost(t, filepath.Join(dir, "layer.hcl"), "")
	h.idle("two", 30*time.Second)

	for _, tc := range []struct{ path, header string }{
		{"/hooks/layers/two", "X-Data-Source"},
		{"/hooks/data_layer/data_source/publish/two", "X-Connect-Data-Source"},
	} {
		code, body := post(t, h.url(tc.path), map[string]string{tc.header: "b"}, "")
		if code != 202 {
			t.Fatalf("%s: %d %s", tc.path, code, body)
		}
		run := strings.Split(body, `"`)[3]
		r := h.waitRun("two", run, 30*time.Second)
		var full struct {
			Syncs []struct{ Source string } `json:"syncs"`
		}
		h.call("GET", "/v1/layers/two/runs/"+run, nil, 200, &full)
		if r.State != "completed" || len(full.Syncs) != 1 || full.Syncs[0].Source != "b" || r.Trigger != "webhook" {
			t.Fatalf("%s with %s: run %+v syncs %+v", tc.path, tc.header, r, full.Syncs)
		}
	}
	if code, _ := post(t, h.url("/hooks/layers/two"), map[string]string{"X-Data-Source": "nope"}, ""); code != 404 {
		t.Fatalf("unknown source: %d", code)
	}
	if code, _ := post(t, h.url("/hooks/layers/nope"), nil, ""); code != 404 {
		t.Fatalf("unknown layer: %d", code)
	}

	out, err := h.cli("webhooks", "add", "two", "cms")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(out)
	id, url := fields[0], fields[1]
	if len(id) < 32 || !strings.HasSuffix(url, "/hooks/layers/two/"+id) {
		t.Fatalf("webhooks add printed %q", out)
	}
	if code, _ := post(t, h.url("/hooks/layers/two"), nil, ""); code != 404 {
		t.Fatalf("default hook with an added webhook: %d, want 404", code)
	}
	if code, _ := post(t, h.url("/hooks/layers/two/"+id), nil, ""); code != 202 {
		t.Fatalf("added webhook: %d", code)
	}
	if code, _ := post(t, h.url("/hooks/data_layer/data_source/publish/two/"+id), nil, ""); code != 202 {
		t.Fatalf("added webhook on the Netlify path: %d", code)
	}
	if code, _ := post(t, h.url("/hooks/layers/two/"+strings.Repeat("0", len(id))), nil, ""); code != 404 {
		t.Fatalf("unknown webhook id: %d", code)
	}
	if out, err := h.cli("webhooks", "list", "two"); err != nil || !strings.Contains(out, id) || !strings.Contains(out, "cms") {
		t.Fatalf("webhooks list: %v\n%s", err, out)
	}
	if _, err := h.cli("webhooks", "rm", "two", id); err != nil {
		t.Fatal(err)
	}
	if code, _ := post(t, h.url("/hooks/layers/two"), nil, ""); code != 202 {
		t.Fatalf("default hook after the last webhook was deleted: %d", code)
	}
	var audit struct {
		Audit []struct{ Action string } `json:"audit"`
	}
	h.call("GET", "/v1/audit?layer=two", nil, 200, &audit)
	var actions []string
	for _, a := range audit.Audit {
		actions = append(actions, a.Action)
	}
	if j := strings.Join(actions, ","); !strings.Contains(j, "webhook.added") || !strings.Contains(j, "webhook.deleted") {
		t.Fatalf("audit: %v", actions)
	}
	if strings.Contains(fmt.Sprint(audit), id) {
		t.Fatal("the audit log holds a full webhook id")
	}
}

func hookLayer(plugin, extra string) string {
	return fmt.Sprintf(`
plugin "hook" {
  path = %q
}
layer "rt" {
  source "h" {
    plugin = "hook"
%s
  }
}
`, plugin, extra)
}

// TestPayloadWebhooks: a bad token gets 401 and stores nothing; a good one
// gets 202, and is published even when the host is killed right after.
func TestPayloadWebhooks(t *testing.T) { onEachStore(t, testPayloadWebhooks) }

func testPayloadWebhooks(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "layer.hcl")
	writeFile(t, cfg, hookLayer(hookPlugin(t), `    config {
      token           = "s3cret-token"
      handle_delay_ms = 1500
    }`))
	data := t.TempDir()
	h := startHost(t, cfg, data)
	h.waitRevision("rt", 1, 30*time.Second)

	url := h.url("/hooks/sources/rt/h")
	if code, body := post(t, url, map[string]string{"X-Test-Token": "wrong"}, `{"id":"w1","title":"forged"}`); code != 401 || !strings.Contains(body, "bad token") {
		t.Fatalf("bad token: %d %s", code, body)
	}
	if code, _ := post(t, url, map[string]string{"X-Test-Token": "s3cret-token"}, `{"id":"w1","title":"pushed"}`); code != 202 {
		t.Fatalf("good token: %d", code)
	}
	// The handler takes 1.5 s: kill the host before it publishes.
	h.kill()
	h.start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := h.records("rt", "model=Post&ids=w1")
		if len(got) == 1 {
			if got[0]["title"] != "pushed" || got[0].meta("revision").(float64) < 2 {
				t.Fatalf("webhook record: %v", got[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook accepted before the kill was never published\n%s", h.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var revs revisionList
	h.call("GET", "/v1/layers/rt/revisions", nil, 200, &revs)
	if revs.Revisions[0].Trigger != "webhook" || len(revs.Revisions) != 2 {
		t.Fatalf("revisions: %+v (the forged webhook must not have published)", revs)
	}
	if got := h.records("rt", "model=Post&ids=w1,forged"); len(got) != 1 {
		t.Fatalf("records: %v", got)
	}
	if code, _ := post(t, h.url("/hooks/sources/rt/nope"), nil, `{}`); code != 404 {
		t.Fatalf("unknown source: %d", code)
	}
}

// TestFailingPlugins: a plugin that dies mid-run fails that run with the
// reason and the next run completes; a plugin past its memory limit is
// killed and the host stays healthy.
func TestFailingPlugins(t *testing.T) {
	dir := t.TempDir()
	exitFile := filepath.Join(dir, "exit-now")
	cfg := filepath.Join(dir, "layer.hcl")
	writeFile(t, cfg, hookLayer(hookPlugin(t), fmt.Sprintf(`    config {
      token     = "x"
      exit_file = %q
    }`, exitFile)))
	h := startHost(t, cfg, "")
	h.waitRevision("rt", 1, 30*time.Second)
	writeFile(t, exitFile, "")
	var run struct{ Run string }
	h.call("POST", "/v1/layers/rt/syncs", map[string]any{}, 202, &run)
	r := h.waitRun("rt", run.Run, 30*time.Second)
	if r.State != "failed" || !strings.Contains(r.Error, "crashed") {
		t.Fatalf("run with a dying plugin: %+v", r)
	}
	os.Remove(exitFile)
	h.call("POST", "/v1/layers/rt/syncs", map[string]any{}, 202, &run)
	if r := h.waitRun("rt", run.Run, 30*time.Second); r.State != "completed" {
		t.Fatalf("next run: %+v\n%s", r, h.logs())
	}
	var evs struct {
		Events []struct{ Type, Message string } `json:"events"`
	}
	h.call("GET", "/v1/layers/rt/events?limit=1000", nil, 200, &evs)
	crashed := false
	for _, e := range evs.Events {
		crashed = crashed || e.Type == "plugin.crashed"
	}
	if !crashed {
		t.Fatalf("no plugin.crashed event: %+v", evs)
	}

	// memory_limit: the plugin grows to 300 MiB; the limit is 64 MiB.
	h.stop()
	writeFile(t, cfg, hookLayer(hookPlugin(t), `    memory_limit = "64MiB"
    config {
      token  = "x"
      hog_mb = 300
    }`))
	h.start()
	h.idle("rt", time.Minute)
	var runs struct {
		Events []struct{ Type, Run, Message string } `json:"events"`
	}
	h.call("GET", "/v1/layers/rt/events?limit=1000", nil, 200, &runs)
	found := false
	for _, e := range runs.Events {
		if e.Type == "sync.failed" && strings.Contains(e.Message, "memory_limit") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no run failed for the memory limit: %+v\n%s", runs.Events, h.logs())
	}
	h.call("GET", "/healthz", nil, 200, nil)
}

// TestScheduleEveryAndPause: every = "1s" runs on time; pause stops it and
// resume starts it again.
func TestScheduleEveryAndPause(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "layer.hcl"), `
layer "s" {
  source "f" {
    plugin = "files"
    config { dir = "./d" }
    sync "files" {
      every = "1s"
    }
  }
}
`)
	writeFile(t, filepath.Join(dir, "d", "M.json"), `[{"id":"1"}]`)
	h := startHost(t, filepath.Join(dir, "layer.hcl"), "")
	scheduled := func() int {
		var revs revisionList
		h.call("GET", "/v1/layers/s/revisions", nil, 200, &revs)
		n := 0
		for _, r := range revs.Revisions {
			if r.Trigger == "schedule" {
				n++
			}
		}
		return n
	}
	time.Sleep(3500 * time.Millisecond)
	if n := scheduled(); n < 2 || n > 4 {
		t.Fatalf("%d scheduled runs in 3.5 s with every = 1s", n)
	}
	if _, err := h.cli("pause", "s", "f", "files"); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Sources []struct {
			Syncs []struct{ State string } `json:"syncs"`
		} `json:"sources"`
	}
	h.idle("s", 10*time.Second)
	h.call("GET", "/v1/layers/s", nil, 200, &st)
	if st.Sources[0].Syncs[0].State != "paused" {
		t.Fatalf("state after pause: %+v", st)
	}
	before := scheduled()
	time.Sleep(2500 * time.Millisecond)
	if n := scheduled(); n != before {
		t.Fatalf("paused sync ran on schedule: %d -> %d", before, n)
	}
	if _, err := h.cli("resume", "s", "f", "files"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	if n := scheduled(); n <= before {
		t.Fatalf("resumed sync did not run: %d -> %d", before, n)
	}
}

// TestSecretsStaySecret syncs with a connector that puts its sensitive
// config value in its log, its stderr and its error, then scans every log
// line and API answer for it.
func TestSecretsStaySecret(t *testing.T) {
	const secret = "tok-7f3a9c1e5b2d"
	dir := t.TempDir()
	cfg := filepath.Join(dir, "layer.hcl")
	writeFile(t, cfg, hookLayer(hookPlugin(t), fmt.Sprintf(`    config {
      token = %q
      leak  = true
    }`, secret)))
	h := startHost(t, cfg, "")
	h.idle("rt", 30*time.Second)
	var answers strings.Builder
	get := func(path string) {
		req, _ := http.NewRequest("GET", h.url(path), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		answers.WriteString(b.String())
	}
	var runs struct {
		Events []struct{ Run string } `json:"events"`
	}
	h.call("GET", "/v1/layers/rt/events?limit=1000", nil, 200, &runs)
	for _, e := range runs.Events {
		if e.Run != "" {
			get("/v1/layers/rt/runs/" + e.Run)
		}
	}
	for _, p := range []string{"/v1/layers", "/v1/layers/rt", "/v1/layers/rt/events?limit=1000", "/v1/layers/rt/revisions", "/v1/audit", "/v1/layers/rt/records", "/metrics"} {
		get(p)
	}
	h.stop()
	logs := h.logs()
	if strings.Contains(logs, secret) {
		t.Fatalf("the secret is in the host log:\n%s", logs)
	}
	if strings.Contains(answers.String(), secret) {
		t.Fatalf("the secret is in an API answer:\n%s", answers.String())
	}
	if !strings.Contains(logs, "[redacted]") || !strings.Contains(answers.String(), "[redacted]") {
		t.Fatalf("the test did not exercise redaction (no [redacted] in logs or answers)\n%s\n%s", logs, answers.String())
	}
	if !strings.Contains(answers.String(), "upstream refused token") {
		t.Fatalf("the run's error is missing from the answers: %s", answers.String())
	}
}
