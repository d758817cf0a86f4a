package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synclayer/synclayer/plugins/shopify/shopifytest"
)

const shopifySecret = "shpss_integration-client-secret"

func shopifyLayer(srv *shopifytest.Server) string {
	return fmt.Sprintf(`
layer "catalog" {
  source "shop" {
    plugin = "shopify"
    config {
      shop           = %q
      access_token   = %q
      base_url       = %q
      webhook_secret = %q
    }
    sync "products" {
      track_deletes = true
    }
  }
}
`, srv.Shop, srv.Token, srv.URL, shopifySecret)
}

// TestShopifySourceEndToEnd serves a layer with a shopify source against
// the fake Admin API through the real binaries: the first run reads the
// products and collections, an incremental run asks by updated_at and
// brings only what changed, a reset run deletes what the shop no longer
// has, and signed webhooks are applied while a forged one is refused.
func TestShopifySourceEndToEnd(t *testing.T) {
	srv := shopifytest.New(t, shopifytest.Options{RestoreRate: 1e6})
	products, cols := srv.Seed(25)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "layer.hcl"), shopifyLayer(srv))
	h := startHost(t, filepath.Join(dir, "layer.hcl"), "")
	h.waitRevision("catalog", 1, 30*time.Second)

	if got := h.records("catalog", "model=Product&limit=1000"); len(got) != 25 {
		t.Fatalf("first run: %d products\n%s", len(got), h.logs())
	}
	got := h.records("catalog", "model=Collection")
	if len(got) != len(cols) {
		t.Fatalf("first run: %d collections", len(got))
	}
	byID := map[string]record{}
	for _, r := range got {
		byID[r["id"].(string)] = r
	}
	col := byID[strconv.FormatInt(cols[0], 10)]
	if ids, _ := col["product_ids"].([]any); col == nil || len(ids) != 12 || ids[0] != strconv.FormatInt(products[1], 10) {
		t.Fatalf("collection %v", col)
	}
	one := h.records("catalog", "model=Product&ids="+strconv.FormatInt(products[4], 10))
	if len(one) != 1 || one[0]["title"] != "Product 5" || len(one[0]["variants"].([]any)) != 3 || one[0]["status"] != "active" {
		t.Fatalf("product %v", one)
	}

	// An update and a new product: an incremental run by updated_at.
	srv.ResetRequests()
	if _, err := srv.UpdateProduct(products[2], func(p *shopifytest.Product) { p.Title = "Product 3, renamed" }); err != nil {
		t.Fatal(err)
	}
	added := srv.CreateProduct(shopifytest.Product{Title: "Brand new"})
	var started struct {
		Run string `json:"run"`
	}
	h.call("POST", "/v1/layers/catalog/syncs", map[string]any{"source": "shop", "sync": "products"}, 202, &started)
	if r := h.waitRun("catalog", started.Run, 30*time.Second); r.State != "completed" {
		t.Fatalf("incremental run: %+v\n%s", r, h.logs())
	}
	reqs := srv.Requests()
	if len(reqs) == 0 || !strings.HasPrefix(fmt.Sprint(reqs[0].Variables["query"]), "updated_at:>='") {
		t.Fatalf("incremental run requests %+v: want an updated_at filter", reqs)
	}
	if up := h.records("catalog", "model=Product&filter=updated"); len(up) != 1 || up[0]["title"] != "Product 3, renamed" {
		t.Fatalf("updated: %v", up)
	}
	if add := h.records("catalog", "model=Product&ids="+strconv.FormatInt(added.ID, 10)); len(add) != 1 || add[0]["title"] != "Brand new" {
		t.Fatalf("added: %v", add)
	}

	// A product gone from the shop: a reset (full) run with track_deletes
	// deletes it.
	if err := srv.DeleteProduct(products[0]); err != nil {
		t.Fatal(err)
	}
	h.call("POST", "/v1/layers/catalog/syncs", map[string]any{"source": "shop", "sync": "products", "reset": true}, 202, &started)
	if r := h.waitRun("catalog", started.Run, 30*time.Second); r.State != "completed" {
		t.Fatalf("reset run: %+v\n%s", r, h.logs())
	}
	if del := h.records("catalog", "model=Product&filter=deleted"); len(del) != 1 || del[0]["id"] != strconv.FormatInt(products[0], 10) {
		t.Fatalf("deleted: %v", del)
	}

	// Webhooks: a signed products/update and products/delete are applied;
	// a forged or unsigned one is refused.
	if _, err := srv.UpdateProduct(products[5], func(p *shopifytest.Product) { p.Title = "Pushed by a webhook" }); err != nil {
		t.Fatal(err)
	}
	url := h.url("/hooks/sources/catalog/shop")
	send := func(topic string, id int64, forge bool) (int, string) {
		hd, body, err := srv.WebhookRequest(topic, id, shopifySecret)
		if err != nil {
			t.Fatal(err)
		}
		if forge {
			hd.Set("X-Shopify-Hmac-Sha256", shopifytest.Sign("not-the-secret", body))
		}
		headers := map[string]string{}
		for k := range hd {
			headers[k] = hd.Get(k)
		}
		return post(t, url, headers, string(body))
	}
	if code, resp := send(shopifytest.TopicProductsUpdate, products[5], true); code != http.StatusUnauthorized {
		t.Fatalf("forged webhook: %d %s", code, resp)
	}
	if code, resp := post(t, url, map[string]string{"X-Shopify-Topic": "products/delete"}, `{"id":1}`); code != http.StatusUnauthorized {
		t.Fatalf("unsigned webhook: %d %s", code, resp)
	}
	if code, resp := send(shopifytest.TopicProductsUpdate, products[5], false); code != http.StatusAccepted {
		t.Fatalf("signed webhook: %d %s", code, resp)
	}
	if code, resp := send(shopifytest.TopicProductsDelete, products[6], false); code != http.StatusAccepted {
		t.Fatalf("signed delete webhook: %d %s", code, resp)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := map[string]record{}
		for _, r := range h.records("catalog", fmt.Sprintf("model=Product&ids=%d,%d", products[5], products[6])) {
			got[r["id"].(string)] = r
		}
		p5, p6 := got[strconv.FormatInt(products[5], 10)], got[strconv.FormatInt(products[6], 10)]
		if p5 != nil && p6 != nil && p5["title"] == "Pushed by a webhook" && p6.meta("last_action") == "DELETED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhooks were not applied: %v\n%s", got, h.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if logs := h.logs(); strings.Contains(logs, srv.Token) || strings.Contains(logs, shopifySecret) {
		t.Fatalf("a secret reached the host log:\n%s", logs)
	}
}
