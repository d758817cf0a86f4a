package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"
)

// graphqlRecords is the size of the GraphQL scenario's layer (BENCH.md:
// 100,000 records), smaller when the bench runs with fewer records.
func graphqlRecords() int { return min(records, 100_000) }

// graphqlBench measures BENCH.md round 2's GraphQL keys on a layer of Posts
// of about 1 KiB (a files source, slug indexed): post(id:) and an indexed
// allPost(filter: {slug: {eq}}, limit: 10) from 8 concurrent clients
// (p99 latency), and a walk of every Post by allPost(limit: 1000) against
// read_rps of the same run.
func graphqlBench(work string) {
	n := graphqlRecords()
	h := &host{name: "gql", dir: filepath.Join(work, "gql"), addr: freeAddr()}
	data := filepath.Join(h.dir, "posts")
	must(os.MkdirAll(data, 0o755))
	f, err := os.Create(filepath.Join(data, "Post.jsonl"))
	must(err)
	w := bufio.NewWriter(f)
	for i := 0; i < n; i++ {
		body := make([]byte, 0, 1024)
		body = fmt.Appendf(body, `{"id":"post-%07d","slug":"slug-%07d","title":"Post number %d","views":%d,"published":%t,"body":"`, i, i, i, i%1000, i%2 == 0)
		for len(body) < 1022 {
			body = append(body, byte('a'+(i+len(body))%26))
		}
		w.Write(append(body, "\"}\n"...))
	}
	must(w.Flush())
	must(f.Close())
	cfg := fmt.Sprintf(`
layer "gql" {
  source "blog" {
    plugin = "files"
    config { dir = %q }
  }
  index "Post" { fields = ["slug"] }
}
`, data)
	must(os.WriteFile(filepath.Join(h.dir, "layer.hcl"), []byte(cfg), 0o644))
	profDir := os.Getenv("BENCH_CPUPROFILE")
	pprofAddr := freeAddr()
	if profDir != "" {
		os.Setenv("SYNCLAYER_PPROF", pprofAddr)
	}
	h.start()
	os.Unsetenv("SYNCLAYER_PPROF")
	defer h.stop()
	// profile takes a CPU profile of the host's first 10 s of a phase into
	// BENCH_CPUPROFILE/graphql-<name>.pprof; wait for it after the phase.
	profile := func(name string) (wait func()) {
		if profDir == "" {
			return func() {}
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/profile?seconds=10")
			must(err)
			defer resp.Body.Close()
			f, err := os.Create(filepath.Join(profDir, "graphql-"+name+".pprof"))
			must(err)
			_, err = io.Copy(f, resp.Body)
			must(err)
			must(f.Close())
		}()
		return func() { <-done }
	}
	h.firstRun()

	// Each of the 8 clients keeps its connection, as the triggers scenario's
	// do (http.DefaultTransport keeps 2 idle connections per host, so most
	// requests of 8 concurrent clients would open a new one).
	const clients = 8
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	query := func(q string, vars map[string]any) ([]byte, time.Duration) {
		body, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
		start := time.Now()
		resp, err := client.Post(h.url("/v1/layers/gql/graphql"), "application/json", bytes.NewReader(body))
		must(err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		must(err)
		took := time.Since(start)
		if resp.StatusCode != 200 || bytes.Contains(b, []byte(`"errors"`)) {
			must(fmt.Errorf("graphql %d: %s", resp.StatusCode, b))
		}
		return b, took
	}
	// The first query builds the revision's schema (a walk of the layer,
	// once per revision a process serves); it is not a latency sample.
	query(`{ allPost(limit: 1) { totalCount } }`, nil)

	p99 := func(name, q string, vars func(i int) map[string]any) float64 {
		const each = 250
		lat := make([]time.Duration, clients*each)
		var wg sync.WaitGroup
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					_, lat[c*each+i] = query(q, vars(rand.IntN(n)))
				}
			}(c)
		}
		wg.Wait()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		ms := func(q int) float64 { return float64(lat[len(lat)*q/100].Microseconds()) / 1000 }
		fmt.Fprintf(os.Stderr, "bench: graphql %s latency ms: p50 %.2f p90 %.2f p99 %.2f max %.2f\n", name, ms(50), ms(90), ms(99),
			float64(lat[len(lat)-1].Microseconds())/1000)
		return ms(99)
	}
	wait := profile("latency")
	id := p99("post(id:)", `query($id: ID!) { post(id: $id) { id slug title views } }`,
		func(i int) map[string]any { return map[string]any{"id": fmt.Sprintf("post-%07d", i)} })
	set("graphql_id_p99_ms", id, "≤ 5", verdict(id <= 5))
	filter := p99("allPost(filter:)", `query($s: String) { allPost(filter: {slug: {eq: $s}}, limit: 10) { nodes { id slug title views } } }`,
		func(i int) map[string]any { return map[string]any{"s": fmt.Sprintf("slug-%07d", i)} })
	set("graphql_filter_p99_ms", filter, "≤ 5", verdict(filter <= 5))
	wait()

	// Every field of every Post, page by page, as the records walk reads
	// whole records.
	wait = profile("walk")
	start := time.Now()
	seen := 0
	var after any
	for {
		b, _ := query(`query($after: String) { allPost(limit: 1000, after: $after) { nodes { id slug title views published body } pageInfo { hasNextPage endCursor } } }`,
			map[string]any{"after": after})
		var page struct {
			Data struct {
				AllPost struct {
					Nodes    []json.RawMessage
					PageInfo struct {
						HasNextPage bool
						EndCursor   string
					}
				}
			}
		}
		must(json.Unmarshal(b, &page))
		seen += len(page.Data.AllPost.Nodes)
		if !page.Data.AllPost.PageInfo.HasNextPage {
			break
		}
		after = page.Data.AllPost.PageInfo.EndCursor
	}
	if seen != n {
		must(fmt.Errorf("graphql walk read %d posts, want %d", seen, n))
	}
	rps := float64(seen) / time.Since(start).Seconds()
	wait()
	fmt.Fprintf(os.Stderr, "bench: graphql walk %s posts/s\n", strconv.FormatFloat(rps, 'f', 0, 64))
	if read, ok := results["read_rps"]; ok {
		ratio := rps / read
		set("graphql_scan_ratio", ratio, "≥ 0.5", verdict(ratio >= 0.5))
	}
}
