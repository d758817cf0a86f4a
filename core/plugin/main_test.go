package plugin_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// binDir holds synclayer-plugin-files and synclayer-plugin-test, built once
// by TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "synclayer-plugin-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := buildPlugins(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	binDir = dir
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		binDir = real // /proc/<pid>/exe shows resolved paths
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildPlugins builds the files connector and the test connector into dir.
func buildPlugins(dir string) error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	for name, pkg := range map[string]string{"files": "./plugins/files", "test": "./core/internal/testconnector"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "synclayer-plugin-"+name), pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return nil
}

// childPlugins returns the pids of this process's live children whose
// binary is in binDir (plugin processes).
func childPlugins(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || !strings.HasPrefix(exe, binDir+string(filepath.Separator)) {
			continue
		}
		out = append(out, pid)
	}
	return out
}
