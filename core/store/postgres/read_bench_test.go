package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/synclayer/synclayer/core/store"
	"github.com/synclayer/synclayer/core/store/badger"
)

// benchRecords is the layer the read benchmarks walk: 100,000 records of
// about 1 KiB.
const benchRecords = 100000

// BenchmarkRecordsWalk walks the layer by cursor in pages of 10,000 (the
// read API's largest) on PostgreSQL and on Badger with the same records:
//
//	go test -run '^$' -bench RecordsWalk -benchtime 3x ./core/store/postgres/
func BenchmarkRecordsWalk(b *testing.B) {
	pad := strings.Repeat("x", 1000)
	b.Run("postgres", func(b *testing.B) {
		l := testLayer(b)
		if _, err := l.s.pool.Exec(context.Background(), `INSERT INTO synclayer_revisions (layer_id, rev, created_at, info) VALUES ($1, 1, $2, '{}')`, l.id, t0); err != nil {
			b.Fatal(err)
		}
		_, err := l.s.pool.Exec(context.Background(), `
			INSERT INTO synclayer_records (layer_id, source_key, model, id, from_rev, seq, action, first_seen_rev, payload)
			SELECT $1, 'gen', 'items', 'id' || lpad(i::text, 7, '0'), 1, i, 1, 1,
				convert_to(json_build_object('id', 'id' || lpad(i::text, 7, '0'), 'pad', $3::text)::text, 'UTF8')
			FROM generate_series(0, $2::int - 1) i`, l.id, benchRecords, pad)
		if err != nil {
			b.Fatal(err)
		}
		l.s.pool.Exec(context.Background(), `VACUUM ANALYZE synclayer_records`)
		walkBench(b, l)
	})
	b.Run("badger", func(b *testing.B) {
		bs, err := badger.Open(badger.Options{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		defer bs.Close()
		l, err := bs.Layer("catalog")
		if err != nil {
			b.Fatal(err)
		}
		var cs []store.Change
		for i := 0; i < benchRecords; i++ {
			id := fmt.Sprintf("id%07d", i)
			cs = append(cs, store.Change{Model: "items", ID: id, Data: []byte(fmt.Sprintf(`{"id":%q,"pad":%q}`, id, pad))})
		}
		if _, err := l.PublishChanges(store.PublishInfo{Trigger: "bench"}, []store.Batch{{Source: "gen", Changes: cs}}); err != nil {
			b.Fatal(err)
		}
		walkBench(b, l)
	})
}

func walkBench(b *testing.B, l interface {
	Records(store.Query, func([]byte) error) (store.Page, error)
}) {
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		q := store.Query{Limit: 10000}
		for {
			page, err := l.Records(q, func([]byte) error { n++; return nil })
			if err != nil {
				b.Fatal(err)
			}
			if page.Next == "" {
				break
			}
			c, rev, _ := store.ParsePosition(page.Next)
			q.After, q.Revision = &c, rev
		}
		if n != benchRecords {
			b.Fatalf("walked %d records", n)
		}
	}
	b.ReportMetric(float64(benchRecords*b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkSnapshotReads measures a snapshot's point reads over 100,000
// records with an indexed field (what GraphQL's post(id:) and
// allPost(filter:{slug:{eq:…}}) cost the store):
//
//	go test -run '^$' -bench SnapshotReads ./core/store/postgres/
func BenchmarkSnapshotReads(b *testing.B) {
	l := testLayer(b)
	ctx := context.Background()
	if _, err := l.s.pool.Exec(ctx, `INSERT INTO synclayer_revisions (layer_id, rev, created_at, info) VALUES ($1, 1, $2, '{}')`, l.id, t0); err != nil {
		b.Fatal(err)
	}
	_, err := l.s.pool.Exec(ctx, `
		INSERT INTO synclayer_records (layer_id, source_key, model, id, from_rev, seq, action, first_seen_rev, payload)
		SELECT $1, 'blog', 'post', 'p' || i, 1, i, 1, 1,
			convert_to(json_build_object('id', 'p' || i, 'slug', 'slug-' || i, 'pad', repeat('x', 500))::text, 'UTF8')
		FROM generate_series(0, $2::int - 1) i`, l.id, benchRecords)
	if err != nil {
		b.Fatal(err)
	}
	if err := l.SetFieldIndexes([]store.FieldIndex{{Source: "blog", Model: "post", Field: "slug"}}); err != nil {
		b.Fatal(err)
	}
	snap, _, err := l.openSnapshot(0)
	if err != nil {
		b.Fatal(err)
	}
	defer snap.Close()
	b.Run("get", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, ok, err := snap.Get("blog", "post", fmt.Sprintf("p%d", i%benchRecords)); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("lookup", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			ids, _, err := snap.Lookup("blog", "post", "slug", []any{fmt.Sprintf("slug-%d", i%benchRecords)}, 10)
			if err != nil || len(ids) != 1 {
				b.Fatal(ids, err)
			}
		}
	})
	b.Run("scan1000", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			n := 0
			if err := snap.Scan("blog", "post", "", func(*store.StoredRecord) (bool, error) { n++; return n < 1000, nil }); err != nil || n != 1000 {
				b.Fatal(n, err)
			}
		}
	})
}
