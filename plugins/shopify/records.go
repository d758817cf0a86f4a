package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// The records. A product or collection has one shape whether it came from
// a poll (the Admin GraphQL API) or from a webhook (Shopify's REST-shaped
// payload): snake_case attributes as Shopify's REST resources and webhook
// payloads name them, ids as the numeric id in a string (the global id
// beside it as admin_graphql_api_id), times in UTC RFC 3339, tags as a
// list, status and sort order in the REST spelling ("active",
// "best-selling"), money as a decimal string with at least two decimals.

// Product is the record of a product, with its options, variants and
// images inside.
type Product struct {
	ID                string          `json:"id"`
	AdminGraphQLAPIID string          `json:"admin_graphql_api_id"`
	Title             string          `json:"title"`
	Handle            string          `json:"handle"`
	BodyHTML          string          `json:"body_html"`
	Vendor            string          `json:"vendor"`
	ProductType       string          `json:"product_type"`
	Status            string          `json:"status"`
	Tags              []string        `json:"tags"`
	TemplateSuffix    *string         `json:"template_suffix"`
	CreatedAt         string          `json:"created_at"`
	UpdatedAt         string          `json:"updated_at"`
	PublishedAt       *string         `json:"published_at"`
	Options           []ProductOption `json:"options"`
	Variants          []Variant       `json:"variants"`
	Images            []Image         `json:"images"`
}

// ProductOption is an option of a product (Size) with its values.
type ProductOption struct {
	Name     string   `json:"name"`
	Position int      `json:"position"`
	Values   []string `json:"values"`
}

// Variant is a variant of a product.
type Variant struct {
	ID                string  `json:"id"`
	AdminGraphQLAPIID string  `json:"admin_graphql_api_id"`
	Title             string  `json:"title"`
	SKU               string  `json:"sku"`
	Barcode           *string `json:"barcode"`
	Price             string  `json:"price"`
	CompareAtPrice    *string `json:"compare_at_price"`
	Position          int     `json:"position"`
	InventoryQuantity *int64  `json:"inventory_quantity"`
	Taxable           bool    `json:"taxable"`
	// Options are the variant's values of the product's options, in order.
	Options   []string `json:"options"`
	CreatedAt string   `json:"created_at"`
	UpdatedAt string   `json:"updated_at"`
}

// Image is an image of a product.
type Image struct {
	ID                string  `json:"id"`
	AdminGraphQLAPIID string  `json:"admin_graphql_api_id"`
	Src               string  `json:"src"`
	Alt               *string `json:"alt"`
	Width             *int64  `json:"width"`
	Height            *int64  `json:"height"`
	Position          int     `json:"position"`
}

// Collection is the record of a collection, with the ids of its
// products in the collection's order.
type Collection struct {
	ID                string   `json:"id"`
	AdminGraphQLAPIID string   `json:"admin_graphql_api_id"`
	Title             string   `json:"title"`
	Handle            string   `json:"handle"`
	BodyHTML          string   `json:"body_html"`
	SortOrder         string   `json:"sort_order"`
	TemplateSuffix    *string  `json:"template_suffix"`
	UpdatedAt         string   `json:"updated_at"`
	ProductIDs        []string `json:"product_ids"`
}

// legacyID is the numeric id in a global id: gid://shopify/Product/123 → 123.
func legacyID(gid, kind string) (string, error) {
	rest, ok := strings.CutPrefix(gid, "gid://shopify/"+kind+"/")
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest = rest[:i]
	}
	if _, err := strconv.ParseUint(rest, 10, 64); !ok || err != nil {
		return "", fmt.Errorf("%q is not a global id of a %s (gid://shopify/%s/<number>)", gid, kind, kind)
	}
	return rest, nil
}

// normTime is t in UTC RFC 3339; "" stays "".
func normTime(t string) (string, error) {
	if t == "" {
		return "", nil
	}
	x, err := time.Parse(time.RFC3339Nano, t)
	if err != nil {
		return "", fmt.Errorf("%q is not an RFC 3339 time", t)
	}
	return x.UTC().Format(time.RFC3339Nano), nil
}

func normTimePtr(t *string) (*string, error) {
	if t == nil || *t == "" {
		return nil, nil
	}
	s, err := normTime(*t)
	return &s, err
}

// normMoney writes a decimal amount with at least two decimals and no
// trailing zeros past them: "20" and "20.0" → "20.00", "1.2340" → "1.234".
func normMoney(s string) string {
	s = strings.TrimSpace(s)
	r, ok := new(big.Rat).SetString(s)
	if !ok || strings.ContainsAny(s, "eE/") {
		return s
	}
	out := r.FloatString(12)
	out = strings.TrimRight(out, "0")
	if i := strings.IndexByte(out, '.'); len(out)-i-1 < 2 {
		out += strings.Repeat("0", 2-(len(out)-i-1))
	}
	return out
}

func normMoneyPtr(s *string) *string {
	if s == nil || strings.TrimSpace(*s) == "" {
		return nil
	}
	m := normMoney(*s)
	return &m
}

// nonEmpty is nil for nil or "".
func nonEmpty(s *string) *string {
	if s == nil || *s == "" {
		return nil
	}
	return s
}

// restSpelling turns a GraphQL enum value into the REST spelling:
// BEST_SELLING → best-selling, ACTIVE → active.
func restSpelling(enum string) string {
	return strings.ReplaceAll(strings.ToLower(enum), "_", "-")
}

// splitTags reads REST's comma-separated tags.
func splitTags(s string) []string {
	tags := []string{}
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// The GraphQL shapes the connector's queries ask for.
type (
	gqlPageInfo struct {
		HasNextPage bool   `json:"hasNextPage"`
		EndCursor   string `json:"endCursor"`
	}
	gqlProduct struct {
		ID              string   `json:"id"`
		Title           string   `json:"title"`
		Handle          string   `json:"handle"`
		DescriptionHTML string   `json:"descriptionHtml"`
		Vendor          string   `json:"vendor"`
		ProductType     string   `json:"productType"`
		Status          string   `json:"status"`
		Tags            []string `json:"tags"`
		TemplateSuffix  *string  `json:"templateSuffix"`
		CreatedAt       string   `json:"createdAt"`
		UpdatedAt       string   `json:"updatedAt"`
		PublishedAt     *string  `json:"publishedAt"`
		Options         []struct {
			Name     string   `json:"name"`
			Position int      `json:"position"`
			Values   []string `json:"values"`
		} `json:"options"`
		Variants gqlVariants `json:"variants"`
		Images   gqlImages   `json:"images"`
	}
	gqlVariants struct {
		PageInfo gqlPageInfo  `json:"pageInfo"`
		Nodes    []gqlVariant `json:"nodes"`
	}
	gqlVariant struct {
		ID                string  `json:"id"`
		Title             string  `json:"title"`
		SKU               *string `json:"sku"`
		Barcode           *string `json:"barcode"`
		Price             string  `json:"price"`
		CompareAtPrice    *string `json:"compareAtPrice"`
		Position          int     `json:"position"`
		InventoryQuantity *int64  `json:"inventoryQuantity"`
		Taxable           bool    `json:"taxable"`
		CreatedAt         string  `json:"createdAt"`
		UpdatedAt         string  `json:"updatedAt"`
		SelectedOptions   []struct {
			Value string `json:"value"`
		} `json:"selectedOptions"`
	}
	gqlImages struct {
		PageInfo gqlPageInfo `json:"pageInfo"`
		Nodes    []gqlImage  `json:"nodes"`
	}
	gqlImage struct {
		ID      string  `json:"id"`
		URL     string  `json:"url"`
		AltText *string `json:"altText"`
		Width   *int64  `json:"width"`
		Height  *int64  `json:"height"`
	}
	gqlCollection struct {
		ID              string  `json:"id"`
		Title           string  `json:"title"`
		Handle          string  `json:"handle"`
		DescriptionHTML string  `json:"descriptionHtml"`
		SortOrder       string  `json:"sortOrder"`
		TemplateSuffix  *string `json:"templateSuffix"`
		UpdatedAt       string  `json:"updatedAt"`
		Products        gqlIDs  `json:"products"`
	}
	gqlIDs struct {
		PageInfo gqlPageInfo `json:"pageInfo"`
		Nodes    []struct {
			ID string `json:"id"`
		} `json:"nodes"`
	}
)

// productOf maps a product of the GraphQL API; variants and images are
// those given (the product's first page of each plus any further pages).
func productOf(p *gqlProduct, variants []gqlVariant, images []gqlImage) (*Product, error) {
	id, err := legacyID(p.ID, "Product")
	if err != nil {
		return nil, err
	}
	rec := &Product{
		ID: id, AdminGraphQLAPIID: p.ID, Title: p.Title, Handle: p.Handle, BodyHTML: p.DescriptionHTML,
		Vendor: p.Vendor, ProductType: p.ProductType, Status: restSpelling(p.Status), Tags: p.Tags,
		TemplateSuffix: nonEmpty(p.TemplateSuffix), Options: []ProductOption{}, Variants: []Variant{}, Images: []Image{},
	}
	if rec.Tags == nil {
		rec.Tags = []string{}
	}
	if rec.CreatedAt, err = normTime(p.CreatedAt); err != nil {
		return nil, fmt.Errorf("product %s: createdAt %w", id, err)
	}
	if rec.UpdatedAt, err = normTime(p.UpdatedAt); err != nil {
		return nil, fmt.Errorf("product %s: updatedAt %w", id, err)
	}
	if rec.PublishedAt, err = normTimePtr(p.PublishedAt); err != nil {
		return nil, fmt.Errorf("product %s: publishedAt %w", id, err)
	}
	for _, o := range p.Options {
		rec.Options = append(rec.Options, ProductOption{Name: o.Name, Position: o.Position, Values: nonNil(o.Values)})
	}
	for _, v := range variants {
		vid, err := legacyID(v.ID, "ProductVariant")
		if err != nil {
			return nil, fmt.Errorf("product %s: %w", id, err)
		}
		rv := Variant{
			ID: vid, AdminGraphQLAPIID: v.ID, Title: v.Title, Barcode: nonEmpty(v.Barcode), Price: normMoney(v.Price),
			CompareAtPrice: normMoneyPtr(v.CompareAtPrice), Position: v.Position, InventoryQuantity: v.InventoryQuantity,
			Taxable: v.Taxable, Options: []string{},
		}
		if v.SKU != nil {
			rv.SKU = *v.SKU
		}
		for _, so := range v.SelectedOptions {
			rv.Options = append(rv.Options, so.Value)
		}
		if rv.CreatedAt, err = normTime(v.CreatedAt); err != nil {
			return nil, fmt.Errorf("product %s: variant %s: createdAt %w", id, vid, err)
		}
		if rv.UpdatedAt, err = normTime(v.UpdatedAt); err != nil {
			return nil, fmt.Errorf("product %s: variant %s: updatedAt %w", id, vid, err)
		}
		rec.Variants = append(rec.Variants, rv)
	}
	for i, img := range images {
		iid, err := legacyID(img.ID, "ProductImage")
		if err != nil {
			return nil, fmt.Errorf("product %s: %w", id, err)
		}
		rec.Images = append(rec.Images, Image{ID: iid, AdminGraphQLAPIID: img.ID, Src: img.URL, Alt: nonEmpty(img.AltText), Width: img.Width, Height: img.Height, Position: i + 1})
	}
	return rec, nil
}

// collectionOf maps a collection of the GraphQL API with the global ids
// of all its products.
func collectionOf(c *gqlCollection, productGIDs []string) (*Collection, error) {
	id, err := legacyID(c.ID, "Collection")
	if err != nil {
		return nil, err
	}
	rec := &Collection{
		ID: id, AdminGraphQLAPIID: c.ID, Title: c.Title, Handle: c.Handle, BodyHTML: c.DescriptionHTML,
		SortOrder: restSpelling(c.SortOrder), TemplateSuffix: nonEmpty(c.TemplateSuffix), ProductIDs: []string{},
	}
	if rec.UpdatedAt, err = normTime(c.UpdatedAt); err != nil {
		return nil, fmt.Errorf("collection %s: updatedAt %w", id, err)
	}
	for _, gid := range productGIDs {
		pid, err := legacyID(gid, "Product")
		if err != nil {
			return nil, fmt.Errorf("collection %s: %w", id, err)
		}
		rec.ProductIDs = append(rec.ProductIDs, pid)
	}
	return rec, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// The REST shapes of Shopify's webhook payloads (products/create and
// products/update carry the product resource; the delete topics {"id": …}).
type (
	restProduct struct {
		ID                json.Number   `json:"id"`
		AdminGraphQLAPIID string        `json:"admin_graphql_api_id"`
		Title             string        `json:"title"`
		Handle            string        `json:"handle"`
		BodyHTML          *string       `json:"body_html"`
		Vendor            string        `json:"vendor"`
		ProductType       string        `json:"product_type"`
		Status            string        `json:"status"`
		Tags              string        `json:"tags"`
		TemplateSuffix    *string       `json:"template_suffix"`
		CreatedAt         string        `json:"created_at"`
		UpdatedAt         string        `json:"updated_at"`
		PublishedAt       *string       `json:"published_at"`
		Options           []restOption  `json:"options"`
		Variants          []restVariant `json:"variants"`
		Images            []restImage   `json:"images"`
	}
	restOption struct {
		Name     string   `json:"name"`
		Position int      `json:"position"`
		Values   []string `json:"values"`
	}
	restVariant struct {
		ID                json.Number  `json:"id"`
		AdminGraphQLAPIID string       `json:"admin_graphql_api_id"`
		Title             string       `json:"title"`
		SKU               *string      `json:"sku"`
		Barcode           *string      `json:"barcode"`
		Price             json.Number  `json:"price"`
		CompareAtPrice    *json.Number `json:"compare_at_price"`
		Position          int          `json:"position"`
		InventoryQuantity *int64       `json:"inventory_quantity"`
		Taxable           bool         `json:"taxable"`
		Option1           *string      `json:"option1"`
		Option2           *string      `json:"option2"`
		Option3           *string      `json:"option3"`
		CreatedAt         string       `json:"created_at"`
		UpdatedAt         string       `json:"updated_at"`
	}
	restImage struct {
		ID                json.Number `json:"id"`
		AdminGraphQLAPIID string      `json:"admin_graphql_api_id"`
		Src               string      `json:"src"`
		Alt               *string     `json:"alt"`
		Width             *int64      `json:"width"`
		Height            *int64      `json:"height"`
		Position          int         `json:"position"`
	}
)

// decodeStrict decodes one JSON object with numbers kept exact.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// numericID checks a REST id: a positive whole number.
func numericID(n json.Number, what string) (string, error) {
	if _, err := strconv.ParseUint(n.String(), 10, 64); err != nil || n.String() == "0" {
		return "", fmt.Errorf("%s id %q is not a positive whole number", what, n.String())
	}
	return n.String(), nil
}

// productFromWebhook maps the payload of products/create or
// products/update.
func productFromWebhook(body []byte) (*Product, error) {
	var p restProduct
	if err := decodeStrict(body, &p); err != nil {
		return nil, fmt.Errorf("the body is not a product: %w", err)
	}
	id, err := numericID(p.ID, "the product's")
	if err != nil {
		return nil, err
	}
	rec := &Product{
		ID: id, AdminGraphQLAPIID: p.AdminGraphQLAPIID, Title: p.Title, Handle: p.Handle, Vendor: p.Vendor,
		ProductType: p.ProductType, Status: restSpelling(p.Status), Tags: splitTags(p.Tags), TemplateSuffix: nonEmpty(p.TemplateSuffix),
		Options: []ProductOption{}, Variants: []Variant{}, Images: []Image{},
	}
	if rec.AdminGraphQLAPIID == "" {
		rec.AdminGraphQLAPIID = "gid://shopify/Product/" + id
	}
	if p.BodyHTML != nil {
		rec.BodyHTML = *p.BodyHTML
	}
	if rec.CreatedAt, err = normTime(p.CreatedAt); err != nil {
		return nil, fmt.Errorf("product %s: created_at %w", id, err)
	}
	if rec.UpdatedAt, err = normTime(p.UpdatedAt); err != nil {
		return nil, fmt.Errorf("product %s: updated_at %w", id, err)
	}
	if rec.PublishedAt, err = normTimePtr(p.PublishedAt); err != nil {
		return nil, fmt.Errorf("product %s: published_at %w", id, err)
	}
	for _, o := range p.Options {
		rec.Options = append(rec.Options, ProductOption{Name: o.Name, Position: o.Position, Values: nonNil(o.Values)})
	}
	for _, v := range p.Variants {
		vid, err := numericID(v.ID, "a variant's")
		if err != nil {
			return nil, fmt.Errorf("product %s: %w", id, err)
		}
		rv := Variant{
			ID: vid, AdminGraphQLAPIID: v.AdminGraphQLAPIID, Title: v.Title, Barcode: nonEmpty(v.Barcode), Price: normMoney(v.Price.String()),
			Position: v.Position, InventoryQuantity: v.InventoryQuantity, Taxable: v.Taxable, Options: []string{},
		}
		if rv.AdminGraphQLAPIID == "" {
			rv.AdminGraphQLAPIID = "gid://shopify/ProductVariant/" + vid
		}
		if v.SKU != nil {
			rv.SKU = *v.SKU
		}
		if v.CompareAtPrice != nil {
			s := v.CompareAtPrice.String()
			rv.CompareAtPrice = normMoneyPtr(&s)
		}
		for _, o := range []*string{v.Option1, v.Option2, v.Option3} {
			if o != nil {
				rv.Options = append(rv.Options, *o)
			}
		}
		if rv.CreatedAt, err = normTime(v.CreatedAt); err != nil {
			return nil, fmt.Errorf("product %s: variant %s: created_at %w", id, vid, err)
		}
		if rv.UpdatedAt, err = normTime(v.UpdatedAt); err != nil {
			return nil, fmt.Errorf("product %s: variant %s: updated_at %w", id, vid, err)
		}
		rec.Variants = append(rec.Variants, rv)
	}
	for i, img := range p.Images {
		iid, err := numericID(img.ID, "an image's")
		if err != nil {
			return nil, fmt.Errorf("product %s: %w", id, err)
		}
		ri := Image{ID: iid, AdminGraphQLAPIID: img.AdminGraphQLAPIID, Src: img.Src, Alt: nonEmpty(img.Alt), Width: img.Width, Height: img.Height, Position: img.Position}
		if ri.AdminGraphQLAPIID == "" {
			ri.AdminGraphQLAPIID = "gid://shopify/ProductImage/" + iid
		}
		if ri.Position == 0 {
			ri.Position = i + 1
		}
		rec.Images = append(rec.Images, ri)
	}
	return rec, nil
}

// idFromWebhook reads the id of a webhook payload ({"id": 123, …}).
func idFromWebhook(body []byte, what string) (string, error) {
	var x struct {
		ID json.Number `json:"id"`
	}
	if err := decodeStrict(body, &x); err != nil {
		return "", fmt.Errorf("the body is not a %s: %w", what, err)
	}
	if x.ID == "" {
		return "", fmt.Errorf("the body has no %s id", what)
	}
	return numericID(x.ID, "the "+what+"'s")
}
