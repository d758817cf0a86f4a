// Package pgmigrate applies a package's embedded, versioned PostgreSQL
// migrations: files NNNN_name.sql, each applied once in its own
// transaction and recorded in a table of its own, under a session advisory
// lock so that N hosts starting at once take turns (the later ones find
// nothing left to do). A released file is never edited: a change is a new
// file. The store driver (core/store/postgres) and the run distribution
// (core/cluster) each keep a set.
package pgmigrate

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
)

// Set is one package's migrations.
type Set struct {
	// FS holds the files, under Dir.
	FS  fs.FS
	Dir string
	// Table records the applied versions.
	Table string
	// LockKey is the advisory lock key that serialises the set's
	// migrations.
	LockKey int64
	// What names the set in errors and logs ("store", "cluster").
	What string
}

// Migration is one file of a set.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Load reads the set's files, in version order.
func (s Set) Load() ([]Migration, error) {
	files, err := fs.Glob(s.FS, path.Join(s.Dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, f := range files {
		base := strings.TrimSuffix(path.Base(f), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("%s: migration file %s is not named NNNN_name.sql", s.What, f)
		}
		b, err := fs.ReadFile(s.FS, f)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("%s: two migrations numbered %d", s.What, out[i].Version)
		}
	}
	return out, nil
}

// Lock takes the set's advisory lock on conn (a session lock: it holds
// across transactions, and across what the caller migrates on other
// connections meanwhile); unlock releases it, closing conn if it cannot,
// so that a pooled connection never goes back holding the lock.
func (s Set) Lock(ctx context.Context, conn *pgx.Conn) (unlock func(), err error) {
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, s.LockKey); err != nil {
		return nil, fmt.Errorf("%s: migrate: %w", s.What, err)
	}
	return func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, s.LockKey); err != nil {
			conn.Close(context.Background())
		}
	}, nil
}

// Apply applies the set's migrations not applied yet, on conn, which must
// hold the set's lock. A database whose schema is newer than the set is
// refused.
func (s Set) Apply(ctx context.Context, conn *pgx.Conn, log hclog.Logger) error {
	ms, err := s.Load()
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.Table+` (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("%s: migrate: %w", s.What, err)
	}
	applied, err := s.applied(ctx, conn)
	if err != nil {
		return err
	}
	latest := 0
	for _, m := range ms {
		latest = max(latest, m.Version)
	}
	for v := range applied {
		if v > latest {
			return fmt.Errorf("%s: the database's schema is at version %d, newer than this synclayer knows (%d): upgrade synclayer", s.What, v, latest)
		}
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO `+s.Table+` (version, name) VALUES ($1, $2)`, m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: migration %04d_%s: %w", s.What, m.Version, m.Name, err)
		}
		log.Info("migrated the "+s.What+"'s tables", "version", m.Version, "name", m.Name)
	}
	return nil
}

// Check fails unless every migration of the set is applied.
func (s Set) Check(ctx context.Context, conn *pgx.Conn) error {
	ms, err := s.Load()
	if err != nil {
		return err
	}
	applied, err := s.applied(ctx, conn)
	if err != nil {
		return fmt.Errorf("%w (run synclayer migrate)", err)
	}
	for _, m := range ms {
		if !applied[m.Version] {
			return fmt.Errorf("%s: the database's schema lacks migration %04d_%s: run synclayer migrate", s.What, m.Version, m.Name)
		}
	}
	return nil
}

func (s Set) applied(ctx context.Context, conn *pgx.Conn) (map[int]bool, error) {
	rows, err := conn.Query(ctx, `SELECT version FROM `+s.Table)
	if err != nil {
		return nil, fmt.Errorf("%s: migrate: %w", s.What, err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("%s: migrate: %w", s.What, err)
	}
	out := map[int]bool{}
	for _, v := range vs {
		out[int(v)] = true
	}
	return out, nil
}
