package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
	cf "github.com/synclayer/synclayer/plugins/contentful/contentfultest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// space is a fake space with three locales (de-DE falls back to en-US,
// fr-FR to nothing), two content types, an asset, an author and two blog
// posts, served two items per sync page.
func space(t *testing.T) *cf.Server {
	t.Helper()
	api := cf.Start(t, cf.Options{
		PageSize: 2,
		Locales: []cf.Locale{
			{Code: "en-US", Default: true},
			{Code: "de-DE", Fallback: "en-US"},
			{Code: "fr-FR"},
		},
	})
	api.AddContentType(cf.ContentType{ID: "author", Name: "Author", Fields: []cf.Field{
		{ID: "name", Type: "Symbol"},
	}})
	api.AddContentType(cf.ContentType{ID: "blogPost", Name: "Blog post", Fields: []cf.Field{
		{ID: "title", Type: "Symbol", Localized: true},
		{ID: "slug", Type: "Symbol"},
		{ID: "views", Type: "Integer"},
		{ID: "author", Type: "Link", LinkType: "Entry"},
		{ID: "images", Type: "Array", Items: &cf.Items{Type: "Link", LinkType: "Asset"}},
		{ID: "tags", Type: "Array", Items: &cf.Items{Type: "Symbol"}},
	}})
	api.PutAsset("img-1", cf.Fields{
		"title": {"en-US": "Cover", "de-DE": "Titelbild"},
		"file":  {"en-US": map[string]any{"url": "//images.ctfassets.net/cover.png", "fileName": "cover.png", "contentType": "image/png", "details": map[string]any{"size": 1234}}},
	})
	api.PutEntry("ada", "author", cf.Fields{"name": {"en-US": "Ada Lovelace"}})
	api.PutEntry("post-1", "blogPost", cf.Fields{
		"title":  {"en-US": "Hello", "de-DE": "Hallo"},
		"slug":   {"en-US": "hello"},
		"views":  {"en-US": 9007199254740993},
		"author": {"en-US": cf.Link("Entry", "ada")},
		"images": {"en-US": []any{cf.Link("Asset", "img-1")}},
		"tags":   {"en-US": []any{"news", "intro"}},
	})
	api.PutEntry("post-2", "blogPost", cf.Fields{"title": {"en-US": "Second"}, "slug": {"en-US": "second"}})
	return api
}

func config(api *cf.Server) map[string]any {
	return map[string]any{"space_id": api.SpaceID(), "access_token": api.AccessToken(), "base_url": api.URL}
}

// fast is the connector with a short backoff, so that retries are quick
// (Retry-After still holds).
func fast() *Contentful {
	return &Contentful{HTTP: sdk.HTTPClientOptions{RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond}}
}

func syncRun(t *testing.T, h *sdktest.Harness, cfg map[string]any, full bool, cp sdk.Checkpoint) *sdktest.Result {
	t.Helper()
	res, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: SyncName, Full: full, Checkpoint: cp})
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return res
}

// changes renders a result's changes as "Model:id" and "-Model:id" for
// deletes ("-:id" for a delete by id alone), sorted.
func changes(res *sdktest.Result) string {
	var out []string
	for _, c := range res.Changes {
		s := c.Model + ":" + c.ID
		if c.Delete {
			s = "-" + s
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// record returns the last saved record of model and id, decoded.
func record(t *testing.T, res *sdktest.Result, model, id string) map[string]any {
	t.Helper()
	for i := len(res.Changes) - 1; i >= 0; i-- {
		c := res.Changes[i]
		if c.Model == model && c.ID == id && !c.Delete {
			var m map[string]any
			dec := json.NewDecoder(strings.NewReader(string(c.Data)))
			dec.UseNumber()
			if err := dec.Decode(&m); err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Fatalf("no record %s %q in %s", model, id, changes(res))
	return nil
}

func canonical(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDescribe(t *testing.T) {
	api := space(t)
	h := sdktest.New(t, fast())
	d, err := h.Describe(nil)
	if err != nil || d.Name != "contentful" || len(d.Models) != 0 || !d.Webhooks || !d.Watches {
		t.Fatalf("static description: %v %+v", err, d)
	}
	for name, want := range map[string][2]bool{ // required, sensitive
		"space_id": {true, false}, "environment": {false, false}, "access_token": {true, true},
		"base_url": {false, false}, "locale": {false, false}, "webhook_secret": {false, true},
	} {
		if f := d.Field(name); f == nil || f.Required != want[0] || f.Sensitive != want[1] {
			t.Errorf("config attribute %s: %+v, want required=%v sensitive=%v", name, f, want[0], want[1])
		}
	}

	d, err = h.Describe(config(api))
	if err != nil {
		t.Fatal(err)
	}
	var models []string
	for _, m := range d.Models {
		models = append(models, m.Name)
	}
	if strings.Join(models, " ") != "Author BlogPost Asset" {
		t.Fatalf("models %v", models)
	}
	if len(d.Syncs) != 1 || d.Syncs[0].Name != "content" || !d.Syncs[0].Incremental || strings.Join(d.Syncs[0].Models, " ") != "Author BlogPost Asset" {
		t.Fatalf("syncs %+v", d.Syncs)
	}
	var fields []string
	for _, f := range d.Models[1].Fields {
		fields = append(fields, f.Name+":"+f.Type)
	}
	if got := strings.Join(fields, " "); got != "id:string title:string slug:string views:number author:string images:array tags:array created_at:timestamp updated_at:timestamp revision:number content_type:string" {
		t.Fatalf("BlogPost fields: %s", got)
	}
	if d.Watches || d.Webhooks {
		t.Fatal("a source without webhook_secret must not watch nor take payload webhooks (the host answers 404)")
	}
	withSecret := config(api)
	withSecret["webhook_secret"] = testSecret
	if d, err := h.Describe(withSecret); err != nil || !d.Watches || !d.Webhooks {
		t.Fatalf("a source with webhook_secret watches and takes webhooks: %v %+v", err, d)
	}
}

func TestModelName(t *testing.T) {
	for in, want := range map[string]string{
		"blogPost": "BlogPost", "blog-post": "BlogPost", "blog_post.v2": "BlogPostV2", "page": "Page", "2col": "2col", "ümlaut": "Ümlaut",
	} {
		if got := ModelName(in); got != want {
			t.Errorf("ModelName(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := modelNames([]contentType{ctOf("blogPost"), ctOf("blog-post")}); err == nil || !strings.Contains(err.Error(), "both be model BlogPost") {
		t.Fatalf("colliding content types: %v", err)
	}
	if _, err := modelNames([]contentType{ctOf("asset")}); err == nil || !strings.Contains(err.Error(), "the assets") {
		t.Fatalf("a content type named asset: %v", err)
	}
}

func ctOf(id string) contentType {
	var ct contentType
	ct.Sys.ID = id
	return ct
}

func TestConfigValidation(t *testing.T) {
	api := space(t)
	h := sdktest.New(t, fast())
	for _, tc := range []struct {
		set  map[string]any
		want string
	}{
		{map[string]any{"space_id": "no spaces/allowed"}, "space_id"},
		{map[string]any{"environment": "a/b"}, "environment"},
		{map[string]any{"base_url": "cdn.contentful.com"}, "base_url"},
		{map[string]any{"access_token": " "}, "access_token"},
		{map[string]any{"colour": "blue"}, "colour"},
	} {
		cfg := config(api)
		for k, v := range tc.set {
			cfg[k] = v
		}
		if err := h.Check(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %v: %v, want an error naming %s", tc.set, err, tc.want)
		}
	}
}

func TestFullAndIncrementalRuns(t *testing.T) {
	api := space(t)
	h := sdktest.New(t, fast())
	cfg := config(api)

	full := syncRun(t, h, cfg, true, nil)
	if got := changes(full); got != "Asset:img-1 Author:ada BlogPost:post-1 BlogPost:post-2" {
		t.Fatalf("full run: %s", got)
	}
	reqs := api.Requests()
	var syncs []string
	for _, r := range reqs {
		if strings.Contains(r, "/sync?") {
			syncs = append(syncs, r)
		}
	}
	if len(syncs) != 2 || !strings.HasSuffix(syncs[0], "/environments/master/sync?initial=true") || !strings.Contains(syncs[1], "sync?sync_token=") {
		t.Fatalf("full run sync requests: %v", syncs)
	}
	cps := full.Checkpoints()
	if len(cps) != 2 {
		t.Fatalf("full run checkpoints: %v", cps)
	}
	if _, ok := cps[0].GetString("next_page"); !ok {
		t.Fatalf("the checkpoint of a page with a next page has no next_page: %v", cps[0])
	}
	last := full.Checkpoint
	if tok, ok := last.GetString("sync_token"); !ok || tok == "" || len(last) != 1 {
		t.Fatalf("final checkpoint: %v", last)
	}

	// Nothing changed: an incremental run sends only the sync token and
	// writes nothing.
	api.ResetRequests()
	none := syncRun(t, h, cfg, false, last)
	if len(none.Changes) != 0 {
		t.Fatalf("incremental run of an unchanged space: %s", changes(none))
	}
	tok, _ := last.GetString("sync_token")
	for _, r := range api.Requests() {
		if strings.Contains(r, "/sync") && r != "/spaces/"+api.SpaceID()+"/environments/master/sync?sync_token="+tok {
			t.Fatalf("incremental run request %s: want only the checkpoint's sync_token", r)
		}
	}

	// An update, a new entry, an unpublished entry and a deleted asset.
	api.PutEntry("post-2", "blogPost", cf.Fields{"title": {"en-US": "Second, edited"}, "slug": {"en-US": "second"}})
	api.PutEntry("post-3", "blogPost", cf.Fields{"title": {"en-US": "Third"}})
	api.DeleteEntry("ada")
	api.DeleteAsset("img-1")
	inc := syncRun(t, h, cfg, false, none.Checkpoint)
	if got := changes(inc); got != "-:ada -Asset:img-1 BlogPost:post-2 BlogPost:post-3" {
		t.Fatalf("incremental run: %s", got)
	}
	if title := record(t, inc, "BlogPost", "post-2")["title"]; canonical(t, title) != `{"en-US":"Second, edited"}` {
		t.Fatalf("post-2 title %v", title)
	}
	if rev := record(t, inc, "BlogPost", "post-2")["revision"]; fmt.Sprint(rev) != "2" {
		t.Fatalf("post-2 revision %v", rev)
	}

	// A run limited to some models saves only those; an unpublished
	// entry is deleted by id, which the host resolves in whichever model
	// holds it.
	api.PutEntry("post-3", "blogPost", cf.Fields{"title": {"en-US": "Third, edited"}})
	api.PutEntry("ada", "author", cf.Fields{"name": {"en-US": "Ada"}})
	api.DeleteEntry("post-1")
	res, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: SyncName, Models: []string{"BlogPost"}, Checkpoint: inc.Checkpoint})
	if err != nil {
		t.Fatal(err)
	}
	if got := changes(res); got != "-:post-1 BlogPost:post-3" {
		t.Fatalf("run of BlogPost only: %s", got)
	}
	if !slices.ContainsFunc(res.Logs, func(l string) bool {
		return strings.Contains(l, "skipping entries of a model this run does not fetch") && strings.Contains(l, "model=Author")
	}) {
		t.Fatalf("the skipped Author entry is not logged: %v", res.Logs)
	}
}

func TestRecordShape(t *testing.T) {
	api := space(t)
	h := sdktest.New(t, fast())

	// Without a locale, each field keeps its map of locales; links become
	// ids in it.
	res := syncRun(t, h, config(api), true, nil)
	post := record(t, res, "BlogPost", "post-1")
	want := `{"author":{"en-US":"ada"},"content_type":"blogPost","created_at":"2026-11-23T07:00:03.000Z","id":"post-1","images":{"en-US":["img-1"]},` +
		`"revision":1,"slug":{"en-US":"hello"},"tags":{"en-US":["news","intro"]},"title":{"de-DE":"Hallo","en-US":"Hello"},"updated_at":"2026-11-23T07:00:03.000Z","views":{"en-US":9007199254740993}}`
	if got := canonical(t, post); got != want {
		t.Fatalf("post without locale:\n got %s\nwant %s", got, want)
	}
	asset := record(t, res, "Asset", "img-1")
	if _, has := asset["content_type"]; has || asset["created_at"] != "2026-11-23T07:00:01.000Z" || canonical(t, asset["title"]) != `{"de-DE":"Titelbild","en-US":"Cover"}` {
		t.Fatalf("asset without locale: %s", canonical(t, asset))
	}

	// With a locale, a field is that locale's value, else its fallback's;
	// a field that is not localized has the default locale's value.
	for _, tc := range []struct{ locale, post, asset string }{
		{"en-US", `{"author":"ada","content_type":"blogPost","created_at":"2026-11-23T07:00:03.000Z","id":"post-1","images":["img-1"],"revision":1,"slug":"hello","tags":["news","intro"],"title":"Hello","updated_at":"2026-11-23T07:00:03.000Z","views":9007199254740993}`,
			`"title":"Cover"`},
		{"de-DE", `{"author":"ada","content_type":"blogPost","created_at":"2026-11-23T07:00:03.000Z","id":"post-1","images":["img-1"],"revision":1,"slug":"hello","tags":["news","intro"],"title":"Hallo","updated_at":"2026-11-23T07:00:03.000Z","views":9007199254740993}`,
			`"title":"Titelbild"`},
		// fr-FR has no fallback: the localized title has no value.
		{"fr-FR", `{"author":"ada","content_type":"blogPost","created_at":"2026-11-23T07:00:03.000Z","id":"post-1","images":["img-1"],"revision":1,"slug":"hello","tags":["news","intro"],"updated_at":"2026-11-23T07:00:03.000Z","views":9007199254740993}`,
			`"id":"img-1"`},
	} {
		cfg := config(api)
		cfg["locale"] = tc.locale
		res := syncRun(t, h, cfg, true, nil)
		if got := canonical(t, record(t, res, "BlogPost", "post-1")); got != tc.post {
			t.Errorf("post in %s:\n got %s\nwant %s", tc.locale, got, tc.post)
		}
		if got := canonical(t, record(t, res, "Asset", "img-1")); !strings.Contains(got, tc.asset) || strings.Contains(got, "en-US") {
			t.Errorf("asset in %s: %s, want %s", tc.locale, got, tc.asset)
		}
	}

	cfg := config(api)
	cfg["locale"] = "it-IT"
	if err := h.Check(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), `locale "it-IT" is not one of the environment's locales (de-DE, en-US, fr-FR)`) {
		t.Fatalf("check of an unknown locale: %v", err)
	}
	if _, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: SyncName, Full: true}); err == nil || !strings.Contains(err.Error(), "it-IT") {
		t.Fatalf("sync with an unknown locale: %v", err)
	}
}

func TestLinkIDs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"sys":{"type":"Link","linkType":"Entry","id":"a"}}`, `"a"`},
		{`[{"sys":{"type":"Link","linkType":"Asset","id":"a"}},{"sys":{"type":"Link","linkType":"Asset","id":"b"}}]`, `["a","b"]`},
		{`{"sys":{"type":"Link","id":"a"},"other":1}`, `{"other":1,"sys":{"id":"a","type":"Link"}}`},
		{`{"nodeType":"document","content":[{"data":{"target":{"sys":{"type":"Link","id":"a"}}}}]}`, `{"content":[{"data":{"target":{"sys":{"id":"a","type":"Link"}}}}],"nodeType":"document"}`},
		{`{"lat":52.5,"lon":13.4}`, `{"lat":52.5,"lon":13.4}`},
		{`["x",{"sys":{"type":"Link","id":"a"}}]`, `["x","a"]`},
	} {
		var v any
		if err := json.Unmarshal([]byte(tc.in), &v); err != nil {
			t.Fatal(err)
		}
		if got := canonical(t, linkIDs(v)); got != tc.want {
			t.Errorf("linkIDs(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestResume: a run that fails after a page resumes at the next page its
// checkpoint names, and together they write what one run writes.
func TestResume(t *testing.T) {
	api := space(t)
	h := sdktest.New(t, fast())
	cfg := config(api)
	whole := syncRun(t, h, cfg, false, nil)

	part, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: SyncName, StopAfterCheckpoints: 1})
	if err != nil {
		t.Fatal(err)
	}
	next, ok := part.Checkpoint.GetString("next_page")
	if !ok {
		t.Fatalf("checkpoint after the first page: %v", part.Checkpoint)
	}
	api.ResetRequests()
	rest := syncRun(t, h, cfg, false, part.Checkpoint)
	for _, r := range api.Requests() {
		if strings.Contains(r, "/sync") && !strings.HasSuffix(r, "sync_token="+next) {
			t.Fatalf("the resumed run asked %s, want the checkpoint's next page", r)
		}
	}
	if got, want := changes(&sdktest.Result{Changes: append(part.Changes, rest.Changes...)}), changes(whole); got != want {
		t.Fatalf("interrupted and resumed: %s\nuninterrupted: %s", got, want)
	}
	if tok, _ := rest.Checkpoint.GetString("sync_token"); tok == "" || rest.Checkpoint["next_page"] != nil {
		t.Fatalf("final checkpoint of the resumed run: %v", rest.Checkpoint)
	}

	// A full run does not resume: it starts the sync again.
	api.ResetRequests()
	syncRun(t, h, cfg, true, part.Checkpoint)
	if r := api.Requests(); !slices.ContainsFunc(r, func(s string) bool { return strings.HasSuffix(s, "sync?initial=true") }) {
		t.Fatalf("a full run with a page checkpoint asked %v, want initial=true", r)
	}

	// A page token the API no longer takes restarts the interrupted sync.
	bad := sdk.Checkpoint{"next_page": "expired"}
	res := syncRun(t, h, cfg, false, bad)
	if changes(res) != changes(whole) {
		t.Fatalf("restart after a refused page token: %s", changes(res))
	}
	// A refused sync token says to reset.
	if _, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: SyncName, Checkpoint: sdk.Checkpoint{"sync_token": "bogus"}}); err == nil || !strings.Contains(err.Error(), "reset the sync") {
		t.Fatalf("a refused sync token: %v", err)
	}
}

// TestRateLimit: Contentful's 429 carries X-Contentful-RateLimit-Reset
// (no Retry-After); the client waits that long and tries again.
func TestRateLimit(t *testing.T) {
	api := space(t)
	h := sdktest.New(t, fast())
	api.RateLimit(2, 1)
	res := syncRun(t, h, config(api), true, nil)
	if got := changes(res); got != "Asset:img-1 Author:ada BlogPost:post-1 BlogPost:post-2" {
		t.Fatalf("after 429s: %s", got)
	}
	reqs := api.Requests()
	if len(reqs) < 3 || reqs[0] != reqs[1] || reqs[1] != reqs[2] {
		t.Fatalf("requests %v: want the throttled one twice more", reqs)
	}

	// The reset becomes the Retry-After that the SDK's client honours.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(RateLimitResetHeader, r.URL.Query().Get("reset"))
		if r.URL.Query().Has("retry_after") {
			w.Header().Set("Retry-After", r.URL.Query().Get("retry_after"))
		}
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	rt := resetAsRetryAfter{http.DefaultTransport}
	defer rt.CloseIdleConnections()
	for query, want := range map[string]string{"reset=7": "7", "reset=7&retry_after=3": "3", "reset=soon": "", "reset=-1": ""} {
		req, _ := http.NewRequest("GET", srv.URL+"?"+query, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Retry-After"); got != want {
			t.Errorf("%s: Retry-After %q, want %q", query, got, want)
		}
		if d, ok := sdk.RetryAfter(resp.Header, time.Now()); want == "7" && (!ok || d != 7*time.Second) {
			t.Errorf("%s: the SDK reads %v %v", query, d, ok)
		}
	}
}

func TestCheck(t *testing.T) {
	api := cf.Start(t, cf.Options{Environments: []string{"master", "staging"}})
	h := sdktest.New(t, fast())
	if err := h.Check(t.Context(), config(api)); err != nil {
		t.Fatalf("check: %v", err)
	}
	staging := config(api)
	staging["environment"] = "staging"
	if err := h.Check(t.Context(), staging); err != nil {
		t.Fatalf("check of staging: %v", err)
	}
	for _, tc := range []struct {
		set  map[string]any
		want []string
	}{
		{map[string]any{"access_token": "not-the-t0ken"}, []string{"access_token is not valid", "401 AccessTokenInvalid", "Content Delivery API token"}},
		{map[string]any{"space_id": "nosuchspace"}, []string{`space_id "nosuchspace": no such space`, "404 NotFound"}},
		{map[string]any{"environment": "qa"}, []string{`environment "qa": no such environment in space`, "404 NotFound"}},
	} {
		cfg := config(api)
		for k, v := range tc.set {
			cfg[k] = v
		}
		err := h.Check(t.Context(), cfg)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("check with %v: %v\nwant it to say %q", tc.set, err, w)
			}
		}
		if err != nil && strings.Contains(err.Error(), api.AccessToken()) {
			t.Errorf("the error quotes the token: %v", err)
		}
		// A sync fails the same way.
		if _, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: SyncName, Full: true}); err == nil || !strings.Contains(err.Error(), tc.want[0]) {
			t.Errorf("sync with %v: %v", tc.set, err)
		}
	}
}

// TestAcceptance runs the SDK's acceptance suite against the fake; the
// upstream change between incremental runs edits, adds and unpublishes
// (an asset by model, an entry by id alone).
func TestAcceptance(t *testing.T) {
	api := space(t)
	for i := range 7 {
		api.PutEntry(fmt.Sprintf("extra-%d", i), "blogPost", cf.Fields{"title": {"en-US": fmt.Sprintf("Extra %d", i)}})
	}
	cfg := config(api)
	cfg["locale"] = "de-DE"
	cfg["webhook_secret"] = testSecret
	sdktest.Acceptance{
		Config: cfg,
		Change: func(t testing.TB, sync string) {
			api.PutEntry("post-2", "blogPost", cf.Fields{"title": {"en-US": "Second, edited"}})
			api.PutEntry("post-9", "blogPost", cf.Fields{"title": {"de-DE": "Neu"}})
			api.PutAsset("img-2", cf.Fields{"title": {"en-US": "Another"}})
			api.DeleteAsset("img-1")
			api.DeleteEntry("extra-3")
		},
	}.Run(t, fast())
}

// TestConfigureNamesWhatIsWrong: the host describes a source when it loads
// it, so the description's errors say what to fix.
func TestConfigureNamesWhatIsWrong(t *testing.T) {
	api := space(t)
	h := sdktest.New(t, fast())
	for _, tc := range []struct {
		key, value, want string
	}{
		{"access_token", "wrong-t0ken", "access_token is not valid"},
		{"space_id", "elsewhere", `space_id "elsewhere": no such space`},
		{"environment", "qa", `environment "qa": no such environment`},
		{"locale", "it-IT", `locale "it-IT" is not one of the environment's locales`},
	} {
		cfg := config(api)
		cfg[tc.key] = tc.value
		if _, err := h.Describe(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("describe with %s = %q: %v, want %q", tc.key, tc.value, err, tc.want)
		}
	}
}
