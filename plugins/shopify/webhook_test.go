package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
	"github.com/synclayer/synclayer/plugins/shopify/shopifytest"
)

// TestSignatureVector checks the signature against one made outside Go:
//
//	printf '%s' '{"id":788032119674292922,"title":"Example T-Shirt"}' |
//	  openssl dgst -sha256 -hmac hush -binary | base64
func TestSignatureVector(t *testing.T) {
	body := []byte(`{"id":788032119674292922,"title":"Example T-Shirt"}`)
	const want = "PChQV/s9qVvLuYZx4s3CvtPkNn5M2k1OrvTkc0qHHSM="
	if got := Signature("hush").Sign(body); got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	if err := Signature("hush").Verify(body, want); err != nil {
		t.Fatal(err)
	}
	if shopifytest.Sign("hush", body) != want {
		t.Fatal("the fake signs differently")
	}
}

func webhook(t *testing.T, srv *shopifytest.Server, topic string, id int64) sdktest.WebhookOptions {
	t.Helper()
	h, body, err := srv.WebhookRequest(topic, id, secret)
	if err != nil {
		t.Fatal(err)
	}
	return sdktest.WebhookOptions{Config: config(srv), Method: "POST", Path: "/hooks/sources/test/test", Header: h, Body: body}
}

func TestWebhooksOfEachTopic(t *testing.T) {
	srv := newShop(t, shopifytest.Options{})
	products, cols := srv.Seed(4)
	h := sdktest.New(t, fast(&waits{}))
	cases := []struct {
		topic string
		id    int64
		model string
		del   bool
	}{
		{TopicProductsCreate, products[0], ProductModel, false},
		{TopicProductsUpdate, products[1], ProductModel, false},
		{TopicProductsDelete, products[2], ProductModel, true},
		{TopicCollectionsCreate, cols[0], CollectionModel, false},
		{TopicCollectionsUpdate, cols[1], CollectionModel, false},
		{TopicCollectionsDelete, cols[1], CollectionModel, true},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.topic, "/", "_"), func(t *testing.T) {
			wh := webhook(t, srv, c.topic, c.id)
			if err := h.VerifyWebhook(t.Context(), wh); err != nil {
				t.Fatalf("verify: %v", err)
			}
			res, err := h.HandleWebhook(t.Context(), wh)
			if err != nil {
				t.Fatalf("handle: %v", err)
			}
			if len(res.Changes) != 1 || res.Changes[0].Model != c.model || res.Changes[0].ID != strconv.FormatInt(c.id, 10) || res.Changes[0].Delete != c.del {
				t.Fatalf("changes %+v", res.Changes)
			}

			bad := wh
			bad.Header = wh.Header.Clone()
			bad.Header.Set(SignatureHeader, shopifytest.Sign("another-secret", wh.Body))
			if err := h.VerifyWebhook(t.Context(), bad); err == nil || !strings.Contains(err.Error(), "X-Shopify-Hmac-Sha256: the signature does not match") {
				t.Fatalf("bad signature: %v", err)
			}
			tampered := wh
			tampered.Body = append([]byte(" "), wh.Body...)
			if err := h.VerifyWebhook(t.Context(), tampered); err == nil {
				t.Fatal("a changed body passed")
			}
			unsigned := wh
			unsigned.Header = wh.Header.Clone()
			unsigned.Header.Del(SignatureHeader)
			if err := h.VerifyWebhook(t.Context(), unsigned); err == nil || !strings.Contains(err.Error(), "no X-Shopify-Hmac-Sha256 header") {
				t.Fatalf("unsigned: %v", err)
			}
		})
	}
}

func TestWebhooksRefused(t *testing.T) {
	srv := newShop(t, shopifytest.Options{})
	products, _ := srv.Seed(1)
	h := sdktest.New(t, fast(&waits{}))
	good := webhook(t, srv, TopicProductsUpdate, products[0])

	noSecret := good
	noSecret.Config = config(srv)
	delete(noSecret.Config, "webhook_secret")
	if err := h.VerifyWebhook(t.Context(), noSecret); err == nil || !strings.Contains(err.Error(), "does not take payload webhooks") {
		t.Fatalf("without a webhook_secret: %v", err)
	}

	other := good
	other.Header = good.Header.Clone()
	other.Header.Set(ShopDomainHeader, "another.myshopify.com")
	if err := h.VerifyWebhook(t.Context(), other); err == nil || !strings.Contains(err.Error(), `from shop "another.myshopify.com"`) {
		t.Fatalf("another shop's webhook: %v", err)
	}

	sign := func(topic, body string) sdktest.WebhookOptions {
		hd := http.Header{}
		hd.Set(TopicHeader, topic)
		hd.Set(SignatureHeader, shopifytest.Sign(secret, []byte(body)))
		return sdktest.WebhookOptions{Config: config(srv), Header: hd, Body: []byte(body)}
	}
	for _, c := range []struct{ topic, body, want string }{
		{"orders/create", `{"id":1}`, `topic "orders/create" is not one this connector applies`},
		{"", `{"id":1}`, "no X-Shopify-Topic header"},
		{TopicProductsDelete, `{"title":"x"}`, "products/delete webhook: the body has no product id"},
		{TopicProductsDelete, `{"id":-4}`, "is not a positive whole number"},
		{TopicProductsUpdate, `[1,2]`, "products/update webhook: the body is not a product"},
		{TopicProductsUpdate, `{"id":5,"updated_at":"yesterday"}`, `updated_at "yesterday" is not an RFC 3339 time`},
		{TopicCollectionsUpdate, `{"id":"x"}`, "collections/update webhook: the body is not a collection"},
	} {
		if err := h.VerifyWebhook(t.Context(), sign(c.topic, c.body)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: %v, want %q", c.topic, c.body, err, c.want)
		}
	}
}

// TestWebhookIDsKeepTheirPrecision: Shopify's ids are 64-bit; a payload's
// id is not read through a float.
func TestWebhookIDsKeepTheirPrecision(t *testing.T) {
	body := []byte(`{"id":788032119674292922,"title":"T","updated_at":"2021-12-31T19:00:00-05:00","created_at":"2021-12-31T19:00:00-05:00","tags":"a,  b ,","status":"active",
	  "variants":[{"id":642667041472713922,"price":"19.9","compare_at_price":"24","option1":"S","option2":null,"sku":null,"created_at":"2021-12-29T19:00:00-05:00","updated_at":"2021-12-29T19:00:00-05:00"}]}`)
	p, err := productFromWebhook(body)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "788032119674292922" || p.Variants[0].ID != "642667041472713922" || p.AdminGraphQLAPIID != "gid://shopify/Product/788032119674292922" {
		t.Fatalf("ids %s %s %s", p.ID, p.Variants[0].ID, p.AdminGraphQLAPIID)
	}
	if p.UpdatedAt != "2022-01-01T00:00:00Z" || !slices.Equal(p.Tags, []string{"a", "b"}) || p.Variants[0].Price != "19.90" || *p.Variants[0].CompareAtPrice != "24.00" ||
		!slices.Equal(p.Variants[0].Options, []string{"S"}) || p.BodyHTML != "" || p.Variants[0].SKU != "" {
		t.Fatalf("product %+v", p)
	}
}

// TestPollAndWebhookGiveTheSameRecord: a product or collection read by a
// run and the same one brought by its webhook are byte for byte the same
// record, though the API speaks GraphQL (camelCase, GIDs, UTC, enums) and
// the webhook REST (snake_case, numbers, the shop's time zone, a tag
// string).
func TestPollAndWebhookGiveTheSameRecord(t *testing.T) {
	srv := newShop(t, shopifytest.Options{})
	products, cols := srv.Seed(6)
	big := bigProduct(srv)
	suffix := "alternate"
	bare := srv.CreateProduct(shopifytest.Product{Title: "Bare", Status: "ARCHIVED", TemplateSuffix: &suffix})
	products = append(products, big.ID, bare.ID)
	h := sdktest.New(t, fast(&waits{}))
	polled := map[string]json.RawMessage{}
	for _, sync := range []string{ProductsSync, CollectionsSync} {
		for _, c := range syncRun(t, h, config(srv), sync, true, nil).Changes {
			polled[c.Model+"/"+c.ID] = c.Data
		}
	}
	check := func(topic, model string, id int64) {
		res, err := h.HandleWebhook(t.Context(), webhook(t, srv, topic, id))
		if err != nil {
			t.Fatalf("%s %d: %v", topic, id, err)
		}
		if len(res.Changes) != 1 {
			t.Fatalf("%s %d: %+v", topic, id, res.Changes)
		}
		key := fmt.Sprintf("%s/%d", model, id)
		if got, want := string(res.Changes[0].Data), string(polled[key]); got != want {
			t.Errorf("%s: the webhook's record differs from the poll's:\nwebhook %s\npoll    %s", key, got, want)
		}
	}
	for _, id := range products {
		check(TopicProductsUpdate, ProductModel, id)
	}
	for _, id := range cols {
		check(TopicCollectionsUpdate, CollectionModel, id)
	}
}

func TestCollectionWebhookOfAGoneCollectionDeletesIt(t *testing.T) {
	srv := newShop(t, shopifytest.Options{})
	_, cols := srv.Seed(2)
	h := sdktest.New(t, fast(&waits{}))
	wh := webhook(t, srv, TopicCollectionsUpdate, cols[0])
	if err := srv.DeleteCollection(cols[0]); err != nil {
		t.Fatal(err)
	}
	res, err := h.HandleWebhook(t.Context(), wh)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 1 || !res.Changes[0].Delete || res.Changes[0].ID != strconv.FormatInt(cols[0], 10) {
		t.Fatalf("changes %+v", res.Changes)
	}
}
