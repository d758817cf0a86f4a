package cluster

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// migrations are the cluster's own tables (synclayer_cluster_*):
// NNNN_name.sql, applied in order, each in its own transaction. A released
// file is never edited: a change is a new file.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key that serialises the cluster's
// migrations, River's included: N hosts starting at once take turns, and
// the later ones find nothing left to do. (rivermigrate takes no lock of
// its own: two hosts migrating River at once would both try to create its
// tables.) It differs from the store's key, so that the store and the
// cluster migrate independently.
const migrationLock int64 = 0x73796e636c7573 // "synclus"

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, f := range files {
		base := strings.TrimSuffix(strings.TrimPrefix(f, "migrations/"), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("cluster: migration file %s is not named NNNN_name.sql", f)
		}
		b, err := migrations.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("cluster: two migrations numbered %d", out[i].version)
		}
	}
	return out, nil
}

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
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	c, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("cluster: migrate: cannot reach the database: %w", err)
	}
	defer c.Release()
	conn := c.Conn()
	// A session lock, held across River's migrations (which run on other
	// connections of the pool) and our own transactions.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("cluster: migrate: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock); err != nil {
			// Never hand a connection holding the lock back to the pool.
			conn.Close(context.Background())
		}
	}()

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

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS synclayer_cluster_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("cluster: migrate: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT version FROM synclayer_cluster_migrations`)
	if err != nil {
		return fmt.Errorf("cluster: migrate: %w", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return fmt.Errorf("cluster: migrate: %w", err)
	}
	applied := map[int]bool{}
	latest := 0
	for _, m := range ms {
		latest = max(latest, m.version)
	}
	for _, v := range vs {
		applied[int(v)] = true
		if int(v) > latest {
			return fmt.Errorf("cluster: the database's cluster schema is at version %d, newer than this synclayer knows (%d): upgrade synclayer", v, latest)
		}
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO synclayer_cluster_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("cluster: migration %04d_%s: %w", m.version, m.name, err)
		}
		log.Info("migrated the cluster's tables", "version", m.version, "name", m.name)
	}
	return nil
}
