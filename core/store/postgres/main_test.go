package postgres

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/synclayer/synclayer/plugins/postgres/pgtest"
)

// server is the package's one PostgreSQL server; each test gets a
// database of its own.
var server *pgtest.Server

func TestMain(m *testing.M) {
	var err error
	server, err = pgtest.New()
	if err != nil {
		// Never skip: the driver's tests need a real server.
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	server.Stop()
	os.Exit(code)
}

// openStore opens a store on a new database, closed when the test ends.
func openStore(t testing.TB) (*Store, string) {
	t.Helper()
	dsn := server.Database(t)
	s, err := Open(context.Background(), Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dsn
}
