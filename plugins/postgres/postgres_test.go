package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
	"github.com/synclayer/synclayer/plugins/postgres/pgtest"
)

// server is one PostgreSQL for the package's tests; each test makes its
// own database.
var server *pgtest.Server

func TestMain(m *testing.M) {
	var err error
	if server, err = pgtest.New(); err != nil {
		// Fail, never skip: these tests need a real PostgreSQL.
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := server.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// withPassword puts a password into the DSN (the test server trusts every
// connection, so any works): the sensitive-config check looks for it.
func withPassword(dsn string) string {
	return strings.Replace(dsn, "postgres@", "postgres:pw-0f-the-db@", 1)
}

func config(dsn string, tables map[string]any) map[string]any {
	return map[string]any{"dsn": dsn, "tables": tables}
}

func customers(dsn string) map[string]any {
	return config(dsn, map[string]any{
		"Customer": map[string]any{"table": "public.customers", "id": "id", "updated_at": "updated_at"},
	})
}

const schema = `CREATE TABLE customers (
	id int PRIMARY KEY,
	name text NOT NULL,
	updated_at timestamptz
)`

// seed inserts customers 1..n, updated one second apart from t0; those in
// tie share the updated_at of customer tie[0].
func seed(t *testing.T, dsn string, n int) {
	t.Helper()
	pgtest.Exec(t, dsn, schema, fmt.Sprintf(
		`INSERT INTO customers SELECT i, 'customer ' || i, '2026-11-23 07:00:00+00'::timestamptz + i * interval '1 second' FROM generate_series(1, %d) i`, n))
}

func syncRun(t *testing.T, h *sdktest.Harness, cfg map[string]any, sync string, full bool, cp sdk.Checkpoint) *sdktest.Result {
	t.Helper()
	res, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: sync, Full: full, Checkpoint: cp})
	if err != nil {
		t.Fatalf("sync %s: %v", sync, err)
	}
	return res
}

func ids(res *sdktest.Result) string {
	var out []string
	for _, c := range res.Changes {
		out = append(out, c.ID)
	}
	return strings.Join(out, ",")
}

func TestDescribeAndCheck(t *testing.T) {
	dsn := server.Database(t)
	seed(t, dsn, 1)
	pgtest.Exec(t, dsn, `CREATE TABLE "Odd Name" (key uuid PRIMARY KEY)`)
	h := sdktest.New(t, &Postgres{})
	d, err := h.Describe(nil)
	if err != nil || d.Name != "postgres" || len(d.Models) != 0 {
		t.Fatalf("%v %+v", err, d)
	}
	if f := d.Field("dsn"); f == nil || !f.Sensitive || !f.Required {
		t.Fatalf("dsn: %+v", f)
	}
	if d.Field("tables") == nil || d.Field("listen") == nil {
		t.Fatalf("config %+v", d.Config)
	}
	cfg := config(dsn, map[string]any{
		"Customer": map[string]any{"table": "public.customers", "updated_at": "updated_at"},
		"Odd":      map[string]any{"table": `"Odd Name"`, "id": "key"},
	})
	cfg["listen"] = "synclayer_changes"
	d, err = h.Describe(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Syncs) != 2 || d.Syncs[0].Name != "Customer" || !d.Syncs[0].Incremental || d.Syncs[1].Name != "Odd" || d.Syncs[1].Incremental {
		t.Fatalf("syncs %+v", d.Syncs)
	}
	if !strings.Contains(d.Models[0].Description, "NOTIFY synclayer_changes, 'Customer'") {
		t.Fatalf("models %+v", d.Models)
	}
	if err := h.Check(t.Context(), cfg); err != nil {
		t.Fatalf("check: %v", err)
	}
	for table, want := range map[string]string{
		"public.nope": `tables.Customer: table "public.nope" does not exist`,
	} {
		bad := config(dsn, map[string]any{"Customer": map[string]any{"table": table}})
		if err := h.Check(t.Context(), bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
	bad := config(dsn, map[string]any{"Customer": map[string]any{"table": "customers", "updated_at": "modified"}})
	if err := h.Check(t.Context(), bad); err == nil || !strings.Contains(err.Error(), `updated_at: table customers has no column "modified"`) {
		t.Errorf("got %v", err)
	}
	bad = config("postgres://postgres:hunter2-pw@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", map[string]any{"Customer": map[string]any{"table": "customers"}})
	if err := h.Check(t.Context(), bad); err == nil || !strings.Contains(err.Error(), "connecting to PostgreSQL") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("got %v", err)
	}
	bad = customers(dsn)
	bad["listen"] = "no spaces allowed"
	if _, err := h.Describe(bad); err == nil || !strings.Contains(err.Error(), "must be a plain identifier") {
		t.Errorf("got %v", err)
	}
}

func TestTypeMapping(t *testing.T) {
	dsn := server.Database(t)
	pgtest.Exec(t, dsn,
		`CREATE TYPE mood AS ENUM ('happy', 'sad')`,
		`CREATE DOMAIN posint AS int CHECK (VALUE > 0)`,
		`CREATE TABLE everything (
			id bigint PRIMARY KEY,
			small smallint, big bigint, dbl double precision, real_ real, nan double precision, inf double precision,
			num numeric(30,10), huge numeric,
			flag boolean,
			txt text, vc varchar(10), ch char(3),
			js json, jsb jsonb,
			ts timestamptz, tsnotz timestamp, d date, tm time, inf_ts timestamptz,
			raw bytea,
			u uuid,
			ints int[], texts text[], nested int[][], nums numeric[], jsons jsonb[],
			feeling mood, dom posint, iv interval, ip inet,
			updated_at timestamptz
		)`,
		`INSERT INTO everything VALUES (
			1,
			-32768, 9223372036854775807, 1.5, 0.25, 'NaN', '-Infinity',
			12345678901234567890.0123456789, 1e-40,
			true,
			'héllo "quoted"', 'short', 'ab',
			'{"b": 1, "a": [1, 2.50]}', '{"b": 1, "a": [1, 2.50]}',
			'2026-11-23 08:00:00.123456+01', '2026-11-23 07:00:00.5', '2026-11-23', '07:08:09', 'infinity',
			'\x00ff10',
			'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
			'{1,2,NULL}', '{"a","b c"}', '{{1,2},{3,4}}', '{1.10,2}', ARRAY['{"x":1}'::jsonb],
			'sad', 7, '1 day 02:00:00', '10.0.0.1/32',
			'2026-11-23 07:00:00+00'
		)`,
		`INSERT INTO everything (id) VALUES (2)`,
	)
	h := sdktest.New(t, &Postgres{})
	cfg := config(dsn, map[string]any{"All": map[string]any{"table": "everything", "updated_at": "updated_at"}})
	res := syncRun(t, h, cfg, "All", true, nil)
	if ids(res) != "2,1" { // the NULL updated_at first, then by updated_at
		t.Fatalf("ids %s", ids(res))
	}
	var got map[string]any
	if err := json.Unmarshal(res.Changes[1].Data, &got); err != nil {
		t.Fatalf("%v: %s", err, res.Changes[1].Data)
	}
	want := map[string]string{
		"id": `1`, "small": `-32768`, "big": `9223372036854775807`, "dbl": `1.5`, "real_": `0.25`, "nan": `"NaN"`, "inf": `"-Infinity"`,
		"num": `"12345678901234567890.0123456789"`, "huge": `"0.0000000000000000000000000000000000000001"`,
		"flag": `true`,
		"txt":  `"héllo \"quoted\""`, "vc": `"short"`, "ch": `"ab "`,
		"js": `{"a":[1,2.5],"b":1}`, "jsb": `{"a":[1,2.5],"b":1}`,
		"ts": `"2026-11-23T07:00:00.123456+00:00"`, "tsnotz": `"2026-11-23T07:00:00.5"`, "d": `"2026-11-23"`, "tm": `"07:08:09"`, "inf_ts": `"infinity"`,
		"raw":  `"AP8Q"`,
		"u":    `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`,
		"ints": `[1,2,null]`, "texts": `["a","b c"]`, "nested": `[[1,2],[3,4]]`, "nums": `["1.10","2"]`, "jsons": `[{"x":1}]`,
		"feeling": `"sad"`, "dom": `7`, "iv": `"1 day 02:00:00"`, "ip": `"10.0.0.1"`,
		"updated_at": `"2026-11-23T07:00:00+00:00"`,
	}
	// Compare the raw JSON of each attribute (numbers as written).
	var raw map[string]json.RawMessage
	json.Unmarshal(res.Changes[1].Data, &raw)
	for k, w := range want {
		var a, b any
		json.Unmarshal([]byte(w), &a)
		json.Unmarshal(raw[k], &b)
		if fmt.Sprintf("%#v", a) != fmt.Sprintf("%#v", b) {
			t.Errorf("%s: got %s, want %s", k, raw[k], w)
		}
	}
	if len(raw) != len(want) {
		t.Errorf("%d attributes, want %d: %s", len(raw), len(want), res.Changes[1].Data)
	}
	if !strings.Contains(string(raw["big"]), "9223372036854775807") || !strings.Contains(string(raw["num"]), "12345678901234567890.0123456789") {
		t.Errorf("precision lost: %s %s", raw["big"], raw["num"])
	}
	var nulls map[string]any
	json.Unmarshal(res.Changes[0].Data, &nulls)
	if len(nulls) != len(want) || nulls["js"] != nil || nulls["ints"] != nil || nulls["raw"] != nil || nulls["id"] != 2.0 {
		t.Errorf("NULLs: %s", res.Changes[0].Data)
	}
}

func TestPagesNeverLoseTies(t *testing.T) {
	dsn := server.Database(t)
	seed(t, dsn, 25)
	// Ten customers share one updated_at: more than a page.
	pgtest.Exec(t, dsn, `UPDATE customers SET updated_at = '2026-11-23 07:00:10+00' WHERE id BETWEEN 6 AND 15`)
	h := sdktest.New(t, &Postgres{PageSize: 3})
	res := syncRun(t, h, customers(dsn), "Customer", true, nil)
	want := "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25"
	if ids(res) != want {
		t.Fatalf("ids %s", ids(res))
	}
	if n := len(res.Checkpoints()); n != 9 { // after each of 8 full pages, and at the end
		t.Fatalf("%d checkpoints", n)
	}
	if u, _ := res.Checkpoint.GetString("updated_at"); u != "2026-11-23 07:00:25+00" || res.Checkpoint["id"] != "25" || res.Checkpoint["phase"] != nil {
		t.Fatalf("final checkpoint %v", res.Checkpoint)
	}
	// Resume from every checkpoint: nothing lost, nothing repeated.
	all := strings.Split(want, ",")
	before := 0
	for _, m := range res.Messages {
		before += len(m.Batch)
		if m.Checkpoint == nil || m.Checkpoint["phase"] == nil {
			continue
		}
		rest := syncRun(t, h, customers(dsn), "Customer", true, m.Checkpoint)
		if got := ids(rest); got != strings.Join(all[before:], ",") {
			t.Fatalf("resumed after %d rows from %v: %s", before, m.Checkpoint, got)
		}
	}
}

func TestIncremental(t *testing.T) {
	dsn := server.Database(t)
	seed(t, dsn, 5)
	h := sdktest.New(t, &Postgres{PageSize: 2})
	full := syncRun(t, h, customers(dsn), "Customer", true, nil)
	if ids(full) != "1,2,3,4,5" {
		t.Fatalf("full %s", ids(full))
	}
	res := syncRun(t, h, customers(dsn), "Customer", false, full.Checkpoint)
	if ids(res) != "" {
		t.Fatalf("unchanged table: %s", ids(res))
	}
	pgtest.Exec(t, dsn,
		`UPDATE customers SET name = 'two, renamed', updated_at = '2026-11-23 08:00:00+00' WHERE id = 2`,
		`INSERT INTO customers VALUES (7, 'seven', '2026-11-23 08:00:00+00'), (6, 'six', '2026-11-23 07:00:05+00')`, // 6 ties with 5, after it
		`INSERT INTO customers VALUES (8, 'no time', NULL)`,                                                         // invisible to incremental runs
	)
	res = syncRun(t, h, customers(dsn), "Customer", false, res.Checkpoint)
	if ids(res) != "6,2,7" {
		t.Fatalf("incremental %s", ids(res))
	}
	var rec map[string]any
	json.Unmarshal(res.Changes[1].Data, &rec)
	if rec["name"] != "two, renamed" {
		t.Fatalf("record %s", res.Changes[1].Data)
	}
	if res := syncRun(t, h, customers(dsn), "Customer", false, res.Checkpoint); ids(res) != "" {
		t.Fatalf("third run repeats %s", ids(res))
	}
	// A full run reads the NULL updated_at too.
	if res := syncRun(t, h, customers(dsn), "Customer", true, res.Checkpoint); ids(res) != "8,1,3,4,5,6,2,7" {
		t.Fatalf("full %s", ids(res))
	}
}

// TestFullRunsFindDeletes: a full run writes exactly the rows the table
// still has, which is what the host's track_deletes needs.
func TestFullRunsFindDeletes(t *testing.T) {
	dsn := server.Database(t)
	seed(t, dsn, 4)
	h := sdktest.New(t, &Postgres{})
	first := syncRun(t, h, customers(dsn), "Customer", true, nil)
	pgtest.Exec(t, dsn, `DELETE FROM customers WHERE id = 3`)
	if res := syncRun(t, h, customers(dsn), "Customer", true, first.Checkpoint); ids(res) != "1,2,4" {
		t.Fatalf("full run after a delete: %s", ids(res))
	}
}

func TestResumeAnInterruptedFullRun(t *testing.T) {
	dsn := server.Database(t)
	seed(t, dsn, 6)
	pgtest.Exec(t, dsn, `INSERT INTO customers SELECT i, 'n' || i, NULL FROM generate_series(10, 14) i`)
	h := sdktest.New(t, &Postgres{PageSize: 2})
	for k, want := range map[int][2]string{
		1: {"10,11", "12,13,14,1,2,3,4,5,6"}, // in the NULL phase
		3: {"10,11,12,13,14,1,2", "3,4,5,6"}, // in the rows phase
	} {
		part, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: customers(dsn), Sync: "Customer", Full: true, StopAfterCheckpoints: k})
		if err != nil {
			t.Fatal(err)
		}
		if ids(part) != want[0] {
			t.Fatalf("after checkpoint %d: %s (%v)", k, ids(part), part.Checkpoint)
		}
		rest := syncRun(t, h, customers(dsn), "Customer", true, part.Checkpoint)
		if ids(rest) != want[1] {
			t.Fatalf("resumed from %v: %s", part.Checkpoint, ids(rest))
		}
	}
}

func TestTableWithoutUpdatedAt(t *testing.T) {
	dsn := server.Database(t)
	pgtest.Exec(t, dsn, `CREATE TABLE tags (slug text PRIMARY KEY, id int)`, `INSERT INTO tags VALUES ('b', 20), ('a', 10), ('c', 30)`)
	h := sdktest.New(t, &Postgres{PageSize: 2})
	cfg := config(dsn, map[string]any{"Tag": map[string]any{"table": "tags", "id": "slug"}})
	res := syncRun(t, h, cfg, "Tag", true, nil)
	if ids(res) != "a,b,c" || string(res.Changes[0].Data) != `{"id":"a","slug":"a"}` {
		t.Fatalf("%s %s", ids(res), res.Changes[0].Data)
	}
}

// watchConfig is a config with two models and a listen channel.
func watchConfig(dsn string) map[string]any {
	cfg := config(dsn, map[string]any{
		"Customer": map[string]any{"table": "public.customers", "id": "id"},
		"Order":    map[string]any{"table": "orders", "id": "id"},
	})
	cfg["listen"] = "synclayer_changes"
	return cfg
}

// firstEvent NOTIFYs until the watcher is listening and an event arrives
// (a NOTIFY before LISTEN took effect is lost), then drains the repeats.
func firstEvent(t *testing.T, dsn string, w *sdktest.WatchStream, payload string) sdktest.WatchEvent {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		pgtest.Exec(t, dsn, fmt.Sprintf(`NOTIFY synclayer_changes, '%s'`, payload))
		ev, err := w.Next(100 * time.Millisecond)
		if err == nil {
			for {
				if _, err := w.Next(300 * time.Millisecond); err != nil {
					break // the probe's repeats are drained
				}
			}
			return ev
		}
		if !strings.Contains(err.Error(), "no watch event within") {
			t.Fatal(err)
		}
	}
	t.Fatal("no event for a NOTIFY within 15s")
	return sdktest.WatchEvent{}
}

func TestListenNotify(t *testing.T) {
	dsn := server.Database(t)
	seed(t, dsn, 1)
	pgtest.Exec(t, dsn, `CREATE TABLE orders (id int PRIMARY KEY)`)
	h := sdktest.New(t, &Postgres{})
	cfg := watchConfig(dsn)

	// Describe says watches only when listen is set; Watch is refused
	// otherwise.
	if d, err := h.Describe(nil); err != nil || !d.Watches {
		t.Fatalf("static: %v %+v", err, d)
	}
	if d, err := h.Describe(cfg); err != nil || !d.Watches {
		t.Fatalf("with listen: %v %+v", err, d)
	}
	quiet := customers(dsn)
	if d, err := h.Describe(quiet); err != nil || d.Watches {
		t.Fatalf("without listen: %v %+v", err, d)
	}
	if err := h.Watch(t.Context(), quiet).Wait(); err == nil || !strings.Contains(err.Error(), "does not enable watching") {
		t.Fatalf("Watch without listen: %v", err)
	}

	started := time.Now()
	w := h.Watch(t.Context(), cfg)
	defer w.Stop()
	ev := firstEvent(t, dsn, w, "Customer")
	if fmt.Sprint(ev.Syncs) != "[Customer]" || ev.Reason != "NOTIFY synclayer_changes, 'Customer'" {
		t.Fatalf("first event: %+v", ev)
	}
	t.Logf("listening after %s", time.Since(started).Round(time.Millisecond))
	for _, tc := range []struct{ payload, syncs, reason string }{
		{"orders", "[Order]", "NOTIFY synclayer_changes, 'orders'"},
		{"public.customers", "[Customer]", "NOTIFY synclayer_changes, 'public.customers'"},
		{"", "[Customer Order]", "NOTIFY synclayer_changes, ''"},
		{"it''s nonsense", "[Customer Order]", "NOTIFY synclayer_changes, 'it''s nonsense'"},
	} {
		sent := time.Now()
		pgtest.Exec(t, dsn, fmt.Sprintf(`NOTIFY synclayer_changes, '%s'`, tc.payload))
		ev, err := w.Next(10 * time.Second)
		if err != nil {
			t.Fatalf("payload %q: %v", tc.payload, err)
		}
		if fmt.Sprint(ev.Syncs) != tc.syncs || ev.Reason != tc.reason {
			t.Errorf("payload %q: %+v, want %s %q", tc.payload, ev, tc.syncs, tc.reason)
		}
		t.Logf("payload %q: event after %s", tc.payload, time.Since(sent).Round(time.Microsecond))
	}
	// The statement trigger of the README.
	pgtest.Exec(t, dsn, `CREATE FUNCTION synclayer_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('synclayer_changes', TG_ARGV[0]);
  RETURN NULL;
END $$`, `CREATE TRIGGER customers_changed AFTER INSERT OR UPDATE OR DELETE ON customers
  FOR EACH STATEMENT EXECUTE FUNCTION synclayer_notify('Customer')`,
		`UPDATE customers SET name = 'x'`)
	if ev, err := w.Next(10 * time.Second); err != nil || fmt.Sprint(ev.Syncs) != "[Customer]" {
		t.Errorf("after an UPDATE with the README's trigger: %v %+v", err, ev)
	}
	// NOTIFY on another channel is not ours.
	pgtest.Exec(t, dsn, `NOTIFY other_channel, 'Customer'`)
	if ev, err := w.Next(300 * time.Millisecond); err == nil {
		t.Errorf("an event for another channel: %+v", ev)
	}

	// The listening connection dies: the watcher reconnects and goes on.
	pgtest.Exec(t, dsn, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'synclayer-plugin-postgres' AND query LIKE 'LISTEN%'`)
	killed := time.Now()
	if ev := firstEvent(t, dsn, w, "Order"); fmt.Sprint(ev.Syncs) != "[Order]" {
		t.Fatalf("after a reconnect: %+v", ev)
	}
	t.Logf("listening again %s after the connection was killed", time.Since(killed).Round(time.Millisecond))

	stopped := time.Now()
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Watch returned %s after the stream closed", time.Since(stopped).Round(time.Millisecond))
}

func TestNotifyReasonIsBounded(t *testing.T) {
	long := strings.Repeat("é", 80) // 160 bytes
	got := notifyReason(&pgconn.Notification{Channel: "c", Payload: long})
	if !strings.HasSuffix(got, "…'") || len(got) > len("NOTIFY c, ''")+maxReasonPayload+len("…") || !utf8.ValidString(got) {
		t.Errorf("reason %q", got)
	}
}

func TestAcceptance(t *testing.T) {
	dsn := server.Database(t)
	seed(t, dsn, 7)
	pgtest.Exec(t, dsn,
		`CREATE TABLE notes (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), body jsonb, at timestamp)`,
		`INSERT INTO notes (body, at) SELECT jsonb_build_object('n', i), '2026-01-01'::timestamp + i * interval '1 minute' FROM generate_series(1, 5) i`,
		`INSERT INTO notes (body, at) VALUES ('{"n": null}', NULL)`,
	)
	var mu sync.Mutex
	n := 100
	cfg := config(withPassword(dsn), map[string]any{
		"Customer": map[string]any{"table": "public.customers", "id": "id", "updated_at": "updated_at"},
		"Note":     map[string]any{"table": "notes", "updated_at": "at"},
	})
	sdktest.Acceptance{
		Config: cfg,
		Change: func(tb testing.TB, sync string) {
			mu.Lock()
			defer mu.Unlock()
			n++
			pgtest.Exec(tb, dsn,
				fmt.Sprintf(`UPDATE customers SET name = 'renamed', updated_at = '2026-11-24 00:00:00+00'::timestamptz + %d * interval '1 second' WHERE id = 2`, n),
				fmt.Sprintf(`INSERT INTO customers VALUES (%d, 'new', '2026-11-24 00:00:00+00'::timestamptz + %d * interval '1 second')`, n, n),
				`DELETE FROM customers WHERE id = 3`,
				fmt.Sprintf(`INSERT INTO notes (body, at) VALUES ('{"new": %d}', '2027-01-01'::timestamp + %d * interval '1 second')`, n, n),
			)
		},
	}.Run(t, &Postgres{PageSize: 2})
}
