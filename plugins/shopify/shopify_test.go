package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"go.uber.org/goleak"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
	"github.com/synclayer/synclayer/plugins/shopify/shopifytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "shpss_webhook-secret-of-the-app"

// waits records the cost-bucket waits of a connector (and waits them).
type waits struct {
	mu sync.Mutex
	ds []time.Duration
}

func (w *waits) wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.ds = append(w.ds, d)
	w.mu.Unlock()
	return sleep(ctx, d)
}

func (w *waits) list() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.ds)
}

// fast is a connector with short HTTP backoffs whose waits are recorded.
func fast(w *waits) *Shopify {
	return &Shopify{HTTP: sdk.HTTPClientOptions{RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond}, Wait: w.wait}
}

// newShop starts a fake shop whose cost bucket refills fast (unless opts
// say otherwise), so that only the tests about it wait for it.
func newShop(t *testing.T, opts shopifytest.Options) *shopifytest.Server {
	if opts.RestoreRate == 0 {
		opts.RestoreRate = 1e6
	}
	return shopifytest.New(t, opts)
}

func config(srv *shopifytest.Server) map[string]any {
	return map[string]any{"shop": srv.Shop, "access_token": srv.Token, "base_url": srv.URL, "webhook_secret": secret}
}

func syncRun(t *testing.T, h *sdktest.Harness, cfg map[string]any, sync string, full bool, cp sdk.Checkpoint) *sdktest.Result {
	t.Helper()
	res, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: sync, Full: full, Checkpoint: cp})
	if err != nil {
		t.Fatalf("sync %s: %v", sync, err)
	}
	return res
}

func ids(res *sdktest.Result) []string {
	var out []string
	for _, c := range res.Changes {
		if c.Delete {
			out = append(out, "-"+c.ID)
		} else {
			out = append(out, c.ID)
		}
	}
	return out
}

func idStrings(ns []int64) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = strconv.FormatInt(n, 10)
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// bigProduct has more variants and images than a page of products holds.
func bigProduct(srv *shopifytest.Server) shopifytest.Product {
	p := shopifytest.Product{Title: "Big mug", Vendor: "Acme", Status: "DRAFT", Tags: []string{"big"}, Options: []shopifytest.Option{{Name: "Colour"}, {Name: "Size"}}}
	for i := range 20 {
		bc := fmt.Sprintf("40000%02d", i)
		p.Variants = append(p.Variants, shopifytest.Variant{Price: fmt.Sprintf("%d.5", 10+i), Barcode: &bc, SKU: fmt.Sprintf("BIG-%d", i), InventoryQuantity: i, OptionValues: []string{fmt.Sprintf("c%d", i/4), fmt.Sprintf("s%d", i%4)}})
	}
	for i := range 8 {
		alt := fmt.Sprintf("view %d", i)
		p.Images = append(p.Images, shopifytest.Image{AltText: &alt, Width: 100 + i, Height: 100})
	}
	return srv.CreateProduct(p)
}

func TestFullSyncOfProducts(t *testing.T) {
	srv := newShop(t, shopifytest.Options{})
	want, _ := srv.Seed(45)
	big := bigProduct(srv)
	want = append(want, big.ID)
	h := sdktest.New(t, fast(&waits{}))
	res := syncRun(t, h, config(srv), ProductsSync, true, nil)
	if got := ids(res); !slices.Equal(got, idStrings(want)) {
		t.Fatalf("ids %v, want %v (in updated_at order)", got, idStrings(want))
	}
	for _, c := range res.Changes {
		if c.Model != ProductModel {
			t.Fatalf("model %q", c.Model)
		}
	}
	// Three pages of 20, and the big product's further variants and images.
	var names []string
	for _, r := range srv.Requests() {
		names = append(names, strings.Fields(r.Query)[1])
	}
	if strings.Join(names, " ") != "Products($first: Products($first: Products($first: ProductVariants($id: ProductImages($id:" {
		t.Fatalf("queries %v", names)
	}
	if n := len(res.Checkpoints()); n != 3 {
		t.Fatalf("%d checkpoints, want one a page", n)
	}

	var rec Product
	if err := json.Unmarshal(res.Changes[len(res.Changes)-1].Data, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.ID != strconv.FormatInt(big.ID, 10) || rec.AdminGraphQLAPIID != "gid://shopify/Product/"+rec.ID || rec.Status != "draft" ||
		rec.Handle != "big-mug" || !slices.Equal(rec.Tags, []string{"big"}) || rec.UpdatedAt != big.UpdatedAt.Format(time.RFC3339) || rec.PublishedAt != nil {
		t.Fatalf("record %+v", rec)
	}
	if len(rec.Variants) != 20 || len(rec.Images) != 8 {
		t.Fatalf("%d variants and %d images, want 20 and 8", len(rec.Variants), len(rec.Images))
	}
	v := rec.Variants[19]
	if v.ID != strconv.FormatInt(big.Variants[19].ID, 10) || v.Price != "29.50" || v.Position != 20 || *v.Barcode != "4000019" ||
		!slices.Equal(v.Options, []string{"c4", "s3"}) || v.Title != "c4 / s3" || *v.InventoryQuantity != 19 || v.CompareAtPrice != nil {
		t.Fatalf("variant %+v", v)
	}
	if img := rec.Images[7]; img.Position != 8 || *img.Alt != "view 7" || *img.Width != 107 || !strings.HasPrefix(img.Src, "https://cdn.shopify.com/") {
		t.Fatalf("image %+v", img)
	}
	if len(rec.Options) != 2 || rec.Options[1].Name != "Size" || rec.Options[1].Position != 2 {
		t.Fatalf("options %+v", rec.Options)
	}
}

func TestFullSyncOfCollections(t *testing.T) {
	srv := newShop(t, shopifytest.Options{})
	products, cols := srv.Seed(130)
	// More products than the collections page asks for at once.
	all := srv.CreateCollection(shopifytest.Collection{Title: "Everything", SortOrder: "ALPHA_DESC", ProductIDs: reversed(products)})
	h := sdktest.New(t, fast(&waits{}))
	res := syncRun(t, h, config(srv), CollectionsSync, true, nil)
	want := idStrings(append(cols, all.ID))
	if got := ids(res); !slices.Equal(got, want) {
		t.Fatalf("ids %v, want %v", got, want)
	}
	var rec Collection
	if err := json.Unmarshal(res.Changes[2].Data, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Title != "Everything" || rec.SortOrder != "alpha-desc" || !slices.Equal(rec.ProductIDs, idStrings(reversed(products))) {
		t.Fatalf("collection %s %s with %d products (%v…)", rec.Title, rec.SortOrder, len(rec.ProductIDs), rec.ProductIDs[:3])
	}
	var first Collection
	_ = json.Unmarshal(res.Changes[0].Data, &first)
	if first.BodyHTML != "<p>Half of them.</p>" || len(first.ProductIDs) != 65 || first.SortOrder != "manual" {
		t.Fatalf("collection %+v", first)
	}
}

func reversed(s []int64) []int64 {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func lastQueryVars(srv *shopifytest.Server, name string) map[string]any {
	reqs := srv.Requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if strings.HasPrefix(reqs[i].Query, "query "+name+"(") {
			return reqs[i].Variables
		}
	}
	return nil
}

func TestIncrementalRuns(t *testing.T) {
	srv := newShop(t, shopifytest.Options{})
	products, cols := srv.Seed(30)
	h := sdktest.New(t, fast(&waits{}))
	cfg := config(srv)
	first := syncRun(t, h, cfg, ProductsSync, true, nil)
	if len(first.Changes) != 30 {
		t.Fatalf("first run: %d records", len(first.Changes))
	}
	cp := first.Checkpoint
	newest, _ := srv.Product(products[len(products)-1])
	since := newest.UpdatedAt.Format(time.RFC3339)
	if cp["since"] != since || cp["partial"] != nil {
		t.Fatalf("checkpoint %v, want since %s", cp, since)
	}

	// Nothing changed: an incremental run asks from the overlap before the
	// checkpoint and saves nothing.
	again := syncRun(t, h, cfg, ProductsSync, false, cp)
	if len(again.Changes) != 0 {
		t.Fatalf("unchanged shop: saved %v", ids(again))
	}
	floor := newest.UpdatedAt.Add(-Overlap).Format(time.RFC3339)
	if q := lastQueryVars(srv, "Products")["query"]; q != "updated_at:>='"+floor+"'" {
		t.Fatalf("incremental query %v, want updated_at from %s", q, floor)
	}

	// Two updates and a new product: exactly those.
	if _, err := srv.UpdateProduct(products[3], func(p *shopifytest.Product) { p.Title = "Renamed" }); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.UpdateProduct(products[0], func(p *shopifytest.Product) { p.Variants[0].Price = "99.00" }); err != nil {
		t.Fatal(err)
	}
	added := srv.CreateProduct(shopifytest.Product{Title: "New"})
	next := syncRun(t, h, cfg, ProductsSync, false, again.Checkpoint)
	want := idStrings([]int64{products[3], products[0], added.ID})
	if got := ids(next); !slices.Equal(got, want) {
		t.Fatalf("incremental run: %v, want %v", got, want)
	}
	if !strings.Contains(string(next.Changes[0].Data), `"title":"Renamed"`) || !strings.Contains(string(next.Changes[1].Data), `"price":"99.00"`) {
		t.Fatalf("changes %s / %s", next.Changes[0].Data, next.Changes[1].Data)
	}
	if last := syncRun(t, h, cfg, ProductsSync, false, next.Checkpoint); len(last.Changes) != 0 {
		t.Fatalf("a third run repeated %v", ids(last))
	}

	// Collections the same way.
	c1 := syncRun(t, h, cfg, CollectionsSync, true, nil)
	if len(c1.Changes) != len(cols) {
		t.Fatalf("collections: %v", ids(c1))
	}
	if _, err := srv.UpdateCollection(cols[1], func(c *shopifytest.Collection) { c.ProductIDs = products[:2] }); err != nil {
		t.Fatal(err)
	}
	c2 := syncRun(t, h, cfg, CollectionsSync, false, c1.Checkpoint)
	if got := ids(c2); !slices.Equal(got, idStrings(cols[1:2])) || !strings.Contains(string(c2.Changes[0].Data), fmt.Sprintf(`"product_ids":["%d","%d"]`, products[0], products[1])) {
		t.Fatalf("collections incremental: %v %+v", got, c2.Changes)
	}
}

// TestTiesNeverLoseARecord: many products share one updated_at (a bulk
// edit), across page boundaries; a run interrupted inside them resumes
// without loss, and a product that later gets the same updated_at is
// still found.
func TestTiesNeverLoseARecord(t *testing.T) {
	srv := newShop(t, shopifytest.Options{})
	srv.Seed(5)
	at := srv.Now().Add(time.Hour)
	srv.Freeze(at)
	var tied []int64
	for i := range 45 {
		tied = append(tied, srv.CreateProduct(shopifytest.Product{Title: fmt.Sprintf("tied %d", i)}).ID)
	}
	h := sdktest.New(t, fast(&waits{}))
	cfg := config(srv)
	full := syncRun(t, h, cfg, ProductsSync, true, nil)
	if len(full.Changes) != 50 {
		t.Fatalf("%d records", len(full.Changes))
	}
	for k := 1; k <= 2; k++ {
		part, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: ProductsSync, Full: true, StopAfterCheckpoints: k})
		if err != nil {
			t.Fatal(err)
		}
		if part.Checkpoint["partial"] != true || part.Checkpoint["full"] != true {
			t.Fatalf("checkpoint %d of a full run: %v", k, part.Checkpoint)
		}
		rest := syncRun(t, h, cfg, ProductsSync, true, part.Checkpoint)
		got := append(ids(part), ids(rest)...)
		if !slices.Equal(sorted(got), sorted(ids(full))) {
			t.Fatalf("interrupted after page %d: %d+%d records, want the %d of a whole run", k, len(part.Changes), len(rest.Changes), len(full.Changes))
		}
	}
	late := srv.CreateProduct(shopifytest.Product{Title: "late, same second"})
	srv.Unfreeze()
	next := syncRun(t, h, cfg, ProductsSync, false, full.Checkpoint)
	if got := ids(next); !slices.Equal(got, idStrings([]int64{late.ID})) {
		t.Fatalf("after a tie: %v, want only %d", got, late.ID)
	}
}

func TestCostBucketIsWaitedFor(t *testing.T) {
	// A bucket of 1000 points restoring 150 a second: a page of products
	// asks for 862 and uses some 250, so the second page must wait about
	// 0.7 s for the bucket to hold its cost again.
	srv := newShop(t, shopifytest.Options{BucketSize: 1000, RestoreRate: 150})
	srv.Seed(30)
	w := &waits{}
	h := sdktest.New(t, fast(w))
	res := syncRun(t, h, config(srv), ProductsSync, true, nil)
	if len(res.Changes) != 30 {
		t.Fatalf("%d records", len(res.Changes))
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || reqs[0].RequestedCost+reqs[1].RequestedCost <= 1000 {
		t.Fatalf("requests %+v: want two pages costing more than the bucket holds", reqs)
	}
	for _, r := range reqs {
		if r.Code != "" {
			t.Fatalf("a query was answered %s: the connector did not wait for the bucket (%+v)", r.Code, r)
		}
	}
	if r := reqs[1]; r.Available < float64(r.RequestedCost) {
		t.Fatalf("the second page went with %.0f points in the bucket for a cost of %d", r.Available, r.RequestedCost)
	}
	if ws := w.list(); len(ws) != 1 || ws[0] <= 0 {
		t.Fatalf("waits %v, want one for the bucket before the second page", ws)
	}
}

func TestThrottledQueryIsRetried(t *testing.T) {
	// An empty bucket that takes about 1.4 s to hold a page's cost, which
	// the connector does not know of before its first answer.
	srv := newShop(t, shopifytest.Options{BucketSize: 1000, RestoreRate: 600})
	srv.Seed(3)
	w := &waits{}
	h := sdktest.New(t, fast(w))
	srv.SetAvailable(0)
	res := syncRun(t, h, config(srv), ProductsSync, true, nil)
	if len(res.Changes) != 3 {
		t.Fatalf("%d records", len(res.Changes))
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || reqs[0].Code != "THROTTLED" || reqs[1].Code != "" {
		t.Fatalf("requests %+v, want a THROTTLED one then the same query again", reqs)
	}
	if ws := w.list(); len(ws) != 1 || ws[0] <= 0 {
		t.Fatalf("waits %v, want one for the bucket", ws)
	}
}

func TestTooManyRequestsIsRetriedAfterRetryAfter(t *testing.T) {
	srv := newShop(t, shopifytest.Options{})
	srv.Seed(3)
	srv.FailNext(
		shopifytest.Failure{Status: 429, Header: http.Header{"Retry-After": {"0.05"}}, Body: `{"errors":"Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}`},
		shopifytest.Failure{Status: 503, Body: `{"errors":"Service Unavailable"}`},
	)
	h := sdktest.New(t, fast(&waits{}))
	res := syncRun(t, h, config(srv), ProductsSync, true, nil)
	if len(res.Changes) != 3 {
		t.Fatalf("%d records", len(res.Changes))
	}
	reqs := srv.Requests()
	if len(reqs) != 3 || reqs[0].Status != 429 || reqs[1].Status != 503 || reqs[2].Status != 200 {
		t.Fatalf("requests %+v", reqs)
	}
}

func TestBadToken(t *testing.T) {
	srv := newShop(t, shopifytest.Options{})
	h := sdktest.New(t, fast(&waits{}))
	cfg := config(srv)
	cfg["access_token"] = "shpat_not-the-right-one"
	err := h.Check(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), `access_token was refused by shop "demo.myshopify.com"`) ||
		!strings.Contains(err.Error(), "401 Unauthorized: [API] Invalid API key or access token") {
		t.Fatalf("check: %v", err)
	}
	if strings.Contains(err.Error(), "shpat_not") {
		t.Fatalf("the token leaked: %v", err)
	}
	_, err = h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: ProductsSync, Full: true})
	if err == nil || !strings.Contains(err.Error(), "access_token was refused") {
		t.Fatalf("sync: %v", err)
	}
	if err := h.Check(t.Context(), config(srv)); err != nil {
		t.Fatalf("check with the right token: %v", err)
	}
}

// TestUnknownShop sends every shop's requests to the fake, as DNS sends
// every *.myshopify.com to Shopify, which answers 404 for a shop it does
// not have.
func TestUnknownShop(t *testing.T) {
	srv := newShop(t, shopifytest.Options{})
	tr := cleanhttp.DefaultPooledTransport()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Addr())
	}
	c := fast(&waits{})
	c.HTTP.Transport = tr
	t.Cleanup(tr.CloseIdleConnections)
	h := sdktest.New(t, c)
	cfg := map[string]any{"shop": "nope", "access_token": srv.Token, "base_url": "http://nope.myshopify.com"}
	err := h.Check(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), `shop "nope.myshopify.com": no such shop`) || !strings.Contains(err.Error(), "404 Not Found") {
		t.Fatalf("check: %v", err)
	}
	cfg = map[string]any{"shop": "demo", "access_token": srv.Token, "base_url": "http://demo.myshopify.com"}
	if err := h.Check(t.Context(), cfg); err != nil {
		t.Fatalf("the fake's own shop: %v", err)
	}
}
