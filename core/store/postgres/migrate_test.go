package postgres

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Hosts starting at once migrate the schema once, and all open.
func TestMigrateConcurrently(t *testing.T) {
	dsn := server.Database(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, Options{DSN: dsn})
			if err == nil {
				_, err = s.layer("demo")
				s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("host %d: %v", i, err)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	ms, _ := loadMigrations()
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM synclayer_schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Fatalf("%d migrations recorded, want %d", n, len(ms))
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM synclayer_layers`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("layers: %d, %v; want 1", n, err)
	}
	// Open with NoMigrate on the current schema works; Migrate again is a
	// no-op.
	if err := Migrate(ctx, dsn, nil); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, Options{DSN: dsn, NoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// NoMigrate on an empty database fails and says what to run.
func TestOpenNoMigrateOnEmptyDatabase(t *testing.T) {
	dsn := server.Database(t)
	_, err := Open(context.Background(), Options{DSN: dsn, NoMigrate: true})
	if err == nil {
		t.Fatal("opened a database without its schema")
	}
	if !strings.Contains(err.Error(), "synclayer migrate") {
		t.Fatalf("the error does not say what to run: %v", err)
	}
}
