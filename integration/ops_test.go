package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// opsConfig is a layer "blog" of the files connector with an admin token,
// a read token and, when notifyURL is set, a notify endpoint.
func opsConfig(dataDir, admin, read, notifyURL, secret string) string {
	sum := sha256.Sum256([]byte(read))
	notify := ""
	if notifyURL != "" {
		notify = notifyBlock("app", notifyURL, secret)
	}
	service := ""
	if admin != "" {
		service = fmt.Sprintf("service {\n  admin_token = %q\n}\n", admin)
	}
	return fmt.Sprintf(`%s
layer "blog" {
  source "content" {
    plugin = "files"
    config {
      dir = %q
    }
  }
  api_token "site" {
    token_sha256 = %q
  }
%s
}
`, service, dataDir, hex.EncodeToString(sum[:]), notify)
}

// status sends a GET with a bearer token (none when empty) and returns
// the status.
func (h *host) status(path, token string) int {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.url(path), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestReloadRotatesTokens: a SIGHUP applies a new admin token and a new
// api_token without a restart; the old ones get 401 from then on, and
// neither shows in the log.
func TestReloadRotatesTokens(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "data", "Post.json"), `[{"id": "p-1", "title": "One"}]`)
	cfgPath := filepath.Join(dir, "layer.hcl")
	const admin1, admin2 = "admin-token-one-0123456789", "admin-token-two-9876543210"
	const read1, read2 = "read-token-one-abcdef", "read-token-two-fedcba"
	writeFile(t, cfgPath, opsConfig(filepath.Join(dir, "data"), admin1, read1, "", ""))
	h := startHost(t, cfgPath, "")

	check := func(when string, want map[string]int) {
		t.Helper()
		for call, code := range want {
			path, token, _ := strings.Cut(call, " ")
			if got := h.status(path, token); got != code {
				t.Errorf("%s: GET %s with %q: %d, want %d", when, path, token, got, code)
			}
		}
	}
	check("before the reload", map[string]int{
		"/v1/layers " + admin1:              200,
		"/v1/layers " + admin2:              401,
		"/v1/layers ":                       401,
		"/v1/layers/blog/records " + read1:  200,
		"/v1/layers/blog/records " + read2:  401,
		"/v1/layers/blog/records " + admin1: 200,
	})

	writeFile(t, cfgPath, opsConfig(filepath.Join(dir, "data"), admin2, read2, "", ""))
	h.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, h, "reloaded the configuration")
	check("after the reload", map[string]int{
		"/v1/layers " + admin1:              401,
		"/v1/layers " + admin2:              200,
		"/v1/layers/blog/records " + read1:  401,
		"/v1/layers/blog/records " + read2:  200,
		"/v1/layers/blog/records " + admin1: 401,
		"/v1/layers/blog/records " + admin2: 200,
	})
	if strings.Contains(h.logs(), "changes to the service block") {
		t.Errorf("a token change alone was logged as a service change needing a restart:\n%s", h.logs())
	}
	for _, secret := range []string{admin1, admin2, read1, read2} {
		if strings.Contains(h.logs(), secret) {
			t.Errorf("the log shows a token:\n%s", h.logs())
		}
	}
}

// fakeNotifySocket is systemd's end of NOTIFY_SOCKET.
type fakeNotifySocket struct {
	path string
	msgs chan string
}

func newFakeNotifySocket(t *testing.T) *fakeNotifySocket {
	t.Helper()
	// Unix socket paths are short (108 bytes): not under t.TempDir().
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeNotifySocket{path: filepath.Join(dir, "notify"), msgs: make(chan string, 1000)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: f.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			f.msgs <- string(buf[:n])
		}
	}()
	return f
}

// waitFor returns the first message with prefix, skipping others (the
// watchdog's); it fails the test after a generous wait.
func (f *fakeNotifySocket) waitFor(t *testing.T, prefix string) (msg string, skipped []string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case m := <-f.msgs:
			if strings.HasPrefix(m, prefix) {
				return m, skipped
			}
			skipped = append(skipped, m)
		case <-deadline:
			t.Fatalf("no %s message on NOTIFY_SOCKET; got %q", prefix, skipped)
		}
	}
}

// TestSystemdNotifyProtocol runs the host as systemd would with
// Type=notify and WatchdogSec: READY=1 once it serves (readyz is 200 by
// then), watchdog pings, RELOADING=1 then READY=1 around a SIGHUP, and
// STOPPING=1 on SIGTERM.
func TestSystemdNotifyProtocol(t *testing.T) {
	sd := newFakeNotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", sd.path)
	t.Setenv("WATCHDOG_USEC", "200000")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "data", "Post.json"), `[{"id": "p-1", "title": "One"}]`)
	cfgPath := filepath.Join(dir, "layer.hcl")
	writeFile(t, cfgPath, notifyConfig(filepath.Join(dir, "data")))
	h := startHost(t, cfgPath, "")

	ready, before := sd.waitFor(t, "READY=1")
	if len(before) > 0 {
		t.Errorf("messages before READY=1: %q", before)
	}
	if !strings.Contains(ready, "STATUS=serving 1 layer(s) on "+h.addr) {
		t.Errorf("READY message %q has no status", ready)
	}
	if got := h.status("/readyz", ""); got != 200 {
		t.Errorf("/readyz is %d after READY=1", got)
	}
	for range 2 {
		if m, _ := sd.waitFor(t, "WATCHDOG=1"); m != "WATCHDOG=1" {
			t.Fatalf("watchdog message %q", m)
		}
	}

	h.cmd.Process.Signal(syscall.SIGHUP)
	if m, _ := sd.waitFor(t, "RELOADING=1"); !strings.Contains(m, "MONOTONIC_USEC=") {
		t.Errorf("RELOADING message %q has no MONOTONIC_USEC", m)
	}
	sd.waitFor(t, "READY=1")
	waitLog(t, h, "reloaded the configuration")

	h.stop()
	sd.waitFor(t, "STOPPING=1")
}

// documentedMetrics reads the metric names of the metrics table of
// docs/production.md ("| `synclayer_…` | labels | what |").
func documentedMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "production.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(synclayer_[a-z_]+)` \\|")
	var out []string
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	if len(out) < 10 {
		t.Fatalf("docs/production.md documents only %d metrics: %v", len(out), out)
	}
	return out
}

// scrape reads /metrics with the Prometheus text parser.
func (h *host) scrape() map[string]*dto.MetricFamily {
	h.t.Helper()
	resp, err := http.Get(h.url("/metrics"))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		h.t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		h.t.Fatalf("/metrics does not parse: %v", err)
	}
	return mfs
}

// sample returns the value of the series of a family with these labels.
func sample(mf *dto.MetricFamily, labels map[string]string) (float64, bool) {
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		for k, v := range labels {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
				continue next
			}
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetricsAreTheDocumentedOnes parses /metrics of a running host with
// the Prometheus text parser: every family docs/production.md documents
// is there from the start, at zero where nothing happened, every
// synclayer_ family there is documented, and the values follow what the
// host did.
func TestMetricsAreTheDocumentedOnes(t *testing.T) {
	rc := newNotifyReceiver(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "data", "Post.json"), `[{"id": "p-1", "title": "One"}, {"id": "p-2", "title": "Two"}]`)
	cfgPath := filepath.Join(dir, "layer.hcl")
	writeFile(t, cfgPath, opsConfig(filepath.Join(dir, "data"), "", "read-token", rc.srv.URL, rc.secret))
	h := startHost(t, cfgPath, "")

	mfs := h.scrape()
	documented := documentedMetrics(t)
	for _, name := range documented {
		if mfs[name] == nil {
			t.Errorf("%s is documented but not in /metrics at start", name)
		}
	}
	var exposed []string
	for name := range mfs {
		if strings.HasPrefix(name, "synclayer_") {
			exposed = append(exposed, name)
			if !slices.Contains(documented, name) {
				t.Errorf("%s is in /metrics but not documented in docs/production.md", name)
			}
		}
	}
	sort.Strings(exposed)
	for _, zero := range []struct {
		name   string
		labels map[string]string
	}{
		{"synclayer_runs_total", map[string]string{"layer": "blog", "state": "failed"}},
		{"synclayer_plugin_crashes_total", map[string]string{"plugin": "files"}},
		{"synclayer_plugin_restarts_total", map[string]string{"plugin": "files"}},
		{"synclayer_delivery_failures_total", map[string]string{"layer": "blog", "endpoint": "app"}},
		{"synclayer_inbox_pending", map[string]string{"layer": "blog"}},
		{"synclayer_inbox_oldest_age_seconds", map[string]string{"layer": "blog"}},
		{"synclayer_http_connections_refused_total", nil},
	} {
		if v, ok := sample(mfs[zero.name], zero.labels); !ok || v != 0 {
			t.Errorf("%s%v: %v (present: %v), want 0 at start", zero.name, zero.labels, v, ok)
		}
	}

	// The first run publishes revision 1 and announces it; an unknown
	// path is counted as unmatched.
	h.waitRevision("blog", 1, 30*time.Second)
	h.status("/no/such/path", "")
	deadline := time.Now().Add(30 * time.Second)
	for {
		mfs = h.scrape()
		rev, _ := sample(mfs["synclayer_revision"], map[string]string{"layer": "blog"})
		done, _ := sample(mfs["synclayer_runs_total"], map[string]string{"layer": "blog", "state": "completed"})
		attempts, _ := sample(mfs["synclayer_delivery_attempts_total"], map[string]string{"layer": "blog", "endpoint": "app"})
		pending, _ := sample(mfs["synclayer_deliveries_pending"], map[string]string{"layer": "blog"})
		if rev == 1 && done == 1 && attempts >= 1 && pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the first run: revision %v, completed runs %v, delivery attempts %v, pending %v", rev, done, attempts, pending)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v, ok := sample(mfs["synclayer_http_request_duration_seconds"], map[string]string{"route": "unmatched", "code": "404"}); !ok || v < 1 {
		t.Errorf("GET /no/such/path is not counted as route=unmatched code=404")
	}
	if v, _ := sample(mfs["synclayer_records_written_total"], map[string]string{"layer": "blog", "action": "added"}); v != 2 {
		t.Errorf("records added %v, want 2", v)
	}
	if v, _ := sample(mfs["synclayer_plugin_starts_total"], map[string]string{"plugin": "files"}); v < 1 {
		t.Errorf("plugin starts %v, want at least 1", v)
	}
	if v, ok := sample(mfs["synclayer_store_bytes"], map[string]string{"layer": "blog", "part": "vlog"}); !ok || v < 0 {
		t.Errorf("store bytes of the value log: %v (present: %v)", v, ok)
	}
	if v, _ := sample(mfs["synclayer_http_connections"], map[string]string{"pool": "main"}); v < 1 {
		t.Errorf("open connections %v while scraping, want at least 1", v)
	}
	t.Logf("synclayer families: %s", strings.Join(exposed, " "))
}
