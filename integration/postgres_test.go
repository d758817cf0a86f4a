package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synclayer/synclayer/plugins/postgres/pgtest"
)

func postgresLayer(dsn string) string {
	return fmt.Sprintf(`
layer "crm" {
  source "db" {
    plugin = "postgres"
    config {
      dsn    = %q
      tables = {
        Customer = { table = "public.customers", id = "id", updated_at = "updated_at" }
      }
    }
    sync "Customer" {
      track_deletes = true
    }
  }
}
`, dsn)
}

// TestPostgresSourceEndToEnd serves a layer with a postgres source against
// a real PostgreSQL through the real binaries: the first run reads every
// row with its types mapped, an incremental run brings only the rows
// changed since, and a full run lets track_deletes delete the row that
// disappeared.
func TestPostgresSourceEndToEnd(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := strings.Replace(pg.Database(t), "postgres@", "postgres:db-pa55word@", 1)
	pgtest.Exec(t, dsn,
		`CREATE TABLE customers (id int PRIMARY KEY, name text, balance numeric(12,2), tags text[], meta jsonb, updated_at timestamptz)`,
		`INSERT INTO customers SELECT i, 'customer ' || i, i * 10.5, ARRAY['t' || i], jsonb_build_object('n', i),
			'2026-11-23 07:00:00+00'::timestamptz + i * interval '1 second' FROM generate_series(1, 5) i`,
	)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "layer.hcl"), postgresLayer(dsn))
	h := startHost(t, filepath.Join(dir, "layer.hcl"), "")
	h.waitRevision("crm", 1, 30*time.Second)

	all := h.records("crm", "model=Customer")
	if len(all) != 5 {
		t.Fatalf("first run: %d records: %v\n%s", len(all), all, h.logs())
	}
	byID := func(rs []record) map[string]record {
		m := map[string]record{}
		for _, r := range rs {
			m[fmt.Sprint(r["id"])] = r
		}
		return m
	}
	c3 := byID(all)["3"]
	if c3["balance"] != "31.50" || fmt.Sprint(c3["tags"]) != "[t3]" || fmt.Sprint(c3["meta"]) != "map[n:3]" ||
		c3["updated_at"] != "2026-11-23T07:00:03+00:00" || c3.meta("source") != "db" {
		t.Fatalf("record 3: %v", c3)
	}

	// One row updated, one inserted, one deleted: an incremental run
	// brings the first two.
	pgtest.Exec(t, dsn,
		`UPDATE customers SET name = 'renamed', updated_at = '2026-11-23 08:00:00+00' WHERE id = 2`,
		`INSERT INTO customers VALUES (6, 'six', 60, '{}', '{}', '2026-11-23 08:00:01+00')`,
		`DELETE FROM customers WHERE id = 4`,
	)
	var started struct {
		Run string `json:"run"`
	}
	h.call("POST", "/v1/layers/crm/syncs", map[string]any{}, 202, &started)
	if r := h.waitRun("crm", started.Run, 30*time.Second); r.State != "completed" {
		t.Fatalf("incremental run: %+v\n%s", r, h.logs())
	}
	changed := byID(h.records("crm", "model=Customer&filter=added,updated"))
	if changed["2"]["name"] != "renamed" || changed["6"]["name"] != "six" {
		t.Fatalf("after the incremental run: %v", changed)
	}
	if got := byID(h.records("crm", "model=Customer&ids=4"))["4"]; got == nil || got.meta("last_action") == "DELETED" {
		t.Fatalf("an incremental run cannot see deletes; row 4: %v", got)
	}

	// A full run (reset) deletes row 4 through track_deletes.
	h.call("POST", "/v1/layers/crm/syncs", map[string]any{"reset": true}, 202, &started)
	if r := h.waitRun("crm", started.Run, 30*time.Second); r.State != "completed" {
		t.Fatalf("full run: %+v\n%s", r, h.logs())
	}
	if got := byID(h.records("crm", "model=Customer&ids=4"))["4"]; got == nil || got.meta("last_action") != "DELETED" {
		t.Fatalf("after a full run with track_deletes, row 4: %v\n%s", got, h.logs())
	}
	if strings.Contains(h.logs(), "db-pa55word") {
		t.Fatalf("the DSN's password reached the host log:\n%s", h.logs())
	}
}

// TestPostgresListenStartsRuns: with `listen`, a NOTIFY on the channel
// starts an incremental run that brings the changed row, with no schedule
// and no manual trigger.
func TestPostgresListenStartsRuns(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.Database(t)
	pgtest.Exec(t, dsn,
		`CREATE TABLE customers (id int PRIMARY KEY, name text, updated_at timestamptz NOT NULL DEFAULT now())`,
		`INSERT INTO customers (id, name) VALUES (1, 'first')`,
	)
	dir := t.TempDir()
	layer := strings.Replace(postgresLayer(dsn), `      tables = {`, `      listen = "synclayer_changes"
      tables = {`, 1)
	writeFile(t, filepath.Join(dir, "layer.hcl"), layer)
	h := startHost(t, filepath.Join(dir, "layer.hcl"), "")
	h.waitRevision("crm", 1, 30*time.Second)
	h.idle("crm", 30*time.Second)
	// The watch may open just after the first run; a NOTIFY before it is
	// lost, so notify until a run brings the row.
	pgtest.Exec(t, dsn, `INSERT INTO customers (id, name) VALUES (2, 'second')`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		pgtest.Exec(t, dsn, `NOTIFY synclayer_changes, 'Customer'`)
		time.Sleep(200 * time.Millisecond)
		if got := h.records("crm", "model=Customer&ids=2"); len(got) == 1 {
			if got[0]["name"] != "second" {
				t.Fatalf("row 2: %v", got[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a NOTIFY never brought row 2\n%s", h.logs())
		}
	}
	var revs revisionList
	h.call("GET", "/v1/layers/crm/revisions", nil, 200, &revs)
	if revs.Revisions[0].Trigger != "webhook" {
		t.Fatalf("the run a NOTIFY started: %+v", revs.Revisions[0])
	}
}
