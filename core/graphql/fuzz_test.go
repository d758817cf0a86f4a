package graphql

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzEndpoint sends arbitrary GraphQL requests (GET and POST, any query,
// variables and revision) to the endpoint: never a panic, never a 5xx,
// always a JSON answer (or 304); a 200 is a GraphQL answer whose errors
// carry extensions.code.
func FuzzEndpoint(f *testing.F) {
	h := newHarness(f, testLayerHCL, Options{})
	seed(h)
	h.publish(map[string]map[string]string{"blog": {"Post/p4": ""}})
	for _, q := range []string{
		`{ allPost { totalCount nodes { id title author { name posts { id } } } pageInfo { hasNextPage endCursor } } }`,
		`{ post(id: "p1") { id _metadata { cursor } editors { email } } }`,
		`query($f: PostFilter, $n: Int) { allPost(filter: $f, limit: $n, sort: [{field: views, order: DESC}]) { nodes { id } } }`,
		`{ allPost(filter: {or: [{slug: {in: ["hello"]}}, {tags: {contains: "x"}}], meta: {eq: {a: [1, 2.5e3]}}}) { nodes { id } } }`,
		`{ allPost(after: "eyJyIjoyLCJrIjoicDEifQ") { nodes { id } } }`,
		`fragment F on Post { id author { ...A } } fragment A on Author { posts { ...F } } { allPost { nodes { ...F } } }`,
		`{ __schema { types { name fields { name type { name ofType { name } } } } } }`,
		`{ allPost(limit: 100000) { nodes { id } } }`, `{`, ``, `query A { __typename } query B { __typename }`,
		`{ allAuthor { nodes { posts(limit: -1, skip: -4) { id } } } }`,
	} {
		f.Add(uint8(0), q, ``, int8(0))
		f.Add(uint8(1), q, `{"f": {"views": {"gt": 1}}, "n": 2}`, int8(2))
	}
	f.Add(uint8(1), `{ allPost { totalCount } }`, `[1]`, int8(0))
	f.Add(uint8(2), `{ allPost { totalCount } }`, `null`, int8(9))
	f.Add(uint8(1), `{ allPost { totalCount } }`, `{"x": 1e400}`, int8(-1))
	f.Fuzz(func(t *testing.T, how uint8, query, variables string, rev int8) {
		mk := func() *http.Request {
			var r = httptest.NewRequest("GET", "/graphql?query="+url.QueryEscape(query)+"&variables="+url.QueryEscape(variables), nil)
			switch how % 3 {
			case 1:
				body, _ := json.Marshal(map[string]any{"query": query, "variables": json.RawMessage(variables)})
				if !json.Valid([]byte(variables)) {
					body, _ = json.Marshal(map[string]any{"query": query})
				}
				r = httptest.NewRequest("POST", "/graphql", strings.NewReader(string(body)))
			case 2:
				r = httptest.NewRequest("POST", "/graphql", strings.NewReader(query))
				r.Header.Set("Content-Type", "application/graphql")
			}
			return r
		}
		env := Env{Config: h.cfg, Models: h.models, Store: h.layer}
		w := httptest.NewRecorder()
		h.svc.ServeHTTP(w, mk(), env, int64(rev%4), Scope{All: true})
		ref := httptest.NewRecorder()
		h.ref.ServeHTTP(ref, mk(), env, int64(rev%4), Scope{All: true})
		if err := sameAnswer(ref, w.Code, w.Header().Get("ETag"), w.Body.Bytes(), query); err != nil {
			t.Fatalf("%v\nquery %q variables %q", err, query, variables)
		}
		if w.Code >= 500 {
			t.Fatalf("%d for %q %q: %s", w.Code, query, variables, w.Body.String())
		}
		if w.Code == 304 {
			return
		}
		var a struct {
			Errors []struct {
				Extensions map[string]any `json:"extensions"`
			} `json:"errors"`
			Error map[string]any `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
			t.Fatalf("%d answer is not JSON: %v: %s", w.Code, err, w.Body.String())
		}
		if w.Code == 200 {
			for _, e := range a.Errors {
				if c, _ := e.Extensions["code"].(string); c == "" || c == CodeInternal {
					t.Fatalf("error without a code or internal: %s", w.Body.String())
				}
			}
		} else if a.Error == nil {
			t.Fatalf("%d without an error object: %s", w.Code, w.Body.String())
		}
	})
}
