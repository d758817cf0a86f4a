package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPluginConnectionSecurity drives the host's plugin channel as serve
// sets it up: by default each plugin is told a socket directory only the
// host's user can open and no TLS material; with SYNCLAYER_PLUGIN_MTLS=1 it
// is handed the host's certificate for mutual TLS, and the layer syncs
// either way.
func TestPluginConnectionSecurity(t *testing.T) {
	for _, mtls := range []bool{false, true} {
		t.Run(fmt.Sprintf("mtls=%t", mtls), func(t *testing.T) {
			if mtls {
				t.Setenv("SYNCLAYER_PLUGIN_MTLS", "1")
			}
			dir := t.TempDir()
			cfg := filepath.Join(dir, "layer.hcl")
			writeFile(t, cfg, `
service {
  plugin_idle_timeout = "10m"
}
layer "l" {
  source "g" {
    plugin = "generator"
    config {
      records = 20
      models  = ["Item"]
    }
  }
}
`)
			h := startHost(t, cfg, "")
			h.waitRevision("l", 1, time.Minute)
			env := childEnv(t, h.cmd.Process.Pid)
			sockDir := env["PLUGIN_UNIX_SOCKET_DIR"]
			st, err := os.Stat(sockDir)
			if sockDir == "" || err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
				t.Fatalf("the plugin's socket directory %q: %v %v", sockDir, st, err)
			}
			if _, has := env["PLUGIN_CLIENT_CERT"]; has != mtls {
				t.Fatalf("the plugin was given the host's certificate: %t, want %t", has, mtls)
			}
		})
	}
}

// childEnv is the environment a child process of pid started with.
func childEnv(t *testing.T, pid int) map[string]string {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces; ppid follows
		// the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(filepath.Dir(p), "environ"))
		if err != nil {
			continue
		}
		env := map[string]string{}
		for _, kv := range strings.Split(string(raw), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
		if _, ok := env["SYNCLAYER_PLUGIN_MAGIC_COOKIE"]; ok {
			return env
		}
	}
	t.Fatalf("no plugin process under the host (pid %d)", pid)
	return nil
}
