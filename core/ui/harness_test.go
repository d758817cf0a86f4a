package ui_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	badgerstore "github.com/synclayer/synclayer/core/store/badger"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/synclayer/synclayer/core/api"
	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/notify"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
	"github.com/synclayer/synclayer/core/ui"
	"github.com/synclayer/synclayer/internal/testbin"
)

// binDir holds synclayer-plugin-files, built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	testbin.Main(m, &binDir, map[string]string{"synclayer-plugin-files": "./plugins/files", "synclayer-plugin-test": "./core/internal/testconnector"})
}

const (
	testToken = "ui-test-admin-token-0123456789"
	// notifySecret is a Standard Webhooks secret (24 zero bytes).
	notifySecret = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	products     = 31
)

// fixture is the host as serve wires it, in process: a store, an engine
// with real files plugins, the notifier, and the API with the dashboard
// mounted, on a real HTTP server. Layers:
//
//	shop: source catalog (files), Product p00…p30; notify "app" to a
//	      receiver that fails (500) until receiverOK is set
//	blog: source posts (files), Post a, b; synced hourly
//	crm:  source accounts (the test connector) with connections, none at
//	      start, each sending Items 1 and 2 (records = 2), synced hourly;
//	      source companies (files), Company c1. (A layer whose only source
//	      has connections does not start yet: its first run finds nothing
//	      to sync.)
type fixture struct {
	t          *testing.T
	dir        string
	srv        *httptest.Server
	eng        *engine.Engine
	dash       *ui.UI
	receiverOK atomic.Bool
	received   atomic.Int64
}

type fixtureOpts struct {
	token string
	now   func() time.Time
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

func productsJSON(n int, extra string) string {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"p%02d","title":"Product %d","price":%d}`, i, i, 100+i)
	}
	b.WriteString(extra + "]")
	return b.String()
}

func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir()}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		f.received.Add(1)
		if !f.receiverOK.Load() {
			http.Error(w, "receiver is down for the test", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)
	writeFile(t, filepath.Join(f.dir, "catalog", "Product.json"), productsJSON(products, ""))
	writeFile(t, filepath.Join(f.dir, "posts", "Post.json"), `[{"id":"a","title":"A"},{"id":"b","title":"B"}]`)
	writeFile(t, filepath.Join(f.dir, "companies", "Company.json"), `[{"id":"c1","name":"Acme"}]`)
	cfgPath := filepath.Join(f.dir, "layers.hcl")
	writeFile(t, cfgPath, fmt.Sprintf(`
layer "shop" {
  source "catalog" {
    plugin = "files"
    config { dir = %q }
  }
  notify "app" {
    url    = %q
    secret = %q
    events = ["sync.completed"]
  }
}

layer "blog" {
  source "posts" {
    plugin = "files"
    config { dir = %q }
    sync "files" { every = "1h" }
  }
}

layer "crm" {
  source "accounts" {
    plugin      = "test"
    connections = true
    config { mode = "ok" }
    sync "items" { every = "1h" }
  }
  source "companies" {
    plugin = "files"
    config { dir = %q }
  }
}
`, filepath.Join(f.dir, "catalog"), receiver.URL+"/hook", notifySecret, filepath.Join(f.dir, "posts"), filepath.Join(f.dir, "companies")))
	cfg, diags := config.Load(cfgPath)
	if diags.HasErrors() {
		t.Fatal(config.FormatDiagnostics(diags))
	}
	// The host's files (the key that seals connection configs) go to the
	// test's folder, not ./data of the package.
	cfg.Service.DataDir = filepath.Join(f.dir, "data")
	st, err := badgerstore.Open(badgerstore.Options{Dir: filepath.Join(f.dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := prometheus.NewRegistry()
	pm := plugin.NewManager(plugin.Options{SearchPaths: []string{binDir}})
	e, err := engine.New(engine.Options{Config: cfg, Store: st, Plugins: pm})
	if err != nil {
		t.Fatal(err)
	}
	f.eng = e
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	// No retries: a delivery the receiver refuses fails at once, so the
	// dashboard has a failed delivery to redeliver.
	n := notify.New(notify.Options{Store: st, Config: cfg, Schedule: []time.Duration{}})
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(context.Background()) })
	f.dash, err = ui.New(ui.Options{Now: o.now})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Options{Engine: e, Plugins: pm, Registry: reg, AdminToken: o.token, Store: st, Dashboard: f.dash})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewUnstartedServer(h)
	f.srv.Config = h.HTTPServer()
	f.srv.Listener = h.Listener(f.srv.Listener)
	f.srv.Start()
	t.Cleanup(func() {
		h.StopStreams()
		f.srv.Close()
	})
	for _, layer := range []string{"shop", "blog", "crm"} {
		db := f.db(layer)
		waitUntil(t, "the first revision of "+layer, func() bool { _, ok := db.Newest(); return ok })
	}
	return f
}

func (f *fixture) db(layer string) store.Layer {
	f.t.Helper()
	db, err := f.eng.Store(layer)
	if err != nil {
		f.t.Fatal(err)
	}
	return db
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client is a browser-like HTTP client: a cookie jar, no redirects
// followed (tests look at them).
type client struct {
	t *testing.T
	f *fixture
	c *http.Client
}

func (f *fixture) client() *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return &client{t: f.t, f: f, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (c *client) do(method, path string, form url.Values, header http.Header) answer {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.f.srv.URL+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func (c *client) get(path string) answer { c.t.Helper(); return c.do("GET", path, nil, nil) }

func (c *client) post(path string, form url.Values) answer {
	c.t.Helper()
	return c.do("POST", path, form, nil)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token in a page.
func csrf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

// signIn signs the client in and returns the CSRF token of its session.
func (c *client) signIn(token string) string {
	c.t.Helper()
	page := c.get("/ui/signin")
	if page.status != http.StatusOK {
		c.t.Fatalf("GET /ui/signin: %d", page.status)
	}
	a := c.post("/ui/signin", url.Values{"csrf": {csrf(c.t, page.body)}, "token": {token}, "next": {"/ui/"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != "/ui/" {
		c.t.Fatalf("sign-in: %d %s", a.status, a.body)
	}
	over := c.get("/ui/")
	if over.status != http.StatusOK {
		c.t.Fatalf("GET /ui/ after sign-in: %d", over.status)
	}
	return csrf(c.t, over.body)
}

// runsOf lists a layer's runs in a state ("" for all), newest first.
func (f *fixture) runsOf(layer, state string) []*store.Run {
	f.t.Helper()
	runs, err := f.db(layer).RecentRuns(1000)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []*store.Run
	for _, r := range runs {
		if state == "" || r.State == state {
			out = append(out, r)
		}
	}
	return out
}

func engineManual() engine.TriggerRequest {
	return engine.TriggerRequest{Trigger: engine.TriggerManual}
}
