package api_test

import (
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
	"time"

	badgerstore "github.com/synclayer/synclayer/core/store/badger"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/synclayer/synclayer/core/api"
	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
)

func TestHealthReadyMetrics(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	var st map[string]string
	f.do("GET", "/healthz", "", 200, &st)
	if st["status"] != "ok" {
		t.Errorf("/healthz = %v", st)
	}
	f.do("GET", "/readyz", "", 200, &st)
	if st["status"] != "ready" {
		t.Errorf("/readyz = %v", st)
	}
	f.do("GET", "/v1/layers", "", 200, nil)
	// The run counter moves just after the run shows as ended: poll.
	var body []byte
	waitUntil(t, "synclayer_runs_total in /metrics", func() bool {
		status, h, b := f.request("GET", "/metrics", nil, nil)
		if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
			t.Fatalf("/metrics: %d %s", status, h.Get("Content-Type"))
		}
		body = b
		return strings.Contains(string(b), `synclayer_runs_total{layer="cat",state="completed"} 1`)
	})
	for _, want := range []string{
		"synclayer_http_request_duration_seconds_bucket",
		`route="GET /v1/layers"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestReadyzBeforeStart(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "blog", "Post.json"), `[]`)
	cfgPath := filepath.Join(dir, "l.hcl")
	writeFile(t, cfgPath, fmt.Sprintf("layer \"cat\" {\n  source \"blog\" {\n    plugin = \"files\"\n    config { dir = %q }\n  }\n}\n", filepath.Join(dir, "blog")))
	cfg, diags := config.Load(cfgPath)
	if diags.HasErrors() {
		t.Fatal(config.FormatDiagnostics(diags))
	}
	st, err := badgerstore.Open(badgerstore.Options{Dir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pm := plugin.NewManager(plugin.Options{SearchPaths: []string{binDir}})
	defer pm.Shutdown()
	e, err := engine.New(engine.Options{Config: cfg, Store: st, Plugins: pm})
	if err != nil {
		t.Fatal(err)
	}
	h, err := api.New(api.Options{Engine: e, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptestServer(t, h)
	f := &fixture{t: t, srv: srv}
	var body map[string]string
	f.do("GET", "/readyz", "", 503, &body)
	if body["status"] == "ready" {
		t.Errorf("/readyz before Start = %v", body)
	}
	f.do("GET", "/healthz", "", 200, nil)
	// A layer that is not open yet answers 503, not 500.
	f.fail("GET", "/v1/layers/cat/records", "", 503, "not_ready")
}

func TestListLayersAndOneLayer(t *testing.T) {
	f := newFixture(t, fixtureOpts{twoRevisions: true})
	var list struct {
		Layers []struct {
			Name string `json:"name"`
		} `json:"layers"`
	}
	f.do("GET", "/v1/layers", "", 200, &list)
	if len(list.Layers) != 1 || list.Layers[0].Name != "cat" {
		t.Errorf("layers = %+v", list.Layers)
	}

	var raw map[string]json.RawMessage
	b := f.do("GET", "/v1/layers/cat", "", 200, &raw)
	for _, k := range []string{"name", "sources", "revision", "pinned"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("layer lacks %q: %s", k, b)
		}
	}
	if string(raw["pinned"]) != "null" {
		t.Errorf("pinned = %s, want null", raw["pinned"])
	}
	type syncJSON struct {
		Name   string   `json:"name"`
		Models []string `json:"models"`
		State  string   `json:"state"`
	}
	var layer struct {
		Name    string `json:"name"`
		Sources []struct {
			Name   string     `json:"name"`
			Plugin string     `json:"plugin"`
			Syncs  []syncJSON `json:"syncs"`
		} `json:"sources"`
		Revision int64  `json:"revision"`
		Pinned   *int64 `json:"pinned"`
	}
	json.Unmarshal(b, &layer)
	if layer.Name != "cat" || layer.Revision != 2 || len(layer.Sources) != 2 {
		t.Fatalf("layer = %s", b)
	}
	want := map[string]syncJSON{
		"blog": {Name: "files", Models: []string{"Post"}, State: "idle"},
		"shop": {Name: "files", Models: []string{"Post", "Product"}, State: "idle"},
	}
	for i, name := range []string{"blog", "shop"} {
		s := layer.Sources[i]
		if s.Name != name || s.Plugin != "files" || len(s.Syncs) != 1 {
			t.Errorf("source %d = %+v", i, s)
			continue
		}
		if y := s.Syncs[0]; y.Name != want[name].Name || !slices.Equal(y.Models, want[name].Models) || y.State != want[name].State {
			t.Errorf("source %s sync = %+v, want %+v", name, y, want[name])
		}
	}

	// Pinned: the layer shows the pin, and its current revision is the
	// pinned one.
	if err := f.eng.Pin("cat", 1); err != nil {
		t.Fatal(err)
	}
	f.do("GET", "/v1/layers/cat", "", 200, &layer)
	if layer.Pinned == nil || *layer.Pinned != 1 || layer.Revision != 1 {
		t.Errorf("pinned layer: revision %d pinned %v, want 1 and 1", layer.Revision, layer.Pinned)
	}
}

func TestTriggerSyncAndGetRun(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	var ids []string
	for _, body := range []string{"", `{}`, `{"source":"blog"}`, `{"source":"blog","sync":"files"}`, `{"source":"shop","reset":true}`} {
		var raw map[string]string
		f.do("POST", "/v1/layers/cat/syncs", body, 202, &raw)
		if len(raw) != 1 || !strings.HasPrefix(raw["run"], "run_") {
			t.Errorf("POST syncs %q answered %v, want {\"run\":\"run_…\"}", body, raw)
		}
		ids = append(ids, raw["run"])
	}
	for _, id := range ids {
		f.waitRun(id)
	}

	// One run on its own (the triggers above may have been coalesced),
	// with one change.
	writeFile(t, filepath.Join(f.dir, "blog", "Post.json"),
		`[{"id":"p1","title":"One, edited"},{"id":"p2","title":"Two"},{"id":"p3","title":"Three"}]`)
	var out struct{ Run string }
	f.do("POST", "/v1/layers/cat/syncs", `{"source":"blog","sync":"files"}`, 202, &out)
	id := out.Run
	f.waitRun(id)
	var raw map[string]json.RawMessage
	b := f.do("GET", "/v1/layers/cat/runs/"+id, "", 200, &raw)
	for _, k := range []string{"run", "state", "trigger", "syncs", "counts", "revision"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("run lacks %q: %s", k, b)
		}
	}
	if _, ok := raw["error"]; ok {
		t.Errorf("a completed run has an error: %s", b)
	}
	var run struct {
		Run      string                                 `json:"run"`
		State    string                                 `json:"state"`
		Trigger  string                                 `json:"trigger"`
		Syncs    []store.SyncRef                        `json:"syncs"`
		Counts   map[string]map[string]map[string]int64 `json:"counts"`
		Revision int64                                  `json:"revision"`
	}
	json.Unmarshal(b, &run)
	if run.Run != id || run.State != "completed" || run.Trigger != "manual" || run.Revision < 2 ||
		!slices.Equal(run.Syncs, []store.SyncRef{{Source: "blog", Sync: "files"}}) {
		t.Errorf("run = %s", b)
	}
	if c := run.Counts["blog"]["Post"]; c["updated"] != 1 || c["added"] != 0 || c["deleted"] != 0 {
		t.Errorf("run counts %s, want blog/Post with 1 updated", raw["counts"])
	}
}

func TestTriggerSyncErrors(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.fail("POST", "/v1/layers/nope/syncs", `{}`, 404, "not_found")
	f.fail("POST", "/v1/layers/cat/syncs", `{"source":"nope"}`, 404, "not_found")
	f.fail("POST", "/v1/layers/cat/syncs", `{"source":"blog","sync":"nope"}`, 404, "not_found")
	e := f.fail("POST", "/v1/layers/cat/syncs", `{"source":"blog","bogus":1}`, 400, "bad_json")
	if !strings.Contains(e.Error.Message, "bogus") {
		t.Errorf("unknown field error %q does not name the field", e.Error.Message)
	}
	f.fail("POST", "/v1/layers/cat/syncs", `[1]`, 400, "bad_json")
	f.fail("POST", "/v1/layers/cat/syncs", `{"source":`, 400, "bad_json")
	f.fail("POST", "/v1/layers/cat/syncs", `{"source":"`+strings.Repeat("a", api.MaxBodyBytes)+`"}`, 413, "body_too_large")
	// Nothing was queued by the failures.
	if n := len(f.runs()); n != 1 {
		t.Errorf("%d runs, want only the startup run", n)
	}
}

func TestUnknownThingsAre404JSON(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for _, p := range []string{
		"/v1/layers/nope",
		"/v1/layers/nope/records",
		"/v1/layers/nope/events",
		"/v1/layers/nope/revisions",
		"/v1/layers/nope/runs/run_x",
		"/v1/layers/cat/runs/run_nope",
		"/v1/nope",
		"/nope",
		"/v1/layers/cat/nope",
	} {
		f.fail("GET", p, "", 404, "not_found")
	}
	f.fail("GET", "/v1/layers/cat/records?revision=99", "", 404, "not_found")
}

type eventJSON struct {
	Seq     uint64 `json:"seq"`
	Time    string `json:"time"`
	Type    string `json:"type"`
	Run     string `json:"run"`
	Message string `json:"message"`
}

func TestEvents(t *testing.T) {
	f := newFixture(t, fixtureOpts{twoRevisions: true})
	var all struct {
		Events []eventJSON `json:"events"`
	}
	// sync.completed is logged just after the run shows as ended.
	waitUntil(t, "sync.completed of the second run", func() bool {
		f.do("GET", "/v1/layers/cat/events", "", 200, &all)
		for _, ev := range all.Events {
			if ev.Type == "sync.completed" && ev.Run == f.lastRun {
				return true
			}
		}
		return false
	})
	if len(all.Events) < 6 {
		t.Fatalf("events %+v, want those of two runs", all.Events)
	}
	for i, ev := range all.Events {
		if ev.Type == "" || ev.Time == "" || (i > 0 && ev.Seq <= all.Events[i-1].Seq) {
			t.Errorf("event %d = %+v (after %+v)", i, ev, all.Events[max(i-1, 0)])
		}
	}

	var page struct {
		Events []eventJSON `json:"events"`
	}
	after := all.Events[1].Seq
	f.do("GET", fmt.Sprintf("/v1/layers/cat/events?after=%d&limit=2", after), "", 200, &page)
	if len(page.Events) != 2 || page.Events[0].Seq != all.Events[2].Seq || page.Events[1].Seq != all.Events[3].Seq {
		t.Errorf("after=%d&limit=2 = %+v, want events %d and %d", after, page.Events, all.Events[2].Seq, all.Events[3].Seq)
	}
	last := all.Events[len(all.Events)-1].Seq
	b := f.do("GET", fmt.Sprintf("/v1/layers/cat/events?after=%d", last), "", 200, &page)
	if len(page.Events) != 0 || !strings.Contains(string(b), `"events":[]`) {
		t.Errorf("events after the last = %s, want an empty list", b)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "after=-1", "after=x"} {
		f.fail("GET", "/v1/layers/cat/events?"+q, "", 400, "bad_"+strings.SplitN(q, "=", 2)[0])
	}
}

type recordJSON map[string]any

func (r recordJSON) meta(k string) any {
	m, _ := r["_metadata"].(map[string]any)
	return m[k]
}

func (r recordJSON) key() string {
	return fmt.Sprint(r.meta("source"), "/", r.meta("model"), "/", r["id"])
}

type recordsPage struct {
	Records    []recordJSON `json:"records"`
	NextCursor *string      `json:"next_cursor"`
}

func keys(recs []recordJSON) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.key())
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// records gets one page and checks next_cursor is present.
func (f *fixture) records(query string) recordsPage {
	f.t.Helper()
	var raw map[string]json.RawMessage
	b := f.do("GET", "/v1/layers/cat/records?"+query, "", 200, &raw)
	if _, ok := raw["next_cursor"]; !ok {
		f.t.Errorf("records?%s: no next_cursor: %s", query, b)
	}
	var p recordsPage
	json.Unmarshal(b, &p)
	if p.Records == nil {
		f.t.Errorf("records?%s: records is not a list: %s", query, b)
	}
	return p
}

func TestRecords(t *testing.T) {
	f := newFixture(t, fixtureOpts{twoRevisions: true})
	all := f.records("")
	if all.NextCursor != nil {
		t.Errorf("next_cursor = %q on the only page, want null", *all.NextCursor)
	}
	wantAll := []string{"blog/Post/p1", "blog/Post/p2", "blog/Post/p3", "blog/Post/p4", "shop/Post/p1", "shop/Product/x1", "shop/Product/x2"}
	if got := sorted(keys(all.Records)); !slices.Equal(got, wantAll) {
		t.Fatalf("records %q, want %q", got, wantAll)
	}
	byKey := map[string]recordJSON{}
	for _, r := range all.Records {
		byKey[r.key()] = r
		for _, k := range []string{"source", "model", "first_seen_at", "last_modified_at", "last_action", "deleted_at", "cursor", "revision"} {
			if _, ok := r["_metadata"].(map[string]any)[k]; !ok {
				t.Errorf("record %s: _metadata lacks %q", r.key(), k)
			}
		}
	}
	for key, want := range map[string]string{"blog/Post/p1": "UPDATED", "blog/Post/p2": "DELETED", "blog/Post/p3": "ADDED", "blog/Post/p4": "ADDED"} {
		r := byKey[key]
		if r.meta("last_action") != want {
			t.Errorf("%s: last_action %v, want %s", key, r.meta("last_action"), want)
		}
		wantRev := 2.0
		if key == "blog/Post/p3" {
			wantRev = 1
		}
		if r.meta("revision") != wantRev {
			t.Errorf("%s: revision %v, want %v", key, r.meta("revision"), wantRev)
		}
		if (want == "DELETED") != (r.meta("deleted_at") != nil) {
			t.Errorf("%s: deleted_at %v with last_action %s", key, r.meta("deleted_at"), want)
		}
	}
	if byKey["blog/Post/p1"]["title"] != "One, edited" {
		t.Errorf("p1 = %v", byKey["blog/Post/p1"])
	}

	// A cursor walk with a small limit sees every record once, in the same
	// order, and ends with next_cursor null.
	var walked []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("cursor walk does not end")
		}
		q := "limit=2"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		p := f.records(q)
		if len(p.Records) > 2 {
			t.Fatalf("limit=2 gave %d records", len(p.Records))
		}
		walked = append(walked, keys(p.Records)...)
		if p.NextCursor == nil {
			break
		}
		pos, rev, err := store.ParsePosition(*p.NextCursor)
		if err != nil || len(p.Records) == 0 || pos.String() != p.Records[len(p.Records)-1].meta("cursor") || rev == 0 {
			t.Errorf("next_cursor %q is not the page's last record on its revision (%v)", *p.NextCursor, err)
		}
		cursor = *p.NextCursor
	}
	if !slices.Equal(walked, keys(all.Records)) {
		t.Errorf("cursor walk %q, want %q", walked, keys(all.Records))
	}

	for _, tc := range []struct{ query, want string }{
		{"model=Post", "blog/Post/p1 blog/Post/p2 blog/Post/p3 blog/Post/p4 shop/Post/p1"},
		{"model=Post&source=blog", "blog/Post/p1 blog/Post/p2 blog/Post/p3 blog/Post/p4"},
		{"source=shop", "shop/Post/p1 shop/Product/x1 shop/Product/x2"},
		{"model=Nope", ""},
		{"filter=deleted", "blog/Post/p2"},
		{"filter=updated", "blog/Post/p1"},
		{"filter=added,updated&source=blog", "blog/Post/p1 blog/Post/p3 blog/Post/p4"},
		{"filter=ADDED&model=Product", "shop/Product/x1 shop/Product/x2"},
		{"ids=p1,p4&model=Post", "blog/Post/p1 blog/Post/p4 shop/Post/p1"},
		{"ids=p1&model=Post&source=shop", "shop/Post/p1"},
		{"ids=x1,nope&model=Product", "shop/Product/x1"},
		{"ids=p2&model=Post&filter=deleted", "blog/Post/p2"},
	} {
		got := strings.Join(sorted(keys(f.records(tc.query).Records)), " ")
		if got != tc.want {
			t.Errorf("records?%s = %q, want %q", tc.query, got, tc.want)
		}
	}

	// modified_after is inclusive: the time of revision 2 gives what
	// revision 2 changed; a microsecond later, nothing.
	var revs struct {
		Revisions []struct {
			Revision  int64     `json:"revision"`
			CreatedAt time.Time `json:"created_at"`
		} `json:"revisions"`
	}
	f.do("GET", "/v1/layers/cat/revisions", "", 200, &revs)
	rev2 := revs.Revisions[0].CreatedAt
	got := strings.Join(sorted(keys(f.records("modified_after="+url.QueryEscape(rev2.Format(time.RFC3339Nano))).Records)), " ")
	if got != "blog/Post/p1 blog/Post/p2 blog/Post/p4" {
		t.Errorf("modified_after=<revision 2> = %q, want the records revision 2 changed", got)
	}
	if p := f.records("modified_after=" + url.QueryEscape(rev2.Add(time.Microsecond).Format(time.RFC3339Nano))); len(p.Records) != 0 {
		t.Errorf("modified_after after revision 2 = %q, want none", keys(p.Records))
	}
	if p := f.records("modified_after=2000-01-01T00:00:00Z"); len(p.Records) != len(wantAll) {
		t.Errorf("modified_after long ago gave %d records, want all", len(p.Records))
	}

	// revision=1 reads the first revision.
	old := f.records("revision=1")
	want1 := []string{"blog/Post/p1", "blog/Post/p2", "blog/Post/p3", "shop/Post/p1", "shop/Product/x1", "shop/Product/x2"}
	if got := sorted(keys(old.Records)); !slices.Equal(got, want1) {
		t.Errorf("revision=1: %q, want %q", got, want1)
	}
	for _, r := range old.Records {
		if r.meta("revision") != 1.0 || r.meta("last_action") != "ADDED" {
			t.Errorf("revision=1: %s has revision %v action %v", r.key(), r.meta("revision"), r.meta("last_action"))
		}
		if r.key() == "blog/Post/p1" && r["title"] != "One" {
			t.Errorf("revision=1: p1 = %v", r)
		}
	}
	if p := f.records("limit=10000"); len(p.Records) != len(wantAll) {
		t.Errorf("limit=10000 gave %d records", len(p.Records))
	}
	hundred := make([]string, 100)
	for i := range hundred {
		hundred[i] = fmt.Sprint("id", i)
	}
	hundred[99] = "p1"
	if p := f.records("model=Post&source=blog&ids=" + strings.Join(hundred, ",")); len(p.Records) != 1 {
		t.Errorf("100 ids gave %q, want p1", keys(p.Records))
	}
}

func TestRecordsBadQueries(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ids := make([]string, 101)
	for i := range ids {
		ids[i] = fmt.Sprint("id", i)
	}
	for _, tc := range []struct{ query, code string }{
		{"limit=0", "bad_limit"},
		{"limit=10001", "bad_limit"},
		{"limit=x", "bad_limit"},
		{"limit=-1", "bad_limit"},
		{"cursor=garbage", "bad_cursor"},
		{"cursor=" + strings.Repeat("A", 16) + "x", "bad_cursor"},
		{"filter=added,bogus", "bad_filter"},
		{"filter=", ""}, // empty: no filter
		{"modified_after=yesterday", "bad_modified_after"},
		{"modified_after=2026-11-23", "bad_modified_after"},
		{"ids=p1", "bad_ids"},
		{"model=Post&ids=" + strings.Join(ids, ","), "bad_ids"},
		{"revision=0", "bad_revision"},
		{"revision=x", "bad_revision"},
	} {
		if tc.code == "" {
			f.records(tc.query)
			continue
		}
		f.fail("GET", "/v1/layers/cat/records?"+tc.query, "", 400, tc.code)
	}
}

func TestRecordsOfRevisionNoLongerKeptIs410(t *testing.T) {
	f := newFixture(t, fixtureOpts{keep: 1, twoRevisions: true})
	f.fail("GET", "/v1/layers/cat/records?revision=1", "", 410, "revision_gone")
	f.records("revision=2")
}

func TestRevisions(t *testing.T) {
	f := newFixture(t, fixtureOpts{twoRevisions: true})
	var raw struct {
		Revisions []map[string]json.RawMessage `json:"revisions"`
	}
	b := f.do("GET", "/v1/layers/cat/revisions", "", 200, &raw)
	if len(raw.Revisions) != 2 {
		t.Fatalf("revisions = %s", b)
	}
	for _, r := range raw.Revisions {
		for _, k := range []string{"revision", "created_at", "trigger", "sources", "counts", "pinned"} {
			if _, ok := r[k]; !ok {
				t.Errorf("revision lacks %q: %s", k, b)
			}
		}
	}
	type revJSON struct {
		Revision  int64                                  `json:"revision"`
		CreatedAt time.Time                              `json:"created_at"`
		Trigger   string                                 `json:"trigger"`
		Sources   []string                               `json:"sources"`
		Counts    map[string]map[string]map[string]int64 `json:"counts"`
		Pinned    bool                                   `json:"pinned"`
	}
	var revs struct {
		Revisions []revJSON `json:"revisions"`
	}
	json.Unmarshal(b, &revs)
	r2, r1 := revs.Revisions[0], revs.Revisions[1]
	if r2.Revision != 2 || r1.Revision != 1 {
		t.Fatalf("revisions %d, %d: want newest first", r2.Revision, r1.Revision)
	}
	if !r2.CreatedAt.After(r1.CreatedAt) {
		t.Errorf("created_at %v not after %v", r2.CreatedAt, r1.CreatedAt)
	}
	if r2.Trigger != "manual" || !slices.Equal(r2.Sources, []string{"blog"}) || r2.Pinned {
		t.Errorf("revision 2 = %+v", r2)
	}
	if c := r2.Counts["blog"]["Post"]; c["added"] != 1 || c["updated"] != 1 || c["deleted"] != 1 {
		t.Errorf("revision 2 counts %v, want 1 added, 1 updated, 1 deleted", r2.Counts)
	}
	if r1.Trigger != "startup" || !slices.Equal(r1.Sources, []string{"blog", "shop"}) {
		t.Errorf("revision 1 = %+v", r1)
	}
	if c := r1.Counts["shop"]["Product"]; c["added"] != 2 {
		t.Errorf("revision 1 counts %v", r1.Counts)
	}

	if err := f.eng.Pin("cat", 1); err != nil {
		t.Fatal(err)
	}
	f.do("GET", "/v1/layers/cat/revisions", "", 200, &revs)
	if revs.Revisions[0].Pinned || !revs.Revisions[1].Pinned {
		t.Errorf("after pinning 1: %+v", revs.Revisions)
	}
	// Reads follow the pin.
	if got := sorted(keys(f.records("source=blog").Records)); !slices.Equal(got, []string{"blog/Post/p1", "blog/Post/p2", "blog/Post/p3"}) {
		t.Errorf("records while revision 1 is pinned: %q", got)
	}
}

func TestAdminToken(t *testing.T) {
	f := newFixture(t, fixtureOpts{token: "s3cret-token"})
	for _, p := range []string{"/v1/layers", "/v1/layers/cat", "/v1/layers/cat/records", "/v1/layers/cat/events", "/v1/layers/cat/revisions"} {
		for _, auth := range []string{"", "Bearer wrong", "Bearer s3cret-token-and-more", "Basic s3cret-token", "s3cret-token", "Bearer "} {
			h := http.Header{}
			if auth != "" {
				h.Set("Authorization", auth)
			}
			saved := f.token
			f.token = ""
			status, hdr, body := f.request("GET", p, nil, h)
			f.token = saved
			if status != 401 {
				t.Errorf("GET %s with Authorization %q: %d, want 401", p, auth, status)
				continue
			}
			var e apiError
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != "unauthorized" {
				t.Errorf("GET %s: 401 body %s", p, body)
			}
			if !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("GET %s: WWW-Authenticate %q", p, hdr.Get("WWW-Authenticate"))
			}
		}
		f.do("GET", p, "", 200, nil) // with the right token
	}
	saved := f.token
	f.token = ""
	status, _, _ := f.request("POST", "/v1/layers/cat/syncs", strings.NewReader(`{}`), nil)
	f.token = saved
	if status != 401 {
		t.Errorf("POST syncs without a token: %d, want 401", status)
	}
	if n := len(f.runs()); n != 1 {
		t.Errorf("an unauthorised POST queued a run (%d runs)", n)
	}
	// Health, readiness and metrics stay open.
	f.token = ""
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if status, _, _ := f.request("GET", p, nil, nil); status != 200 {
			t.Errorf("GET %s without a token: %d, want 200", p, status)
		}
	}
}

func TestLayerAPITokenReadsRecords(t *testing.T) {
	sum := sha256.Sum256([]byte("reader-token"))
	f := newFixture(t, fixtureOpts{token: "s3cret-token", layerExtra: fmt.Sprintf(`
  api_token "reader" {
    token_sha256 = %q
  }`, hex.EncodeToString(sum[:]))})
	h := http.Header{"Authorization": {"Bearer reader-token"}}
	f.token = ""
	if status, _, body := f.request("GET", "/v1/layers/cat/records", nil, h); status != 200 {
		t.Errorf("records with the layer's api_token: %d %s, want 200", status, body)
	}
	if status, _, _ := f.request("GET", "/v1/layers/cat/events", nil, h); status != 401 {
		t.Errorf("events (management) with a read token: %d, want 401", status)
	}
}
