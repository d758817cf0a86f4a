package shopifytest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Webhook topics the fake renders.
const (
	TopicProductsCreate    = "products/create"
	TopicProductsUpdate    = "products/update"
	TopicProductsDelete    = "products/delete"
	TopicCollectionsCreate = "collections/create"
	TopicCollectionsUpdate = "collections/update"
	TopicCollectionsDelete = "collections/delete"
)

// ShopZone is the shop's time zone: webhook payloads carry local times
// with their offset, as Shopify's REST resources do.
var ShopZone = time.FixedZone("EST", -5*60*60)

// Sign is Shopify's webhook signature: the base64 HMAC-SHA256 of the raw
// body with the app's client secret (X-Shopify-Hmac-Sha256).
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// WebhookRequest renders the webhook Shopify would send for topic about
// the record id: its body (the REST resource's JSON, or {"id": …} for a
// delete) and its headers, signed with secret.
func (s *Server) WebhookRequest(topic string, id int64, secret string) (http.Header, []byte, error) {
	body, err := s.WebhookPayload(topic, id)
	if err != nil {
		return nil, nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Shopify-Topic", topic)
	h.Set("X-Shopify-Hmac-Sha256", Sign(secret, body))
	h.Set("X-Shopify-Shop-Domain", s.Shop)
	h.Set("X-Shopify-API-Version", SupportedVersions[len(SupportedVersions)-2])
	s.mu.Lock()
	n := s.id()
	s.mu.Unlock()
	h.Set("X-Shopify-Webhook-Id", fmt.Sprintf("b54557e4-bdd9-4b37-8a5f-%012d", n))
	h.Set("X-Shopify-Event-Id", fmt.Sprintf("98880550-7158-44d4-b7cd-%012d", n))
	h.Set("X-Shopify-Triggered-At", time.Now().UTC().Format(time.RFC3339Nano))
	return h, body, nil
}

// WebhookPayload renders the body of a webhook for topic about id.
func (s *Server) WebhookPayload(topic string, id int64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch topic {
	case TopicProductsDelete, TopicCollectionsDelete:
		return json.Marshal(map[string]int64{"id": id})
	case TopicProductsCreate, TopicProductsUpdate:
		p, ok := s.products[id]
		if !ok {
			return nil, ErrNotFound
		}
		return json.Marshal(restProduct(p))
	case TopicCollectionsCreate, TopicCollectionsUpdate:
		c, ok := s.collections[id]
		if !ok {
			return nil, ErrNotFound
		}
		return json.Marshal(restCollection(c))
	}
	return nil, fmt.Errorf("shopifytest: topic %q is not one of products/create|update|delete, collections/create|update|delete", topic)
}

func local(t time.Time) string { return t.In(ShopZone).Format(time.RFC3339) }

func localPtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := local(*t)
	return &s
}

// The REST resources, field for field as Shopify's webhook payloads
// carry them (in their order).
type (
	restProductJSON struct {
		AdminGraphqlAPIID string            `json:"admin_graphql_api_id"`
		BodyHTML          *string           `json:"body_html"`
		CreatedAt         string            `json:"created_at"`
		Handle            string            `json:"handle"`
		ID                int64             `json:"id"`
		ProductType       string            `json:"product_type"`
		PublishedAt       *string           `json:"published_at"`
		TemplateSuffix    *string           `json:"template_suffix"`
		Title             string            `json:"title"`
		UpdatedAt         string            `json:"updated_at"`
		Vendor            string            `json:"vendor"`
		Status            string            `json:"status"`
		PublishedScope    string            `json:"published_scope"`
		Tags              string            `json:"tags"`
		Variants          []restVariantJSON `json:"variants"`
		Options           []restOptionJSON  `json:"options"`
		Images            []restImageJSON   `json:"images"`
		Image             *restImageJSON    `json:"image"`
		Media             []any             `json:"media"`
		VariantGids       []restVariantGID  `json:"variant_gids"`
		HasVariantsThat   bool              `json:"has_variants_that_requires_components"`
		Category          any               `json:"category"`
	}
	restVariantJSON struct {
		AdminGraphqlAPIID    string  `json:"admin_graphql_api_id"`
		Barcode              *string `json:"barcode"`
		CompareAtPrice       *string `json:"compare_at_price"`
		CreatedAt            string  `json:"created_at"`
		ID                   int64   `json:"id"`
		InventoryPolicy      string  `json:"inventory_policy"`
		Position             int     `json:"position"`
		Price                string  `json:"price"`
		ProductID            int64   `json:"product_id"`
		SKU                  *string `json:"sku"`
		Taxable              bool    `json:"taxable"`
		Title                string  `json:"title"`
		UpdatedAt            string  `json:"updated_at"`
		Option1              *string `json:"option1"`
		Option2              *string `json:"option2"`
		Option3              *string `json:"option3"`
		ImageID              *int64  `json:"image_id"`
		InventoryItemID      int64   `json:"inventory_item_id"`
		InventoryQuantity    int     `json:"inventory_quantity"`
		OldInventoryQuantity int     `json:"old_inventory_quantity"`
	}
	restOptionJSON struct {
		Name      string   `json:"name"`
		ID        int64    `json:"id"`
		ProductID int64    `json:"product_id"`
		Position  int      `json:"position"`
		Values    []string `json:"values"`
	}
	restImageJSON struct {
		ID                int64   `json:"id"`
		Alt               *string `json:"alt"`
		Position          int     `json:"position"`
		ProductID         int64   `json:"product_id"`
		CreatedAt         string  `json:"created_at"`
		UpdatedAt         string  `json:"updated_at"`
		AdminGraphqlAPIID string  `json:"admin_graphql_api_id"`
		Width             int     `json:"width"`
		Height            int     `json:"height"`
		Src               string  `json:"src"`
		VariantIDs        []int64 `json:"variant_ids"`
	}
	restVariantGID struct {
		AdminGraphqlAPIID string `json:"admin_graphql_api_id"`
		UpdatedAt         string `json:"updated_at"`
	}
	restCollectionJSON struct {
		ID                int64   `json:"id"`
		Handle            string  `json:"handle"`
		Title             string  `json:"title"`
		UpdatedAt         string  `json:"updated_at"`
		BodyHTML          *string `json:"body_html"`
		PublishedAt       *string `json:"published_at"`
		SortOrder         string  `json:"sort_order"`
		TemplateSuffix    *string `json:"template_suffix"`
		PublishedScope    string  `json:"published_scope"`
		AdminGraphqlAPIID string  `json:"admin_graphql_api_id"`
	}
)

func restProduct(p *Product) restProductJSON {
	out := restProductJSON{
		AdminGraphqlAPIID: GID("Product", p.ID), CreatedAt: local(p.CreatedAt), Handle: p.Handle, ID: p.ID,
		ProductType: p.ProductType, PublishedAt: localPtr(p.PublishedAt), TemplateSuffix: p.TemplateSuffix,
		Title: p.Title, UpdatedAt: local(p.UpdatedAt), Vendor: p.Vendor, Status: strings.ToLower(p.Status),
		PublishedScope: "web", Tags: strings.Join(p.Tags, ", "),
		Variants: []restVariantJSON{}, Options: []restOptionJSON{}, Images: []restImageJSON{}, Media: []any{}, VariantGids: []restVariantGID{},
	}
	if p.DescriptionHTML != "" {
		b := p.DescriptionHTML
		out.BodyHTML = &b
	}
	for i, v := range p.Variants {
		rv := restVariantJSON{
			AdminGraphqlAPIID: GID("ProductVariant", v.ID), Barcode: v.Barcode, CompareAtPrice: v.CompareAtPrice,
			CreatedAt: local(v.CreatedAt), ID: v.ID, InventoryPolicy: "deny", Position: i + 1, Price: v.Price,
			ProductID: p.ID, Taxable: v.Taxable, Title: v.Title, UpdatedAt: local(v.UpdatedAt),
			InventoryItemID: v.ID + 1_000_000, InventoryQuantity: v.InventoryQuantity, OldInventoryQuantity: v.InventoryQuantity,
		}
		if v.SKU != "" {
			sku := v.SKU
			rv.SKU = &sku
		}
		opts := []**string{&rv.Option1, &rv.Option2, &rv.Option3}
		for j, val := range v.OptionValues {
			if j < len(opts) {
				x := val
				*opts[j] = &x
			}
		}
		out.Variants = append(out.Variants, rv)
		out.VariantGids = append(out.VariantGids, restVariantGID{AdminGraphqlAPIID: rv.AdminGraphqlAPIID, UpdatedAt: v.UpdatedAt.UTC().Format("2006-01-02T15:04:05.000Z")})
	}
	for i, o := range p.Options {
		out.Options = append(out.Options, restOptionJSON{Name: o.Name, ID: o.ID, ProductID: p.ID, Position: i + 1, Values: o.Values})
	}
	for i, img := range p.Images {
		ri := restImageJSON{
			ID: img.ID, Alt: img.AltText, Position: i + 1, ProductID: p.ID, CreatedAt: local(img.CreatedAt), UpdatedAt: local(img.UpdatedAt),
			AdminGraphqlAPIID: GID("ProductImage", img.ID), Width: img.Width, Height: img.Height, Src: img.URL, VariantIDs: []int64{},
		}
		out.Images = append(out.Images, ri)
	}
	if len(out.Images) > 0 {
		first := out.Images[0]
		out.Image = &first
	}
	return out
}

func restCollection(c *Collection) restCollectionJSON {
	out := restCollectionJSON{
		ID: c.ID, Handle: c.Handle, Title: c.Title, UpdatedAt: local(c.UpdatedAt), PublishedAt: localPtr(c.PublishedAt),
		SortOrder: strings.ReplaceAll(strings.ToLower(c.SortOrder), "_", "-"), TemplateSuffix: c.TemplateSuffix,
		PublishedScope: "web", AdminGraphqlAPIID: GID("Collection", c.ID),
	}
	if c.DescriptionHTML != "" {
		b := c.DescriptionHTML
		out.BodyHTML = &b
	}
	return out
}
