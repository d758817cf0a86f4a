package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOpenMigratesWhenHostsStartAtOnce: three hosts opening an empty
// database at once all start; the schema is there once.
func TestOpenMigratesWhenHostsStartAtOnce(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	rec := newRecorder()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	hosts := make([]*Cluster, 3)
	for i := range hosts {
		pool := newPool(t, dsn, 2+ReservedConns)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Open(context.Background(), Options{Pool: pool, HostID: fmt.Sprintf("h%d", i), MaxRuns: 2, Runner: rec.runner("h"), Logger: testLogger(t, "h")})
			if err != nil {
				errs <- err
				return
			}
			hosts[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, c := range hosts {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	ctx := context.Background()
	var n int
	if err := hosts[0].pool.QueryRow(ctx, `SELECT count(*) FROM synclayer_cluster_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	ms, _ := loadMigrations()
	if n != len(ms) {
		t.Fatalf("%d cluster migrations recorded, want %d", n, len(ms))
	}
	// Again: nothing to do.
	if err := Migrate(ctx, hosts[1].pool, nil); err != nil {
		t.Fatal(err)
	}
	// A run goes through.
	if _, _, err := hosts[2].EnqueueRun(ctx, RunJob{Layer: "l", Run: "run_1", Syncs: []SyncKey{{Source: "s", Sync: "y"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the run did not go", func() bool { return rec.count() == 1 })
}

func TestOpenRefusesBadOptions(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	small := newPool(t, dsn, 3)
	run := func(context.Context, Run) error { return nil }
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Runner: run}, "Pool is required"},
		{Options{Pool: small}, "Runner is required"},
		{Options{Pool: small, Runner: run, MaxRuns: 2}, "raise pool_max_conns"},
		{Options{Pool: small, Runner: run, MaxRuns: 20_000}, "at most 10000"},
		{Options{Pool: small, Runner: run, RescueAfter: time.Millisecond}, "at least 1s"},
	} {
		_, err := Open(context.Background(), tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v) = %v, want an error saying %q", tc.opts, err, tc.want)
		}
	}
}

// TestRunGoesWithItsJob: a queued run reaches a RunFunc with what was
// queued (syncs sorted, duplicates dropped); a RunFunc's error ends the
// job (no River retry); bad jobs are refused.
func TestRunGoesWithItsJob(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	rec := newRecorder()
	rec.hold = func(ctx context.Context, r Run) error {
		if r.Run == "run_fails" {
			return errors.New("upstream said no")
		}
		return nil
	}
	c := openHost(t, dsn, Options{HostID: "a", Runner: rec.runner("a")})
	ctx := context.Background()
	job := RunJob{Layer: "crm", Run: "run_1", Reset: true, Trigger: "webhook", Syncs: []SyncKey{
		{Source: "hubspot", Connection: "c2", Sync: "deals"},
		{Source: "hubspot", Connection: "c2", Sync: "contacts"},
		{Source: "hubspot", Connection: "c2", Sync: "deals"},
	}}
	id, coalesced, err := c.EnqueueRun(ctx, job)
	if err != nil || id != "run_1" || coalesced {
		t.Fatalf("EnqueueRun = %q, %v, %v", id, coalesced, err)
	}
	r := <-rec.started
	want := []SyncKey{{Source: "hubspot", Connection: "c2", Sync: "contacts"}, {Source: "hubspot", Connection: "c2", Sync: "deals"}}
	if r.Layer != "crm" || r.Run != "run_1" || !r.Reset || r.Full || r.Trigger != "webhook" || fmt.Sprint(r.Syncs) != fmt.Sprint(want) ||
		r.Attempt != 1 || r.Resumed || r.JobID == 0 || r.QueuedAt.IsZero() {
		t.Fatalf("the run went as %+v", r)
	}
	if _, _, err := c.EnqueueRun(ctx, RunJob{Layer: "crm", Run: "run_fails", Syncs: []SyncKey{{Source: "s", Sync: "y"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the runs did not end", func() bool {
		st := jobStates(t, c.pool)
		return st["completed"] == 1 && st["cancelled"] == 1
	})
	if n := rec.count(); n != 2 {
		t.Fatalf("%d runs went, want 2 (a failed run is not retried by River)", n)
	}
	for _, bad := range []RunJob{
		{Run: "r", Syncs: want},
		{Layer: "crm", Syncs: want},
		{Layer: "crm", Run: "r"},
		{Layer: "crm", Run: "r", Syncs: []SyncKey{{Source: "s"}}},
	} {
		if _, _, err := c.EnqueueRun(ctx, bad); err == nil {
			t.Errorf("EnqueueRun(%+v) was accepted", bad)
		}
	}
}

// TestTriggerStormOverHosts: triggers of one sync set spread over three
// hosts make at most one running and one waiting run: the storm's triggers
// all coalesce into the one waiting run, and two runs go in all, one after
// the other.
func TestTriggerStormOverHosts(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	rec := newRecorder()
	release := make(chan struct{})
	var first sync.Once
	rec.hold = func(ctx context.Context, r Run) error {
		held := false
		first.Do(func() { held = true })
		if held {
			<-release
		}
		return nil
	}
	var hosts []*Cluster
	for i := range 3 {
		hosts = append(hosts, openHost(t, dsn, Options{HostID: fmt.Sprintf("h%d", i), Runner: rec.runner(fmt.Sprintf("h%d", i)), LockRetry: 100 * time.Millisecond, NoSchedules: true}))
	}
	ctx := context.Background()
	syncs := []SyncKey{{Source: "hubspot", Sync: "contacts"}, {Source: "hubspot", Sync: "deals"}}
	storm := func(prefix string, n int) map[string]int {
		var mu sync.Mutex
		ids := map[string]int{}
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// The same set, in another order.
				s := syncs
				if i%2 == 1 {
					s = []SyncKey{syncs[1], syncs[0]}
				}
				id, _, err := hosts[i%3].EnqueueRun(ctx, RunJob{Layer: "crm", Run: fmt.Sprintf("%s_%d", prefix, i), Syncs: s, Trigger: "webhook"})
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
		return ids
	}
	// A storm from nothing: one run starts, at most one waits.
	ids := storm("a", 30)
	if len(ids) > 2 {
		t.Fatalf("a storm of 30 triggers made %d runs: %v", len(ids), ids)
	}
	running := <-rec.started
	// The first run holds the syncs: a second storm coalesces into one
	// waiting run.
	ids2 := storm("b", 30)
	waiting := ""
	for id := range ids2 {
		if id == running.Run {
			t.Fatalf("a trigger coalesced into the running run %s (it no longer waits)", id)
		}
		waiting = id
	}
	if len(ids2) != 1 {
		t.Fatalf("a storm of 30 triggers behind a running run made %d waiting runs: %v", len(ids2), ids2)
	}
	time.Sleep(500 * time.Millisecond) // the waiting run snoozes behind the running one
	if n := rec.count(); n != 1 {
		t.Fatalf("%d runs went while the first held its syncs", n)
	}
	close(release)
	want := len(ids)
	if _, ok := ids[waiting]; !ok {
		want++
	}
	waitFor(t, 20*time.Second, "the runs did not all go", func() bool { return rec.count() == want })
	waitFor(t, 20*time.Second, "the jobs did not complete", func() bool { return jobStates(t, hosts[0].pool)["completed"] == want })
	if o := rec.overlaps(); len(o) > 0 {
		t.Fatalf("runs of one sync overlapped: %v", o)
	}
	t.Logf("first storm: %v; second storm: %v; %d runs went", ids, ids2, want)
}

// TestOneActiveRunPerSync: runs of overlapping sync sets (which do not
// coalesce) take turns on their shared syncs, across hosts; runs that
// share nothing go side by side.
func TestOneActiveRunPerSync(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	rec := newRecorder()
	var mu sync.Mutex
	maxAtOnce, atOnce := 0, 0
	rec.hold = func(ctx context.Context, r Run) error {
		mu.Lock()
		atOnce++
		maxAtOnce = max(maxAtOnce, atOnce)
		mu.Unlock()
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		atOnce--
		mu.Unlock()
		return nil
	}
	var hosts []*Cluster
	for i := range 3 {
		hosts = append(hosts, openHost(t, dsn, Options{HostID: fmt.Sprintf("h%d", i), Runner: rec.runner(fmt.Sprintf("h%d", i)), LockRetry: 50 * time.Millisecond, NoSchedules: true}))
	}
	ctx := context.Background()
	a, b, cc := SyncKey{Source: "s", Sync: "a"}, SyncKey{Source: "s", Sync: "b"}, SyncKey{Source: "s", Sync: "c"}
	other := SyncKey{Source: "s", Connection: "c9", Sync: "a"} // another connection: another sync
	jobs := []RunJob{
		{Layer: "l", Run: "x", Syncs: []SyncKey{a, b}},
		{Layer: "l", Run: "y", Syncs: []SyncKey{b, cc}},
		{Layer: "l", Run: "z", Syncs: []SyncKey{cc}},
		{Layer: "l", Run: "w", Syncs: []SyncKey{a}, Reset: true},
		{Layer: "l", Run: "o", Syncs: []SyncKey{other}},
		{Layer: "l2", Run: "p", Syncs: []SyncKey{a}}, // another layer
	}
	for i, j := range jobs {
		if _, coalesced, err := hosts[i%3].EnqueueRun(ctx, j); err != nil || coalesced {
			t.Fatalf("EnqueueRun(%s) = %v, %v", j.Run, coalesced, err)
		}
	}
	waitFor(t, 30*time.Second, "the runs did not all go", func() bool { return jobStates(t, hosts[0].pool)["completed"] == len(jobs) })
	if o := rec.overlaps(); len(o) > 0 {
		t.Fatalf("runs of one sync overlapped: %v", o)
	}
	if maxAtOnce < 2 {
		t.Fatalf("at most %d runs went at once: runs sharing no sync should go side by side", maxAtOnce)
	}
}

// TestCloseHandsRunsOver: a host that closes interrupts its runs (their
// context says ErrClosed), and another host runs them again.
func TestCloseHandsRunsOver(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	recA, recB := newRecorder(), newRecorder()
	causes := make(chan error, 1)
	recA.hold = func(ctx context.Context, r Run) error {
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return ctx.Err()
	}
	a := openHost(t, dsn, Options{HostID: "a", Runner: recA.runner("a"), NoSchedules: true})
	ctx := context.Background()
	if _, _, err := a.EnqueueRun(ctx, RunJob{Layer: "l", Run: "run_1", Syncs: []SyncKey{{Source: "s", Sync: "y"}}}); err != nil {
		t.Fatal(err)
	}
	<-recA.started
	b := openHost(t, dsn, Options{HostID: "b", Runner: recB.runner("b"), NoSchedules: true})
	closeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := a.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	if cause := <-causes; !errors.Is(cause, ErrClosed) {
		t.Fatalf("the interrupted run's context said %v, want ErrClosed", cause)
	}
	var r Run
	select {
	case r = <-recB.started:
	case <-time.After(30 * time.Second):
		t.Fatalf("the other host did not take the run over; River's jobs: %v", jobStates(t, b.pool))
	}
	if r.Run != "run_1" || !r.Resumed {
		t.Fatalf("the other host ran %+v; want run_1, resumed", r)
	}
	waitFor(t, 20*time.Second, "the run did not complete", func() bool { return jobStates(t, b.pool)["completed"] == 1 })
}

// TestCancel: CancelRun stops a running run on its host (before and after
// its nominal River timeout) and drops a waiting one; CancelConnection
// cancels the runs of a connection.
func TestCancel(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	rec := newRecorder()
	causes := make(chan error, 10)
	rec.hold = func(ctx context.Context, r Run) error {
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return ctx.Err()
	}
	c := openHost(t, dsn, Options{HostID: "a", Runner: rec.runner("a"), RescueAfter: time.Second, NoSchedules: true})
	ctx := context.Background()
	y := []SyncKey{{Source: "s", Connection: "c1", Sync: "y"}}
	if _, _, err := c.EnqueueRun(ctx, RunJob{Layer: "l", Run: "run_1", Syncs: y}); err != nil {
		t.Fatal(err)
	}
	<-rec.started
	// Past its nominal timeout: the heartbeat sees the cancel.
	time.Sleep(1500 * time.Millisecond)
	// One waiting behind it.
	if _, _, err := c.EnqueueRun(ctx, RunJob{Layer: "l", Run: "run_2", Syncs: y, Reset: true}); err != nil {
		t.Fatal(err)
	}
	if found, err := c.CancelRun(ctx, "run_1"); err != nil || !found {
		t.Fatalf("CancelRun = %v, %v", found, err)
	}
	select {
	case cause := <-causes:
		if !errors.Is(cause, ErrCancelled) {
			t.Fatalf("the cancelled run's context said %v", cause)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the running run was not cancelled")
	}
	waitFor(t, 20*time.Second, "the running run's job was not cancelled", func() bool { return jobStates(t, c.pool)["cancelled"] == 1 })
	if n, err := c.CancelConnection(ctx, "l", "s", "c1"); err != nil || n != 1 {
		t.Fatalf("CancelConnection = %d, %v; want the waiting run", n, err)
	}
	waitFor(t, 20*time.Second, "the runs were not cancelled", func() bool { return jobStates(t, c.pool)["cancelled"] == 2 })
	if found, err := c.CancelRun(ctx, "run_nope"); err != nil || found {
		t.Fatalf("CancelRun(unknown) = %v, %v", found, err)
	}
}

// TestWaitingRunWokenWhenSyncsFree: a run that snoozed behind another
// (sharing a sync) starts when that one ends, not when its snooze is over
// (an hour here).
func TestWaitingRunWokenWhenSyncsFree(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	rec := newRecorder()
	release := make(chan struct{})
	rec.hold = func(ctx context.Context, r Run) error {
		if r.Run == "run_first" {
			<-release
		}
		return nil
	}
	var hosts []*Cluster
	for i := range 2 {
		hosts = append(hosts, openHost(t, dsn, Options{HostID: fmt.Sprintf("h%d", i), Runner: rec.runner(fmt.Sprintf("h%d", i)), LockRetry: time.Hour, NoSchedules: true}))
	}
	ctx := context.Background()
	a, b := SyncKey{Source: "s", Sync: "a"}, SyncKey{Source: "s", Sync: "b"}
	if _, _, err := hosts[0].EnqueueRun(ctx, RunJob{Layer: "l", Run: "run_first", Syncs: []SyncKey{a, b}}); err != nil {
		t.Fatal(err)
	}
	<-rec.started
	if _, _, err := hosts[1].EnqueueRun(ctx, RunJob{Layer: "l", Run: "run_second", Syncs: []SyncKey{b}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the second run did not snooze behind the first", func() bool {
		var snoozes int
		err := hosts[0].pool.QueryRow(ctx, `SELECT coalesce((metadata->>'snoozes')::int, 0) FROM river_job WHERE args->>'run' = 'run_second'`).Scan(&snoozes)
		return err == nil && snoozes > 0
	})
	close(release)
	waitFor(t, 30*time.Second, "the second run did not start when the first ended", func() bool { return rec.count() == 2 })
	if o := rec.overlaps(); len(o) > 0 {
		t.Fatalf("runs of one sync overlapped: %v", o)
	}
}

// TestLostLocksStopTheRun: when the connection holding a run's sync locks
// breaks, the run is stopped (ErrLost: another run of its syncs may start
// now) and goes back to the queue, to run again.
func TestLostLocksStopTheRun(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	rec := newRecorder()
	causes := make(chan error, 1)
	rec.hold = func(ctx context.Context, r Run) error {
		if r.Resumed {
			return nil
		}
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return ctx.Err()
	}
	c := openHost(t, dsn, Options{HostID: "a", Runner: rec.runner("a"), RescueAfter: 1200 * time.Millisecond, NoSchedules: true})
	ctx := context.Background()
	if _, _, err := c.EnqueueRun(ctx, RunJob{Layer: "l", Run: "run_1", Syncs: []SyncKey{{Source: "s", Sync: "y"}}}); err != nil {
		t.Fatal(err)
	}
	<-rec.started
	// The session holding the sync's lock (a bigint key shows as classid,
	// its high 32 bits, and objid, its low ones).
	key := uint64(lockKey("l", SyncKey{Source: "s", Sync: "y"}))
	var killed bool
	if err := c.pool.QueryRow(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 1
		  AND classid::text::bigint = $1 AND objid::text::bigint = $2`, int64(key>>32), int64(key&0xffffffff)).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminating the lock connection: %v, %v", killed, err)
	}
	select {
	case cause := <-causes:
		if !errors.Is(cause, ErrLost) {
			t.Fatalf("the run's context said %v, want ErrLost", cause)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the run went on without its locks")
	}
	var again Run
	select {
	case again = <-rec.started:
	case <-time.After(30 * time.Second):
		t.Fatalf("the lost run did not go again; River's jobs: %v", jobStates(t, c.pool))
	}
	if again.Run != "run_1" || !again.Resumed {
		t.Fatalf("then ran %+v, want run_1 resumed", again)
	}
	waitFor(t, 20*time.Second, "the run did not complete", func() bool { return jobStates(t, c.pool)["completed"] == 1 })
}

// TestEnqueueRunTx: a run queued in a transaction goes only if it commits.
func TestEnqueueRunTx(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	rec := newRecorder()
	c := openHost(t, dsn, Options{HostID: "a", Runner: rec.runner("a"), NoSchedules: true})
	ctx := context.Background()
	job := func(id string) RunJob {
		return RunJob{Layer: "l", Run: id, Syncs: []SyncKey{{Source: "s", Sync: id}}}
	}
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.EnqueueRunTx(ctx, tx, job("run_rolled_back")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err = c.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.EnqueueRunTx(ctx, tx, job("run_committed")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the committed run did not go", func() bool { return jobStates(t, c.pool)["completed"] == 1 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.runs) != 1 || rec.runs[0].Run != "run_committed" {
		t.Fatalf("runs %+v, want run_committed only", rec.runs)
	}
	if _, _, err := c.EnqueueRunTx(ctx, nil, job("x")); err == nil {
		t.Fatal("EnqueueRunTx without a transaction was accepted")
	}
}

// TestOpenContextBoundsOpenOnly: the context given to Open bounds Open;
// the host keeps working after it ends, until Close.
func TestOpenContextBoundsOpenOnly(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	rec := newRecorder()
	openCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c, err := Open(openCtx, Options{Pool: newPool(t, dsn, 2+ReservedConns), MaxRuns: 2, HostID: "a", Runner: rec.runner("a"), Logger: testLogger(t, "a")})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, _, err := c.EnqueueRun(context.Background(), RunJob{Layer: "l", Run: "run_1", Syncs: []SyncKey{{Source: "s", Sync: "y"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the run did not go after Open's context ended", func() bool { return jobStates(t, c.pool)["completed"] == 1 })
}
