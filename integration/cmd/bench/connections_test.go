package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// The connections scenario counts the host's plugin processes by their
// parent and program name: a child started under a plugin's name is
// counted, by its pid, and one of another name is not.
func TestPluginPIDs(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("this test starts sleep(1) under a plugin's name: %v", err)
	}
	dir := t.TempDir()
	named := filepath.Join(dir, "synclayer-plugin-testgen")
	if err := os.Symlink(sleep, named); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, bin := range []string{named, named, sleep} {
		cmd := exec.Command(bin, "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		pids = append(pids, cmd.Process.Pid)
	}
	got := pluginPIDs(os.Getpid(), "synclayer-plugin-testgen")
	slices.Sort(got)
	want := []int{min(pids[0], pids[1]), max(pids[0], pids[1])}
	if !slices.Equal(got, want) {
		t.Fatalf("pluginPIDs = %v, want %v (the third child, %d, is plain sleep)", got, want, pids[2])
	}
	if n := pluginChildren(os.Getpid(), "synclayer-plugin-other"); n != 0 {
		t.Fatalf("pluginChildren of a name nobody runs = %d", n)
	}
}

// The memory and CPU readings come from /proc of a live process.
func TestProcReadings(t *testing.T) {
	rss, hwm := procMem(os.Getpid())
	if rss <= 0 || hwm < rss {
		t.Fatalf("procMem = VmRSS %v, VmHWM %v: want 0 < VmRSS <= VmHWM", rss, hwm)
	}
	x := 0
	for i := 0; i < 50_000_000; i++ { // some CPU time to read back
		x += i % 7
	}
	if cpu := procCPU(os.Getpid()); cpu <= 0 {
		t.Fatalf("procCPU = %v after a busy loop (%d)", cpu, x)
	}
}

// heapAlloc and goroutineCount read the text that net/http/pprof serves,
// as the host's SYNCLAYER_PPROF listener does.
func TestPprofReadings(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	if h := heapAlloc(srv.Client(), addr); h <= 0 {
		t.Fatalf("heapAlloc = %v", h)
	}
	if n := goroutineCount(srv.Client(), addr); n < 2 {
		t.Fatalf("goroutineCount = %d: the test and the server run at least two", n)
	}
}
