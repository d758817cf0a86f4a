package plugin_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/synclayer/synclayer/internal/testbin"
)

// binDir holds synclayer-plugin-files, synclayer-plugin-test and
// synclayer-plugin-watch, built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	testbin.Main(m, &binDir, map[string]string{
		"synclayer-plugin-files": "./plugins/files",
		"synclayer-plugin-test":  "./core/internal/testconnector",
		"synclayer-plugin-watch": "./core/plugin/testdata/watchconn",
	})
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
