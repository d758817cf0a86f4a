package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// indexState is whether the index of d exists, and is valid.
func indexState(t *testing.T, l *Layer, d store.FieldIndex) (exists, valid bool) {
	t.Helper()
	err := l.s.pool.QueryRow(context.Background(), `SELECT count(*) > 0, coalesce(bool_and(i.indisvalid), false)
		FROM pg_index i WHERE i.indexrelid = to_regclass($1)`, fieldIndexName(l.id, d)).Scan(&exists, &valid)
	if err != nil {
		t.Fatal(err)
	}
	return exists, valid
}

func lookupIDs(t *testing.T, s *Snapshot, source, field string, values ...any) []string {
	t.Helper()
	ids, more, err := s.Lookup(source, "contacts", field, values, 0)
	if err != nil || more {
		t.Fatalf("Lookup(%s, %s, %v): %v %v", source, field, values, more, err)
	}
	return ids
}

func TestFieldIndexLifecycle(t *testing.T) {
	l := testLayer(t)
	for _, bad := range []store.FieldIndex{{Model: "m", Field: "f"}, {Source: "s", Field: "f"}, {Source: "s", Model: "m"}, {Source: "s", Model: "m", Field: "a\x00b"}} {
		if err := l.SetFieldIndexes([]store.FieldIndex{bad}); err == nil {
			t.Fatalf("accepted %+v", bad)
		}
	}
	acme := store.SourceKey("crm", "acme")
	publish(t, l, t0,
		save("crm", "contacts", "1", `{"email":"a@x","tags":["red","blue"],"n":1}`),
		save("crm", "contacts", "2", `{"email":"b@x","tags":"red","n":1.0}`),
		save(acme, "contacts", "1", `{"email":"a@x","n":2}`),
		save("crm", "deals", "1", `{"email":"a@x"}`),
		save("crm-2", "contacts", "1", `{"email":"a@x"}`),
		// jsonb holds no \u0000: the record is found by its other
		// fields; one whose JSON jsonb cannot hold is not found, and its
		// publish does not fail for the index.
		save("crm", "contacts", "3", `{"email":"a@x","odd":"\u0000","esc":"\\u0000"}`),
		save("crm", "contacts", "6", `{"email":"a@x","big":1e1000000}`),
	)
	email := store.FieldIndex{Source: "crm", Model: "contacts", Field: "email"}
	defs := []store.FieldIndex{email, {Source: "crm", Model: "contacts", Field: "tags"}, {Source: "crm", Model: "contacts", Field: "n"}, email}
	if err := l.SetFieldIndexes(defs); err != nil {
		t.Fatal(err)
	}
	if exists, valid := indexState(t, l, email); !exists || !valid {
		t.Fatalf("email index: exists %v, valid %v", exists, valid)
	}
	// Publishes after the build are indexed, the odd payload included.
	publish(t, l, t0.Add(time.Second),
		save("crm", "contacts", "4", `{"email":"a@x","tags":["green"]}`),
		save("crm", "contacts", "5", `{"email":"z@x","zero":"\u0000"}`),
		del("crm", "contacts", "2"),
	)
	s1, _, _ := l.OpenSnapshot(1)
	s2, _, _ := l.OpenSnapshot(2)
	defer s1.Close()
	defer s2.Close()
	p1, p2 := s1.(*Snapshot), s2.(*Snapshot)
	// Built at revision 1: both see it.
	if !p1.Indexed("crm", "contacts", "email") || !p2.Indexed(acme, "contacts", "email") || p2.Indexed("crm", "contacts", "odd") || p2.Indexed("crm", "deals", "email") {
		t.Fatal("Indexed")
	}
	eq(t, "email at 1", lookupIDs(t, p1, "crm", "email", "a@x"), []string{"1", "3"})
	eq(t, "email at 2", lookupIDs(t, p2, "crm", "email", "a@x"), []string{"1", "3", "4"})
	eq(t, "email of a connection", lookupIDs(t, p2, acme, "email", "a@x"), []string{"1"})
	eq(t, "array elements and scalars", lookupIDs(t, p1, "crm", "tags", "red"), []string{"1", "2"})
	eq(t, "deleted records are not found", lookupIDs(t, p2, "crm", "tags", "red"), []string{"1"})
	eq(t, "numbers by value", lookupIDs(t, p1, "crm", "n", 1), []string{"1", "2"})
	eq(t, "numbers by value", lookupIDs(t, p1, "crm", "n", json.Number("1e0"), "1"), []string{"1", "2"})
	eq(t, "values that match nothing", lookupIDs(t, p2, "crm", "email", nil, []any{"a@x"}, map[string]any{}, true), nil)
	eq(t, "a record published after the build, holding \\u0000", lookupIDs(t, p2, "crm", "email", "z@x"), []string{"5"})
	keys, more, err := p2.LookupConnections("crm", "contacts", "email", []any{"a@x", "b@x"}, 2)
	if err != nil || !more || len(keys) != 2 || keys[0] != (store.RecordKey{ID: "1"}) || keys[1] != (store.RecordKey{ID: "3"}) {
		t.Fatalf("LookupConnections: %v %v %v", keys, more, err)
	}
	keys, _, _ = p2.LookupConnections("crm", "contacts", "email", []any{"a@x"}, 0)
	if len(keys) != 4 || keys[3] != (store.RecordKey{Connection: "acme", ID: "1"}) {
		t.Fatalf("LookupConnections: %v", keys)
	}
	if _, _, err := p2.Lookup("crm", "contacts", "odd", []any{"x"}, 0); !errors.Is(err, store.ErrNotIndexed) {
		t.Fatalf("lookup of a field not indexed: %v", err)
	}

	// An index declared later is not there for older revisions.
	phone := store.FieldIndex{Source: "crm", Model: "contacts", Field: "phone"}
	if err := l.SetFieldIndexes(append(defs, phone)); err != nil {
		t.Fatal(err)
	}
	s1b, _, _ := l.OpenSnapshot(1)
	defer s1b.Close()
	if s1b.(*Snapshot).Indexed("crm", "contacts", "phone") {
		t.Fatal("an index built at revision 2 is there at revision 1")
	}
	if _, _, err := s1b.Lookup("crm", "contacts", "phone", []any{"1"}, 0); !errors.Is(err, store.ErrNotIndexed) {
		t.Fatal(err)
	}
	s2b, _, _ := l.OpenSnapshot(2)
	defer s2b.Close()
	if !s2b.(*Snapshot).Indexed("crm", "contacts", "phone") {
		t.Fatal("the new index is not there at the newest revision")
	}

	// An index left invalid (a build that died) is built again.
	if _, err := l.s.pool.Exec(context.Background(), `UPDATE pg_index SET indisvalid = false WHERE indexrelid = to_regclass($1)`, fieldIndexName(l.id, email)); err != nil {
		t.Fatal(err)
	}
	if err := l.SetFieldIndexes(append(defs, phone)); err != nil {
		t.Fatal(err)
	}
	if exists, valid := indexState(t, l, email); !exists || !valid {
		t.Fatalf("email index after a failed build: exists %v, valid %v", exists, valid)
	}
	// Dropped: gone from the database and from lookups.
	if err := l.SetFieldIndexes([]store.FieldIndex{phone}); err != nil {
		t.Fatal(err)
	}
	if exists, _ := indexState(t, l, email); exists {
		t.Fatal("a dropped field index is still in the database")
	}
	s3, _, _ := l.OpenSnapshot(0)
	defer s3.Close()
	if _, _, err := s3.Lookup("crm", "contacts", "email", []any{"a@x"}, 0); !errors.Is(err, store.ErrNotIndexed) {
		t.Fatalf("lookup of a dropped index: %v", err)
	}
	var n int
	if err := l.s.pool.QueryRow(context.Background(), `SELECT count(*) FROM synclayer_field_indexes WHERE layer_id = $1`, l.id).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d field indexes declared, %v; want 1", n, err)
	}
}

// Hosts declaring the same indexes at once build each once, for two
// layers at once.
func TestFieldIndexesFromManyHosts(t *testing.T) {
	s, dsn := openStore(t)
	l, _ := s.layer("catalog")
	publish(t, l, t0, save("crm", "contacts", "1", `{"email":"a@x"}`))
	other, _ := s.layer("other")
	publish(t, other, t0, save("crm", "contacts", "2", `{"email":"a@x"}`))
	defs := []store.FieldIndex{{Source: "crm", Model: "contacts", Field: "email"}, {Source: "crm", Model: "contacts", Field: "tags"}}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := Open(context.Background(), Options{DSN: dsn})
			if err != nil {
				errs[i] = err
				return
			}
			defer h.Close()
			hl, err := h.layer([]string{"catalog", "other"}[i%2])
			if err == nil {
				err = hl.SetFieldIndexes(defs)
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
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'synclayer_fidx_%'`).Scan(&n); err != nil || n != 4 {
		t.Fatalf("%d field indexes in the database, %v; want 4", n, err)
	}
	snap, _, _ := l.OpenSnapshot(0)
	defer snap.Close()
	eq(t, "lookup", lookupIDs(t, snap.(*Snapshot), "crm", "email", "a@x"), []string{"1"})
	snap2, _, _ := other.OpenSnapshot(0)
	defer snap2.Close()
	eq(t, "lookup in the other layer", lookupIDs(t, snap2.(*Snapshot), "crm", "email", "a@x"), []string{"2"})
}
