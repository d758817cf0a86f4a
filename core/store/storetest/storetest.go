// Package storetest is the conformance suite of the store's drivers: one
// set of tests that every driver (core/store/badger, core/store/postgres)
// runs through the interfaces of core/store only, so that the engine, the
// API and the rest never learn which driver they have. The cases are the
// guarantees of SPEC §4–§8 and §12 and the behaviour of the embedded
// driver, the reference; a driver's own tests keep what only it has (key
// layout, timestamps, files).
//
// The suite is split by concern, as riverqueue/river's riverdrivertest is:
// records.go (staging and publishing), reads.go (Records queries),
// snapshots.go (Snapshot reads, counts, field indexes), revisions.go
// (retention and pins), inbox.go, outbox.go, logs.go, runs.go,
// connections.go, meta.go, layers.go and restart.go (what survives a
// restart and what must not). Tests that need several hosts on one
// database run only for drivers that have them (Driver.Hosts).
//
// A driver runs it from a test of its own package:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Driver{Name: "badger", New: ..., Reopen: ...})
//	}
package storetest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// Driver tells the suite how to make stores of one driver.
type Driver struct {
	// Name names the driver in messages.
	Name string
	// New opens a new, empty store for the test. The suite closes it (and
	// every store Reopen returns) when the test ends.
	New func(t testing.TB) store.Store
	// Reopen closes st (made by New, or by Hosts) and opens the same data
	// again, as a restart of the host would.
	Reopen func(t testing.TB, st store.Store) store.Store
	// Hosts, when set, opens n stores on one new, empty database, as n
	// hosts would; the suite closes them. It is nil for an embedded driver
	// (one host per store): the tests that need several hosts then report
	// themselves skipped.
	Hosts func(t testing.TB, n int) []store.Store
}

// Run runs the whole suite against the driver.
func Run(t *testing.T, d Driver) {
	if d.New == nil || d.Reopen == nil {
		t.Fatalf("storetest: driver %q needs New and Reopen", d.Name)
	}
	t.Run("Layers", func(t *testing.T) { testLayers(t, d) })
	t.Run("Records", func(t *testing.T) { testRecords(t, d) })
	t.Run("Reads", func(t *testing.T) { testReads(t, d) })
	t.Run("Snapshots", func(t *testing.T) { testSnapshots(t, d) })
	t.Run("Revisions", func(t *testing.T) { testRevisions(t, d) })
	t.Run("Inbox", func(t *testing.T) { testInbox(t, d) })
	t.Run("Outbox", func(t *testing.T) { testOutbox(t, d) })
	t.Run("Logs", func(t *testing.T) { testLogs(t, d) })
	t.Run("Runs", func(t *testing.T) { testRuns(t, d) })
	t.Run("Connections", func(t *testing.T) { testConnections(t, d) })
	t.Run("Meta", func(t *testing.T) { testMeta(t, d) })
	t.Run("Restart", func(t *testing.T) { testRestart(t, d) })
}

// layerName is the layer every test works in.
const layerName = "catalog"

// env is one test's store and layer.
type env struct {
	t  *testing.T
	d  Driver
	st store.Store
	l  store.Layer
}

// newEnv opens a new store and its layer "catalog"; the store is closed
// when the test ends, after everything the test registered later (its
// snapshots).
func newEnv(t *testing.T, d Driver) *env {
	t.Helper()
	e := &env{t: t, d: d}
	e.st = d.New(t)
	if e.st == nil {
		t.Fatalf("driver %s: New returned no store", d.Name)
	}
	t.Cleanup(func() { e.st.Close() })
	e.l = layerOf(t, e.st, layerName)
	e.l.SetRetention(defaultKeep, 0)
	return e
}

// defaultKeep is the retention the suite's layers start with (the engine
// always sets one: keep_revisions defaults to 10); tests of retention set
// their own.
const defaultKeep = 10

// reopen restarts the store: every snapshot must be closed first.
func (e *env) reopen() {
	e.t.Helper()
	e.st = e.d.Reopen(e.t, e.st)
	if e.st == nil {
		e.t.Fatalf("driver %s: Reopen returned no store", e.d.Name)
	}
	e.l = layerOf(e.t, e.st, layerName)
	e.l.SetRetention(defaultKeep, 0)
}

func layerOf(t testing.TB, st store.Store, name string) store.Layer {
	t.Helper()
	l, err := st.Layer(name)
	if err != nil {
		t.Fatalf("layer %q: %v", name, err)
	}
	if l.Name() != name {
		t.Fatalf("layer %q is named %q", name, l.Name())
	}
	return l
}

// test runs fn as a parallel subtest with a store of its own.
func test(t *testing.T, d Driver, name string, fn func(t *testing.T, e *env)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		fn(t, newEnv(t, d))
	})
}

// hostsTest runs fn as a parallel subtest with the layer "catalog" opened
// on n hosts of one database. For a driver without hosts it reports itself
// skipped, with the reason.
func hostsTest(t *testing.T, d Driver, name string, n int, fn func(t *testing.T, ls []store.Layer)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		if d.Hosts == nil {
			t.Skipf("driver %s has no hosts (Driver.Hosts is nil): this case needs %d hosts on one database", d.Name, n)
		}
		t.Parallel()
		sts := d.Hosts(t, n)
		if len(sts) != n {
			t.Fatalf("driver %s: Hosts(%d) opened %d stores", d.Name, n, len(sts))
		}
		ls := make([]store.Layer, n)
		for i, st := range sts {
			st := st
			t.Cleanup(func() { st.Close() })
			ls[i] = layerOf(t, st, layerName)
			ls[i].SetRetention(defaultKeep, 0)
		}
		fn(t, ls)
	})
}

// waitFor bounds every wait for something another goroutine or host does:
// reaching it fails the test, it is not a measure of speed.
const waitFor = 15 * time.Second

// waitSignal waits for a store signal channel to close.
func waitSignal(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitFor):
		t.Fatalf("%s: no signal within %s", what, waitFor)
	}
}

// eventually polls cond until it holds; it fails the test after waitFor.
// It is for what another host learns through its notifications.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so within %s", what, waitFor)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// save is a change saving the record {"id":id,"title":title}.
func save(model, id, title string) store.Change {
	return store.Change{Model: model, ID: id, Data: []byte(fmt.Sprintf(`{"id":%q,"title":%q}`, id, title))}
}

// del is a change deleting a record.
func del(model, id string) store.Change { return store.Change{Model: model, ID: id, Delete: true} }

// delByID is a delete by id alone: the record of that id in every model of
// the source.
func delByID(id string) store.Change { return store.Change{ID: id, Delete: true} }

// many saves n records of model M, ids r000000…, with one title.
func many(n int, title string) []store.Change {
	cs := make([]store.Change, n)
	for i := range cs {
		cs[i] = save("M", fmt.Sprintf("r%06d", i), title)
	}
	return cs
}

// publish stages changes of one source key as run and publishes them.
func publish(t testing.TB, l store.Layer, run, source string, cs ...store.Change) store.Revision {
	t.Helper()
	return publishWith(t, l, run, source, store.WriterOptions{}, cs...)
}

// publishWith is publish with writer options.
func publishWith(t testing.TB, l store.Layer, run, source string, opts store.WriterOptions, cs ...store.Change) store.Revision {
	t.Helper()
	plain, _ := store.SplitSourceKey(source)
	return publishInfo(t, l, run, source, opts, store.PublishInfo{Trigger: "manual", Sources: []string{plain}}, cs...)
}

// publishInfo is publish with writer options and what the revision says.
func publishInfo(t testing.TB, l store.Layer, run, source string, opts store.WriterOptions, info store.PublishInfo, cs ...store.Change) store.Revision {
	t.Helper()
	st, err := l.BeginStaging(run)
	if err != nil {
		t.Fatalf("begin staging %s: %v", run, err)
	}
	w := st.Writer(source, opts)
	if err := w.Apply(cs); err != nil {
		t.Fatalf("apply %s: %v", run, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close writer of %s: %v", run, err)
	}
	rev, err := st.Publish(info)
	if err != nil {
		t.Fatalf("publish %s: %v", run, err)
	}
	return rev
}

// publishKeys stages changes under several source keys in one run and
// publishes them.
func publishKeys(t testing.TB, l store.Layer, run string, changes map[string][]store.Change) store.Revision {
	t.Helper()
	st, err := l.BeginStaging(run)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(changes))
	for k := range changes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	sources := map[string]bool{}
	for _, k := range keys {
		w := st.Writer(k, store.WriterOptions{})
		if err := w.Apply(changes[k]); err != nil {
			t.Fatalf("apply %s: %v", k, err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		s, _ := store.SplitSourceKey(k)
		sources[s] = true
	}
	var srcs []string
	for s := range sources {
		srcs = append(srcs, s)
	}
	rev, err := st.Publish(store.PublishInfo{Trigger: "manual", Sources: srcs})
	if err != nil {
		t.Fatalf("publish %s: %v", run, err)
	}
	return rev
}

// direct publishes changes of one source key outside a run (a batch of
// payload webhooks).
func direct(t testing.TB, l store.Layer, source string, cs ...store.Change) store.Revision {
	t.Helper()
	plain, _ := store.SplitSourceKey(source)
	rev, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook", Sources: []string{plain}}, []store.Batch{{Source: source, Changes: cs}})
	if err != nil {
		t.Fatalf("publish changes: %v", err)
	}
	return rev
}

// rec is a record as Records renders it.
type rec struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Meta is the record's _metadata, Nango its _nango_metadata.
	Meta  map[string]any `json:"_metadata"`
	Nango map[string]any `json:"_nango_metadata"`
	Raw   []byte         `json:"-"`
}

func (r rec) cursor() string { return r.str("cursor") }
func (r rec) action() string { return r.str("last_action") }
func (r rec) deleted() bool  { return r.Meta["deleted_at"] != nil }

func (r rec) str(key string) string {
	s, _ := r.Meta[key].(string)
	return s
}

func (r rec) revision() int64 {
	f, _ := r.Meta["revision"].(float64)
	return int64(f)
}

// readAll reads one page of q.
func readAll(t testing.TB, l store.Layer, q store.Query) ([]rec, store.Page) {
	t.Helper()
	out, page, err := tryRead(l, q)
	if err != nil {
		t.Fatalf("records %+v: %v", q, err)
	}
	return out, page
}

func tryRead(l store.Layer, q store.Query) ([]rec, store.Page, error) {
	var out []rec
	page, err := l.Records(q, func(b []byte) error {
		var r rec
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("record does not decode: %w: %s", err, b)
		}
		r.Raw = append([]byte(nil), b...)
		out = append(out, r)
		return nil
	})
	return out, page, err
}

// walk reads every page of q, following the page tokens, and checks that
// the walk stays on one revision.
func walk(t testing.TB, l store.Layer, q store.Query) ([]rec, int64) {
	t.Helper()
	var all []rec
	var rev int64
	for pages := 0; ; pages++ {
		got, page := readAll(t, l, q)
		all = append(all, got...)
		if rev == 0 {
			rev = page.Revision.Number
		} else if page.Revision.Number != rev {
			t.Fatalf("a walk went from revision %d to %d", rev, page.Revision.Number)
		}
		if page.Next == "" {
			return all, rev
		}
		c, r, err := store.ParsePosition(page.Next)
		if err != nil {
			t.Fatalf("page token %q: %v", page.Next, err)
		}
		if r != rev {
			t.Fatalf("page token of revision %d on a page of revision %d", r, rev)
		}
		q.After, q.Revision = &c, r
		if pages > 100000 {
			t.Fatal("a walk that does not end")
		}
	}
}

// ids lists the records' ids in order.
func ids(rs []rec) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return strings.Join(out, " ")
}

// live lists the ids of the records not deleted, sorted.
func live(rs []rec) string {
	var out []string
	for _, r := range rs {
		if !r.deleted() {
			out = append(out, r.ID)
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// byID indexes records by id.
func byID(rs []rec) map[string]rec {
	m := make(map[string]rec, len(rs))
	for _, r := range rs {
		m[r.ID] = r
	}
	return m
}

// checkAscending fails unless the records' cursors strictly increase.
func checkAscending(t testing.TB, rs []rec) {
	t.Helper()
	for i := 1; i < len(rs); i++ {
		if rs[i-1].cursor() >= rs[i].cursor() {
			t.Fatalf("cursors not strictly ascending: %s (%s) then %s (%s)", rs[i-1].cursor(), rs[i-1].ID, rs[i].cursor(), rs[i].ID)
		}
	}
}

// cursorOf parses a record's cursor.
func cursorOf(t testing.TB, r rec) *store.Cursor {
	t.Helper()
	c, err := store.ParseCursor(r.cursor())
	if err != nil {
		t.Fatalf("cursor %q of %s: %v", r.cursor(), r.ID, err)
	}
	return &c
}

// snapshot opens revision n (0: current), closed when the test ends
// (before its store).
func snapshot(t testing.TB, l store.Layer, n int64) store.Snapshot {
	t.Helper()
	s, ok, err := l.OpenSnapshot(n)
	if err != nil || !ok {
		t.Fatalf("snapshot of revision %d: ok=%v %v", n, ok, err)
	}
	t.Cleanup(s.Close)
	return s
}

// timeFormat is how record metadata renders times (SPEC §4).
const timeFormat = "2006-01-02T15:04:05.000000Z07:00"

func rendered(tm time.Time) string { return tm.UTC().Format(timeFormat) }

// delivery is an outbound delivery of event to endpoint.
func delivery(event, endpoint string) store.Delivery {
	return store.Delivery{EventID: event, Endpoint: endpoint, Type: "sync.started", Body: []byte(`{"id":"` + event + `"}`)}
}

// deliveryIDs lists deliveries as id:state.
func deliveryIDs(ds []*store.Delivery) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID() + ":" + d.State
	}
	return strings.Join(out, " ")
}

// runID is a run id as the engine makes them: its creation time first.
func runID(at time.Time, n int) string { return fmt.Sprintf("run_%012x%04d", at.UnixMilli(), n) }
