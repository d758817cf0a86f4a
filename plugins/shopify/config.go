package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// DefaultAPIVersion is the Admin API version the connector asks for unless
// api_version says otherwise: a pinned recent version, so that Shopify's
// quarterly releases never change the answers under a running source.
const DefaultAPIVersion = "2026-10"

// Config is the connector's configuration (SPEC §11 shopify).
type Config struct {
	Shop          string `config:"shop,required" doc:"The shop's myshopify.com domain, e.g. demo.myshopify.com (a bare \"demo\" means demo.myshopify.com)."`
	AccessToken   string `config:"access_token,required,sensitive" doc:"Admin API access token (shpat_…) of a custom app with the read_products scope."`
	APIVersion    string `config:"api_version" doc:"Admin API version, YYYY-MM (default 2026-10)."`
	BaseURL       string `config:"base_url" doc:"Root of the Admin API (default https://<shop>); tests point it at a fake."`
	WebhookSecret string `config:"webhook_secret,sensitive" doc:"The app's client secret, which signs its webhooks (X-Shopify-Hmac-Sha256). Empty: payload webhooks are refused."`
}

var (
	shopPattern    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)+$`)
	versionPattern = regexp.MustCompile(`^(\d{4}-(01|04|07|10)|unstable)$`)
)

// Validate is called by DecodeConfig: it fills defaults and checks what
// tags cannot.
func (c *Config) Validate() error {
	shop := strings.ToLower(strings.TrimSpace(c.Shop))
	shop = strings.TrimPrefix(strings.TrimPrefix(shop, "https://"), "http://")
	shop = strings.TrimSuffix(shop, "/")
	if shop != "" && !strings.Contains(shop, ".") {
		shop += ".myshopify.com"
	}
	if !shopPattern.MatchString(shop) || len(shop) > 255 {
		return fmt.Errorf("shop %q is not a shop domain: use the shop's myshopify.com domain, e.g. demo.myshopify.com (Settings → Domains in the Shopify admin)", c.Shop)
	}
	c.Shop = shop
	if strings.TrimSpace(c.AccessToken) == "" {
		return fmt.Errorf("access_token must not be empty: use the Admin API access token of a custom app (Settings → Apps and sales channels → Develop apps)")
	}
	if c.APIVersion = strings.TrimSpace(c.APIVersion); c.APIVersion == "" {
		c.APIVersion = DefaultAPIVersion
	}
	if !versionPattern.MatchString(c.APIVersion) {
		return fmt.Errorf("api_version %q is not an Admin API version: Shopify's versions are YYYY-01, -04, -07 and -10 (e.g. %s), or \"unstable\"", c.APIVersion, DefaultAPIVersion)
	}
	if c.BaseURL == "" {
		c.BaseURL = "https://" + c.Shop
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return fmt.Errorf("base_url %q must be an absolute http or https URL without a query", c.BaseURL)
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	return nil
}

// endpoint is the URL of the Admin GraphQL API:
// <base_url>/admin/api/<version>/graphql.json.
func (c *Config) endpoint() string {
	return c.BaseURL + "/admin/api/" + c.APIVersion + "/graphql.json"
}
