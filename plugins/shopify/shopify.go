package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// Version is the connector's version.
const Version = "0.1.0"

// Models and syncs.
const (
	ProductModel    = "Product"
	CollectionModel = "Collection"
	ProductsSync    = "products"
	CollectionsSync = "collections"
)

// Overlap is how far before the checkpoint's updated_at an incremental run
// asks from. Shopify's search index, which the updated_at filter reads,
// trails the data by a few seconds: a record changed just before the last
// run may have been missing from it. The records the last run saw inside
// the overlap are remembered in the checkpoint and skipped unless they
// changed again.
const Overlap = 2 * time.Minute

// MaxSeen is how many records of the overlap a checkpoint remembers (the
// newest); past it the older ones are saved again by the next run, which
// the host ignores when they did not change.
const MaxSeen = 10_000

// Shopify syncs the products and collections of a Shopify shop through the
// Admin GraphQL API.
type Shopify struct {
	// HTTP configures the HTTP client (retries, backoff, rate limit); the
	// zero value is the SDK's defaults. Tests shorten the backoff here.
	HTTP sdk.HTTPClientOptions
	// Wait waits d (for the query cost bucket to refill) or until ctx
	// ends; nil is a timer. Tests observe the waits here.
	Wait func(ctx context.Context, d time.Duration) error
}

var (
	_ sdk.ConnectorWithCheck    = (*Shopify)(nil)
	_ sdk.ConnectorWithWebhooks = (*Shopify)(nil)
)

// Describe implements sdk.Connector.
func (s *Shopify) Describe() sdk.Description {
	return sdk.Description{
		Name: "shopify", Version: Version, Config: (*Config)(nil),
		Models: []sdk.Model{
			{Name: ProductModel, Description: "A product of the shop, with its options, variants and images", Fields: []sdk.ModelField{
				{Name: "id", Type: "string"}, {Name: "admin_graphql_api_id", Type: "string"}, {Name: "title", Type: "string"},
				{Name: "handle", Type: "string"}, {Name: "body_html", Type: "string"}, {Name: "vendor", Type: "string"},
				{Name: "product_type", Type: "string"}, {Name: "status", Type: "string"}, {Name: "tags", Type: "array"},
				{Name: "template_suffix", Type: "string"}, {Name: "created_at", Type: "timestamp"}, {Name: "updated_at", Type: "timestamp"},
				{Name: "published_at", Type: "timestamp"}, {Name: "options", Type: "array"}, {Name: "variants", Type: "array"},
				{Name: "images", Type: "array"},
			}},
			{Name: CollectionModel, Description: "A collection of the shop, with the ids of its products in its order", Fields: []sdk.ModelField{
				{Name: "id", Type: "string"}, {Name: "admin_graphql_api_id", Type: "string"}, {Name: "title", Type: "string"},
				{Name: "handle", Type: "string"}, {Name: "body_html", Type: "string"}, {Name: "sort_order", Type: "string"},
				{Name: "template_suffix", Type: "string"}, {Name: "updated_at", Type: "timestamp"}, {Name: "product_ids", Type: "array"},
			}},
		},
		Syncs: []sdk.SyncSpec{
			{Name: ProductsSync, Models: []string{ProductModel}, Every: time.Hour, Incremental: true},
			{Name: CollectionsSync, Models: []string{CollectionModel}, Every: time.Hour, Incremental: true},
		},
	}
}

func decodeConfig(decode func(any) error) (*Config, error) {
	cfg := &Config{}
	if err := decode(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Check implements sdk.ConnectorWithCheck: the shop answers, takes the
// token, and lets it read products. Its errors say which of shop, token
// or scope is wrong.
func (s *Shopify) Check(ctx context.Context, req *sdk.CheckRequest) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	a := newAPI(cfg, s.HTTP, s.Wait, req.Logger)
	defer a.close()
	var out struct {
		Shop struct {
			Name            string `json:"name"`
			MyshopifyDomain string `json:"myshopifyDomain"`
		} `json:"shop"`
	}
	if err := a.query(ctx, "Check", checkQuery, nil, &out); err != nil {
		return explain(cfg, err)
	}
	req.Logger.Info("the shop answers", "shop", out.Shop.MyshopifyDomain, "name", out.Shop.Name)
	return nil
}

// explain turns an error of the API into one that says what to fix: the
// shop, the token, its scopes, the shop's plan.
func explain(cfg *Config, err error) error {
	if ae := asAPIError(err); ae != nil {
		switch ae.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("access_token was refused by shop %q: use the Admin API access token (shpat_…) of a custom app installed on this shop (Settings → Apps and sales channels → Develop apps → API credentials): %w", cfg.Shop, err)
		case http.StatusForbidden:
			return fmt.Errorf("shop %q forbids this token the Admin API: check the app is installed and its access scopes: %w", cfg.Shop, err)
		case http.StatusNotFound:
			return fmt.Errorf("shop %q: no such shop, or api_version %q does not exist (check shop is the myshopify.com domain under Settings → Domains): %w", cfg.Shop, cfg.APIVersion, err)
		case http.StatusPaymentRequired:
			return fmt.Errorf("shop %q is frozen (its plan is unpaid), and its API answers nothing: %w", cfg.Shop, err)
		case http.StatusLocked:
			return fmt.Errorf("shop %q is locked by Shopify: %w", cfg.Shop, err)
		}
	}
	if ge := asGraphQLError(err); ge != nil && ge.Has(CodeAccessDenied) {
		return fmt.Errorf("the access token lacks an access scope the query needs (read_products; read_inventory for inventory quantities): add it to the app's Admin API scopes and reinstall the app: %w", err)
	}
	return err
}

// checkpoint is a sync's state.
//
// After a completed run: Since is the highest updated_at synced, Seen the
// ids and updated_at of the records synced with an updated_at within
// Overlap of it. The next run asks for updated_at >= Since − Overlap and
// skips what Seen has at the same updated_at.
//
// Within a run the same, with Partial set (and Full for a full run):
// pages come in updated_at order, so everything older than Since has been
// synced, and a retry resumes from Since as an incremental run would.
type checkpoint struct {
	Since   string            `json:"since,omitempty"`
	Seen    map[string]string `json:"seen,omitempty"`
	Partial bool              `json:"partial,omitempty"`
	Full    bool              `json:"full,omitempty"`
}

func (cp checkpoint) sdk() sdk.Checkpoint {
	out := sdk.Checkpoint{}
	if cp.Since != "" {
		out["since"] = cp.Since
	}
	if len(cp.Seen) > 0 {
		seen := make(map[string]any, len(cp.Seen))
		for k, v := range cp.Seen {
			seen[k] = v
		}
		out["seen"] = seen
	}
	if cp.Partial {
		out["partial"] = true
	}
	if cp.Full {
		out["full"] = true
	}
	return out
}

// progress is a run's high-water mark.
type progress struct {
	// floor is the updated_at the run asks from ("" for everything).
	floor time.Time
	since time.Time
	seen  map[string]time.Time
}

func parseUTC(s string) (time.Time, error) { return time.Parse(time.RFC3339Nano, s) }

// start sets a run up from the last checkpoint: a full run reads
// everything, unless it is the retry of an interrupted full run.
func start(prev checkpoint, full bool) (*progress, error) {
	p := &progress{seen: map[string]time.Time{}}
	if full && !(prev.Partial && prev.Full) || prev.Since == "" {
		return p, nil
	}
	since, err := parseUTC(prev.Since)
	if err != nil {
		return nil, fmt.Errorf("the checkpoint's since %q is not a time; reset the sync", prev.Since)
	}
	p.since = since
	p.floor = since.Add(-Overlap)
	for id, at := range prev.Seen {
		t, err := parseUTC(at)
		if err != nil {
			return nil, fmt.Errorf("the checkpoint's time %q of record %s is not a time; reset the sync", at, id)
		}
		p.seen[id] = t
	}
	return p, nil
}

// filter is the search query of the run.
func (p *progress) filter() string {
	if p.floor.IsZero() {
		return ""
	}
	return fmt.Sprintf("updated_at:>='%s'", p.floor.UTC().Format(time.RFC3339))
}

// unchanged tells whether the record was synced already at this
// updated_at, or is older than the run asked for (Shopify ignored the
// filter).
func (p *progress) unchanged(id string, updated time.Time) bool {
	if !p.floor.IsZero() && updated.Before(p.floor) {
		return true
	}
	t, ok := p.seen[id]
	return ok && t.Equal(updated)
}

// see records a synced record.
func (p *progress) see(id string, updated time.Time) {
	if updated.After(p.since) {
		p.since = updated
	}
	if !updated.Before(p.since.Add(-Overlap)) {
		p.seen[id] = updated
	}
}

// checkpoint is the state to save: the overlap's records, at most MaxSeen
// of the newest.
func (p *progress) checkpoint(partial, full bool) checkpoint {
	cp := checkpoint{Partial: partial, Full: partial && full}
	if p.since.IsZero() {
		return cp
	}
	cp.Since = p.since.UTC().Format(time.RFC3339Nano)
	edge := p.since.Add(-Overlap)
	type entry struct {
		id string
		at time.Time
	}
	var keep []entry
	for id, at := range p.seen {
		if at.Before(edge) {
			delete(p.seen, id)
			continue
		}
		keep = append(keep, entry{id, at})
	}
	if len(keep) > MaxSeen {
		sort.Slice(keep, func(i, j int) bool { return keep[i].at.After(keep[j].at) })
		for _, e := range keep[MaxSeen:] {
			delete(p.seen, e.id)
		}
		keep = keep[:MaxSeen]
	}
	cp.Seen = make(map[string]string, len(keep))
	for _, e := range keep {
		cp.Seen[e.id] = e.at.UTC().Format(time.RFC3339Nano)
	}
	return cp
}

// Sync implements sdk.Connector: it reads the sync's model page by page
// in updated_at order, all of it on a full run, what changed since the
// checkpoint on an incremental one, with a checkpoint after each page.
func (s *Shopify) Sync(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	var prev checkpoint
	if req.Checkpoint != nil {
		if err := req.Checkpoint.Decode(&prev); err != nil {
			return fmt.Errorf("the checkpoint is not one of this connector's; reset the sync: %w", err)
		}
	}
	p, err := start(prev, req.Full)
	if err != nil {
		return err
	}
	full := req.Full || prev.Partial && prev.Full
	a := newAPI(cfg, s.HTTP, s.Wait, req.Logger)
	defer a.close()
	var model string
	var page func(ctx context.Context, after string) ([]record, gqlPageInfo, error)
	switch req.Sync {
	case ProductsSync:
		model, page = ProductModel, func(ctx context.Context, after string) ([]record, gqlPageInfo, error) {
			return a.productsPage(ctx, after, p.filter())
		}
	case CollectionsSync:
		model, page = CollectionModel, func(ctx context.Context, after string) ([]record, gqlPageInfo, error) {
			return a.collectionsPage(ctx, after, p.filter())
		}
	default:
		return fmt.Errorf("sync %q: the shopify connector's syncs are %q and %q", req.Sync, ProductsSync, CollectionsSync)
	}
	if f := p.filter(); f != "" {
		req.Logger.Info("incremental run", "sync", req.Sync, "query", f)
	}
	var saved, skipped int64
	after := ""
	for {
		recs, info, err := page(ctx, after)
		if err != nil {
			return explain(cfg, err)
		}
		for _, r := range recs {
			if p.unchanged(r.id, r.updated) {
				skipped++
				continue
			}
			if err := w.Save(ctx, model, r.data); err != nil {
				return err
			}
			saved++
			p.see(r.id, r.updated)
		}
		if err := w.Progress(ctx, model, saved, 0); err != nil {
			return err
		}
		more := info.HasNextPage && info.EndCursor != ""
		if err := w.Checkpoint(ctx, p.checkpoint(more, full).sdk()); err != nil {
			return err
		}
		if !more {
			break
		}
		after = info.EndCursor
	}
	req.Logger.Info("synced", "sync", req.Sync, "saved", saved, "skipped_unchanged", skipped)
	return nil
}

// record is a record to save with what the run needs of it.
type record struct {
	id      string
	updated time.Time
	data    any
}

func recordOf(id, updated string, data any) (record, error) {
	t, err := parseUTC(updated)
	if err != nil {
		return record{}, fmt.Errorf("record %s: updated_at %q is not a time", id, updated)
	}
	return record{id: id, updated: t, data: data}, nil
}

// productsPage reads a page of products (and the further variants and
// images of those that have more than the page holds).
func (a *api) productsPage(ctx context.Context, after, filter string) ([]record, gqlPageInfo, error) {
	var out struct {
		Products struct {
			PageInfo gqlPageInfo  `json:"pageInfo"`
			Nodes    []gqlProduct `json:"nodes"`
		} `json:"products"`
	}
	vars := map[string]any{"first": ProductsPage, "variants": VariantsPage, "images": ImagesPage, "after": nilIfEmpty(after), "query": nilIfEmpty(filter)}
	if err := a.queryShrinking(ctx, "Products", productsQuery, vars, &out); err != nil {
		return nil, gqlPageInfo{}, err
	}
	recs := make([]record, 0, len(out.Products.Nodes))
	for i := range out.Products.Nodes {
		rec, err := a.product(ctx, &out.Products.Nodes[i])
		if err != nil {
			return nil, gqlPageInfo{}, err
		}
		r, err := recordOf(rec.ID, rec.UpdatedAt, rec)
		if err != nil {
			return nil, gqlPageInfo{}, err
		}
		recs = append(recs, r)
	}
	return recs, out.Products.PageInfo, nil
}

// queryShrinking runs a page query, halving its "first" while Shopify
// answers MAX_COST_EXCEEDED (its cost rules may price a page above the
// limit the connector planned for).
func (a *api) queryShrinking(ctx context.Context, name, query string, vars map[string]any, out any) error {
	for {
		err := a.query(ctx, name, query, vars, out)
		ge := asGraphQLError(err)
		first, _ := vars["first"].(int)
		if ge == nil || !ge.Has(CodeMaxCostExceeded) || first <= 1 {
			return err
		}
		vars["first"] = first / 2
		a.log.Warn("the query costs more than Shopify allows at once; asking for smaller pages", "query", name, "first", first/2)
	}
}

// product maps a product of a page, fetching its further variants and
// images.
func (a *api) product(ctx context.Context, p *gqlProduct) (*Product, error) {
	variants, images := p.Variants.Nodes, p.Images.Nodes
	vi, ii := p.Variants.PageInfo, p.Images.PageInfo
	for vi.HasNextPage && vi.EndCursor != "" {
		var out struct {
			Product *struct {
				Variants gqlVariants `json:"variants"`
			} `json:"product"`
		}
		if err := a.query(ctx, "ProductVariants", productVariantsQuery, map[string]any{"id": p.ID, "first": MaxNestedPage, "after": vi.EndCursor}, &out); err != nil {
			return nil, err
		}
		if out.Product == nil {
			break // deleted meanwhile: the page's variants stand
		}
		variants = append(variants, out.Product.Variants.Nodes...)
		vi = out.Product.Variants.PageInfo
	}
	for ii.HasNextPage && ii.EndCursor != "" {
		var out struct {
			Product *struct {
				Images gqlImages `json:"images"`
			} `json:"product"`
		}
		if err := a.query(ctx, "ProductImages", productImagesQuery, map[string]any{"id": p.ID, "first": MaxNestedPage, "after": ii.EndCursor}, &out); err != nil {
			return nil, err
		}
		if out.Product == nil {
			break
		}
		images = append(images, out.Product.Images.Nodes...)
		ii = out.Product.Images.PageInfo
	}
	return productOf(p, variants, images)
}

// collectionsPage reads a page of collections with all their product ids.
func (a *api) collectionsPage(ctx context.Context, after, filter string) ([]record, gqlPageInfo, error) {
	var out struct {
		Collections struct {
			PageInfo gqlPageInfo     `json:"pageInfo"`
			Nodes    []gqlCollection `json:"nodes"`
		} `json:"collections"`
	}
	vars := map[string]any{"first": CollectionsPage, "productIDs": CollectionIDPage, "after": nilIfEmpty(after), "query": nilIfEmpty(filter)}
	if err := a.queryShrinking(ctx, "Collections", collectionsQuery, vars, &out); err != nil {
		return nil, gqlPageInfo{}, err
	}
	recs := make([]record, 0, len(out.Collections.Nodes))
	for i := range out.Collections.Nodes {
		rec, err := a.collection(ctx, &out.Collections.Nodes[i])
		if err != nil {
			return nil, gqlPageInfo{}, err
		}
		r, err := recordOf(rec.ID, rec.UpdatedAt, rec)
		if err != nil {
			return nil, gqlPageInfo{}, err
		}
		recs = append(recs, r)
	}
	return recs, out.Collections.PageInfo, nil
}

// collection maps a collection, fetching the rest of its product ids.
func (a *api) collection(ctx context.Context, c *gqlCollection) (*Collection, error) {
	var gids []string
	for _, n := range c.Products.Nodes {
		gids = append(gids, n.ID)
	}
	pi := c.Products.PageInfo
	for pi.HasNextPage && pi.EndCursor != "" {
		var out struct {
			Collection *struct {
				Products gqlIDs `json:"products"`
			} `json:"collection"`
		}
		if err := a.query(ctx, "CollectionProducts", collectionProductsQuery, map[string]any{"id": c.ID, "first": MaxNestedPage, "after": pi.EndCursor}, &out); err != nil {
			return nil, err
		}
		if out.Collection == nil {
			break
		}
		for _, n := range out.Collection.Products.Nodes {
			gids = append(gids, n.ID)
		}
		pi = out.Collection.Products.PageInfo
	}
	return collectionOf(c, gids)
}

// collectionByID reads one collection; nil when the shop has none of
// that id (any more).
func (a *api) collectionByID(ctx context.Context, id string) (*Collection, error) {
	var out struct {
		Collection *gqlCollection `json:"collection"`
	}
	if err := a.query(ctx, "Collection", collectionQuery, map[string]any{"id": "gid://shopify/Collection/" + id, "productIDs": CollectionIDPage}, &out); err != nil {
		return nil, err
	}
	if out.Collection == nil {
		return nil, nil
	}
	return a.collection(ctx, out.Collection)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

var errNoSecret = errors.New("payload webhooks are off for this source: set webhook_secret to the app's client secret (the app's API credentials in the Shopify admin or Partner Dashboard), which signs its webhooks, to accept them")
