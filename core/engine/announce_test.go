package engine

import (
	"encoding/json"
	"fmt"
	"github.com/synclayer/synclayer/core/store"
	"testing"
	"time"
)

// sentEvent is the part of an outbound event body these tests read.
type sentEvent struct {
	Type          string                     `json:"type"`
	Source        *string                    `json:"source"`
	Sync          *string                    `json:"sync"`
	Run           string                     `json:"run"`
	SyncType      string                     `json:"syncType"`
	Revision      int64                      `json:"revision"`
	ModifiedAfter string                     `json:"modifiedAfter"`
	Results       map[string]json.RawMessage `json:"results"`
	Error         string                     `json:"error"`
}

// outbox returns the events queued for an endpoint, oldest first (no
// notifier runs in these tests, so they stay there).
func outbox(t *testing.T, e *Engine, layer, endpoint string) []sentEvent {
	t.Helper()
	db, err := e.Store(layer)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := db.Deliveries("", 1000, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []sentEvent
	for _, d := range ds {
		if d.Endpoint != endpoint {
			continue
		}
		var ev sentEvent
		if err := json.Unmarshal(d.Body, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func completed(evs []sentEvent) []sentEvent {
	var out []sentEvent
	for _, ev := range evs {
		if ev.Type == EventSyncCompleted {
			out = append(out, ev)
		}
	}
	return out
}

// The sync.completed of each kind of run: INITIAL for the first, then
// INCREMENTAL, FULL for a reset; skip_empty drops the one of a run that
// changed nothing; a whole-layer run of two sources has source null and
// results per source.
func TestOutboundEventsSyncTypesAndSkipEmpty(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeFile("blog/Post.json", `[{"id":"p1"}]`)
	env.writeFile("shop/Product.json", `[{"id":"x1"}]`)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	env.writeConfig(fmt.Sprintf(`
layer "cat" {
  source "blog" {
    plugin = "files"
    config { dir = %q }
  }
  source "shop" {
    plugin = "files"
    config { dir = %q }
  }
  notify "all" {
    url    = "http://127.0.0.1:9/all"
    secret = %q
  }
  notify "changes" {
    url        = "http://127.0.0.1:9/changes"
    secret     = %q
    events     = ["sync.completed"]
    skip_empty = true
  }
}
`, env.path("blog"), env.path("shop"), secret, secret))
	e := env.start()
	waitRunEnd(t, e, "cat", runs(t, e, "cat")[0].ID)

	id, err := e.Trigger("cat", TriggerRequest{Source: "blog"}) // nothing changed
	if err != nil {
		t.Fatal(err)
	}
	waitRunEnd(t, e, "cat", id)
	env.writeFile("blog/Post.json", `[{"id":"p1","v":2}]`)
	if id, err = e.Trigger("cat", TriggerRequest{Source: "blog", Sync: "files", Reset: true}); err != nil {
		t.Fatal(err)
	}
	waitRunEnd(t, e, "cat", id)

	all := completed(outbox(t, e, "cat", "all"))
	if len(all) != 3 {
		t.Fatalf("%d sync.completed for endpoint all, want 3: %+v", len(all), all)
	}
	first, unchanged, reset := all[0], all[1], all[2]
	if first.SyncType != syncTypeInitial || first.Source != nil || first.Sync != nil || first.Revision != 1 {
		t.Errorf("first run: %+v, want INITIAL with source and sync null, revision 1", first)
	}
	if _, ok := first.Results["shop"]; !ok {
		t.Errorf("whole-layer results are not per source: %s", first.Results)
	}
	if unchanged.SyncType != syncTypeIncremental || unchanged.Source == nil || *unchanged.Source != "blog" {
		t.Errorf("second run: %+v, want INCREMENTAL of source blog", unchanged)
	}
	if reset.SyncType != syncTypeFull || reset.Sync == nil || *reset.Sync != "files" || reset.Revision != 3 {
		t.Errorf("reset run: %+v, want FULL of sync files, revision 3", reset)
	}
	if _, ok := reset.Results["Post"]; !ok {
		t.Errorf("single-source results are not per model: %s", reset.Results)
	}
	// modifiedAfter is the commit time of the revision, exactly.
	db, _ := e.Store("cat")
	for _, r := range db.Revisions() {
		if r.Number == reset.Revision && r.CreatedAt.Format("2006-01-02T15:04:05.000000Z07:00") != reset.ModifiedAfter {
			t.Errorf("modifiedAfter %s, revision %d created %s", reset.ModifiedAfter, r.Number, r.CreatedAt)
		}
	}
	changes := outbox(t, e, "cat", "changes")
	if len(changes) != 2 || changes[0].Revision != 1 || changes[1].Revision != 3 {
		t.Errorf("skip_empty endpoint got %+v, want the sync.completed of revisions 1 and 3 only", changes)
	}
	var started int
	for _, ev := range outbox(t, e, "cat", "all") {
		if ev.Type == EventSyncStarted {
			started++
		}
	}
	if started != 3 {
		t.Errorf("%d sync.started, want 3", started)
	}
}

// Events older than event_retention are pruned; newer ones stay.
func TestPruneEvents(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeFile("blog/Post.json", `[{"id":"p1"}]`)
	env.writeConfig(filesConfig(env.path("blog"), ""))
	e := env.start()
	waitRunEnd(t, e, "cat", runs(t, e, "cat")[0].ID)
	db, _ := e.Store("cat")
	// The event log is written in batches after the run: wait for its last
	// event before pruning.
	waitUntil(t, "the run's sync.completed event", func() bool {
		evs, _ := db.Events(0, 1000)
		return len(evs) > 0 && evs[len(evs)-1].Type == "sync.completed"
	})
	if n, err := db.PruneEvents(time.Now().Add(-5 * 24 * time.Hour)); err != nil || n != 0 {
		t.Fatalf("pruning before 5 days ago removed %d fresh events (%v)", n, err)
	}
	evs, _ := db.Events(0, 1000)
	if n, err := db.PruneEvents(time.Now().Add(time.Hour)); err != nil || n != len(evs) {
		t.Fatalf("pruning everything: %d of %d, %v", n, len(evs), err)
	}
	if evs, _ := db.Events(0, 1000); len(evs) != 0 {
		t.Fatalf("events left: %+v", evs)
	}
}

// A cron schedule fires at the expression's times (plus at most 2% jitter).
func TestCronSchedule(t *testing.T) {
	c, err := parseCron("*/5 * * * *")
	if err != nil {
		t.Fatal(err)
	}
	sc := schedule{cron: c}
	from := time.Date(2026, 11, 24, 3, 2, 0, 0, time.UTC)
	next := sc.next(from)
	want := time.Date(2026, 11, 24, 3, 5, 0, 0, time.UTC)
	if next.Before(want) || next.After(want.Add(6*time.Second)) {
		t.Fatalf("next after %s = %s, want %s plus under 2%% of 5 min", from, next, want)
	}
	every := schedule{every: time.Minute}
	if n := every.next(from); n.Before(from.Add(time.Minute)) || n.After(from.Add(time.Minute+1200*time.Millisecond)) {
		t.Fatalf("every 1m from %s = %s", from, n)
	}
	if _, err := parseCron("61 * * * *"); err == nil {
		t.Fatal("an invalid cron expression parsed")
	}
}

// A run a crash left running is failed at the next start, and its
// sync.failed goes out (its sync.started did); pin and unpin are announced.
func TestCrashedRunAndPinsAreAnnounced(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeFile("blog/Post.json", `[{"id":"p1"}]`)
	env.writeConfig(fmt.Sprintf(`
layer "cat" {
  source "blog" {
    plugin = "files"
    config { dir = %q }
  }
  notify "all" {
    url    = "http://127.0.0.1:9/all"
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
  }
}
`, env.path("blog")))
	e := env.start()
	waitRunEnd(t, e, "cat", runs(t, e, "cat")[0].ID)
	stopEngine(e)
	// What a kill -9 in the middle of a run leaves: a run record that says
	// running.
	db, err := env.st.Layer("cat")
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().UTC()
	crashed := &store.Run{ID: newID("run"), State: store.RunRunning, Trigger: TriggerManual, StartedAt: &started,
		Syncs: []store.SyncRef{{Source: "blog", Sync: "files"}}, QueuedAt: started}
	if err := db.PutRun(crashed); err != nil {
		t.Fatal(err)
	}
	e = env.start()
	var failed *sentEvent
	waitUntil(t, "the crashed run's sync.failed", func() bool {
		for _, ev := range outbox(t, e, "cat", "all") {
			if ev.Type == EventSyncFailed && ev.Run == crashed.ID {
				ev := ev
				failed = &ev
				return true
			}
		}
		return false
	})
	if failed.Error == "" {
		t.Errorf("sync.failed of the crashed run carries no error: %+v", failed)
	}
	if err := e.Pin("cat", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Unpin("cat"); err != nil {
		t.Fatal(err)
	}
	var pinned, unpinned int
	for _, ev := range outbox(t, e, "cat", "all") {
		switch ev.Type {
		case EventRevisionPinned:
			pinned++
		case EventRevisionUnpinned:
			unpinned++
		}
	}
	if pinned != 1 || unpinned != 1 {
		t.Fatalf("pinned %d, unpinned %d events, want 1 each", pinned, unpinned)
	}
}
