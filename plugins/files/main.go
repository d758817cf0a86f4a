// Command synclayer-plugin-files is the synclayer connector that reads
// records from local JSON, JSON Lines and CSV files (SPEC §11 "files").
package main

import sdk "github.com/synclayer/synclayer/plugin-sdk"

func main() { sdk.Serve(&Files{}) }
