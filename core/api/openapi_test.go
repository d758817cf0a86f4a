package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// openAPIMethods are the operation keys of an OpenAPI path item.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// loadOpenAPI decodes the embedded document.
func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	if !json.Valid(openAPIDocument) {
		t.Fatal("openapi.json is not valid JSON")
	}
	var doc map[string]any
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestOpenAPIMatchesRoutes: the document describes exactly the routes the
// server registers, method by method, both ways.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	if v, _ := doc["openapi"].(string); !regexp.MustCompile(`^3\.0\.\d+$`).MatchString(v) {
		t.Errorf(`"openapi" is %q, want 3.0.x`, v)
	}
	s, err := New(Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	// Go's patterns and OpenAPI's paths write parameters alike: {name}. A
	// Go wildcard {name...} is {name} to OpenAPI, and {$} (the exact path)
	// has no counterpart.
	var routes, documented []string
	for _, r := range s.Routes() {
		method, path, ok := strings.Cut(r, " ")
		if !ok || !strings.HasPrefix(path, "/") {
			t.Fatalf("route %q is not METHOD /path", r)
		}
		path = strings.ReplaceAll(strings.TrimSuffix(path, "{$}"), "...}", "}")
		routes = append(routes, method+" "+path)
	}
	paths, _ := doc["paths"].(map[string]any)
	if len(paths) == 0 {
		t.Fatal("the document has no paths")
	}
	for path, item := range paths {
		ops, _ := item.(map[string]any)
		n := 0
		for _, m := range openAPIMethods {
			if _, ok := ops[m]; ok {
				documented = append(documented, strings.ToUpper(m)+" "+path)
				n++
			}
		}
		if n == 0 {
			t.Errorf("path %s has no operation", path)
		}
	}
	sort.Strings(routes)
	sort.Strings(documented)
	for _, r := range routes {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(routes, d) {
			t.Errorf("openapi.json describes %s, which the server does not register", d)
		}
	}
}

// TestOpenAPIWellFormed checks what a reader of the document relies on:
// every $ref resolves, every {param} of a path is declared as a path
// parameter and every path parameter is in the path, operation ids are
// unique, and every error answer is the API's error object.
func TestOpenAPIWellFormed(t *testing.T) {
	doc := loadOpenAPI(t)
	resolve := func(v any) map[string]any {
		m, _ := v.(map[string]any)
		for range 10 {
			ref, ok := m["$ref"].(string)
			if !ok {
				return m
			}
			var cur any = doc
			for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
				part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
				next, _ := cur.(map[string]any)
				cur = next[part]
			}
			if cur == nil || !strings.HasPrefix(ref, "#/") {
				t.Errorf("$ref %q does not resolve", ref)
				return nil
			}
			m, _ = cur.(map[string]any)
		}
		return m
	}
	// Every $ref anywhere.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if _, ok := v["$ref"]; ok {
				resolve(v)
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)

	errorSchema := "#/components/schemas/Error"
	paramRe := regexp.MustCompile(`\{([^}]+)\}`)
	ids := map[string]string{}
	paths, _ := doc["paths"].(map[string]any)
	for path, item := range paths {
		pi, _ := item.(map[string]any)
		var want []string
		for _, m := range paramRe.FindAllStringSubmatch(path, -1) {
			want = append(want, m[1])
		}
		sort.Strings(want)
		for _, method := range openAPIMethods {
			op, ok := pi[method].(map[string]any)
			if !ok {
				continue
			}
			where := strings.ToUpper(method) + " " + path
			var declared []string
			for _, list := range []any{pi["parameters"], op["parameters"]} {
				ps, _ := list.([]any)
				for _, p := range ps {
					p := resolve(p)
					if p["in"] == "path" {
						name, _ := p["name"].(string)
						if p["required"] != true {
							t.Errorf("%s: path parameter %s is not required", where, name)
						}
						declared = append(declared, name)
					}
				}
			}
			sort.Strings(declared)
			if !slices.Equal(declared, want) {
				t.Errorf("%s: path parameters %v declared, the path has %v", where, declared, want)
			}
			id, _ := op["operationId"].(string)
			if id == "" {
				t.Errorf("%s: no operationId", where)
			} else if other, dup := ids[id]; dup {
				t.Errorf("%s: operationId %q is also %s's", where, id, other)
			}
			ids[id] = where
			responses, _ := op["responses"].(map[string]any)
			if len(responses) == 0 {
				t.Errorf("%s: no responses", where)
			}
			for code, r := range responses {
				if path == "/readyz" || code < "400" {
					continue
				}
				schema := resolve(r)
				content, _ := schema["content"].(map[string]any)
				js, _ := content["application/json"].(map[string]any)
				sch, _ := js["schema"].(map[string]any)
				if sch["$ref"] != errorSchema {
					t.Errorf("%s: answer %s is not the error object", where, code)
				}
			}
		}
	}
}

// TestOpenAPIServed: GET /v1/openapi.json answers the document, without a
// token even when the server has an admin token.
func TestOpenAPIServed(t *testing.T) {
	s, err := New(Options{Registry: prometheus.NewRegistry(), AdminToken: "secret-admin-token"})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/v1/openapi.json", nil))
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/openapi.json: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	if !bytes.Equal(w.Body.Bytes(), openAPIDocument) {
		t.Error("GET /v1/openapi.json is not the embedded document")
	}
}
