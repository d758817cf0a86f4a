// Command synclayer-plugin-hello is the smallest useful synclayer
// connector: it greets the people listed in a text file, one Greeting
// record per name. docs/writing-a-connector.md builds it step by step.
package main

import sdk "github.com/synclayer/synclayer/plugin-sdk"

func main() { sdk.Serve(&Hello{}) }
