package badger

import (
	"testing"

	"github.com/synclayer/synclayer/core/store"
	"github.com/synclayer/synclayer/core/store/storetest"
)

// TestConformance runs the drivers' conformance suite on this driver: a
// store in a directory of its own per test, reopened from that directory
// as a restart. An embedded store has one host: the suite's tests of
// several hosts report themselves skipped.
func TestConformance(t *testing.T) {
	open := func(t testing.TB, dir string) store.Store {
		t.Helper()
		s, err := Open(Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	storetest.Run(t, storetest.Driver{
		Name: "badger",
		New:  func(t testing.TB) store.Store { return open(t, t.TempDir()) },
		Reopen: func(t testing.TB, st store.Store) store.Store {
			t.Helper()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, st.Dir())
		},
	})
}
