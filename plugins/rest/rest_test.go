package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest/fakeapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "Bearer t0ken-of-the-api"

// post is a record of the fake API.
type post struct {
	ID        int    `json:"id"`
	Title     string `json:"title"`
	UpdatedAt string `json:"updated_at"`
}

// fakeAPI serves /api/posts/{cursor,offset,page,link,plain} from one list
// of posts, filtered by ?updated_since= (inclusive) and ordered by id, two
// records per page, behind a bearer token (sdktest/fakeapi records every
// request and injects failures).
type fakeAPI struct {
	*fakeapi.Server
	mu    sync.Mutex
	posts map[int]post
	clock time.Time
}

func newAPI(t *testing.T, n int) *fakeAPI {
	a := &fakeAPI{Server: fakeapi.New(t), posts: map[int]post{}, clock: time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)}
	for i := 1; i <= n; i++ {
		a.set(i, fmt.Sprintf("post %d", i))
	}
	a.RequireBearer(strings.TrimPrefix(token, "Bearer "))
	a.List("/api/posts/cursor", fakeapi.List{Items: a.list, Paging: fakeapi.Cursor, Param: "after", RecordsPath: "data", NextPath: "meta.next_cursor"})
	a.List("/api/posts/offset", fakeapi.List{Items: a.list, Paging: fakeapi.Offset})
	a.List("/api/posts/page", fakeapi.List{Items: a.list, Paging: fakeapi.PageNumber, RecordsPath: "result.items"})
	a.List("/api/posts/link", fakeapi.List{Items: a.list, Paging: fakeapi.Link, Param: "p"})
	a.List("/api/posts/plain", fakeapi.List{Items: a.list})
	return a
}

// list is the posts a request asks for.
func (a *fakeAPI) list(r *http.Request) []any {
	a.mu.Lock()
	var list []post
	for _, p := range a.posts {
		if s := r.URL.Query().Get("updated_since"); s == "" || p.UpdatedAt >= s {
			list = append(list, p)
		}
	}
	a.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	out := make([]any, len(list))
	for i, p := range list {
		out[i] = p
	}
	return out
}

// set adds or updates a post with the next second as its updated_at.
func (a *fakeAPI) set(id int, title string) post {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clock = a.clock.Add(time.Second)
	p := post{ID: id, Title: title, UpdatedAt: a.clock.Format(time.RFC3339)}
	a.posts[id] = p
	return p
}

// setAt adds or updates a post with a given updated_at.
func (a *fakeAPI) setAt(id int, title string, at string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.posts[id] = post{ID: id, Title: title, UpdatedAt: at}
}

func (a *fakeAPI) remove(id int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.posts, id)
}

func (a *fakeAPI) updatedAt(id int) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.posts[id].UpdatedAt
}

// models is the config's models: one per page type, and one without.
func models() map[string]any {
	inc := func(path, records string, page map[string]any) map[string]any {
		m := map[string]any{"path": path, "records": records, "updated_at": "updated_at", "since_param": "updated_since"}
		if page != nil {
			m["page"] = page
		}
		return m
	}
	return map[string]any{
		"Cursor": inc("/posts/cursor", "data", map[string]any{"type": "cursor", "param": "after", "next": "meta.next_cursor"}),
		"Offset": inc("/posts/offset", "", map[string]any{"type": "offset", "limit_param": "limit", "limit": 2}),
		"Page":   inc("/posts/page", "result.items", map[string]any{"type": "page"}),
		"Link":   inc("/posts/link", "", map[string]any{"type": "link"}),
		"Plain":  map[string]any{"path": "posts/plain"},
	}
}

func (a *fakeAPI) config() map[string]any {
	return map[string]any{
		"base_url": a.URL + "/api/",
		"headers":  map[string]any{"Authorization": token},
		"models":   models(),
	}
}

// fast is the connector with a short backoff, so that retries are quick
// (Retry-After still holds).
func fast() *Rest {
	return &Rest{HTTP: sdk.HTTPClientOptions{RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond}}
}

func syncRun(t *testing.T, h *sdktest.Harness, cfg map[string]any, sync string, full bool, cp sdk.Checkpoint) *sdktest.Result {
	t.Helper()
	res, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: sync, Full: full, Checkpoint: cp})
	if err != nil {
		t.Fatalf("sync %s: %v", sync, err)
	}
	return res
}

func ids(res *sdktest.Result) string {
	var out []string
	for _, c := range res.Changes {
		if c.Delete {
			out = append(out, "-"+c.ID)
		} else {
			out = append(out, c.ID)
		}
	}
	return strings.Join(out, ",")
}

func TestDescribe(t *testing.T) {
	a := newAPI(t, 1)
	h := sdktest.New(t, fast())
	static, err := h.Describe(nil)
	if err != nil || static.Name != "rest" || len(static.Models) != 0 {
		t.Fatalf("%v %+v", err, static)
	}
	for name, sensitive := range map[string]bool{"base_url": false, "headers": true, "webhook_secret": true, "models": false} {
		if f := static.Field(name); f == nil || f.Sensitive != sensitive {
			t.Errorf("config attribute %s: %+v", name, f)
		}
	}
	d, err := h.Describe(a.config())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range d.Syncs {
		got = append(got, fmt.Sprintf("%s:%s:%v", s.Name, strings.Join(s.Models, "+"), s.Incremental))
	}
	if strings.Join(got, " ") != "Cursor:Cursor:true Link:Link:true Offset:Offset:true Page:Page:true Plain:Plain:false" {
		t.Fatalf("syncs %v", got)
	}
	if !static.Webhooks {
		t.Fatal("webhooks not advertised by the static description")
	}
	// Payload webhooks only with a webhook_secret (SPEC §11 rest).
	if d.Webhooks {
		t.Fatal("webhooks advertised for a source without webhook_secret")
	}
	signed := a.config()
	signed["webhook_secret"] = "whsec-0123456789"
	if d, err := h.Describe(signed); err != nil || !d.Webhooks {
		t.Fatalf("a source with webhook_secret: %v, webhooks %v", err, d != nil && d.Webhooks)
	}
	if err := h.Check(t.Context(), a.config()); err != nil {
		t.Fatalf("check: %v", err)
	}
	bad := a.config()
	bad["headers"] = map[string]any{"Authorization": "Bearer wrong"}
	if err := h.Check(t.Context(), bad); err == nil || !strings.Contains(err.Error(), "401 Unauthorized") {
		t.Fatalf("check with a bad token: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	h := sdktest.New(t, fast())
	cases := map[string]map[string]any{
		`base_url "ftp://x" must be an absolute http or https URL`: {"base_url": "ftp://x", "models": map[string]any{"A": map[string]any{"path": "/a"}}},
		`models.A.page.type "pages" must be one of`:                {"base_url": "http://x", "models": map[string]any{"A": map[string]any{"path": "/a", "page": map[string]any{"type": "pages"}}}},
		`models.A: since_param needs updated_at`:                   {"base_url": "http://x", "models": map[string]any{"A": map[string]any{"path": "/a", "since_param": "s"}}},
		`type "cursor" needs next`:                                 {"base_url": "http://x", "models": map[string]any{"A": map[string]any{"path": "/a", "page": map[string]any{"type": "cursor"}}}},
		`attribute "models": required but not set`:                 {"base_url": "http://x"},
	}
	for want, cfg := range cases {
		if _, err := h.Describe(cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}

// TestPageTypes walks the same five records under each page type.
func TestPageTypes(t *testing.T) {
	a := newAPI(t, 5)
	h := sdktest.New(t, fast())
	cases := map[string][]string{
		"Cursor": {"/api/posts/cursor", "/api/posts/cursor?after=2", "/api/posts/cursor?after=4"},
		"Offset": {"/api/posts/offset?limit=2&offset=0", "/api/posts/offset?limit=2&offset=2", "/api/posts/offset?limit=2&offset=4"},
		"Page":   {"/api/posts/page?page=1", "/api/posts/page?page=2", "/api/posts/page?page=3", "/api/posts/page?page=4"},
		"Link":   {"/api/posts/link", "/api/posts/link?p=2", "/api/posts/link?p=3"},
		"Plain":  {"/api/posts/plain"},
	}
	for model, want := range cases {
		a.ResetRequests()
		res := syncRun(t, h, a.config(), model, true, nil)
		if got := ids(res); got != "1,2,3,4,5" {
			t.Errorf("%s: ids %s", model, got)
		}
		if got := a.URIs(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: requests\n%s\nwant\n%s", model, strings.Join(got, " "), strings.Join(want, " "))
		}
		for _, c := range res.Changes {
			if c.Model != model {
				t.Errorf("%s: a change of model %s", model, c.Model)
			}
		}
		if n := len(res.Checkpoints()); n != len(want) {
			t.Errorf("%s: %d checkpoints for %d pages", model, n, len(want))
		}
	}
	var rec map[string]any
	res := syncRun(t, h, a.config(), "Cursor", true, nil)
	if err := json.Unmarshal(res.Changes[0].Data, &rec); err != nil || rec["title"] != "post 1" || rec["id"] != 1.0 {
		t.Fatalf("record %s", res.Changes[0].Data)
	}
}

func TestIncremental(t *testing.T) {
	for _, model := range []string{"Cursor", "Offset", "Page", "Link"} {
		t.Run(model, func(t *testing.T) {
			a := newAPI(t, 5)
			h := sdktest.New(t, fast())
			full := syncRun(t, h, a.config(), model, true, nil)
			max := a.updatedAt(5)
			if s, _ := full.Checkpoint.GetString("since"); s != max {
				t.Fatalf("checkpoint %v, want since %s", full.Checkpoint, max)
			}

			// Nothing changed: the API answers post 5 again (its since is
			// inclusive); the connector skips it.
			a.ResetRequests()
			res := syncRun(t, h, a.config(), model, false, full.Checkpoint)
			if ids(res) != "" {
				t.Fatalf("unchanged upstream: %s", ids(res))
			}
			if !strings.Contains(a.URIs()[0], "updated_since="+strings.ReplaceAll(max, ":", "%3A")) {
				t.Fatalf("no since param: %v", a.URIs())
			}

			// Post 2 updated, post 7 new, post 6 new with the same
			// updated_at as post 5 (a tie).
			a.set(2, "post 2, edited")
			a.set(7, "post 7")
			a.setAt(6, "post 6", max)
			res = syncRun(t, h, a.config(), model, false, res.Checkpoint)
			if got := ids(res); got != "2,6,7" {
				t.Fatalf("incremental: %s", got)
			}
			res = syncRun(t, h, a.config(), model, false, res.Checkpoint)
			if got := ids(res); got != "" {
				t.Fatalf("third run repeats %s", got)
			}
		})
	}
}

func TestResumeFromTheNextPage(t *testing.T) {
	a := newAPI(t, 5)
	h := sdktest.New(t, fast())
	part, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: a.config(), Sync: "Cursor", Full: true, StopAfterCheckpoints: 1})
	if err != nil || ids(part) != "1,2" {
		t.Fatalf("%v %s", err, ids(part))
	}
	if next, _ := part.Checkpoint.GetString("next"); !strings.HasSuffix(next, "/api/posts/cursor?after=2") {
		t.Fatalf("checkpoint %v", part.Checkpoint)
	}
	a.ResetRequests()
	res := syncRun(t, h, a.config(), "Cursor", true, part.Checkpoint)
	if ids(res) != "3,4,5" || a.URIs()[0] != "/api/posts/cursor?after=2" {
		t.Fatalf("resumed: %s after %v", ids(res), a.URIs())
	}
	if s, _ := res.Checkpoint.GetString("since"); s != a.updatedAt(5) {
		t.Fatalf("final checkpoint %v", res.Checkpoint)
	}
}

func TestRetryAfter429(t *testing.T) {
	a := newAPI(t, 3)
	a.FailNext(fakeapi.TooManyRequests(time.Second))
	h := sdktest.New(t, fast())
	res := syncRun(t, h, a.config(), "Plain", true, nil)
	reqs := a.Requests()
	if ids(res) != "1,2,3" || len(reqs) != 2 {
		t.Fatalf("%s after %d requests", ids(res), len(reqs))
	}
	if gap := reqs[1].Time.Sub(reqs[0].Time); gap < 900*time.Millisecond {
		t.Fatalf("retried after %s despite Retry-After: 1", gap)
	}
}

func TestServerErrorsAreRetried(t *testing.T) {
	a := newAPI(t, 3)
	a.FailNext(fakeapi.ServerError(500), fakeapi.ServerError(503))
	h := sdktest.New(t, fast())
	res := syncRun(t, h, a.config(), "Offset", true, nil)
	if ids(res) != "1,2,3" || len(a.URIs()) != 4 {
		t.Fatalf("%s after %v", ids(res), a.URIs())
	}
}

func TestClientErrorFailsTheRunWithTheBody(t *testing.T) {
	a := newAPI(t, 5)
	body := `{"error":"forbidden: plan does not include posts"}` + strings.Repeat(".", 600) + "END"
	h := sdktest.New(t, fast())
	// The second page fails: the first is saved and checkpointed.
	a.FailNext(fakeapi.Failure{Match: "after=2", Status: 403, Body: body})
	res, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: a.config(), Sync: "Cursor", Full: true})
	if err == nil {
		t.Fatal("a 403 did not fail the run")
	}
	msg := err.Error()
	if !strings.Contains(msg, "model Cursor: GET "+a.URL+"/api/posts/cursor: 403 Forbidden: "+body[:100]) || strings.Contains(msg, "END") {
		t.Fatalf("error %q", msg)
	}
	if ids(res) != "1,2" || len(res.Checkpoints()) != 1 || len(a.URIs()) != 2 {
		t.Fatalf("saved %s; requests %v", ids(res), a.URIs())
	}
}

func sign(secret, body string) string { return fakeapi.SignHex(secret, []byte(body), "sha256=") }

func TestWebhooks(t *testing.T) {
	a := newAPI(t, 1)
	h := sdktest.New(t, fast())
	cfg := a.config()
	cfg["webhook_secret"] = "whsec-0123456789"
	body := `[{"model":"Cursor","action":"upsert","record":{"id":17,"title":"new"}},
	          {"model":"Cursor","action":"delete","id":"3"},
	          {"model":"Plain","action":"delete","id":4}]`
	good := sdktest.WebhookOptions{Config: cfg, Body: []byte(body), Header: http.Header{"X-Signature-256": {sign("whsec-0123456789", body)}}}
	if err := h.VerifyWebhook(t.Context(), good); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	res, err := h.HandleWebhook(t.Context(), good)
	if err != nil {
		t.Fatal(err)
	}
	if ids(res) != "17,-3,-4" || res.Changes[0].Model != "Cursor" || res.Changes[2].Model != "Plain" {
		t.Fatalf("changes %+v", res.Changes)
	}
	if string(res.Changes[0].Data) != `{"id":17,"title":"new"}` {
		t.Fatalf("record %s", res.Changes[0].Data)
	}

	bad := good
	bad.Header = http.Header{"X-Signature-256": {sign("another-secret", body)}}
	if err := h.VerifyWebhook(t.Context(), bad); err == nil || !strings.Contains(err.Error(), "signature does not match") {
		t.Fatalf("bad signature: %v", err)
	}
	missing := good
	missing.Header = nil
	if err := h.VerifyWebhook(t.Context(), missing); err == nil || !strings.Contains(err.Error(), "no X-Signature-256 header") {
		t.Fatalf("missing signature: %v", err)
	}
	tampered := good
	tampered.Body = []byte(strings.Replace(body, "new", "old", 1))
	if err := h.VerifyWebhook(t.Context(), tampered); err == nil {
		t.Fatal("tampered body accepted")
	}

	// Without a secret, nothing is accepted, signed or not.
	one := `{"model":"Page","action":"upsert","record":{"id":"x1"}}`
	for _, hdr := range []http.Header{nil, {"X-Signature-256": {sign("whsec-0123456789", one)}}} {
		open := sdktest.WebhookOptions{Config: a.config(), Body: []byte(one), Header: hdr}
		if err := h.VerifyWebhook(t.Context(), open); err == nil || !strings.Contains(err.Error(), "does not take payload webhooks") {
			t.Fatalf("a webhook to a source without webhook_secret: %v", err)
		}
		if _, err := h.HandleWebhook(t.Context(), open); err == nil {
			t.Fatal("HandleWebhook of a source without webhook_secret succeeded")
		}
	}
	// Signed but unusable changes are refused too.
	for body, want := range map[string]string{
		`{"model":"Nope","action":"upsert","record":{"id":1}}`: `model "Nope" is not one of the config's models`,
		`{"model":"Page","action":"upsert","record":{"x":1}}`:  `no id at "id"`,
		`{"model":"Page","action":"remove","id":"1"}`:          `action "remove" must be`,
		`{"model":"Page","action":"delete"}`:                   `a delete needs "id"`,
		`"hello"`:                                              `must be a change or an array of changes`,
	} {
		req := sdktest.WebhookOptions{Config: cfg, Body: []byte(body), Header: http.Header{"X-Signature-256": {sign("whsec-0123456789", body)}}}
		if err := h.VerifyWebhook(t.Context(), req); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", body, err, want)
		}
	}
}

// TestFullRunsFindDeletes: a full run writes every record the API still
// has, so that the host's track_deletes deletes the others.
func TestFullRunsFindDeletes(t *testing.T) {
	a := newAPI(t, 5)
	h := sdktest.New(t, fast())
	first := syncRun(t, h, a.config(), "Link", true, nil)
	a.remove(3)
	res := syncRun(t, h, a.config(), "Link", true, first.Checkpoint)
	if got := ids(res); got != "1,2,4,5" {
		t.Fatalf("full run after a delete: %s", got)
	}
}

func TestIDPathAndNumbers(t *testing.T) {
	srv := fakeapi.New(t)
	srv.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"items":[{"meta":{"uid":12345678901234567890},"n":1.50}]}`)
	})
	h := sdktest.New(t, fast())
	cfg := map[string]any{"base_url": srv.URL, "models": map[string]any{"Thing": map[string]any{"path": "/", "records": "items", "id": "meta.uid"}}}
	res := syncRun(t, h, cfg, "Thing", true, nil)
	if len(res.Changes) != 1 || res.Changes[0].ID != "12345678901234567890" || string(res.Changes[0].Data) != `{"id":"12345678901234567890","meta":{"uid":12345678901234567890},"n":1.50}` {
		t.Fatalf("%+v %s", res.Changes, res.Changes[0].Data)
	}
}

func TestCompareTimes(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"2026-01-02T03:04:05Z", "2026-01-02T04:04:05+01:00", 0},
		{"2026-01-02T03:04:05.5Z", "2026-01-02T03:04:05Z", 1},
		{"9", "10", -1},
		{"1700000000.25", "1700000000", 1},
		{"b", "a", 1},
	}
	for _, c := range cases {
		if got := compareTimes(c.a, c.b); got != c.want {
			t.Errorf("compareTimes(%s, %s) = %d", c.a, c.b, got)
		}
	}
}

func TestAcceptance(t *testing.T) {
	a := newAPI(t, 7)
	cfg := a.config()
	cfg["webhook_secret"] = "whsec-acceptance-secret"
	sdktest.Acceptance{
		Config: cfg,
		Change: func(tb testing.TB, sync string) {
			a.set(2, "post 2 edited for "+sync)
			a.set(100+len(a.posts), "new for "+sync)
		},
	}.Run(t, fast())
}
