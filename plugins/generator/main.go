// Command synclayer-plugin-generator is the synclayer connector that makes
// up deterministic synthetic records, for trials and benchmarks (SPEC §11
// "generator").
package main

import sdk "github.com/synclayer/synclayer/plugin-sdk"

func main() { sdk.Serve(&Generator{}) }
