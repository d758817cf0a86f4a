package graphql

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	badgerstore "github.com/synclayer/synclayer/core/store/badger"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/store"
)

// testLayerHCL is the layer the tests serve: posts in one source, authors
// in another, joined by a reference both ways.
const testLayerHCL = `
layer "site" {
  source "blog" { plugin = "files" }
  source "people" { plugin = "files" }
  reference "Post.author" {
    field   = "author_id"
    to      = "Author"
    reverse = "posts"
  }
  reference "Post.editors" {
    field = "editor_emails"
    to    = "Author"
    by    = "email"
  }
  index "Post" { fields = ["slug"] }
}
`

type harness struct {
	t      testing.TB
	st     store.Store
	layer  store.Layer
	cfg    *config.Layer
	models map[string][]Model
	svc    *Service
	// ref runs every query on graphql-go's executor alone: the answers of
	// svc are compared with its answers (sameAnswer).
	ref *Service
}

func newHarness(t testing.TB, hcl string, opts Options) *harness {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "layer.hcl")
	if err := os.WriteFile(p, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(p)
	if diags.HasErrors() {
		t.Fatal(config.FormatDiagnostics(diags))
	}
	st, err := badgerstore.Open(badgerstore.Options{Dir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := st.Layer(cfg.Layers[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	ref := New(opts)
	ref.graphqlGo = true
	h := &harness{t: t, st: st, layer: l, cfg: cfg.Layers[0], svc: New(opts), ref: ref,
		models: map[string][]Model{
			"blog":   {{Name: "Post", Fields: []ModelField{{Name: "title", Type: "string"}, {Name: "views", Type: "integer"}}}},
			"people": {{Name: "Author", Fields: []ModelField{{Name: "name", Type: "string"}}}},
		}}
	if err := l.SetFieldIndexes(FieldIndexes(h.cfg, h.models)); err != nil {
		t.Fatal(err)
	}
	return h
}

// publish stages and publishes one run of JSON records per source:
// changes["blog"] = {"Post/p1": `{...}`, "Post/p2": ""} ("" deletes).
func (h *harness) publish(changes map[string]map[string]string) int64 {
	h.t.Helper()
	st, err := h.layer.BeginStaging(fmt.Sprintf("run_%d", time.Now().UnixNano()))
	if err != nil {
		h.t.Fatal(err)
	}
	var sources []string
	for src, recs := range changes {
		sources = append(sources, src)
		w := st.Writer(src, store.WriterOptions{})
		var cs []store.Change
		for key, body := range recs {
			model, id, _ := strings.Cut(key, "/")
			cs = append(cs, store.Change{Model: model, ID: id, Data: []byte(body), Delete: body == ""})
		}
		if err := w.Apply(cs); err != nil {
			h.t.Fatal(err)
		}
	}
	rev, err := st.Publish(store.PublishInfo{Trigger: "manual", Sources: sources})
	if err != nil {
		h.t.Fatal(err)
	}
	return rev.Number
}

// answer is a decoded GraphQL answer.
type answer struct {
	Status int
	ETag   string
	Data   map[string]any `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
	Extensions map[string]any `json:"extensions"`
	Raw        string
}

func (a *answer) code() string {
	if len(a.Errors) == 0 {
		return ""
	}
	c, _ := a.Errors[0].Extensions["code"].(string)
	return c
}

// do sends one request to the service and decodes the answer.
func (h *harness) do(r *http.Request, rev int64, scope Scope) *answer {
	h.t.Helper()
	w := httptest.NewRecorder()
	h.svc.ServeHTTP(w, r, Env{Config: h.cfg, Models: h.models, Store: h.layer}, rev, scope)
	a := &answer{Status: w.Code, ETag: w.Header().Get("ETag"), Raw: w.Body.String()}
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), a); err != nil {
			h.t.Fatalf("answer is not JSON: %v\n%s", err, w.Body.String())
		}
	}
	return a
}

// query POSTs a query on revision rev (0: current) with full scope.
func (h *harness) query(rev int64, q string, vars map[string]any) *answer {
	h.t.Helper()
	return h.queryAs(rev, Scope{All: true}, q, vars)
}

func (h *harness) queryAs(rev int64, scope Scope, q string, vars map[string]any) *answer {
	h.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
	mk := func() *http.Request {
		r := httptest.NewRequest("POST", "/graphql", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	a := h.do(mk(), rev, scope)
	w := httptest.NewRecorder()
	h.ref.ServeHTTP(w, mk(), Env{Config: h.cfg, Models: h.models, Store: h.layer}, rev, scope)
	if err := sameAnswer(w, a.Status, a.ETag, []byte(a.Raw), q); err != nil {
		h.t.Fatalf("%s\nquery: %s %v", err, q, vars)
	}
	if a.Status == 200 && a.Data != nil { // executed: it passed parsing, validation and the limits
		h.recordForJS(rev, scope, q)
	}
	return a
}

// ok runs a query that must succeed and returns its data.
func (h *harness) ok(rev int64, q string, vars map[string]any) map[string]any {
	h.t.Helper()
	a := h.query(rev, q, vars)
	if a.Status != 200 || len(a.Errors) > 0 {
		h.t.Fatalf("query failed (%d):\n%s\n%s", a.Status, q, a.Raw)
	}
	return a.Data
}

// sameAnswer compares an answer with graphql-go's answer to the same
// request (ref): status, ETag, data and errors (message, path and code;
// in any order), whatever order the answers write object members in.
// Queries that introspect run on graphql-go alone either way (and it
// lists types in map order), so only their status and ETag are compared.
func sameAnswer(ref *httptest.ResponseRecorder, status int, etag string, body []byte, query string) error {
	refBody := ref.Body.Bytes()
	if strings.Contains(query, "__schema") || strings.Contains(query, "__type") {
		body, refBody = nil, nil
	}
	if ref.Code != status || ref.Header().Get("ETag") != etag {
		return fmt.Errorf("status %d etag %q, graphql-go answered %d %q", status, etag, ref.Code, ref.Header().Get("ETag"))
	}
	norm := func(b []byte) (string, error) {
		var v struct {
			Data       any `json:"data"`
			Extensions any `json:"extensions"`
			Error      any `json:"error"`
			Errors     []struct {
				Message    string         `json:"message"`
				Path       []any          `json:"path"`
				Locations  any            `json:"locations"`
				Extensions map[string]any `json:"extensions"`
			} `json:"errors"`
		}
		if len(b) == 0 {
			return "", nil
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return "", fmt.Errorf("answer is not JSON: %v: %s", err, b)
		}
		var errs []string
		for _, e := range v.Errors {
			// graphql-go's validation lists its suggestions in map order
			msg, _, _ := strings.Cut(e.Message, " Did you mean ")
			errs = append(errs, js([]any{msg, e.Path, e.Locations, e.Extensions}))
		}
		sort.Strings(errs)
		return js([]any{v.Data, v.Extensions, v.Error, errs}), nil
	}
	got, err := norm(body)
	if err != nil {
		return err
	}
	want, err := norm(refBody)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("the answer differs from graphql-go's:\n got: %s\nwant: %s\nraw: %s\nref raw: %s", got, want, body, refBody)
	}
	return nil
}

// js renders a value as compact JSON, for comparisons.
func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
