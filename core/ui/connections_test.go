package ui_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/store"
)

// connToken is the sensitive config field of the test connector's
// connections: no page may ever show it.
const connToken = "tok-7f3a9c-very-secret-credential"

// waitConnRun waits until the connection's last run of items has ended
// and returns its state.
func (f *fixture) waitConnRun(layer, source, id string) string {
	f.t.Helper()
	var state string
	waitUntil(f.t, "the run of connection "+id, func() bool {
		c, err := f.eng.GetConnection(layer, source, id)
		if err != nil || len(c.Syncs) == 0 || c.Syncs[0].LastRun == nil || c.Syncs[0].State != engine.SyncIdle {
			return false
		}
		state = c.Syncs[0].LastRun.State
		return state == store.RunCompleted || state == store.RunFailed
	})
	return state
}

// TestConnections drives the connection pages over HTTP: create (check
// refusal, config errors, success), the list with its tag filter and
// pages, a connection's page, Sync now, pause and resume, delete after
// the confirmation, the records filter, the audit log, and that the
// connection's token appears on no page.
func TestConnections(t *testing.T) {
	f := newFixture(t, fixtureOpts{token: testToken})
	c := f.client()
	tok := c.signIn(testToken)
	var pages []answer // every page seen, checked for the token at the end
	get := func(path string) answer {
		t.Helper()
		a := c.get(path)
		pages = append(pages, a)
		return a
	}
	post := func(path string, form url.Values) answer {
		t.Helper()
		form.Set("csrf", tok)
		a := c.post(path, form)
		pages = append(pages, a)
		return a
	}
	const list = "/ui/layers/crm/connections/accounts"

	// The layer's navigation and page show the source with connections.
	a := get("/ui/layers/crm")
	if a.status != 200 || !strings.Contains(a.body, `href="/ui/layers/crm/connections"`) || !strings.Contains(a.body, `href="/ui/layers/crm/connections/accounts"`) {
		t.Fatalf("layer page: %d\n%s", a.status, a.body)
	}
	if a := get("/ui/layers/shop"); strings.Contains(a.body, `/connections"`) {
		t.Error("a layer without connections shows the Connections tab")
	}
	if a := get("/ui/layers/crm/connections"); a.status != 200 || !strings.Contains(a.body, `data-connsource="accounts"`) {
		t.Fatalf("connections index: %d", a.status)
	}
	if a := get(list); a.status != 200 || !strings.Contains(a.body, "No connections yet") || !strings.Contains(a.body, "Create connection") {
		t.Fatalf("empty list: %d\n%s", a.status, a.body)
	}
	if a := get("/ui/layers/shop/connections/catalog"); a.status != 404 || !strings.Contains(a.body, "has no connections") {
		t.Errorf("a source without connections: %d", a.status)
	}

	// The connector's check refuses: 422 with its message, the token
	// redacted, nothing stored, the form filled again without the values.
	a = post(list, url.Values{"id": {"acme"}, "config_key": {"mode", "token", ""}, "config_value": {"check_fail", connToken, ""},
		"metadata": {`{"customer":"Acme Inc."}`}, "tags": {"plan=pro"}})
	if a.status != http.StatusUnprocessableEntity || !strings.Contains(a.body, "check refused the connection") || !strings.Contains(a.body, "upstream refused the token") {
		t.Fatalf("check refused: %d\n%s", a.status, a.body)
	}
	for _, want := range []string{`value="acme"`, `value="mode"`, `value="token"`, "Acme Inc.", "plan=pro", "enter them again"} {
		if !strings.Contains(a.body, want) {
			t.Errorf("the refused form lacks %q", want)
		}
	}
	if conns, _, _ := f.eng.ListConnections("crm", "accounts", engine.ListOptions{}); len(conns) != 0 {
		t.Fatalf("a refused connection was stored: %+v", conns)
	}
	// Config errors: an unknown field, a bad JSON, a value with no field,
	// a bad id, bad metadata and tags.
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"id": {"acme"}, "config_key": {"nope"}, "config_value": {"1"}}, `Config field &#34;nope&#34; is unknown to the connector`},
		{url.Values{"id": {"acme"}, "config_json": {`[1]`}}, "must be a JSON object"},
		{url.Values{"id": {"acme"}, "config_key": {""}, "config_value": {"x"}}, "has a value but no field name"},
		{url.Values{"id": {"no spaces"}}, "A connection id is 1 to 128 characters"},
		{url.Values{"id": {"acme"}, "metadata": {"{nope"}}, "Metadata must be a JSON object"},
		{url.Values{"id": {"acme"}, "metadata": {`[1]`}}, "Metadata must be a JSON object"},
		{url.Values{"id": {"acme"}, "tags": {"plan"}}, "write each tag as key=value"},
		{url.Values{"id": {"acme"}, "config_key": {"mode"}, "config_value": {"null"}}, `Config field &#34;mode&#34; is required`},
	} {
		a := post(list, tc.form)
		if a.status != http.StatusBadRequest || !strings.Contains(a.body, tc.want) {
			t.Errorf("create with %v: %d, want 400 with %q\n%.3000s", tc.form, a.status, tc.want, a.body)
		}
	}

	// Created: the page opens, the first run is queued and completes.
	a = post(list, url.Values{"id": {"acme"}, "config_key": {"token", "records"}, "config_value": {connToken, "3"},
		"metadata": {`{"customer":"Acme Inc."}`}, "tags": {"plan=pro, region=eu"}})
	if a.status != http.StatusSeeOther || a.header.Get("Location") != list+"/acme?ok=conn-created" {
		t.Fatalf("create: %d %q\n%s", a.status, a.header.Get("Location"), a.body)
	}
	if state := f.waitConnRun("crm", "accounts", "acme"); state != store.RunCompleted {
		t.Fatalf("first run: %s", state)
	}
	// The same id again: 409.
	if a := post(list, url.Values{"id": {"acme"}}); a.status != http.StatusConflict || !strings.Contains(a.body, "choose another id") {
		t.Errorf("create again: %d", a.status)
	}
	// The check skipped: a connection whose config the check would refuse.
	if a := post(list, url.Values{"id": {"beta"}, "config_json": {`{"mode":"check_fail","token":"` + connToken + `"}`}, "skip_check": {"1"}, "tags": {"plan=free"}}); a.status != http.StatusSeeOther {
		t.Fatalf("create without the check: %d\n%s", a.status, a.body)
	}
	// Its runs fail (check_fail is no sync mode); an authentication
	// failure makes a connection need attention.
	if a := post(list, url.Values{"id": {"gamma"}, "config_key": {"mode", "token"}, "config_value": {"unauthorized", connToken}}); a.status != http.StatusSeeOther {
		t.Fatalf("create gamma: %d\n%s", a.status, a.body)
	}
	f.waitConnRun("crm", "accounts", "beta")
	f.waitConnRun("crm", "accounts", "gamma")
	waitUntil(t, "gamma to need attention", func() bool {
		c, err := f.eng.GetConnection("crm", "accounts", "gamma")
		return err == nil && c.State == engine.ConnectionNeedsAttention
	})

	// The list: states, tags, the filter, pages of one.
	a = get(list)
	for _, want := range []string{`data-connection="acme"`, `data-connection="beta"`, `data-connection="gamma"`, "needs attention", "401 Unauthorized", "plan=pro", "3 connection(s): 2 active, 1 needing attention"} {
		if !strings.Contains(a.body, want) {
			t.Errorf("list lacks %q", want)
		}
	}
	a = get(list + "?tags=" + url.QueryEscape("plan=pro"))
	if !strings.Contains(a.body, `data-connection="acme"`) || strings.Contains(a.body, `data-connection="beta"`) || strings.Contains(a.body, `data-connection="gamma"`) {
		t.Errorf("tag filter plan=pro:\n%s", a.body)
	}
	if a := get(list + "?tags=plan"); a.status != 400 {
		t.Errorf("a bad tag filter: %d", a.status)
	}
	// The engine's pages, as the list walks them.
	var seen []string
	for after := ""; ; {
		conns, n, err := f.eng.ListConnections("crm", "accounts", engine.ListOptions{Limit: 1, After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range conns {
			seen = append(seen, c.ID)
		}
		if n == "" {
			break
		}
		after = n
	}
	if strings.Join(seen, " ") != "acme beta gamma" {
		t.Errorf("engine pages: %v", seen)
	}
	// The page's own links: 10 per page is the smallest choice, so create
	// enough connections to need a second page.
	for i := range 9 {
		if _, err := f.eng.CreateConnection(t.Context(), "crm", "accounts", engine.ConnectionInput{ID: fmt.Sprintf("z%02d", i), NoCheck: true,
			Tags: map[string]string{"bulk": "yes"}}); err != nil {
			t.Fatal(err)
		}
	}
	first := get(list + "?limit=10")
	nextLink := regexpFind(t, first.body, `href="(\?[^"]*after=[^"]+)" rel="next"`)
	second := get(list + strings.ReplaceAll(nextLink, "&amp;", "&"))
	if second.status != 200 || !strings.Contains(second.body, `data-connection="z08"`) || strings.Contains(second.body, `data-connection="acme"`) ||
		strings.Contains(second.body, `rel="next"`) || !strings.Contains(second.body, "First page") {
		t.Errorf("second page: %d\n%s", second.status, second.body)
	}
	if n := strings.Count(first.body, `class="connection"`); n != 10 {
		t.Errorf("first page has %d connections", n)
	}

	// A connection's page: its own non-sensitive config, metadata, tags,
	// each sync with schedule, next and last run and records.
	page := get(list + "/acme")
	for _, want := range []string{"records", "3", "Acme Inc.", "plan=pro", "region=eu", "every 1h", `/ui/layers/crm/runs/run_`, "Item 3", "completed",
		`aria-label="Sync connection acme now"`, `aria-label="Pause the schedule of items"`, "Delete…"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("connection page lacks %q", want)
		}
	}
	if strings.Contains(page.body, `>token<`) {
		t.Error("the connection page names the sensitive field")
	}
	if a := get(list + "/nope"); a.status != 404 {
		t.Errorf("an unknown connection: %d", a.status)
	}
	if a := get(list + "/gamma"); !strings.Contains(a.body, "Needs attention: ") || !strings.Contains(a.body, "401 Unauthorized") {
		t.Errorf("gamma's page lacks its error:\n%s", a.body)
	}

	// Sync now: one run of acme.
	runs := len(f.runsOf("crm", ""))
	a = post("/ui/layers/crm/sync", url.Values{"source": {"accounts"}, "connection": {"acme"}, "back": {list + "/acme"}})
	if a.status != http.StatusSeeOther || !strings.HasPrefix(a.header.Get("Location"), list+"/acme?run=run_") {
		t.Fatalf("sync now: %d %q", a.status, a.header.Get("Location"))
	}
	if got := len(f.runsOf("crm", "")); got != runs+1 {
		t.Errorf("sync now started %d runs", got-runs)
	}
	run := strings.TrimPrefix(a.header.Get("Location"), list+"/acme?run=")
	if r := f.runsOf("crm", "")[0]; r.ID != run || len(r.Syncs) != 1 || r.Syncs[0].Connection != "acme" {
		t.Errorf("the run: %+v", r)
	}
	if a := get(list + "/acme?run=" + run); !strings.Contains(a.body, `data-run="`+run+`"`) {
		t.Error("the page does not show the run Sync now started")
	}
	f.waitConnRun("crm", "accounts", "acme")
	// From the page's script: JSON, and 404 for a connection that is not.
	js := c.do("POST", "/ui/layers/crm/sync", url.Values{"source": {"accounts"}, "connection": {"nope"}}, http.Header{"Accept": {"application/json"}, "X-Csrf-Token": {tok}})
	if js.status != 404 || !strings.Contains(js.body, "unknown connection") {
		t.Errorf("sync now of an unknown connection: %d %s", js.status, js.body)
	}

	// Pause and resume one sync.
	if a := post(list+"/acme/pause", url.Values{"sync": {"items"}}); a.status != http.StatusSeeOther || a.header.Get("Location") != list+"/acme?ok=paused" {
		t.Fatalf("pause: %d %q %s", a.status, a.header.Get("Location"), a.body)
	}
	if c, _ := f.eng.GetConnection("crm", "accounts", "acme"); c.Syncs[0].State != engine.SyncPaused {
		t.Fatalf("after pause: %s", c.Syncs[0].State)
	}
	if a := get(list + "/acme?ok=paused"); !strings.Contains(a.body, `aria-label="Resume the schedule of items"`) || !strings.Contains(a.body, "is paused") {
		t.Error("the page does not show the pause")
	}
	if a := post(list+"/acme/resume", url.Values{"sync": {"items"}}); a.status != http.StatusSeeOther {
		t.Fatalf("resume: %d", a.status)
	}
	if c, _ := f.eng.GetConnection("crm", "accounts", "acme"); c.Syncs[0].State == engine.SyncPaused {
		t.Fatal("still paused after resume")
	}
	if a := post(list+"/acme/pause", url.Values{"sync": {"nope"}}); a.status != 404 {
		t.Errorf("pause an unknown sync: %d", a.status)
	}

	// Ids with the other characters a connection id may hold.
	odd := "user@acme.io:1_x-y"
	if _, err := f.eng.CreateConnection(t.Context(), "crm", "accounts", engine.ConnectionInput{ID: odd, NoCheck: true}); err != nil {
		t.Fatal(err)
	}
	if a := get(list + "/" + odd); a.status != 200 || !strings.Contains(a.body, `action="`+list+"/"+odd+`/pause"`) {
		t.Errorf("the page of %s: %d", odd, a.status)
	}
	if a := post(list+"/"+odd+"/pause", url.Values{"sync": {"items"}}); a.status != http.StatusSeeOther || a.header.Get("Location") != list+"/"+odd+"?ok=paused" {
		t.Errorf("pause %s: %d %q", odd, a.status, a.header.Get("Location"))
	}

	// The records browser filters by connection.
	a = get("/ui/layers/crm/records?connection=acme&limit=10")
	if a.status != 200 || strings.Count(a.body, `class="record"`) != 3 || !strings.Contains(a.body, "accounts · acme") {
		t.Errorf("records of acme: %d\n%s", a.status, a.body)
	}
	if a := get("/ui/layers/crm/records?connection=nobody"); !strings.Contains(a.body, "No records match") {
		t.Error("records of an unknown connection")
	}

	// Delete: a confirmation page names it; a wrong id deletes nothing.
	conf := get(list + "/acme/delete")
	if conf.status != 200 || !strings.Contains(conf.body, "Delete connection acme") || !strings.Contains(conf.body, "its 3 record(s)") {
		t.Fatalf("confirmation: %d\n%s", conf.status, conf.body)
	}
	if a := post(list+"/acme/delete", url.Values{"confirm": {"beta"}}); a.status != http.StatusBadRequest || !strings.Contains(a.body, "nothing was deleted") {
		t.Fatalf("delete with a wrong confirmation: %d", a.status)
	}
	if _, err := f.eng.GetConnection("crm", "accounts", "acme"); err != nil {
		t.Fatalf("deleted without confirmation: %v", err)
	}
	if a := post(list+"/acme/delete", url.Values{"confirm": {"acme"}}); a.status != http.StatusSeeOther || a.header.Get("Location") != list+"?ok=conn-deleted" {
		t.Fatalf("delete: %d %q", a.status, a.header.Get("Location"))
	}
	if _, err := f.eng.GetConnection("crm", "accounts", "acme"); err == nil {
		t.Fatal("acme is still there")
	}
	if a := get("/ui/layers/crm/records?connection=acme&action=added&action=updated"); !strings.Contains(a.body, "No records match") {
		t.Error("acme's records are still live")
	}

	// Audited as the API's actions are.
	audit, err := f.eng.Audit("crm", 100)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range audit {
		if e.Details["connection"] == "acme" {
			actions = append(actions, e.Action)
		}
	}
	if got, want := strings.Join(actions, " "), "connection.created sync.triggered sync.paused sync.resumed connection.deleted"; got != want {
		t.Errorf("audit of acme: %s\nwant: %s", got, want)
	}

	// CSRF on every connection form.
	for _, path := range []string{list, list + "/beta/pause", list + "/beta/resume", list + "/beta/delete"} {
		if a := c.post(path, url.Values{"id": {"evil"}, "confirm": {"beta"}, "sync": {"items"}}); a.status != http.StatusForbidden {
			t.Errorf("POST %s without CSRF: %d", path, a.status)
		}
	}
	if _, err := f.eng.GetConnection("crm", "accounts", "beta"); err != nil {
		t.Errorf("a refused delete deleted: %v", err)
	}

	// The activity names the connection of an event.
	if a := get("/ui/layers/crm/activity"); !strings.Contains(a.body, "connection.created") || !strings.Contains(a.body, `href="/ui/layers/crm/connections/accounts/beta"`) {
		t.Error("the activity does not name the connections of its events")
	}

	// No page shows the token, nor the admin token.
	for _, path := range []string{"/ui/", "/ui/layers/crm", "/ui/layers/crm/activity", "/ui/layers/crm/records", list, list + "/beta",
		list + "/gamma", list + "/beta/delete", "/ui/layers/crm/deliveries"} {
		pages = append(pages, get(path))
	}
	for _, r := range f.runsOf("crm", "") {
		pages = append(pages, get("/ui/layers/crm/runs/"+r.ID))
	}
	for i, a := range pages {
		for _, secret := range []string{connToken, testToken} {
			if strings.Contains(a.body, secret) {
				t.Errorf("page %d (status %d) shows a secret:\n%s", i, a.status, a.body)
			}
		}
	}
}
