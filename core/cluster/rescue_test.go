package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"
)

// hostEnv, set to a DSN, makes the test binary a host that queues one run
// (hostRunEnv), prints "STARTED <run>" when the run starts, and blocks in
// it until killed.
const (
	hostEnv    = "SYNCLAYER_CLUSTER_TEST_HOST_DSN"
	hostRunEnv = "SYNCLAYER_CLUSTER_TEST_HOST_RUN"
)

// testRescueAfter is the rescue delay of the rescue tests' hosts.
const testRescueAfter = 2 * time.Second

func helperHost(dsn string) int {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg.MaxConns = 2 + ReservedConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	started := make(chan string, 1)
	c, err := Open(ctx, Options{
		Pool:        pool,
		HostID:      "doomed",
		Logger:      hclog.New(&hclog.LoggerOptions{Name: "doomed", Level: hclog.Warn, Output: os.Stderr}),
		MaxRuns:     2,
		RescueAfter: testRescueAfter,
		NoSchedules: true,
		Runner: func(ctx context.Context, r Run) error {
			started <- r.Run
			select {} // until killed
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	run := os.Getenv(hostRunEnv)
	if _, _, err := c.EnqueueRun(ctx, RunJob{Layer: "crm", Run: run, Syncs: []SyncKey{{Source: "hubspot", Sync: "contacts"}}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("STARTED %s\n", <-started)
	select {} // until killed
}

// TestRescueAfterHostDies: a host that dies (kill -9) in the middle of a
// run leaves it "running" in River; its heartbeats stop, and another host
// runs it again within the rescue bound (logged; the limit is generous).
func TestRescueAfterHostDies(t *testing.T) {
	t.Parallel()
	dsn := database(t)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), hostEnv+"="+dsn, hostRunEnv+"=run_doomed")
	cmd.Stderr = testWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := bufio.NewReader(out)
	line, err := lines.ReadString('\n')
	if err != nil {
		t.Fatalf("the doomed host did not start its run: %v", err)
	}
	if strings.TrimSpace(line) != "STARTED run_doomed" {
		t.Fatalf("the doomed host said %q", line)
	}
	go io.Copy(io.Discard, lines)

	rec := newRecorder()
	survivor := openHost(t, dsn, Options{HostID: "survivor", Runner: rec.runner("survivor"), RescueAfter: testRescueAfter, NoSchedules: true})
	// While the doomed host lives, its run is its own.
	time.Sleep(3 * testRescueAfter)
	if n := rec.count(); n != 0 {
		t.Fatalf("the survivor ran %d runs while the doomed host was alive", n)
	}

	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	killedAt := time.Now()
	cmd.Wait()
	killed = true

	var r Run
	select {
	case r = <-rec.started:
	case <-time.After(3 * time.Minute):
		t.Fatalf("no host took the dead host's run over within 3 minutes; River's jobs: %v", jobStates(t, survivor.pool))
	}
	took := time.Since(killedAt)
	t.Logf("rescue: the dead host's run started again on the survivor %s after kill -9 (RescueAfter %s)", took.Round(100*time.Millisecond), testRescueAfter)
	if r.Run != "run_doomed" || !r.Resumed || r.Attempt != 2 {
		t.Fatalf("the survivor ran %+v; want run_doomed, resumed, attempt 2", r)
	}
	waitFor(t, 30*time.Second, "the rescued run's job did not complete", func() bool {
		return jobStates(t, survivor.pool)["completed"] == 1
	})
}

// TestLongRunHeartbeats: a run outlives its nominal River timeout
// (RescueAfter) with its context intact, and its heartbeat keeps moving
// attempted_at, which River's rescuer reads.
func TestLongRunHeartbeats(t *testing.T) {
	t.Parallel()
	dsn := database(t)
	rec := newRecorder()
	release := make(chan struct{})
	rec.hold = func(ctx context.Context, r Run) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("run cancelled: %w", context.Cause(ctx))
		}
	}
	c := openHost(t, dsn, Options{HostID: "a", Runner: rec.runner("a"), RescueAfter: time.Second, NoSchedules: true})
	ctx := context.Background()
	if _, _, err := c.EnqueueRun(ctx, RunJob{Layer: "crm", Run: "run_long", Syncs: []SyncKey{{Source: "s", Sync: "y"}}}); err != nil {
		t.Fatal(err)
	}
	<-rec.started
	var seen []time.Time
	for range 4 {
		time.Sleep(time.Second)
		var at time.Time
		if err := c.pool.QueryRow(ctx, `SELECT attempted_at FROM river_job WHERE kind = $1`, Kind).Scan(&at); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, at)
	}
	for i := 1; i < len(seen); i++ {
		if !seen[i].After(seen[i-1]) {
			t.Fatalf("attempted_at did not move on with the heartbeats: %v", seen)
		}
	}
	close(release)
	waitFor(t, 10*time.Second, "the long run did not complete", func() bool { return jobStates(t, c.pool)["completed"] == 1 })
}
