package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store"
)

// The read side is tested against rows written here as a publish writes
// them (0002_records.sql): putVersion applies one change the way the
// embedded driver's applier does (added, updated, deleted keeping the last
// payload, re-added after a delete keeping first_seen), and publish makes
// a revision of changes.

// chg is one change of a test revision.
type chg struct {
	sourceKey, model, id string
	data                 string // JSON object; unused for a delete
	del                  bool
}

func save(sourceKey, model, id, data string) chg {
	return chg{sourceKey: sourceKey, model: model, id: id, data: data}
}

func del(sourceKey, model, id string) chg {
	return chg{sourceKey: sourceKey, model: model, id: id, del: true}
}

// publish writes revision (newest + 1) of l, committed at at, with changes
// in order (their seq), and returns its number.
func publish(t testing.TB, l *Layer, at time.Time, changes ...chg) int64 {
	t.Helper()
	ctx := context.Background()
	var rev int64
	err := pgx.BeginFunc(ctx, l.s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM synclayer_layers WHERE id = $1 FOR UPDATE`, l.id); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(rev), 0) + 1 FROM synclayer_revisions WHERE layer_id = $1`, l.id).Scan(&rev); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO synclayer_revisions (layer_id, rev, created_at, info) VALUES ($1, $2, $3, '{}')`, l.id, rev, at); err != nil {
			return err
		}
		seq := int32(0)
		for _, c := range changes {
			ok, err := putVersion(ctx, tx, l.id, rev, seq, c)
			if err != nil {
				return err
			}
			if ok {
				seq++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// putVersion applies change c in revision rev as its seq-th change; ok is
// false when it changes nothing (a delete of a missing or deleted record,
// an unchanged payload).
func putVersion(ctx context.Context, tx pgx.Tx, layer, rev int64, seq int32, c chg) (ok bool, err error) {
	var prevFrom, prevFirst int64
	var prevAction int16
	var prevPayload []byte
	err = tx.QueryRow(ctx, `SELECT from_rev, action, first_seen_rev, payload FROM synclayer_records
		WHERE layer_id = $1 AND source_key = $2 AND model = $3 AND id = $4 AND to_rev IS NULL`,
		layer, c.sourceKey, c.model, c.id).Scan(&prevFrom, &prevAction, &prevFirst, &prevPayload)
	found := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, err
	}
	if found && prevFrom == rev {
		return false, fmt.Errorf("test helper: %s/%s/%s changed twice in revision %d", c.sourceKey, c.model, c.id, rev)
	}
	action, first, payload := store.Added, rev, []byte(c.data)
	switch {
	case c.del:
		if !found || store.Action(prevAction) == store.Deleted {
			return false, nil
		}
		action, first, payload = store.Deleted, prevFirst, prevPayload
	case !found:
	case store.Action(prevAction) == store.Deleted:
		first = prevFirst
	case bytes.Equal(prevPayload, payload):
		return false, nil
	default:
		action, first = store.Updated, prevFirst
	}
	if found {
		if _, err := tx.Exec(ctx, `UPDATE synclayer_records SET to_rev = $5
			WHERE layer_id = $1 AND source_key = $2 AND model = $3 AND id = $4 AND to_rev IS NULL`,
			layer, c.sourceKey, c.model, c.id, rev); err != nil {
			return false, err
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO synclayer_records (layer_id, source_key, model, id, from_rev, seq, action, first_seen_rev, payload)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		layer, c.sourceKey, c.model, c.id, rev, seq, int16(action), first, payload)
	return err == nil, err
}

// pin pins revision n of l (0 unpins), as the layer row holds it.
func pin(t testing.TB, l *Layer, n int64) {
	t.Helper()
	if _, err := l.s.pool.Exec(context.Background(), `UPDATE synclayer_layers SET pinned = $2 WHERE id = $1`, l.id, n); err != nil {
		t.Fatal(err)
	}
}

// prune makes revisions up to n unreadable as retention does
// (revisions.go): their rows lose kept, the discard point rises past them,
// and the versions only they saw are deleted.
func prune(t testing.TB, l *Layer, n int64) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, l.s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE synclayer_revisions SET kept = false, info = '{}' WHERE layer_id = $1 AND rev <= $2`, l.id, n); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE synclayer_layers SET discard_rev = $2 + 1 WHERE id = $1`, l.id, n); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM synclayer_records WHERE layer_id = $1 AND to_rev <= $2 + 1`, l.id, n)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testLayer(t testing.TB) *Layer {
	t.Helper()
	s, _ := openStore(t)
	l, err := s.layer("catalog")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// meta is a rendered record's _metadata.
type meta struct {
	Source         string  `json:"source"`
	Connection     *string `json:"connection"`
	Model          string  `json:"model"`
	FirstSeenAt    string  `json:"first_seen_at"`
	LastModifiedAt string  `json:"last_modified_at"`
	LastAction     string  `json:"last_action"`
	DeletedAt      *string `json:"deleted_at"`
	Cursor         string  `json:"cursor"`
	Revision       int64   `json:"revision"`
}

type rendered struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Meta  meta   `json:"_metadata"`
	raw   []byte
}

func records(t testing.TB, l *Layer, q store.Query) ([]rendered, store.Page) {
	t.Helper()
	out, page, err := recordsErr(l, q)
	if err != nil {
		t.Fatal(err)
	}
	return out, page
}

func recordsErr(l *Layer, q store.Query) ([]rendered, store.Page, error) {
	var out []rendered
	page, err := l.Records(q, func(b []byte) error {
		var r rendered
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%w: %s", err, b)
		}
		r.raw = append([]byte(nil), b...)
		out = append(out, r)
		return nil
	})
	return out, page, err
}

func ids(rs []rendered) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func eq[T comparable](t testing.TB, what string, got, want []T) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: got %v, want %v", what, got, want)
		}
	}
}

func item(id, title string) string { return fmt.Sprintf(`{"id":%q,"title":%q}`, id, title) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

func TestRecordsLifecycleAndRevisions(t *testing.T) {
	l := testLayer(t)
	// Nothing published: an empty page, no revision.
	if rs, page := records(t, l, store.Query{}); len(rs) != 0 || page.Revision.Number != 0 || page.Next != "" {
		t.Fatalf("empty layer: %v %+v", rs, page)
	}
	if _, _, err := recordsErr(l, store.Query{Revision: 1}); !errors.Is(err, store.ErrNoRevision) {
		t.Fatalf("revision 1 of an empty layer: %v", err)
	}
	r1 := publish(t, l, t0, save("shop", "items", "a", item("a", "A")), save("shop", "items", "b", item("b", "B")))
	r2 := publish(t, l, t0.Add(time.Second), save("shop", "items", "a", item("a", "A2")), save("shop", "items", "c", item("c", "C")))
	r3 := publish(t, l, t0.Add(2*time.Second), del("shop", "items", "b"))

	rs, page := records(t, l, store.Query{})
	if page.Revision.Number != r3 || !page.Revision.CreatedAt.Equal(t0.Add(2*time.Second)) || page.Next != "" {
		t.Fatalf("page: %+v", page)
	}
	eq(t, "current", ids(rs), []string{"a", "c", "b"})
	a, c, b := rs[0], rs[1], rs[2]
	if a.Title != "A2" || a.Meta.LastAction != "UPDATED" || a.Meta.FirstSeenAt != "2026-03-01T12:00:00.123456Z" ||
		a.Meta.LastModifiedAt != "2026-03-01T12:00:01.123456Z" || a.Meta.Revision != r2 || a.Meta.DeletedAt != nil {
		t.Fatalf("a: %s", a.raw)
	}
	if c.Meta.LastAction != "ADDED" || c.Meta.FirstSeenAt != c.Meta.LastModifiedAt {
		t.Fatalf("c: %s", c.raw)
	}
	// A deleted record keeps its last payload and says when it was deleted.
	if b.Title != "B" || b.Meta.LastAction != "DELETED" || b.Meta.DeletedAt == nil || *b.Meta.DeletedAt != "2026-03-01T12:00:02.123456Z" || b.Meta.Revision != r3 {
		t.Fatalf("b: %s", b.raw)
	}
	if b.Meta.Connection != nil || b.Meta.Source != "shop" || b.Meta.Model != "items" {
		t.Fatalf("b: %s", b.raw)
	}
	// Cursors grow strictly and are (revision, seq).
	for i := 1; i < len(rs); i++ {
		if rs[i-1].Meta.Cursor >= rs[i].Meta.Cursor {
			t.Fatalf("cursors not increasing: %s then %s", rs[i-1].Meta.Cursor, rs[i].Meta.Cursor)
		}
	}
	if want := store.MakeCursor(uint64(r2), 1).String(); c.Meta.Cursor != want {
		t.Fatalf("c's cursor %s, want %s", c.Meta.Cursor, want)
	}

	// Old revisions see old versions.
	rs, page = records(t, l, store.Query{Revision: r1})
	eq(t, "revision 1", ids(rs), []string{"a", "b"})
	if rs[0].Title != "A" || rs[1].Meta.LastAction != "ADDED" || page.Revision.Number != r1 {
		t.Fatalf("revision 1: %s %s", rs[0].raw, rs[1].raw)
	}
	rs, _ = records(t, l, store.Query{Revision: r2})
	eq(t, "revision 2", ids(rs), []string{"b", "a", "c"})

	// A pinned revision is the current one.
	pin(t, l, r1)
	rs, page = records(t, l, store.Query{})
	eq(t, "pinned", ids(rs), []string{"a", "b"})
	if page.Revision.Number != r1 {
		t.Fatalf("pinned page: %+v", page)
	}
	pin(t, l, 0)

	// Action masks.
	rs, _ = records(t, l, store.Query{Actions: store.MaskDeleted})
	eq(t, "deleted", ids(rs), []string{"b"})
	rs, _ = records(t, l, store.Query{Actions: store.MaskAdded | store.MaskUpdated})
	eq(t, "added or updated", ids(rs), []string{"a", "c"})
	rs, _ = records(t, l, store.Query{Actions: store.MaskAdded})
	eq(t, "added", ids(rs), []string{"c"})

	// Revisions never published, and gone.
	if _, _, err := recordsErr(l, store.Query{Revision: 4}); !errors.Is(err, store.ErrNoRevision) {
		t.Fatalf("revision 4: %v", err)
	}
	if _, _, err := recordsErr(l, store.Query{Revision: -1}); !errors.Is(err, store.ErrNoRevision) {
		t.Fatalf("revision -1: %v", err)
	}
	prune(t, l, r1)
	if _, _, err := recordsErr(l, store.Query{Revision: r1}); !errors.Is(err, store.ErrRevisionGone) {
		t.Fatalf("pruned revision 1: %v", err)
	}
	// Revision 2 still reads whole, first_seen_at of the pruned revision included.
	rs, _ = records(t, l, store.Query{Revision: r2})
	eq(t, "revision 2 after pruning 1", ids(rs), []string{"b", "a", "c"})
	if rs[1].Meta.FirstSeenAt != "2026-03-01T12:00:00.123456Z" {
		t.Fatalf("first_seen_at after pruning: %s", rs[1].raw)
	}
}

func TestRecordsPaging(t *testing.T) {
	l := testLayer(t)
	// 3 revisions of 1,100 records (more than a read chunk each).
	var want []string
	for r := 0; r < 3; r++ {
		var cs []chg
		for i := 0; i < 1100; i++ {
			id := fmt.Sprintf("r%d-%04d", r, i)
			cs = append(cs, save("shop", "items", id, item(id, "x")))
			want = append(want, id)
		}
		publish(t, l, t0.Add(time.Duration(r)*time.Second), cs...)
	}
	for _, limit := range []int{1, 7, 999, 1000, 1001, 2500, 3300, 5000} {
		var got []string
		var last string
		q := store.Query{Limit: limit}
		pages := 0
		for {
			rs, page := records(t, l, q)
			pages++
			if len(rs) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(rs))
			}
			for _, r := range rs {
				if r.Meta.Cursor <= last {
					t.Fatalf("limit %d: cursor %s after %s", limit, r.Meta.Cursor, last)
				}
				last = r.Meta.Cursor
				got = append(got, r.ID)
			}
			if page.Next == "" {
				break
			}
			if len(rs) != limit {
				t.Fatalf("limit %d: a short page (%d) with a next token", limit, len(rs))
			}
			c, rev, err := store.ParsePosition(page.Next)
			if err != nil || rev != 3 || c.String() != last {
				t.Fatalf("limit %d: token %q: %v %d %s", limit, page.Next, err, rev, c)
			}
			q.After, q.Revision = &c, rev
			if pages > 3300+1 {
				t.Fatal("endless walk")
			}
		}
		eq(t, fmt.Sprintf("limit %d", limit), got, want)
		if limit == 3300 && pages != 1 {
			t.Fatalf("limit 3300 (all): %d pages, want 1 without a next token", pages)
		}
	}
	// The default limit is 100.
	if rs, page := records(t, l, store.Query{}); len(rs) != 100 || page.Next == "" {
		t.Fatalf("default limit: %d, %q", len(rs), page.Next)
	}
	// A cursor from the middle of a revision, without a revision: the
	// current one.
	rs, _ := records(t, l, store.Query{Limit: 5})
	c, err := store.ParseCursor(rs[2].Meta.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ = records(t, l, store.Query{After: &c, Limit: 2})
	eq(t, "after a cursor", ids(rs), want[3:5])
	// A cursor beyond everything.
	far := store.MakeCursor(1<<63+5, 1<<31+7)
	if rs, page := records(t, l, store.Query{After: &far}); len(rs) != 0 || page.Next != "" {
		t.Fatalf("after the end: %d %q", len(rs), page.Next)
	}
}

func TestWalkStaysOnItsRevisionAndLeasesIt(t *testing.T) {
	l := testLayer(t)
	publish(t, l, t0, save("shop", "items", "a", item("a", "1")), save("shop", "items", "b", item("b", "1")), save("shop", "items", "c", item("c", "1")))
	rs, page := records(t, l, store.Query{Limit: 1})
	eq(t, "first page", ids(rs), []string{"a"})
	var expires time.Time
	if err := l.s.pool.QueryRow(context.Background(), `SELECT expires_at FROM synclayer_leases WHERE layer_id = $1 AND rev = 1`, l.id).Scan(&expires); err != nil {
		t.Fatalf("no lease of the revision being paged: %v", err)
	}
	if d := time.Until(expires); d < store.LeaseTTL-time.Minute || d > store.LeaseTTL+time.Minute {
		t.Fatalf("lease expires in %s, want about %s", d, store.LeaseTTL)
	}
	// A newer revision changes b and adds d: the walk goes on in revision 1.
	publish(t, l, t0.Add(time.Second), save("shop", "items", "b", item("b", "2")), save("shop", "items", "d", item("d", "2")))
	c, rev, _ := store.ParsePosition(page.Next)
	rs, page = records(t, l, store.Query{After: &c, Revision: rev})
	eq(t, "rest of revision 1", ids(rs), []string{"b", "c"})
	if rs[0].Title != "1" || page.Revision.Number != 1 || page.Next != "" {
		t.Fatalf("rest of revision 1: %s %+v", rs[0].raw, page)
	}
	// A walk of a revision no longer kept fails.
	prune(t, l, 1)
	if _, _, err := recordsErr(l, store.Query{After: &c, Revision: rev}); !errors.Is(err, store.ErrRevisionGone) {
		t.Fatalf("walk of a pruned revision: %v", err)
	}
}

func TestModifiedAfterIsExact(t *testing.T) {
	l := testLayer(t)
	at := []time.Time{t0, t0.Add(time.Microsecond), t0.Add(time.Second)}
	publish(t, l, at[0], save("shop", "items", "a", item("a", "1")), save("shop", "items", "b", item("b", "1")))
	publish(t, l, at[1], save("shop", "items", "b", item("b", "2")), save("shop", "items", "c", item("c", "2")))
	publish(t, l, at[2], save("shop", "items", "d", item("d", "3")), del("shop", "items", "a"))
	cases := []struct {
		after time.Time
		want  []string
	}{
		{t0.Add(-time.Hour), []string{"b", "c", "d", "a"}},
		{at[0], []string{"b", "c", "d", "a"}},                           // inclusive
		{at[0].Add(time.Nanosecond), []string{"b", "c", "d", "a"}},      // rounds up to revision 2's microsecond
		{at[1], []string{"b", "c", "d", "a"}},                           // revision 2 itself
		{at[1].Add(time.Nanosecond), []string{"d", "a"}},                // after revision 2
		{at[2].Add(-time.Nanosecond), []string{"d", "a"}},               // just before revision 3
		{at[2], []string{"d", "a"}},                                     // revision 3 itself
		{at[2].Add(time.Nanosecond), nil},                               // after everything
		{at[2].In(time.FixedZone("x", 3600)), []string{"d", "a"}},       // any zone
		{at[1].Add(time.Nanosecond).In(time.Local), []string{"d", "a"}}, // local time
	}
	for i, tc := range cases {
		rs, page := records(t, l, store.Query{ModifiedAfter: tc.after})
		if len(tc.want) == 0 && len(rs) == 0 {
			if page.Next != "" {
				t.Fatalf("case %d: next %q", i, page.Next)
			}
			continue
		}
		eq(t, fmt.Sprintf("case %d (%s)", i, tc.after), ids(rs), tc.want)
		// The same with ids.
		rs, _ = records(t, l, store.Query{ModifiedAfter: tc.after, Model: "items", Source: "shop", IDs: []string{"a", "b", "c", "d"}})
		eq(t, fmt.Sprintf("case %d by id", i), ids(rs), tc.want)
	}
	// Combined with a cursor that starts later.
	rs, _ := records(t, l, store.Query{ModifiedAfter: at[0]})
	c, _ := store.ParseCursor(rs[2].Meta.Cursor)
	rs, _ = records(t, l, store.Query{ModifiedAfter: at[0], After: &c})
	eq(t, "modified after and a later cursor", ids(rs), []string{"a"})
}

func TestRecordsByIDAndConnections(t *testing.T) {
	l := testLayer(t)
	crmA, crmB := store.SourceKey("crm", "acme"), store.SourceKey("crm", "beta")
	publish(t, l, t0,
		save("shop", "items", "1", item("1", "shop")),
		save(crmA, "contacts", "1", item("1", "acme")),
		save(crmB, "contacts", "1", item("1", "beta")),
		save("crm", "contacts", "1", item("1", "crm")),
		save(crmA, "deals", "9", item("9", "acme deal")),
	)
	publish(t, l, t0.Add(time.Second), save(crmB, "contacts", "2", item("2", "beta")), del(crmA, "contacts", "1"))

	titles := func(rs []rendered) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = r.Title + "/" + r.ID
		}
		return out
	}
	rs, _ := records(t, l, store.Query{Source: "crm"})
	eq(t, "source with its connections", titles(rs), []string{"beta/1", "crm/1", "acme deal/9", "beta/2", "acme/1"})
	rs, _ = records(t, l, store.Query{Source: "crm", Connection: "beta"})
	eq(t, "one connection", titles(rs), []string{"beta/1", "beta/2"})
	if rs[0].Meta.Connection == nil || *rs[0].Meta.Connection != "beta" || rs[0].Meta.Source != "crm" {
		t.Fatalf("connection metadata: %s", rs[0].raw)
	}
	rs, _ = records(t, l, store.Query{Connection: "acme"})
	eq(t, "a connection of any source", titles(rs), []string{"acme deal/9", "acme/1"})
	rs, _ = records(t, l, store.Query{Model: "contacts", Connection: "acme"})
	eq(t, "a connection's model", titles(rs), []string{"acme/1"})
	rs, _ = records(t, l, store.Query{Source: "shop"})
	eq(t, "source without connections", titles(rs), []string{"shop/1"})
	rs, _ = records(t, l, store.Query{Source: "cr"})
	eq(t, "a source's prefix is not the source", titles(rs), nil)

	// By id: Source, or Sources, with or without a connection.
	rs, _ = records(t, l, store.Query{Model: "contacts", Source: "crm", IDs: []string{"1", "2", "3", "1"}})
	eq(t, "ids of the source itself", titles(rs), []string{"crm/1"})
	rs, _ = records(t, l, store.Query{Model: "contacts", Source: "crm", Connection: "beta", IDs: []string{"2", "1"}})
	eq(t, "ids of a connection, in cursor order", titles(rs), []string{"beta/1", "beta/2"})
	rs, _ = records(t, l, store.Query{Model: "contacts", Sources: []string{"shop", "crm"}, Connection: "acme", IDs: []string{"1"}})
	eq(t, "ids over sources", titles(rs), []string{"acme/1"})
	rs, _ = records(t, l, store.Query{Model: "contacts", Sources: []string{"crm"}, Connection: "acme", IDs: []string{"1"}, Actions: store.MaskAdded})
	eq(t, "ids with an action mask", titles(rs), nil)
	rs, _ = records(t, l, store.Query{Model: "contacts", IDs: []string{"1"}})
	eq(t, "ids without a source", titles(rs), nil)
	rs, _ = records(t, l, store.Query{Source: "crm", IDs: []string{"1"}})
	eq(t, "ids without a model", titles(rs), nil)
	// Ids honour the limit and page on.
	rs, page := records(t, l, store.Query{Model: "contacts", Source: "crm", Connection: "beta", IDs: []string{"1", "2"}, Limit: 1})
	eq(t, "ids, first page", titles(rs), []string{"beta/1"})
	c, rev, err := store.ParsePosition(page.Next)
	if err != nil || rev != 2 {
		t.Fatalf("ids token %q: %v %d", page.Next, err, rev)
	}
	rs, page = records(t, l, store.Query{Model: "contacts", Source: "crm", Connection: "beta", IDs: []string{"1", "2"}, Limit: 1, After: &c, Revision: rev})
	eq(t, "ids, second page", titles(rs), []string{"beta/2"})
	if page.Next != "" {
		t.Fatalf("ids, last page has a next token %q", page.Next)
	}
}

// Payload edges the renderer must handle as the embedded driver does.
func TestRenderPayloadEdges(t *testing.T) {
	l := testLayer(t)
	key := store.SourceKey("s\"rc", "c\u00e9")
	publish(t, l, t0,
		save("shop", "m", "1", `{}`),
		save("shop", "m", "2", " \n{ \"a\" : 1 }\t"),
		save(key, "m\\odel", "3", `{"x":[1,{"y":null}]}`),
		save("shop", "m", "4", `{ }`),
	)
	var got []string
	_, err := l.Records(store.Query{}, func(b []byte) error { got = append(got, string(b)); return nil })
	if err != nil {
		t.Fatal(err)
	}
	c := func(seq uint32) string { return store.MakeCursor(1, seq).String() }
	hist := func(seq uint32) string {
		return `"first_seen_at":"2026-03-01T12:00:00.123456Z","last_modified_at":"2026-03-01T12:00:00.123456Z","last_action":"ADDED","deleted_at":null,"cursor":"` + c(seq) + `"`
	}
	want := []string{
		`{"_metadata":{"source":"shop","model":"m",` + hist(0) + `,"revision":1}}`,
		`{ "a" : 1 ,"_metadata":{"source":"shop","model":"m",` + hist(1) + `,"revision":1}}`,
		`{"x":[1,{"y":null}],"_metadata":{"source":"s\"rc","connection":"cé","model":"m\\odel",` + hist(2) + `,"revision":1}}`,
		`{ "_metadata":{"source":"shop","model":"m",` + hist(3) + `,"revision":1}}`,
	}
	eq(t, "rendered", got, want)
	got = got[:0]
	_, err = l.Records(store.Query{Metadata: store.MetadataNango, Limit: 1}, func(b []byte) error { got = append(got, string(b)); return nil })
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "nango", got, []string{`{"_nango_metadata":{` + hist(0) + `,"pruned_at":null}}`})
	// Not an object: an error, not a broken answer.
	if _, err := l.s.pool.Exec(context.Background(), `UPDATE synclayer_records SET payload = '[1]' WHERE id = '1'`); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Records(store.Query{}, func([]byte) error { return nil }); err == nil {
		t.Fatal("rendered a payload that is not an object")
	}
}

var cursorField = regexp.MustCompile(`"cursor":"[-0-9A-Za-z_]{16}"`)

// The walk's statements come back in the formats decodeVersion reads, so
// that it, not Scan, decodes them.
func TestVersionsDecodeWithoutScan(t *testing.T) {
	l := testLayer(t)
	publish(t, l, t0, save("shop", "items", "a", item("a", "1")))
	rows, err := l.s.pool.Query(context.Background(), selectVersions, l.id, int64(1))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatal(rows.Err())
	}
	if !binaryVersionCols(rows.FieldDescriptions()) {
		t.Fatalf("columns %+v", rows.FieldDescriptions())
	}
	var v, w version
	if err := decodeVersion(rows.RawValues(), &v); err != nil {
		t.Fatal(err)
	}
	if err := scanVersion(rows, &w); err != nil {
		t.Fatal(err)
	}
	if v.sourceKey != w.sourceKey || v.model != w.model || v.id != w.id || v.fromRev != w.fromRev || v.seq != w.seq ||
		v.action != w.action || v.firstSeen != w.firstSeen || !bytes.Equal(v.payload, w.payload) || v.id != "a" {
		t.Fatalf("decoded %+v, scanned %+v", v, w)
	}
}

// A revision committed by a host whose clock is behind may be older than
// the one before it: modifiedAfter still keeps exactly the records whose
// last_modified_at is at or after it.
func TestModifiedAfterWithSkewedClocks(t *testing.T) {
	l := testLayer(t)
	publish(t, l, t0, save("shop", "items", "a", item("a", "1")))
	publish(t, l, t0.Add(30*time.Second), save("shop", "items", "b", item("b", "2")))
	publish(t, l, t0.Add(20*time.Second), save("shop", "items", "c", item("c", "3")))
	for _, tc := range []struct {
		after time.Duration
		want  []string
	}{{10 * time.Second, []string{"b", "c"}}, {25 * time.Second, []string{"b"}}, {20 * time.Second, []string{"b", "c"}}, {31 * time.Second, nil}} {
		rs, _ := records(t, l, store.Query{ModifiedAfter: t0.Add(tc.after)})
		eq(t, fmt.Sprintf("after %s", tc.after), ids(rs), tc.want)
		rs, _ = records(t, l, store.Query{ModifiedAfter: t0.Add(tc.after), Model: "items", Source: "shop", IDs: []string{"a", "b", "c"}})
		eq(t, fmt.Sprintf("ids after %s", tc.after), ids(rs), tc.want)
	}
}

// A layer's caches go when it closes.
func TestCloseReadsForgetsTheCaches(t *testing.T) {
	l := testLayer(t)
	publish(t, l, t0, save("shop", "items", "a", item("a", "1")))
	records(t, l, store.Query{})
	l.DiskSize()
	if _, ok := layerTimes.Load(l); !ok {
		t.Fatal("no revision times cached")
	}
	l.s.Close()
	l.closeReads()
	if _, ok := layerTimes.Load(l); ok {
		t.Fatal("revision times cached after close")
	}
	if _, ok := diskSizes.Load(l.s); ok {
		t.Fatal("disk figures cached after close")
	}
}
