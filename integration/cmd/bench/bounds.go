package main

import (
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

// clientBound is the rate at which the bench's own client reads and decodes
// the records walk when a static in-memory handler serves it: the host's
// first page (same JSON, same page size), as many times as the walk has
// pages, with a cursor to the next one.
func clientBound(first string) float64 {
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
	pages := (records + perPage - 1) / perPage

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		w.Header().Set("Content-Type", "application/json")
		w.Write(head)
		if k+1 < pages {
			fmt.Fprintf(w, `"%d"`, k+1)
		} else {
			io.WriteString(w, "null")
		}
		w.Write(tail)
	})}
	go srv.Serve(ln)
	defer srv.Close()

	base := "http://" + ln.Addr().String() + "/records?limit=10000"
	start := time.Now()
	n := walk(base, func(cursor string) string { return base + "&cursor=" + cursor })
	if n != pages*perPage {
		must(fmt.Errorf("client bound read %d records, want %d", n, pages*perPage))
	}
	return float64(n) / time.Since(start).Seconds()
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

// httpBound is postMany against a bare net/http handler that answers 202.
func httpBound() float64 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"run":"bound"}`)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	rps, failed := postMany("http://" + ln.Addr().String() + "/hooks/layers/bound")
	if failed > 0 {
		must(fmt.Errorf("the bare HTTP handler failed %d requests", failed))
	}
	return rps
}

// execBound is the median time to launch a trivial Go binary that prints a
// line and exits, and read that line: what starting any Go process costs
// on this machine.
func execBound() float64 {
	dir, err := os.MkdirTemp("", "synclayer-bench-exec-")
	must(err)
	defer os.RemoveAll(dir)
	src := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"ready\") }\n"
	must(os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644))
	must(os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module trivial\n\ngo 1.21\n"), 0o644))
	bin := filepath.Join(dir, "trivial")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		must(fmt.Errorf("build the trivial binary: %v\n%s", err, out))
	}
	return median(startRuns, func() {
		out, err := exec.Command(bin).Output()
		must(err)
		if strings.TrimSpace(string(out)) != "ready" {
			must(fmt.Errorf("trivial binary printed %q", out))
		}
	})
}

// median runs fn n times and returns the median duration in milliseconds.
func median(n int, fn func()) float64 {
	return medianOf(n, func() time.Duration {
		start := time.Now()
		fn()
		return time.Since(start)
	})
}

// medianOf runs fn n times and returns the median of the durations it
// returns, in milliseconds.
func medianOf(n int, fn func() time.Duration) float64 {
	times := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		times = append(times, float64(fn().Microseconds())/1000)
	}
	sort.Float64s(times)
	return times[len(times)/2]
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
