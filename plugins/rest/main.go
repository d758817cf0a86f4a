// Command synclayer-plugin-rest is the synclayer connector for any
// JSON-over-HTTP API (SPEC §11 "rest"): each configured model is a list
// endpoint, fetched page by page, incrementally when records carry an
// updated_at, and fed in real time by signed payload webhooks.
package main

import sdk "github.com/synclayer/synclayer/plugin-sdk"

func main() { sdk.Serve(&Rest{}) }
