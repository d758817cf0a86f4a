package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/synclayer/synclayer/core/store"
)

func TestStartQueuesStartupRunThatPublishesRevision1(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeFile("blog/Post.json", `[{"id":"p1","title":"One"},{"id":"p2","title":"Two"}]`)
	env.writeConfig(filesConfig(env.path("blog"), ""))
	e := env.engine()
	if e.Ready() {
		t.Error("Ready() before Start")
	}
	if err := e.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if !e.Ready() {
		t.Error("not Ready() after Start")
	}
	if got := e.LayerNames(); !slices.Equal(got, []string{"cat"}) {
		t.Errorf("LayerNames() = %q", got)
	}
	rs := runs(t, e, "cat")
	if len(rs) != 1 || rs[0].Trigger != TriggerStartup || !rs[0].Full {
		t.Fatalf("runs after Start: %+v, want one full startup run", rs)
	}
	if want := []store.SyncRef{{Source: "blog", Sync: "files"}}; !slices.Equal(rs[0].Syncs, want) {
		t.Errorf("startup run syncs %+v, want %+v", rs[0].Syncs, want)
	}
	run := waitRunEnd(t, e, "cat", rs[0].ID)
	if run.State != store.RunCompleted || run.Revision != 1 || run.Error != "" {
		t.Fatalf("startup run = %+v, want completed with revision 1", run.Run)
	}
	if c := run.Counts["blog"]["Post"]; c.Added != 2 {
		t.Errorf("run counts %+v, want 2 Post added", run.Counts)
	}
	if run.StartedAt == nil || run.FinishedAt == nil {
		t.Errorf("run times not set: %+v", run.Run)
	}

	st, err := e.Layer("cat")
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision != 1 || st.Pinned != nil || st.Name != "cat" {
		t.Errorf("layer status %+v, want revision 1, not pinned", st)
	}
	if len(st.Sources) != 1 || st.Sources[0].Name != "blog" || st.Sources[0].Plugin != "files" ||
		len(st.Sources[0].Syncs) != 1 || st.Sources[0].Syncs[0].Name != "files" || st.Sources[0].Syncs[0].State != SyncIdle ||
		!slices.Equal(st.Sources[0].Syncs[0].Models, []string{"Post"}) {
		t.Errorf("layer sources %+v", st.Sources)
	}

	db, _ := e.Store("cat")
	revs := db.Revisions()
	if len(revs) != 1 || revs[0].Number != 1 || revs[0].Trigger != TriggerStartup || !slices.Equal(revs[0].Sources, []string{"blog"}) {
		t.Errorf("revisions %+v", revs)
	}
	var ids []string
	if _, err := db.Records(store.Query{Model: "Post"}, func(rec []byte) error {
		ids = append(ids, string(rec))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || !strings.Contains(ids[0], `"id":"p1"`) || !strings.Contains(ids[1], `"id":"p2"`) {
		t.Errorf("records %q", ids)
	}
	// sync.completed is logged just after the run shows as ended.
	waitUntil(t, "sync.completed in the event log", func() bool {
		return strings.HasSuffix(eventTypes(events(t, e, "cat")), "sync.completed")
	})
	if got := eventTypes(events(t, e, "cat")); got != "run.queued,sync.started,sync.completed" {
		t.Errorf("event log %s", got)
	}
	if h, _ := db.Meta(configHashKey("blog")); len(h) == 0 {
		t.Error("the source's configuration hash was not recorded after the startup run")
	}
	// The counter moves just after the run shows as ended.
	waitUntil(t, "synclayer_runs_total{completed} to be 1", func() bool {
		return testutil.ToFloat64(e.metrics.Runs.WithLabelValues("cat", store.RunCompleted)) == 1
	})
}

func TestTriggerUnknownNames(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeFile("blog/Post.json", `[{"id":"p1"}]`)
	env.writeConfig(filesConfig(env.path("blog"), ""))
	e := env.start()
	for _, tc := range []struct {
		layer string
		req   TriggerRequest
		want  error
	}{
		{"nope", TriggerRequest{}, ErrUnknownLayer},
		{"cat", TriggerRequest{Source: "nope"}, ErrUnknownSource},
		{"cat", TriggerRequest{Source: "nope", Sync: "files"}, ErrUnknownSource},
		{"cat", TriggerRequest{Source: "blog", Sync: "nope"}, ErrUnknownSync},
		{"cat", TriggerRequest{Sync: "files"}, ErrUnknownSync}, // a sync needs its source
	} {
		id, err := e.Trigger(tc.layer, tc.req)
		if !errors.Is(err, tc.want) || id != "" {
			t.Errorf("Trigger(%q, %+v) = %q, %v; want %v", tc.layer, tc.req, id, err, tc.want)
		}
	}
	if _, err := e.Run("cat", "run_nope"); !errors.Is(err, ErrUnknownRun) {
		t.Errorf("Run(unknown) = %v, want ErrUnknownRun", err)
	}
	if _, err := e.Run("nope", "run_nope"); !errors.Is(err, ErrUnknownLayer) {
		t.Errorf("Run(unknown layer) = %v, want ErrUnknownLayer", err)
	}
	if _, err := e.Layer("nope"); !errors.Is(err, ErrUnknownLayer) {
		t.Errorf("Layer(unknown) = %v", err)
	}
	if _, err := e.Store("nope"); !errors.Is(err, ErrUnknownLayer) {
		t.Errorf("Store(unknown) = %v", err)
	}
	if _, err := e.Sources("nope"); !errors.Is(err, ErrUnknownLayer) {
		t.Errorf("Sources(unknown) = %v", err)
	}
	// The known names are accepted, and the trigger defaults to manual.
	id, err := e.Trigger("cat", TriggerRequest{Source: "blog", Sync: "files"})
	if err != nil {
		t.Fatal(err)
	}
	if rs := waitRunEnd(t, e, "cat", id); rs.Trigger != TriggerManual || rs.State != store.RunCompleted {
		t.Errorf("run %+v, want a completed manual run", rs.Run)
	}
}

func TestTriggerBeforeStartIsNotReady(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeFile("blog/Post.json", `[]`)
	env.writeConfig(filesConfig(env.path("blog"), ""))
	e := env.engine()
	if _, err := e.Trigger("cat", TriggerRequest{}); !errors.Is(err, ErrNotReady) {
		t.Errorf("Trigger before Start = %v, want ErrNotReady", err)
	}
	if _, err := e.Trigger("nope", TriggerRequest{}); !errors.Is(err, ErrUnknownLayer) {
		t.Errorf("Trigger(unknown) before Start = %v, want ErrUnknownLayer", err)
	}
}

// blockingSource is the config block of a test-connector source whose syncs
// wait for the gate file and mark their start in the started file.
func blockingSource(env *testEnv, name string) [2]string {
	return [2]string{name, fmt.Sprintf("mode = \"block\"\ngate = %q\nstarted = %q", env.path("gate"), env.path(name+".started"))}
}

func TestCoalescingWhileRunning(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(testConfig(blockingSource(env, "src")))
	e := env.start()
	l := e.layers["lay"]

	startup := runs(t, e, "lay")
	if len(startup) != 1 {
		t.Fatalf("runs %+v, want the startup run", startup)
	}
	waitUntil(t, "the startup run to reach the plugin", func() bool { return exists(env.path("src.started")) })
	if st, _ := e.Layer("lay"); st.Sources[0].Syncs[0].State != SyncRunning {
		t.Errorf("sync state %q while its run runs, want running", st.Sources[0].Syncs[0].State)
	}

	var ids []string
	for i := range 10 {
		req := TriggerRequest{}
		switch i {
		case 3:
			req = TriggerRequest{Source: "src"}
		case 5:
			req = TriggerRequest{Source: "src", Sync: "items"}
		case 9:
			req.Trigger = TriggerWebhook // the newest trigger's details win
		}
		id, err := e.Trigger("lay", req)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	waiting := ids[0]
	if waiting == startup[0].ID {
		t.Fatal("a trigger was merged into the running run")
	}
	for i, id := range ids {
		if id != waiting {
			t.Errorf("trigger %d got run %s, want the waiting run %s", i, id, waiting)
		}
	}
	l.mu.Lock()
	queued := len(l.queue)
	l.mu.Unlock()
	if queued != 1 {
		t.Errorf("%d runs wait, want 1", queued)
	}
	if n := len(runs(t, e, "lay")); n != 2 {
		t.Errorf("%d run records, want 2 (the running and the waiting run)", n)
	}
	rs, err := e.Run("lay", waiting)
	if err != nil {
		t.Fatal(err)
	}
	if rs.State != store.RunQueued || rs.Trigger != TriggerWebhook {
		t.Errorf("waiting run %+v, want queued with the newest trigger (webhook)", rs.Run)
	}
	// The event writer appends in batches: wait for all of them.
	var coalesced int
	waitUntil(t, "the coalesced events", func() bool {
		coalesced = 0
		for _, ev := range events(t, e, "lay") {
			if ev.Type == "coalesced" {
				coalesced++
				if ev.Run != waiting {
					t.Errorf("coalesced event for run %s, want %s", ev.Run, waiting)
				}
			}
		}
		return coalesced >= 9
	})
	if coalesced != 9 {
		t.Errorf("%d coalesced events, want 9", coalesced)
	}

	// The waiting run starts right after the running one.
	env.writeFile("gate", "")
	first := waitRunEnd(t, e, "lay", startup[0].ID)
	second := waitRunEnd(t, e, "lay", waiting)
	if first.State != store.RunCompleted || first.Revision != 1 || second.State != store.RunCompleted || second.Revision != 2 {
		t.Fatalf("runs ended %+v and %+v, want revisions 1 and 2", first.Run, second.Run)
	}
	db, _ := e.Store("lay")
	revs := db.Revisions()
	if len(revs) != 2 || revs[0].Trigger != TriggerWebhook || revs[1].Trigger != TriggerStartup {
		t.Errorf("revisions %+v, want 2: webhook, startup", revs)
	}
}

func TestCoalescingNarrowerTriggerMergesIntoWiderWaitingRun(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(testConfig(blockingSource(env, "a"), blockingSource(env, "b")))
	e := env.start()
	waitUntil(t, "the startup run to reach the plugins", func() bool {
		return exists(env.path("a.started")) && exists(env.path("b.started"))
	})
	wide, err := e.Trigger("lay", TriggerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []TriggerRequest{{Source: "a"}, {Source: "b", Sync: "items"}} {
		id, err := e.Trigger("lay", req)
		if err != nil {
			t.Fatal(err)
		}
		if id != wide {
			t.Errorf("Trigger(%+v) = %s, want the waiting run %s that covers it", req, id, wide)
		}
	}
	st, _ := e.Layer("lay")
	for _, s := range st.Sources {
		if s.Syncs[0].State != SyncRunning {
			t.Errorf("source %s: state %s, want running", s.Name, s.Syncs[0].State)
		}
	}
	env.writeFile("gate", "")
	if rs := waitRunEnd(t, e, "lay", wide); rs.State != store.RunCompleted || rs.Revision != 2 {
		t.Errorf("waiting run %+v", rs.Run)
	}
}

func TestCoalescingWiderTriggerKeepsOneWaitingRunPerSync(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(testConfig(blockingSource(env, "a"), blockingSource(env, "b")))
	e := env.start()
	waitUntil(t, "the startup run to reach the plugins", func() bool {
		return exists(env.path("a.started")) && exists(env.path("b.started"))
	})
	narrow, err := e.Trigger("lay", TriggerRequest{Source: "a"})
	if err != nil {
		t.Fatal(err)
	}
	wide, err := e.Trigger("lay", TriggerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	l := e.layers["lay"]
	l.mu.Lock()
	waitingA := 0
	for _, p := range l.queue {
		for _, r := range p.run.Syncs {
			if r.Source == "a" {
				waitingA++
			}
		}
	}
	l.mu.Unlock()
	if waitingA > 1 {
		t.Errorf("sync a/items has %d waiting runs (%s and %s), want at most 1", waitingA, narrow, wide)
	}
	env.writeFile("gate", "")
}

func TestRestartWithUnchangedConfigQueuesNoRun(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeFile("blog/Post.json", `[{"id":"p1"}]`)
	env.writeConfig(filesConfig(env.path("blog"), ""))
	e := env.start()
	first := runs(t, e, "cat")
	waitRunEnd(t, e, "cat", first[0].ID)
	stopEngine(e)
	env.restartStore()

	e = env.start()
	if rs := runs(t, e, "cat"); len(rs) != 1 {
		t.Errorf("runs after a restart with the same config: %+v, want only the startup run", rs)
	}
	l := e.layers["cat"]
	l.mu.Lock()
	busy := len(l.queue) > 0 || len(l.running) > 0
	l.mu.Unlock()
	if busy {
		t.Error("a run is queued or running after a restart with the same config")
	}
	if st, _ := e.Layer("cat"); st.Revision != 1 {
		t.Errorf("revision %d after restart, want 1", st.Revision)
	}
}

func TestRestartWithChangedConfigQueuesConfigRun(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeFile("blog/Post.json", `[{"id":"p1"}]`)
	env.writeConfig(filesConfig(env.path("blog"), ""))
	e := env.start()
	waitRunEnd(t, e, "cat", runs(t, e, "cat")[0].ID)
	stopEngine(e)
	env.restartStore()

	// The config block changes: a full run with trigger config.
	env.writeConfig(filesConfig(env.path("blog"), `id_field = "id"`))
	e = env.start()
	var cfgRun *store.Run
	for _, r := range runs(t, e, "cat") {
		if r.Trigger == TriggerConfig {
			cfgRun = r
		}
	}
	if cfgRun == nil {
		t.Fatalf("no config run after a config change: %+v", runs(t, e, "cat"))
	}
	if !cfgRun.Full {
		t.Error("the config run is not full")
	}
	if rs := waitRunEnd(t, e, "cat", cfgRun.ID); rs.State != store.RunCompleted || rs.Revision != 2 {
		t.Fatalf("config run %+v, want completed with revision 2", rs.Run)
	}
	db, _ := e.Store("cat")
	if revs := db.Revisions(); revs[0].Trigger != TriggerConfig {
		t.Errorf("newest revision %+v, want trigger config", revs[0])
	}
	stopEngine(e)
	env.restartStore()

	// The new configuration is now the layer's: no run on the next start.
	e = env.start()
	if rs := runs(t, e, "cat"); len(rs) != 2 {
		t.Errorf("runs after a second restart: %d, want 2", len(rs))
	}

	// A sync block that changes what is fetched counts as a change too.
	stopEngine(e)
	env.restartStore()
	env.writeConfig(strings.Replace(filesConfig(env.path("blog"), `id_field = "id"`), "    config {", "    sync \"files\" {\n      merging = \"ignore_if_modified_after\"\n    }\n    config {", 1))
	e = env.start()
	rs := runs(t, e, "cat")
	if len(rs) != 3 {
		t.Fatalf("runs after a sync block change: %d, want 3", len(rs))
	}
}

func TestNewLayerOnExistingStoreGetsConfigTrigger(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeFile("blog/Post.json", `[{"id":"p1"}]`)
	env.writeConfig(filesConfig(env.path("blog"), ""))
	e := env.start()
	waitRunEnd(t, e, "cat", runs(t, e, "cat")[0].ID)
	stopEngine(e)
	env.restartStore()
	env.writeConfig(filesConfig(env.path("blog"), "") + strings.Replace(filesConfig(env.path("blog"), ""), `layer "cat"`, `layer "dog"`, 1))
	e = env.start()
	rs := runs(t, e, "dog")
	if len(rs) != 1 || rs[0].Trigger != TriggerConfig {
		t.Errorf("runs of the new layer %+v, want one with trigger config", rs)
	}
}

// modeSource is a test-connector source whose mode the test sets by writing
// the mode file.
func modeSource(env *testEnv, name string) [2]string {
	return [2]string{name, fmt.Sprintf("mode = \"ok\"\nmode_file = %q", env.path(name+".mode"))}
}

func TestBadConnectorOutputFailsRunAndPublishesNothing(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(testConfig(modeSource(env, "src")))
	e := env.start()
	if rs := waitRunEnd(t, e, "lay", runs(t, e, "lay")[0].ID); rs.State != store.RunCompleted || rs.Revision != 1 {
		t.Fatalf("startup run %+v", rs.Run)
	}
	db, _ := e.Store("lay")
	recordIDs := func() []string {
		var out []string
		db.Records(store.Query{}, func(rec []byte) error { out = append(out, string(rec)); return nil })
		return out
	}
	before := recordIDs()

	for _, tc := range []struct{ mode, want string }{
		{"undeclared", `model "Ghost", which this sync does not declare`},
		{"noid", "record without an id"},
		{"reserved", "top-level _metadata field, which synclayer reserves"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			env.writeFile("src.mode", tc.mode)
			id, err := e.Trigger("lay", TriggerRequest{})
			if err != nil {
				t.Fatal(err)
			}
			rs := waitRunEnd(t, e, "lay", id)
			if rs.State != store.RunFailed {
				t.Fatalf("run %+v, want failed", rs.Run)
			}
			if !strings.Contains(rs.Error, tc.want) || !strings.Contains(rs.Error, `source "src"`) || !strings.Contains(rs.Error, "items") {
				t.Errorf("run error %q, want it to name the source, the sync and %q", rs.Error, tc.want)
			}
			if rs.Revision != 0 {
				t.Errorf("failed run has revision %d", rs.Revision)
			}
			if st, _ := e.Layer("lay"); st.Revision != 1 {
				t.Errorf("revision %d after a failed run, want 1", st.Revision)
			}
			if n := len(db.Revisions()); n != 1 {
				t.Errorf("%d revisions after a failed run, want 1", n)
			}
			// The valid record sent in the same batch is not visible either.
			if after := recordIDs(); !slices.Equal(after, before) {
				t.Errorf("records changed by a failed run:\n%q\nwant\n%q", after, before)
			}
			waitUntil(t, "a sync.failed event with the reason", func() bool {
				for _, ev := range events(t, e, "lay") {
					if ev.Type == "sync.failed" && ev.Run == id && strings.Contains(ev.Message, tc.want) {
						return true
					}
				}
				return false
			})
		})
	}

	// The connector behaves again: the next run publishes.
	env.writeFile("src.mode", "ok")
	id, err := e.Trigger("lay", TriggerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rs := waitRunEnd(t, e, "lay", id); rs.State != store.RunCompleted || rs.Revision != 2 {
		t.Errorf("run after the failures %+v, want revision 2", rs.Run)
	}
}

func TestPluginCrashFailsRunAndPluginRestarts(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(testConfig(modeSource(env, "src")))
	e := env.start()
	waitRunEnd(t, e, "lay", runs(t, e, "lay")[0].ID)

	env.writeFile("src.mode", "exit")
	id, err := e.Trigger("lay", TriggerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rs := waitRunEnd(t, e, "lay", id)
	if rs.State != store.RunFailed || !strings.Contains(rs.Error, "crashed") {
		t.Fatalf("run %+v, want failed with the crash", rs.Run)
	}
	// The event log is written behind the run (a batch at a time): wait
	// for the event.
	var crashed bool
	for deadline := time.Now().Add(10 * time.Second); !crashed && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, ev := range events(t, e, "lay") {
			if ev.Type == "plugin.crashed" && ev.Source == "src" {
				crashed = true
			}
		}
	}
	if !crashed {
		t.Errorf("no plugin.crashed event: %s", eventTypes(events(t, e, "lay")))
	}
	if n := testutil.ToFloat64(e.metrics.PluginCrashes.WithLabelValues("test")); n != 1 {
		t.Errorf("plugin crashes metric %v, want 1", n)
	}

	env.writeFile("src.mode", "ok")
	id, err = e.Trigger("lay", TriggerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rs := waitRunEnd(t, e, "lay", id); rs.State != store.RunCompleted || rs.Revision != 2 {
		t.Errorf("run after the crash %+v, want completed with revision 2", rs.Run)
	}
	if n := testutil.ToFloat64(e.metrics.PluginStarts.WithLabelValues("test")); n != 2 {
		t.Errorf("plugin starts %v, want 2 (the first, and one after the crash)", n)
	}
}

func TestStartRejectsConfigThatDoesNotFitTheSchema(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(testConfig([2]string{"src", `mode = "ok"
colour = "blue"`}))
	err := env.engine().Start(testCtx(t))
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "colour") || !strings.Contains(err.Error(), "layers.hcl:") {
		t.Errorf("Start = %T %v, want a *ConfigError naming the attribute and the file", err, err)
	}

	env.writeConfig(strings.Replace(testConfig([2]string{"src", `mode = "ok"`}), "    config {", "    sync \"nope\" {\n    }\n    config {", 1))
	err = env.engine().Start(testCtx(t))
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), `no sync "nope"`) || !strings.Contains(err.Error(), "items") {
		t.Errorf("Start with an unknown sync block = %v, want a *ConfigError listing the syncs", err)
	}
}

func TestRunStatusDuringRunIsRaceFree(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(testConfig(blockingSource(env, "src")))
	e := env.start()
	id := runs(t, e, "lay")[0].ID
	waitUntil(t, "the run to reach the plugin", func() bool { return exists(env.path("src.started")) })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			rs, err := e.Run("lay", id)
			if err != nil {
				t.Error(err)
				return
			}
			if rs.State == store.RunCompleted || rs.State == store.RunFailed {
				return
			}
		}
	}()
	env.writeFile("gate", "")
	<-done
}

func TestStopInterruptsRunThatRunsAgainAtNextStart(t *testing.T) {
	env, e, id := stopDuringRun(t)
	db, _ := e.Store("lay")
	r, err := db.GetRun(id)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != store.RunQueued {
		t.Errorf("a run cut short by Stop is %s, want queued", r.State)
	}
	if n := len(db.Revisions()); n != 1 {
		t.Errorf("%d revisions after an interrupted run, want 1", n)
	}

	env.restartStore()
	env.writeFile("gate", "")
	e = env.start()
	if rs := waitRunEnd(t, e, "lay", id); rs.State != store.RunCompleted || rs.Revision != 2 || rs.Trigger != TriggerManual {
		t.Errorf("the interrupted run after a restart: %+v, want it completed as revision 2", rs.Run)
	}
	if n := len(runs(t, e, "lay")); n != 2 {
		t.Errorf("%d runs, want 2 (no new run for the interrupted one)", n)
	}
}

func TestFailedRunIsRetried(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(strings.Replace(testConfig(modeSource(env, "src")), "    config {",
		"    sync \"items\" {\n      retry {\n        attempts = 2\n        backoff = \"10ms\"\n      }\n    }\n    config {", 1))
	e := env.start()
	waitRunEnd(t, e, "lay", runs(t, e, "lay")[0].ID)
	env.writeFile("src.mode", "fail_once")
	id, err := e.Trigger("lay", TriggerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rs := waitRunEnd(t, e, "lay", id)
	if rs.State != store.RunCompleted || rs.Revision != 2 {
		t.Fatalf("run %+v, want completed on its retry", rs.Run)
	}
	var retrying int
	for _, ev := range events(t, e, "lay") {
		if ev.Type == "sync.retrying" && ev.Run == id {
			retrying++
			if !strings.Contains(ev.Message, "failing once on purpose") {
				t.Errorf("sync.retrying event %+v does not carry the reason", ev)
			}
		}
	}
	if retrying != 1 {
		t.Errorf("%d sync.retrying events, want 1: %s", retrying, eventTypes(events(t, e, "lay")))
	}

	// Without a retry block, a failure is final.
	env.writeConfig(testConfig(modeSource(env, "src")))
	stopEngine(e)
	env.restartStore()
	e = env.start()
	for _, r := range runs(t, e, "lay") {
		if r.State != store.RunCompleted && r.State != store.RunFailed {
			waitRunEnd(t, e, "lay", r.ID) // the config run of the changed sync block
		}
	}
	env.writeFile("src.mode", "fail_once")
	id, err = e.Trigger("lay", TriggerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rs := waitRunEnd(t, e, "lay", id); rs.State != store.RunFailed || !strings.Contains(rs.Error, "failing once on purpose") {
		t.Errorf("run without retry %+v, want failed", rs.Run)
	}
}

// A reload stops the engine and starts a new one on the same open store: a
// run the stop cut short must not leave its staging behind, or the new
// engine could never stage again.
func TestReloadAfterInterruptedRunStagesAgain(t *testing.T) {
	env, e, id := stopDuringRun(t)
	env.writeFile("gate", "")
	e = env.start() // the same store, as a SIGHUP reload does
	if rs := waitRunEnd(t, e, "lay", id); rs.State != store.RunCompleted || rs.Revision != 2 {
		t.Errorf("the interrupted run after a reload: %+v (error %q), want it completed as revision 2", rs.Run, rs.Error)
	}
}

// stopDuringRun starts an engine whose second run blocks in its plugin (a
// gate file releases it), and stops the engine while that run is in it.
func stopDuringRun(t *testing.T) (*testEnv, *Engine, string) {
	t.Helper()
	env := newTestEnv(t, "")
	env.writeConfig(testConfig([2]string{"src", fmt.Sprintf("mode = \"ok\"\nmode_file = %q\ngate = %q\nstarted = %q",
		env.path("src.mode"), env.path("gate"), env.path("src.started"))}))
	e := env.start()
	waitRunEnd(t, e, "lay", runs(t, e, "lay")[0].ID)
	if err := os.Remove(env.path("src.started")); err != nil {
		t.Fatal(err)
	}
	env.writeFile("src.mode", "block")
	id, err := e.Trigger("lay", TriggerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the run to reach the plugin", func() bool { return exists(env.path("src.started")) })
	stopEngine(e)
	return env, e, id
}

// A run past its sync's timeout is cancelled and fails saying so; nothing
// is published.
func TestSyncTimeoutFailsTheRun(t *testing.T) {
	env := newTestEnv(t, "")
	src := blockingSource(env, "src")
	env.writeConfig(strings.Replace(testConfig(src), "    config {",
		"    sync \"items\" {\n      timeout = \"300ms\"\n    }\n    config {", 1))
	e := env.start()
	rs := waitRunEnd(t, e, "lay", runs(t, e, "lay")[0].ID)
	if rs.State != store.RunFailed || !strings.Contains(rs.Error, "timed out after 300ms") {
		t.Fatalf("run past its timeout: %+v", rs.Run)
	}
	db, _ := e.Store("lay")
	if n := len(db.Revisions()); n != 0 {
		t.Fatalf("%d revisions after a timed-out first run, want 0", n)
	}
}

// A full run that tracks deletes and fails after a checkpoint is retried
// from that checkpoint as the same full run: the retry is told to resume
// (Full and Resume), and what it saves is not published as deleted.
func TestRetriedFullRunWithTrackDeletesKeepsWhatItSaved(t *testing.T) {
	env := newTestEnv(t, "")
	src := modeSource(env, "src")
	// The startup run fails for good, so the sync has no checkpoint; the
	// manual run after it is not marked full, yet reads in full.
	env.writeFile("src.mode", "noid")
	env.writeConfig(strings.Replace(testConfig(src), "    config {",
		"    sync \"items\" {\n      track_deletes = true\n      retry {\n        attempts = 1\n        backoff = \"10ms\"\n      }\n    }\n    config {", 1))
	e := env.start()
	if rs := waitRunEnd(t, e, "lay", runs(t, e, "lay")[0].ID); rs.State != store.RunFailed {
		t.Fatalf("startup run %+v, want failed", rs.Run)
	}
	env.writeFile("src.mode", "cp_fail_once")
	id, err := e.Trigger("lay", TriggerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rs := waitRunEnd(t, e, "lay", id); rs.State != store.RunCompleted {
		t.Fatalf("run %+v, want completed on its retry", rs.Run)
	}
	db, _ := e.Store("lay")
	live := map[string]string{}
	if _, err := db.Records(store.Query{Limit: 100}, func(rec []byte) error {
		var r struct {
			ID       string         `json:"id"`
			Full     *bool          `json:"full"`
			Resume   *bool          `json:"resume"`
			Metadata map[string]any `json:"_metadata"`
		}
		if err := json.Unmarshal(rec, &r); err != nil {
			t.Fatal(err)
		}
		live[r.ID] = fmt.Sprint(r.Metadata["last_action"])
		if r.ID == "3" && (r.Full == nil || !*r.Full || r.Resume == nil || !*r.Resume) {
			t.Errorf("the retry was asked full=%v resume=%v, want both true: %s", deref(r.Full), deref(r.Resume), rec)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "2", "3"} {
		if live[id] != "ADDED" {
			t.Errorf("record %s: last_action %q, want ADDED (all: %v)", id, live[id], live)
		}
	}
}

func deref(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

// Handlers answer before the engine has started (the HTTP server listens
// first): looking up a layer while Start opens it must be race-free and
// say "not ready" until it is open (run with -race).
func TestLayerLookupDuringStartIsRaceFree(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(testConfig(modeSource(env, "src")))
	e := env.engine()
	stop := make(chan struct{})
	looked := make(chan struct{})
	go func() {
		defer close(looked)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.Layer("lay"); err != nil && !errors.Is(err, ErrNotReady) {
				t.Errorf("lookup during start: %v", err)
				return
			}
		}
	}()
	if err := e.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-looked
	if _, err := e.Layer("lay"); err != nil {
		t.Fatalf("after start: %v", err)
	}
	stopEngine(e)
}

// A payload webhook whose record the store would refuse (not JSON, or with
// the reserved _metadata key) is set aside alone: the store refuses a whole
// publish for one bad record, and the webhooks after it must not wait
// behind it.
func TestBadWebhookRecordIsSetAsideAlone(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(testConfig([2]string{"src", `mode = "ok"
records = 0`}))
	e := env.start()
	if rs := waitRunEnd(t, e, "lay", runs(t, e, "lay")[0].ID); rs.State != store.RunCompleted {
		t.Fatalf("startup run %+v", rs.Run)
	}
	ctx := testCtx(t)
	for _, body := range []string{
		`raw:b1:{"id":"b1","a":}`,
		`raw:b2:{"id":"b2","\u005fmetadata":1}`,
		`raw:good:{"id":"good","n":1}`,
	} {
		req := httptest.NewRequest("POST", "/hooks/sources/lay/src", strings.NewReader(body))
		if err := e.ReceiveWebhook(ctx, "lay", "src", "", req, []byte(body)); err != nil {
			t.Fatalf("webhook %s: %v", body, err)
		}
	}
	live := func(id string) bool {
		_, ok := liveWho(t, e, store.Query{})["<nil>/"+id]
		return ok
	}
	waitUntil(t, "the good webhook's record", func() bool { return live("good") })
	if live("b1") || live("b2") {
		t.Fatal("a bad webhook's record was stored")
	}
	var reasons []string
	for _, ev := range events(t, e, "lay") {
		if ev.Type == "webhook.failed" {
			reasons = append(reasons, ev.Message)
		}
	}
	if len(reasons) != 2 || !strings.Contains(reasons[0]+reasons[1], "not a valid JSON object") || !strings.Contains(reasons[0]+reasons[1], "_metadata") {
		t.Fatalf("webhook.failed events %q, want the two bad webhooks with their reasons", reasons)
	}
	db, _ := e.Store("lay")
	waitUntil(t, "an empty inbox", func() bool { return db.InboxDepth() == 0 })
}
