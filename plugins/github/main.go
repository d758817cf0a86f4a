// Command synclayer-plugin-github is the synclayer connector for GitHub
// (SPEC §11 "github"): the issues, pull requests and comments of
// repositories, polled incrementally through the REST API within its rate
// limits, and fed in real time by signed webhook deliveries.
package main

import sdk "github.com/synclayer/synclayer/plugin-sdk"

func main() { sdk.Serve(&GitHub{}) }
