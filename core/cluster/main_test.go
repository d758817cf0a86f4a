package cluster

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/synclayer/synclayer/plugins/postgres/pgtest"
)

// server is the package's one PostgreSQL server; each test gets a
// database of its own.
var server *pgtest.Server

// slots bounds the tests that hold connections at once: the server takes
// 50, and a host takes MaxRuns + ReservedConns.
var slots = make(chan struct{}, 2)

func TestMain(m *testing.M) {
	if dsn := os.Getenv(hostEnv); dsn != "" {
		// This process is a host of a test (TestRescueAfterHostDies).
		os.Exit(helperHost(dsn))
	}
	var err error
	server, err = pgtest.New()
	if err != nil {
		// Never skip: the cluster's tests need a real server.
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	server.Stop()
	os.Exit(code)
}

// database makes a fresh database for the test, taking one of the slots
// for the test's duration.
func database(t *testing.T) string {
	t.Helper()
	slots <- struct{}{}
	t.Cleanup(func() { <-slots })
	return server.Database(t)
}

// newPool opens a pool of conns connections to dsn, closed when the test
// ends.
func newPool(t testing.TB, dsn string, conns int) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = int32(conns)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// testLogger logs to the test's output.
func testLogger(t testing.TB, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// openHost opens a host on dsn with its own pool, closed when the test
// ends. Unset options get test defaults: 2 runs at once.
func openHost(t *testing.T, dsn string, opts Options) *Cluster {
	t.Helper()
	if opts.MaxRuns == 0 {
		opts.MaxRuns = 2
	}
	if opts.Pool == nil {
		opts.Pool = newPool(t, dsn, opts.MaxRuns+ReservedConns)
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t, opts.HostID)
	}
	c, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return c
}

// recorder is a RunFunc that records the runs, and watches that no two
// runs of one sync overlap.
type recorder struct {
	mu      sync.Mutex
	runs    []Run
	hosts   []string
	active  map[string]int // by layer and sync
	overlap []string
	// hold, when set, is called inside the run (to block it).
	hold func(ctx context.Context, r Run) error
	// started receives each run as it starts (buffered, dropped if full).
	started chan Run
}

func newRecorder() *recorder {
	return &recorder{active: map[string]int{}, started: make(chan Run, 1000)}
}

// runner is the RunFunc of a host.
func (rc *recorder) runner(host string) RunFunc {
	return func(ctx context.Context, r Run) error {
		rc.mu.Lock()
		for _, s := range r.Syncs {
			k := fmt.Sprint(r.Layer, s)
			rc.active[k]++
			if rc.active[k] > 1 {
				rc.overlap = append(rc.overlap, fmt.Sprintf("%s by run %s on %s", k, r.Run, host))
			}
		}
		rc.runs = append(rc.runs, r)
		rc.hosts = append(rc.hosts, host)
		hold := rc.hold
		rc.mu.Unlock()
		select {
		case rc.started <- r:
		default:
		}
		var err error
		if hold != nil {
			err = hold(ctx, r)
		}
		rc.mu.Lock()
		for _, s := range r.Syncs {
			rc.active[fmt.Sprint(r.Layer, s)]--
		}
		rc.mu.Unlock()
		return err
	}
}

func (rc *recorder) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.runs)
}

func (rc *recorder) overlaps() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.overlap...)
}

// waitFor polls cond until it holds or limit passes (then fails the test
// with what).
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jobStates counts the run jobs by River state.
func jobStates(t *testing.T, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT state::text, count(*) FROM river_job WHERE kind = $1 GROUP BY state`, Kind)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		out[s] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
