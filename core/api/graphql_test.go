package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The GraphQL routes over a running engine: the current, pinned and
// retained revisions, GET and POST, and the auth of record reads (an
// api_token's model scope hides types).
func TestGraphQLRoutes(t *testing.T) {
	sum := sha256.Sum256([]byte("product-reader"))
	f := newFixture(t, fixtureOpts{token: "s3cret-token", twoRevisions: true, layerExtra: fmt.Sprintf(`
  api_token "products" {
    token_sha256 = %q
    models       = ["Product"]
  }
  index "Post" { fields = ["title"] }`, hex.EncodeToString(sum[:]))})
	post := func(path, query string, header http.Header) (int, string) {
		t.Helper()
		body := fmt.Sprintf(`{"query": %q}`, query)
		status, _, b := f.request("POST", path, strings.NewReader(body), header)
		return status, string(b)
	}
	const q = `{ allPost { nodes { id title } } }`
	if status, body := post("/v1/layers/cat/graphql", q, nil); status != 200 ||
		!strings.Contains(body, `{"data":{"allPost":{"nodes":[{"id":"p1","title":"One, edited"},{"id":"p3","title":"Three"},{"id":"p4","title":"Four"}]}}`) ||
		!strings.Contains(body, `"revision":2`) {
		t.Fatalf("current revision: %d %s", status, body)
	}
	// The indexed title, at revision 2 (built at start over revision 1,
	// kept up by the second run).
	if status, body := post("/v1/layers/cat/graphql", `{ allPost(filter: {title: {in: ["Four", "Two"]}}) { nodes { id } } }`, nil); status != 200 || !strings.Contains(body, `"nodes":[{"id":"p4"}]`) {
		t.Fatalf("indexed filter: %d %s", status, body)
	}
	status, _, b := f.request("GET", "/v1/layers/cat/revisions/1/graphql?query="+url.QueryEscape(q), nil, nil)
	if status != 200 || !strings.Contains(string(b), `[{"id":"p1","title":"One"},{"id":"p2","title":"Two"},{"id":"p3","title":"Three"}]`) {
		t.Fatalf("revision 1: %d %s", status, b)
	}
	f.do("PUT", "/v1/layers/cat/pin", `{"revision":1}`, 200, nil)
	if status, body := post("/v1/layers/cat/graphql", q, nil); status != 200 || !strings.Contains(body, `"id":"p2"`) || !strings.Contains(body, `"revision":1`) {
		t.Fatalf("pinned: %d %s", status, body)
	}
	f.do("DELETE", "/v1/layers/cat/pin", "", 200, nil)
	for path, want := range map[string]int{"/v1/layers/cat/revisions/9/graphql": 404, "/v1/layers/cat/revisions/x/graphql": 400, "/v1/layers/nope/graphql": 404} {
		if status, body := post(path, q, nil); status != want || !strings.Contains(body, `"error":{"code"`) {
			t.Errorf("%s: %d %s, want %d", path, status, body, want)
		}
	}

	// Auth: none, a wrong token, a read token scoped to Product.
	f.token = ""
	if status, _ := post("/v1/layers/cat/graphql", q, nil); status != 401 {
		t.Errorf("without a token: %d", status)
	}
	if status, _ := post("/v1/layers/cat/graphql", q, http.Header{"Authorization": {"Bearer wrong"}}); status != 401 {
		t.Errorf("with a wrong token: %d", status)
	}
	reader := http.Header{"Authorization": {"Bearer product-reader"}}
	if status, body := post("/v1/layers/cat/graphql", `{ allProduct { totalCount } }`, reader); status != 200 || !strings.Contains(body, `"totalCount":2`) {
		t.Errorf("scoped token, in scope: %d %s", status, body)
	}
	if status, body := post("/v1/layers/cat/graphql", q, reader); status != 200 || !strings.Contains(body, "GRAPHQL_VALIDATION_FAILED") {
		t.Errorf("scoped token, Post hidden: %d %s", status, body)
	}
}
