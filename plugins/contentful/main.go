// Command synclayer-plugin-contentful is the synclayer connector for
// Contentful (SPEC §11 "contentful"): the entries and assets of a space's
// environment through the Sync API, one model per content type plus Asset,
// incremental from the sync token, and started at once by Contentful's
// webhooks when they are signed with the space's signing secret.
package main

import sdk "github.com/synclayer/synclayer/plugin-sdk"

func main() { sdk.Serve(&Contentful{}) }
