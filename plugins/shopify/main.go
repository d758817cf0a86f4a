// Command synclayer-plugin-shopify is the synclayer connector for Shopify
// (SPEC §11 "shopify"): the products and collections of a shop, read
// through the Admin GraphQL API within its query cost budget,
// incrementally by updated_at, and fed in real time by the shop's signed
// webhooks.
package main

import sdk "github.com/synclayer/synclayer/plugin-sdk"

func main() { sdk.Serve(&Shopify{}) }
