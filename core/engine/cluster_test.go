package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/synclayer/synclayer/core/cluster"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
	"github.com/synclayer/synclayer/plugins/postgres/pgtest"
)

// TestCluster runs engines as hosts sharing one PostgreSQL for their runs,
// schedules and inbox leadership (core/cluster). Each host has its own
// Badger store here: what is tested is how the work is spread over the
// hosts, not a shared store.
func TestCluster(t *testing.T) {
	server := pgtest.Start(t)
	t.Run("TriggerStormMakesAtMostTwoRuns", func(t *testing.T) { testClusterTriggerStorm(t, server) })
	t.Run("ScheduleFiresOncePerPeriod", func(t *testing.T) { testClusterSchedule(t, server) })
	t.Run("StoppingHostHandsItsRunOver", func(t *testing.T) { testClusterStopHandsOver(t, server) })
	t.Run("DeadHostsRunIsRescued", func(t *testing.T) { testClusterRescue(t, server) })
	t.Run("OneHostAtATimeProcessesTheInbox", func(t *testing.T) { testClusterInbox(t, server) })
	t.Run("ConnectionSchedulesAndDelete", func(t *testing.T) { testClusterConnections(t, server) })
}

// clusterHost is how a test host starts.
type clusterHost struct {
	name        string
	dsn         string
	rescueAfter time.Duration
	// keepPool leaves the host's pool open at the end (a host cut off from
	// the database: closing its pool could wait on River's goroutines).
	keepPool bool
}

// start builds and starts an engine over env's store and layer file, as a
// host of the cluster on h.dsn; it is stopped at the end of the test.
func (h clusterHost) start(t *testing.T, env *testEnv) *Engine {
	t.Helper()
	pcfg, err := pgxpool.ParseConfig(h.dsn)
	if err != nil {
		t.Fatal(err)
	}
	const maxRuns = 2
	pcfg.MaxConns = maxRuns + cluster.ReservedConns + 2 // + the inbox of one layer, + one spare
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	if !h.keepPool {
		t.Cleanup(pool.Close)
	}
	cfg := env.config()
	pm := plugin.NewManager(plugin.Options{SearchPaths: []string{testBinDir}, Declared: cfg.Plugins})
	e, err := New(Options{Config: cfg, Store: env.st, Plugins: pm, Logger: testLogger(t, h.name),
		Cluster: &cluster.Options{Pool: pool, HostID: h.name, MaxRuns: maxRuns, RescueAfter: h.rescueAfter, LockRetry: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopEngine(e) })
	if err := e.Start(testCtx(t)); err != nil {
		t.Fatalf("Start %s: %v", h.name, err)
	}
	return e
}

// testLogger logs warnings and errors to the test's output, until the test
// ends (a host cut off from the database may log later).
func testLogger(t *testing.T, name string) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: w})
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// testPool is a small pool on dsn for the test's own queries.
func testPool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// activeRunJobs counts the runs River has not finished: waiting or running
// on any host.
func activeRunJobs(t *testing.T, db *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM river_job
		WHERE kind = $1 AND state NOT IN ('completed', 'cancelled', 'discarded')`, cluster.Kind).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// runJobs counts the run jobs River was given with a trigger.
func runJobs(t *testing.T, db *pgxpool.Pool, trigger string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = $1 AND args->>'trigger' = $2`, cluster.Kind, trigger).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitLong is waitUntil with a longer limit, for what River's maintenance
// does (a rescue).
func waitLong(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: still waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// blockingCluster is the layer file of the cluster tests: layer "lay" with
// a test-connector source "src" whose sync waits for the gate file of env.
func blockingCluster(env *testEnv) string {
	return testConfig([2]string{"src", fmt.Sprintf("mode = \"block\"\ngate = %q\nstarted = %q", env.path("gate"), env.path("started"))})
}

// testClusterTriggerStorm: triggers of one sync spread over two hosts make
// at most two runs in all (one running, one waiting; the others coalesce
// into the waiting one), and both complete.
func testClusterTriggerStorm(t *testing.T, server *pgtest.Server) {
	dsn := server.Database(t)
	db := testPool(t, dsn)
	envA, envB := newTestEnv(t, ""), newTestEnv(t, "")
	layers := blockingCluster(envA)
	envA.writeConfig(layers)
	envB.writeConfig(layers)
	envA.writeFile("gate", "") // the startup runs go through
	a := clusterHost{name: "a", dsn: dsn}.start(t, envA)
	b := clusterHost{name: "b", dsn: dsn}.start(t, envB)
	hosts := []*Engine{a, b}
	waitUntil(t, "the startup runs", func() bool { return activeRunJobs(t, db) == 0 })

	if err := os.Remove(envA.path("gate")); err != nil {
		t.Fatal(err)
	}
	const triggers = 40
	var mu sync.Mutex
	ids := map[string]int{}
	var wg sync.WaitGroup
	for i := range triggers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := hosts[i%2].Trigger("lay", TriggerRequest{Source: "src"})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids[id]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(ids) == 0 || len(ids) > 2 {
		t.Fatalf("%d triggers over two hosts made %d runs, want 1 or 2: %v", triggers, len(ids), ids)
	}
	envA.writeFile("gate", "")
	waitUntil(t, "the storm's runs", func() bool { return activeRunJobs(t, db) == 0 })
	if n := runJobs(t, db, TriggerManual); n != len(ids) {
		t.Fatalf("River was given %d manual runs; the triggers were told of %d", n, len(ids))
	}
	for id := range ids {
		ranOn := ""
		for i, e := range hosts {
			if rs, err := e.Run("lay", id); err == nil && rs.State == store.RunCompleted && rs.Revision > 0 {
				ranOn = fmt.Sprint("host ", i)
			}
		}
		if ranOn == "" {
			t.Errorf("run %s did not complete on either host", id)
		}
	}
	// Each trigger that did not queue a run logged its coalescing.
	waitUntil(t, "the coalesced events", func() bool {
		n := 0
		for _, e := range hosts {
			for _, ev := range events(t, e, "lay") {
				if ev.Type == "coalesced" && ids[ev.Run] > 0 {
					n++
				}
			}
		}
		if n > triggers-len(ids) {
			t.Fatalf("%d coalesced events, want %d", n, triggers-len(ids))
		}
		return n == triggers-len(ids)
	})
}

// testClusterSchedule: both hosts save the same schedule (one row); it
// fires once per period across them, never more: each firing moves the
// row's next_at on by whole periods in the same transaction as it queues
// its run. Pause and Resume delete and restore the row.
func testClusterSchedule(t *testing.T, server *pgtest.Server) {
	dsn := server.Database(t)
	db := testPool(t, dsn)
	envA, envB := newTestEnv(t, ""), newTestEnv(t, "")
	const period = time.Second
	layers := fmt.Sprintf(`
layer "lay" {
  source "src" {
    plugin = "test"
    config { mode = "ok" }
    sync "items" { every = %q }
  }
}
`, period)
	envA.writeConfig(layers)
	envB.writeConfig(layers)
	a := clusterHost{name: "a", dsn: dsn}.start(t, envA)
	b := clusterHost{name: "b", dsn: dsn}.start(t, envB)
	ctx := context.Background()
	// The schedule's next firing and the runs fired so far, in one
	// snapshot.
	look := func() (next time.Time, fired int) {
		t.Helper()
		err := db.QueryRow(ctx, `SELECT
			(SELECT next_at FROM synclayer_cluster_schedules WHERE layer = 'lay' AND source = 'src' AND connection = '' AND sync = 'items'),
			(SELECT count(*) FROM river_job WHERE kind = $1 AND args->>'trigger' = 'schedule')`, cluster.Kind).Scan(&next, &fired)
		if err != nil {
			t.Fatal(err)
		}
		return next, fired
	}
	var rows int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM synclayer_cluster_schedules`).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("%d schedule rows (%v), want 1: both hosts save the same schedule", rows, err)
	}
	next0, fired0 := look()
	next1, fired1 := next0, fired0
	waitUntil(t, "three firings", func() bool {
		next1, fired1 = look()
		return fired1-fired0 >= 3
	})
	periods := int(next1.Sub(next0) / period)
	if fired1-fired0 > periods {
		t.Fatalf("%d runs fired while the schedule moved on by %d periods: a firing happened twice", fired1-fired0, periods)
	}
	// The fired runs ran, on one host or the other.
	waitUntil(t, "the scheduled runs to complete", func() bool {
		n := 0
		for _, e := range []*Engine{a, b} {
			for _, r := range runs(t, e, "lay") {
				if r.Trigger == TriggerSchedule && r.State == store.RunCompleted {
					n++
				}
			}
		}
		return n >= 3
	})

	ref := store.SyncRef{Source: "src", Sync: "items"}
	if next, err := b.NextRuns("lay"); err != nil || next[ref].IsZero() {
		t.Fatalf("NextRuns = %v, %v; want the schedule's next firing", next, err)
	}
	if err := a.Pause("lay", "src", "items"); err != nil {
		t.Fatal(err)
	}
	if next, err := b.NextRuns("lay"); err != nil || len(next) != 0 {
		t.Fatalf("NextRuns of a paused sync = %v, %v; want none (its schedule is deleted)", next, err)
	}
	if err := a.Resume("lay", "src", "items"); err != nil {
		t.Fatal(err)
	}
	if next, err := b.NextRuns("lay"); err != nil || next[ref].IsZero() {
		t.Fatalf("NextRuns after Resume = %v, %v; want the schedule back", next, err)
	}
}

// testClusterStopHandsOver: a host that stops in the middle of a run puts
// it back (its record queued, its job back in River), and another host
// runs it, under its id, at once.
func testClusterStopHandsOver(t *testing.T, server *pgtest.Server) {
	dsn := server.Database(t)
	envA, envB := newTestEnv(t, ""), newTestEnv(t, "")
	layers := blockingCluster(envA)
	envA.writeConfig(layers)
	envB.writeConfig(layers)
	a := clusterHost{name: "a", dsn: dsn}.start(t, envA)
	started := runs(t, a, "lay")
	if len(started) != 1 {
		t.Fatalf("host a's runs: %+v, want its startup run", started)
	}
	id := started[0].ID
	waitUntil(t, "host a's run to reach its plugin", func() bool { return exists(envA.path("started")) })
	b := clusterHost{name: "b", dsn: dsn}.start(t, envB)

	stopEngine(a)
	if r, err := a.Run("lay", id); err != nil || r.State != store.RunQueued {
		t.Fatalf("host a's record of the run it stopped: %+v, %v; want it queued again", r, err)
	}
	envA.writeFile("gate", "")
	var rs *RunStatus
	waitUntil(t, "host b to run the run host a put back", func() bool {
		var err error
		rs, err = b.Run("lay", id)
		return err == nil && (rs.State == store.RunCompleted || rs.State == store.RunFailed)
	})
	if rs.State != store.RunCompleted || rs.Revision == 0 {
		t.Fatalf("the handed-over run ended %+v on host b, want completed with a revision", rs.Run)
	}
	if db, _ := a.Store("lay"); len(db.Revisions()) != 0 {
		t.Fatalf("host a published %v while stopping", db.Revisions())
	}
}

// cutProxy forwards TCP connections to a PostgreSQL server until Cut: then
// it drops them all and refuses new ones, as the network does to a host
// that dies.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(p.Cut)
	go p.serve()
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			c.Close()
			s.Close()
			p.mu.Unlock()
			continue
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { io.Copy(s, c); s.Close() }()
		go func() { io.Copy(c, s); c.Close() }()
	}
}

// Cut drops every connection (the server frees their locks) and refuses
// new ones.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return
	}
	p.cut = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
}

// testClusterRescue: host a runs a run and dies in its middle (cut off
// from the database: no heartbeat, its sync locks gone); a publishes
// nothing, and host b runs the run again, under its id, and completes it.
func testClusterRescue(t *testing.T, server *pgtest.Server) {
	dsn := server.Database(t)
	db := testPool(t, dsn)
	proxy := newCutProxy(t, fmt.Sprintf("127.0.0.1:%d", server.Port))
	viaProxy := strings.Replace(dsn, fmt.Sprintf("127.0.0.1:%d", server.Port), proxy.ln.Addr().String(), 1)
	if viaProxy == dsn {
		t.Fatalf("cannot route %s through the proxy", dsn)
	}
	envA, envB := newTestEnv(t, ""), newTestEnv(t, "")
	layers := blockingCluster(envA)
	envA.writeConfig(layers)
	envB.writeConfig(layers)
	const rescueAfter = 2 * time.Second
	a := clusterHost{name: "a", dsn: viaProxy, rescueAfter: rescueAfter, keepPool: true}.start(t, envA)
	started := runs(t, a, "lay")
	if len(started) != 1 {
		t.Fatalf("host a's runs: %+v, want its startup run", started)
	}
	doomed := started[0].ID
	waitUntil(t, "host a's run to reach its plugin", func() bool { return exists(envA.path("started")) })
	b := clusterHost{name: "b", dsn: dsn, rescueAfter: rescueAfter}.start(t, envB)

	proxy.Cut() // host a dies in the middle of its run
	cutAt := time.Now()
	// Its heartbeat fails: it gives the run up (cluster.ErrLost), as a
	// dead host would have. Then the run may go on.
	la := a.layers["lay"]
	waitUntil(t, "host a to give its run up", func() bool {
		la.mu.Lock()
		defer la.mu.Unlock()
		return len(la.running) == 0
	})
	envA.writeFile("gate", "")
	var rs *RunStatus
	waitLong(t, 3*time.Minute, "host b to run host a's run again", func() bool {
		var err error
		rs, err = b.Run("lay", doomed)
		return err == nil && rs.State == store.RunCompleted
	})
	t.Logf("host a's run completed on host b %s after a was cut off (RescueAfter %s)", time.Since(cutAt).Round(100*time.Millisecond), rescueAfter)
	if rs.Revision == 0 {
		t.Fatalf("the rescued run completed without a revision: %+v", rs.Run)
	}
	var state string
	var attempt int
	waitUntil(t, "River to complete the rescued run's job", func() bool {
		if err := db.QueryRow(context.Background(), `SELECT state::text, attempt FROM river_job WHERE args->>'run' = $1`, doomed).Scan(&state, &attempt); err != nil {
			t.Fatal(err)
		}
		return state != "running"
	})
	if state != "completed" || attempt != 2 {
		t.Fatalf("the rescued run's job is %s after %d attempts, want completed after 2", state, attempt)
	}
	// Host a, cut off, recorded and published nothing more.
	stopCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	a.Stop(stopCtx)
	cancel()
	if r, err := a.Run("lay", doomed); err != nil || r.State != store.RunRunning {
		t.Fatalf("host a's record of its lost run: %+v, %v; want it left running", r.Run, err)
	}
	if db, _ := a.Store("lay"); len(db.Revisions()) != 0 {
		t.Fatalf("host a published %v after losing its run", db.Revisions())
	}
}

// testClusterInbox: a layer's payload webhooks are published by one host
// at a time, the leader of its inbox; when it stops, another takes over.
func testClusterInbox(t *testing.T, server *pgtest.Server) {
	dsn := server.Database(t)
	envA, envB := newTestEnv(t, ""), newTestEnv(t, "")
	layers := testConfig([2]string{"src", "mode = \"ok\"\nrecords = 2"})
	envA.writeConfig(layers)
	envB.writeConfig(layers)
	ctx := testCtx(t)
	post := func(e *Engine) {
		t.Helper()
		req := httptest.NewRequest("POST", "/hooks/sources/lay/src", strings.NewReader(`{}`))
		if err := e.ReceiveWebhook(ctx, "lay", "src", "", req, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	webhookRevisions := func(e *Engine) int {
		db, err := e.Store("lay")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range db.Revisions() {
			if r.Trigger == TriggerWebhook {
				n++
			}
		}
		return n
	}
	depth := func(e *Engine) int {
		db, err := e.Store("lay")
		if err != nil {
			t.Fatal(err)
		}
		return db.InboxDepth()
	}

	a := clusterHost{name: "a", dsn: dsn}.start(t, envA)
	post(a)
	waitUntil(t, "host a to publish its webhook", func() bool { return webhookRevisions(a) == 1 })
	b := clusterHost{name: "b", dsn: dsn}.start(t, envB)
	post(b)
	post(a)
	waitUntil(t, "host a to publish its second webhook", func() bool { return webhookRevisions(a) == 2 })
	if lead, err := b.cluster.Load().TryLead(ctx, "inbox/lay"); err != nil || lead != nil {
		t.Fatalf("host b could lead the inbox while host a does: %v, %v", lead, err)
	}
	if n, d := webhookRevisions(b), depth(b); n != 0 || d != 1 {
		t.Fatalf("host b published %d webhooks (%d waiting) while host a led the inbox; want none published, 1 waiting", n, d)
	}

	stopEngine(a)
	waitUntil(t, "host b to take the inbox over", func() bool { return webhookRevisions(b) == 1 && depth(b) == 0 })
}

// testClusterConnections: a connection's schedule is a row of the
// cluster's table (its override of the period included), gone while the
// sync is paused; deleting the connection during its run cancels the run
// and deletes its schedules.
func testClusterConnections(t *testing.T, server *pgtest.Server) {
	dsn := server.Database(t)
	db := testPool(t, dsn)
	env := newTestEnv(t, "")
	env.writeConfig(connConfig(""))
	e := clusterHost{name: "a", dsn: dsn}.start(t, env)
	ctx := testCtx(t)
	own := fmt.Sprintf(`{"mode":"block","gate":%q,"started":%q}`, env.path("gate"), env.path("acme.started"))
	if _, err := e.CreateConnection(ctx, "lay", "crm", ConnectionInput{ID: "acme", Config: []byte(own), Every: map[string]string{"items": "1h"}, NoCheck: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the connection's first run to reach its plugin", func() bool { return exists(env.path("acme.started")) })

	schedule := func() (everyMS int64, next time.Time, ok bool) {
		t.Helper()
		err := db.QueryRow(ctx, `SELECT every_ms, next_at FROM synclayer_cluster_schedules
			WHERE layer = 'lay' AND source = 'crm' AND connection = 'acme' AND sync = 'items'`).Scan(&everyMS, &next)
		if err == nil {
			return everyMS, next, true
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		return 0, time.Time{}, false
	}
	every, next, ok := schedule()
	if !ok || every != time.Hour.Milliseconds() {
		t.Fatalf("the connection's schedule: every %d ms (found %v), want its override of 1h", every, ok)
	}
	c, err := e.GetConnection("lay", "crm", "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Syncs[0].NextRunAt; got == nil || !got.Equal(next.UTC()) {
		t.Fatalf("the connection's next run is %v, want the schedule's %v", got, next)
	}
	if err := e.PauseConnection("lay", "crm", "acme", "items", true); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := schedule(); ok {
		t.Fatal("a paused sync kept its schedule")
	}
	if err := e.PauseConnection("lay", "crm", "acme", "items", false); err != nil {
		t.Fatal(err)
	}
	if every, _, ok := schedule(); !ok || every != time.Hour.Milliseconds() {
		t.Fatalf("a resumed sync's schedule: every %d ms (found %v), want 1h", every, ok)
	}

	// A run waits behind the running one: the delete drops it too.
	waiting, err := e.Trigger("lay", TriggerRequest{Source: "crm", Connection: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if rs, err := e.Run("lay", waiting); err != nil || rs.State != store.RunQueued {
		t.Fatalf("the second run of the connection: %+v, %v; want it queued", rs, err)
	}
	if _, err := e.DeleteConnection(ctx, "lay", "crm", "acme"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := schedule(); ok {
		t.Fatal("a deleted connection kept its schedule")
	}
	n := 0
	for _, r := range runs(t, e, "lay") {
		if connectionOf(r.Syncs) == "acme" {
			n++
			if r.State != store.RunFailed {
				t.Errorf("run %s of the deleted connection is %s, want failed", r.ID, r.State)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d runs of the deleted connection, want 2 (the running one, the waiting one)", n)
	}
	waitUntil(t, "River to finish the deleted connection's run", func() bool { return activeRunJobs(t, db) == 0 })
}
