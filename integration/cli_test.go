package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// synclayerCLI runs the synclayer binary with plugins from binDir and returns its
// combined output and exit code.
func synclayerCLI(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin("synclayer"), args...)
	cmd.Env = append(append(os.Environ(), "SYNCLAYER_PLUGIN_PATH="+binDir), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestCLIDiagnostics: what the command line says about a configuration
// it cannot use, with and without starting plugins.
func TestCLIDiagnostics(t *testing.T) {
	dir := t.TempDir()
	layer := func(plugin, config string) string {
		p := filepath.Join(dir, "layer.hcl")
		writeFile(t, p, "layer \"demo\" {\n  source \"s1\" {\n    plugin = \""+plugin+"\"\n    config {\n"+config+"    }\n  }\n}\n")
		return p
	}
	os.Unsetenv("SYNCLAYER_TEST_UNSET")

	// A misspelt plugin: not valid, with or without --no-plugins.
	p := layer("flies", "      dir = \".\"\n")
	for _, args := range [][]string{{"validate", "--config", p}, {"validate", "--no-plugins", "--config", p}} {
		out, code := synclayerCLI(t, nil, args...)
		if code == 0 || !strings.Contains(out, "layer.hcl:3:14: error: Plugin not found") || !strings.Contains(out, `Did you mean "files"?`) || strings.Contains(out, "valid\n") {
			t.Errorf("%v: exit %d:\n%s", args, code, out)
		}
	}
	// serve stops before it opens the store or listens.
	out, code := synclayerCLI(t, nil, "serve", "--config", p, "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(out, "Plugin not found") || strings.Contains(out, "listening") {
		t.Errorf("serve with a missing plugin: exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Errorf("serve created the data dir before finding the plugin missing")
	}

	// An unset env() in a config block, even in a sensitive attribute:
	// named, with its position.
	p = filepath.Join(dir, "rest.hcl")
	writeFile(t, p, `layer "demo" {
  source "api" {
    plugin = "rest"
    config {
      base_url = "http://127.0.0.1:1"
      headers  = { Authorization = "Bearer ${env("SYNCLAYER_TEST_UNSET")}" }
      models   = { A = { path = "/a" } }
    }
  }
}
`)
	for _, args := range [][]string{{"validate", "--config", p}, {"validate", "--no-plugins", "--config", p}} {
		out, code := synclayerCLI(t, nil, args...)
		if code == 0 || !strings.Contains(out, "rest.hcl:6:") || !strings.Contains(out, "environment variable SYNCLAYER_TEST_UNSET is not set") {
			t.Errorf("%v: exit %d:\n%s", args, code, out)
		}
	}

	// A misspelt config key: --no-plugins says it did not check it.
	p = layer("files", "      dirr = \".\"\n")
	out, code = synclayerCLI(t, nil, "validate", "--no-plugins", "--config", p)
	if code != 0 || strings.Contains(out, ": valid") || !strings.Contains(out, "not checked without --no-plugins: 1 config block(s)") {
		t.Errorf("validate --no-plugins: exit %d:\n%s", code, out)
	}
	out, code = synclayerCLI(t, nil, "validate", "--config", p)
	if code == 0 || !strings.Contains(out, "layer.hcl:5:7: error: Unsupported argument") || !strings.Contains(out, `Did you mean "dir"?`) {
		t.Errorf("validate: exit %d:\n%s", code, out)
	}

	// A config block the connector refuses: at the block.
	p = filepath.Join(dir, "pages.hcl")
	writeFile(t, p, `layer "demo" {
  source "api" {
    plugin = "rest"
    config {
      base_url = "http://127.0.0.1:1"
      models   = { A = { path = "/a", page = { type = "pages" } } }
    }
  }
}
`)
	out, code = synclayerCLI(t, nil, "validate", "--config", p)
	if code == 0 || !strings.Contains(out, "pages.hcl:4:5: error: Invalid config") || !strings.Contains(out, `"pages" must be one of`) {
		t.Errorf("validate: exit %d:\n%s", code, out)
	}

	// --addr belongs to the commands that talk to a running host.
	if out, code := synclayerCLI(t, nil, "validate", "--addr", "http://x", "--config", p); code == 0 || !strings.Contains(out, "unknown flag: --addr") {
		t.Errorf("validate --addr: exit %d:\n%s", code, out)
	}
	if out, code := synclayerCLI(t, nil, "revisions", "--help"); code != 0 || !strings.Contains(out, "--addr") {
		t.Errorf("revisions --help: exit %d:\n%s", code, out)
	}
}
