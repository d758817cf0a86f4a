package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store/postgres"
	"github.com/synclayer/synclayer/plugins/postgres/pgtest"
)

// postgresBench runs the ingest, incremental and read scenarios on the
// PostgreSQL store driver (BENCH.md round 2, postgres_ingest_ratio), on a
// throwaway server started from Debian's binaries (pgtest: fsync and
// synchronous_commit off, for the bound and the host alike). The bound is
// a COPY of the same rows into a plain logged table of the shape of the
// driver's record table (its columns and indexes), on the same server in
// the same run.
func postgresBench(work string) {
	srv, err := pgtest.New()
	must(err)
	defer srv.Stop()
	ctx := context.Background()

	boundDSN, err := srv.CreateDatabase(ctx, "bound")
	must(err)
	bound := copyBound(ctx, boundDSN)
	set("postgres_copy_bound_rps", bound, "(the bound)", "")

	dsn, err := srv.CreateDatabase(ctx, "synclayer")
	must(err)
	cfg := fmt.Sprintf(`
service {
  store {
    driver = "postgres"
    dsn    = %q
  }
}
%s`, dsn, generatorLayer("pg", records))
	h := newHostConfig(work, "pg", cfg, 0)
	defer h.stop()
	_, took := h.firstRun()
	rps := float64(records) / took.Seconds()
	set("postgres_ingest_rps", rps, "", "")
	set("postgres_ingest_ratio", rps/bound, "≥ 0.50", verdict(rps/bound >= 0.50))
	fmt.Fprintf(os.Stderr, "bench: postgres ingest %.0f records/s, COPY bound %.0f rows/s\n", rps, bound)

	keyPrefix = "postgres_"
	defer func() { keyPrefix = "" }()
	incremental(h)
	reads(h)
}

// copyBound COPYs the bench's records into a plain logged table of the
// shape of the driver's record table: its columns and indexes (CREATE
// TABLE ... (LIKE synclayer_records INCLUDING ALL), in a database the
// driver migrated), no trigger, no foreign key; it returns the rows per
// second.
func copyBound(ctx context.Context, dsn string) float64 {
	must(postgres.Migrate(ctx, dsn, nil))
	conn, err := pgx.Connect(ctx, dsn)
	must(err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE bound_records (LIKE synclayer_records INCLUDING ALL)`)
	must(err)
	i := 0
	start := time.Now()
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"bound_records"},
		[]string{"layer_id", "source_key", "model", "id", "from_rev", "to_rev", "seq", "action", "first_seen_rev", "payload"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == records {
				return nil, nil
			}
			id, v := payload(i)
			i++
			return []any{int64(1), "gen", "Item", id, int64(1), nil, int32(i), int16(1), int64(1), v}, nil
		}))
	must(err)
	took := time.Since(start)
	if n != int64(records) {
		must(fmt.Errorf("COPY wrote %d rows, want %d", n, records))
	}
	return float64(records) / took.Seconds()
}
