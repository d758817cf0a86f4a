# A layer of the products and collections of a Shopify shop (SPEC §11
# shopify; docs/connectors/shopify.md): polled hourly through the Admin
# GraphQL API, and updated at once by the shop's webhooks.
#
#   export SHOPIFY_SHOP=demo.myshopify.com
#   export SHOPIFY_TOKEN=shpat_…             # Admin API token, read_products scope
#   export SHOPIFY_WEBHOOK_SECRET=…          # the app's client secret (optional)
#   ./bin/synclayer serve --config configs/shopify.hcl
#
# Then subscribe the shop's webhooks (products/create|update|delete,
# collections/create|update|delete) to
#   https://<your host>/hooks/sources/catalog/shop
#
# Records: Product and Collection, e.g.
#   ./bin/synclayer records catalog --model Product

layer "catalog" {
  source "shop" {
    plugin = "shopify"
    config {
      shop           = env("SHOPIFY_SHOP")
      access_token   = env("SHOPIFY_TOKEN")                    # sensitive
      api_version    = "2026-10"
      webhook_secret = env("SHOPIFY_WEBHOOK_SECRET", "")       # sensitive; empty: webhooks refused
    }

    sync "products" {
      every         = "1h"
      track_deletes = true     # full runs delete products the shop no longer has
      merging       = "ignore_if_modified_after"   # a slow poll never undoes a fresher webhook
      retry {
        attempts = 5
        backoff  = "30s"
        max      = "10m"
      }
    }

    sync "collections" {
      every         = "1h"
      track_deletes = true
      merging       = "ignore_if_modified_after"
    }
  }
}
