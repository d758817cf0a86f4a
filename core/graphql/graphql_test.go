package graphql

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func seed(h *harness) int64 {
	return h.publish(map[string]map[string]string{
		"blog": {
			"Post/p1": `{"id":"p1","title":"Hello","slug":"hello","author_id":"a1","views":10,"score":1.5,"published":true,"tags":["intro","news"],"editor_emails":["grace@example.com"]}`,
			"Post/p2": `{"id":"p2","title":"Layers","slug":"layers","author_id":"a2","views":3,"score":2,"published":true,"tags":["config"],"meta":{"x":1}}`,
			"Post/p3": `{"id":"p3","title":"Drafts","slug":"drafts","author_id":"a1","views":7,"score":0.5,"published":false,"meta":"text"}`,
			"Post/p4": `{"id":"p4","title":"Gone","slug":"gone","author_id":"a1","views":1}`,
		},
		"people": {
			"Author/a1": `{"id":"a1","name":"Ada","email":"ada@example.com"}`,
			"Author/a2": `{"id":"a2","name":"Grace","email":"grace@example.com"}`,
		},
	})
}

// Records of two sources joined by a reference, both directions; the
// forward field by id, by another attribute (an index) and the reverse
// list (an index).
func TestReferencesAcrossSources(t *testing.T) {
	h := newHarness(t, testLayerHCL, Options{})
	seed(h)
	h.publish(map[string]map[string]string{"blog": {"Post/p4": ""}}) // deleted: left out everywhere
	d := h.ok(0, `{ post(id: "p1") { id title author { id name } editors { name } } }`, nil)
	if got := js(d["post"]); got != `{"author":{"id":"a1","name":"Ada"},"editors":[{"name":"Grace"}],"id":"p1","title":"Hello"}` {
		t.Fatalf("forward: %s", got)
	}
	d = h.ok(0, `{ allAuthor { nodes { id posts { id author { name } } } } }`, nil)
	if got := js(d["allAuthor"]); got != `{"nodes":[{"id":"a1","posts":[{"author":{"name":"Ada"},"id":"p1"},{"author":{"name":"Ada"},"id":"p3"}]},{"id":"a2","posts":[{"author":{"name":"Grace"},"id":"p2"}]}]}` {
		t.Fatalf("reverse: %s", got)
	}
	d = h.ok(0, `{ author(id: "a1") { posts(limit: 1, skip: 1) { id } } }`, nil)
	if got := js(d["author"]); got != `{"posts":[{"id":"p3"}]}` {
		t.Fatalf("reverse paged: %s", got)
	}
	if d := h.ok(0, `{ post(id: "p4") { id } }`, nil); d["post"] != nil {
		t.Fatalf("deleted record served: %v", d)
	}
}

func TestTypesAndFields(t *testing.T) {
	h := newHarness(t, testLayerHCL, Options{})
	seed(h)
	d := h.ok(0, `{ __type(name: "Post") { fields { name type { name kind ofType { name } } } } }`, nil)
	types := map[string]string{}
	for _, f := range d["__type"].(map[string]any)["fields"].([]any) {
		f := f.(map[string]any)
		ty := f["type"].(map[string]any)
		name, _ := ty["name"].(string)
		if name == "" {
			if of, ok := ty["ofType"].(map[string]any); ok {
				name, _ = of["name"].(string)
				name = ty["kind"].(string) + ":" + name
			}
		}
		types[f["name"].(string)] = name
	}
	want := map[string]string{"id": "NON_NULL:ID", "_metadata": "NON_NULL:RecordMetadata", "title": "String", "slug": "String",
		"views": "Int", "score": "Float", "published": "Boolean", "tags": "JSON", "meta": "JSON", "author": "Author", "editors": "LIST:Author"}
	for k, v := range want {
		if types[k] != v {
			t.Errorf("Post.%s: %q, want %q (all: %v)", k, types[k], v, types)
		}
	}
	if _, ok := types["author_id"]; !ok {
		t.Error("Post.author_id missing: the attribute stays beside its reference")
	}
	d = h.ok(0, `{ post(id: "p2") { meta tags score _metadata { source model last_action deleted_at revision cursor connection } } }`, nil)
	if got := js(d["post"]); !strings.Contains(got, `"meta":{"x":1}`) || !strings.Contains(got, `"tags":["config"]`) || !strings.Contains(got, `"score":2`) ||
		!strings.Contains(got, `"source":"blog","model":"Post"`) && !strings.Contains(got, `"model":"Post"`) {
		t.Fatalf("values: %s", got)
	}
}

func TestFiltersSortAndPaging(t *testing.T) {
	h := newHarness(t, testLayerHCL, Options{})
	seed(h)
	ids := func(q string, vars map[string]any) string {
		t.Helper()
		d := h.ok(0, q, vars)
		var out []string
		for _, v := range d {
			for _, n := range v.(map[string]any)["nodes"].([]any) {
				out = append(out, n.(map[string]any)["id"].(string))
			}
		}
		return strings.Join(out, ",")
	}
	cases := []struct{ filter, want string }{
		{`{slug: {eq: "layers"}}`, "p2"},                       // index
		{`{slug: {in: ["layers", "hello", "nope"]}}`, "p1,p2"}, // index
		{`{id: {in: ["p3", "p1", "p1"]}}`, "p1,p3"},
		{`{slug: {ne: "layers"}}`, "p1,p3,p4"},
		{`{slug: {nin: ["layers", "hello"]}}`, "p3,p4"},
		{`{views: {gt: 3}}`, "p1,p3"},
		{`{views: {gte: 3, lt: 10}}`, "p2,p3"},
		{`{score: {lte: 1.5}}`, "p1,p3"},
		{`{title: {contains: "ay"}}`, "p2"},
		{`{tags: {contains: "news"}}`, "p1"},
		{`{published: {eq: false}}`, "p3"},
		{`{published: {exists: false}}`, "p4"},
		{`{meta: {eq: {x: 1}}}`, "p2"},
		{`{or: [{slug: {eq: "hello"}}, {views: {lt: 2}}]}`, "p1,p4"},
		{`{or: [{slug: {eq: "hello"}}, {slug: {eq: "drafts"}}]}`, "p1,p3"}, // index union
		{`{and: [{author_id: {eq: "a1"}}, {slug: {in: ["hello", "layers"]}}]}`, "p1"},
		{`{slug: {eq: "hello"}, views: {gt: 100}}`, ""},
	}
	for _, c := range cases {
		if got := ids(`{ allPost(filter: `+c.filter+`) { nodes { id } } }`, nil); got != c.want {
			t.Errorf("filter %s: %q, want %q", c.filter, got, c.want)
		}
	}
	if got := ids(`query($f: PostFilter) { allPost(filter: $f) { nodes { id } } }`, map[string]any{"f": map[string]any{"views": map[string]any{"in": []any{10, 7}}}}); got != "p1,p3" {
		t.Errorf("filter from variables: %q", got)
	}
	if got := ids(`{ allPost(sort: [{field: views, order: DESC}]) { nodes { id } } }`, nil); got != "p1,p3,p2,p4" {
		t.Errorf("sort: %q", got)
	}
	if got := ids(`{ allPost(sort: [{field: published}, {field: id, order: DESC}]) { nodes { id } } }`, nil); got != "p4,p3,p2,p1" {
		t.Errorf("sort by two keys: %q", got)
	}
	// Paging: id order by keyset, sorted order by offset; totalCount over
	// every page.
	for _, sortArg := range []string{"", `sort: [{field: views}],`} {
		var seen []string
		after := ""
		for page := 0; page < 5; page++ {
			d := h.ok(0, `query($after: String) { allPost(`+sortArg+` limit: 3, after: $after) { totalCount nodes { id } pageInfo { hasNextPage endCursor } } }`, map[string]any{"after": after})
			c := d["allPost"].(map[string]any)
			if c["totalCount"].(float64) != 4 {
				t.Fatalf("totalCount %v", c["totalCount"])
			}
			for _, n := range c["nodes"].([]any) {
				seen = append(seen, n.(map[string]any)["id"].(string))
			}
			pi := c["pageInfo"].(map[string]any)
			if pi["hasNextPage"] != true {
				break
			}
			after = pi["endCursor"].(string)
		}
		if want := map[string]string{"": "p1,p2,p3,p4", `sort: [{field: views}],`: "p4,p2,p3,p1"}[sortArg]; strings.Join(seen, ",") != want {
			t.Errorf("walk with %q: %v, want %s", sortArg, seen, want)
		}
	}
	d := h.ok(0, `{ allPost(filter: {views: {gt: 3}}, skip: 1) { totalCount nodes { id } } }`, nil)
	if got := js(d["allPost"]); got != `{"nodes":[{"id":"p3"}],"totalCount":2}` {
		t.Errorf("skip and filtered count: %s", got)
	}
	d = h.ok(0, `{ allPost(connection: "acme") { totalCount nodes { id } } post(id: "p1", connection: "") { id } }`, nil)
	if got := js(d); got != `{"allPost":{"nodes":[],"totalCount":0},"post":{"id":"p1"}}` {
		t.Errorf("connection: %s", got)
	}
}

// The schema belongs to the revision: a model added later is absent from
// the earlier revision's schema, and each revision answers its own data.
func TestSchemaPerRevisionPinAndETag(t *testing.T) {
	h := newHarness(t, testLayerHCL, Options{})
	r1 := h.publish(map[string]map[string]string{"blog": {"Post/p1": `{"id":"p1","title":"One","slug":"one"}`}})
	if a := h.query(0, `{ allAuthor { nodes { id } } }`, nil); a.code() != CodeValidationFailed {
		t.Fatalf("Author before it has records: %s", a.Raw)
	}
	r2 := h.publish(map[string]map[string]string{
		"people": {"Author/a1": `{"id":"a1","name":"Ada"}`},
		"blog":   {"Post/p1": `{"id":"p1","title":"Two","slug":"one","author_id":"a1","words":5}`},
	})
	if d := h.ok(0, `{ post(id: "p1") { title words author { name } } }`, nil); js(d) != `{"post":{"author":{"name":"Ada"},"title":"Two","words":5}}` {
		t.Fatalf("newest: %s", js(d))
	}
	old := h.query(r1, `{ post(id: "p1") { title words } }`, nil)
	if old.code() != CodeValidationFailed || !strings.Contains(old.Raw, "words") {
		t.Fatalf("revision %d knows a field added later: %s", r1, old.Raw)
	}
	if d := h.ok(r1, `{ post(id: "p1") { title } allPost(filter: {slug: {eq: "one"}}) { nodes { title } } }`, nil); js(d) != `{"allPost":{"nodes":[{"title":"One"}]},"post":{"title":"One"}}` {
		t.Fatalf("old revision: %s", js(d))
	}
	if err := h.layer.Pin(r1); err != nil {
		t.Fatal(err)
	}
	a := h.query(0, `{ post(id: "p1") { title } }`, nil)
	if js(a.Data) != `{"post":{"title":"One"}}` || a.Extensions["revision"].(float64) != float64(r1) {
		t.Fatalf("pinned: %s", a.Raw)
	}
	if _, err := h.layer.Unpin(); err != nil {
		t.Fatal(err)
	}
	a = h.query(0, `{ post(id: "p1") { title } }`, nil)
	if js(a.Data) != `{"post":{"title":"Two"}}` || a.Extensions["revision"].(float64) != float64(r2) || a.ETag == "" {
		t.Fatalf("unpinned: %s", a.Raw)
	}
	// ETag and If-None-Match, by GET.
	get := func(etag string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/graphql?query="+url.QueryEscape(`{ post(id: "p1") { title } }`), nil)
		if etag != "" {
			r.Header.Set("If-None-Match", etag)
		}
		w := httptest.NewRecorder()
		h.svc.ServeHTTP(w, r, Env{Config: h.cfg, Models: h.models, Store: h.layer}, 0, Scope{All: true})
		return w
	}
	if w := get(""); w.Code != 200 || w.Header().Get("ETag") != a.ETag {
		t.Fatalf("GET: %d etag %q, POST had %q", w.Code, w.Header().Get("ETag"), a.ETag)
	}
	if w := get(a.ETag); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Fatalf("If-None-Match: %d %s", w.Code, w.Body.String())
	}
	h.publish(map[string]map[string]string{"blog": {"Post/p1": `{"id":"p1","title":"Three","slug":"one"}`}})
	if w := get(a.ETag); w.Code != 200 || !strings.Contains(w.Body.String(), "Three") {
		t.Fatalf("after a new revision: %d %s", w.Code, w.Body.String())
	}
	// A cursor of one revision is refused on another, with the way out.
	d := h.ok(r2, `{ allPost(limit: 0) { pageInfo { endCursor } } }`, nil)
	_ = d
	p := h.ok(r2, `{ allPost(limit: 1) { pageInfo { endCursor } } }`, nil)
	cur := p["allPost"].(map[string]any)["pageInfo"].(map[string]any)["endCursor"].(string)
	if a := h.query(0, `query($a: String) { allPost(after: $a) { nodes { id } } }`, map[string]any{"a": cur}); a.code() != CodeBadUserInput || !strings.Contains(a.Raw, fmt.Sprintf("/revisions/%d/graphql", r2)) {
		t.Fatalf("cursor of another revision: %s", a.Raw)
	}
}

func TestScopeHidesTypes(t *testing.T) {
	h := newHarness(t, testLayerHCL, Options{})
	seed(h)
	scope := Scope{Models: []string{"Post"}}
	a := h.queryAs(0, scope, `{ allPost { totalCount } }`, nil)
	if a.Status != 200 || len(a.Errors) > 0 {
		t.Fatalf("in scope: %s", a.Raw)
	}
	for _, q := range []string{`{ allAuthor { totalCount } }`, `{ post(id: "p1") { author { name } } }`, `{ __type(name: "Author") { name } }`} {
		a := h.queryAs(0, scope, q, nil)
		if q == `{ __type(name: "Author") { name } }` {
			if js(a.Data) != `{"__type":null}` {
				t.Errorf("introspection shows Author: %s", a.Raw)
			}
			continue
		}
		if a.code() != CodeValidationFailed {
			t.Errorf("%s out of scope: %s", q, a.Raw)
		}
	}
}

func TestLimits(t *testing.T) {
	h := newHarness(t, testLayerHCL, Options{MaxCost: 5000})
	seed(h)
	deep := "name"
	for i := 0; i < 6; i++ {
		deep = "posts { author { " + deep + " } }"
	}
	deep = "{ allAuthor { nodes { " + deep + " } } }"
	cases := []struct {
		name, q string
		vars    map[string]any
		code    string
	}{
		{"depth", deep, nil, CodeDepthLimit},
		{"introspection cycle", `{ __type(name: "Post") { fields { type { fields { type { fields { type { fields { name } } } } } } } } }`, nil, CodeDepthLimit},
		{"nodes literal", `{ allPost(limit: 1001) { nodes { id } } }`, nil, CodeNodeLimit},
		{"nodes variable", `query($n: Int) { allPost(limit: $n) { nodes { id } } }`, map[string]any{"n": 5000}, CodeNodeLimit},
		{"reverse nodes", `{ author(id: "a1") { posts(limit: 2000) { id } } }`, nil, CodeNodeLimit},
		{"cost", `{ allAuthor(limit: 1000) { nodes { posts(limit: 1000) { id } } } }`, nil, CodeCostLimit},
		{"size", "{ allPost { nodes { id } } }" + strings.Repeat(" ", MaxQueryBytes), nil, CodeQueryTooLarge},
		{"parse", `{ allPost { nodes { id }`, nil, CodeParseFailed},
		{"validation", `{ allPost { nope } }`, nil, CodeValidationFailed},
		{"bad cursor", `{ allPost(after: "xyz") { nodes { id } } }`, nil, CodeBadUserInput},
		{"unknown operation", `query A { allPost { totalCount } }`, nil, CodeOperationNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := c.q
			var a *answer
			if c.name == "unknown operation" {
				body := `{"query":"query A { allPost { totalCount } }","operationName":"B"}`
				r := httptest.NewRequest("POST", "/graphql", strings.NewReader(body))
				a = h.do(r, 0, Scope{All: true})
			} else {
				a = h.query(0, q, c.vars)
			}
			if a.Status != 200 || a.code() != c.code {
				t.Fatalf("%d, code %q, want %q: %s", a.Status, a.code(), c.code, a.Raw)
			}
			if a.ETag != "" {
				t.Fatal("an error answer has an ETag")
			}
		})
	}
	t.Run("time", func(t *testing.T) {
		h := newHarness(t, testLayerHCL, Options{TimeLimit: time.Nanosecond})
		seed(h)
		a := h.query(0, `{ allPost { nodes { id } } }`, nil)
		if a.Status != 200 || a.code() != CodeTimeout {
			t.Fatalf("%d %s", a.Status, a.Raw)
		}
	})
}

func TestHTTPErrors(t *testing.T) {
	h := newHarness(t, testLayerHCL, Options{})
	if d := h.ok(0, `{ __typename }`, nil); d["__typename"] != "Query" {
		t.Fatalf("empty layer: %v", d)
	}
	seed(h)
	cases := []struct {
		name   string
		r      *http.Request
		rev    int64
		status int
	}{
		{"no query", httptest.NewRequest("GET", "/graphql", nil), 0, 400},
		{"bad json", httptest.NewRequest("POST", "/graphql", strings.NewReader("{")), 0, 400},
		{"bad variables", httptest.NewRequest("POST", "/graphql", strings.NewReader(`{"query":"{ __typename }","variables":[1]}`)), 0, 400},
		{"huge body", httptest.NewRequest("POST", "/graphql", strings.NewReader(`{"query":"`+strings.Repeat("a", maxBodyBytes)+`"}`)), 0, 413},
		{"no such revision", httptest.NewRequest("GET", "/graphql?query=%7B__typename%7D", nil), 99, 404},
		{"method", httptest.NewRequest("PUT", "/graphql?query=%7B__typename%7D", nil), 0, 405},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		h.svc.ServeHTTP(w, c.r, Env{Config: h.cfg, Models: h.models, Store: h.layer}, c.rev, Scope{All: true})
		if w.Code != c.status || !strings.Contains(w.Body.String(), `"error":{"code"`) {
			t.Errorf("%s: %d %s", c.name, w.Code, w.Body.String())
		}
	}
	r := httptest.NewRequest("POST", "/graphql", strings.NewReader(`{ post(id: "p1") { title } }`))
	r.Header.Set("Content-Type", "application/graphql")
	if a := h.do(r, 0, Scope{All: true}); js(a.Data) != `{"post":{"title":"Hello"}}` {
		t.Errorf("application/graphql: %s", a.Raw)
	}
}
