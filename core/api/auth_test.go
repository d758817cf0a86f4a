package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"testing"
)

// Read tokens: hashed in config, scoped by models and sources, for record
// reads only; the admin token reads everything.
func TestAPITokenScopes(t *testing.T) {
	hash := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	f := newFixture(t, fixtureOpts{token: "admin-token-1", layerExtra: fmt.Sprintf(`
  api_token "all" {
    token_sha256 = %q
  }
  api_token "posts" {
    token_sha256 = %q
    models       = ["Post"]
  }
  api_token "blog" {
    token_sha256 = %q
    sources      = ["blog"]
  }`, hash("read-all-token"), hash("read-posts-token"), hash("read-blog-token"))})
	f.token = ""
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	for _, tc := range []struct {
		token, query string
		want         int
	}{
		{"", "", 401},
		{"wrong", "", 401},
		{"admin-token-1", "", 200},
		{"read-all-token", "", 200},
		{"read-posts-token", "?model=Post", 200},
		{"read-posts-token", "", 403},
		{"read-posts-token", "?model=Product", 403},
		{"read-blog-token", "?source=blog", 200},
		{"read-blog-token", "?source=other", 403},
		{"read-blog-token", "", 403},
	} {
		status, _, body := f.request("GET", "/v1/layers/cat/records"+tc.query, nil, bearer(tc.token))
		if status != tc.want {
			t.Errorf("token %q query %q: %d, want %d: %s", tc.token, tc.query, status, tc.want, body)
		}
	}
	// A read token is no admin token.
	for _, path := range []string{"/v1/layers/cat/events", "/v1/layers/cat", "/v1/layers", "/v1/audit"} {
		if status, _, _ := f.request("GET", path, nil, bearer("read-all-token")); status != 401 {
			t.Errorf("%s with a read token: %d, want 401", path, status)
		}
	}
	// Hooks never take the bearer token: they answer by their own rules.
	if status, _, _ := f.request("POST", "/hooks/layers/cat", nil, nil); status != 202 {
		t.Errorf("trigger hook without a token: %d, want 202", status)
	}
}
