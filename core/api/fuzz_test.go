package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	badgerstore "github.com/synclayer/synclayer/core/store/badger"

	"time"

	"github.com/synclayer/synclayer/internal/testbin"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
)

// Fuzz targets for what the API parses from the network: the query of
// GET …/records, and the inbound hooks. Both run against a real Server over
// a started engine (files and rest plugins, a fake upstream), requests going
// straight to ServeHTTP. Run one with
//
//	go test -run='^$' -fuzz='^FuzzHooks$' -fuzztime=30s ./core/api
//
// (or `make fuzz`). The seeds run with every plain `go test`.

// fuzzToken is the fuzz server's admin token: a fuzzed path that strays
// from the hooks into /v1 gets a 401 instead of changing anything.
const fuzzToken = "fuzz-admin-token"

// fuzzWebhookSecret is the rest source "signed"'s webhook_secret.
const fuzzWebhookSecret = "fuzz-webhook-secret"

// fuzzReadToken is an api_token of cat that reads the model Post only.
const fuzzReadToken = "fuzz-read-token"

// fuzzEnv is a Server over a started engine with two layers:
//
//	cat    (keep_revisions = 2) sources blog (files: Post p1…p3, edited
//	       twice, so revisions 1–3 and revision 1 gone), api (rest, payload
//	       webhooks without a secret) and signed (rest, with a secret);
//	       an api_token (fuzzReadToken) for the model Post
//	hooked one files source and one added trigger webhook, hookID
type fuzzEnv struct {
	srv    *Server
	eng    *engine.Engine
	hookID string
	// cursor is the cursor of the first record of cat, next the
	// next_cursor of the page holding only that record.
	cursor, next string
}

// pageToken is a next_cursor after env.cursor on revision rev.
func (env *fuzzEnv) pageToken(f *testing.F, rev int64) string {
	c, err := store.ParseCursor(env.cursor)
	if err != nil {
		f.Fatal(err)
	}
	return store.PageToken(c, rev)
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	dir := f.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := testbin.Build(bin, map[string]string{"files": "./plugins/files", "rest": "./plugins/rest"}); err != nil {
		f.Fatal(err)
	}

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `[{"id":"u1","title":"Upstream"}]`)
	}))
	f.Cleanup(upstream.Close)

	blog := filepath.Join(dir, "blog")
	if err := os.MkdirAll(blog, 0o755); err != nil {
		f.Fatal(err)
	}
	writePosts := func(posts string) {
		if err := os.WriteFile(filepath.Join(blog, "Post.json"), []byte(posts), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	writePosts(`[{"id":"p1","title":"One"},{"id":"p2","title":"Two"},{"id":"p3","title":"Three"}]`)
	cfgPath := filepath.Join(dir, "layers.hcl")
	hcl := fmt.Sprintf(`
plugin "files" { path = %[1]q }
plugin "rest"  { path = %[2]q }

layer "cat" {
  keep_revisions = 2
  keep_for       = "0s"
  source "blog" {
    plugin = "files"
    config { dir = %[3]q }
  }
  source "api" {
    plugin = "rest"
    config {
      base_url = %[4]q
      models   = { Post = { path = "/posts" } }
    }
  }
  source "signed" {
    plugin = "rest"
    config {
      base_url       = %[4]q
      webhook_secret = %[5]q
      models         = { Post = { path = "/posts" } }
    }
  }
  api_token "posts" {
    token_sha256 = %[6]q
    models       = ["Post"]
  }
}

layer "hooked" {
  source "blog" {
    plugin = "files"
    config { dir = %[3]q }
  }
}
`, filepath.Join(bin, "files"), filepath.Join(bin, "rest"), blog, upstream.URL, fuzzWebhookSecret, sha256Hex(fuzzReadToken))
	if err := os.WriteFile(cfgPath, []byte(hcl), 0o644); err != nil {
		f.Fatal(err)
	}
	cfg, diags := config.Load(cfgPath)
	if diags.HasErrors() {
		f.Fatal(config.FormatDiagnostics(diags))
	}
	st, err := badgerstore.Open(badgerstore.Options{Dir: filepath.Join(dir, "data")})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	pm := plugin.NewManager(plugin.Options{Declared: cfg.Plugins})
	e, err := engine.New(engine.Options{Config: cfg, Store: st, Plugins: pm})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e.Stop(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		f.Fatal(err)
	}
	srv, err := New(Options{Engine: e, Plugins: pm, Registry: prometheus.NewRegistry(), AdminToken: fuzzToken})
	if err != nil {
		f.Fatal(err)
	}
	env := &fuzzEnv{srv: srv, eng: e}

	// Revisions 1 (the startup run), 2 and 3 of cat; 1 is then gone.
	env.waitRuns(f, "cat")
	env.waitRuns(f, "hooked")
	for i, posts := range []string{
		`[{"id":"p1","title":"One, edited"},{"id":"p3","title":"Three"},{"id":"p4","title":"Four"}]`,
		`[{"id":"p1","title":"One, edited"},{"id":"p2","title":"Two, back"},{"id":"p4","title":"Four"}]`,
	} {
		writePosts(posts)
		if _, err := e.Trigger("cat", engine.TriggerRequest{Source: "blog", Trigger: engine.TriggerManual}); err != nil {
			f.Fatal(err)
		}
		env.waitRevision(f, "cat", int64(i+2))
	}
	h, err := e.AddWebhook("hooked", "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	env.hookID = h.ID

	var page struct {
		Records []struct {
			Metadata struct {
				Cursor string `json:"cursor"`
			} `json:"_metadata"`
		} `json:"records"`
		Next string `json:"next_cursor"`
	}
	w := env.serve(httptest.NewRequest("GET", "/v1/layers/cat/records?limit=1", nil))
	if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || len(page.Records) != 1 {
		f.Fatalf("first record of cat: %d %s", w.Code, w.Body)
	}
	env.cursor, env.next = page.Records[0].Metadata.Cursor, page.Next
	return env
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// serve sends r (with the admin token) to the server.
func (env *fuzzEnv) serve(r *http.Request) *httptest.ResponseRecorder {
	return env.serveAs(r, fuzzToken)
}

// serveAs sends r with a bearer token (none when empty) to the server.
func (env *fuzzEnv) serveAs(r *http.Request, token string) *httptest.ResponseRecorder {
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	env.srv.ServeHTTP(w, r)
	return w
}

// waitRuns waits until no run of the layer is queued or running.
func (env *fuzzEnv) waitRuns(f *testing.F, layer string) {
	f.Helper()
	fuzzWait(f, "the runs of "+layer, func() bool {
		st, err := env.eng.Layer(layer)
		if err != nil {
			f.Fatal(err)
		}
		if st.Revision == 0 {
			return false
		}
		for _, s := range st.Sources {
			for _, y := range s.Syncs {
				if y.State == engine.SyncQueued || y.State == engine.SyncRunning {
					return false
				}
			}
		}
		return true
	})
}

// waitRevision waits until the layer's current revision is n.
func (env *fuzzEnv) waitRevision(f *testing.F, layer string, n int64) {
	f.Helper()
	fuzzWait(f, fmt.Sprintf("revision %d of %s", n, layer), func() bool {
		st, err := env.eng.Layer(layer)
		if err != nil {
			f.Fatal(err)
		}
		return st.Revision >= n
	})
	env.waitRuns(f, layer)
}

func fuzzWait(f *testing.F, what string, cond func() bool) {
	f.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			f.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkAnswer checks what every answer owes: a status from want, JSON, and
// an error body {"error":{"code","message"}} on a status of 400 or more.
func checkAnswer(t *testing.T, what string, w *httptest.ResponseRecorder, want ...int) {
	t.Helper()
	ok := false
	for _, s := range want {
		ok = ok || w.Code == s
	}
	if !ok {
		t.Fatalf("%s: status %d, want one of %v: %s", what, w.Code, want, w.Body)
	}
	if w.Code == http.StatusNoContent || w.Code == http.StatusMovedPermanently {
		return
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q: %s", what, ct, w.Body)
	}
	if !json.Valid(w.Body.Bytes()) {
		t.Fatalf("%s: the answer is not JSON: %q", what, w.Body)
	}
	if w.Code >= 400 {
		var e errorBody
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("%s: error answer without code and message: %s", what, w.Body)
		}
	}
}

// FuzzRecordsQuery sends arbitrary query strings to parseRecordsQuery and
// to GET /v1/layers/{layer}/records: never a panic, never a 5xx. With the
// admin token: 200 with a well-formed page, or 400 (bad input), 404 (no
// such layer or revision), 410 (revision no longer kept); a page's
// next_cursor reads on. With cat's read token (who = 1) also 401 (another
// layer) and 403 (beyond its models); with no token (who = 2) only 401,
// or 404 when the layer name takes the path off the route.
func FuzzRecordsQuery(f *testing.F) {
	env := newFuzzEnv(f)
	for _, q := range []string{
		"",
		"model=Post",
		"model=Post&source=blog&limit=2",
		"limit=1&cursor=" + env.cursor,
		"cursor=" + env.cursor + "&revision=2",
		"limit=0", "limit=10001", "limit=-1", "limit=1e3", "limit=99999999999999999999",
		"revision=1", "revision=2", "revision=3", "revision=4", "revision=0", "revision=-5",
		"cursor=AAAAAQAAAAUAAAAH", "cursor=not-a-cursor", "cursor=%00%ff",
		"cursor=" + env.pageToken(f, 3), "cursor=" + env.pageToken(f, 3) + "&revision=2",
		"cursor=" + env.pageToken(f, 1), "cursor=" + env.pageToken(f, 99), "cursor=" + env.pageToken(f, -1),
		"cursor=---------------------------", "cursor=zzzzzzzzzzzzzzzzzzzzzzzzzzz",
		"cursor=" + env.next + "&model=Post",
		"modified_after=2026-11-23T07:05:00.000456Z", "modified_after=2026-11-23", "modified_after=9999-12-31T23:59:59Z",
		"modified_after=2026-11-23T07:05:00%2B02:00",
		"filter=added,updated,deleted", "filter=ADDED,+deleted", "filter=", "filter=added,,", "filter=nope",
		"model=Post&ids=p1,p2,+p3+,,nope", "ids=p1", "model=Post&ids=" + strings.Repeat("x,", 101),
		"model=Post&ids=p1,p2,p4,u1&limit=1",
		"model=Post&model=Product&limit=1&limit=2",
		"a=%zz&model=Post;limit=3", "%", "&&&=&=",
	} {
		f.Add(uint8(0), "cat", q)
	}
	f.Add(uint8(0), "hooked", "limit=1")
	f.Add(uint8(0), "nope", "model=Post")
	f.Add(uint8(0), "", "")
	f.Add(uint8(0), "c%2Fat", "")
	f.Add(uint8(1), "cat", "model=Post&limit=1")
	f.Add(uint8(1), "cat", "source=blog")
	f.Add(uint8(1), "hooked", "model=Post")
	f.Add(uint8(2), "cat", "model=Post")

	f.Fuzz(func(t *testing.T, who uint8, layer, query string) {
		// The parser alone: a 400 with an error body, or a query within
		// the limits and nothing written.
		r := httptest.NewRequest("GET", "/v1/layers/cat/records", nil)
		r.URL.RawQuery = query
		w := httptest.NewRecorder()
		q, ok := parseRecordsQuery(w, r)
		if !ok {
			checkAnswer(t, "parseRecordsQuery", w, http.StatusBadRequest)
		} else {
			if w.Body.Len() != 0 {
				t.Fatalf("parseRecordsQuery accepted %q but wrote %s", query, w.Body)
			}
			if q.Limit < 1 || q.Limit > MaxLimit || q.Revision < 0 || len(q.IDs) > MaxIDs || (len(q.IDs) > 0 && q.Model == "") {
				t.Fatalf("parseRecordsQuery(%q) = %+v", query, q)
			}
		}

		// The handler.
		if layer == "" || layer == "." || layer == ".." {
			return // not a path segment: the mux redirects to the clean path
		}
		token, want := fuzzToken, []int{http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusGone}
		switch who % 3 {
		case 1:
			token, want = fuzzReadToken, append(want, http.StatusUnauthorized, http.StatusForbidden)
		case 2:
			// 404: a layer name that takes the path off the route
			token, want = "", []int{http.StatusUnauthorized, http.StatusNotFound}
		}
		get := func(query string) *httptest.ResponseRecorder {
			r := httptest.NewRequest("GET", "/", nil)
			r.URL = &url.URL{Path: "/v1/layers/" + layer + "/records", RawPath: "/v1/layers/" + url.PathEscape(layer) + "/records", RawQuery: query}
			r.RequestURI = r.URL.RequestURI()
			w := env.serveAs(r, token)
			checkAnswer(t, fmt.Sprintf("GET records of %q ?%s", layer, query), w, want...)
			return w
		}
		w = get(query)
		if w.Code != http.StatusOK {
			return
		}
		next := checkPage(t, w, q)
		if next == "" {
			return
		}
		// Read on from next_cursor: the same query, on the same revision.
		v, _ := url.ParseQuery(query)
		v.Set("cursor", next)
		if w := get(v.Encode()); w.Code != http.StatusOK {
			t.Fatalf("next_cursor %q of %q: status %d: %s", next, query, w.Code, w.Body)
		}
	})
}

// checkPage checks a page of records and returns its next_cursor.
func checkPage(t *testing.T, w *httptest.ResponseRecorder, q store.Query) string {
	t.Helper()
	var page struct {
		Records []struct {
			ID       json.RawMessage `json:"id"`
			Metadata *struct {
				Source     string `json:"source"`
				Model      string `json:"model"`
				Cursor     string `json:"cursor"`
				LastAction string `json:"last_action"`
				Revision   int64  `json:"revision"`
			} `json:"_metadata"`
		} `json:"records"`
		NextCursor *string `json:"next_cursor"`
		Revision   int64   `json:"revision"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
		t.Fatalf("page: %v: %s", err, w.Body)
	}
	limit := q.Limit
	if page.Records == nil || page.Revision < 1 || len(page.Records) > limit {
		t.Fatalf("page of %d records (limit %d), revision %d: %s", len(page.Records), q.Limit, page.Revision, w.Body)
	}
	last := ""
	for _, rec := range page.Records {
		m := rec.Metadata
		if m == nil || m.Cursor <= last || m.Source == "" || m.Model == "" || m.Revision > page.Revision ||
			(q.Model != "" && m.Model != q.Model) || (q.Source != "" && m.Source != q.Source) {
			t.Fatalf("record without proper _metadata, out of cursor order, or not asked for: %s", w.Body)
		}
		switch m.LastAction {
		case "ADDED", "UPDATED", "DELETED":
		default:
			t.Fatalf("last_action %q", m.LastAction)
		}
		last = m.Cursor
	}
	if page.NextCursor == nil {
		return ""
	}
	if len(page.Records) == 0 {
		t.Fatalf("an empty page with a next_cursor: %s", w.Body)
	}
	return *page.NextCursor
}

// FuzzHooks sends arbitrary requests to the inbound hooks: trigger hooks
// (default and added, both path families) and payload webhooks of sources.
// Never a panic, never a 5xx: 202 (a run will carry it, or the payload is
// on disk), 401 (the connector refused the payload), 404 (no such layer,
// hook or source, or the path is not a hook), 413 (body too large).
//
// kind picks the route: 0 /hooks/layers/{layer}, 1 …/{layer}/{hook},
// 2 /hooks/data_layer/data_source/publish/{layer}, 3 …/{layer}/{hook},
// 4 /hooks/sources/{layer}/{source}, else /hooks/{layer}/{hook}. header is
// "Name: value" lines; lines that HTTP would not carry are dropped.
func FuzzHooks(f *testing.F) {
	env := newFuzzEnv(f)
	sign := func(body string) string {
		m := hmac.New(sha256.New, []byte(fuzzWebhookSecret))
		m.Write([]byte(body))
		return "X-Signature-256: sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	upsert := `{"model":"Post","action":"upsert","record":{"id":"w1","title":"From a hook"}}`
	del := `[{"model":"Post","action":"delete","id":"w1"},{"model":"Post","action":"delete","id":17}]`
	for _, s := range []struct {
		method       string
		kind         uint8
		layer, id    string
		header, body string
	}{
		{"POST", 0, "cat", "", "", ""},
		{"POST", 0, "cat", "", "X-Data-Source: blog", "ignored"},
		{"POST", 0, "cat", "", "X-Connect-Data-Source: api", ""},
		{"POST", 0, "cat", "", "X-Data-Source: nope", ""},
		{"POST", 0, "hooked", "", "", ""},
		{"POST", 1, "hooked", env.hookID, "", ""},
		{"POST", 1, "hooked", env.hookID, "X-Data-Source:  blog ", "{}"},
		{"POST", 1, "hooked", "0000000000000000", "", ""},
		{"POST", 1, "cat", env.hookID, "", ""},
		{"POST", 2, "cat", "", "", ""},
		{"POST", 3, "hooked", env.hookID, "", ""},
		{"POST", 0, "nope", "", "", ""},
		{"GET", 0, "cat", "", "", ""},
		{"PUT", 4, "cat", "api", "", upsert},
		{"POST", 4, "cat", "api", "Content-Type: application/json", upsert},
		{"POST", 4, "cat", "api", "", del},
		{"POST", 4, "cat", "api", "", `{"model":"Nope","action":"upsert","record":{}}`},
		{"POST", 4, "cat", "api", "", `[`},
		{"POST", 4, "cat", "api", "", ``},
		{"POST", 4, "cat", "signed", sign(upsert), upsert},
		{"POST", 4, "cat", "signed", sign(upsert) + "\nX-Signature-256: sha256=00", upsert},
		{"POST", 4, "cat", "signed", "X-Signature-256: sha256=zz", upsert},
		{"POST", 4, "cat", "blog", "", upsert},
		{"POST", 4, "cat", "nope", "", upsert},
		{"POST", 4, "nope", "api", "", upsert},
		{"POST", 5, "cat", "api", "", upsert},
		{"POST", 0, "c%2Fat", "", "", ""},
		{"POST", 4, "cat", "api", "X-Odd: \xff\xfe", upsert}, // not UTF-8: once a 500
	} {
		f.Add(s.method, s.kind, s.layer, s.id, s.header, []byte(s.body))
	}

	f.Fuzz(func(t *testing.T, method string, kind uint8, layer, id, header string, body []byte) {
		if !validToken(method) {
			return // the server would answer 400 before any handler
		}
		for _, seg := range []string{layer, id} {
			if seg == "" || seg == "." || seg == ".." {
				return // not a path segment: the mux redirects to the clean path
			}
		}
		var parts []string
		switch kind {
		case 0:
			parts = []string{"hooks", "layers", layer}
		case 1:
			parts = []string{"hooks", "layers", layer, id}
		case 2:
			parts = []string{"hooks", "data_layer", "data_source", "publish", layer}
		case 3:
			parts = []string{"hooks", "data_layer", "data_source", "publish", layer, id}
		case 4:
			parts = []string{"hooks", "sources", layer, id}
		default:
			parts = []string{"hooks", layer, id}
		}
		var raw []string
		for _, p := range parts {
			raw = append(raw, url.PathEscape(p))
		}
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		r.Method = method
		r.URL = &url.URL{Path: "/" + strings.Join(parts, "/"), RawPath: "/" + strings.Join(raw, "/")}
		r.RequestURI = r.URL.RequestURI()
		r.Header = http.Header{}
		for _, line := range strings.Split(header, "\n") {
			name, value, ok := strings.Cut(line, ":")
			value = strings.Trim(value, " \t\r")
			if ok && validToken(name) && validFieldValue(value) {
				r.Header.Add(name, value)
			}
		}
		w := httptest.NewRecorder()
		env.srv.ServeHTTP(w, r)
		checkAnswer(t, fmt.Sprintf("%s %s", method, r.URL.EscapedPath()), w,
			http.StatusAccepted, http.StatusUnauthorized, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge)
		if w.Code == http.StatusMethodNotAllowed && w.Header().Get("Allow") != "POST" {
			t.Errorf("%s %s: 405 with Allow %q, want POST", method, r.URL.EscapedPath(), w.Header().Get("Allow"))
		}
	})
}

// validToken reports whether s is an HTTP token (a method or a header
// name, RFC 9110 §5.6.2).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// validFieldValue reports whether net/http would accept s as a header
// value: no control characters but tab (bytes ≥ 0x80 are allowed).
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
