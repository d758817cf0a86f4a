package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// connSource is a source with connections on the raw-protocol test
// connector: each connection's run sends Items 1…records.
const connSource = `
  source "crm" {
    plugin      = "test"
    connections = true
    config { mode = "ok" }
  }`

// connView is a connection as the API answers it.
type connView struct {
	ID        string            `json:"id"`
	Layer     string            `json:"layer"`
	Source    string            `json:"source"`
	Config    map[string]any    `json:"config"`
	Metadata  map[string]any    `json:"metadata"`
	Tags      map[string]string `json:"tags"`
	Every     map[string]string `json:"every"`
	State     string            `json:"state"`
	CreatedAt string            `json:"created_at"`
	Syncs     []struct {
		Name      string           `json:"name"`
		State     string           `json:"state"`
		Every     string           `json:"every"`
		NextRunAt *string          `json:"next_run_at"`
		Records   map[string]int64 `json:"records"`
		LastRun   *struct {
			Run     string `json:"run"`
			State   string `json:"state"`
			Trigger string `json:"trigger"`
		} `json:"last_run"`
	} `json:"syncs"`
}

const connBase = "/v1/layers/cat/sources/crm/connections"

// waitConnIdle waits until a connection's syncs have a last run that ended
// after the run `after` (any when ""), and none is queued or running.
func (f *fixture) waitConnIdle(id, after string) connView {
	f.t.Helper()
	var c connView
	waitUntil(f.t, "connection "+id+" idle", func() bool {
		f.do("GET", connBase+"/"+id, "", 200, &c)
		for _, y := range c.Syncs {
			if y.State == "queued" || y.State == "running" || y.LastRun == nil || y.LastRun.Run == after {
				return false
			}
			if y.LastRun.State != "completed" && y.LastRun.State != "failed" {
				return false
			}
		}
		return len(c.Syncs) > 0
	})
	return c
}

// connRecords reads a layer's records of one connection (every action).
func (f *fixture) connRecords(conn, extra string) []map[string]any {
	f.t.Helper()
	var page struct {
		Records []map[string]any `json:"records"`
	}
	f.do("GET", "/v1/layers/cat/records?limit=1000&connection="+url.QueryEscape(conn)+extra, "", 200, &page)
	return page.Records
}

// TestConnectionsLifecycle drives every connection route: create (the
// first run), list with tag filters and pages, get with its syncs, patch
// (a changed config queues a full run), trigger, pause and resume, delete
// (its records soft-deleted in one revision); sensitive fields never come
// back.
func TestConnectionsLifecycle(t *testing.T) {
	f := newFixture(t, fixtureOpts{token: "admin-token", layerExtra: connSource})
	var acme connView
	b := f.do("POST", connBase, `{"id":"acme","config":{"records":3,"token":"s3cret-acme"},"metadata":{"name":"Acme"},"tags":{"plan":"pro"}}`, 201, &acme)
	if strings.Contains(string(b), "s3cret") {
		t.Fatalf("the create answer holds the sensitive token: %s", b)
	}
	if acme.ID != "acme" || acme.Layer != "cat" || acme.Source != "crm" || acme.State != "active" ||
		acme.Config["records"] != float64(3) || acme.Metadata["name"] != "Acme" || acme.Tags["plan"] != "pro" {
		t.Fatalf("created %+v", acme)
	}
	if _, ok := acme.Config["token"]; ok {
		t.Fatalf("config shows the sensitive field: %v", acme.Config)
	}
	c := f.waitConnIdle("acme", "")
	if len(c.Syncs) != 1 || c.Syncs[0].Name != "items" || c.Syncs[0].LastRun.State != "completed" ||
		c.Syncs[0].LastRun.Trigger != "config" || c.Syncs[0].Records["Item"] != 3 {
		t.Fatalf("after the first run: %+v", c)
	}
	recs := f.connRecords("acme", "")
	if len(recs) != 3 {
		t.Fatalf("records of acme: %v", recs)
	}
	for _, r := range recs {
		if m := r["_metadata"].(map[string]any); m["connection"] != "acme" || m["source"] != "crm" {
			t.Fatalf("record metadata %v", m)
		}
	}

	f.do("POST", connBase, `{"id":"beta","config":{"records":2},"tags":{"plan":"free"},"every":{"items":"2h"}}`, 201, nil)
	f.do("POST", connBase, `{"id":"gamma","config":{"records":1},"tags":{"plan":"pro"},"check":false}`, 201, nil)
	f.waitConnIdle("beta", "")
	f.waitConnIdle("gamma", "")
	// Records are unique per connection: each has its own Items 1….
	for conn, n := range map[string]int{"acme": 3, "beta": 2, "gamma": 1} {
		if got := f.connRecords(conn, "&model=Item"); len(got) != n {
			t.Errorf("records of %s: %d, want %d", conn, len(got), n)
		}
	}
	if got := f.connRecords("beta", "&model=Item&ids=1,2"); len(got) != 2 {
		t.Errorf("beta by ids: %v", got)
	}

	type list struct {
		Connections []connView `json:"connections"`
		Next        *string    `json:"next"`
	}
	var l list
	f.do("GET", connBase, "", 200, &l)
	if len(l.Connections) != 3 || l.Connections[0].ID != "acme" || l.Connections[2].ID != "gamma" || l.Next != nil {
		t.Fatalf("list: %+v", l)
	}
	f.do("GET", connBase+"?tag.plan=pro", "", 200, &l)
	if len(l.Connections) != 2 || l.Connections[0].ID != "acme" || l.Connections[1].ID != "gamma" {
		t.Fatalf("tag.plan=pro: %+v", l)
	}
	f.do("GET", connBase+"?limit=1", "", 200, &l)
	if len(l.Connections) != 1 || l.Next == nil || *l.Next != "acme" {
		t.Fatalf("page 1: %+v", l)
	}
	f.do("GET", connBase+"?limit=2&after=acme", "", 200, &l)
	if len(l.Connections) != 2 || l.Connections[0].ID != "beta" || l.Next != nil {
		t.Fatalf("page 2: %+v next %v", l.Connections, l.Next)
	}
	if b := f.do("GET", connBase, "", 200, nil); strings.Contains(string(b), "s3cret") {
		t.Fatalf("the list holds a sensitive value: %s", b)
	}
	var bc connView
	f.do("GET", connBase+"/beta", "", 200, &bc)
	if bc.Every["items"] != "2h" || bc.Syncs[0].Every != "2h0m0s" || bc.Syncs[0].NextRunAt == nil {
		t.Fatalf("beta's schedule: %+v", bc)
	}

	// Patch: tags and metadata merge, a null removes; the config merge
	// changes it, so a full run follows.
	first := c.Syncs[0].LastRun.Run
	var p connView
	b = f.do("PATCH", connBase+"/acme", `{"config":{"records":4},"metadata":{"tier":2},"tags":{"plan":null,"region":"eu"},"every":{"items":"30m"}}`, 200, &p)
	if strings.Contains(string(b), "s3cret") {
		t.Fatalf("the patch answer holds the token: %s", b)
	}
	if p.Config["records"] != float64(4) || p.Metadata["name"] != "Acme" || p.Metadata["tier"] != float64(2) ||
		p.Tags["region"] != "eu" || len(p.Tags) != 1 || p.Every["items"] != "30m" {
		t.Fatalf("patched %+v", p)
	}
	c = f.waitConnIdle("acme", first)
	if c.Syncs[0].LastRun.Trigger != "config" || c.Syncs[0].Records["Item"] != 4 {
		t.Fatalf("after the config change: %+v", c.Syncs[0])
	}
	// every: null drops the override.
	var dropped connView
	f.do("PATCH", connBase+"/acme", `{"every":{"items":null}}`, 200, &dropped)
	if len(dropped.Every) != 0 || dropped.Tags["region"] != "eu" {
		t.Fatalf("after every null: %+v", dropped)
	}
	// A patch that changes nothing in the config queues nothing.
	before := c.Syncs[0].LastRun.Run
	runs := len(f.runs())
	f.do("PATCH", connBase+"/acme", `{"config":{"records":4}}`, 200, nil)
	if n := len(f.runs()); n != runs {
		t.Fatalf("an unchanged config queued a run: %d runs, were %d", n, runs)
	}

	// Pause and resume one sync.
	var paused map[string]bool
	f.do("POST", connBase+"/acme/syncs/items/pause", "", 200, &paused)
	if !paused["paused"] {
		t.Fatalf("pause: %v", paused)
	}
	f.do("GET", connBase+"/acme", "", 200, &c)
	if c.Syncs[0].State != "paused" || c.Syncs[0].LastRun.Run != before {
		t.Fatalf("after pause: %+v", c.Syncs[0])
	}
	f.do("POST", connBase+"/acme/syncs/items/resume", "", 200, &paused)
	f.do("GET", connBase+"/acme", "", 200, &c)
	if paused["paused"] || c.Syncs[0].State == "paused" {
		t.Fatalf("after resume: %v %+v", paused, c.Syncs[0])
	}

	// A manual run of one connection.
	var run struct{ Run string }
	f.do("POST", connBase+"/acme/syncs", `{"sync":"items","reset":true}`, 202, &run)
	if r := f.waitRun(run.Run); r.State != "completed" {
		t.Fatalf("manual run %+v", r)
	}
	f.do("POST", connBase+"/acme/syncs", "", 202, &run)
	f.waitRun(run.Run)

	// The layer counts its connections by state.
	var layer struct {
		Sources []struct {
			Name        string         `json:"name"`
			Connections map[string]int `json:"connections"`
		} `json:"sources"`
	}
	f.do("GET", "/v1/layers/cat", "", 200, &layer)
	found := false
	for _, s := range layer.Sources {
		if s.Name == "crm" {
			found = s.Connections["active"] == 3
		}
	}
	if !found {
		t.Errorf("layer status: %+v", layer)
	}

	// Delete: its records are soft-deleted in one revision, the others stay.
	var del struct {
		Deleted  string `json:"deleted"`
		Revision int64  `json:"revision"`
	}
	f.do("DELETE", connBase+"/acme", "", 200, &del)
	if del.Deleted != "acme" || del.Revision < 1 {
		t.Fatalf("delete: %+v", del)
	}
	recs = f.connRecords("acme", "")
	if len(recs) != 4 {
		t.Fatalf("acme's records after delete: %v", recs)
	}
	for _, r := range recs {
		m := r["_metadata"].(map[string]any)
		if m["last_action"] != "DELETED" || m["revision"] != float64(del.Revision) {
			t.Fatalf("a record of the deleted connection: %v (want deleted in revision %d)", m, del.Revision)
		}
	}
	if got := f.connRecords("beta", ""); len(got) != 2 || got[0]["_metadata"].(map[string]any)["last_action"] == "DELETED" {
		t.Fatalf("beta's records after acme's delete: %v", got)
	}
	f.fail("GET", connBase+"/acme", "", 404, "not_found")
	f.fail("DELETE", connBase+"/acme", "", 404, "not_found")
	// The id is free again.
	f.do("POST", connBase, `{"id":"acme","config":{"records":1}}`, 201, nil)

	// The configs are sealed with a key file the host made (mode 0600) in
	// the data dir: no file there holds the token in plaintext.
	data := filepath.Join(f.dir, "data")
	if fi, err := os.Stat(filepath.Join(data, "connections.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v %v", fi, err)
	}
	files := 0
	filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte("s3cret-acme")) {
			t.Errorf("%s holds a connection's token in plaintext", path)
		}
		return nil
	})
	if files < 2 {
		t.Errorf("only %d files in the data dir", files)
	}

	// Management paths need the admin token.
	f.token = ""
	f.fail("GET", connBase, "", 401, "unauthorized")
	f.fail("POST", connBase, `{"id":"x"}`, 401, "unauthorized")
}

// TestConnectionsBadInput: every refusal has its status and says why.
func TestConnectionsBadInput(t *testing.T) {
	f := newFixture(t, fixtureOpts{layerExtra: connSource})
	f.do("POST", connBase, `{"id":"acme","check":false}`, 201, nil)

	e := f.fail("POST", connBase, `{"id":"acme"}`, 409, "exists")
	if !strings.Contains(e.Error.Message, "acme") {
		t.Errorf("409 message %q does not name the connection", e.Error.Message)
	}
	for _, id := range []string{"has space", "slash/no", strings.Repeat("a", 129), "ü"} {
		body, _ := json.Marshal(map[string]any{"id": id})
		f.fail("POST", connBase, string(body), 400, "invalid")
	}
	f.fail("POST", connBase, `{}`, 400, "invalid")
	f.do("POST", connBase, fmt.Sprintf(`{"id":%q,"check":false}`, strings.Repeat("a", 128)), 201, nil)
	f.do("POST", connBase, `{"id":"A-z.0_9:x@y","check":false}`, 201, nil)

	// Unknown layer, unknown source, a source without connections.
	f.fail("POST", "/v1/layers/nope/sources/crm/connections", `{"id":"x"}`, 404, "not_found")
	f.fail("POST", "/v1/layers/cat/sources/nope/connections", `{"id":"x"}`, 404, "not_found")
	e = f.fail("POST", "/v1/layers/cat/sources/blog/connections", `{"id":"x"}`, 404, "not_found")
	if !strings.Contains(e.Error.Message, "connections = true") {
		t.Errorf("a source without connections: %q should say how to enable them", e.Error.Message)
	}
	f.fail("GET", "/v1/layers/cat/sources/blog/connections", "", 404, "not_found")

	// The connector's schema: a wrong type, an unknown field, each named.
	e = f.fail("POST", connBase, `{"id":"x","config":{"records":"three"}}`, 400, "invalid")
	if !strings.Contains(e.Error.Message, `"records"`) {
		t.Errorf("schema failure %q does not name the field", e.Error.Message)
	}
	e = f.fail("POST", connBase, `{"id":"x","config":{"recordz":3}}`, 400, "invalid")
	if !strings.Contains(e.Error.Message, `"recordz"`) {
		t.Errorf("unknown field %q is not named", e.Error.Message)
	}
	f.fail("POST", connBase, `{"id":"x","config":[1]}`, 400, "invalid")
	f.fail("POST", connBase, `{"id":"x","metadata":"m"}`, 400, "invalid")
	f.fail("POST", connBase, `{"id":"x","every":{"items":"soon"}}`, 400, "invalid")
	f.fail("POST", connBase, `{"id":"x","every":{"nosync":"1h"}}`, 400, "invalid")

	// Check refuses: 422 with the connector's message, its secret redacted,
	// nothing stored; "check": false skips it.
	e = f.fail("POST", connBase, `{"id":"x","config":{"mode":"check_fail","token":"tok-very-secret"}}`, 422, "check_failed")
	if !strings.Contains(e.Error.Message, "refused the token") || strings.Contains(e.Error.Message, "tok-very-secret") {
		t.Errorf("check failure message %q: want the connector's words without the token", e.Error.Message)
	}
	f.fail("GET", connBase+"/x", "", 404, "not_found")
	f.do("POST", connBase, `{"id":"x","config":{"mode":"check_fail","token":"tok-very-secret"},"check":false}`, 201, nil)

	// Strict JSON.
	f.fail("POST", connBase, `{"id":"y","colour":"red"}`, 400, "bad_json")
	f.fail("POST", connBase, `{"id":"y","tags":["a"]}`, 400, "bad_json")
	f.fail("POST", connBase, `{"id":"y","check":"no"}`, 400, "bad_json")
	f.fail("POST", connBase, `[]`, 400, "bad_json")
	f.fail("POST", connBase, `{"id":"y"} {}`, 400, "bad_json")
	f.fail("PATCH", connBase+"/acme", `{"id":"other"}`, 400, "bad_json")
	f.fail("POST", connBase+"/acme/syncs", `{"model":"Item"}`, 400, "bad_json")
	tags := map[string]string{}
	for i := range 65 {
		tags[fmt.Sprint("k", i)] = "v"
	}
	body, _ := json.Marshal(map[string]any{"id": "y", "tags": tags})
	f.fail("POST", connBase, string(body), 400, "bad_tags")
	f.fail("PATCH", connBase+"/acme", fmt.Sprintf(`{"tags":{"k":%q}}`, strings.Repeat("v", 1025)), 400, "bad_tags")

	// Lists: limits and tag filters.
	for _, q := range []string{"limit=0", "limit=1001", "limit=x"} {
		f.fail("GET", connBase+"?"+q, "", 400, "bad_limit")
	}
	f.fail("GET", connBase+"?tag.=x", "", 400, "bad_tags")
	f.fail("GET", connBase+"?tag.a=1&tag.a=2", "", 400, "bad_tags")
	f.do("GET", connBase+"?limit=1000", "", 200, nil)
	e = f.fail("GET", "/v1/layers/cat/records?model=Item&source=crm&ids=1", "", 400, "bad_ids")
	if !strings.Contains(e.Error.Message, "connection=") {
		t.Errorf("ids on a source with connections: %q", e.Error.Message)
	}
	f.do("GET", "/v1/layers/cat/records?model=Item&source=crm&connection=acme&ids=1", "", 200, nil)

	// Unknown connection, unknown sync, bad patches.
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/nope", ""},
		{"PATCH", "/nope", `{"tags":{"a":"b"}}`},
		{"DELETE", "/nope", ""},
		{"POST", "/nope/syncs", ""},
		{"POST", "/nope/syncs/items/pause", ""},
		{"POST", "/nope/syncs/items/resume", ""},
		{"POST", "/acme/syncs/nosync/pause", ""},
		{"POST", "/acme/syncs", `{"sync":"nosync"}`},
	} {
		f.fail(c.method, connBase+c.path, c.body, 404, "not_found")
	}
	f.fail("PATCH", connBase+"/acme", `{"config":{"records":"many"}}`, 400, "invalid")
	f.fail("PATCH", connBase+"/acme", `{"every":{"items":"0s"}}`, 400, "invalid")
	f.fail("PUT", connBase+"/acme", `{}`, 405, "method_not_allowed")
}

// TestConnectionReadTokens: an api_token limited to connections reads the
// records of those connections only, and never through GraphQL.
func TestConnectionReadTokens(t *testing.T) {
	hash := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	f := newFixture(t, fixtureOpts{token: "admin-token", layerExtra: connSource + fmt.Sprintf(`
  api_token "acme" {
    token_sha256 = %q
    connections  = ["acme"]
  }
  api_token "two" {
    token_sha256 = %q
    connections  = ["acme", "beta"]
  }
  api_token "items" {
    token_sha256 = %q
    models       = ["Item"]
    connections  = ["beta"]
  }`, hash("acme-token"), hash("two-token"), hash("items-token"))})
	f.do("POST", connBase, `{"id":"acme","config":{"records":3}}`, 201, nil)
	f.do("POST", connBase, `{"id":"beta","config":{"records":2}}`, 201, nil)
	f.waitConnIdle("acme", "")
	f.waitConnIdle("beta", "")
	f.token = ""
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	for _, tc := range []struct {
		token, query string
		want         int
		conn         string // the connection of every record answered
		n            int
	}{
		{"acme-token", "", 200, "acme", 3},
		{"acme-token", "?connection=acme", 200, "acme", 3},
		{"acme-token", "?connection=beta", 403, "", 0},
		{"acme-token", "?source=blog", 200, "", 0}, // blog has no connections: nothing
		{"two-token", "", 403, "", 0},
		{"two-token", "?connection=beta", 200, "beta", 2},
		{"two-token", "?connection=acme&model=Item&ids=1,2", 200, "acme", 2},
		{"items-token", "?model=Item", 200, "beta", 2},
		{"items-token", "?model=Item&connection=acme", 403, "", 0},
		{"items-token", "?connection=beta", 403, "", 0},
		{"admin-token", "?connection=beta", 200, "beta", 2},
	} {
		status, _, body := f.request("GET", "/v1/layers/cat/records"+tc.query, nil, bearer(tc.token))
		if status != tc.want {
			t.Errorf("token %s query %q: %d, want %d: %s", tc.token, tc.query, status, tc.want, body)
			continue
		}
		if status != 200 {
			continue
		}
		var page struct {
			Records []map[string]any `json:"records"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Records) != tc.n {
			t.Errorf("token %s query %q: %d records, want %d", tc.token, tc.query, len(page.Records), tc.n)
		}
		for _, r := range page.Records {
			if got := r["_metadata"].(map[string]any)["connection"]; got != tc.conn {
				t.Errorf("token %s query %q: a record of connection %v", tc.token, tc.query, got)
			}
		}
	}
	// GraphQL keeps to the token's connections too.
	status, _, body := f.request("POST", "/v1/layers/cat/graphql", strings.NewReader(`{"query":"{ allItem(limit: 100) { totalCount nodes { id _metadata { connection } } } }"}`),
		http.Header{"Authorization": {"Bearer acme-token"}, "Content-Type": {"application/json"}})
	var gq struct {
		Data struct {
			AllItem struct {
				TotalCount int
				Nodes      []struct {
					Metadata struct{ Connection string } `json:"_metadata"`
				}
			}
		}
		Errors []any
	}
	if status != 200 || json.Unmarshal(body, &gq) != nil || len(gq.Errors) > 0 || gq.Data.AllItem.TotalCount != 3 || len(gq.Data.AllItem.Nodes) != 3 {
		t.Errorf("GraphQL with a connection token: %d %s, want acme's 3 items", status, body)
	}
	for _, n := range gq.Data.AllItem.Nodes {
		if n.Metadata.Connection != "acme" {
			t.Errorf("GraphQL with acme's token answered a record of %q", n.Metadata.Connection)
		}
	}
	// A read token manages nothing.
	if status, _, _ := f.request("GET", connBase, nil, bearer("acme-token")); status != 401 {
		t.Errorf("list connections with a read token: %d, want 401", status)
	}
}

// A payload webhook of a connection goes to its own hook, and its changes
// to that connection's records; the source's own hook refuses it.
func TestConnectionPayloadHook(t *testing.T) {
	f := newFixture(t, fixtureOpts{token: "admin-token", layerExtra: connSource})
	f.do("POST", connBase, `{"id":"acme","config":{"records":0}}`, 201, nil)
	c := f.waitConnIdle("acme", "")
	f.do("PATCH", connBase+"/acme", `{"config":{"records":2}}`, 200, nil)
	f.waitConnIdle("acme", c.Syncs[0].LastRun.Run)
	for path, want := range map[string]int{
		"/hooks/sources/cat/crm":        404, // a source with connections: name one
		"/hooks/sources/cat/crm/nobody": 404,
		"/hooks/sources/cat/crm/acme":   202,
	} {
		if status, _, body := f.request("POST", path, strings.NewReader(`{}`), nil); status != want {
			t.Errorf("POST %s: %d, want %d: %s", path, status, want, body)
		}
	}
	// The webhook's revision (its records are the ones the PATCH's full
	// run wrote: unchanged saves count, not new cursors).
	var revs struct {
		Revisions []struct {
			Trigger string                                 `json:"trigger"`
			Sources []string                               `json:"sources"`
			Counts  map[string]map[string]map[string]int64 `json:"counts"`
		} `json:"revisions"`
	}
	waitUntil(t, "the webhook's revision", func() bool {
		f.do("GET", "/v1/layers/cat/revisions", "", 200, &revs)
		return len(revs.Revisions) > 0 && revs.Revisions[0].Trigger == "webhook"
	})
	if r := revs.Revisions[0]; len(r.Sources) != 1 || r.Sources[0] != "crm" || r.Counts["crm"]["Item"]["unchanged"] != 2 {
		t.Errorf("webhook revision %+v, want crm's 2 Items unchanged", r)
	}
	var page struct {
		Records []map[string]any `json:"records"`
	}
	f.do("GET", "/v1/layers/cat/records?connection=acme", "", 200, &page)
	if len(page.Records) != 2 {
		t.Errorf("acme has %d records, want 2", len(page.Records))
	}
}
