package plugin_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/synclayer/synclayer/core/plugin"
)

// By default a plugin listens in a directory only the host's user can
// open, without TLS; Shutdown removes the directory.
func TestPluginSocketInAPrivateDirectory(t *testing.T) {
	m := plugin.NewManager(plugin.Options{SearchPaths: []string{binDir}})
	defer m.Shutdown()
	var dir string
	for i := 0; i < 2; i++ {
		inst, err := m.Launch(ctxT(t), plugin.LaunchSpec{Plugin: "files", Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inst.Describe(ctxT(t), "", "", nil); err != nil {
			t.Fatal(err)
		}
		sock := inst.SocketPath()
		if dir == "" {
			dir = m.SocketDir()
		}
		if dir == "" || filepath.Dir(sock) != dir {
			t.Fatalf("launch %d listens on %q, want a socket in the manager's directory %q", i, sock, dir)
		}
		if st, err := os.Stat(sock); err != nil || st.Mode()&os.ModeSocket == 0 {
			t.Fatalf("socket %s: %v %v", sock, st, err)
		}
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 || !st.IsDir() {
		t.Errorf("socket directory %s has mode %v, want drwx------", dir, st.Mode())
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || int(sys.Uid) != os.Geteuid() {
		t.Errorf("socket directory %s is not owned by the host's user", dir)
	}
	m.Shutdown()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("socket directory %s left after Shutdown: %v", dir, err)
	}
}

// With MutualTLS the same launch works over mutual TLS (tls_test.go checks
// the certificates themselves).
func TestLaunchWithMutualTLS(t *testing.T) {
	m := plugin.NewManager(plugin.Options{SearchPaths: []string{binDir}, MutualTLS: true})
	defer m.Shutdown()
	inst, err := m.Launch(ctxT(t), plugin.LaunchSpec{Plugin: "files", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	d, err := inst.Describe(ctxT(t), "", "", nil)
	if err != nil || d.Name != "files" {
		t.Fatalf("Describe over mutual TLS: %+v %v", d, err)
	}
}
