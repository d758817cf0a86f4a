// Package postgres is the store driver for replicas (SPEC §16): N hosts
// share one PostgreSQL database, and every guarantee of the embedded
// driver (core/store/badger) holds across them, kept by PostgreSQL's
// transactions rather than by one process's locks.
//
// Every layer lives in the same tables, keyed by the layer's id. The schema
// is migrated at Open (versioned files under migrations/, applied under an
// advisory lock, so N hosts starting at once migrate it once). Hosts learn
// of each other's writes through LISTEN/NOTIFY on one channel (listen.go):
// a publish, an inbox item, an outbox change or an event on one host wakes
// the readers and followers of every host.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/synclayer/synclayer/core/store"
)

// Options configure a Store.
type Options struct {
	// DSN is the PostgreSQL connection string (sensitive: it may hold a
	// password; it is never logged).
	DSN    string
	Logger hclog.Logger
	// MaxConns bounds the pool of connections to the server (0: 16).
	MaxConns int32
	// NoMigrate opens a database whose schema is already current and
	// fails when it is not (the default migrates it).
	NoMigrate bool
}

// Store is a PostgreSQL database holding every layer.
type Store struct {
	opts Options
	log  hclog.Logger
	pool *pgxpool.Pool

	mu     sync.Mutex
	layers map[string]*Layer
	closed bool

	listen *listener
}

var layerName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// Open connects to the database, migrates its schema (unless
// opts.NoMigrate) and starts listening for the other hosts' changes.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.DSN == "" {
		return nil, errors.New("store: the postgres driver needs a dsn")
	}
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return nil, errors.New("store: the postgres dsn does not parse (expected postgres://user:password@host:port/database?sslmode=...)")
	}
	cfg.MaxConns = opts.MaxConns
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 16
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "synclayer"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: postgres: cannot reach the server: %w", err)
	}
	if opts.NoMigrate {
		if err := checkMigrated(pctx, pool); err != nil {
			pool.Close()
			return nil, err
		}
	} else if err := migrate(pctx, pool, opts.Logger); err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{opts: opts, log: opts.Logger, pool: pool, layers: map[string]*Layer{}}
	if s.listen, err = startListener(ctx, cfg.ConnConfig, s); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Dir is "": hosts sharing the database have no folder in common.
func (s *Store) Dir() string { return "" }

func (s *Store) layer(name string) (*Layer, error) {
	if !layerName.MatchString(name) {
		return nil, fmt.Errorf("store: invalid layer name %q", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	if l, ok := s.layers[name]; ok {
		return l, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var id int64
	err := s.pool.QueryRow(ctx, `
		INSERT INTO synclayer_layers (name) VALUES ($1)
		ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
		RETURNING id`, name).Scan(&id)
	if err != nil {
		return nil, fmt.Errorf("store: open layer %q: %w", name, err)
	}
	l := &Layer{s: s, name: name, id: id, log: s.log.Named(name)}
	if err := l.open(ctx); err != nil {
		return nil, fmt.Errorf("store: open layer %q: %w", name, err)
	}
	s.layers[name] = l
	return l, nil
}

// LayerNames lists the layers in the database, by name.
func (s *Store) LayerNames() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT name FROM synclayer_layers`)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	sort.Strings(names)
	return names, err
}

// Close stops listening, closes the layers and the pool.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	layers := s.layers
	s.mu.Unlock()
	s.listen.stop()
	for _, l := range layers {
		l.close()
	}
	s.pool.Close()
	return nil
}

// layerByID finds an open layer (for notifications).
func (s *Store) layerByName(name string) *Layer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.layers[name]
}
