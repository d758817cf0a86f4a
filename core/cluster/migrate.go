package cluster

import (
	"context"
	"embed"
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/synclayer/synclayer/core/internal/pgmigrate"
)

// migrations are the cluster's own tables (synclayer_cluster_*):
// NNNN_name.sql, applied in order, each in its own transaction. A released
// file is never edited: a change is a new file.
//
//go:embed migrations/*.sql
var migrations embed.FS

// schema is the cluster's migration set. Its lock key ("synclus")
// serialises River's migrations too: N hosts starting at once take turns,
// and the later ones find nothing left to do. (rivermigrate takes no lock
// of its own: two hosts migrating River at once would both try to create
// its tables.) It differs from the store's key, so that the store and the
// cluster migrate independently.
var schema = pgmigrate.Set{FS: migrations, Dir: "migrations", Table: "synclayer_cluster_migrations", LockKey: 0x73796e636c7573, What: "cluster"}

func loadMigrations() ([]pgmigrate.Migration, error) { return schema.Load() }

// Migrate brings River's tables (river_job, river_leader, ...) and the
// cluster's own (synclayer_cluster_*) to this version of synclayer. Open
// does it; `synclayer migrate` may call it alone. It is safe when N hosts
// run it at once: they take turns on an advisory lock. The pool needs two
// connections at least.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log hclog.Logger) error {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if pool.Config().MaxConns < 2 {
		return fmt.Errorf("cluster: migrate: the pool has %d connection; it needs 2 at least (one holds the migration lock while River migrates on another): raise pool_max_conns", pool.Config().MaxConns)
	}
	c, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("cluster: migrate: cannot reach the database: %w", err)
	}
	defer c.Release()
	conn := c.Conn()
	// A session lock, held across River's migrations (which run on other
	// connections of the pool) and our own transactions.
	unlock, err := schema.Lock(ctx, conn)
	if err != nil {
		return err
	}
	defer unlock()

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: newSlog(log)})
	if err != nil {
		return fmt.Errorf("cluster: migrate: %w", err)
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("cluster: migrating River's tables: %w", err)
	}
	for _, v := range res.Versions {
		log.Info("migrated River's tables", "version", v.Version, "name", v.Name)
	}

	return schema.Apply(ctx, conn, log)
}
