package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// nangoFixture is the fixture's layer "cat" plus a source "crm" with
// connections (files plugin), a notify endpoint of format "nango" and a
// read token.
func nangoFixture(t *testing.T) (*fixture, string) {
	t.Helper()
	// The engine keeps the key that seals connection configs in the
	// service's data_dir, "./data" by default: here, not the package.
	t.Chdir(t.TempDir())
	data := t.TempDir()
	writeFile(t, filepath.Join(data, "crm", "Contact.json"), `[{"id":"c0","name":"Template"}]`)
	writeFile(t, filepath.Join(data, "acme", "Contact.json"),
		`[{"id":"c1","name":"Ann"},{"id":"c2","name":"Bob"},{"id":"c3","name":"Cid"},{"id":"c4","name":"Dee"}]`)
	sum := sha256.Sum256([]byte("read-token"))
	extra := fmt.Sprintf(`
  source "crm" {
    plugin      = "files"
    connections = true
    config { dir = %q }
  }
  notify "app" {
    url    = "http://127.0.0.1:9/nango"
    format = "nango"
    secret = "nango signing key"
  }
  api_token "reader" {
    token_sha256 = %q
  }
`, filepath.Join(data, "crm"), hex.EncodeToString(sum[:]))
	return newFixture(t, fixtureOpts{token: "admin-token", layerExtra: extra}), filepath.Join(data, "acme")
}

// nangoCall sends a request with Nango's headers and returns status and body.
func (f *fixture) nangoCall(method, path, token string, header map[string]string, body string) (int, []byte) {
	f.t.Helper()
	h := http.Header{}
	for k, v := range header {
		h.Set(k, v)
	}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	var rd *bytes.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	} else {
		rd = bytes.NewReader(nil)
	}
	saved := f.token
	f.token = ""
	defer func() { f.token = saved }()
	status, _, b := f.request(method, path, rd, h)
	return status, b
}

// nangoOK sends a call that must answer want, decoding it into out.
func (f *fixture) nangoOK(method, path string, header map[string]string, body string, want int, out any) {
	f.t.Helper()
	status, b := f.nangoCall(method, path, "admin-token", header, body)
	if status != want {
		f.t.Fatalf("%s %s: %d, want %d: %s", method, path, status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			f.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// nangoFail sends a call that must fail with status and Nango error code.
func (f *fixture) nangoFail(method, path, token string, header map[string]string, body string, status int, code string) {
	f.t.Helper()
	got, b := f.nangoCall(method, path, token, header, body)
	var e apiError
	_ = json.Unmarshal(b, &e)
	if got != status || e.Error.Code != code || e.Error.Message == "" {
		f.t.Errorf("%s %s: %d %s, want %d with code %q", method, path, got, b, status, code)
	}
}

type nangoPage struct {
	Records    []map[string]json.RawMessage `json:"records"`
	NextCursor *string                      `json:"next_cursor"`
}

type nangoStatus struct {
	Syncs []struct {
		ConnectionID          string           `json:"connection_id"`
		Name                  string           `json:"name"`
		Status                string           `json:"status"`
		Type                  string           `json:"type"`
		LatestExecutionStatus *string          `json:"latestExecutionStatus"`
		FinishedAt            *string          `json:"finishedAt"`
		RecordCount           map[string]int64 `json:"recordCount"`
		LatestResult          map[string]struct {
			Added int64 `json:"added"`
		} `json:"latestResult"`
	} `json:"syncs"`
}

func TestNangoAPI(t *testing.T) {
	f, acmeDir := nangoFixture(t)
	crm := map[string]string{"Provider-Config-Key": "crm", "Connection-Id": "acme", "Nango-Is-Sync": "false", "Nango-Is-Script": "false", "Nango-Is-Dry-Run": "false"}

	// Nango's import: connection_config and credentials become the config.
	var created map[string]json.RawMessage
	f.nangoOK("POST", "/connections", nil, fmt.Sprintf(`{"provider_config_key":"crm","connection_id":"acme","credentials":{"type":"NONE"},
		"connection_config":{"dir":%q},"metadata":{"plan":"pro"},"tags":{"region":"eu"}}`, acmeDir), 201, &created)
	if string(created["connection_id"]) != `"acme"` || string(created["provider_config_key"]) != `"crm"` || string(created["provider"]) != `"files"` ||
		string(created["metadata"]) != `{"plan":"pro"}` || created["created_at"] == nil || created["credentials"] != nil {
		t.Errorf("created connection: %v", created)
	}
	f.nangoFail("POST", "/connections", "", nil, `{"provider_config_key":"crm","connection_id":"acme"}`, 401, "unauthorized")
	f.nangoFail("POST", "/connections", "admin-token", nil, fmt.Sprintf(`{"provider_config_key":"crm","connection_id":"acme","connection_config":{"dir":%q}}`, acmeDir), 409, "conflict")
	f.nangoFail("POST", "/connections", "admin-token", nil, `{"provider_config_key":"crm","connection_id":"x","credentials":{"type":"API_KEY","apiKey":"k"}}`, 400, "invalid_body")
	f.nangoFail("POST", "/connections", "admin-token", nil, `{"provider_config_key":"crm","connection_id":"y","connection_config":{"dir":"/does/not/exist"}}`, 422, "connection_test_failed")
	f.nangoFail("POST", "/connections", "admin-token", nil, `{"provider_config_key":"blog","connection_id":"y"}`, 400, "invalid_body")
	f.nangoFail("POST", "/connections", "admin-token", nil, `{"provider_config_key":"nope","connection_id":"y"}`, 404, "unknown_provider_config")

	// The first run of the connection completes: sync status says so.
	statusPath := "/sync/status?syncs=*&provider_config_key=crm&connection_id=acme"
	var st nangoStatus
	waitUntil(t, "the connection's first run", func() bool {
		f.nangoOK("GET", statusPath, nil, "", 200, &st)
		return len(st.Syncs) == 1 && st.Syncs[0].Status == "SUCCESS"
	})
	if s := st.Syncs[0]; s.ConnectionID != "acme" || s.Name != "files" || s.RecordCount["Contact"] != 4 || s.FinishedAt == nil ||
		s.LatestExecutionStatus == nil || *s.LatestExecutionStatus != "SUCCESS" || s.LatestResult["Contact"].Added != 4 {
		t.Errorf("sync status: %+v", s)
	}

	// Records: _nango_metadata, a cursor walk with limit, ids, filter,
	// inclusive modified_after.
	var all nangoPage
	f.nangoOK("GET", "/records/?model=Contact", crm, "", 200, &all)
	if len(all.Records) != 4 || all.NextCursor != nil {
		t.Fatalf("records: %d, next %v", len(all.Records), all.NextCursor)
	}
	var meta struct {
		FirstSeenAt    string  `json:"first_seen_at"`
		LastModifiedAt string  `json:"last_modified_at"`
		LastAction     string  `json:"last_action"`
		DeletedAt      *string `json:"deleted_at"`
		Cursor         string  `json:"cursor"`
		PrunedAt       *string `json:"pruned_at"`
	}
	if all.Records[0]["_metadata"] != nil {
		t.Errorf("a Nango record has _metadata: %s", all.Records[0]["_metadata"])
	}
	if err := json.Unmarshal(all.Records[0]["_nango_metadata"], &meta); err != nil || meta.LastAction != "ADDED" || meta.Cursor == "" ||
		meta.FirstSeenAt == "" || meta.LastModifiedAt == "" || meta.DeletedAt != nil || meta.PrunedAt != nil {
		t.Errorf("_nango_metadata %s: %+v", all.Records[0]["_nango_metadata"], meta)
	}
	var ids []string
	cursor := ""
	for pages := 0; ; pages++ {
		var p nangoPage
		f.nangoOK("GET", "/records?model=Contact&limit=3&cursor="+url.QueryEscape(cursor), crm, "", 200, &p)
		for _, r := range p.Records {
			ids = append(ids, strings.Trim(string(r["id"]), `"`))
		}
		if p.NextCursor == nil {
			if pages != 1 {
				t.Errorf("4 records in pages of 3 took %d pages", pages+1)
			}
			break
		}
		cursor = *p.NextCursor
	}
	if strings.Join(ids, ",") != "c1,c2,c3,c4" {
		t.Errorf("cursor walk: %v", ids)
	}
	var byID nangoPage
	f.nangoOK("GET", "/records/?model=Contact&ids=c4&ids=c2", crm, "", 200, &byID)
	if len(byID.Records) != 2 {
		t.Errorf("ids=c4&ids=c2: %d records", len(byID.Records))
	}
	var filtered nangoPage
	f.nangoOK("GET", "/records/?model=Contact&filter=updated,deleted", crm, "", 200, &filtered)
	if len(filtered.Records) != 0 {
		t.Errorf("filter=updated,deleted: %d records", len(filtered.Records))
	}
	var since nangoPage
	f.nangoOK("GET", "/records/?model=Contact&modified_after="+url.QueryEscape(meta.LastModifiedAt), crm, "", 200, &since)
	if len(since.Records) != 4 {
		t.Errorf("modified_after = the records' last_modified_at (inclusive): %d records", len(since.Records))
	}
	// A record's cursor resumes after it.
	var after nangoPage
	f.nangoOK("GET", "/records/?model=Contact&cursor="+meta.Cursor, crm, "", 200, &after)
	if len(after.Records) != 3 {
		t.Errorf("cursor = the first record's: %d records", len(after.Records))
	}

	// A source without connections answers to "default", by either key.
	var posts nangoPage
	f.nangoOK("GET", "/records/?model=Post", map[string]string{"Provider-Config-Key": "cat.blog", "Connection-Id": "default"}, "", 200, &posts)
	if len(posts.Records) != 3 {
		t.Errorf("blog posts: %d", len(posts.Records))
	}
	// The read token reads; it changes nothing.
	if status, b := f.nangoCall("GET", "/records/?model=Contact", "read-token", crm, ""); status != 200 {
		t.Errorf("records with the read token: %d %s", status, b)
	}
	errs := []struct {
		header     map[string]string
		query      string
		token      string
		status     int
		code, note string
	}{
		{map[string]string{"Provider-Config-Key": "crm", "Connection-Id": "nobody"}, "model=Contact", "admin-token", 404, "unknown_connection", ""},
		{map[string]string{"Provider-Config-Key": "blog", "Connection-Id": "acme"}, "model=Post", "admin-token", 404, "unknown_connection", ""},
		{map[string]string{"Provider-Config-Key": "crm"}, "model=Contact", "admin-token", 400, "invalid_headers", ""},
		{map[string]string{"Connection-Id": "acme"}, "model=Contact", "admin-token", 400, "invalid_headers", ""},
		{map[string]string{"Provider-Config-Key": "nope", "Connection-Id": "acme"}, "model=Contact", "admin-token", 404, "unknown_provider_config", ""},
		{map[string]string{"Provider-Config-Key": "other.crm", "Connection-Id": "acme"}, "model=Contact", "admin-token", 404, "unknown_provider_config", ""},
		{crm, "", "admin-token", 400, "invalid_query_params", ""},
		{crm, "model=Contact&limit=0", "admin-token", 400, "invalid_query_params", ""},
		{crm, "model=Contact&cursor=bogus", "admin-token", 400, "invalid_query_params", ""},
		{crm, "model=Contact&modified_after=yesterday", "admin-token", 400, "invalid_query_params", ""},
		{crm, "model=Contact&filter=changed", "admin-token", 400, "invalid_query_params", ""},
		{crm, "model=Contact&variant=v2", "admin-token", 400, "invalid_query_params", ""},
		{crm, "model=Contact", "", 401, "unauthorized", ""},
		{crm, "model=Contact", "wrong", 401, "unauthorized", ""},
		{map[string]string{"Provider-Config-Key": "nope", "Connection-Id": "acme"}, "model=Contact", "wrong", 401, "unauthorized", "a stranger learns nothing of what exists"},
	}
	for _, e := range errs {
		f.nangoFail("GET", "/records/?"+e.query, e.token, e.header, "", e.status, e.code)
	}

	// Connections: list, filters, one, alias; never credentials.
	type list struct {
		Connections []map[string]json.RawMessage `json:"connections"`
	}
	var ls list
	f.nangoOK("GET", "/connections", nil, "", 200, &ls)
	var names []string
	for _, c := range ls.Connections {
		names = append(names, strings.Trim(string(c["provider_config_key"]), `"`)+"/"+strings.Trim(string(c["connection_id"]), `"`))
		if c["credentials"] != nil || c["created"] == nil {
			t.Errorf("listed connection %v", c)
		}
	}
	if strings.Join(names, " ") != "crm/acme blog/default shop/default" {
		t.Errorf("GET /connections: %v", names)
	}
	f.nangoOK("GET", "/connections?integrationId=crm&tags[region]=eu&limit=10&page=0", nil, "", 200, &ls)
	if len(ls.Connections) != 1 {
		t.Errorf("integrationId=crm, tags[region]=eu: %d connections", len(ls.Connections))
	}
	f.nangoOK("GET", "/connections?tags[region]=us", nil, "", 200, &ls)
	if len(ls.Connections) != 0 {
		t.Errorf("tags[region]=us: %d connections", len(ls.Connections))
	}
	if status, b := f.nangoCall("GET", "/connections", "wrong", nil, ""); status != 401 {
		t.Errorf("GET /connections with a wrong token: %d %s", status, b)
	}
	if status, b := f.nangoCall("GET", "/connections", "read-token", nil, ""); status != 200 || !strings.Contains(string(b), `"acme"`) {
		t.Errorf("GET /connections with the read token: %d %s", status, b)
	}
	f.nangoOK("GET", "/connections?connectionId=acme", nil, "", 200, &ls)
	if len(ls.Connections) != 1 {
		t.Errorf("connectionId=acme: %d connections", len(ls.Connections))
	}
	for _, p := range []string{"/connections/acme", "/connection/acme"} {
		var one map[string]json.RawMessage
		f.nangoOK("GET", p+"?provider_config_key=crm&force_refresh=false&refresh_token=false&refresh_github_app_jwt_token=false", nil, "", 200, &one)
		if string(one["connection_id"]) != `"acme"` || one["credentials"] != nil || one["updated_at"] == nil || string(one["tags"]) != `{"region":"eu"}` ||
			!strings.Contains(string(one["connection_config"]), `"dir":`) {
			t.Errorf("GET %s: %v", p, one)
		}
	}
	f.nangoFail("GET", "/connections/nobody?provider_config_key=crm", "admin-token", nil, "", 404, "unknown_connection")
	f.nangoFail("GET", "/connections/acme", "admin-token", nil, "", 400, "missing_provider_config_key")

	// Metadata: POST replaces, PATCH merges.
	getMeta := func() string {
		var one map[string]json.RawMessage
		f.nangoOK("GET", "/connections/acme?provider_config_key=crm", nil, "", 200, &one)
		return string(one["metadata"])
	}
	f.nangoOK("POST", "/connections/metadata", nil, `{"connection_id":"acme","provider_config_key":"crm","metadata":{"a":1}}`, 200, nil)
	if m := getMeta(); m != `{"a":1}` {
		t.Errorf("after setMetadata: %s", m)
	}
	f.nangoOK("PATCH", "/connections/metadata", nil, `{"connection_id":["acme"],"provider_config_key":"crm","metadata":{"b":2}}`, 200, nil)
	if m := getMeta(); m != `{"a":1,"b":2}` {
		t.Errorf("after updateMetadata: %s", m)
	}
	f.nangoFail("POST", "/connections/metadata", "admin-token", nil, `{"connection_id":"nobody","provider_config_key":"crm","metadata":{}}`, 404, "unknown_connection")
	f.nangoFail("POST", "/connections/metadata", "admin-token", nil, `{"connection_id":"acme","provider_config_key":"crm","metadata":[1]}`, 400, "invalid_body")
	f.nangoFail("POST", "/connections/metadata", "read-token", nil, `{"connection_id":"acme","provider_config_key":"crm","metadata":{}}`, 403, "forbidden")
	f.nangoOK("PATCH", "/connections/acme?provider_config_key=crm", nil, `{"tags":{"tier":"gold"}}`, 200, nil)
	f.nangoOK("GET", "/connections?tags[tier]=gold", nil, "", 200, &ls)
	if len(ls.Connections) != 1 || string(ls.Connections[0]["tags"]) != `{"tier":"gold"}` {
		t.Errorf("after PATCH tags: %v", ls.Connections)
	}

	// Pause, start, trigger.
	body := `{"syncs":["files"],"provider_config_key":"crm","connection_id":"acme"}`
	f.nangoOK("POST", "/sync/pause", nil, body, 200, nil)
	f.nangoOK("GET", statusPath, nil, "", 200, &st)
	if st.Syncs[0].Status != "PAUSED" {
		t.Errorf("after pause: %s", st.Syncs[0].Status)
	}
	f.nangoOK("POST", "/sync/start", nil, body, 200, nil)
	f.nangoOK("GET", statusPath, nil, "", 200, &st)
	if st.Syncs[0].Status == "PAUSED" {
		t.Errorf("after start: still paused")
	}
	f.nangoFail("POST", "/sync/trigger", "read-token", nil, body, 403, "forbidden")
	f.nangoFail("POST", "/sync/trigger", "admin-token", nil, `{"syncs":["nope"],"provider_config_key":"crm"}`, 404, "no_syncs_found")
	f.nangoFail("POST", "/sync/trigger", "admin-token", nil, `{"syncs":[]}`, 400, "missing_provider_config_key")
	f.nangoFail("POST", "/sync/trigger", "admin-token", nil, `{"syncs":[{"name":"files","variant":"v2"}],"provider_config_key":"crm"}`, 400, "invalid_body")
	writeFile(t, filepath.Join(acmeDir, "Contact.json"), `[{"id":"c1","name":"Ann"},{"id":"c2","name":"Bob, edited"},{"id":"c3","name":"Cid"}]`)
	before := len(f.runs())
	f.nangoOK("POST", "/sync/trigger", map[string]string{"Provider-Config-Key": "crm"}, `{"syncs":[{"name":"files","variant":"base"}],"connection_id":"acme","opts":{"reset":false}}`, 200, nil)
	waitUntil(t, "the triggered run", func() bool {
		rs := f.runs()
		return len(rs) > before && rs[len(rs)-1].FinishedAt != nil
	})
	var changed nangoPage
	f.nangoOK("GET", "/records/?model=Contact&filter=updated,deleted", crm, "", 200, &changed)
	if len(changed.Records) != 2 {
		t.Errorf("after the second run, updated and deleted: %d records", len(changed.Records))
	}

	// The default connection of a source without connections.
	var blog nangoStatus
	f.nangoOK("GET", "/sync/status?syncs=files&provider_config_key=blog&connection_id=default", nil, "", 200, &blog)
	if len(blog.Syncs) != 1 || blog.Syncs[0].Status != "SUCCESS" || blog.Syncs[0].RecordCount["Post"] != 3 || blog.Syncs[0].ConnectionID != "default" {
		t.Errorf("blog sync status: %+v", blog)
	}
	f.nangoFail("DELETE", "/connections/default?provider_config_key=blog", "admin-token", nil, "", 400, "invalid_uri_params")
	var def map[string]json.RawMessage
	f.nangoOK("GET", "/connections/default?provider_config_key=cat.blog", nil, "", 200, &def)
	if string(def["connection_id"]) != `"default"` || string(def["connection_config"]) != `{}` || string(def["metadata"]) != `{}` || string(def["provider_config_key"]) != `"blog"` {
		t.Errorf("the default connection of blog: %v", def)
	}

	// Nango's sync webhooks wait in the outbox: one per model, keys sorted.
	ds, err := f.db().Deliveries("", 1000, false)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []map[string]any
	for _, d := range ds {
		if d.Endpoint != "app" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(d.Body, &m); err != nil {
			t.Fatalf("delivery body %s: %v", d.Body, err)
		}
		sorted, _ := json.Marshal(m)
		if !bytes.Equal(sorted, d.Body) {
			t.Errorf("delivery body keys not sorted, or not compact:\n%s\n%s", d.Body, sorted)
		}
		bodies = append(bodies, m)
	}
	var acme []string
	for _, b := range bodies {
		if b["from"] != "nango" || b["type"] != "sync" || b["success"] != true || b["syncName"] != "files" || b["syncVariant"] != "base" {
			t.Errorf("webhook body %v", b)
		}
		if b["connectionId"] == "acme" {
			rr, _ := json.Marshal(b["responseResults"])
			acme = append(acme, fmt.Sprintf("%s %s %s %s", b["providerConfigKey"], b["model"], b["syncType"], rr))
		}
	}
	want := []string{
		`crm Contact INITIAL {"added":4,"deleted":0,"updated":0}`,
		`crm Contact INCREMENTAL {"added":0,"deleted":1,"updated":1}`,
	}
	if !slices.Equal(acme, want) {
		t.Errorf("webhooks of acme:\n%s\nwant\n%s", strings.Join(acme, "\n"), strings.Join(want, "\n"))
	}

	// Delete: the connection goes, its records with it.
	f.nangoOK("DELETE", "/connections/acme?provider_config_key=crm", map[string]string{"Content-Type": "application/json"}, "", 200, nil)
	f.nangoFail("GET", "/connections/acme?provider_config_key=crm", "admin-token", nil, "", 404, "unknown_connection")
	f.nangoFail("DELETE", "/connections/acme?provider_config_key=crm", "admin-token", nil, "", 404, "unknown_connection")
	f.nangoFail("GET", "/records/?model=Contact", "admin-token", crm, "", 404, "unknown_connection")
}
