package main

import (
	"strings"
	"testing"

	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
	"github.com/synclayer/synclayer/plugins/shopify/shopifytest"
)

func TestConfigDefaultsAndErrors(t *testing.T) {
	c := &Config{Shop: " https://Demo.myshopify.com/ ", AccessToken: "shpat_x"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Shop != "demo.myshopify.com" || c.APIVersion != DefaultAPIVersion || c.endpoint() != "https://demo.myshopify.com/admin/api/"+DefaultAPIVersion+"/graphql.json" {
		t.Fatalf("%+v %s", c, c.endpoint())
	}
	c = &Config{Shop: "demo", AccessToken: "shpat_x", APIVersion: "unstable", BaseURL: "http://127.0.0.1:9/"}
	if err := c.Validate(); err != nil || c.Shop != "demo.myshopify.com" || c.endpoint() != "http://127.0.0.1:9/admin/api/unstable/graphql.json" {
		t.Fatalf("%v %+v", err, c)
	}
	for _, bad := range []struct {
		c    Config
		want string
	}{
		{Config{Shop: "", AccessToken: "x"}, "is not a shop domain"},
		{Config{Shop: "de mo", AccessToken: "x"}, "is not a shop domain"},
		{Config{Shop: "demo", AccessToken: " "}, "access_token must not be empty"},
		{Config{Shop: "demo", AccessToken: "x", APIVersion: "2026-02"}, `api_version "2026-02" is not an Admin API version`},
		{Config{Shop: "demo", AccessToken: "x", BaseURL: "ftp://x"}, "base_url"},
	} {
		if err := bad.c.Validate(); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want %q", bad.c, err, bad.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	h := sdktest.New(t, &Shopify{})
	d, err := h.Describe(nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "shopify" || d.Version != Version || !d.Webhooks || len(d.Models) != 2 || len(d.Syncs) != 2 {
		t.Fatalf("%+v", d)
	}
	for name, sensitive := range map[string]bool{"shop": false, "access_token": true, "api_version": false, "base_url": false, "webhook_secret": true} {
		f := d.Field(name)
		if f == nil || f.Sensitive != sensitive {
			t.Errorf("config field %s: %+v, want sensitive=%v", name, f, sensitive)
		}
	}
	if f := d.Field("shop"); !f.Required {
		t.Error("shop is not required")
	}
	// Payload webhooks only with a webhook_secret: the host answers 404
	// for the others, so that nobody writes records unsigned.
	cfg := map[string]any{"shop": "demo.myshopify.com", "access_token": "shpat_x"}
	if d, err := h.Describe(cfg); err != nil || d.Webhooks {
		t.Fatalf("a source without webhook_secret: %v, webhooks %v", err, d != nil && d.Webhooks)
	}
	cfg["webhook_secret"] = "app-secret"
	if d, err := h.Describe(cfg); err != nil || !d.Webhooks {
		t.Fatalf("a source with webhook_secret: %v, webhooks %v", err, d != nil && d.Webhooks)
	}
}

// TestFullRunsFindDeletes: a full run writes every product the shop still
// has, so that the host's track_deletes deletes the others.
func TestFullRunsFindDeletes(t *testing.T) {
	srv := newShop(t, shopifytest.Options{})
	products, _ := srv.Seed(5)
	h := sdktest.New(t, fast(&waits{}))
	first := syncRun(t, h, config(srv), ProductsSync, true, nil)
	if err := srv.DeleteProduct(products[2]); err != nil {
		t.Fatal(err)
	}
	res := syncRun(t, h, config(srv), ProductsSync, true, first.Checkpoint)
	want := idStrings(append(products[:2:2], products[3:]...))
	if got := ids(res); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("full run after a delete: %v, want %v", got, want)
	}
}

func TestAcceptance(t *testing.T) {
	srv := newShop(t, shopifytest.Options{})
	products, cols := srv.Seed(47)
	bigProduct(srv)
	n := 0
	sdktest.Acceptance{
		Config: config(srv),
		Change: func(tb testing.TB, sync string) {
			n++
			switch sync {
			case ProductsSync:
				if _, err := srv.UpdateProduct(products[n], func(p *shopifytest.Product) { p.Title += " (edited)" }); err != nil {
					tb.Fatal(err)
				}
				srv.CreateProduct(shopifytest.Product{Title: "Added for " + sync})
				if err := srv.DeleteProduct(products[n+10]); err != nil {
					tb.Fatal(err)
				}
			case CollectionsSync:
				if _, err := srv.UpdateCollection(cols[0], func(c *shopifytest.Collection) { c.ProductIDs = c.ProductIDs[1:] }); err != nil {
					tb.Fatal(err)
				}
				srv.CreateCollection(shopifytest.Collection{Title: "Added", ProductIDs: products[:3]})
			}
		},
	}.Run(t, fast(&waits{}))
}
