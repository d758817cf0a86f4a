// Command synclayer-plugin-postgres is the synclayer connector for
// PostgreSQL tables (SPEC §11 "postgres"): each configured model is a
// table, read in keyset pages on (updated_at, id), incrementally from the
// last row seen, with column types mapped faithfully to JSON.
package main

import sdk "github.com/synclayer/synclayer/plugin-sdk"

func main() { sdk.Serve(&Postgres{}) }
