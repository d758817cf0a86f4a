package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The soak scenario (issue 19): a host under mixed load for a few minutes,
// to see what degrades as it ages.
//
// One host, two layers. "soak" has a rest source fed by signed payload
// webhooks (10,000 Posts of about 1 KiB, rewritten over and over) and a 1 s
// schedule on a small model; "churn" has a generator of 20,000 records of
// 1 KiB, all rewritten every 5 s during the steady phase. The phases:
//
//  1. fresh: 2,000 webhooks as fast as 8 clients send them, timed until the
//     inbox is empty: the publish rate of a fresh layer;
//  2. steady: 18,000 webhooks paced over BENCH_SOAK (default 2m), with cursor
//     walks (20 pages/s, each page timed), trigger hooks (20/s) and the
//     churn in parallel; the host's heap is read after 20% and at the end;
//  3. aged: 2,000 webhooks again, timed the same way, after 20,000.
//
// Heap: the host runs with SYNCLAYER_PPROF; /debug/pprof/heap?gc=1&debug=1
// forces a garbage collection and prints runtime.MemStats, of which HeapAlloc
// (live objects) is taken, lowest of three, with every load paused and the
// inbox empty. Disk: blocks allocated under the data dir (du, not apparent
// sizes: value logs are sparse while written), sampled every 500 ms.
// Live data: the bytes of every record a full read of both layers returns.
func soak(work string) {
	length := 2 * time.Minute
	if v := os.Getenv("BENCH_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			must(fmt.Errorf("BENCH_SOAK=%q: want a duration such as 90s or 5m", v))
		}
		length = d
	}
	const burst, steady = 2000, 18000

	up, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer up.Close()
	var tags strings.Builder
	tags.WriteString("[")
	for i := 0; i < 50; i++ {
		if i > 0 {
			tags.WriteString(",")
		}
		fmt.Fprintf(&tags, `{"id":"t%02d","name":"tag %d"}`, i, i)
	}
	tags.WriteString("]")
	go http.Serve(up, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/tags" {
			io.WriteString(w, tags.String())
			return
		}
		io.WriteString(w, "[]")
	}))
	const secret = "bench-soak-secret"
	dir := filepath.Join(work, "soak")
	must(os.MkdirAll(dir, 0o755))
	cfg := fmt.Sprintf(`
layer "soak" {
  keep_revisions = 10
  keep_for       = "30s"
  source "api" {
    plugin = "rest"
    config {
      base_url       = "http://%s"
      webhook_secret = %q
      models = {
        Post = { path = "/posts", records = "", id = "id" }
        Tag  = { path = "/tags", records = "", id = "id" }
      }
    }
    sync "Tag" {
      every = "1s"
    }
  }
}

layer "churn" {
  keep_revisions = 2
  keep_for       = "0s"
  source "gen" {
    plugin = "generator"
    config {
      records       = 20000
      payload_bytes = 1024
      models        = ["Item"]
      change_ratio  = 1
      seed          = 1
    }
  }
}
`, up.Addr(), secret)
	must(os.WriteFile(filepath.Join(dir, "layer.hcl"), []byte(cfg), 0o644))
	pprofAddr := freeAddr()
	// The host inherits the bench's environment (host.start).
	os.Setenv("SYNCLAYER_PPROF", pprofAddr)
	h := &host{name: "soak", dir: dir, addr: freeAddr()}
	h.start()
	os.Unsetenv("SYNCLAYER_PPROF")
	defer h.stop()
	s := &soaker{h: h, secret: secret, pprof: pprofAddr,
		// Uncompressed answers: the host's gzip writers for /metrics
		// stay pooled across a collection and would count as growth.
		client: &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}}
	s.waitIdle("churn")
	s.waitIdle("soak")

	diskDone := make(chan struct{})
	var peakDisk atomic.Int64
	var diskWG sync.WaitGroup
	diskWG.Add(1)
	go func() {
		defer diskWG.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			if d := allocated(filepath.Join(dir, "data")); d > peakDisk.Load() {
				peakDisk.Store(d)
			}
			select {
			case <-diskDone:
				return
			case <-t.C:
			}
		}
	}()

	fmt.Fprintf(os.Stderr, "bench: soak: fresh burst of %d webhooks\n", burst)
	fresh := s.burst("fresh", 0, burst)
	var lat []timed
	part := steady / 5
	fmt.Fprintf(os.Stderr, "bench: soak: steady phase, %d webhooks over %s\n", steady, length)
	lat = append(lat, s.load(burst, part, length/5)...)
	heap1, rev1 := s.heap("warm"), s.revisions()
	lat = append(lat, s.load(burst+part, steady-part, length-length/5)...)
	heap2, rev2 := s.heap("end"), s.revisions()
	fmt.Fprintf(os.Stderr, "bench: soak: aged burst of %d webhooks\n", burst)
	aged := s.burst("aged", burst+steady, burst)
	live := s.liveBytes("soak") + s.liveBytes("churn")
	close(diskDone)
	diskWG.Wait()

	set("soak_publish_fresh_rps", fresh, "", "")
	set("soak_publish_aged_rps", aged, "", "")
	set("soak_publish_ratio", aged/fresh, "≥ 0.8", verdict(aged/fresh >= 0.8))
	set("soak_revisions", float64(rev2-rev1), "(between the heap readings)", "")
	perRev := 0.0
	if rev2 > rev1 {
		perRev = float64(heap2-heap1) / (1 << 20) / float64(rev2-rev1) * 10000
	}
	set("soak_heap_mb", float64(heap2)/(1<<20), fmt.Sprintf("(%.1f after warm-up)", float64(heap1)/(1<<20)), "")
	set("soak_heap_per_10k_revisions_mb", perRev, "≤ 1", verdict(rev2 > rev1 && perRev <= 1))
	set("soak_disk_mb", float64(peakDisk.Load())/(1<<20), "(peak; see soak_live_mb)", "")
	set("soak_live_mb", float64(live)/(1<<20), "", "")
	sort.Slice(lat, func(i, j int) bool { return lat[i].at.Before(lat[j].at) })
	all := make([]float64, len(lat))
	for i, l := range lat {
		all[i] = l.ms
	}
	worst := 0.0
	for i := 0; i < len(lat); {
		j := i
		for j < len(lat) && lat[j].at.Sub(lat[i].at) < 10*time.Second {
			j++
		}
		if j-i >= 20 {
			worst = max(worst, p99(all[i:j]))
		}
		i = j
	}
	set("soak_read_p99_ms", p99(all), "", "")
	set("soak_read_p99_worst_10s_ms", worst, "", "")
	set("soak_read_gone", float64(s.gone.Load()), "0", verdict(s.gone.Load() == 0))
	set("soak_webhooks_refused", float64(s.refused.Load()), "(429, retried)", "")
}

type soaker struct {
	h              *host
	secret, pprof  string
	client         *http.Client
	gone, refused  atomic.Int64
	triggersFailed atomic.Int64
}

type timed struct {
	at time.Time
	ms float64
}

func p99(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	c := append([]float64(nil), v...)
	sort.Float64s(c)
	return c[len(c)*99/100]
}

// allocated is the disk space the files under dir take (blocks, as du).
func allocated(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil {
			n += st.Blocks * 512
		}
		return nil
	})
	return n
}

// webhook sends the i-th payload webhook (Post i mod 10,000, about 1 KiB,
// signed), again after Retry-After while the host answers 429.
func (s *soaker) webhook(i int) {
	body := fmt.Sprintf(`{"model":"Post","action":"upsert","record":{"id":"p%05d","seq":%d,"body":"%s"}}`,
		i%10000, i, strings.Repeat(string(rune('a'+i%26)), 960))
	mac := hmac.New(sha256.New, []byte(s.secret))
	mac.Write([]byte(body))
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	for {
		req, _ := http.NewRequest("POST", s.h.url("/hooks/sources/soak/api"), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Signature-256", sig)
		resp, err := s.client.Do(req)
		must(err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusAccepted:
			return
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			s.refused.Add(1)
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			time.Sleep(time.Duration(max(wait, 1)) * time.Second)
		default:
			must(fmt.Errorf("soak webhook answered %d", resp.StatusCode))
		}
	}
}

// metric reads one sample of the host's /metrics.
func (s *soaker) metric(name string) float64 {
	resp, err := s.client.Get(s.h.url("/metrics"))
	must(err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			must(err)
			return v
		}
	}
	must(fmt.Errorf("/metrics has no %s", name))
	return 0
}

// drain waits until every accepted webhook of the soak layer is published.
// It polls /metrics every 100 ms: a scrape reads every kept revision record
// (synclayer_revisions_kept), so polling harder would load the host in
// proportion to its history and bias what is measured.
func (s *soaker) drain() {
	for s.metric(`synclayer_inbox_pending{layer="soak"}`) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
}

// burst sends n webhooks from 8 clients and returns how many per second
// were published, from the first sent to the inbox empty again.
// With BENCH_CPUPROFILE=DIR it writes the host's CPU profile of the
// burst's first 3 s to DIR/soak-cpu-NAME.pb.gz.
func (s *soaker) burst(name string, from, n int) float64 {
	s.quiet()
	var prof sync.WaitGroup
	if d := os.Getenv("BENCH_CPUPROFILE"); d != "" {
		prof.Add(1)
		go func() {
			defer prof.Done()
			resp, err := s.client.Get("http://" + s.pprof + "/debug/pprof/profile?seconds=3")
			must(err)
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			must(err)
			must(os.WriteFile(filepath.Join(d, "soak-cpu-"+name+".pb.gz"), b, 0o644))
		}()
	}
	defer prof.Wait()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				s.webhook(from + i)
			}
		}()
	}
	wg.Wait()
	s.drain()
	return float64(n) / time.Since(start).Seconds()
}

// load runs the steady mix for n webhooks paced over d, then waits for
// the host to be quiet. It returns the read latencies.
func (s *soaker) load(from, n int, d time.Duration) []timed {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	every := func(period time.Duration, fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(period)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					fn()
				}
			}
		}()
	}
	// Cursor walks, 20 pages a second in all.
	var mu sync.Mutex
	var lat []timed
	pages := make(chan struct{})
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cursor := ""
			for {
				select {
				case <-stop:
					return
				case <-pages:
				}
				p := "/v1/layers/soak/records?limit=200"
				if cursor != "" {
					p += "&cursor=" + cursor
				}
				t0 := time.Now()
				resp, err := s.client.Get(s.h.url(p))
				must(err)
				var page struct {
					NextCursor *string `json:"next_cursor"`
				}
				if resp.StatusCode == http.StatusGone {
					s.gone.Add(1)
					cursor = ""
				} else if resp.StatusCode != 200 {
					b, _ := io.ReadAll(resp.Body)
					must(fmt.Errorf("soak read: %d %s", resp.StatusCode, b))
				} else {
					must(json.NewDecoder(resp.Body).Decode(&page))
					cursor = ""
					if page.NextCursor != nil {
						cursor = *page.NextCursor
					}
				}
				resp.Body.Close()
				ms := float64(time.Since(t0).Microseconds()) / 1000
				mu.Lock()
				lat = append(lat, timed{t0, ms})
				mu.Unlock()
			}
		}()
	}
	every(50*time.Millisecond, func() {
		select {
		case pages <- struct{}{}:
		default: // both readers busy: the page is skipped, not queued
		}
	})
	every(50*time.Millisecond, func() {
		resp, err := s.client.Post(s.h.url("/hooks/layers/soak"), "application/json", nil)
		must(err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			s.triggersFailed.Add(1)
		}
	})
	every(5*time.Second, func() {
		resp, err := s.client.Post(s.h.url("/v1/layers/churn/syncs"), "application/json", strings.NewReader(`{}`))
		must(err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})
	// Webhooks, paced, from up to 8 clients at once.
	jobs := make(chan int)
	var senders sync.WaitGroup
	for w := 0; w < 8; w++ {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for i := range jobs {
				s.webhook(i)
			}
		}()
	}
	gap := d / time.Duration(n)
	start := time.Now()
	for i := 0; i < n; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * gap)); wait > 0 {
			time.Sleep(wait)
		}
		jobs <- from + i
	}
	close(jobs)
	senders.Wait()
	close(stop)
	wg.Wait()
	if f := s.triggersFailed.Load(); f > 0 {
		must(fmt.Errorf("soak: %d trigger hooks were not accepted", f))
	}
	s.drain()
	s.waitIdle("churn")
	s.waitIdle("soak")
	return lat
}

// waitIdle waits until no run of the layer is queued or running.
func (s *soaker) waitIdle(layer string) {
	for {
		q := s.metric(`synclayer_runs{layer="` + layer + `",state="queued"}`)
		r := s.metric(`synclayer_runs{layer="` + layer + `",state="running"}`)
		if q == 0 && r == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// quiet waits (up to a minute) until the host uses less than a tenth of
// a core over half a second: compactions and value-log collections that a
// phase started are over, so that they do not weigh on the next.
func (s *soaker) quiet() {
	cpu := func() float64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.h.cmd.Process.Pid))
		must(err)
		// utime and stime are fields 14 and 15; the command name (field
		// 2) may hold spaces but ends at the last ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		u, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		return (u + st) / 100 // clock ticks (USER_HZ)
	}
	deadline := time.Now().Add(time.Minute)
	for prev := cpu(); time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		cur := cpu()
		if cur-prev < 0.05 {
			return
		}
		prev = cur
	}
}

// heap is the host's live heap after forced collections, lowest of three
// readings a second apart, on a quiet host. Two collections first empty
// the sync.Pools (a pooled object outlives one collection).
// With BENCH_CPUPROFILE=DIR it also writes the host's heap profile to
// DIR/soak-heap-NAME.pb.gz (compare with go tool pprof -base).
func (s *soaker) heap(name string) int64 {
	s.quiet()
	for i := 0; i < 2; i++ {
		resp, err := s.client.Get("http://" + s.pprof + "/debug/pprof/heap?gc=1")
		must(err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if d := os.Getenv("XHEAPDIR"); d != "" {
		resp, err := s.client.Get("http://" + s.pprof + "/debug/pprof/heap?gc=1")
		must(err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		os.WriteFile(filepath.Join(d, fmt.Sprintf("heap-%d.pb.gz", time.Now().Unix())), b, 0o644)
	}
	best := int64(-1)
	for i := 0; i < 3; i++ {
		resp, err := s.client.Get("http://" + s.pprof + "/debug/pprof/heap?gc=1&debug=1")
		must(err)
		var v int64 = -1
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
				v, err = strconv.ParseInt(rest, 10, 64)
				must(err)
			}
		}
		resp.Body.Close()
		if v < 0 {
			must(fmt.Errorf("the host's heap profile has no HeapAlloc line"))
		}
		if best < 0 || v < best {
			best = v
		}
		time.Sleep(time.Second)
	}
	if d := os.Getenv("BENCH_CPUPROFILE"); d != "" {
		resp, err := s.client.Get("http://" + s.pprof + "/debug/pprof/heap?gc=1")
		must(err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		must(err)
		must(os.WriteFile(filepath.Join(d, "soak-heap-"+name+".pb.gz"), b, 0o644))
	}
	return best
}

// revisions is the sum of both layers' newest revision numbers.
func (s *soaker) revisions() int64 {
	return int64(s.metric(`synclayer_revision{layer="soak"}`) + s.metric(`synclayer_revision{layer="churn"}`))
}

// liveBytes reads a whole layer and returns the bytes of its records.
func (s *soaker) liveBytes(layer string) int64 {
	var n int64
	cursor := ""
	for {
		p := "/v1/layers/" + layer + "/records?limit=5000"
		if cursor != "" {
			p += "&cursor=" + cursor
		}
		var page struct {
			Records    []json.RawMessage `json:"records"`
			NextCursor *string           `json:"next_cursor"`
		}
		s.h.getJSON(p, &page)
		for _, r := range page.Records {
			n += int64(len(r))
		}
		if page.NextCursor == nil {
			return n
		}
		cursor = *page.NextCursor
	}
}
