package postgres

import (
	"context"
	"sync"
	"time"
)

// diskSizeTTL is how long DiskSize's figures are reused: like Badger's,
// which it refreshes about once a minute, they feed a metric.
const diskSizeTTL = time.Minute

// diskSizes caches each store's figures (by *Store); forgotten when one of
// its layers closes after the store did.
var diskSizes sync.Map

// diskFigures are one reading of the records table's size and of how its
// rows are shared among the layers.
type diskFigures struct {
	mu             sync.Mutex
	set            bool
	at             time.Time
	indexes, table int64
	rows           map[int64]int64 // by layer id
	total          int64
}

// DiskSize is the layer's share of the records table on disk, by its share
// of the table's rows (every layer lives in the same tables): lsm is that
// share of the table's indexes (the primary key, the cursor and live
// indexes, the field indexes: what Badger's LSM tree holds), vlog that
// share of the table itself with its TOAST (the payloads: what Badger's
// value log holds). Other tables (staging, inbox, outbox, logs) are not
// counted. The figures are read at most once a minute for the whole store
// (one count of the table's rows by layer); an error reads as zero.
func (l *Layer) DiskSize() (lsm, vlog int64) {
	if l.closedErr() != nil {
		return 0, 0
	}
	v, _ := diskSizes.LoadOrStore(l.s, &diskFigures{})
	f := v.(*diskFigures)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.set || time.Since(f.at) > diskSizeTTL {
		ctx, cancel := l.ctx()
		defer cancel()
		if err := f.read(ctx, l.s); err != nil {
			l.log.Debug("could not read the size of the records table", "error", err)
			return 0, 0
		}
	}
	if f.total == 0 {
		return 0, 0
	}
	n := f.rows[l.id]
	return f.indexes * n / f.total, f.table * n / f.total
}

func (f *diskFigures) read(ctx context.Context, s *Store) error {
	var indexes, table int64
	err := s.pool.QueryRow(ctx, `SELECT pg_indexes_size('synclayer_records'), pg_table_size('synclayer_records')`).Scan(&indexes, &table)
	if err != nil {
		return err
	}
	rows, err := s.pool.Query(ctx, `SELECT layer_id, count(*) FROM synclayer_records GROUP BY layer_id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	counts := map[int64]int64{}
	var total int64
	for rows.Next() {
		var id, n int64
		if err := rows.Scan(&id, &n); err != nil {
			return err
		}
		counts[id] = n
		total += n
	}
	if err := rows.Err(); err != nil {
		return err
	}
	f.at, f.indexes, f.table, f.rows, f.total, f.set = time.Now(), indexes, table, counts, total, true
	return nil
}
