// Package integration drives the real binaries as a user does: it starts
// `synclayer serve` on a free loopback port with a temporary data dir, talks
// to it over HTTP and through the CLI, edits source data, and kills and
// restarts the host.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/synclayer/synclayer/internal/testbin"
)

// binDir holds synclayer and its plugins: $SYNCLAYER_BIN (make test sets
// it), or a fresh build made once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	binDir = os.Getenv("SYNCLAYER_BIN")
	cleanup := func() {}
	if binDir == "" {
		dir, err := os.MkdirTemp("", "synclayer-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cleanup = func() { os.RemoveAll(dir) }
		if err := buildAll(dir); err != nil {
			fmt.Fprintln(os.Stderr, "building the binaries:", err)
			cleanup()
			os.Exit(1)
		}
		binDir = dir
	}
	binDir, _ = filepath.Abs(binDir)
	code := m.Run()
	stopSharedPostgres()
	cleanup()
	os.Exit(code)
}

func buildAll(dir string) error {
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	targets := map[string]string{"synclayer": "./core/cmd/synclayer"}
	entries, err := os.ReadDir(filepath.Join(root, "plugins"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			targets["synclayer-plugin-"+e.Name()] = "./plugins/" + e.Name()
		}
	}
	return testbin.Build(dir, targets)
}

func bin(name string) string { return filepath.Join(binDir, name) }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// host is one `synclayer serve` process.
type host struct {
	t       *testing.T
	addr    string
	config  string
	dataDir string
	cmd     *exec.Cmd
	logMu   sync.Mutex
	log     bytes.Buffer
	exited  chan struct{}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// startHost serves config with a temporary data dir (or dataDir if set).
func startHost(t *testing.T, config, dataDir string) *host {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	useTestStore(t, config)
	h := &host{t: t, addr: freeAddr(t), config: config, dataDir: dataDir}
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *host) start() {
	h.t.Helper()
	h.cmd = exec.Command(bin("synclayer"), "serve", "--config", h.config, "--listen", h.addr, "--data-dir", h.dataDir)
	h.cmd.Env = append(os.Environ(), "SYNCLAYER_PLUGIN_PATH="+binDir)
	h.cmd.Stdout = lockedWriter{&h.logMu, &h.log}
	h.cmd.Stderr = lockedWriter{&h.logMu, &h.log}
	if err := h.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.exited = make(chan struct{})
	go func() { h.cmd.Wait(); close(h.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-h.exited:
			h.t.Fatalf("synclayer serve exited early:\n%s", h.logs())
		default:
		}
		resp, err := http.Get(h.url("/readyz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("synclayer serve not ready after 30s:\n%s", h.logs())
}

func (h *host) logs() string {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return h.log.String()
}

// stop ends the host with SIGTERM and waits.
func (h *host) stop() {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	select {
	case <-h.exited:
		return
	default:
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(30 * time.Second):
		h.cmd.Process.Kill()
		<-h.exited
		h.t.Errorf("synclayer serve did not stop within 30s of SIGTERM")
	}
}

// kill ends the host with SIGKILL, as a crash would.
func (h *host) kill() {
	h.cmd.Process.Kill()
	<-h.exited
}

func (h *host) url(path string) string { return "http://" + h.addr + path }

// call sends a request and decodes the JSON answer; it fails the test on a
// status other than want.
func (h *host) call(method, path string, body any, want int, out any) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.url(path), rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s\nhost log:\n%s", method, path, resp.StatusCode, want, b, h.logs())
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

type runStatus struct {
	Run      string                                 `json:"run"`
	State    string                                 `json:"state"`
	Trigger  string                                 `json:"trigger"`
	Revision int64                                  `json:"revision"`
	Error    string                                 `json:"error"`
	Counts   map[string]map[string]map[string]int64 `json:"counts"`
}

// waitRevision waits until the layer's current revision is at least n.
func (h *host) waitRevision(layer string, n int64, timeout time.Duration) int64 {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var st struct {
			Revision int64 `json:"revision"`
		}
		h.call("GET", "/v1/layers/"+layer, nil, 200, &st)
		if st.Revision >= n {
			return st.Revision
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("layer %s still at revision %d after %s, want %d\nhost log:\n%s", layer, st.Revision, timeout, n, h.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitRun waits for a run to end and returns it.
func (h *host) waitRun(layer, run string, timeout time.Duration) runStatus {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var r runStatus
		h.call("GET", "/v1/layers/"+layer+"/runs/"+run, nil, 200, &r)
		if r.State == "completed" || r.State == "failed" {
			return r
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("run %s still %s after %s\nhost log:\n%s", run, r.State, timeout, h.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type record map[string]any

func (r record) meta(k string) any { return r["_metadata"].(map[string]any)[k] }

type recordsPage struct {
	Records    []record `json:"records"`
	NextCursor *string  `json:"next_cursor"`
	Revision   int64    `json:"revision"`
}

// records walks every page of a records query.
func (h *host) records(layer, query string) []record {
	h.t.Helper()
	var all []record
	cursor := ""
	rev := ""
	for {
		q := query
		if cursor != "" {
			q += "&cursor=" + cursor + rev
		}
		var p recordsPage
		h.call("GET", "/v1/layers/"+layer+"/records?"+strings.TrimPrefix(q, "&"), nil, 200, &p)
		all = append(all, p.Records...)
		if p.NextCursor == nil {
			return all
		}
		cursor = *p.NextCursor
		rev = fmt.Sprintf("&revision=%d", p.Revision)
	}
}

// cli runs the synclayer CLI against the host and returns its stdout.
func (h *host) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("synclayer"), args...)
	cmd.Env = append(os.Environ(), "SYNCLAYER_ADDR=http://"+h.addr)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("synclayer %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func execCommand(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "SYNCLAYER_PLUGIN_PATH="+binDir)
	return cmd
}
