package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSyncWaitShowsProgressAndUnchangedSources drives waitRun against a
// fake host whose run reports progress with a total, then completes.
func TestSyncWaitShowsProgressAndUnchangedSources(t *testing.T) {
	states := []string{
		`{"run":"run_1","state":"queued","received":0}`,
		`{"run":"run_1","state":"running","received":100,"progress":[{"source":"api","sync":"posts","model":"Post","done":100,"total":1000}]}`,
		`{"run":"run_1","state":"running","received":600,"progress":[{"source":"api","sync":"posts","model":"Post","done":600,"total":1000}]}`,
		`{"run":"run_1","state":"completed","revision":7,"syncs":[{"source":"api","sync":"posts"},{"source":"blog","sync":"files"}],
		  "counts":{"api":{"Post":{"added":990,"updated":10}},"zeta":{"A":{"unchanged":3}}}}`,
	}
	var mu sync.Mutex
	i := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/layers/demo/runs/run_1" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprint(w, states[min(i, len(states)-1)])
		i++
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	c := &client{addr: srv.URL, http: srv.Client(), poll: time.Millisecond, every: time.Hour, stdout: &stdout, stderr: &stderr}
	if err := c.waitRun("demo", "run_1"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	// Not a terminal: a line at each change of state (every is an hour).
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "run_1 queued: 0 records received, ") ||
		!strings.HasPrefix(lines[1], "run_1 running: 100 of 1,000 records (10%), ") {
		t.Fatalf("progress lines:\n%s", stderr.String())
	}
	want := "run_1 completed: revision 7\n" +
		"SOURCE  MODEL         ADDED  UPDATED  DELETED  UNCHANGED\n" +
		"api     Post          990    10       0        0\n" +
		"blog    (no changes)  0      0        0        0\n" +
		"zeta    A             0      0        0        3\n"
	if stdout.String() != want {
		t.Fatalf("result:\n%s\nwant:\n%s", stdout.String(), want)
	}

	// Every poll past `every` prints a line, with the rate and the ETA.
	mu.Lock()
	i = 1
	mu.Unlock()
	stderr.Reset()
	c.every = 0
	if err := c.waitRun("demo", "run_1"); err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "600 of 1,000 records (60%), ") || !strings.Contains(lines[1], "/s, ETA ") {
		t.Fatalf("progress lines:\n%s", stderr.String())
	}
}

func TestRunProgress(t *testing.T) {
	r := &runView{Received: 42}
	if d, n := runProgress(r); d != 42 || n != 0 {
		t.Errorf("no reports: %d of %d", d, n)
	}
	r.Progress = []progressView{
		{Source: "a", Sync: "s", Model: "X", Done: 10, Total: 100},
		{Source: "a", Sync: "s", Model: "Y", Done: 5, Total: 50},
		{Source: "b", Sync: "t", Done: 7, Total: 70},
		{Source: "b", Sync: "t", Model: "Z", Done: 1, Total: 2}, // the sync's own report wins
	}
	if d, n := runProgress(r); d != 22 || n != 220 {
		t.Errorf("reports with totals: %d of %d, want 22 of 220", d, n)
	}
	r.Progress = append(r.Progress, progressView{Source: "c", Sync: "u", Model: "W", Done: 9})
	if d, n := runProgress(r); d != 42 || n != 0 {
		t.Errorf("a report without total: %d of %d, want the received count", d, n)
	}
	if got := progressLine("run_1", &runView{State: "running"}, 250, 1000, 50, 1500*time.Millisecond); got != "run_1 running: 250 of 1,000 records (25%), 50/s, ETA 15s, 1.5s" {
		t.Errorf("line %q", got)
	}
}
