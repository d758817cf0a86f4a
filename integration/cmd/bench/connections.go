package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The connections_10k scenario (issue 12, item 7; BENCH.md): one host, one
// layer, one generator source with connections = true and an hourly
// schedule; 10,000 connections (BENCH_CONNECTIONS overrides the count) of
// 100 records of 1 KiB each are created through the HTTP API by 8 clients,
// each with its own seed, the connector's Check included. Creating one
// queues its first full run; the runs go as the host's limits let them.
//
// Measured:
//   - the create rate (POSTs answered 201 per second);
//   - the time from the first POST until the last connection's first run
//     published (its sync.completed event, by the host's clock), and so
//     the records per second of the first runs, compared with
//     0.5 × ingest_rps of the same run; when the 1 M ingest did not run in
//     this invocation (BENCH_ONLY=connections_10k), a shorter single-layer
//     generator ingest of min(BENCH_RECORDS, 100,000) records is measured
//     before and after the scenario as the reference (the better kept),
//     and the table says so;
//   - revisions published per second over that time (first runs and the
//     scheduled runs that fell due meanwhile, each its own revision);
//   - live plugin processes: the host's synclayer-plugin-generator
//     children, counted every 50 ms from the start to the end, the peak;
//   - host memory with every connection idle after its first run (5 s
//     after the last first run): VmRSS and VmHWM from /proc, and the live
//     heap (HeapAlloc after a forced collection, through the host's
//     SYNCLAYER_PPROF listener) against the same reading before the first
//     connection, per connection; and the host's goroutines then.
//
// With BENCH_CPUPROFILE=DIR the host's CPU profiles of the create and
// first-run phase go to DIR/connections-cpu-N.pprof (30 s each) and its
// heap with all idle to DIR/connections-heap.pprof.
func connections(work string) {
	n := 10_000
	if v := os.Getenv("BENCH_CONNECTIONS"); v != "" {
		c, err := strconv.Atoi(v)
		if err != nil || c < 1 {
			must(fmt.Errorf("BENCH_CONNECTIONS=%q: want a count of connections such as 1000", v))
		}
		n = c
	}
	const perConn = 100

	ref, refNote := results["ingest_rps"], "ingest_rps of this run"
	refN := min(records, 100_000)
	// refIngest measures the reference when the 1 M ingest did not run:
	// before and after the scenario, the better kept (a busy moment of a
	// shared machine would otherwise flatter the ratio).
	refIngest := func(name string) {
		h := newHost(work, name, refN)
		took := h.ingest()
		h.stop()
		ref = max(ref, float64(refN)/took.Seconds())
	}
	measureRef := ref == 0
	if measureRef {
		fmt.Fprintf(os.Stderr, "bench: connections: the 1 M ingest did not run; measuring a %d-record generator ingest before and after as the reference\n", refN)
		refNote = fmt.Sprintf("a %d-record ingest of this run", refN)
		refIngest("connref1")
	}

	dir := filepath.Join(work, "connections")
	must(os.MkdirAll(dir, 0o755))
	cfg := fmt.Sprintf(`
layer "conns" {
  source "gen" {
    plugin      = "generator"
    connections = true
    config {
      records       = %d
      payload_bytes = 1024
      models        = ["Item"]
      change_ratio  = 0.01
      seed          = 1
    }
    sync "generate" {
      every = "1h"
    }
  }
}
`, perConn)
	must(os.WriteFile(filepath.Join(dir, "layer.hcl"), []byte(cfg), 0o644))
	pprofAddr := freeAddr()
	os.Setenv("SYNCLAYER_PPROF", pprofAddr)
	h := &host{name: "conns", dir: dir, addr: freeAddr()}
	h.start()
	os.Unsetenv("SYNCLAYER_PPROF")
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	base := h.url("/v1/layers/conns/sources/gen/connections")

	heap0 := heapAlloc(client, pprofAddr)
	rss0, _ := procMem(h.cmd.Process.Pid)
	cpu0 := procCPU(h.cmd.Process.Pid)
	fmt.Fprintf(os.Stderr, "bench: connections: %d connections of %d records; host before: VmRSS %.0f MiB, heap %.1f MiB\n",
		n, perConn, rss0/(1<<20), heap0/(1<<20))

	// Plugin processes, sampled until the idle reading.
	var peakProcs atomic.Int64
	stopProcs := make(chan struct{})
	var procsWG sync.WaitGroup
	procsWG.Add(1)
	go func() {
		defer procsWG.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			raise(&peakProcs, int64(pluginChildren(h.cmd.Process.Pid, "synclayer-plugin-generator")))
			select {
			case <-stopProcs:
				return
			case <-t.C:
			}
		}
	}()

	profDir := os.Getenv("BENCH_CPUPROFILE")
	// CPU profiles of 30 s each, from the first POST until the last
	// first run published: connections-cpu-N.pprof (go tool pprof takes
	// them together).
	profStop := make(chan struct{})
	var profWG sync.WaitGroup
	if profDir != "" {
		profWG.Add(1)
		go func() {
			defer profWG.Done()
			for k := 1; ; k++ {
				select {
				case <-profStop:
					return
				default:
				}
				saveProfile(client, "http://"+pprofAddr+"/debug/pprof/profile?seconds=30", filepath.Join(profDir, fmt.Sprintf("connections-cpu-%d.pprof", k)))
			}
		}()
	}

	// Events are followed from the start: the first runs' completions.
	var seq uint64
	var evs []connEvent
	evs, seq = connEvents(client, h, seq)

	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				createConnection(client, base, i)
			}
		}()
	}
	wg.Wait()
	created := time.Since(start)
	createRPS := float64(n) / created.Seconds()
	fmt.Fprintf(os.Stderr, "bench: connections: %d created in %s (%.0f/s)\n", n, created.Round(time.Millisecond), createRPS)

	// Until every connection's first run has published.
	done := map[string]bool{}
	var last time.Time
	completed := 0 // runs completed (revisions), first runs or not
	report := time.Now()
	for len(done) < n {
		for _, e := range evs {
			switch e.Type {
			case "sync.completed":
				if e.Connection == "" {
					continue
				}
				completed++
				if !done[e.Connection] {
					done[e.Connection] = true
					last = e.Time
				}
			case "sync.failed":
				must(fmt.Errorf("connections: a run of connection %q failed: %s", e.Connection, e.Message))
			}
		}
		if len(done) == n {
			break
		}
		if time.Since(report) > 10*time.Second {
			report = time.Now()
			fmt.Fprintf(os.Stderr, "bench: connections: %d of %d first runs published after %s\n", len(done), n, time.Since(start).Round(time.Second))
		}
		if len(evs) < 1000 {
			time.Sleep(100 * time.Millisecond)
		}
		evs, seq = connEvents(client, h, seq)
	}
	took := last.Sub(start)
	rps := float64(n*perConn) / took.Seconds()
	hostCPU := procCPU(h.cmd.Process.Pid) - cpu0
	var pluginCPU float64
	for _, pid := range pluginPIDs(h.cmd.Process.Pid, "synclayer-plugin-generator") {
		pluginCPU += procCPU(pid)
	}
	fmt.Fprintf(os.Stderr, "bench: connections: all %d first runs published %s after the first POST; CPU: host %.1f s, plugins %.1f s\n",
		n, took.Round(time.Millisecond), hostCPU, pluginCPU)
	close(profStop)

	// Every connection is there; a sample of them holds its records and a
	// completed last run.
	var st struct {
		Sources []struct {
			Connections map[string]int `json:"connections"`
		} `json:"sources"`
	}
	h.getJSON("/v1/layers/conns", &st)
	if got := st.Sources[0].Connections["active"]; got != n {
		must(fmt.Errorf("connections: the layer counts %d active connections, want %d (%v)", got, n, st.Sources[0].Connections))
	}
	for k := 0; k < min(n, 20); k++ {
		i := k * (n / min(n, 20))
		var c struct {
			Syncs []struct {
				LastRun *struct {
					State string `json:"state"`
				} `json:"last_run"`
				Records map[string]int64 `json:"records"`
			} `json:"syncs"`
		}
		getJSON(fmt.Sprintf("%s/%s", base, connID(i)), &c)
		if len(c.Syncs) != 1 || c.Syncs[0].LastRun == nil || c.Syncs[0].LastRun.State != "completed" || c.Syncs[0].Records["Item"] != perConn {
			b, _ := json.Marshal(c)
			must(fmt.Errorf("connections: connection %s after its first run: %s", connID(i), b))
		}
	}

	// All idle: the memory 5 s after the last first run.
	time.Sleep(time.Until(last.Add(5 * time.Second)))
	close(stopProcs)
	procsWG.Wait()
	rss, hwm := procMem(h.cmd.Process.Pid)
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.cmd.Process.Pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "RssAnon:") || strings.HasPrefix(line, "RssFile:") {
				fmt.Fprintf(os.Stderr, "bench: connections: all idle: %s\n", strings.Join(strings.Fields(line), " "))
			}
		}
	}
	heap1 := heapAlloc(client, pprofAddr)
	goroutines := goroutineCount(client, pprofAddr)
	if profDir != "" {
		profWG.Wait()
		saveProfile(client, "http://"+pprofAddr+"/debug/pprof/heap?gc=1", filepath.Join(profDir, "connections-heap.pprof"))
	}
	procs := peakProcs.Load()
	h.stop()
	if measureRef {
		refIngest("connref2")
		set("connections_10k_ref_ingest_rps", ref, "(reference: "+refNote+", the better of 2)", "")
	}

	set("connections_10k_count", float64(n), "(connections; BENCH_CONNECTIONS)", "")
	set("connections_10k_create_rps", createRPS, "", "")
	set("connections_10k_first_runs_s", took.Seconds(), "", "")
	set("connections_10k_first_runs_rps", rps, fmt.Sprintf("≥ %.0f", 0.5*ref), verdict(rps >= 0.5*ref))
	set("connections_10k_ratio", rps/ref, "≥ 0.5 × "+refNote, verdict(rps/ref >= 0.5))
	set("connections_10k_revisions_per_s", float64(completed)/took.Seconds(), fmt.Sprintf("(%d runs published)", completed), "")
	set("connections_10k_plugin_procs", float64(procs), "≤ 16 (peak)", verdict(procs <= 16))
	set("connections_10k_idle_rss_mb", rss/(1<<20), "≤ 512 (VmRSS, all idle)", verdict(rss/(1<<20) <= 512))
	set("connections_10k_hwm_mb", hwm/(1<<20), "(VmHWM)", "")
	set("connections_10k_host_cpu_ms_per_conn", hostCPU*1000/float64(n), "(create + first run, host CPU)", "")
	set("connections_10k_plugin_cpu_ms_per_conn", pluginCPU*1000/float64(n), "(Check + Describe + first run, plugin CPU)", "")
	set("connections_10k_idle_goroutines", float64(goroutines), "(host, all idle: no goroutine per connection)", "")
	set("connections_10k_rss_per_conn_kb", (rss-rss0)/float64(n)/1024, "(VmRSS growth ÷ connections)", "")
	set("connections_10k_heap_per_conn_kb", (heap1-heap0)/float64(n)/1024, "(live heap growth ÷ connections, Badger's included)", "")
}

// connID is the id of the i-th connection.
func connID(i int) string { return fmt.Sprintf("c%05d", i) }

// createConnection creates the i-th connection (its own seed), again after
// a 429 or 503.
func createConnection(client *http.Client, base string, i int) {
	body := fmt.Sprintf(`{"id":%q,"config":{"seed":%d},"check":true}`, connID(i), i+2)
	for attempt := 0; ; attempt++ {
		resp, err := client.Post(base, "application/json", strings.NewReader(body))
		must(err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK:
			return
		case (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && attempt < 600:
			time.Sleep(100 * time.Millisecond)
		default:
			must(fmt.Errorf("connections: POST %s (%s): %d %s", base, connID(i), resp.StatusCode, bytes.TrimSpace(b)))
		}
	}
}

type connEvent struct {
	Seq        uint64    `json:"seq"`
	Time       time.Time `json:"time"`
	Type       string    `json:"type"`
	Connection string    `json:"connection"`
	Message    string    `json:"message"`
}

// connEvents reads the next page of the layer's event log after seq.
func connEvents(client *http.Client, h *host, seq uint64) ([]connEvent, uint64) {
	resp, err := client.Get(h.url(fmt.Sprintf("/v1/layers/conns/events?after=%d&limit=1000", seq)))
	must(err)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		must(fmt.Errorf("connections: events: %d %s", resp.StatusCode, b))
	}
	var page struct {
		Events []connEvent `json:"events"`
	}
	must(json.NewDecoder(resp.Body).Decode(&page))
	for _, e := range page.Events {
		seq = max(seq, e.Seq)
	}
	return page.Events, seq
}

// procMem reads a process's VmRSS and VmHWM, in bytes.
func procMem(pid int) (rss, hwm float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(err)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb * 1024
		case "VmHWM:":
			hwm = kb * 1024
		}
	}
	return rss, hwm
}

// pluginChildren counts the live child processes of pid whose program is
// named name (other sessions' plugins on the machine are not counted).
func pluginChildren(pid int, name string) int { return len(pluginPIDs(pid, name)) }

// procCPU is the CPU time a process used so far (user and system), in
// seconds.
func procCPU(pid int) float64 {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// pluginPIDs lists the live child processes of pid whose program is named
// name.
func pluginPIDs(pid int, name string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	ppid := strconv.Itoa(pid)
	var out []int
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces; skip past ')'.
		rest := stat[bytes.LastIndexByte(stat, ')')+1:]
		f := strings.Fields(string(rest))
		if len(f) < 2 || f[1] != ppid || f[0] == "Z" {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		argv0, _, _ := bytes.Cut(cmd, []byte{0})
		if filepath.Base(string(argv0)) == name {
			p, _ := strconv.Atoi(e.Name())
			out = append(out, p)
		}
	}
	return out
}

// heapAlloc is the host's live heap after a forced collection, in bytes,
// from its pprof listener (runtime.MemStats in the heap profile's text).
func heapAlloc(client *http.Client, pprofAddr string) float64 {
	resp, err := client.Get("http://" + pprofAddr + "/debug/pprof/heap?gc=1&debug=1")
	must(err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			must(err)
			return n
		}
	}
	must(fmt.Errorf("connections: no HeapAlloc in the host's heap profile (%v)", sc.Err()))
	return 0
}

// goroutineCount is the number of the host's goroutines, from its pprof
// listener.
func goroutineCount(client *http.Client, pprofAddr string) int {
	resp, err := client.Get("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1")
	must(err)
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	must(err)
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	n, err := strconv.Atoi(v)
	if !ok || err != nil {
		must(fmt.Errorf("connections: the host's goroutine profile starts with %q", line))
	}
	return n
}

// saveProfile writes what u answers to path.
func saveProfile(client *http.Client, u, path string) {
	c := *client
	c.Timeout = 0
	resp, err := c.Get(u)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: profile %s: %v\n", u, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	must(err)
	defer f.Close()
	io.Copy(f, resp.Body)
}
