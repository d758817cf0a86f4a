package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	badgerstore "github.com/synclayer/synclayer/core/store/badger"

	"time"

	"github.com/synclayer/synclayer/internal/testbin"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/synclayer/synclayer/core/api"
	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
)

// binDir holds synclayer-plugin-files and synclayer-plugin-test (the raw
// protocol connector of core/internal/testconnector), built once by
// TestMain.
var binDir string

func TestMain(m *testing.M) {
	testbin.Main(m, &binDir, map[string]string{
		"synclayer-plugin-files": "./plugins/files",
		"synclayer-plugin-test":  "./core/internal/testconnector",
	})
}

// fixture is an API server over a started engine with a layer "cat" of two
// files sources:
//
//	blog: Post p1, p2, p3
//	shop: Product x1, x2 and Post p1
//
// published as revision 1 by the startup run. With twoRevisions, a second
// run of blog (p1 updated, p2 deleted, p3 unchanged, p4 added) publishes
// revision 2.
type fixture struct {
	t       *testing.T
	dir     string
	srv     *httptest.Server
	eng     *engine.Engine
	token   string
	lastRun string // the run of revision 2
}

type fixtureOpts struct {
	token        string
	keep         int // keep_revisions; 0: default
	layerExtra   string
	twoRevisions bool
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

func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), token: o.token}
	writeFile(t, filepath.Join(f.dir, "blog", "Post.json"),
		`[{"id":"p1","title":"One"},{"id":"p2","title":"Two"},{"id":"p3","title":"Three"}]`)
	writeFile(t, filepath.Join(f.dir, "shop", "Product.json"), `[{"id":"x1","price":1},{"id":"x2","price":2}]`)
	writeFile(t, filepath.Join(f.dir, "shop", "Post.json"), `[{"id":"p1","title":"Shop post"}]`)
	keep := o.layerExtra
	if o.keep > 0 {
		keep += fmt.Sprintf("\n  keep_revisions = %d\n  keep_for = \"0s\"", o.keep)
	}
	cfgPath := filepath.Join(f.dir, "layers.hcl")
	writeFile(t, cfgPath, fmt.Sprintf(`
layer "cat" {
  %s
  source "blog" {
    plugin = "files"
    config { dir = %q }
  }
  source "shop" {
    plugin = "files"
    config { dir = %q }
  }
}
`, keep, filepath.Join(f.dir, "blog"), filepath.Join(f.dir, "shop")))
	cfg, diags := config.Load(cfgPath)
	if diags.HasErrors() {
		t.Fatal(config.FormatDiagnostics(diags))
	}
	// The data dir is where the engine keeps the connections' key file.
	cfg.Service.DataDir = filepath.Join(f.dir, "data")
	st, err := badgerstore.Open(badgerstore.Options{Dir: cfg.Service.DataDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := prometheus.NewRegistry()
	metrics := engine.NewMetrics()
	if err := metrics.Register(reg); err != nil {
		t.Fatal(err)
	}
	pm := plugin.NewManager(plugin.Options{SearchPaths: []string{binDir}})
	e, err := engine.New(engine.Options{Config: cfg, Store: st, Plugins: pm, Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	f.eng = e
	h, err := api.New(api.Options{Engine: e, Plugins: pm, Registry: reg, AdminToken: o.token})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)

	db := f.db()
	waitUntil(t, "revision 1", func() bool { _, ok := db.Newest(); return ok })
	for _, r := range f.runs() {
		f.waitRun(r.ID)
	}
	if o.twoRevisions {
		writeFile(t, filepath.Join(f.dir, "blog", "Post.json"),
			`[{"id":"p1","title":"One, edited"},{"id":"p3","title":"Three"},{"id":"p4","title":"Four"}]`)
		var out struct{ Run string }
		f.do("POST", "/v1/layers/cat/syncs", `{"source":"blog"}`, 202, &out)
		if r := f.waitRun(out.Run); r.State != store.RunCompleted || r.Revision != 2 {
			t.Fatalf("second run %+v", r)
		}
		f.lastRun = out.Run
	}
	return f
}

func (f *fixture) db() store.Layer {
	f.t.Helper()
	db, err := f.eng.Store("cat")
	if err != nil {
		f.t.Fatal(err)
	}
	return db
}

func (f *fixture) runs() []*store.Run {
	f.t.Helper()
	rs, err := f.db().Runs()
	if err != nil {
		f.t.Fatal(err)
	}
	return rs
}

// runView is a run as GET …/runs/{run} shows it.
type runView struct {
	Run      string `json:"run"`
	State    string `json:"state"`
	Revision int64  `json:"revision"`
	Error    string `json:"error"`
}

// waitRun waits for a run to end, polling GET …/runs/{run}.
func (f *fixture) waitRun(id string) runView {
	f.t.Helper()
	var r runView
	waitUntil(f.t, "run "+id, func() bool {
		f.do("GET", "/v1/layers/cat/runs/"+id, "", 200, &r)
		return r.State == store.RunCompleted || r.State == store.RunFailed
	})
	return r
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// request sends a request (with the fixture's token, if any) and returns
// the status, the headers and the body.
func (f *fixture) request(method, path string, body io.Reader, header http.Header) (int, http.Header, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// do sends a request with a JSON body (none when empty), checks the status
// and that the answer is JSON, and decodes it into out.
func (f *fixture) do(method, path, body string, want int, out any) []byte {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	status, h, b := f.request(method, path, rd, nil)
	if status != want {
		f.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, b)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	if !json.Valid(b) {
		f.t.Fatalf("%s %s: answer is not JSON: %s", method, path, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			f.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return b
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// fail sends a request that must fail with status and error code.
func (f *fixture) fail(method, path, body string, status int, code string) apiError {
	f.t.Helper()
	var e apiError
	f.do(method, path, body, status, &e)
	if e.Error.Code != code || e.Error.Message == "" {
		f.t.Errorf("%s %s: error %+v, want code %q and a message", method, path, e.Error, code)
	}
	return e
}

func httptestServer(t *testing.T, h http.Handler) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}
