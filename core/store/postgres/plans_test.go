package postgres

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/synclayer/synclayer/core/store"
)

// Reads must use the indexes: each read's statements, recorded as the
// driver sends them, are explained on a table of two layers of 40,000
// versions each (with statistics), and their plans checked.

// recorder records the statements a pool sends.
type recorder struct {
	mu  sync.Mutex
	on  bool
	got []recordedQuery
}

type recordedQuery struct {
	sql  string
	args []any
}

func (r *recorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on {
		r.got = append(r.got, recordedQuery{d.SQL, append([]any(nil), d.Args...)})
	}
	return ctx
}

func (r *recorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// take returns the statements recorded while fn ran.
func (r *recorder) take(fn func()) []recordedQuery {
	r.mu.Lock()
	r.on, r.got = true, nil
	r.mu.Unlock()
	fn()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	return r.got
}

// bulkRevision writes revision rev of layer with n new records: keys
// cycling through 200 connections of crm, shop and zeta, models contacts
// and deals.
func bulkRevision(t *testing.T, pool *pgxpool.Pool, layer, rev int64, n int) {
	t.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO synclayer_revisions (layer_id, rev, created_at, info) VALUES ($1, $2, $3, '{}')`,
		layer, rev, t0.Add(time.Duration(rev)*time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err := pool.Exec(ctx, `
		INSERT INTO synclayer_records (layer_id, source_key, model, id, from_rev, seq, action, first_seen_rev, payload)
		SELECT $1,
			CASE i % 3 WHEN 0 THEN 'crm' || chr(31) || 'c' || lpad((i % 200)::text, 3, '0') WHEN 1 THEN 'shop' ELSE 'zeta' END,
			CASE WHEN i % 2 = 0 THEN 'contacts' ELSE 'deals' END,
			'id' || lpad(i::text, 7, '0'), $2, i - $3, 1, $2,
			convert_to(json_build_object('id', i, 'tag', 't' || (i % 1000))::text, 'UTF8')
		FROM generate_series($3::int, $3::int + $4::int - 1) i`, layer, rev, int32(rev*int64(n)), int32(n))
	if err != nil {
		t.Fatal(err)
	}
}

func TestReadsUseTheIndexes(t *testing.T) {
	s, dsn := openStore(t)
	l, _ := s.layer("catalog")
	other, _ := s.layer("other")
	for rev := int64(1); rev <= 5; rev++ {
		bulkRevision(t, s.pool, l.id, rev, 8000)
		bulkRevision(t, s.pool, other.id, rev, 8000)
	}
	if err := l.SetFieldIndexes([]store.FieldIndex{{Source: "crm", Model: "contacts", Field: "tag"}}); err != nil {
		t.Fatal(err)
	}
	// A layer with a long history of revisions.
	busy, _ := s.layer("busy")
	if _, err := s.pool.Exec(context.Background(), `INSERT INTO synclayer_revisions (layer_id, rev, created_at, info)
		SELECT $1, i, $2::timestamptz + i * interval '1 second', '{}' FROM generate_series(1, 20000) i`, busy.id, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(context.Background(), `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	// The store's statements go through a recording pool.
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	cfg.ConnConfig.Tracer = rec
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	plain := s.pool
	s.pool = pool
	defer func() { s.pool = plain; pool.Close() }()

	explain := func(q recordedQuery) string {
		rows, err := plain.Query(context.Background(), "EXPLAIN "+q.sql, q.args...)
		if err != nil {
			t.Fatalf("explain %s: %v", q.sql, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	// check explains the statements of read that select from the records
	// table: each plan must use one of the indexes want names (separated
	// by |) and no sequential scan of the table.
	check := func(what, want string, read func()) {
		t.Helper()
		n := 0
		for _, q := range rec.take(read) {
			if !strings.Contains(q.sql, "FROM synclayer_records") {
				continue
			}
			n++
			plan := explain(q)
			uses := false
			for _, w := range strings.Split(want, "|") {
				uses = uses || strings.Contains(plan, w)
			}
			if !uses || strings.Contains(plan, "Seq Scan on synclayer_records") {
				t.Errorf("%s: the plan does not use %s:\n%s\n%s", what, want, q.sql, plan)
			}
		}
		if n == 0 {
			t.Errorf("%s: no statement read the records", what)
		}
	}
	drain := func(q store.Query) func() {
		return func() {
			if _, err := l.Records(q, func([]byte) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := store.MakeCursor(2, 7000)
	check("walk", "synclayer_records_cursor", drain(store.Query{Limit: 1000}))
	check("walk after a cursor", "synclayer_records_cursor", drain(store.Query{Limit: 1000, After: &c}))
	check("walk of a source", "synclayer_records_cursor", drain(store.Query{Source: "shop", Limit: 1000}))
	check("walk of a model", "synclayer_records_cursor", drain(store.Query{Model: "deals", Limit: 1000}))
	check("walk modified after", "synclayer_records_cursor", drain(store.Query{ModifiedAfter: t0.Add(4 * time.Second), Limit: 1000}))
	check("ids", "synclayer_records_pkey|synclayer_records_live", drain(store.Query{Source: "shop", Model: "deals", IDs: []string{"id0008005", "id0016003"}}))
	snap, _, err := l.openSnapshot(0)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	check("get", "synclayer_records_pkey|synclayer_records_live", func() {
		if _, ok, err := snap.Get("shop", "deals", "id0008005"); !ok || err != nil {
			t.Fatal(ok, err)
		}
	})
	walk := func(fn func(func(*store.StoredRecord) (bool, error)) error) func() {
		return func() {
			n := 0
			if err := fn(func(*store.StoredRecord) (bool, error) { n++; return n < 500, nil }); err != nil || n != 500 {
				t.Fatal(n, err)
			}
		}
	}
	check("scan", "synclayer_records_pkey", walk(func(fn func(*store.StoredRecord) (bool, error)) error {
		return snap.Scan("zeta", "contacts", "", fn)
	}))
	check("scan connections", "synclayer_records_pkey", walk(func(fn func(*store.StoredRecord) (bool, error)) error {
		return snap.ScanConnections("crm", "contacts", "c010", "", fn)
	}))
	check("changes", "synclayer_records_cursor", func() {
		if err := snap.Changes(4, func(*store.StoredRecord) error { return nil }); err != nil {
			t.Fatal(err)
		}
	})
	check("lookup", "synclayer_fidx_", func() {
		if ids, _, err := snap.Lookup(store.SourceKey("crm", "c006"), "contacts", "tag", []any{"t6"}, 0); err != nil || len(ids) == 0 {
			t.Fatal(ids, err)
		}
	})
	check("lookup over connections", "synclayer_fidx_", func() {
		if keys, _, err := snap.LookupConnections("crm", "contacts", "tag", []any{"t6", "t12"}, 0); err != nil || len(keys) == 0 {
			t.Fatal(keys, err)
		}
	})
	check("count of a source key", "synclayer_records_pkey|synclayer_records_live", func() {
		if _, err := snap.CountSource("shop"); err != nil {
			t.Fatal(err)
		}
	})
	// modifiedAfter finds its first revision by the time index.
	n := 0
	for _, q := range rec.take(drain(store.Query{ModifiedAfter: t0.Add(3 * time.Second)})) {
		if strings.Contains(q.sql, "created_at >=") && !strings.Contains(q.sql, "FROM synclayer_records") {
			n++
			if plan := explain(q); !strings.Contains(plan, "synclayer_revisions_at") {
				t.Errorf("modifiedAfter's revision: %s", plan)
			}
		}
	}
	if n != 1 {
		t.Errorf("modifiedAfter read its revision in %d statements", n)
	}
}
