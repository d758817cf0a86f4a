package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	badgerstore "github.com/synclayer/synclayer/core/store/badger"

	"time"

	"github.com/synclayer/synclayer/internal/testbin"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
)

// testBinDir holds synclayer-plugin-files and synclayer-plugin-test (the
// raw-protocol connector of core/internal/testconnector), built once by
// TestMain.
var testBinDir string

func TestMain(m *testing.M) {
	testbin.Main(m, &testBinDir, map[string]string{
		"synclayer-plugin-files": "./plugins/files",
		"synclayer-plugin-test":  "./core/internal/testconnector",
	})
}

// testEnv is a data dir, a layer file and the store over the data dir.
type testEnv struct {
	t       *testing.T
	dir     string // scratch space: data files, gates
	dataDir string
	cfgPath string
	st      store.Store
}

func newTestEnv(t *testing.T, hcl string) *testEnv {
	t.Helper()
	root := t.TempDir()
	env := &testEnv{t: t, dir: root, dataDir: filepath.Join(root, "data"), cfgPath: filepath.Join(root, "layers.hcl")}
	env.writeConfig(hcl)
	env.openStore()
	return env
}

func (env *testEnv) path(name string) string { return filepath.Join(env.dir, name) }

func (env *testEnv) writeFile(name, content string) {
	env.t.Helper()
	p := env.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		env.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		env.t.Fatal(err)
	}
}

func (env *testEnv) writeConfig(hcl string) {
	env.t.Helper()
	if err := os.WriteFile(env.cfgPath, []byte(hcl), 0o644); err != nil {
		env.t.Fatal(err)
	}
}

func (env *testEnv) openStore() {
	env.t.Helper()
	st, err := badgerstore.Open(badgerstore.Options{Dir: env.dataDir})
	if err != nil {
		env.t.Fatal(err)
	}
	env.st = st
	env.t.Cleanup(func() { st.Close() })
}

// restartStore closes the store and opens it again, as a new host process
// would.
func (env *testEnv) restartStore() {
	env.t.Helper()
	if err := env.st.Close(); err != nil {
		env.t.Fatal(err)
	}
	env.openStore()
}

func (env *testEnv) config() *config.Config {
	env.t.Helper()
	cfg, diags := config.Load(env.cfgPath)
	if diags.HasErrors() {
		env.t.Fatalf("config.Load: %s", config.FormatDiagnostics(diags))
	}
	return cfg
}

// engine builds an engine over the current layer file and store; it is
// stopped at the end of the test.
func (env *testEnv) engine() *Engine {
	env.t.Helper()
	cfg := env.config()
	pm := plugin.NewManager(plugin.Options{SearchPaths: []string{testBinDir}, Declared: cfg.Plugins})
	e, err := New(Options{Config: cfg, Store: env.st, Plugins: pm})
	if err != nil {
		env.t.Fatal(err)
	}
	env.t.Cleanup(func() { stopEngine(e) })
	return e
}

// start builds and starts an engine.
func (env *testEnv) start() *Engine {
	env.t.Helper()
	e := env.engine()
	if err := e.Start(testCtx(env.t)); err != nil {
		env.t.Fatalf("Start: %v", err)
	}
	return e
}

func stopEngine(e *Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e.Stop(ctx)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitUntil polls cond until it holds, failing the test after 20s.
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

// waitRunEnd waits until a run completed or failed, polling Engine.Run as
// the API does (under -race this also checks that reading a running run is
// race-free).
func waitRunEnd(t *testing.T, e *Engine, layer, id string) *RunStatus {
	t.Helper()
	var rs *RunStatus
	waitUntil(t, "run "+id+" to end", func() bool {
		var err error
		if rs, err = e.Run(layer, id); err != nil {
			t.Fatalf("Run(%s): %v", id, err)
		}
		return rs.State == store.RunCompleted || rs.State == store.RunFailed
	})
	return rs
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// runs returns the run records of a layer.
func runs(t *testing.T, e *Engine, layer string) []*store.Run {
	t.Helper()
	db, err := e.Store(layer)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := db.Runs()
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// events returns a layer's whole event log, with every event the engine
// queued before the call (the event writer trails the engine by a batch).
func events(t *testing.T, e *Engine, layer string) []store.Event {
	t.Helper()
	if l, err := e.layer(layer); err == nil {
		l.syncEvents()
	}
	db, err := e.Store(layer)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := db.Events(0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func eventTypes(evs []store.Event) string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return strings.Join(out, ",")
}

// filesConfig is a layer "cat" with one files source "blog" over dir.
func filesConfig(dir, extra string) string {
	return fmt.Sprintf(`
layer "cat" {
  source "blog" {
    plugin = "files"
    config {
      dir = %q
      %s
    }
  }
}
`, dir, extra)
}

// testConfig is a layer "lay" whose sources use the test connector; each
// entry of sources is a source name and the body of its config block.
func testConfig(sources ...[2]string) string {
	var b strings.Builder
	b.WriteString("layer \"lay\" {\n")
	for _, s := range sources {
		fmt.Fprintf(&b, "  source %q {\n    plugin = \"test\"\n    config {\n%s\n    }\n  }\n", s[0], s[1])
	}
	b.WriteString("}\n")
	return b.String()
}
