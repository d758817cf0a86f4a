package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The bounds of BENCH.md round 2: what the machine does, in the same run,
// without synclayer in the way. Each ratio is a synclayer figure over its
// bound.

// startRuns is how many launches the start-up medians take.
const startRuns = 20

// boundPage is the static page clientBound serves: the host's first
// records page cut around its cursor, and how many pages a walk reads.
type boundPage struct {
	head, tail []byte
	pages      int
	perPage    int
}

// newBoundPage fetches the host's first records page (same JSON, same page
// size) and cuts it for the static server.
func newBoundPage(first string) *boundPage {
	resp, err := http.Get(first)
	must(err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	must(err)
	const mark = `],"next_cursor":`
	cut := bytes.LastIndex(body, []byte(mark))
	if resp.StatusCode != 200 || cut < 0 {
		must(fmt.Errorf("records page: %d, no next_cursor", resp.StatusCode))
	}
	head := body[:cut+len(mark)]
	tail := body[cut+len(mark):]
	tail = tail[bytes.IndexByte(tail, ','):] // after the cursor: ,"revision":N}
	var page struct {
		Records []json.RawMessage `json:"records"`
	}
	must(json.Unmarshal(append(append(append([]byte{}, head...), "null"...), tail...), &page))
	perPage := len(page.Records)
	if perPage == 0 {
		must(fmt.Errorf("the first records page is empty"))
	}
	return &boundPage{head: head, tail: tail, pages: (records + perPage - 1) / perPage, perPage: perPage}
}

// handler serves the page with a cursor to the next one, pages times.
func (p *boundPage) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		w.Header().Set("Content-Type", "application/json")
		w.Write(p.head)
		if k+1 < p.pages {
			fmt.Fprintf(w, `"%d"`, k+1)
		} else {
			io.WriteString(w, "null")
		}
		w.Write(p.tail)
	})
}

// clientBound is the rate at which the bench's own client reads and decodes
// the records walk when a static in-memory handler serves it: the host's
// first page, as many times as the walk has pages, with a cursor to the
// next one. The handler runs in a child process of the bench, as the host
// runs in its own, so that the client's process does the same work in both
// (decoding, and its garbage collection) and the two processes share the
// cores the same way.
func clientBound(p *boundPage) float64 {
	addr, stop := startBoundServer(p)
	defer stop()
	base := "http://" + addr + "/records?limit=10000"
	start := time.Now()
	n := walk(base, func(cursor string) string { return base + "&cursor=" + cursor })
	if n != p.pages*p.perPage {
		must(fmt.Errorf("client bound read %d records, want %d", n, p.pages*p.perPage))
	}
	return float64(n) / time.Since(start).Seconds()
}

// Child processes of the bench serve the bounds' handlers (BENCH_CHILD):
// "page" a boundPage from the file BENCH_CHILD_FILE, "accept" a bare 202.
// The child prints its address on stdout and serves until its stdin
// closes.
const childEnv = "BENCH_CHILD"

// runChild serves a bound's handler when the bench runs as its own child,
// and reports whether it did.
func runChild() bool {
	kind := os.Getenv(childEnv)
	if kind == "" {
		return false
	}
	var h http.Handler
	switch kind {
	case "page":
		b, err := os.ReadFile(os.Getenv(childEnv + "_FILE"))
		must(err)
		var p boundPage
		p.pages, _ = strconv.Atoi(os.Getenv(childEnv + "_PAGES"))
		p.perPage = 1 // only the parent counts records
		head, tail, ok := bytes.Cut(b, []byte{0})
		if !ok || p.pages <= 0 {
			must(fmt.Errorf("bench child: bad page file"))
		}
		p.head, p.tail = head, tail
		h = p.handler()
	case "accept":
		h = acceptHandler()
	default:
		must(fmt.Errorf("bench child: unknown kind %q", kind))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	go (&http.Server{Handler: h}).Serve(ln)
	fmt.Println(ln.Addr().String())
	io.Copy(io.Discard, os.Stdin)
	return true
}

// startChild starts the bench as a child serving kind, and returns its
// address and how to stop it.
func startChild(kind string, env ...string) (addr string, stop func()) {
	exe, err := os.Executable()
	must(err)
	cmd := exec.Command(exe)
	cmd.Env = append(append(os.Environ(), childEnv+"="+kind), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	must(err)
	stdout, err := cmd.StdoutPipe()
	must(err)
	must(cmd.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		must(fmt.Errorf("bench child %s: %v", kind, err))
	}
	return strings.TrimSpace(line), func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
}

// startBoundServer serves p from a child process.
func startBoundServer(p *boundPage) (addr string, stop func()) {
	f, err := os.CreateTemp("", "synclayer-bench-page-")
	must(err)
	defer os.Remove(f.Name()) // the child has read it once it printed its address
	_, err = f.Write(append(append(append([]byte{}, p.head...), 0), p.tail...))
	must(err)
	must(f.Close())
	return startChild("page", childEnv+"_FILE="+f.Name(), childEnv+"_PAGES="+strconv.Itoa(p.pages))
}

// postMany sends the 10,000 trigger POSTs from 32 clients and returns the
// rate and how many failed (an error or a status other than 202).
func postMany(url string) (rps float64, failed int64) {
	const total, clients = 10000, 32
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var next, bad atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total {
				resp, err := c.Post(url, "application/json", nil)
				if err != nil {
					bad.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 202 {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return total / time.Since(start).Seconds(), bad.Load()
}

// acceptHandler is the bare handler of httpBound: it answers 202 with a
// body like the host's.
func acceptHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"run":"bound"}`)
	})
}

// httpBound is postMany against a bare net/http handler that answers 202,
// served by a child process of the bench as the host serves its hooks
// from its own. ready runs once the handler listens, before the POSTs.
func httpBound(ready func()) float64 {
	addr, stop := startChild("accept")
	defer stop()
	ready()
	rps, failed := postMany("http://" + addr + "/hooks/layers/bound")
	if failed > 0 {
		must(fmt.Errorf("the bare HTTP handler failed %d requests", failed))
	}
	return rps
}

// buildTrivial builds a trivial Go binary that prints a line and exits:
// the exec bound, what starting any Go process costs on this machine.
func buildTrivial() (bin string, cleanup func()) {
	dir, err := os.MkdirTemp("", "synclayer-bench-exec-")
	must(err)
	src := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"ready\") }\n"
	must(os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644))
	must(os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module trivial\n\ngo 1.21\n"), 0o644))
	bin = filepath.Join(dir, "trivial")
	build := exec.Command("go", "build", "-o", bin+".link", ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		must(fmt.Errorf("build the trivial binary: %v\n%s", err, out))
	}
	// Copied, as `make build` copies the plugins: a binary whose page
	// cache the Go linker filled (it writes through a memory map) starts
	// slower than the same bytes written with write(), the way installed
	// binaries are; the bound and the plugins are both measured as
	// installed binaries.
	b, err := os.ReadFile(bin + ".link")
	must(err)
	must(os.WriteFile(bin, b, 0o755))
	return bin, func() { os.RemoveAll(dir) }
}

// execOnce launches the trivial binary, reads its line and waits for it to
// exit, and returns how long that took in milliseconds.
func execOnce(bin string) float64 {
	start := time.Now()
	out, err := exec.Command(bin).Output()
	took := time.Since(start)
	must(err)
	if strings.TrimSpace(string(out)) != "ready" {
		must(fmt.Errorf("trivial binary printed %q", out))
	}
	return float64(took.Microseconds()) / 1000
}

// medianValue is the median of figures measured in rounds or runs.
func medianValue(figures []float64) float64 {
	r := append([]float64(nil), figures...)
	sort.Float64s(r)
	return r[len(r)/2]
}

// parallel syncs 4 fresh layers of records/4 each at once in one host and
// compares their combined rate with 4 × the single-layer ingest rate of
// this run. The goal holds on 4 cores or more; below, the figure is
// reported without one.
func parallel(work string) {
	const layers = 4
	each := max(records/layers, 1000)
	h := &host{name: "par0", dir: filepath.Join(work, "parallel"), addr: freeAddr()}
	must(os.MkdirAll(h.dir, 0o755))
	var cfg strings.Builder
	for i := 0; i < layers; i++ {
		cfg.WriteString(generatorLayer(fmt.Sprintf("par%d", i), each))
	}
	must(os.WriteFile(filepath.Join(h.dir, "layer.hcl"), []byte(cfg.String()), 0o644))
	h.start()
	defer h.stop()
	var first, last time.Time
	for i := 0; i < layers; i++ {
		h.name = fmt.Sprintf("par%d", i)
		r, _ := h.firstRun()
		if first.IsZero() || r.StartedAt.Before(first) {
			first = *r.StartedAt
		}
		if r.FinishedAt.After(last) {
			last = *r.FinishedAt
		}
	}
	rps := float64(layers*each) / last.Sub(first).Seconds()
	cores := runtime.NumCPU()
	set("cores", float64(cores), "", "")
	set("parallel_rps", rps, "", "")
	ratio := rps / (layers * results["ingest_rps"])
	if cores >= 4 {
		set("parallel_ratio", ratio, "≥ 0.75", verdict(ratio >= 0.75))
	} else {
		set("parallel_ratio", ratio, fmt.Sprintf("(%d cores: no goal below 4)", cores), "")
	}
}
