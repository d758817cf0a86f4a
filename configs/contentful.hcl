# A layer of the entries and assets of a Contentful space (SPEC §11
# contentful; docs/connectors/contentful.md). Set the variables, then:
#
#   export CONTENTFUL_SPACE_ID=… CONTENTFUL_DELIVERY_TOKEN=…
#   export CONTENTFUL_WEBHOOK_SECRET=…   # optional: real-time runs from Contentful's webhooks
#   ./bin/synclayer serve --config configs/contentful.hcl
#
# Records: one model per content type (blogPost → BlogPost) plus Asset, e.g.
#   ./bin/synclayer records cms --model BlogPost

layer "cms" {
  keep_revisions = 20

  source "contentful" {
    plugin = "contentful"
    config {
      space_id       = env("CONTENTFUL_SPACE_ID")
      environment    = env("CONTENTFUL_ENVIRONMENT", "master")
      access_token   = env("CONTENTFUL_DELIVERY_TOKEN")        # Content Delivery API token; sensitive
      locale         = env("CONTENTFUL_LOCALE", "")            # "" keeps every locale: { "en-US" = …, "de-DE" = … }
      webhook_secret = env("CONTENTFUL_WEBHOOK_SECRET", "")    # the space's signing secret; "" refuses webhooks
      base_url       = env("CONTENTFUL_BASE_URL", "https://cdn.contentful.com")   # https://cdn.eu.contentful.com for EU data residency
    }

    sync "content" {
      every         = "15m"     # a safety net: with webhooks, changes arrive within seconds
      track_deletes = true      # a full run (first run, reset) removes what Contentful no longer publishes
      timeout       = "30m"
      retry {
        attempts = 5            # a failed run resumes at the page of its last checkpoint
        backoff  = "10s"
        max      = "10m"
      }
    }
  }
}
