package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/synclayer/synclayer/core/store"
)

func stMany(n int, title string) []store.Change {
	cs := make([]store.Change, n)
	for i := range cs {
		cs[i] = stSave("M", fmt.Sprintf("r%06d", i), title)
	}
	return cs
}

// A direct publish larger than a writer's buffer publishes as one revision.
func TestPublishLargeDirect(t *testing.T) {
	_, l, _ := stLayer(t)
	stRun(t, l, "run_1", stSave("M", "r000000", "before"))
	rev, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook", Run: "run_hook"}, []store.Batch{{Source: "shop", Changes: stMany(flushRows+2000, "big")}})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["shop"]["M"]; c != (store.Counts{Added: flushRows + 1999, Updated: 1}) || rev.Number != 2 || rev.Run != "run_hook" {
		t.Fatalf("revision %d counts %+v", rev.Number, rev.Counts)
	}
	if got := stRead(t, l, 0); len(got) != flushRows+2000 {
		t.Fatalf("%d records", len(got))
	}
	if old := stRead(t, l, 1); len(old) != 1 || old[0].Title != "before" {
		t.Fatalf("revision 1 after the big publish: %+v", old)
	}
	if n := stCount(t, l, "synclayer_staged"); n != 0 {
		t.Fatalf("%d staged rows left by a direct publish", n)
	}
}

// A revision is atomic: a publish that fails before its commit leaves
// nothing of itself (records, checkpoints, revision), and the next run
// sees no leftovers.
func TestPublishFailureLeavesNothing(t *testing.T) {
	_, l, _ := stLayer(t)
	stRun(t, l, "run_1", stSave("M", "r000001", "before"))
	testHookBeforeCommit = func() error { return errors.New("injected") }
	_, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook"}, []store.Batch{{Source: "shop", Changes: stMany(3000, "big")}})
	if err == nil {
		testHookBeforeCommit = nil
		t.Fatal("publish succeeded")
	}
	st, _ := l.beginStaging("run_2")
	w := st.writer("shop", store.WriterOptions{})
	if err := w.Apply(stMany(5, "staged")); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint("s", []byte(`{"n":5}`)); err != nil {
		t.Fatal(err)
	}
	_, err = st.Publish(store.PublishInfo{Trigger: "manual"})
	testHookBeforeCommit = nil
	if err == nil {
		t.Fatal("staging publish succeeded")
	}
	if got := stRead(t, l, 0); len(got) != 1 || got[0].Title != "before" || got[0].FromRev != 1 {
		t.Fatalf("after failed publishes: %+v", got)
	}
	if cp, _ := l.Checkpoint("shop", "s"); cp != nil {
		t.Fatalf("checkpoint of a failed publish: %s", cp)
	}
	if rev, _ := l.Newest(); rev.Number != 1 {
		t.Fatalf("newest %+v", rev)
	}
	// The staging's publish may be tried again, as the engine's retry of
	// a publish does (or aborted).
	rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["shop"]["M"]; c != (store.Counts{Added: 4, Updated: 1}) || rev.Number != 2 {
		t.Fatalf("the publish sees leftovers: %d %+v", rev.Number, c)
	}
}

// stLiveIDs lists a source key's records as model/id, deleted ones marked
// "-".
func stLiveIDs(t *testing.T, l *Layer, source string) string {
	t.Helper()
	var out []string
	for _, r := range stRead(t, l, 0) {
		if r.SourceKey != source {
			continue
		}
		s := r.Model + "/" + r.ID
		if r.Action == store.Deleted {
			s = "-" + s
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func stByIDDelete(id string) store.Change { return store.Change{ID: id, Delete: true} }

func TestPublishDeleteByIDResolvesTheModel(t *testing.T) {
	_, l, _ := stLayer(t)
	stRun(t, l, "run_1", stSave("Post", "p1", "P1"), stSave("Post", "p2", "P2"), stSave("Post", "x", "X"),
		stSave("Author", "a1", "A1"), stSave("Author", "x", "X"))
	// Another source's record with the same id is not this source's.
	st, _ := l.beginStaging("run_other")
	if err := st.writer("blog", store.WriterOptions{}).Apply([]store.Change{stSave("Post", "p1", "theirs")}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Publish(store.PublishInfo{Trigger: "manual", Sources: []string{"blog"}}); err != nil {
		t.Fatal(err)
	}
	// p1 and a1 are in one model each, x in both; zz in none. c1 is saved
	// in a model new in this run and deleted by id in the same run.
	rev := stRun(t, l, "run_2", stByIDDelete("p1"), stByIDDelete("a1"), stByIDDelete("x"), stByIDDelete("zz"),
		stSave("Comment", "c1", "C1"), stByIDDelete("c1"), stSave("Comment", "c2", "C2"))
	if got, want := stLiveIDs(t, l, "shop"), "-Author/a1 -Author/x -Comment/c1 -Post/p1 -Post/x Comment/c2 Post/p2"; got != want {
		t.Fatalf("shop after the deletes by id:\n got %s\nwant %s", got, want)
	}
	if got := stLiveIDs(t, l, "blog"); got != "Post/p1" {
		t.Fatalf("the other source's record was touched: %s", got)
	}
	c := rev.Counts["shop"]
	if c["Post"].Deleted != 2 || c["Author"].Deleted != 2 || c["Comment"].Added != 1 || c["Comment"].Deleted != 0 {
		t.Fatalf("counts %+v", c)
	}
	if _, ok := c[""]; ok {
		t.Fatalf("counts name an empty model: %+v", c)
	}
	// Deleting again by id is harmless: nothing changes, nothing counts.
	rev = stRun(t, l, "run_3", stByIDDelete("p1"), stByIDDelete("x"))
	for m, n := range rev.Counts["shop"] {
		if n != (store.Counts{}) {
			t.Fatalf("a repeated delete by id counted %s %+v", m, n)
		}
	}
	// A direct publish resolves the same way, seeing its own earlier
	// changes.
	_, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook", Sources: []string{"shop"}}, []store.Batch{{Source: "shop",
		Changes: []store.Change{stByIDDelete("p2"), stSave("Tag", "t1", "T"), stByIDDelete("t1"), stByIDDelete("zz")}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stLiveIDs(t, l, "shop"), "-Author/a1 -Author/x -Comment/c1 -Post/p1 -Post/p2 -Post/x -Tag/t1 Comment/c2"; got != want {
		t.Fatalf("shop after the direct publish:\n got %s\nwant %s", got, want)
	}
}

// A record saved earlier in the run and written out is found by a delete
// by id.
func TestPublishDeleteByIDAfterFlush(t *testing.T) {
	_, l, _ := stLayer(t)
	st, _ := l.beginStaging("run_1")
	w := st.writer("shop", store.WriterOptions{})
	var batch []store.Change
	for i := range 50 {
		batch = append(batch, stSave("Big", fmt.Sprintf("b%06d", i), "B"))
	}
	if err := w.Apply(batch); err != nil {
		t.Fatal(err)
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Apply([]store.Change{stByIDDelete("b000003")}); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Publish(store.PublishInfo{Trigger: "manual", Sources: []string{"shop"}})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["shop"]["Big"]; c != (store.Counts{Added: 49}) {
		t.Fatalf("counts %+v", c)
	}
	recs := stByID(stRead(t, l, 0))
	if len(recs) != 50 || recs["b000003"].Action != store.Deleted || recs["b000004"].Action != store.Added {
		t.Fatalf("want b000003 deleted, b000004 live; got %+v", recs)
	}
}

// Deleting a connection soft-deletes its records and drops its
// checkpoints in one revision, with the connection's row (the system
// half's, stubbed here); another connection of the source is untouched.
func TestPublishDeleteConnection(t *testing.T) {
	_, l, _ := stLayer(t)
	acme, globex := store.SourceKey("crm", "acme"), store.SourceKey("crm", "globex")
	for _, k := range []string{acme, globex} {
		st, _ := l.beginStaging("seed-" + k)
		w := st.writer(k, store.WriterOptions{})
		if err := w.Apply([]store.Change{stSave("C", "1", "one"), stSave("D", "2", "two"), stSave("C", "3", "three")}); err != nil {
			t.Fatal(err)
		}
		if err := w.Checkpoint("s", []byte(`{"k":1}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Publish(store.PublishInfo{Trigger: "startup"}); err != nil {
			t.Fatal(err)
		}
	}
	// A deleted record stays as it is.
	st, _ := l.beginStaging("run_del")
	if err := st.writer(acme, store.WriterOptions{}).Apply([]store.Change{stDel("C", "3")}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Publish(store.PublishInfo{Trigger: "manual"}); err != nil {
		t.Fatal(err)
	}
	_, err := l.deleteConnectionWith(store.PublishInfo{Trigger: "manual"}, "crm", "nope", func(context.Context, pgx.Tx) error { return store.ErrNotFound })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown connection: %v", err)
	}
	var deletedRow string
	rev, err := l.deleteConnectionWith(store.PublishInfo{Trigger: "manual", Sources: []string{"crm"}}, "crm", "acme", func(ctx context.Context, tx pgx.Tx) error {
		deletedRow = "acme"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if deletedRow != "acme" || rev.Number != 4 {
		t.Fatalf("revision %+v", rev)
	}
	if c := rev.Counts["crm"]; c["C"] != (store.Counts{Deleted: 1}) || c["D"] != (store.Counts{Deleted: 1}) {
		t.Fatalf("counts %+v", rev.Counts)
	}
	if got := stLiveIDs(t, l, acme); got != "-C/1 -C/3 -D/2" {
		t.Fatalf("acme %s", got)
	}
	if got := stLiveIDs(t, l, globex); got != "C/1 C/3 D/2" {
		t.Fatalf("globex %s", got)
	}
	if cp, _ := l.Checkpoint(acme, "s"); cp != nil {
		t.Fatalf("acme's checkpoint stays: %s", cp)
	}
	if cp, _ := l.Checkpoint(globex, "s"); string(cp) != `{"k":1}` {
		t.Fatalf("globex's checkpoint: %s", cp)
	}
	// DeleteConnection asks the system half to delete the connection's
	// row in the revision's transaction: globex has none (no
	// PutConnection here), so nothing of the revision happens.
	if _, err := l.DeleteConnection(store.PublishInfo{Trigger: "manual"}, "crm", "globex"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete of a connection without its row: %v", err)
	}
	if got := stLiveIDs(t, l, globex); got != "C/1 C/3 D/2" {
		t.Fatalf("globex after a failed delete: %s", got)
	}
	if rev, _ := l.Newest(); rev.Number != 4 {
		t.Fatalf("newest %+v", rev)
	}
}

// Two hosts (two stores on one database) publishing at once: revision
// numbers are 1..N with nothing lost or repeated, commit times and
// cursors grow strictly in revision order, and every record is there.
func TestPublishTwoHostsConcurrently(t *testing.T) {
	_, l1, dsn := stLayer(t)
	s2, err := Open(context.Background(), Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	l2, err := s2.layer("catalog")
	if err != nil {
		t.Fatal(err)
	}
	// Every version stays: the test follows them all.
	l1.SetRetention(1000, 0)
	l2.SetRetention(1000, 0)
	const perWorker = 8
	type result struct {
		rev store.Revision
		ids []string
	}
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for host, l := range []*Layer{l1, l2} {
		for worker := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWorker {
					var ids []string
					var cs []store.Change
					for j := range 20 {
						id := fmt.Sprintf("h%d-w%d-%d-%d", host, worker, i, j)
						ids = append(ids, id)
						cs = append(cs, stSave("M", id, id))
					}
					// Half the shared record's changes too: each publish
					// replaces its live version.
					cs = append(cs, stSave("M", "shared", fmt.Sprintf("h%d-w%d-%d", host, worker, i)))
					var rev store.Revision
					var err error
					if worker == 0 {
						rev, err = l.PublishChanges(store.PublishInfo{Trigger: "webhook"}, []store.Batch{{Source: "shop", Changes: cs}})
					} else {
						var st *Staging
						if st, err = l.beginStaging(fmt.Sprintf("run_%d_%d", host, i)); err == nil {
							if err = st.writer("shop", store.WriterOptions{}).Apply(cs); err == nil {
								rev, err = st.Publish(store.PublishInfo{Trigger: "manual"})
							}
						}
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					results = append(results, result{rev, ids})
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sort.Slice(results, func(i, j int) bool { return results[i].rev.Number < results[j].rev.Number })
	if len(results) != 4*perWorker {
		t.Fatalf("%d revisions", len(results))
	}
	for i, r := range results {
		if r.rev.Number != int64(i+1) {
			t.Fatalf("revision numbers %d at %d: lost or repeated", r.rev.Number, i)
		}
		if i > 0 && !r.rev.CreatedAt.After(results[i-1].rev.CreatedAt) {
			t.Fatalf("revision %d created at %s, not after %s", r.rev.Number, r.rev.CreatedAt, results[i-1].rev.CreatedAt)
		}
		if c := r.rev.Counts["shop"]["M"]; c.Added+c.Updated != 21 || c.Added < 20 {
			t.Fatalf("revision %d counts %+v", r.rev.Number, r.rev.Counts)
		}
	}
	recs := stRead(t, l2, 0) // checks cursors ascend and records appear once
	byID := stByID(recs)
	for _, r := range results {
		for _, id := range r.ids {
			if rec, ok := byID[id]; !ok || rec.FromRev != r.rev.Number {
				t.Fatalf("record %s of revision %d: %+v", id, r.rev.Number, rec)
			}
		}
	}
	if len(recs) != 4*perWorker*20+1 || byID["shared"].FromRev != int64(len(results)) {
		t.Fatalf("%d records, shared %+v", len(recs), byID["shared"])
	}
	// Every revision reads as it was published: the shared record's
	// versions chain without gaps.
	var versions int
	if err := l1.s.pool.QueryRow(context.Background(), `SELECT count(*) FROM synclayer_records r
		WHERE layer_id = $1 AND id = 'shared' AND (to_rev IS NULL OR EXISTS (SELECT 1 FROM synclayer_records n
			WHERE n.layer_id = r.layer_id AND n.id = 'shared' AND n.from_rev = r.to_rev))`, l1.id).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions != len(results) {
		t.Fatalf("%d chained versions of the shared record, want %d", versions, len(results))
	}
}

// stBenchRecords is the size of BenchmarkIngest (SYNCLAYER_PG_BENCH_RECORDS,
// default 100,000).
func stBenchRecords() int {
	if n, err := strconv.Atoi(os.Getenv("SYNCLAYER_PG_BENCH_RECORDS")); err == nil && n > 0 {
		return n
	}
	return 100000
}

// stBenchChanges makes n records of 1 KiB, as the generator source does.
func stBenchChanges(n int) []store.Change {
	pad := strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789", 40)
	cs := make([]store.Change, n)
	for i := range cs {
		id := fmt.Sprintf("item-%09d", i)
		head := fmt.Sprintf(`{"id":%q,"model":"Item","n":%d,"version":0,"data":"`, id, i)
		cs[i] = store.Change{Model: "Item", ID: id, Data: []byte(head + pad[:1024-len(head)-2] + `"}`)}
	}
	return cs
}

// BenchmarkIngest measures a full run of fresh records staged and
// published through the store against a plain COPY of the same rows into a
// logged table of synclayer_records' shape (its columns and indexes), on
// the same server in the same run: BENCH.md's postgres_ingest_ratio.
//
//	go test -run '^$' -bench Ingest -benchtime 1x ./core/store/postgres/
func BenchmarkIngest(b *testing.B) {
	n := stBenchRecords()
	cs := stBenchChanges(n)
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		s, _ := openStore(b)
		l, err := s.layer("bench")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.pool.Exec(ctx, `CREATE TABLE bench_copy (LIKE synclayer_records INCLUDING ALL)`); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		// The bound: COPY of the rows as they are stored.
		t0 := time.Now()
		i := 0
		_, err = s.pool.CopyFrom(ctx, pgx.Identifier{"bench_copy"},
			[]string{"layer_id", "source_key", "model", "id", "from_rev", "seq", "action", "first_seen_rev", "payload", "hash"},
			pgx.CopyFromFunc(func() ([]any, error) {
				if i == n {
					return nil, nil
				}
				c := &cs[i]
				i++
				return []any{l.id, "gen", c.Model, c.ID, int64(1), int32(i), int16(1), int64(1), c.Data, int64(i)}, nil
			}))
		if err != nil {
			b.Fatal(err)
		}
		bound := time.Since(t0)
		// The store: staging in batches of 1,000, as the engine applies
		// a connector's batches, then the publish.
		t0 = time.Now()
		st, err := l.beginStaging("run_bench")
		if err != nil {
			b.Fatal(err)
		}
		w := st.writer("gen", store.WriterOptions{})
		for j := 0; j < n; j += 1000 {
			if err := w.Apply(cs[j:min(j+1000, n)]); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		staged := time.Since(t0)
		rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
		if err != nil {
			b.Fatal(err)
		}
		ingest := time.Since(t0)
		b.StopTimer()
		if c := rev.Counts["gen"]["Item"]; c.Added != int64(n) {
			b.Fatalf("counts %+v", c)
		}
		ratio := bound.Seconds() / ingest.Seconds()
		b.Logf("%d records of 1 KiB: COPY %.0f records/s (%s); store %.0f records/s (%s: staging %s, publish %s); postgres_ingest_ratio %.2f",
			n, float64(n)/bound.Seconds(), bound.Round(time.Millisecond), float64(n)/ingest.Seconds(), ingest.Round(time.Millisecond),
			staged.Round(time.Millisecond), (ingest - staged).Round(time.Millisecond), ratio)
		b.ReportMetric(float64(n)/ingest.Seconds(), "records/s")
		b.ReportMetric(ratio, "ratio")
		s.Close()
	}
}

// BenchmarkIncremental measures a run changing 1% of a layer of
// SYNCLAYER_PG_BENCH_RECORDS records (BENCH.md's incremental_ms): its cost
// is in proportion to the changes, not the layer.
//
//	go test -run '^$' -bench Incremental -benchtime 1x ./core/store/postgres/
func BenchmarkIncremental(b *testing.B) {
	n := stBenchRecords()
	cs := stBenchChanges(n)
	s, _ := openStore(b)
	l, err := s.layer("bench")
	if err != nil {
		b.Fatal(err)
	}
	st, err := l.beginStaging("run_full")
	if err != nil {
		b.Fatal(err)
	}
	w := st.writer("gen", store.WriterOptions{})
	for j := 0; j < n; j += 1000 {
		if err := w.Apply(cs[j:min(j+1000, n)]); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := st.Publish(store.PublishInfo{Trigger: "manual"}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		var changed []store.Change
		for j := i % 100; j < n; j += 100 {
			c := cs[j]
			c.Data = []byte(strings.Replace(string(c.Data), `"version":0`, fmt.Sprintf(`"version":%d`, i+1), 1))
			changed = append(changed, c)
		}
		t0 := time.Now()
		st, err := l.beginStaging(fmt.Sprintf("run_%d", i))
		if err != nil {
			b.Fatal(err)
		}
		if err := st.writer("gen", store.WriterOptions{}).Apply(changed); err != nil {
			b.Fatal(err)
		}
		rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
		if err != nil {
			b.Fatal(err)
		}
		if c := rev.Counts["gen"]["Item"]; c.Updated != int64(len(changed)) {
			b.Fatalf("counts %+v", c)
		}
		b.Logf("%d of %d records changed: staged and published in %s", len(changed), n, time.Since(t0).Round(time.Millisecond))
	}
}
