package badger

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/synclayer/synclayer/core/store"
)

// openRawDB opens a Badger database with the store's options, without a
// layer around it.
func openRawDB(tb testing.TB) *badger.DB {
	tb.Helper()
	db, err := badger.OpenManaged(BadgerOptions(tb.TempDir()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// getAt reads k at ts: its value, or found false.
func getAt(t *testing.T, db *badger.DB, k []byte, ts uint64) (v []byte, found bool) {
	t.Helper()
	txn := db.NewTransactionAt(ts, false)
	defer txn.Discard()
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	v, err = item.ValueCopy(nil)
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

// A loader's Delete is Badger's deletion (metaDelete is Badger's bit), and
// its writes land in the order they were made: a Set, a Delete and a Set
// of the same key at one timestamp leave the last Set. Both ways a loader
// writes: few writes (one transaction at the flush), and many (a
// KVLoader, the key's versions in different batches).
func TestLoaderDelete(t *testing.T) {
	for _, filler := range []int{0, 30000} {
		t.Run(fmt.Sprint(filler), func(t *testing.T) { testLoaderDelete(t, filler) })
	}
}

func testLoaderDelete(t *testing.T, filler int) {
	db := openRawDB(t)
	old := db.NewWriteBatchAt(5)
	for _, k := range []string{"a", "b"} {
		if err := old.Set([]byte(k), []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Flush(); err != nil {
		t.Fatal(err)
	}
	l := newLoader(db, 7)
	big := bytes.Repeat([]byte("x"), 1000) // in the value log
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.Delete([]byte("a")))
	must(l.Set([]byte("b"), []byte("new")))
	must(l.Delete([]byte("b")))
	must(l.Set([]byte("c"), big))
	for i := 0; i < filler; i++ {
		must(l.Set([]byte(fmt.Sprintf("k%06d", i)), big))
	}
	must(l.Delete([]byte("c")))
	for i := 0; i < filler; i++ {
		must(l.Delete([]byte(fmt.Sprintf("k%06d", i))))
	}
	must(l.Set([]byte("d"), []byte("first")))
	must(l.Delete([]byte("d")))
	must(l.Set([]byte("d"), []byte("last")))
	if (l.l != nil) != (filler > smallWrites) {
		t.Fatalf("%d writes: a KVLoader made: %v", 7+2*filler, l.l != nil)
	}
	must(l.Flush())

	if v, ok := getAt(t, db, []byte("a"), 6); !ok || string(v) != "old" {
		t.Errorf("a at 6 = %q, %v; want the old value", v, ok)
	}
	gone := []string{"a", "b", "c"}
	if filler > 0 {
		gone = append(gone, "k000000", fmt.Sprintf("k%06d", filler-1))
	}
	for _, k := range gone {
		if v, ok := getAt(t, db, []byte(k), 7); ok {
			t.Errorf("%s at 7 = %q; want it deleted", k, v)
		}
	}
	if v, ok := getAt(t, db, []byte("d"), 7); !ok || string(v) != "last" {
		t.Errorf("d at 7 = %q, %v; want the last write", v, ok)
	}
	if err := l.Set([]byte("z"), nil); err == nil {
		t.Error("a write after the flush was taken")
	}
}

// A loader refuses what a transaction refuses, before Badger sees it.
func TestLoaderRefusesWhatATransactionDoes(t *testing.T) {
	db := openRawDB(t)
	for name, kv := range map[string][2][]byte{
		"empty key":    {nil, []byte("v")},
		"badger's key": {[]byte("!badger!head"), []byte("v")},
		"long key":     {bytes.Repeat([]byte("k"), maxKeySize+1), nil},
	} {
		l := newLoader(db, 3)
		if err := l.Set(kv[0], kv[1]); err == nil {
			t.Errorf("%s: taken", name)
		}
		if err := l.Flush(); err == nil {
			t.Errorf("%s: the flush did not return the refusal", name)
		}
	}
}

// A cancelled loader writes none of the few writes it held, and takes no
// more.
func TestLoaderCancelDropsWhatItHolds(t *testing.T) {
	db := openRawDB(t)
	l := newLoader(db, 3)
	if err := l.Set([]byte("a"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	l.Cancel()
	if v, ok := getAt(t, db, []byte("a"), 3); ok {
		t.Errorf("a = %q after the cancel; want nothing written", v)
	}
	if err := l.Set([]byte("b"), nil); err == nil {
		t.Error("a write after the cancel was taken")
	}
	if err := l.Flush(); err == nil {
		t.Error("a flush after the cancel succeeded")
	}
}

// BenchmarkRunWrites writes records as a run does, two entries each (the
// record by its cursor, 1 KiB, and its index entry), at one timestamp,
// through a WriteBatch and through a loader; records/s is the figure.
func BenchmarkRunWrites(b *testing.B) {
	for _, name := range []string{"writebatch", "loader"} {
		b.Run(name, func(b *testing.B) {
			db := openRawDB(b)
			payload := benchPayload(0, 0)
			var w interface {
				kvWriter
				Flush() error
			}
			if name == "loader" {
				w = newLoader(db, 1)
			} else {
				wb := db.NewWriteBatchAt(1)
				wb.SetMaxPendingTxns(maxPendingTxns)
				w = wb
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := store.MakeCursor(1, uint32(i))
				if err := w.Set(recordKey(c), payload); err != nil {
					b.Fatal(err)
				}
				if err := w.Set(indexKey("gen", "Item", fmt.Sprintf("item-%09d", i)), indexEntry{cursor: c}.encode()); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
