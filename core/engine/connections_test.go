package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// connConfig is a layer "lay" with a source "crm" of the test connector
// that has connections, and a plain source "plain".
func connConfig(service string) string {
	return service + `
layer "lay" {
  source "crm" {
    plugin      = "test"
    connections = true
    max_concurrent_runs = 8
    config {
      mode = "ok"
    }
  }
  source "plain" {
    plugin = "test"
    config {
      mode = "ok"
    }
  }
}
`
}

// liveWho maps the live records of a query to their "who" field.
func liveWho(t *testing.T, e *Engine, q store.Query) map[string]string {
	t.Helper()
	db, _ := e.Store("lay")
	out := map[string]string{}
	q.Limit = 1000
	if _, err := db.Records(q, func(b []byte) error {
		var r struct {
			ID       string            `json:"id"`
			Who      string            `json:"who"`
			Metadata map[string]any    `json:"_metadata"`
			_        map[string]string `json:"-"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		if r.Metadata["last_action"] != "DELETED" {
			out[fmt.Sprint(r.Metadata["connection"])+"/"+r.ID] = r.Who
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// connRunEnd waits for the last run of a connection's sync to end.
func connRunEnd(t *testing.T, e *Engine, id string, after string) *store.Run {
	t.Helper()
	var run *store.Run
	waitUntil(t, "a run of connection "+id, func() bool {
		c, err := e.GetConnection("lay", "crm", id)
		if err != nil {
			t.Fatal(err)
		}
		r := c.Syncs[0].LastRun
		if r == nil || r.ID == after || (r.State != store.RunCompleted && r.State != store.RunFailed) {
			return false
		}
		run = r
		return true
	})
	return run
}

func TestConnectionsLifecycle(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(connConfig(""))
	e := env.start()
	ctx := testCtx(t)

	// Bad input.
	for _, tc := range []struct {
		in   ConnectionInput
		want error
	}{
		{ConnectionInput{ID: "bad id"}, ErrInvalid},
		{ConnectionInput{ID: strings.Repeat("a", 129)}, ErrInvalid},
		{ConnectionInput{ID: "x", Config: json.RawMessage(`{"nope":1}`)}, ErrInvalid},
		{ConnectionInput{ID: "x", Config: json.RawMessage(`{"records":"many"}`)}, ErrInvalid},
		{ConnectionInput{ID: "x", Config: json.RawMessage(`[1]`)}, ErrInvalid},
		{ConnectionInput{ID: "x", Every: map[string]string{"items": "soon"}}, ErrInvalid},
	} {
		if _, err := e.CreateConnection(ctx, "lay", "crm", tc.in); !errors.Is(err, tc.want) {
			t.Errorf("create %+v: %v, want %v", tc.in, err, tc.want)
		}
	}
	if _, err := e.CreateConnection(ctx, "lay", "plain", ConnectionInput{ID: "x"}); !errors.Is(err, ErrUnknownSource) {
		t.Errorf("create on a source without connections: %v", err)
	}
	_, err := e.CreateConnection(ctx, "lay", "crm", ConnectionInput{ID: "x", Config: json.RawMessage(`{"token":"refuse-123456","who":"acme"}`)})
	var ce *CheckError
	if !errors.As(err, &ce) || !strings.Contains(ce.Message, "suspended") || strings.Contains(err.Error(), "refuse-123456") {
		t.Fatalf("check failure: %v", err)
	}
	if _, err := e.GetConnection("lay", "crm", "x"); !errors.Is(err, ErrUnknownConnection) {
		t.Fatalf("a connection whose check failed was stored: %v", err)
	}

	// Two connections with their own records.
	for _, who := range []string{"acme", "globex"} {
		c, err := e.CreateConnection(ctx, "lay", "crm", ConnectionInput{ID: who,
			Config: json.RawMessage(fmt.Sprintf(`{"token":"secret-token-%s","who":%q,"records":3}`, who, who)),
			Tags:   map[string]string{"plan": map[string]string{"acme": "pro", "globex": "free"}[who]}})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Config["token"]; ok || c.Config["who"] != who || c.State != ConnectionActive {
			t.Fatalf("created connection %+v", c)
		}
	}
	if _, err := e.CreateConnection(ctx, "lay", "crm", ConnectionInput{ID: "acme"}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	first := connRunEnd(t, e, "acme", "")
	connRunEnd(t, e, "globex", "")
	if first.State != store.RunCompleted || first.Trigger != TriggerConfig || first.Syncs[0].Connection != "acme" {
		t.Fatalf("first run of acme: %+v", first)
	}
	got := liveWho(t, e, store.Query{Source: "crm"})
	if len(got) != 6 || got["acme/1"] != "acme" || got["globex/3"] != "globex" {
		t.Fatalf("records %v", got)
	}
	if got := liveWho(t, e, store.Query{Connection: "globex"}); len(got) != 3 {
		t.Fatalf("globex's records %v", got)
	}

	// List by tag, paging.
	list, next, err := e.ListConnections("lay", "crm", ListOptions{Limit: 1})
	if err != nil || len(list) != 1 || list[0].ID != "acme" || next != "acme" {
		t.Fatalf("page 1: %+v %q %v", list, next, err)
	}
	list, next, _ = e.ListConnections("lay", "crm", ListOptions{Limit: 1, After: next})
	if len(list) != 1 || list[0].ID != "globex" || next != "" {
		t.Fatalf("page 2: %+v %q", list, next)
	}
	list, _, _ = e.ListConnections("lay", "crm", ListOptions{Tags: map[string]string{"plan": "free"}})
	if len(list) != 1 || list[0].ID != "globex" {
		t.Fatalf("by tag: %+v", list)
	}

	// Patch: a changed config runs in full.
	plan := "enterprise"
	c, err := e.UpdateConnection("lay", "crm", "acme", ConnectionPatch{Config: json.RawMessage(`{"records":1}`),
		Metadata: json.RawMessage(`{"crm_id":42}`), Tags: map[string]*string{"plan": &plan}, Every: map[string]string{"items": "2h"}})
	if err != nil || c.Tags["plan"] != "enterprise" || string(c.Metadata) != `{"crm_id":42}` {
		t.Fatalf("patch: %+v %v", c, err)
	}
	r := connRunEnd(t, e, "acme", first.ID)
	if r.State != store.RunCompleted || !r.Full {
		t.Fatalf("run after a config change: %+v", r)
	}
	if got := liveWho(t, e, store.Query{Connection: "acme"}); len(got) != 3 {
		// an incremental-free full run without track_deletes keeps 2 and 3
		t.Fatalf("acme after patch %v", got)
	}
	g, err := e.GetConnection("lay", "crm", "acme")
	if err != nil || len(g.Syncs) != 1 || g.Syncs[0].Every != "2h0m0s" || g.Syncs[0].NextRunAt == nil || g.Syncs[0].Records["Item"] != 3 {
		t.Fatalf("get: %+v %v", g, err)
	}

	// Pause and resume.
	if err := e.PauseConnection("lay", "crm", "acme", "items", true); err != nil {
		t.Fatal(err)
	}
	if g, _ := e.GetConnection("lay", "crm", "acme"); g.Syncs[0].State != SyncPaused {
		t.Fatalf("paused state %q", g.Syncs[0].State)
	}
	if err := e.PauseConnection("lay", "crm", "acme", "", false); err != nil {
		t.Fatal(err)
	}

	// Delete: its records become deleted in one revision; the other's stay.
	rev, err := e.DeleteConnection(ctx, "lay", "crm", "acme")
	if err != nil || rev.Counts["crm"]["Item"].Deleted != 3 {
		t.Fatalf("delete: %+v %v", rev, err)
	}
	if got := liveWho(t, e, store.Query{Source: "crm"}); len(got) != 3 || got["globex/1"] != "globex" {
		t.Fatalf("records after delete %v", got)
	}
	if _, err := e.GetConnection("lay", "crm", "acme"); !errors.Is(err, ErrUnknownConnection) {
		t.Fatalf("deleted connection: %v", err)
	}
	db, _ := e.Store("lay")
	if cp, _ := db.Checkpoint(store.SourceKey("crm", "acme"), "items"); cp != nil {
		t.Fatalf("checkpoint left: %s", cp)
	}
	if v, _ := db.Meta(syncedKey(store.SyncRef{Source: "crm", Sync: "items", Connection: "acme"})); v != nil {
		t.Fatalf("synced marker left: %q", v)
	}
	if _, err := e.Trigger("lay", TriggerRequest{Source: "crm", Connection: "acme"}); !errors.Is(err, ErrUnknownConnection) {
		t.Fatalf("trigger of a deleted connection: %v", err)
	}
	waitUntil(t, "the connection events", func() bool {
		types := eventTypes(events(t, e, "lay"))
		return strings.Contains(types, "connection.created") && strings.Contains(types, "connection.deleted")
	})
	st, _ := e.Layer("lay")
	if st.Sources[0].Connections[ConnectionActive] != 1 || st.Connections[ConnectionActive] != 1 || st.Connections[ConnectionNeedsAttention] != 0 {
		t.Errorf("layer status connections %+v, source's %+v", st.Connections, st.Sources[0].Connections)
	}

	// Nothing in the data dir holds a connection's token in the clear.
	stopEngine(e)
	env.st.Close()
	filepath.Walk(env.dataDir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), "secret-token-") {
			t.Errorf("%s holds a connection token in the clear", path)
		}
		return nil
	})
	env.openStore()
	e = env.start()
	if g, err := e.GetConnection("lay", "crm", "globex"); err != nil || g.Config["who"] != "globex" {
		t.Fatalf("after restart: %+v %v", g, err)
	}
}

func TestConnectionRunsGoSideBySide(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(connConfig(""))
	e := env.start()
	ctx := testCtx(t)
	const n = 6
	for i := range n {
		if _, err := e.CreateConnection(ctx, "lay", "crm", ConnectionInput{ID: fmt.Sprint("c", i),
			Config: json.RawMessage(`{"sleep_ms":400}`), NoCheck: true}); err != nil {
			t.Fatal(err)
		}
	}
	var runs []*store.Run
	for i := range n {
		runs = append(runs, connRunEnd(t, e, fmt.Sprint("c", i), ""))
	}
	// Each published its own revision, and they overlapped in time: each
	// started before another one finished.
	revs := map[int64]bool{}
	overlapped := 0
	for _, r := range runs {
		if r.State != store.RunCompleted {
			t.Fatalf("run %+v", r)
		}
		revs[r.Revision] = true
		for _, o := range runs {
			if o != r && r.StartedAt.Before(*o.FinishedAt) && o.StartedAt.Before(*r.FinishedAt) {
				overlapped++
				break
			}
		}
	}
	if len(revs) != n {
		t.Fatalf("revisions %v, want %d distinct", revs, n)
	}
	if overlapped != n {
		t.Fatalf("%d of %d runs overlapped another: runs went one at a time", overlapped, n)
	}
}

func TestConnectionNeedsAttentionAndRecovers(t *testing.T) {
	env := newTestEnv(t, "")
	// An endpoint nobody serves: the outbox keeps what would go out.
	env.writeConfig(strings.Replace(connConfig(""), `  source "plain" {`, `  notify "app" {
    url    = "http://127.0.0.1:9/hook"
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
  }
  source "plain" {`, 1))
	e := env.start()
	ctx := testCtx(t)
	if _, err := e.CreateConnection(ctx, "lay", "crm", ConnectionInput{ID: "acme", Config: json.RawMessage(`{"token":"bad"}`), NoCheck: true}); err != nil {
		t.Fatal(err)
	}
	r := connRunEnd(t, e, "acme", "")
	if r.State != store.RunFailed || r.Attempt != 1 {
		t.Fatalf("run with a refused token: %+v", r)
	}
	var c *Connection
	waitUntil(t, "needs_attention", func() bool {
		c, _ = e.GetConnection("lay", "crm", "acme")
		return c.State == ConnectionNeedsAttention
	})
	if !strings.Contains(c.Error, "401") {
		t.Fatalf("error %q", c.Error)
	}
	if _, err := e.UpdateConnection("lay", "crm", "acme", ConnectionPatch{Config: json.RawMessage(`{"token":"good-token"}`)}); err != nil {
		t.Fatal(err)
	}
	connRunEnd(t, e, "acme", r.ID)
	waitUntil(t, "recovered", func() bool {
		c, _ = e.GetConnection("lay", "crm", "acme")
		return c.State == ConnectionActive
	})
	waitUntil(t, "the connection events", func() bool {
		types := eventTypes(events(t, e, "lay"))
		return strings.Contains(types, "connection.needs_attention") && strings.Contains(types, "connection.recovered")
	})
	// The outbound events of the connection, and of its runs, name it.
	db, _ := e.Store("lay")
	ds, err := db.Deliveries("", 1000, false)
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, d := range ds {
		var body struct {
			Source     string `json:"source"`
			Connection string `json:"connection"`
		}
		if err := json.Unmarshal(d.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body.Source == "crm" && body.Connection == "acme" {
			named[d.Type] = true
		}
	}
	for _, typ := range []string{"connection.created", "sync.started", "sync.failed", "connection.needs_attention", "sync.completed", "connection.recovered"} {
		if !named[typ] {
			t.Errorf("no outbound %s naming connection acme of crm (got %v)", typ, named)
		}
	}
}

func TestDeleteConnectionDuringItsRun(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(connConfig(""))
	e := env.start()
	ctx := testCtx(t)
	if _, err := e.CreateConnection(ctx, "lay", "crm", ConnectionInput{ID: "acme", Config: json.RawMessage(`{"sleep_ms":30000}`), NoCheck: true}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the run to start", func() bool {
		c, _ := e.GetConnection("lay", "crm", "acme")
		return c.Syncs[0].State == SyncRunning
	})
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := e.DeleteConnection(dctx, "lay", "crm", "acme"); err != nil {
		t.Fatal(err)
	}
	if got := liveWho(t, e, store.Query{Source: "crm"}); len(got) != 0 {
		t.Fatalf("records after deleting during a run: %v", got)
	}
	rs := runs(t, e, "lay")
	for _, r := range rs {
		if len(r.Syncs) > 0 && r.Syncs[0].Connection == "acme" && r.State != store.RunFailed {
			t.Fatalf("run of the deleted connection: %+v", r)
		}
	}
}

func TestIdlePluginStops(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(connConfig("service {\n  plugin_idle_timeout = \"300ms\"\n}\n"))
	e := env.start()
	s := e.layers["lay"].source("crm")
	waitUntil(t, "the idle plugin to stop", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.inst == nil
	})
	// It starts again on demand.
	if _, err := e.CreateConnection(testCtx(t), "lay", "crm", ConnectionInput{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	if r := connRunEnd(t, e, "acme", ""); r.State != store.RunCompleted {
		t.Fatalf("run after an idle stop: %+v", r)
	}
}

func TestConnectionPayloadWebhook(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(connConfig(""))
	e := env.start()
	ctx := testCtx(t)
	if _, err := e.CreateConnection(ctx, "lay", "crm", ConnectionInput{ID: "acme", Config: json.RawMessage(`{"records":0}`), NoCheck: true}); err != nil {
		t.Fatal(err)
	}
	connRunEnd(t, e, "acme", "")
	req := httptest.NewRequest("POST", "/hooks/sources/lay/crm/acme", strings.NewReader(`{}`))
	if err := e.ReceiveWebhook(ctx, "lay", "crm", "", req, []byte(`{}`)); !errors.Is(err, ErrUnknownHook) {
		t.Fatalf("webhook without its connection: %v", err)
	}
	if err := e.ReceiveWebhook(ctx, "lay", "crm", "nobody", req, []byte(`{}`)); !errors.Is(err, ErrUnknownHook) {
		t.Fatalf("webhook of an unknown connection: %v", err)
	}
	if err := e.ReceiveWebhook(ctx, "lay", "plain", "acme", req, []byte(`{}`)); !errors.Is(err, ErrUnknownHook) {
		t.Fatalf("webhook with a connection for a source without: %v", err)
	}
	if _, err := e.UpdateConnection("lay", "crm", "acme", ConnectionPatch{Config: json.RawMessage(`{"records":2}`)}); err != nil {
		t.Fatal(err)
	}
	if err := e.ReceiveWebhook(ctx, "lay", "crm", "acme", req, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the webhook's records", func() bool {
		return len(liveWho(t, e, store.Query{Connection: "acme"})) == 2
	})
	if got := liveWho(t, e, store.Query{Source: "plain", Connection: "acme"}); len(got) != 0 {
		t.Fatalf("records leaked: %v", got)
	}
}

func TestLayerOfConnectionsOnlyStarts(t *testing.T) {
	env := newTestEnv(t, "")
	env.writeConfig(`
layer "lay" {
  source "crm" {
    plugin      = "test"
    connections = true
    config {
      mode = "ok"
    }
  }
}
`)
	e := env.start() // no connection yet: nothing to run, nothing wrong
	if _, err := e.Trigger("lay", TriggerRequest{}); !errors.Is(err, ErrUnknownConnection) || !strings.Contains(err.Error(), "no connection") {
		t.Fatalf("layer trigger without connections: %v", err)
	}
	if _, err := e.Trigger("lay", TriggerRequest{Source: "crm", Sync: "items"}); !errors.Is(err, ErrUnknownConnection) || !strings.Contains(err.Error(), "no connections yet") {
		t.Fatalf("sync trigger without connections: %v", err)
	}
	if _, err := e.Trigger("lay", TriggerRequest{Source: "crm", Sync: "nope"}); !errors.Is(err, ErrUnknownSync) {
		t.Fatalf("unknown sync: %v", err)
	}
	if _, err := e.CreateConnection(testCtx(t), "lay", "crm", ConnectionInput{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	if r := connRunEnd(t, e, "acme", ""); r.State != store.RunCompleted || r.Revision != 1 {
		t.Fatalf("first run %+v", r)
	}
}
