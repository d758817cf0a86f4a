package engine

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// TestNextRunsAndRedeliver: NextRuns tells when each scheduled sync is due;
// Redeliver makes a delivery due again and audits it.
func TestNextRunsAndRedeliver(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeFile("blog/Post.json", `[{"id":"p1","title":"One"}]`)
	env.writeConfig(fmt.Sprintf(`
layer "cat" {
  source "blog" {
    plugin = "files"
    config { dir = %q }
    sync "files" { every = "1h" }
  }
}
`, env.path("blog")))
	before := time.Now()
	e := env.start()
	ref := store.SyncRef{Source: "blog", Sync: "files"}
	var next map[store.SyncRef]time.Time
	waitUntil(t, "the schedule", func() bool {
		var err error
		next, err = e.NextRuns("cat")
		return err == nil && len(next) == 1
	})
	// Due an hour after the start, plus at most 10 s of jitter.
	if at := next[ref]; at.Before(before.Add(time.Hour)) || at.After(time.Now().Add(time.Hour+10*time.Second)) {
		t.Errorf("next run of blog/files at %s, started at %s", at, before)
	}
	if _, err := e.NextRuns("nope"); !errors.Is(err, ErrUnknownLayer) {
		t.Errorf("NextRuns of an unknown layer: %v", err)
	}

	db, _ := e.Store("cat")
	d := store.Delivery{EventID: "evt_1", Endpoint: "app", Type: "sync.completed", Body: []byte(`{}`), Created: time.Now(), State: store.DeliveryFailed}
	if err := db.Enqueue([]store.Delivery{d}); err != nil {
		t.Fatal(err)
	}
	got, err := e.Redeliver("cat", d.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.DeliveryPending {
		t.Errorf("redelivered: %+v", got)
	}
	if _, err := e.Redeliver("cat", "evt_nope.app"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("redeliver an unknown delivery: %v", err)
	}
	audit, err := e.Audit("cat", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != 1 || audit[0].Action != AuditDeliveryRetried || audit[0].Details["delivery"] != d.ID() {
		t.Errorf("audit: %+v", audit)
	}
}
