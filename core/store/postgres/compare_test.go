package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
	"github.com/synclayer/synclayer/core/store/badger"
)

// The read side against the embedded driver: the same changes published
// through the Badger driver's API and written here as rows (with the same
// commit times), then every read compared. Records must render byte for
// byte the same, except the cursors (Badger's carry its commit
// timestamps, these the revision numbers); snapshots must return the same
// records, counts and lookups.

// twin is one layer in both drivers.
type twin struct {
	b  store.Layer
	pg *Layer
	// revs are the revisions published, in both (same numbers).
	revs []store.Revision
}

func newTwin(t *testing.T) *twin {
	t.Helper()
	bs, err := badger.Open(badger.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Close() })
	bl, err := bs.Layer("catalog")
	if err != nil {
		t.Fatal(err)
	}
	return &twin{b: bl, pg: testLayer(t)}
}

// publish publishes changes in both drivers as one revision.
func (tw *twin) publish(t *testing.T, changes ...chg) {
	t.Helper()
	var batches []store.Batch
	for _, c := range changes {
		var data []byte
		if !c.del {
			data = []byte(c.data)
		}
		batches = append(batches, store.Batch{Source: c.sourceKey, Changes: []store.Change{{Model: c.model, ID: c.id, Data: data, Delete: c.del}}})
	}
	rev, err := tw.b.PublishChanges(store.PublishInfo{Trigger: "test"}, batches)
	if err != nil {
		t.Fatal(err)
	}
	n := publish(t, tw.pg, rev.CreatedAt, changes...)
	if n != rev.Number {
		t.Fatalf("badger published revision %d, the rows %d", rev.Number, n)
	}
	tw.revs = append(tw.revs, rev)
}

// scenario publishes revisions of random changes over sources with and
// without connections, models and ids, with field values of every kind.
func (tw *twin) scenario(t *testing.T, seed int64, revisions int) {
	rnd := rand.New(rand.NewSource(seed))
	keys := []string{"shop", "crm", store.SourceKey("crm", "acme"), store.SourceKey("crm", "beta"), store.SourceKey("crm", "b"), "crm-2"}
	models := []string{"items", "contacts"}
	tags := []any{"red", "blue", "x'y", `q"uote`, 1, 2.5, -0.0, true, false, nil, []any{"red", 1}, []any{"blue", []any{"red"}}, map[string]any{"red": 1}}
	for r := 0; r < revisions; r++ {
		seen := map[string]bool{}
		var cs []chg
		for i := 0; i < 40; i++ {
			k, m, id := keys[rnd.Intn(len(keys))], models[rnd.Intn(len(models))], fmt.Sprintf("id-%02d", rnd.Intn(25))
			if rnd.Intn(3) == 0 {
				id = fmt.Sprintf("%c", 'a'+rnd.Intn(3)) // short ids sort before and between
			}
			if seen[k+"/"+m+"/"+id] {
				continue
			}
			seen[k+"/"+m+"/"+id] = true
			if rnd.Intn(5) == 0 {
				cs = append(cs, del(k, m, id))
				continue
			}
			obj := map[string]any{"id": id, "title": fmt.Sprintf("t%d", rnd.Intn(4)), "tag": tags[rnd.Intn(len(tags))], "n": rnd.Intn(3)}
			if rnd.Intn(4) == 0 {
				delete(obj, "tag")
			}
			b, _ := json.Marshal(obj)
			cs = append(cs, save(k, m, id, string(b)))
		}
		tw.publish(t, cs...)
		if r == 2 {
			defs := []store.FieldIndex{{Source: "crm", Model: "contacts", Field: "tag"}, {Source: "shop", Model: "items", Field: "tag"}, {Source: "crm", Model: "contacts", Field: "n"}}
			if err := tw.b.SetFieldIndexes(defs); err != nil {
				t.Fatal(err)
			}
			if err := tw.pg.SetFieldIndexes(defs); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// readAll reads every page of q from l: the records rendered, with their
// cursors taken out, and the cursors.
func readAll(t *testing.T, l interface {
	Records(store.Query, func([]byte) error) (store.Page, error)
}, q store.Query) (recs []string, cursors []string) {
	t.Helper()
	for pages := 0; ; pages++ {
		page, err := l.Records(q, func(b []byte) error {
			c := cursorField.Find(b)
			if c == nil {
				return fmt.Errorf("no cursor in %s", b)
			}
			cursors = append(cursors, string(c[10:26]))
			recs = append(recs, string(cursorField.ReplaceAll(b, []byte(`"cursor":"`))))
			return nil
		})
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		if page.Next == "" {
			return recs, cursors
		}
		c, rev, err := store.ParsePosition(page.Next)
		if err != nil || (q.Revision != 0 && rev != q.Revision) {
			t.Fatalf("token %q: %v (revision %d)", page.Next, err, rev)
		}
		q.After, q.Revision = &c, rev
		if pages > 10000 {
			t.Fatal("endless walk")
		}
	}
}

func TestRecordsRenderAsBadgerDoes(t *testing.T) {
	tw := newTwin(t)
	tw.scenario(t, 1, 8)
	queries := []store.Query{
		{},
		{Limit: 7},
		{Source: "crm"},
		{Source: "crm", Connection: "acme", Limit: 3},
		{Connection: "b"},
		{Model: "contacts", Actions: store.MaskDeleted},
		{Actions: store.MaskAdded | store.MaskUpdated, Limit: 11},
		{Model: "contacts", Source: "crm", IDs: []string{"a", "b", "id-01", "id-02", "id-03", "zz"}},
		{Model: "items", Sources: []string{"shop", "crm"}, Connection: "acme", IDs: []string{"a", "c", "id-04", "id-07"}, Limit: 2},
		{ModifiedAfter: tw.revs[3].CreatedAt},
		{ModifiedAfter: tw.revs[5].CreatedAt.Add(time.Nanosecond), Limit: 5},
	}
	for _, rev := range tw.revs {
		for qi, q := range queries {
			for _, format := range []store.MetadataFormat{store.MetadataSynclayer, store.MetadataNango} {
				q := q
				q.Revision, q.Metadata = rev.Number, format
				want, bc := readAll(t, tw.b, q)
				got, pc := readAll(t, tw.pg, q)
				if len(got) != len(want) {
					t.Fatalf("revision %d, query %d (%+v), format %d: %d records, badger %d", rev.Number, qi, q, format, len(got), len(want))
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("revision %d, query %d, format %d, record %d:\n got %s\nwant %s", rev.Number, qi, format, i, got[i], want[i])
					}
				}
				// The cursors order the records as Badger's do, and the
				// revisions they name are those of the records.
				for i := range pc {
					bcur, _ := store.ParseCursor(bc[i])
					pcur, _ := store.ParseCursor(pc[i])
					if i > 0 && pc[i-1] >= pc[i] {
						t.Fatalf("cursors not increasing: %s, %s", pc[i-1], pc[i])
					}
					if pn, bn := int64(pcur.Timestamp()), tw.revisionOfTS(bcur.Timestamp()); pn != bn {
						t.Fatalf("record %d: cursor of revision %d, badger's of %d", i, pn, bn)
					}
				}
			}
		}
	}
	// The current revision, and the pinned one, as Badger reads them.
	want, _ := readAll(t, tw.b, store.Query{})
	got, _ := readAll(t, tw.pg, store.Query{})
	if !reflect.DeepEqual(got, want) {
		t.Fatal("current revision differs")
	}
	if err := tw.b.Pin(3); err != nil {
		t.Fatal(err)
	}
	pin(t, tw.pg, 3)
	want, _ = readAll(t, tw.b, store.Query{Metadata: store.MetadataNango})
	got, _ = readAll(t, tw.pg, store.Query{Metadata: store.MetadataNango})
	if !reflect.DeepEqual(got, want) {
		t.Fatal("pinned revision differs")
	}
}

// revisionOfTS is the revision whose Badger commit includes timestamp ts.
func (tw *twin) revisionOfTS(ts uint64) int64 {
	for _, r := range tw.revs {
		if ts <= r.TS {
			return r.Number
		}
	}
	return -1
}

// stored is a StoredRecord without its cursor (which differs by driver).
type stored struct {
	Source, Model, ID, Connection string
	Payload                       string
	Action                        store.Action
	FirstSeenAt, LastModifiedAt   time.Time
	Revision                      int64
}

func strip(r *store.StoredRecord) stored {
	return stored{r.Source, r.Model, r.ID, r.Connection, string(r.Payload), r.Action, r.FirstSeenAt, r.LastModifiedAt, r.Revision}
}

func TestSnapshotsReadAsBadgerDoes(t *testing.T) {
	tw := newTwin(t)
	tw.scenario(t, 2, 8)
	keys := []string{"shop", "crm", store.SourceKey("crm", "acme"), store.SourceKey("crm", "beta"), store.SourceKey("crm", "b"), "crm-2", "nope"}
	values := [][]any{{"red"}, {"blue", "x'y"}, {json.Number("1.0"), 2.5}, {int64(0), true}, {false, `q"uote`}, {nil, map[string]any{}}, {"red", "blue", 1, true}}
	// The comparisons must have compared something.
	var found, more, nIndexed, scanned, connScanned int
	defer func() {
		if !t.Failed() && (found == 0 || more == 0 || nIndexed == 0 || scanned == 0 || connScanned == 0) {
			t.Errorf("vacuous: %d lookups found, %d with more, %d indexed, %d scanned, %d over connections", found, more, nIndexed, scanned, connScanned)
		}
		t.Logf("%d lookups found, %d with more, %d indexed, %d scanned, %d over connections", found, more, nIndexed, scanned, connScanned)
	}()
	var prevB, prevP store.Snapshot
	var prevCounts []store.ModelCount
	defer func() {
		// Badger's Close waits for its open snapshots.
		if prevB != nil {
			prevB.Close()
			prevP.Close()
		}
	}()
	for _, rev := range tw.revs {
		bs, ok, err := tw.b.OpenSnapshot(rev.Number)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		ps, ok, err := tw.pg.OpenSnapshot(rev.Number)
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		if p, b := ps.Revision(), bs.Revision(); p.Number != b.Number || !p.CreatedAt.Equal(b.CreatedAt) || p.Pinned != b.Pinned {
			t.Fatalf("revision %+v, badger %+v", p, b)
		}
		what := func(s string) string { return fmt.Sprintf("revision %d: %s", rev.Number, s) }
		// Get, of every key.
		for _, k := range keys {
			for _, m := range []string{"items", "contacts"} {
				for i := -1; i < 26; i += 2 {
					id := fmt.Sprintf("id-%02d", i)
					if i < 3 {
						id = string(rune('a' + i + 1))
					}
					br, bok, berr := bs.Get(k, m, id)
					pr, pok, perr := ps.Get(k, m, id)
					if berr != nil || perr != nil || bok != pok || strip(&br) != strip(&pr) {
						t.Fatalf("%s: Get(%q, %s, %s) = %+v %v %v, badger %+v %v %v", what("get"), k, m, id, strip(&pr), pok, perr, strip(&br), bok, berr)
					}
				}
			}
		}
		collect := func(walk func(fn func(r *store.StoredRecord) (bool, error)) error, stopAt int) []stored {
			var out []stored
			err := walk(func(r *store.StoredRecord) (bool, error) {
				out = append(out, strip(r))
				return len(out) != stopAt, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		for _, k := range keys {
			for _, m := range []string{"items", "contacts"} {
				for _, after := range []string{"", "b", "id-07", "id-99"} {
					for _, stop := range []int{-1, 2} {
						want := collect(func(fn func(*store.StoredRecord) (bool, error)) error { return bs.Scan(k, m, after, fn) }, stop)
						got := collect(func(fn func(*store.StoredRecord) (bool, error)) error { return ps.Scan(k, m, after, fn) }, stop)
						scanned += len(got)
						if !reflect.DeepEqual(got, want) {
							t.Fatalf("%s: Scan(%q, %s, %q) stop %d:\n got %v\nwant %v", what("scan"), k, m, after, stop, got, want)
						}
					}
				}
			}
		}
		for _, src := range []string{"shop", "crm", "crm-2", "cr"} {
			for _, m := range []string{"items", "contacts"} {
				for _, from := range [][2]string{{"", ""}, {"", "b"}, {"", "id-10"}, {"acme", ""}, {"acme", "id-05"}, {"b", "zz"}, {"beta", "a"}, {"zzz", ""}} {
					for _, stop := range []int{-1, 2} {
						want := collect(func(fn func(*store.StoredRecord) (bool, error)) error {
							return bs.ScanConnections(src, m, from[0], from[1], fn)
						}, stop)
						got := collect(func(fn func(*store.StoredRecord) (bool, error)) error {
							return ps.ScanConnections(src, m, from[0], from[1], fn)
						}, stop)
						connScanned += len(got)
						if !reflect.DeepEqual(got, want) {
							t.Fatalf("%s: ScanConnections(%s, %s, %q, %q):\n got %v\nwant %v", what("scan connections"), src, m, from[0], from[1], got, want)
						}
					}
				}
			}
		}
		for since := int64(-1); since <= int64(len(tw.revs)); since++ {
			var want, got []stored
			if err := bs.Changes(since, func(r *store.StoredRecord) error { want = append(want, strip(r)); return nil }); err != nil {
				t.Fatal(err)
			}
			if err := ps.Changes(since, func(r *store.StoredRecord) error { got = append(got, strip(r)); return nil }); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: Changes(%d):\n got %v\nwant %v", what("changes"), since, got, want)
			}
		}
		if err := ps.Changes(int64(len(tw.revs))+1, func(*store.StoredRecord) error { return nil }); !errors.Is(err, store.ErrNoRevision) {
			t.Fatalf("Changes after the newest revision: %v", err)
		}
		// Counts: of the revision, of each source key, and from the
		// previous revision's.
		bc, err := bs.CountRecords()
		if err != nil {
			t.Fatal(err)
		}
		pc, err := ps.CountRecords()
		if err != nil || !reflect.DeepEqual(pc, bc) {
			t.Fatalf("%s: CountRecords = %+v, %v; badger %+v", what("counts"), pc, err, bc)
		}
		for _, k := range keys {
			bk, err := bs.CountSource(k)
			if err != nil {
				t.Fatal(err)
			}
			pk, err := ps.CountSource(k)
			if err != nil || !reflect.DeepEqual(pk, bk) {
				t.Fatalf("%s: CountSource(%q) = %+v, %v; badger %+v", what("counts"), k, pk, err, bk)
			}
		}
		if prevP != nil {
			bd, err := bs.CountChanges(prevB, prevCounts)
			if err != nil {
				t.Fatal(err)
			}
			pd, err := ps.CountChanges(prevP, prevCounts)
			if err != nil || !reflect.DeepEqual(pd, bd) || !reflect.DeepEqual(pd, bc) {
				t.Fatalf("%s: CountChanges = %+v, %v; badger %+v, counted %+v", what("counts"), pd, err, bd, bc)
			}
			if _, err := prevP.CountChanges(ps, pc); err == nil {
				t.Fatal("counted an older revision from a newer one")
			}
			if _, err := ps.CountChanges(bs, pc); err == nil {
				t.Fatal("counted from another driver's snapshot")
			}
			prevB.Close()
			prevP.Close()
		}
		prevB, prevP, prevCounts = bs, ps, bc
		// Field indexes and lookups.
		type indexed interface {
			Indexed(source, model, field string) bool
		}
		for _, k := range keys {
			for _, m := range []string{"items", "contacts"} {
				for _, f := range []string{"tag", "n", "title"} {
					bi, pi := bs.(indexed).Indexed(k, m, f), ps.(indexed).Indexed(k, m, f)
					if pi {
						nIndexed++
					}
					if bi != pi {
						t.Fatalf("%s: Indexed(%q, %s, %s) = %v, badger %v", what("indexed"), k, m, f, pi, bi)
					}
					for _, vs := range values {
						for _, limit := range []int{0, 2} {
							bids, bmore, berr := bs.Lookup(k, m, f, vs, limit)
							pids, pmore, perr := ps.Lookup(k, m, f, vs, limit)
							if len(pids) > 0 {
								found++
							}
							if pmore {
								more++
							}
							if !errors.Is(perr, berr) || !reflect.DeepEqual(pids, bids) || pmore != bmore {
								t.Fatalf("%s: Lookup(%q, %s, %s, %v, %d) = %v %v %v; badger %v %v %v", what("lookup"), k, m, f, vs, limit, pids, pmore, perr, bids, bmore, berr)
							}
							src, conn := store.SplitSourceKey(k)
							if conn != "" {
								continue
							}
							bkeys, bmore, berr := bs.LookupConnections(src, m, f, vs, limit)
							pkeys, pmore, perr := ps.LookupConnections(src, m, f, vs, limit)
							if !errors.Is(perr, berr) || !reflect.DeepEqual(pkeys, bkeys) || pmore != bmore {
								t.Fatalf("%s: LookupConnections(%q, %s, %s, %v, %d) = %v %v %v; badger %v %v %v", what("lookup"), src, m, f, vs, limit, pkeys, pmore, perr, bkeys, bmore, berr)
							}
						}
					}
				}
			}
		}
	}
}
