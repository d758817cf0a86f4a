// Command bench runs the end-to-end scenarios of BENCH.md against the real
// binaries (host, plugins over go-plugin, Badger on disk, HTTP on loopback),
// prints a table, and prints one JSON object as its last line.
//
//	make bench                       # 1,000,000 records
//	make bench BENCH_RECORDS=100000  # a quick look
//
// SYNCLAYER_BIN names the folder of the binaries (make bench sets it).
// BENCH_ONLY=ingest stops after the ingest scenarios (the bound, the two
// ingests and their memory), for quick iterations on the write path;
// BENCH_ONLY=reads also runs the re-syncs, reads and triggers of the
// ingested layer, and stops there; BENCH_ONLY=start runs only the plugin
// start-up and its exec bound. BENCH_ONLY=connections_10k runs only that
// scenario (connections.go); BENCH_CONNECTIONS=1000 sets its count of
// connections.
// BENCH_ONLY=graphql runs only the GraphQL latencies and walk (without
// read_rps, graphql_scan_ratio is left out).
// BENCH_ONLY=postgres runs only the ingest, incremental and read scenarios
// on the PostgreSQL store driver (postgres.go) against a throwaway server.
// BENCH_CPUPROFILE=DIR writes a CPU and heap profile of the host for each
// scenario into DIR (through the host's SYNCLAYER_PPROF listener).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	badgerstore "github.com/synclayer/synclayer/core/store/badger"

	"github.com/dgraph-io/badger/v4"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/plugin"
)

var (
	binDir  string
	records int
	results = map[string]float64{}
	rows    [][4]string
)

func main() {
	if runChild() {
		return
	}
	binDir = os.Getenv("SYNCLAYER_BIN")
	if binDir == "" {
		binDir = "bin"
	}
	binDir, _ = filepath.Abs(binDir)
	records = 1_000_000
	if v, err := strconv.Atoi(os.Getenv("BENCH_RECORDS")); err == nil && v > 0 {
		records = v
	}
	work, err := os.MkdirTemp("", "synclayer-bench-")
	must(err)
	defer os.RemoveAll(work)
	fmt.Fprintf(os.Stderr, "bench: %d records, work dir %s\n", records, work)
	if os.Getenv("BENCH_ONLY") == "connections_10k" {
		connections(work)
		report()
		return
	}

	if os.Getenv("BENCH_ONLY") == "postgres" {
		postgresBench(work)
		report()
		return
	}
	if os.Getenv("BENCH_ONLY") == "graphql" {
		graphqlBench(work)
		report()
		return
	}
	if os.Getenv("BENCH_ONLY") == "start" {
		pluginStart()
		report()
		return
	}

	// The bound is measured before and after the ingests and the better
	// of the two kept: on a shared machine a single measurement may fall
	// in a busy moment and flatter ingest_ratio.
	bound := badgerBound(filepath.Join(work, "bound"))

	// rss_growth compares the peak anonymous RSS of a 1/10 ingest with the
	// full one's, both sampled after the same warm-up: the first
	// warm records the run received (process start, plugin launch, the
	// first memtables and compactions are behind it in both).
	small := max(records/10, 1000)
	warm := int64(small / 2)
	rssSmall := ingestOnly(work, "small", small, warm)

	h := newHost(work, "big", records)
	h.warmAt = warm
	took := h.ingest()
	if again := badgerBound(filepath.Join(work, "bound")); again > bound {
		bound = again
	}
	set("badger_bound_rps", bound, "(the bound)", "")
	ingest(h, took, bound, rssSmall)
	if os.Getenv("BENCH_ONLY") != "ingest" {
		unchanged(h, bound)
		incremental(h)
		reads(h)
		triggers(h)
	}
	h.stop()
	if os.Getenv("BENCH_ONLY") == "" {
		graphqlBench(work)
		parallel(work)
		pluginStart()
		webhooks(work)
		soak(work)
		connections(work)
		postgresBench(work)
	}
	report()
}

// report prints the table and, as the last line, the JSON of the results.
func report() {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tvalue\tgoal\tverdict\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", r[0], r[1], r[2], r[3])
	}
	tw.Flush()
	out, _ := json.Marshal(results)
	fmt.Println(string(out))
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		dumpDeadHosts()
		os.Exit(1)
	}
}

// started lists the hosts the bench started, for dumpDeadHosts.
var started struct {
	sync.Mutex
	hosts []*host
}

// dumpDeadHosts prints the end of the log of every host that has exited
// on its own (a failure is often that: the host died).
func dumpDeadHosts() {
	started.Lock()
	defer started.Unlock()
	for _, h := range started.hosts {
		select {
		case <-h.done:
		default:
			continue
		}
		if h.stopping.Load() {
			continue
		}
		log := h.log.String()
		if len(log) > 8192 {
			log = log[len(log)-8192:]
		}
		fmt.Fprintf(os.Stderr, "bench: host %s exited (%v); the end of its log:\n%s\n", h.name, h.cmd.ProcessState, log)
	}
}

// keyPrefix names the results of a scenario run again on another store
// driver ("postgres_").
var keyPrefix string

func set(key string, v float64, goal, verdict string) {
	key = keyPrefix + key
	results[key] = math.Round(v*100) / 100
	rows = append(rows, [4]string{key, strconv.FormatFloat(results[key], 'f', -1, 64), goal, verdict})
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT MET"
}

// payload is a record of about 1 KiB, like the generator's.
func payload(i int) (id string, v []byte) {
	id = fmt.Sprintf("item-%09d", i)
	v = make([]byte, 0, 1024)
	v = append(v, `{"id":"`...)
	v = append(v, id...)
	v = append(v, `","model":"Item","n":`...)
	v = strconv.AppendInt(v, int64(i), 10)
	v = append(v, `,"version":0,"data":"`...)
	for len(v) < 1022 {
		v = append(v, byte('a'+(i+len(v))%26))
	}
	return id, append(v, `"}`...)
}

// badgerBound writes the records with a raw WriteBatch, same options as the
// host, in-process.
func badgerBound(dir string) float64 {
	db, err := badger.OpenManaged(badgerstore.BadgerOptions(dir))
	must(err)
	start := time.Now()
	wb := db.NewWriteBatchAt(1)
	for i := 0; i < records; i++ {
		id, v := payload(i)
		must(wb.Set([]byte(id), v))
	}
	must(wb.Flush())
	rps := float64(records) / time.Since(start).Seconds()
	must(db.Close())
	os.RemoveAll(dir)
	return rps
}

// host is a `synclayer serve` process with a generator layer.
type host struct {
	name, dir, addr string
	cmd             *exec.Cmd
	done            chan struct{}
	log             bytes.Buffer
	peakAnon        atomic.Int64
	peakTotal       atomic.Int64
	// warmAt is the count of received records after which peakWarm is
	// sampled (0: never); warm is set once a run passed it.
	warmAt       int64
	warm         atomic.Bool
	peakWarm     atomic.Int64
	stopSampling chan struct{}
	stopping     atomic.Bool
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer ln.Close()
	return ln.Addr().String()
}

func newHost(work, name string, n int) *host {
	return newHostWarm(work, name, n, 0)
}

// generatorLayer is the configuration of a layer fed by the generator.
func generatorLayer(name string, n int) string {
	return fmt.Sprintf(`
layer %q {
  source "gen" {
    plugin = "generator"
    config {
      records       = %d
      payload_bytes = 1024
      models        = ["Item"]
      change_ratio  = 0.01
      seed          = 1
    }
  }
}
`, name, n)
}

// newHostWarm starts a host with one generator layer; warmAt > 0 samples
// peakWarm once a run received that many records.
func newHostWarm(work, name string, n int, warmAt int64) *host {
	return newHostConfig(work, name, generatorLayer(name, n), warmAt)
}

// newHostConfig starts a host with the configuration cfg, whose layer is
// named name.
func newHostConfig(work, name, cfg string, warmAt int64) *host {
	h := &host{name: name, dir: filepath.Join(work, name), addr: freeAddr(), warmAt: warmAt}
	must(os.MkdirAll(h.dir, 0o755))
	must(os.WriteFile(filepath.Join(h.dir, "layer.hcl"), []byte(cfg), 0o644))
	h.start()
	return h
}

func (h *host) start() {
	h.cmd = exec.Command(filepath.Join(binDir, "synclayer"), "serve", "--config", filepath.Join(h.dir, "layer.hcl"),
		"--listen", h.addr, "--data-dir", filepath.Join(h.dir, "data"))
	h.cmd.Env = append(os.Environ(), "SYNCLAYER_PLUGIN_PATH="+binDir)
	h.cmd.Stdout, h.cmd.Stderr = &h.log, &h.log
	must(h.cmd.Start())
	started.Lock()
	started.hosts = append(started.hosts, h)
	started.Unlock()
	h.done = make(chan struct{})
	go func() { h.cmd.Wait(); close(h.done) }()
	h.stopSampling = make(chan struct{})
	go h.sample()
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + h.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if i > 6000 {
			must(fmt.Errorf("host %s not ready:\n%s", h.name, h.log.String()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sample records the host's peak resident memory: anonymous (heap, stacks),
// also from the end of the warm-up on, and total as `ps` and a container's
// limit count it (VmHWM: with the mapped Badger files).
func (h *host) sample() {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-h.stopSampling:
			return
		case <-h.done:
			return
		case <-t.C:
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.cmd.Process.Pid))
		if err != nil {
			return
		}
		var anon, total int64
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "RssAnon:":
				anon = kb << 10
			case "VmHWM:":
				total = kb << 10
			}
		}
		raise(&h.peakAnon, anon)
		raise(&h.peakTotal, total)
		if h.warm.Load() {
			raise(&h.peakWarm, anon)
		}
	}
}

// raise sets p to v if v is larger.
func raise(p *atomic.Int64, v int64) {
	for cur := p.Load(); v > cur && !p.CompareAndSwap(cur, v); cur = p.Load() {
	}
}

func (h *host) stop() {
	h.stopping.Store(true)
	close(h.stopSampling)
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(60 * time.Second):
		h.cmd.Process.Kill()
		<-h.done
	}
}

func (h *host) url(p string) string { return "http://" + h.addr + p }

func (h *host) getJSON(p string, out any) { getJSON(h.url(p), out) }

func getJSON(u string, out any) {
	resp, err := http.Get(u)
	must(err)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		must(fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, b))
	}
	must(json.NewDecoder(resp.Body).Decode(out))
}

func (h *host) post(p, body string) string {
	resp, err := http.Post(h.url(p), "application/json", strings.NewReader(body))
	must(err)
	defer resp.Body.Close()
	var out struct{ Run string }
	json.NewDecoder(resp.Body).Decode(&out)
	return out.Run
}

type runView struct {
	State      string     `json:"state"`
	Received   int64      `json:"received"`
	Error      string     `json:"error"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Counts     map[string]map[string]map[string]int64
}

// waitRun waits for a run to end and returns how long it ran.
func (h *host) waitRun(id string) (runView, time.Duration) {
	for {
		var r runView
		h.getJSON("/v1/layers/"+h.name+"/runs/"+id, &r)
		if h.warmAt > 0 && r.Received >= h.warmAt {
			h.warm.Store(true)
		}
		switch r.State {
		case "completed":
			return r, r.FinishedAt.Sub(*r.StartedAt)
		case "failed":
			must(fmt.Errorf("run %s failed: %s", id, r.Error))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// firstRun waits for the startup run of a fresh layer.
func (h *host) firstRun() (runView, time.Duration) {
	for {
		var ev struct {
			Events []struct{ Type, Run string } `json:"events"`
		}
		h.getJSON("/v1/layers/"+h.name+"/events?limit=10", &ev)
		for _, e := range ev.Events {
			if e.Type == "run.queued" {
				return h.waitRun(e.Run)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ingestOnly ingests n records into a fresh host and returns its peak
// anonymous RSS after the warm-up.
func ingestOnly(work, name string, n int, warm int64) float64 {
	h := newHostWarm(work, name, n, warm)
	h.firstRun()
	h.stop()
	return h.warmPeak()
}

// warmPeak is the peak anonymous RSS sampled after the warm-up.
func (h *host) warmPeak() float64 {
	p := h.peakWarm.Load()
	if p == 0 {
		must(fmt.Errorf("host %s: no memory sample after the warm-up of %d records", h.name, h.warmAt))
	}
	return float64(p)
}

// ingest waits for the startup run (the full ingest) of a fresh host.
func (h *host) ingest() time.Duration {
	_, took := h.firstRun()
	return took
}

func ingest(h *host, took time.Duration, bound, rssSmall float64) {
	rps := float64(records) / took.Seconds()
	set("ingest_rps", rps, "", "")
	set("ingest_ratio", rps/bound, "≥ 0.60", verdict(rps/bound >= 0.60))
	anon := float64(h.peakAnon.Load())
	set("ingest_peak_rss_mb", anon/(1<<20), "≤ 256", verdict(anon/(1<<20) <= 256))
	total := float64(h.peakTotal.Load()) / (1 << 20)
	set("ingest_peak_rss_total_mb", total, "≤ 512 (VmHWM)", verdict(total <= 512))
	growth := h.warmPeak() / rssSmall
	fmt.Fprintf(os.Stderr, "bench: peak anonymous RSS after the warm-up of %d records: %.0f MiB at %d records, %.0f MiB at %d\n",
		h.warmAt, rssSmall/(1<<20), max(records/10, 1000), h.warmPeak()/(1<<20), records)
	set("rss_growth", growth, "≤ 1.5", verdict(growth <= 1.5))
}

func unchanged(h *host, bound float64) {
	r, took := h.waitRun(h.post("/v1/layers/"+h.name+"/syncs", `{"reset":true}`))
	if c := r.Counts["gen"]["Item"]; c["unchanged"] != int64(records) {
		must(fmt.Errorf("unchanged re-sync: counts %v", c))
	}
	rps := float64(records) / took.Seconds()
	set("unchanged_rps", rps, fmt.Sprintf("≥ %.0f", 2*bound), verdict(rps >= 2*bound))
}

func incremental(h *host) {
	r, took := h.waitRun(h.post("/v1/layers/"+h.name+"/syncs", `{}`))
	if c := r.Counts["gen"]["Item"]; c["updated"] == 0 {
		must(fmt.Errorf("incremental run changed nothing: %v", c))
	}
	ms := float64(took.Microseconds()) / 1000
	set("incremental_ms", ms, "≤ 1000", verdict(ms <= 1000))
}

// readRounds and triggerRounds are how many times the reads and the
// triggers are measured, each round the host's figure then its bound's:
// on a shared machine a single pair can fall on either side of a busy
// moment, which made read_ratio read 0.71-1.04 and trigger_ratio
// 0.23-1.08 from one run to the next. Each side's median is kept.
const (
	readRounds    = 3
	triggerRounds = 3
)

func reads(h *host) {
	first := h.url("/v1/layers/" + h.name + "/records?limit=10000")
	page := newBoundPage(first)
	var rates, bounds []float64
	for i := 0; i < readRounds; i++ {
		start := time.Now()
		n := walk(first, func(cursor string) string { return first + "&cursor=" + cursor })
		if n != records {
			must(fmt.Errorf("read %d records, want %d", n, records))
		}
		rates = append(rates, float64(n)/time.Since(start).Seconds())
		bounds = append(bounds, clientBound(page))
	}
	fmt.Fprintf(os.Stderr, "bench: reads %.0f, client bound %.0f records/s (rounds)\n", rates, bounds)
	rps, bound := medianValue(rates), medianValue(bounds)
	// Round 1's absolute goal, printed for context (BENCH.md): read_ratio
	// is the goal.
	set("read_rps", rps, "(context: was ≥ 150000)", "")
	set("client_bound_rps", bound, "(the bound)", "")
	set("read_ratio", rps/bound, "≥ 0.80", verdict(rps/bound >= 0.80))
}

// walk reads pages from first, then from next(cursor) while the page has a
// next_cursor, decoding each as the bench's client does, and returns how
// many records it read.
func walk(first string, next func(cursor string) string) int {
	n := 0
	for u := first; ; {
		// Decoded as JSON (every record parsed and checked), kept raw.
		var page struct {
			Records    []json.RawMessage `json:"records"`
			NextCursor *string           `json:"next_cursor"`
		}
		getJSON(u, &page)
		n += len(page.Records)
		if page.NextCursor == nil {
			return n
		}
		u = next(*page.NextCursor)
	}
}

func revisions(h *host) int {
	var out struct {
		Revisions []struct{ Revision int } `json:"revisions"`
	}
	h.getJSON("/v1/layers/"+h.name+"/revisions", &out)
	if len(out.Revisions) == 0 {
		return 0
	}
	return out.Revisions[0].Revision
}

// triggers sends the 10,000 hook POSTs while a full re-sync of the layer
// runs (they coalesce into at most one more run), and then the same POSTs
// to a bare handler while another full re-sync runs, so that the bound
// meets the same background work as the host.
func triggers(h *host) {
	var rates, bounds []float64
	var failed int64
	var runs []int
	for i := 0; i < triggerRounds; i++ {
		before := revisions(h)
		long := h.post("/v1/layers/"+h.name+"/syncs", `{"reset":true}`)
		rps, bad := postMany(h.url("/hooks/layers/" + h.name))
		h.waitRun(long)
		h.waitIdle()
		rates = append(rates, rps)
		failed += bad
		runs = append(runs, revisions(h)-before)

		bounds = append(bounds, httpBound(func() {
			long = h.post("/v1/layers/"+h.name+"/syncs", `{"reset":true}`)
		}))
		h.waitRun(long)
		h.waitIdle()
	}
	fmt.Fprintf(os.Stderr, "bench: triggers %.0f, HTTP bound %.0f requests/s, runs %d (rounds)\n", rates, bounds, runs)
	// trigger_runs is the first round's, as before the rounds: it checks
	// that POSTs arriving during a run coalesce into one more run. Later
	// rounds re-sync a layer Badger has compacted and cached, and at small
	// BENCH_RECORDS their runs can end before the POSTs do, when new runs
	// are due (printed above, for information).
	firstRuns := runs[0]
	rps, bound := medianValue(rates), medianValue(bounds)
	// Round 1's absolute goal, printed for context (BENCH.md):
	// trigger_ratio is the goal.
	set("trigger_rps", rps, "(context: was ≥ 10000)", "")
	set("trigger_runs", float64(firstRuns), "≤ 2", verdict(firstRuns <= 2))
	set("http_bound_rps", bound, "(the bound)", "")
	set("trigger_ratio", rps/bound, "≥ 0.50", verdict(rps/bound >= 0.50 && failed == 0))
}

// waitIdle waits until the layer's first source has no sync queued or
// running.
func (h *host) waitIdle() {
	for {
		var st struct {
			Sources []struct {
				Syncs []struct{ State string } `json:"syncs"`
			} `json:"sources"`
		}
		h.getJSON("/v1/layers/"+h.name, &st)
		if st.Sources[0].Syncs[0].State == "idle" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pluginStart() {
	m := plugin.NewManager(plugin.Options{SearchPaths: []string{binDir}, Declared: map[string]*config.Plugin{}})
	defer m.Shutdown()
	trivial, cleanup := buildTrivial()
	defer cleanup()
	// A plugin start, then the trivial binary's, in turns: both medians
	// then see the same moments of a shared machine (measured one after
	// the other, a busy spell could fall on either and swing the ratio).
	// A start is timed from the launch to the Describe answer, as a
	// source's first use waits for it; stopping the plugin (go-plugin's
	// graceful Kill, ~2 ms) comes after the clock stops.
	var starts, execs []float64
	for i := 0; i < startRuns; i++ {
		start := time.Now()
		inst, err := m.Launch(context.Background(), plugin.LaunchSpec{Plugin: "generator", Layer: "bench", Source: "gen", Dir: "."})
		must(err)
		_, err = inst.Describe(context.Background(), "", "", nil)
		must(err)
		starts = append(starts, float64(time.Since(start).Microseconds())/1000)
		inst.Kill()
		execs = append(execs, execOnce(trivial))
	}
	med, bound := medianValue(starts), medianValue(execs)
	set("plugin_start_ms", med, "≤ 50", verdict(med <= 50))
	set("exec_bound_ms", bound, "(the bound)", "")
	set("plugin_start_ratio", med/bound, "≤ 3", verdict(med/bound <= 3))
}
