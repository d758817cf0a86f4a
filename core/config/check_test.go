package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestSuggest(t *testing.T) {
	opts := []string{"files", "rest", "postgres", "generator"}
	for name, want := range map[string]string{
		"flies": "files", "Files": "files", "res": "rest", "postgress": "postgres", "genrator": "generator",
		"shopify": "", "x": "", "": "",
	} {
		if got := Suggest(name, opts); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", name, got, want)
		}
	}
	if got := DidYouMean("flies", opts); got != ` Did you mean "files"?` {
		t.Errorf("DidYouMean = %q", got)
	}
}

func TestCheckPluginsAndFunctions(t *testing.T) {
	t.Setenv("CFG_TEST_UNSET_X", "")
	os.Unsetenv("CFG_TEST_UNSET_X")
	src := `layer "l" {
  source "a" {
    plugin = "flies"
  }
  source "b" {
    plugin = "files"
    config {
      dir   = env("CFG_TEST_UNSET_X")
      fine  = env("CFG_TEST_UNSET_X", "default")
      inner = { x = file("no-such-file.txt") }
    }
  }
  source "c" {
    plugin = "flies"
  }
}
`
	path := writeFile(t, t.TempDir(), "l.hcl", src)
	cfg := mustLoad(t, path)
	find := func(name string) error {
		if name == "files" {
			return nil
		}
		return errors.New("plugin " + name + " not found: looked in ./bin")
	}
	out := FormatDiagnostics(CheckPlugins(cfg, find, []string{"files", "rest"}))
	want := path + `:3:14: error: Plugin not found; Source "a" of layer "l": plugin flies not found: looked in ./bin. Did you mean "files"?`
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || lines[0] != want || !strings.HasPrefix(lines[1], path+":14:14:") {
		t.Errorf("CheckPlugins:\n%s\nwant first line\n%s", out, want)
	}
	out = FormatDiagnostics(CheckConfigFunctions(cfg.Layers[0].Sources[1]))
	if !strings.Contains(out, path+":8:15: error: Error in function call; Call to function \"env\" failed: environment variable CFG_TEST_UNSET_X is not set") ||
		!strings.Contains(out, path+":10:21: error: Error in function call") || !strings.Contains(out, "no-such-file.txt") || strings.Count(out, "\n") != 2 {
		t.Errorf("CheckConfigFunctions:\n%s", out)
	}
	if d := CheckConfigFunctions(cfg.Layers[0].Sources[0]); d != nil {
		t.Errorf("a source without config block: %v", d)
	}
}
