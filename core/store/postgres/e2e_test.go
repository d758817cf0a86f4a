package postgres

import (
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
	"github.com/synclayer/synclayer/core/store/badger"
	"github.com/synclayer/synclayer/core/store/internal/render"
)

// The reads on records written by the driver's own publishes (staged runs
// and direct publishes), against the embedded driver given the same
// changes the same way: records, snapshots and counts must be the same,
// but for the commit times (each driver has its own clock: both sides'
// times are replaced by the number of the revision they belong to) and
// the cursors (Badger's carry its commit timestamps).

// recordsLayer is what the test needs of a layer (the driver's *Layer is
// a store.Layer once the system half is in).
type recordsLayer interface {
	PublishChanges(info store.PublishInfo, batches []store.Batch) (store.Revision, error)
	BeginStaging(run string) (store.Staging, error)
	OpenSnapshot(n int64) (store.Snapshot, bool, error)
	Records(q store.Query, emit func([]byte) error) (store.Page, error)
}

// apiTwin is one layer in both drivers, written through their APIs.
type apiTwin struct {
	b, p         recordsLayer
	pg           *Layer
	bRevs, pRevs []store.Revision
}

func newAPITwin(t *testing.T) *apiTwin {
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
	pl := testLayer(t)
	return &apiTwin{b: bl, p: pl, pg: pl}
}

// stagedOrDirect publishes batches in both drivers: as a run's staging
// when staged, else as a direct publish.
func (tw *apiTwin) publish(t *testing.T, staged bool, batches []store.Batch) {
	t.Helper()
	run := func(l recordsLayer) store.Revision {
		info := store.PublishInfo{Trigger: "test", Sources: []string{"shop"}}
		if !staged {
			rev, err := l.PublishChanges(info, batches)
			if err != nil {
				t.Fatal(err)
			}
			return rev
		}
		st, err := l.BeginStaging(fmt.Sprintf("run-%d", time.Now().UnixNano()))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range batches {
			w := st.Writer(b.Source, b.Options)
			if err := w.Apply(b.Changes); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		info.Run = st.Run()
		rev, err := st.Publish(info)
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	br, pr := run(tw.b), run(tw.p)
	if br.Number != pr.Number {
		t.Fatalf("published revision %d, badger's %d", pr.Number, br.Number)
	}
	if !reflect.DeepEqual(br.Counts, pr.Counts) {
		t.Fatalf("revision %d counts %+v, badger's %+v", pr.Number, pr.Counts, br.Counts)
	}
	tw.bRevs, tw.pRevs = append(tw.bRevs, br), append(tw.pRevs, pr)
}

// normaliser replaces a driver's commit times by their revisions' numbers.
func normaliser(revs []store.Revision) (func(string) string, func(time.Time) string) {
	var pairs []string
	byTime := map[time.Time]string{}
	for _, r := range revs {
		at := r.CreatedAt.UTC().Truncate(time.Microsecond)
		pairs = append(pairs, at.Format(render.TimeFormat), fmt.Sprintf("R%d", r.Number))
		byTime[at] = fmt.Sprintf("R%d", r.Number)
	}
	rep := strings.NewReplacer(pairs...)
	return rep.Replace, func(t time.Time) string {
		if r, ok := byTime[t.UTC()]; ok {
			return r
		}
		return t.String()
	}
}

func TestReadsOfPublishedRecordsAsBadger(t *testing.T) {
	tw := newAPITwin(t)
	rnd := rand.New(rand.NewSource(3))
	keys := []string{"shop", store.SourceKey("shop", "acme"), store.SourceKey("shop", "beta")}
	for r := 0; r < 7; r++ {
		var batches []store.Batch
		for _, k := range keys {
			var cs []store.Change
			seen := map[string]bool{}
			for i := 0; i < 30; i++ {
				m, id := []string{"items", "orders"}[rnd.Intn(2)], fmt.Sprintf("id-%02d", rnd.Intn(20))
				// One change per record per change set: the write side
				// differs from Badger's on repeats (reported by this
				// test's author to the write side's), and this test is
				// about the reads.
				if seen[m+id] {
					continue
				}
				seen[m+id] = true
				if rnd.Intn(6) == 0 {
					cs = append(cs, store.Change{Model: m, ID: id, Delete: true})
					continue
				}
				// Insignificant white space, stored compact by both.
				data := fmt.Sprintf(`{ "id" : %q, "v" : %d ,"tags":[ %q ] }`, id, rnd.Intn(3), []string{"red", "blue"}[rnd.Intn(2)])
				cs = append(cs, store.Change{Model: m, ID: id, Data: []byte(data)})
			}
			batches = append(batches, store.Batch{Source: k, Changes: cs})
		}
		tw.publish(t, r%2 == 0, batches)
	}
	normB, timeB := normaliser(tw.bRevs)
	normP, timeP := normaliser(tw.pRevs)
	queries := []store.Query{{}, {Limit: 13}, {Source: "shop", Connection: "acme"}, {Model: "orders", Actions: store.MaskDeleted | store.MaskAdded},
		{Model: "items", Source: "shop", IDs: []string{"id-01", "id-02", "id-03", "id-11"}}, {ModifiedAfter: tw.pRevs[4].CreatedAt}}
	compared := 0
	for i := range tw.pRevs {
		for qi, q := range queries {
			for _, format := range []store.MetadataFormat{store.MetadataSynclayer, store.MetadataNango} {
				q := q
				q.Revision, q.Metadata = tw.pRevs[i].Number, format
				bq := q
				if !q.ModifiedAfter.IsZero() {
					bq.ModifiedAfter = tw.bRevs[4].CreatedAt
				}
				want, _ := readAll(t, tw.b, bq)
				got, _ := readAll(t, tw.pg, q)
				if len(got) != len(want) {
					t.Fatalf("revision %d, query %d: %d records, badger %d", q.Revision, qi, len(got), len(want))
				}
				for j := range got {
					if g, w := normP(got[j]), normB(want[j]); g != w {
						t.Fatalf("revision %d, query %d, format %d, record %d:\n got %s\nwant %s", q.Revision, qi, format, j, g, w)
					}
					compared++
				}
			}
		}
		// Snapshots.
		bs, _, err := tw.b.OpenSnapshot(tw.bRevs[i].Number)
		if err != nil {
			t.Fatal(err)
		}
		ps, _, err := tw.p.OpenSnapshot(tw.pRevs[i].Number)
		if err != nil {
			t.Fatal(err)
		}
		norm := func(r *store.StoredRecord, tm func(time.Time) string) string {
			return fmt.Sprintf("%s|%s|%s|%s|%s|%d|%s|%s|%d", r.Source, r.Connection, r.Model, r.ID, r.Payload, r.Action, tm(r.FirstSeenAt), tm(r.LastModifiedAt), r.Revision)
		}
		var bAll, pAll []string
		if err := bs.Changes(0, func(r *store.StoredRecord) error { bAll = append(bAll, norm(r, timeB)); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := ps.Changes(0, func(r *store.StoredRecord) error { pAll = append(pAll, norm(r, timeP)); return nil }); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(pAll, bAll) {
			t.Fatalf("revision %d: changes\n got %v\nwant %v", i+1, pAll, bAll)
		}
		for _, k := range keys {
			var bScan, pScan []string
			bs.Scan(k, "items", "", func(r *store.StoredRecord) (bool, error) { bScan = append(bScan, norm(r, timeB)); return true, nil })
			ps.Scan(k, "items", "", func(r *store.StoredRecord) (bool, error) { pScan = append(pScan, norm(r, timeP)); return true, nil })
			if !reflect.DeepEqual(pScan, bScan) {
				t.Fatalf("revision %d: scan of %q\n got %v\nwant %v", i+1, k, pScan, bScan)
			}
		}
		bc, _ := bs.CountRecords()
		pc, err := ps.CountRecords()
		if err != nil || !reflect.DeepEqual(pc, bc) {
			t.Fatalf("revision %d: counts %+v %v, badger %+v", i+1, pc, err, bc)
		}
		bs.Close()
		ps.Close()
	}
	if compared < 500 {
		t.Fatalf("only %d records compared", compared)
	}
	t.Logf("%d rendered records compared", compared)
}
