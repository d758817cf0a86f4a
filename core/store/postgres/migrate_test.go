package postgres

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/synclayer/synclayer/core/store"
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
	t.Log(err)
}

// An exclusive host keeps others off the database until it closes.
func TestExclusiveHost(t *testing.T) {
	dsn := server.Database(t)
	ctx := context.Background()
	a, err := Open(ctx, Options{DSN: dsn, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Options{DSN: dsn, Exclusive: true}); !errors.Is(err, ErrNotExclusive) {
		t.Fatalf("second exclusive host: %v, want ErrNotExclusive", err)
	}
	// A staging the first host left (killed mid-run) is dropped when the
	// next exclusive host opens.
	l, err := a.layer("demo")
	if err != nil {
		t.Fatal(err)
	}
	st, err := l.BeginStaging("run_left")
	if err != nil {
		t.Fatal(err)
	}
	w := st.Writer("src", store.WriterOptions{})
	if err := w.Apply([]store.Change{{Model: "M", ID: "1", Data: []byte(`{"id":"1"}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var staged int
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM synclayer_staged`).Scan(&staged); err != nil || staged != 1 {
		t.Fatalf("staged rows before: %d, %v; want 1", staged, err)
	}
	a.Close()
	b, err := Open(ctx, Options{DSN: dsn, Exclusive: true})
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	defer b.Close()
	var n int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM synclayer_staged`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("staged rows after an exclusive open: %d, %v; want 0", n, err)
	}
}
