package shopifytest

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Product is a product of the fake shop. Zero ids and times are filled in
// by CreateProduct.
type Product struct {
	ID              int64
	Title           string
	Handle          string // default: the title, lowercased, dashes for spaces
	DescriptionHTML string
	Vendor          string
	ProductType     string
	Status          string // ACTIVE (default), ARCHIVED or DRAFT
	Tags            []string
	TemplateSuffix  *string
	CreatedAt       time.Time
	UpdatedAt       time.Time
	PublishedAt     *time.Time
	Options         []Option
	Variants        []Variant
	Images          []Image
}

// Option is a product option such as Size, with its values.
type Option struct {
	ID     int64
	Name   string
	Values []string
}

// Variant is a product variant.
type Variant struct {
	ID                int64
	Title             string // default: the option values joined by " / "
	SKU               string
	Barcode           *string
	Price             string // a decimal, "19.99"
	CompareAtPrice    *string
	InventoryQuantity int
	Taxable           bool
	// OptionValues are the variant's values of the product's options, in
	// the options' order.
	OptionValues []string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Image is a product image.
type Image struct {
	ID        int64
	URL       string
	AltText   *string
	Width     int
	Height    int
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Collection is a custom collection of the fake shop.
type Collection struct {
	ID              int64
	Title           string
	Handle          string
	DescriptionHTML string
	SortOrder       string // MANUAL (default), BEST_SELLING, ALPHA_ASC, …
	TemplateSuffix  *string
	UpdatedAt       time.Time
	PublishedAt     *time.Time
	// ProductIDs are the collection's products, in the collection's order.
	ProductIDs []int64
}

// GID is a Shopify global id: gid://shopify/<kind>/<id>.
func GID(kind string, id int64) string { return fmt.Sprintf("gid://shopify/%s/%d", kind, id) }

// handleize makes a handle out of a title as Shopify does by default.
func handleize(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

func (p *Product) clone() *Product {
	c := *p
	c.Tags = slices.Clone(p.Tags)
	c.Options = slices.Clone(p.Options)
	for i := range c.Options {
		c.Options[i].Values = slices.Clone(p.Options[i].Values)
	}
	c.Variants = slices.Clone(p.Variants)
	for i := range c.Variants {
		c.Variants[i].OptionValues = slices.Clone(p.Variants[i].OptionValues)
	}
	c.Images = slices.Clone(p.Images)
	return &c
}

func (c *Collection) clone() *Collection {
	x := *c
	x.ProductIDs = slices.Clone(c.ProductIDs)
	return &x
}

// totalInventory is the sum of the variants' inventory.
func (p *Product) totalInventory() int {
	n := 0
	for _, v := range p.Variants {
		n += v.InventoryQuantity
	}
	return n
}
