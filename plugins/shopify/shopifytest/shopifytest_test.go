package shopifytest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func post(t *testing.T, s *Server, version, token, query string, vars map[string]any) (int, http.Header, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest("POST", s.URL+"/admin/api/"+version+"/graphql.json", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Shopify-Access-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, resp.Header, out
}

func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func TestPagesEdgesNodesAndCursors(t *testing.T) {
	s := New(t, Options{})
	ids, _ := s.Seed(5)
	q := `query P($after: String) { products(first: 2, after: $after, sortKey: UPDATED_AT) {
	  pageInfo { hasNextPage hasPreviousPage endCursor }
	  edges { cursor node { id legacyResourceId } }
	  nodes { title } } }`
	var got []any
	var after any
	for i := 0; ; i++ {
		code, h, out := post(t, s, "2026-10", s.Token, q, map[string]any{"after": after})
		if code != 200 || h.Get("X-Shopify-API-Version") != "2026-10" {
			t.Fatalf("%d %v", code, h)
		}
		conn := dig(out, "data", "products")
		for j := range 2 {
			if id := dig(conn, "edges", j, "node", "id"); id != nil {
				got = append(got, id)
				if dig(conn, "nodes", j, "title") == nil {
					t.Fatalf("nodes and edges differ: %v", conn)
				}
			}
		}
		if (dig(conn, "pageInfo", "hasPreviousPage") == true) != (i > 0) {
			t.Fatalf("page %d: %v", i, dig(conn, "pageInfo"))
		}
		if dig(conn, "pageInfo", "hasNextPage") != true {
			break
		}
		after = dig(conn, "pageInfo", "endCursor")
	}
	if len(got) != 5 || got[0] != GID("Product", ids[0]) || got[4] != GID("Product", ids[4]) {
		t.Fatalf("ids %v", got)
	}
}

func TestSearchFilterAndWarnings(t *testing.T) {
	s := New(t, Options{})
	ids, _ := s.Seed(4)
	p, _ := s.Product(ids[2])
	q := `query($q: String) { products(first: 10, query: $q) { nodes { id } } }`
	_, _, out := post(t, s, "2026-10", s.Token, q, map[string]any{"q": "updated_at:>='" + p.UpdatedAt.Format("2006-01-02T15:04:05Z") + "' nope:1"})
	nodes := dig(out, "data", "products", "nodes").([]any)
	if len(nodes) != 2 || dig(nodes[0], "id") != GID("Product", ids[2]) {
		t.Fatalf("filtered %v", nodes)
	}
	if dig(out, "extensions", "search", 0, "warnings", 0, "field") != "nope" {
		t.Fatalf("warnings %v", dig(out, "extensions"))
	}
}

func TestErrorsOfTheAPI(t *testing.T) {
	s := New(t, Options{BucketSize: 100, RestoreRate: 1})
	s.Seed(1)
	if code, _, out := post(t, s, "2026-10", "wrong", `{ shop { name } }`, nil); code != 401 || out["errors"] != "[API] Invalid API key or access token (unrecognized login or wrong password)" {
		t.Fatalf("bad token: %d %v", code, out)
	}
	_, _, out := post(t, s, "2026-10", s.Token, `{ products(first: 1) { nodes { nope } } }`, nil)
	if msg, _ := dig(out, "errors", 0, "message").(string); !strings.Contains(msg, `Cannot query field "nope" on type "Product"`) {
		t.Fatalf("validation: %v", out)
	}
	_, _, out = post(t, s, "2026-10", s.Token, `{ products(first: 250) { nodes { id variants(first: 250) { nodes { id } } } } }`, nil)
	if dig(out, "errors", 0, "extensions", "code") != "MAX_COST_EXCEEDED" {
		t.Fatalf("max cost: %v", out)
	}
	s.SetAvailable(10)
	_, _, out = post(t, s, "2026-10", s.Token, `{ products(first: 50) { nodes { id } } }`, nil)
	if dig(out, "errors", 0, "extensions", "code") != "THROTTLED" || dig(out, "extensions", "cost", "requestedQueryCost") != float64(52) ||
		dig(out, "extensions", "cost", "throttleStatus", "maximumAvailable") != float64(100) || out["data"] != nil {
		t.Fatalf("throttled: %v", out)
	}
	_, h, out := post(t, s, "2019-01", s.Token, `{ shop { myshopifyDomain } }`, nil)
	if h.Get("X-Shopify-API-Version") != SupportedVersions[0] || dig(out, "data", "shop", "myshopifyDomain") != s.Shop ||
		dig(out, "extensions", "cost", "actualQueryCost") != float64(1) {
		t.Fatalf("old version: %v %v", h, out)
	}
	s.FailNext(Failure{Status: 429, Header: http.Header{"Retry-After": {"2.0"}}, Body: `{"errors":"Throttled"}`})
	if code, h, _ := post(t, s, "2026-10", s.Token, `{ shop { name } }`, nil); code != 429 || h.Get("Retry-After") != "2.0" {
		t.Fatalf("scripted 429: %d %v", code, h)
	}
}

func TestWebhookPayloads(t *testing.T) {
	s := New(t, Options{})
	ids, cols := s.Seed(2)
	h, body, err := s.WebhookRequest(TopicProductsUpdate, ids[1], "k")
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	if h.Get("X-Shopify-Hmac-Sha256") != Sign("k", body) || h.Get("X-Shopify-Topic") != "products/update" || h.Get("X-Shopify-Shop-Domain") != s.Shop {
		t.Fatalf("headers %v", h)
	}
	if p["tags"] != "seed, batch-2" || p["status"] != "active" || !strings.HasSuffix(p["updated_at"].(string), "-05:00") || dig(p, "variants", 0, "option1") != "S" {
		t.Fatalf("payload %s", body)
	}
	if _, body, _ = s.WebhookRequest(TopicCollectionsDelete, cols[0], "k"); !strings.HasPrefix(string(body), `{"id":`) {
		t.Fatalf("delete payload %s", body)
	}
	if _, _, err := s.WebhookRequest("orders/create", 1, "k"); err == nil {
		t.Fatal("an unknown topic rendered")
	}
}
