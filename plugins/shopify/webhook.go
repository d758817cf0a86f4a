package main

import (
	"context"
	"fmt"
	"strings"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// Headers of Shopify's webhook requests.
const (
	TopicHeader      = "X-Shopify-Topic"
	SignatureHeader  = "X-Shopify-Hmac-Sha256"
	ShopDomainHeader = "X-Shopify-Shop-Domain"
	WebhookIDHeader  = "X-Shopify-Webhook-Id"
)

// Webhook topics the connector applies.
const (
	TopicProductsCreate    = "products/create"
	TopicProductsUpdate    = "products/update"
	TopicProductsDelete    = "products/delete"
	TopicCollectionsCreate = "collections/create"
	TopicCollectionsUpdate = "collections/update"
	TopicCollectionsDelete = "collections/delete"
)

var topics = []string{TopicProductsCreate, TopicProductsUpdate, TopicProductsDelete, TopicCollectionsCreate, TopicCollectionsUpdate, TopicCollectionsDelete}

// Signature is how Shopify signs a webhook: the base64 HMAC-SHA256 of the
// raw body, keyed with the app's client secret (X-Shopify-Hmac-Sha256).
// The comparison is constant-time.
func Signature(secret string) sdk.HMACSignature {
	return sdk.HMACSignature{Secret: []byte(secret), Encoding: sdk.Base64}
}

// WebhooksEnabled implements sdk.ConnectorWithConfiguredWebhooks: only a
// source with a webhook_secret takes payload webhooks; for the others the
// host answers 404 and never asks VerifyWebhook.
func (s *Shopify) WebhooksEnabled(ctx context.Context, req *sdk.ConfigRequest) (bool, error) {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return false, err
	}
	return cfg.WebhookSecret != "", nil
}

// VerifyWebhook implements sdk.ConnectorWithWebhooks: the source must have
// a webhook_secret, the request must carry Shopify's signature of its
// body made with it, come from the configured shop, and be of a topic the
// connector applies, with a body it can apply; so that nothing unusable
// is stored.
func (s *Shopify) VerifyWebhook(ctx context.Context, req *sdk.WebhookRequest) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	if cfg.WebhookSecret == "" {
		return errNoSecret
	}
	if err := Signature(cfg.WebhookSecret).VerifyHeader(req.Header, SignatureHeader, req.Body); err != nil {
		return err
	}
	// The client secret signs the webhooks of every shop that installed
	// the app: one meant for another shop's source is not this one's.
	if shop := strings.ToLower(strings.TrimSpace(req.Header.Get(ShopDomainHeader))); shop != "" && shop != cfg.Shop {
		return fmt.Errorf("the webhook is from shop %q, and this source reads shop %q: point that shop's webhook at its own source", shop, cfg.Shop)
	}
	_, err = parseWebhook(req)
	return err
}

// change is what a webhook asks for.
type change struct {
	topic   string
	id      string
	product *Product // products/create, products/update
}

// parseWebhook reads the topic and body of a verified webhook.
func parseWebhook(req *sdk.WebhookRequest) (*change, error) {
	topic := strings.TrimSpace(req.Header.Get(TopicHeader))
	c := &change{topic: topic}
	var err error
	switch topic {
	case TopicProductsCreate, TopicProductsUpdate:
		if c.product, err = productFromWebhook(req.Body); err == nil {
			c.id = c.product.ID
		}
	case TopicProductsDelete:
		c.id, err = idFromWebhook(req.Body, "product")
	case TopicCollectionsCreate, TopicCollectionsUpdate, TopicCollectionsDelete:
		c.id, err = idFromWebhook(req.Body, "collection")
	case "":
		return nil, fmt.Errorf("no %s header: a Shopify webhook names its topic there", TopicHeader)
	default:
		return nil, fmt.Errorf("topic %q is not one this connector applies (%s): remove that webhook subscription, or point it elsewhere", topic, strings.Join(topics, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("%s webhook: %w", topic, err)
	}
	return c, nil
}

// HandleWebhook implements sdk.ConnectorWithWebhooks: a product's create
// or update saves the product of the payload, a delete deletes the
// record; a collection's create or update reads the collection from the
// API (the payload lacks its products) and saves it, or deletes it when
// the shop no longer has it.
func (s *Shopify) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest, w *sdk.Writer) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	c, err := parseWebhook(req)
	if err != nil {
		return err
	}
	switch c.topic {
	case TopicProductsCreate, TopicProductsUpdate:
		err = w.Save(ctx, ProductModel, c.product)
	case TopicProductsDelete:
		err = w.Delete(ctx, ProductModel, c.id)
	case TopicCollectionsDelete:
		err = w.Delete(ctx, CollectionModel, c.id)
	case TopicCollectionsCreate, TopicCollectionsUpdate:
		a := newAPI(cfg, s.HTTP, s.Wait, req.Logger)
		defer a.close()
		col, ferr := a.collectionByID(ctx, c.id)
		switch {
		case ferr != nil:
			return fmt.Errorf("%s webhook: reading collection %s: %w", c.topic, c.id, explain(cfg, ferr))
		case col == nil:
			req.Logger.Info("the collection of the webhook is gone; deleting it", "collection", c.id)
			err = w.Delete(ctx, CollectionModel, c.id)
		default:
			err = w.Save(ctx, CollectionModel, col)
		}
	}
	if err != nil {
		return err
	}
	req.Logger.Info("applied a webhook", "topic", c.topic, "id", c.id, "webhook_id", req.Header.Get(WebhookIDHeader))
	return nil
}
