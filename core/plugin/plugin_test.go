package plugin_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/plugin"
)

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// manager returns a Manager over binDir that is shut down at the end of the
// test.
func manager(t *testing.T, declared map[string]*config.Plugin) *plugin.Manager {
	t.Helper()
	m := plugin.NewManager(plugin.Options{SearchPaths: []string{binDir}, Declared: declared})
	t.Cleanup(m.Shutdown)
	return m
}

func TestFindPluginBlockPath(t *testing.T) {
	dir, search := t.TempDir(), t.TempDir()
	own := filepath.Join(dir, "my-files-build")
	writeFile(t, own, "#!/bin/sh\n", 0o755)
	writeFile(t, filepath.Join(search, "synclayer-plugin-files"), "x", 0o755)
	writeFile(t, filepath.Join(search, "synclayer-plugin-sum"), "x", 0o755)
	m := plugin.NewManager(plugin.Options{
		SearchPaths: []string{search},
		Declared: map[string]*config.Plugin{
			"files":   {Name: "files", Path: own},
			"missing": {Name: "missing", Path: filepath.Join(dir, "nope")},
			"sum":     {Name: "sum", SHA256: "ABCDEF"},
		},
	})
	// The plugin block's path wins over a binary in the search paths.
	f, err := m.Find("files")
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != own || f.Name != "files" {
		t.Errorf("Find(files) = %+v, want the plugin block's path %s", f, own)
	}
	// A plugin block path that does not exist is an error naming the block,
	// not a fallback to the search paths.
	_, err = m.Find("missing")
	if err == nil || !strings.Contains(err.Error(), "plugin block") || !strings.Contains(err.Error(), `"missing"`) {
		t.Errorf("Find(missing) error = %v, want one naming the plugin block", err)
	}
	// A block without a path still looks in the search paths, and carries
	// its checksum, lower-cased.
	f, err = m.Find("sum")
	if err != nil {
		t.Fatal(err)
	}
	if f.SHA256 != "abcdef" || f.Path != filepath.Join(search, "synclayer-plugin-sum") {
		t.Errorf("Find(sum) = %+v", f)
	}
}

func TestFindSearchPathOrder(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(first, "synclayer-plugin-a"), "1", 0o755)
	writeFile(t, filepath.Join(second, "synclayer-plugin-a"), "2", 0o755)
	writeFile(t, filepath.Join(second, "synclayer-plugin-b"), "2", 0o755)
	// A directory with a plugin's name is not a plugin.
	if err := os.MkdirAll(filepath.Join(first, "synclayer-plugin-c"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(second, "synclayer-plugin-c"), "2", 0o755)

	m := plugin.NewManager(plugin.Options{SearchPaths: []string{first, second}})
	for name, want := range map[string]string{
		"a": filepath.Join(first, "synclayer-plugin-a"),
		"b": filepath.Join(second, "synclayer-plugin-b"),
		"c": filepath.Join(second, "synclayer-plugin-c"),
	} {
		f, err := m.Find(name)
		if err != nil {
			t.Errorf("Find(%s): %v", name, err)
			continue
		}
		if f.Path != want {
			t.Errorf("Find(%s) = %s, want %s", name, f.Path, want)
		}
	}

	// A relative search path gives an absolute path.
	wd, _ := os.Getwd()
	rel, err := filepath.Rel(wd, first)
	if err != nil {
		t.Fatal(err)
	}
	f, err := plugin.NewManager(plugin.Options{SearchPaths: []string{rel}}).Find("a")
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != filepath.Join(first, "synclayer-plugin-a") {
		t.Errorf("relative search path: Find(a) = %s, want absolute %s", f.Path, filepath.Join(first, "synclayer-plugin-a"))
	}
}

func TestFindNotFoundNamesThePaths(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	m := plugin.NewManager(plugin.Options{SearchPaths: []string{first, second}})
	_, err := m.Find("nope")
	if err == nil {
		t.Fatal("Find(nope) succeeded")
	}
	for _, want := range []string{"synclayer-plugin-nope", first, second, `plugin "nope"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// The paths are listed in search order.
	if strings.Index(err.Error(), first) > strings.Index(err.Error(), second) {
		t.Errorf("error %q lists the search paths out of order", err)
	}
}

func TestDefaultSearchPaths(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	t.Setenv("SYNCLAYER_PLUGIN_PATH", a+string(os.PathListSeparator)+b)
	got := plugin.DefaultSearchPaths()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"./bin", a, b, filepath.Dir(exe)}
	if !slices.Equal(got, want) {
		t.Errorf("DefaultSearchPaths() = %q, want %q", got, want)
	}
	// A Manager without SearchPaths uses them.
	writeFile(t, filepath.Join(b, "synclayer-plugin-envonly"), "x", 0o755)
	f, err := plugin.NewManager(plugin.Options{}).Find("envonly")
	if err != nil || f.Path != filepath.Join(b, "synclayer-plugin-envonly") {
		t.Errorf("Find through $SYNCLAYER_PLUGIN_PATH = %+v, %v", f, err)
	}
}

func TestList(t *testing.T) {
	first, second, other := t.TempDir(), t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(first, "synclayer-plugin-b"), "1", 0o755)
	writeFile(t, filepath.Join(second, "synclayer-plugin-b"), "2", 0o755)
	writeFile(t, filepath.Join(second, "synclayer-plugin-a"), "2", 0o755)
	writeFile(t, filepath.Join(second, "README.md"), "not a plugin", 0o644)
	if err := os.MkdirAll(filepath.Join(first, "synclayer-plugin-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	declared := filepath.Join(other, "custom-build")
	writeFile(t, declared, "3", 0o755)
	m := plugin.NewManager(plugin.Options{
		SearchPaths: []string{first, filepath.Join(first, "does-not-exist"), second},
		Declared: map[string]*config.Plugin{
			"z":    {Name: "z", Path: declared},
			"b":    {Name: "b", Path: declared},
			"gone": {Name: "gone", Path: filepath.Join(other, "gone")},
		},
	})
	got := m.List()
	var names, paths []string
	for _, f := range got {
		names = append(names, f.Name)
		paths = append(paths, f.Path)
	}
	if want := []string{"a", "b", "z"}; !slices.Equal(names, want) {
		t.Fatalf("List names = %q, want %q (sorted, deduplicated, no dirs, no missing blocks)", names, want)
	}
	wantPaths := []string{filepath.Join(second, "synclayer-plugin-a"), declared, declared}
	if !slices.Equal(paths, wantPaths) {
		t.Errorf("List paths = %q, want %q", paths, wantPaths)
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestChecksumMismatchIsRefused(t *testing.T) {
	real := fileSum(t, filepath.Join(binDir, "synclayer-plugin-files"))
	wrong := strings.Repeat("0", 64)
	m := manager(t, map[string]*config.Plugin{"files": {Name: "files", SHA256: wrong}})
	inst, err := m.Launch(ctxT(t), plugin.LaunchSpec{Plugin: "files", Layer: "l", Source: "s"})
	if err == nil {
		inst.Kill()
		t.Fatal("a binary with another checksum was launched")
	}
	var cm *plugin.ChecksumMismatchError
	if !errors.As(err, &cm) {
		t.Fatalf("error %T %v, want *plugin.ChecksumMismatchError", err, err)
	}
	if cm.Want != wrong || cm.Got != real {
		t.Errorf("ChecksumMismatchError = %+v, want Want %s Got %s", cm, wrong, real)
	}
	for _, s := range []string{wrong, real, "files"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	if pids := childPlugins(t); len(pids) != 0 {
		t.Errorf("a refused plugin left processes %v", pids)
	}

	// Not hex: refused with a clear error.
	m = manager(t, map[string]*config.Plugin{"files": {Name: "files", SHA256: "zz"}})
	if _, err := m.Launch(ctxT(t), plugin.LaunchSpec{Plugin: "files"}); err == nil || !strings.Contains(err.Error(), "not hex") {
		t.Errorf("non-hex sha256: error %v", err)
	}

	// The right checksum, in upper case, launches.
	m = manager(t, map[string]*config.Plugin{"files": {Name: "files", SHA256: strings.ToUpper(real)}})
	inst, err = m.Launch(ctxT(t), plugin.LaunchSpec{Plugin: "files"})
	if err != nil {
		t.Fatalf("the right checksum was refused: %v", err)
	}
	if _, err := inst.Describe(ctxT(t), "", "", nil); err != nil {
		t.Fatal(err)
	}
}

func TestLaunchNotAPlugin(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "synclayer-plugin-broken"), "#!/bin/sh\necho oops >&2\nexit 1\n", 0o755)
	m := plugin.NewManager(plugin.Options{SearchPaths: []string{dir}, StartTimeout: 10 * time.Second})
	t.Cleanup(m.Shutdown)
	_, err := m.Launch(ctxT(t), plugin.LaunchSpec{Plugin: "broken"})
	if err == nil || !strings.Contains(err.Error(), `plugin "broken"`) || !strings.Contains(err.Error(), "did not start") {
		t.Errorf("error %v, want one saying plugin \"broken\" did not start", err)
	}
	if _, err := m.Launch(ctxT(t), plugin.LaunchSpec{Plugin: "absent"}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("launching an absent plugin: %v", err)
	}
}

func TestLaunchAndDescribeFiles(t *testing.T) {
	m := manager(t, nil)
	inst, err := m.Launch(ctxT(t), plugin.LaunchSpec{Plugin: "files", Layer: "l", Source: "s", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if inst.Path() != filepath.Join(binDir, "synclayer-plugin-files") {
		t.Errorf("Path() = %s", inst.Path())
	}
	if inst.Started().IsZero() || inst.Exited() {
		t.Errorf("Started %v, Exited %v", inst.Started(), inst.Exited())
	}
	d, err := inst.Describe(ctxT(t), "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "files" || d.Version == "" || d.ProtocolVersion != 1 {
		t.Errorf("Describe = name %q version %q protocol %d", d.Name, d.Version, d.ProtocolVersion)
	}
	fields := map[string]config.Field{}
	for _, f := range d.Config {
		fields[f.Name] = f
	}
	if f, ok := fields["dir"]; !ok || !f.Required || !f.Type.Equals(cty.String) || f.Description == "" {
		t.Errorf("config field dir = %+v, want a required string with a description", f)
	}
	if f, ok := fields["id_field"]; !ok || f.Required || !f.Type.Equals(cty.String) {
		t.Errorf("config field id_field = %+v, want an optional string", f)
	}
	if len(d.Sensitive()) != 0 {
		t.Errorf("Sensitive() = %q, want none", d.Sensitive())
	}
	if s := d.Sync("files"); s == nil || !s.Incremental {
		t.Errorf("Sync(files) = %+v, want an incremental sync", s)
	}
	if d.Sync("nope") != nil {
		t.Error("Sync(nope) is not nil")
	}

	// With a configuration, the models are the folder's files.
	data := t.TempDir()
	writeFile(t, filepath.Join(data, "Post.json"), `[{"id":"p1"}]`, 0o644)
	writeFile(t, filepath.Join(data, "Tag.csv"), "id,name\nt1,go\n", 0o644)
	cfg, _ := json.Marshal(map[string]string{"dir": data})
	d, err = inst.Describe(ctxT(t), "l", "s", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var models []string
	for _, mm := range d.Models {
		models = append(models, mm.Name)
	}
	if !slices.Equal(models, []string{"Post", "Tag"}) {
		t.Errorf("models = %q, want [Post Tag]", models)
	}
	if !d.HasModel("Post") || d.HasModel("Nope") {
		t.Error("HasModel is wrong")
	}
	if s := d.Sync("files"); s == nil || !slices.Equal(s.Models, []string{"Post", "Tag"}) {
		t.Errorf("Sync(files) = %+v, want models [Post Tag]", s)
	}

	// Check: the folder is readable, or the connector says why not.
	if err := inst.Check(ctxT(t), "l", "s", cfg); err != nil {
		t.Errorf("Check: %v", err)
	}
	bad, _ := json.Marshal(map[string]string{"dir": filepath.Join(data, "missing")})
	err = inst.Check(ctxT(t), "l", "s", bad)
	var ce *plugin.ConnectorError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Check of a missing dir: %T %v, want a *plugin.ConnectorError", err, err)
	}
}

func TestSyncFilesThroughInstance(t *testing.T) {
	m := manager(t, nil)
	inst, err := m.Launch(ctxT(t), plugin.LaunchSpec{Plugin: "files", Layer: "l", Source: "s"})
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	writeFile(t, filepath.Join(data, "Post.json"), `[{"id":"p1","title":"One"},{"id":"p2","title":"Two"}]`, 0o644)
	writeFile(t, filepath.Join(data, "Tag.jsonl"), `{"id":"t1"}`+"\n", 0o644)
	cfg, _ := json.Marshal(map[string]string{"dir": data})

	type msg struct {
		kind string
		ids  []string
		cp   []byte
	}
	collect := func(full bool, cp []byte) []msg {
		t.Helper()
		var out []msg
		err := inst.Sync(ctxT(t), plugin.SyncRequest{Layer: "l", Source: "s", Config: cfg, Sync: "files", Models: []string{"Post", "Tag"}, Full: full, Checkpoint: cp},
			func(m *plugin.Message) error {
				switch {
				case m.Changes != nil:
					var ids []string
					for _, c := range m.Changes {
						if c.Delete {
							t.Errorf("unexpected delete %+v", c)
						}
						if !json.Valid(c.Data) {
							t.Errorf("change %s/%s: data %q is not JSON", c.Model, c.ID, c.Data)
						}
						ids = append(ids, c.Model+"/"+c.ID)
					}
					out = append(out, msg{kind: "changes", ids: ids})
				case m.Checkpoint != nil:
					out = append(out, msg{kind: "checkpoint", cp: append([]byte(nil), m.Checkpoint...)})
				}
				return nil
			})
		if err != nil {
			t.Fatalf("Sync: %v", err)
		}
		return out
	}

	msgs := collect(true, nil)
	// The files connector sends each file's records, then a checkpoint
	// that covers them.
	var kinds, ids []string
	var cp []byte
	for _, m := range msgs {
		kinds = append(kinds, m.kind)
		ids = append(ids, m.ids...)
		if m.kind == "checkpoint" {
			cp = m.cp
		}
	}
	if want := []string{"changes", "checkpoint", "changes", "checkpoint"}; !slices.Equal(kinds, want) {
		t.Fatalf("message kinds %q, want %q", kinds, want)
	}
	if want := []string{"Post/p1", "Post/p2", "Tag/t1"}; !slices.Equal(ids, want) {
		t.Errorf("changes %q, want %q in file order", ids, want)
	}
	var state struct {
		Files map[string]json.RawMessage `json:"files"`
	}
	if err := json.Unmarshal(cp, &state); err != nil || len(state.Files) != 2 {
		t.Errorf("last checkpoint %s: want the state of both files (%v)", cp, err)
	}

	// An incremental run from that checkpoint sends no changes, only the
	// checkpoint again.
	msgs = collect(false, cp)
	if len(msgs) != 1 || msgs[0].kind != "checkpoint" {
		t.Errorf("incremental run with nothing changed: messages %+v, want a single checkpoint", msgs)
	}

	// The handler's error cancels the sync and is returned as is.
	stop := errors.New("stop here")
	err = inst.Sync(ctxT(t), plugin.SyncRequest{Config: cfg, Sync: "files", Models: []string{"Post", "Tag"}, Full: true},
		func(*plugin.Message) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("Sync with a failing handler returned %v, want the handler's error", err)
	}
	// A connector error comes back as a *plugin.ConnectorError.
	bad, _ := json.Marshal(map[string]string{"dir": filepath.Join(data, "missing")})
	err = inst.Sync(ctxT(t), plugin.SyncRequest{Config: bad, Sync: "files", Models: []string{"Post"}, Full: true},
		func(*plugin.Message) error { return nil })
	var ce *plugin.ConnectorError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Sync of a missing dir: %T %v, want a *plugin.ConnectorError", err, err)
	}
	if inst.Exited() {
		t.Error("the plugin exited after a connector error")
	}
}

func TestCrashDuringSync(t *testing.T) {
	m := manager(t, nil)
	inst, err := m.Launch(ctxT(t), plugin.LaunchSpec{Plugin: "test", Layer: "l", Source: "s"})
	if err != nil {
		t.Fatal(err)
	}
	err = inst.Sync(ctxT(t), plugin.SyncRequest{Layer: "l", Source: "s", Config: []byte(`{"mode":"exit"}`), Sync: "items", Models: []string{"Item"}},
		func(*plugin.Message) error { return nil })
	var crash *plugin.CrashError
	if !errors.As(err, &crash) {
		t.Fatalf("Sync of a plugin that exits: %T %v, want a *plugin.CrashError", err, err)
	}
	if crash.Plugin != "test" || crash.Call != "Sync" || !strings.Contains(err.Error(), "crashed") {
		t.Errorf("CrashError = %+v (%v)", crash, err)
	}
	if !inst.Exited() {
		t.Error("Exited() is false after the plugin process died")
	}
	// Another call on the dead instance is a crash too, not a hang.
	if _, err := inst.Describe(ctxT(t), "", "", nil); !errors.As(err, &crash) {
		t.Errorf("Describe on a dead plugin: %T %v, want a *plugin.CrashError", err, err)
	}
	// A fresh instance works.
	inst2, err := m.Launch(ctxT(t), plugin.LaunchSpec{Plugin: "test", Layer: "l", Source: "s"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = inst2.Sync(ctxT(t), plugin.SyncRequest{Config: []byte(`{"mode":"ok","records":3}`), Sync: "items", Models: []string{"Item"}},
		func(m *plugin.Message) error { n += len(m.Changes); return nil })
	if err != nil || n != 3 {
		t.Errorf("a relaunched plugin: %d changes, %v", n, err)
	}
}

func TestPluginEnvironmentExcludesHostSecrets(t *testing.T) {
	t.Setenv("SYNCLAYER_TEST_SECRET", "hunter2")
	m := manager(t, nil)
	inst, err := m.Launch(ctxT(t), plugin.LaunchSpec{Plugin: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	err = inst.Sync(ctxT(t), plugin.SyncRequest{Config: []byte(`{"mode":"env"}`), Sync: "items", Models: []string{"Item"}},
		func(m *plugin.Message) error {
			for _, c := range m.Changes {
				var rec struct{ Env []string }
				if err := json.Unmarshal(c.Data, &rec); err != nil {
					return err
				}
				env = rec.Env
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(env) == 0 {
		t.Fatal("the test connector sent no environment")
	}
	for _, kv := range env {
		if strings.Contains(kv, "hunter2") || strings.HasPrefix(kv, "SYNCLAYER_TEST_SECRET=") {
			t.Errorf("the plugin sees the host's environment: %q", kv)
		}
	}
}

func TestShutdownLeavesNoProcess(t *testing.T) {
	if pids := childPlugins(t); len(pids) != 0 {
		t.Fatalf("plugin processes before the test: %v", pids)
	}
	m := plugin.NewManager(plugin.Options{SearchPaths: []string{binDir}})
	var insts []*plugin.Instance
	for _, name := range []string{"files", "test", "test"} {
		inst, err := m.Launch(ctxT(t), plugin.LaunchSpec{Plugin: name})
		if err != nil {
			m.Shutdown()
			t.Fatal(err)
		}
		insts = append(insts, inst)
	}
	// One of them is killed before Shutdown: Shutdown must cope.
	insts[2].Kill()
	if !insts[2].Exited() {
		t.Error("Exited() is false after Kill")
	}
	if pids := childPlugins(t); len(pids) != 2 {
		t.Errorf("plugin processes %v, want 2 running", pids)
	}
	m.Shutdown()
	if pids := childPlugins(t); len(pids) != 0 {
		t.Errorf("plugin processes %v left after Shutdown", pids)
	}
	for i, inst := range insts {
		if !inst.Exited() {
			t.Errorf("instance %d: Exited() is false after Shutdown", i)
		}
	}
	if _, err := m.Launch(ctxT(t), plugin.LaunchSpec{Plugin: "files"}); err == nil || !strings.Contains(err.Error(), "shut down") {
		t.Errorf("Launch after Shutdown: %v, want an error", err)
	}
	if pids := childPlugins(t); len(pids) != 0 {
		t.Errorf("Launch after Shutdown left processes %v", pids)
	}
}
