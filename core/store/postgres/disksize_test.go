package postgres

import (
	"context"
	"testing"
)

// DiskSize shares the records table among the layers by their rows.
func TestDiskSizeSharesTheTable(t *testing.T) {
	s, _ := openStore(t)
	big, _ := s.layer("big")
	small, _ := s.layer("small")
	empty, _ := s.layer("empty")
	bulkRevision(t, s.pool, big.id, 1, 3000)
	bulkRevision(t, s.pool, small.id, 1, 1000)
	var indexes, table int64
	if err := s.pool.QueryRow(context.Background(), `SELECT pg_indexes_size('synclayer_records'), pg_table_size('synclayer_records')`).Scan(&indexes, &table); err != nil {
		t.Fatal(err)
	}
	bl, bv := big.DiskSize()
	sl, sv := small.DiskSize()
	el, ev := empty.DiskSize()
	if bl != indexes*3/4 || bv != table*3/4 || sl != indexes/4 || sv != table/4 || el != 0 || ev != 0 {
		t.Fatalf("big %d/%d, small %d/%d, empty %d/%d of %d/%d", bl, bv, sl, sv, el, ev, indexes, table)
	}
	if bv < 3000*40 {
		t.Fatalf("3,000 records take %d bytes", bv)
	}
	s.Close()
	if l, v := big.DiskSize(); l != 0 || v != 0 {
		t.Fatalf("closed: %d/%d", l, v)
	}
}
