package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/synclayer/synclayer/core/internal/pgmigrate"
)

// migrations are the schema's versions: NNNN_name.sql, applied in order,
// each in its own transaction. A released file is never edited: a change
// is a new file.
//
//go:embed migrations/*.sql
var migrations embed.FS

// schema is the store's migration set. Its lock key ("synclay") differs
// from the cluster's, so that the two migrate independently.
var schema = pgmigrate.Set{FS: migrations, Dir: "migrations", Table: "synclayer_schema_migrations", LockKey: 0x73796e636c6179, What: "store"}

func loadMigrations() ([]pgmigrate.Migration, error) { return schema.Load() }

// Migrate brings the database's schema to this version of synclayer (the
// `synclayer migrate` command; Open does it too unless told not to).
func Migrate(ctx context.Context, dsn string, log hclog.Logger) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("store: postgres: cannot reach the server: %w", err)
	}
	defer conn.Close(context.Background())
	return migrateConn(ctx, conn, log)
}

func migrate(ctx context.Context, pool *pgxpool.Pool, log hclog.Logger) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return migrateConn(ctx, c.Conn(), log)
}

func migrateConn(ctx context.Context, conn *pgx.Conn, log hclog.Logger) error {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	unlock, err := schema.Lock(ctx, conn)
	if err != nil {
		return err
	}
	defer unlock()
	return schema.Apply(ctx, conn, log)
}

// checkMigrated fails unless every migration is applied.
func checkMigrated(ctx context.Context, pool *pgxpool.Pool) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return schema.Check(ctx, c.Conn())
}
