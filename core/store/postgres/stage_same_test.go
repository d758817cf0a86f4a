package postgres

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/synclayer/synclayer/core/store"
	"github.com/synclayer/synclayer/core/store/badger"
)

// The same runs give the same revisions on both drivers: random runs of
// saves (some identical to what is stored), deletes, deletes by id, several
// changes to one record, full runs with track_deletes and connections,
// merging with ignore_if_modified_after or not around payload webhooks
// published while the run stages, on the embedded driver and on this one; after each, the counts
// and every record's action, payload and last revision must agree.
//
// One path is left out on purpose: a record deleted before the run that
// the run both saves and then deletes again. The embedded driver counts
// it as added, deleted and minus one updated; this one counts nothing
// (the record was deleted before and after). And the webhooks come before
// the run's changes: on the embedded driver, a run staging in place
// compares its changes with what was published when it applied them, so
// a save equal to the payload a webhook then changed leaves the webhook's
// payload; a run that stages privately there, and every run here, compares
// at its publish, so override makes the run's payload win. Nor does a run
// merge with ignore_if_modified_after around webhooks: on the embedded
// driver, a full run with track_deletes staging in place loses a record a
// webhook added meanwhile from its revision altogether (not even deleted),
// where this driver keeps the webhook's record.
func TestStageSameAsBadger(t *testing.T) {
	seeds := []uint64{7, 8, 9}
	if v := os.Getenv("SYNCLAYER_SAME_SEEDS"); v != "" {
		n, _ := strconv.Atoi(v)
		seeds = nil
		for i := range n {
			seeds = append(seeds, uint64(100+i))
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { stSameAsBadger(t, seed) })
	}
}

func stSameAsBadger(t *testing.T, seed uint64) {
	bs, err := badger.Open(badger.Options{Dir: t.TempDir(), InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	bl, err := bs.Layer("catalog")
	if err != nil {
		t.Fatal(err)
	}
	_, pl, _ := stLayer(t)
	rng := rand.New(rand.NewPCG(seed, 11))
	sources := []string{"shop", store.SourceKey("crm", "acme")}
	models := []string{"A", "B"}
	titles := []string{"x", "y", "z"}
	for run := 1; run <= 40; run++ {
		// What is deleted now, to keep out the path the drivers count
		// differently.
		deletedNow := map[string]bool{}
		for _, r := range stRead(t, pl, 0) {
			if r.Action == store.Deleted {
				deletedNow[r.SourceKey+"/"+r.Model+"/"+r.ID] = true
			}
		}
		type writerPlan struct {
			source  string
			opts    store.WriterOptions
			changes []store.Change
		}
		var plans []writerPlan
		for _, src := range sources {
			if rng.IntN(3) == 0 {
				continue
			}
			p := writerPlan{source: src}
			if rng.IntN(4) == 0 {
				p.opts.TrackDeletes = []string{models[rng.IntN(2)]}
			}
			p.opts.IgnoreIfModifiedAfter = rng.IntN(2) == 0 && run%3 != 0 // see above
			touched := map[string]int{}
			for range 1 + rng.IntN(12) {
				id := fmt.Sprint("r", rng.IntN(8))
				m := models[rng.IntN(2)]
				var c store.Change
				switch k := rng.IntN(10); {
				case k < 6:
					c = store.Change{Model: m, ID: id, Data: []byte(fmt.Sprintf(`{"id":%q,"title":%q}`, id, titles[rng.IntN(3)]))}
				case k < 9:
					c = store.Change{Model: m, ID: id, Delete: true}
				default:
					c = store.Change{ID: id, Delete: true} // by id
				}
				keys := []string{src + "/" + m + "/" + id}
				if c.Model == "" {
					keys = []string{src + "/A/" + id, src + "/B/" + id}
				}
				skip := false
				for _, k := range keys {
					if deletedNow[k] && touched[k] > 0 {
						skip = true
					}
				}
				if skip {
					continue
				}
				for _, k := range keys {
					touched[k]++
				}
				p.changes = append(p.changes, c)
			}
			plans = append(plans, p)
		}
		// Every third run, payload webhooks (saves) publish while it
		// stages, before its changes come.
		var hook []store.Batch
		if run%3 == 0 {
			for _, src := range sources {
				b := store.Batch{Source: src}
				for range rng.IntN(5) {
					id := fmt.Sprint("r", rng.IntN(8))
					b.Changes = append(b.Changes, store.Change{Model: models[rng.IntN(2)], ID: id,
						Data: []byte(fmt.Sprintf(`{"id":%q,"title":%q}`, id, titles[rng.IntN(3)]))})
				}
				hook = append(hook, b)
			}
		}
		runID := fmt.Sprintf("run_%d", run)
		var hookRevs []store.Revision
		pub := func(l stStager) store.Revision {
			t.Helper()
			st, err := l.BeginStaging(runID)
			if err != nil {
				t.Fatal(err)
			}
			if hook != nil {
				rev, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook"}, hook)
				if err != nil {
					t.Fatal(err)
				}
				hookRevs = append(hookRevs, rev)
			}
			for _, p := range plans {
				w := st.Writer(p.source, p.opts)
				if err := w.Apply(p.changes); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			rev, err := st.Publish(store.PublishInfo{Trigger: "manual"})
			if err != nil {
				t.Fatal(err)
			}
			return rev
		}
		brev := pub(bl)
		prev := pub(pl)
		if hook != nil && fmt.Sprint(hookRevs[0].Counts) != fmt.Sprint(hookRevs[1].Counts) {
			t.Fatalf("run %d's webhooks %+v:\nbadger   %v\npostgres %v", run, hook, hookRevs[0].Counts, hookRevs[1].Counts)
		}
		if brev.Number != prev.Number || fmt.Sprint(brev.Counts) != fmt.Sprint(prev.Counts) {
			t.Fatalf("run %d (%+v):\nbadger   %d %v\npostgres %d %v", run, plans, brev.Number, brev.Counts, prev.Number, prev.Counts)
		}
		if b, p := stBadgerState(t, bl), stPgState(t, pl); b != p {
			t.Fatalf("run %d (%+v, webhooks %+v): records differ:\nbadger only   %s\npostgres only %s", run, plans, hook, stMinus(b, p), stMinus(p, b))
		}
	}
}

// stStager is what both drivers' layers offer to stage and publish.
type stStager interface {
	BeginStaging(run string) (store.Staging, error)
	PublishChanges(info store.PublishInfo, batches []store.Batch) (store.Revision, error)
}

// stBadgerState renders the embedded driver's current records, sorted.
func stBadgerState(t *testing.T, l store.Layer) string {
	t.Helper()
	var out []string
	_, err := l.Records(store.Query{Limit: 10000}, func(b []byte) error {
		var r struct {
			ID       string `json:"id"`
			Title    string `json:"title"`
			Metadata struct {
				Source     string `json:"source"`
				Connection string `json:"connection"`
				Model      string `json:"model"`
				LastAction string `json:"last_action"`
				Revision   int64  `json:"revision"`
			} `json:"_metadata"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		m := r.Metadata
		out = append(out, fmt.Sprintf("%s/%s/%s:%s:%s@%d", store.SourceKey(m.Source, m.Connection), m.Model, r.ID, m.LastAction, r.Title, m.Revision))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// stPgState renders this driver's current records as stBadgerState does.
func stPgState(t *testing.T, l *Layer) string {
	t.Helper()
	var out []string
	for _, r := range stRead(t, l, 0) {
		out = append(out, fmt.Sprintf("%s/%s/%s:%s:%s@%d", r.SourceKey, r.Model, r.ID, r.Action, r.Title, r.FromRev))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// stMinus lists the words of a that b lacks.
func stMinus(a, b string) string {
	in := map[string]bool{}
	for _, w := range strings.Fields(b) {
		in[w] = true
	}
	var out []string
	for _, w := range strings.Fields(a) {
		if !in[w] {
			out = append(out, w)
		}
	}
	return strings.Join(out, " ")
}
