package graphql

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// benchRecords is the size of the benchmark's layer: BENCH.md's GraphQL
// scenario reads 100,000 Posts; GRAPHQL_BENCH_RECORDS makes it smaller for
// a quick look.
func benchRecords() int {
	if n, err := strconv.Atoi(os.Getenv("GRAPHQL_BENCH_RECORDS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// benchPost is a Post of about 1 KiB, as integration/cmd/bench writes.
func benchPost(i int) []byte {
	body := make([]byte, 0, 1024)
	body = fmt.Appendf(body, `{"id":"post-%07d","slug":"slug-%07d","title":"Post number %d","views":%d,"published":%t,"body":"`, i, i, i, i%1000, i%2 == 0)
	for len(body) < 1022 {
		body = append(body, byte('a'+(i+len(body))%26))
	}
	return append(body, `"}`...)
}

// BenchmarkGraphQL measures the three queries of BENCH.md's GraphQL keys
// over a real Badger store of benchRecords() Posts (slug indexed), through
// ServeHTTP: post(id:), allPost(filter: {slug: {eq}}, limit: 10), and a
// walk of every Post by allPost(limit: 1000) (one op = one whole walk;
// records/s reported).
//
//	go test -run '^$' -bench GraphQL -benchtime 2x -cpuprofile cpu.out ./core/graphql/
func BenchmarkGraphQL(b *testing.B) {
	n := benchRecords()
	h := newHarness(b, testLayerHCL, Options{})
	st, err := h.layer.BeginStaging("run_bench")
	if err != nil {
		b.Fatal(err)
	}
	w := st.Writer("blog", store.WriterOptions{})
	for i := 0; i < n; i += 1000 {
		cs := make([]store.Change, 0, 1000)
		for j := i; j < min(i+1000, n); j++ {
			cs = append(cs, store.Change{Model: "Post", ID: fmt.Sprintf("post-%07d", j), Data: benchPost(j)})
		}
		if err := w.Apply(cs); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := st.Publish(store.PublishInfo{Trigger: "manual", Sources: []string{"blog"}}); err != nil {
		b.Fatal(err)
	}
	env := Env{Config: h.cfg, Models: h.models, Store: h.layer}
	post := func(q string, vars map[string]any) []byte {
		body, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
		r := httptest.NewRequest("POST", "/graphql", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		rw := httptest.NewRecorder()
		h.svc.ServeHTTP(rw, r, env, 0, Scope{All: true})
		if rw.Code != 200 || bytes.Contains(rw.Body.Bytes(), []byte(`"errors"`)) {
			b.Errorf("%d %s", rw.Code, rw.Body.String()) // Errorf: post runs on RunParallel's goroutines too
			return nil
		}
		return rw.Body.Bytes()
	}
	post(`{ allPost(limit: 1) { totalCount } }`, nil) // builds the schema

	b.Run("id", func(b *testing.B) {
		i := 0
		for b.Loop() {
			id := fmt.Sprintf("post-%07d", (i*7919)%n)
			out := post(`query($id: ID!) { post(id: $id) { id slug title views } }`, map[string]any{"id": id})
			if !bytes.Contains(out, []byte(id)) {
				b.Fatalf("post %s: %s", id, out)
			}
			i++
		}
	})
	b.Run("filter", func(b *testing.B) {
		i := 0
		for b.Loop() {
			slug := fmt.Sprintf("slug-%07d", (i*7919)%n)
			out := post(`query($s: String) { allPost(filter: {slug: {eq: $s}}, limit: 10) { nodes { id slug title views } } }`, map[string]any{"s": slug})
			if !bytes.Contains(out, []byte(slug)) {
				b.Fatalf("slug %s: %s", slug, out)
			}
			i++
		}
	})
	// 8 concurrent clients, as the bench's latency keys: p99 of the
	// requests' time in ServeHTTP.
	concurrent := func(b *testing.B, query func(i int) (string, map[string]any)) {
		var mu sync.Mutex
		var all []time.Duration
		var next atomic.Int64
		b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			var lat []time.Duration
			for pb.Next() {
				q, vars := query(int(next.Add(1)*7919) % n)
				start := time.Now()
				post(q, vars)
				lat = append(lat, time.Since(start))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
	b.Run("id8", func(b *testing.B) {
		concurrent(b, func(i int) (string, map[string]any) {
			return `query($id: ID!) { post(id: $id) { id slug title views } }`, map[string]any{"id": fmt.Sprintf("post-%07d", i)}
		})
	})
	b.Run("filter8", func(b *testing.B) {
		concurrent(b, func(i int) (string, map[string]any) {
			return `query($s: String) { allPost(filter: {slug: {eq: $s}}, limit: 10) { nodes { id slug title views } } }`, map[string]any{"s": fmt.Sprintf("slug-%07d", i)}
		})
	})
	b.Run("scan", func(b *testing.B) {
		walked := 0
		for b.Loop() {
			var after any
			seen := 0
			for {
				out := post(`query($after: String) { allPost(limit: 1000, after: $after) { nodes { id slug title views published body } pageInfo { hasNextPage endCursor } } }`,
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
				if err := json.Unmarshal(out, &page); err != nil {
					b.Fatal(err)
				}
				seen += len(page.Data.AllPost.Nodes)
				if !page.Data.AllPost.PageInfo.HasNextPage {
					break
				}
				after = page.Data.AllPost.PageInfo.EndCursor
			}
			if seen != n {
				b.Fatalf("walk read %d posts, want %d", seen, n)
			}
			walked += seen
		}
		b.ReportMetric(float64(walked)/b.Elapsed().Seconds(), "records/s")
	})
}
