package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "Bearer t0ken-of-the-api"

// post is a record of the fake API.
type post struct {
	ID        int    `json:"id"`
	Title     string `json:"title"`
	UpdatedAt string `json:"updated_at"`
}

// fakeAPI serves /posts/{cursor,offset,page,link,plain} from one list,
// filtered by ?updated_since= (inclusive) and ordered by id, two records
// per page. It records every request and can be told to fail some.
type fakeAPI struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	posts    map[int]post
	clock    time.Time
	requests []string
	times    []time.Time
	// failures answers the next requests with these statuses, in order.
	failures []failure
}

type failure struct {
	on     string // fails only a request whose URI contains it ("" any)
	status int
	body   string
	header map[string]string
}

func newAPI(t *testing.T, n int) *fakeAPI {
	a := &fakeAPI{t: t, posts: map[int]post{}, clock: time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)}
	for i := 1; i <= n; i++ {
		a.set(i, fmt.Sprintf("post %d", i))
	}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
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

func (a *fakeAPI) failNext(f ...failure) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failures = append(a.failures, f...)
}

func (a *fakeAPI) log() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.requests...)
}

func (a *fakeAPI) resetLog() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests, a.times = nil, nil
}

func (a *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests = append(a.requests, r.URL.RequestURI())
	a.times = append(a.times, time.Now())
	if r.Header.Get("Authorization") != token {
		a.mu.Unlock()
		http.Error(w, `{"error":"bad token"}`, http.StatusUnauthorized)
		return
	}
	if len(a.failures) > 0 && strings.Contains(r.URL.RequestURI(), a.failures[0].on) {
		f := a.failures[0]
		a.failures = a.failures[1:]
		a.mu.Unlock()
		for k, v := range f.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(f.status)
		fmt.Fprint(w, f.body)
		return
	}
	q := r.URL.Query()
	var list []post
	for _, p := range a.posts {
		if s := q.Get("updated_since"); s == "" || p.UpdatedAt >= s {
			list = append(list, p)
		}
	}
	a.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	from := func(i, n int) []post {
		if i >= len(list) {
			return []post{}
		}
		return list[i:min(i+n, len(list))]
	}
	enc := json.NewEncoder(w)
	switch r.URL.Path {
	case "/api/posts/cursor":
		i, _ := strconv.Atoi(q.Get("after"))
		next := ""
		if i+2 < len(list) {
			next = strconv.Itoa(i + 2)
		}
		enc.Encode(map[string]any{"data": from(i, 2), "meta": map[string]any{"next_cursor": next}})
	case "/api/posts/offset":
		off, _ := strconv.Atoi(q.Get("offset"))
		lim, _ := strconv.Atoi(q.Get("limit"))
		enc.Encode(from(off, lim))
	case "/api/posts/page":
		p, _ := strconv.Atoi(q.Get("page"))
		enc.Encode(map[string]any{"result": map[string]any{"items": from((p-1)*2, 2)}})
	case "/api/posts/link":
		p, _ := strconv.Atoi(q.Get("p"))
		if (p+1)*2 < len(list) {
			nq := r.URL.Query()
			nq.Set("p", strconv.Itoa(p+1))
			w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, nq.Encode()))
		}
		enc.Encode(from(p*2, 2))
	case "/api/posts/plain":
		enc.Encode(list)
	default:
		http.NotFound(w, r)
	}
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
		"base_url": a.srv.URL + "/api/",
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
		"Link":   {"/api/posts/link", "/api/posts/link?p=1", "/api/posts/link?p=2"},
		"Plain":  {"/api/posts/plain"},
	}
	for model, want := range cases {
		a.resetLog()
		res := syncRun(t, h, a.config(), model, true, nil)
		if got := ids(res); got != "1,2,3,4,5" {
			t.Errorf("%s: ids %s", model, got)
		}
		if got := a.log(); strings.Join(got, " ") != strings.Join(want, " ") {
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
			max := a.posts[5].UpdatedAt
			if s, _ := full.Checkpoint.GetString("since"); s != max {
				t.Fatalf("checkpoint %v, want since %s", full.Checkpoint, max)
			}

			// Nothing changed: the API answers post 5 again (its since is
			// inclusive); the connector skips it.
			a.resetLog()
			res := syncRun(t, h, a.config(), model, false, full.Checkpoint)
			if ids(res) != "" {
				t.Fatalf("unchanged upstream: %s", ids(res))
			}
			if !strings.Contains(a.log()[0], "updated_since="+strings.ReplaceAll(max, ":", "%3A")) {
				t.Fatalf("no since param: %v", a.log())
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
	a.resetLog()
	res := syncRun(t, h, a.config(), "Cursor", true, part.Checkpoint)
	if ids(res) != "3,4,5" || a.log()[0] != "/api/posts/cursor?after=2" {
		t.Fatalf("resumed: %s after %v", ids(res), a.log())
	}
	if s, _ := res.Checkpoint.GetString("since"); s != a.posts[5].UpdatedAt {
		t.Fatalf("final checkpoint %v", res.Checkpoint)
	}
}

func TestRetryAfter429(t *testing.T) {
	a := newAPI(t, 3)
	a.failNext(failure{status: 429, body: "slow down", header: map[string]string{"Retry-After": "1"}})
	h := sdktest.New(t, fast())
	res := syncRun(t, h, a.config(), "Plain", true, nil)
	if ids(res) != "1,2,3" || len(a.times) != 2 {
		t.Fatalf("%s after %d requests", ids(res), len(a.times))
	}
	if gap := a.times[1].Sub(a.times[0]); gap < 900*time.Millisecond {
		t.Fatalf("retried after %s despite Retry-After: 1", gap)
	}
}

func TestServerErrorsAreRetried(t *testing.T) {
	a := newAPI(t, 3)
	a.failNext(failure{status: 500, body: "oops"}, failure{status: 503, body: "busy"})
	h := sdktest.New(t, fast())
	res := syncRun(t, h, a.config(), "Offset", true, nil)
	if ids(res) != "1,2,3" || len(a.log()) != 4 {
		t.Fatalf("%s after %v", ids(res), a.log())
	}
}

func TestClientErrorFailsTheRunWithTheBody(t *testing.T) {
	a := newAPI(t, 5)
	body := `{"error":"forbidden: plan does not include posts"}` + strings.Repeat(".", 600) + "END"
	h := sdktest.New(t, fast())
	// The second page fails: the first is saved and checkpointed.
	a.failNext(failure{on: "after=2", status: 403, body: body})
	res, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: a.config(), Sync: "Cursor", Full: true})
	if err == nil {
		t.Fatal("a 403 did not fail the run")
	}
	msg := err.Error()
	if !strings.Contains(msg, "model Cursor: GET "+a.srv.URL+"/api/posts/cursor: 403 Forbidden: "+body[:100]) || strings.Contains(msg, "END") {
		t.Fatalf("error %q", msg)
	}
	if ids(res) != "1,2" || len(res.Checkpoints()) != 1 || len(a.log()) != 2 {
		t.Fatalf("saved %s; requests %v", ids(res), a.log())
	}
}

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

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
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"items":[{"meta":{"uid":12345678901234567890},"n":1.50}]}`)
	}))
	defer srv.Close()
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
