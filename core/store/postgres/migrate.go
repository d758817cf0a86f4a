package postgres

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
)

// migrations are the schema's versions: NNNN_name.sql, applied in order,
// each in its own transaction. A released file is never edited: a change
// is a new file.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key that serialises migrations: N
// hosts starting at once take turns, and the later ones find nothing left
// to do.
const migrationLock = 0x73796e636c6179 // "synclay"

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
			return nil, fmt.Errorf("store: migration file %s is not named NNNN_name.sql", f)
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
			return nil, fmt.Errorf("store: two migrations numbered %d", out[i].version)
		}
	}
	return out, nil
}

// Migrate brings the database's schema to this version of synclayer (the
// `synclayer migrate` command; Open does it too unless told not to).
func Migrate(ctx context.Context, dsn string, log hclog.Logger) error {
	if log == nil {
		log = hclog.NewNullLogger()
	}
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
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	// A session lock: held across the migrations' own transactions.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, migrationLock)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS synclayer_schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	applied, err := appliedVersions(ctx, conn)
	if err != nil {
		return err
	}
	latest := 0
	for _, m := range ms {
		latest = max(latest, m.version)
	}
	for v := range applied {
		if v > latest {
			return fmt.Errorf("store: the database's schema is at version %d, newer than this synclayer knows (%d): upgrade synclayer", v, latest)
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
			_, err := tx.Exec(ctx, `INSERT INTO synclayer_schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migration %04d_%s: %w", m.version, m.name, err)
		}
		log.Info("migrated the database schema", "version", m.version, "name", m.name)
	}
	return nil
}

func appliedVersions(ctx context.Context, conn *pgx.Conn) (map[int]bool, error) {
	rows, err := conn.Query(ctx, `SELECT version FROM synclayer_schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	out := map[int]bool{}
	for _, v := range vs {
		out[int(v)] = true
	}
	return out, nil
}

// checkMigrated fails unless every migration is applied.
func checkMigrated(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	c, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	applied, err := appliedVersions(ctx, c.Conn())
	if err != nil {
		return fmt.Errorf("%w (run synclayer migrate)", err)
	}
	for _, m := range ms {
		if !applied[m.version] {
			return fmt.Errorf("store: the database's schema lacks migration %04d_%s: run synclayer migrate", m.version, m.name)
		}
	}
	return nil
}
