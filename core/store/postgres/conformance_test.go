package postgres

import (
	"context"
	"sync"
	"testing"

	"github.com/synclayer/synclayer/core/store"
	"github.com/synclayer/synclayer/core/store/storetest"
)

// TestConformance runs the drivers' conformance suite on PostgreSQL, with
// several hosts on one database.
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	dsns := map[store.Store]string{}
	open := func(t testing.TB, dsn string) store.Store {
		s, err := Open(context.Background(), Options{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		dsns[s] = dsn
		mu.Unlock()
		return s
	}
	storetest.Run(t, storetest.Driver{
		Name: "postgres",
		New:  func(t testing.TB) store.Store { return open(t, server.Database(t)) },
		Reopen: func(t testing.TB, st store.Store) store.Store {
			mu.Lock()
			dsn := dsns[st]
			mu.Unlock()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, dsn)
		},
		Hosts: func(t testing.TB, n int) []store.Store {
			dsn := server.Database(t)
			out := make([]store.Store, n)
			for i := range out {
				out[i] = open(t, dsn)
			}
			return out
		},
	})
}
