package sdktest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ---- an upstream and a connector that can break each invariant ----

type item struct {
	id    string
	title string
	rev   int
}

// shelf is an upstream whose items carry a revision that every change
// bumps, so that a connector can read what changed since a revision.
type shelf struct {
	mu    sync.Mutex
	items map[string]*item
	rev   int
}

func newShelf(n int) *shelf {
	s := &shelf{items: map[string]*item{}}
	for i := 1; i <= n; i++ {
		s.set(fmt.Sprintf("%02d", i), fmt.Sprintf("item %d", i))
	}
	return s
}

func (s *shelf) set(id, title string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	s.items[id] = &item{id: id, title: title, rev: s.rev}
}

func (s *shelf) del(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.items, id)
}

// after lists the items after (rev, id), in (rev, id) order.
func (s *shelf) after(rev int, id string) []item {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []item
	for _, it := range s.items {
		if it.rev > rev || (it.rev == rev && it.id > id) {
			out = append(out, *it)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].rev != out[j].rev {
			return out[i].rev < out[j].rev
		}
		return out[i].id < out[j].id
	})
	return out
}

type shelfConfig struct {
	Token string `config:"token,required,sensitive"`
}

// breakage names the invariant a shelfConn breaks; "" breaks none.
type breakage string

type shelfConn struct {
	up     *shelf
	breaks breakage
	runs   int
	mu     sync.Mutex
	stop   chan struct{} // ends leaked goroutines at the end of the test
}

func (c *shelfConn) Describe() sdk.Description {
	return sdk.Description{
		Name: "shelf", Version: "1.0.0", Config: (*shelfConfig)(nil),
		Models: []sdk.Model{{Name: "Item"}},
		Syncs:  []sdk.SyncSpec{{Name: "items", Models: []string{"Item"}, Incremental: true}},
	}
}

// Sync reads the items after the checkpoint's (rev, id), three per
// checkpoint. A full run starts from the beginning unless its checkpoint
// is one of an unfinished run ("done": false), which it resumes.
func (c *shelfConn) Sync(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
	var cfg shelfConfig
	if err := req.DecodeConfig(&cfg); err != nil {
		return err
	}
	c.mu.Lock()
	c.runs++
	run := c.runs
	c.mu.Unlock()
	switch c.breaks {
	case "leak-secret":
		req.Logger.Info("connecting", "token", cfg.Token)
	case "leak-goroutine":
		go func() { <-c.stop }()
	}
	rev, _ := req.Checkpoint.GetInt64("rev")
	id, _ := req.Checkpoint.GetString("id")
	done, _ := req.Checkpoint["done"].(bool)
	resuming := req.Full && req.Checkpoint != nil && !done
	if req.Full && !resuming {
		rev, id = 0, ""
	}
	if !req.Full && c.breaks == "repeat" {
		rev, id = 0, ""
	}
	items := c.up.after(int(rev), id)
	if resuming && c.breaks == "lossy-resume" && len(items) > 0 {
		items = items[1:]
	}
	maxID := id
	for i, it := range items {
		if !req.Full && c.breaks == "miss-updates" && it.id <= maxID {
			continue
		}
		rec := map[string]any{"id": it.id, "title": it.title}
		switch c.breaks {
		case "unstable-ids":
			rec["id"] = fmt.Sprintf("%s-%d", it.id, run)
		case "duplicate-ids":
			rec["id"] = "same"
		}
		var err error
		if c.breaks == "id-mismatch" {
			err = w.SaveRaw(ctx, "Item", "x"+it.id, []byte(fmt.Sprintf(`{"id":%q}`, it.id)))
		} else {
			err = w.Save(ctx, "Item", rec)
		}
		if err != nil {
			return err
		}
		rev, id = int64(it.rev), it.id
		maxID = max(maxID, it.id)
		if (i+1)%3 == 0 && c.breaks != "no-checkpoint" {
			if err := w.Checkpoint(ctx, sdk.Checkpoint{"rev": rev, "id": id, "done": false}); err != nil {
				return err
			}
		}
	}
	if c.breaks == "undeclared-model" {
		if err := w.Save(ctx, "Ghost", map[string]any{"id": "boo"}); err != nil {
			return err
		}
	}
	if c.breaks == "no-checkpoint" {
		return nil
	}
	return w.Checkpoint(ctx, sdk.Checkpoint{"rev": rev, "id": id, "done": true})
}

// ---- a recorder in place of *testing.T ----

type recorder struct {
	tb   testing.TB
	path string
	mu   *sync.Mutex
	errs *[]string
	logs *[]string
}

func newRecorder(tb testing.TB) *recorder {
	return &recorder{tb: tb, mu: &sync.Mutex{}, errs: &[]string{}, logs: &[]string{}}
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(f string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.errs = append(*r.errs, r.path+": "+fmt.Sprintf(f, args...))
}
func (r *recorder) Logf(f string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.logs = append(*r.logs, r.path+": "+fmt.Sprintf(f, args...))
}
func (r *recorder) TB() testing.TB { return r.tb }
func (r *recorder) Run(name string, f func(suiteT)) {
	c := *r
	c.path = strings.TrimPrefix(r.path+"/"+name, "/")
	f(&c)
}

func runSuite(t *testing.T, breaks breakage) *recorder {
	t.Helper()
	up := newShelf(10)
	c := &shelfConn{up: up, breaks: breaks, stop: make(chan struct{})}
	t.Cleanup(func() { close(c.stop) })
	rec := newRecorder(t)
	Acceptance{
		Config: map[string]any{"token": "sekrit-token-123"},
		Change: func(t testing.TB, sync string) {
			up.set("02", "item 2, edited")
			up.set("11", "item 11")
			up.del("05")
		},
	}.run(rec, c)
	return rec
}

// ---- the tests ----

func TestAcceptancePassesAGoodConnector(t *testing.T) {
	rec := runSuite(t, "")
	if len(*rec.errs) > 0 {
		t.Fatalf("a good connector failed:\n%s", strings.Join(*rec.errs, "\n"))
	}
	logs := strings.Join(*rec.logs, "\n")
	for _, want := range []string{"an exact resume", "track_deletes"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}

func TestAcceptanceCatchesEachBrokenInvariant(t *testing.T) {
	cases := []struct {
		breaks breakage
		check  string // the subtest that must fail
		want   string // in its message
	}{
		{"undeclared-model", "sync=items/DeclaredModels", `model "Ghost" is not declared`},
		{"unstable-ids", "sync=items/StableIDs", `a second full run of the unchanged upstream: Item "01-1" is missing`},
		{"duplicate-ids", "sync=items/StableIDs", `two different records under Item "same"`},
		{"id-mismatch", "sync=items/StableIDs", `whose "id" attribute is 01`},
		{"lossy-resume", "sync=items/Resume", `is missing (lost)`},
		{"no-checkpoint", "sync=items/Resume", `wrote no checkpoint`},
		{"repeat", "sync=items/Incremental", `wrote Item "01" again, unchanged`},
		{"miss-updates", "sync=items/Incremental", `missed a change that a full run sees: Item "02"`},
		{"leak-secret", "SensitiveConfig", `token=<SECRET>`},
		{"leak-goroutine", "Goroutines", `shelfConn).Sync.func`},
	}
	for _, tc := range cases {
		t.Run(string(tc.breaks), func(t *testing.T) {
			rec := runSuite(t, tc.breaks)
			found := false
			for _, e := range *rec.errs {
				if strings.HasPrefix(e, tc.check+": ") && strings.Contains(e, tc.want) {
					found = true
				}
			}
			if !found {
				t.Fatalf("no %s failure with %q; errors:\n%s", tc.check, tc.want, strings.Join(*rec.errs, "\n"))
			}
		})
	}
}

// TestAcceptanceRun runs the suite the way a connector's test does.
func TestAcceptanceRun(t *testing.T) {
	up := newShelf(5)
	Acceptance{
		Config: map[string]any{"token": "sekrit-token-123"},
		Change: func(t testing.TB, sync string) { up.set("03", "changed") },
	}.Run(t, &shelfConn{up: up})
}

func TestResumePoints(t *testing.T) {
	cases := map[[2]int]string{
		{1, 3}: "[1]", {2, 3}: "[1 2]", {3, 3}: "[1 2 3]", {10, 3}: "[1 5 10]", {10, 1}: "[1]", {7, 4}: "[1 3 5 7]",
	}
	for in, want := range cases {
		if got := fmt.Sprint(resumePoints(in[0], in[1])); got != want {
			t.Errorf("resumePoints(%d, %d) = %s, want %s", in[0], in[1], got, want)
		}
	}
}

func TestStopAfterCheckpoints(t *testing.T) {
	h := New(t, &shelfConn{up: newShelf(10)})
	res, err := h.Sync(t.Context(), SyncOptions{Config: map[string]any{"token": "x"}, Sync: "items", Full: true, StopAfterCheckpoints: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 6 || len(res.Checkpoints()) != 2 {
		t.Fatalf("%d changes, %d checkpoints", len(res.Changes), len(res.Checkpoints()))
	}
	if id, _ := res.Checkpoint.GetString("id"); id != "06" {
		t.Fatalf("checkpoint %v", res.Checkpoint)
	}
}

// ---- deletes by id across models ----

// feedEntry is one entry of a change feed whose deletions, like
// Contentful's DeletedEntry, name no model.
type feedEntry struct {
	rev     int
	model   string // empty for a deletion
	id      string
	deleted bool
}

// feed is an upstream of two models that lists changes since a revision.
type feed struct {
	mu      sync.Mutex
	entries []feedEntry
}

func (f *feed) add(model, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, feedEntry{rev: len(f.entries) + 1, model: model, id: id})
}

func (f *feed) del(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, feedEntry{rev: len(f.entries) + 1, id: id, deleted: true})
}

// since lists the entries after rev; a full listing (rev 0) drops deleted
// records and the deletions themselves, as a snapshot would.
func (f *feed) since(rev int) []feedEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []feedEntry
	if rev > 0 {
		return append(out, f.entries[min(rev, len(f.entries)):]...)
	}
	gone := map[string]bool{}
	for _, e := range f.entries {
		if e.deleted {
			gone[e.id] = true
		}
	}
	for _, e := range f.entries {
		if !e.deleted && !gone[e.id] {
			out = append(out, e)
		}
	}
	return out
}

func (f *feed) last() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}

type feedConn struct{ up *feed }

func (c *feedConn) Describe() sdk.Description {
	return sdk.Description{
		Name: "feed", Version: "1.0.0",
		Models: []sdk.Model{{Name: "Post"}, {Name: "Author"}},
		Syncs:  []sdk.SyncSpec{{Name: "all", Models: []string{"Post", "Author"}, Incremental: true}},
	}
}

// Sync sends the feed after the checkpoint's revision (everything on a
// full run), deleting by id alone, two entries per checkpoint.
func (c *feedConn) Sync(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
	rev, _ := req.Checkpoint.GetInt64("rev")
	if req.Full {
		rev = 0
	}
	last := c.up.last()
	for i, e := range c.up.since(int(rev)) {
		var err error
		if e.deleted {
			err = w.DeleteByID(ctx, e.id)
		} else {
			err = w.Save(ctx, e.model, map[string]any{"id": e.id, "rev": e.rev})
		}
		if err != nil {
			return err
		}
		if (i+1)%2 == 0 {
			if err := w.Checkpoint(ctx, sdk.Checkpoint{"rev": e.rev}); err != nil {
				return err
			}
		}
	}
	return w.Checkpoint(ctx, sdk.Checkpoint{"rev": last})
}

// TestAcceptanceDeleteByID: an incremental run that deletes by id records
// of both models, and an id the host never saw, passes the suite.
func TestAcceptanceDeleteByID(t *testing.T) {
	up := &feed{}
	for _, id := range []string{"p1", "p2", "p3"} {
		up.add("Post", id)
	}
	for _, id := range []string{"a1", "a2"} {
		up.add("Author", id)
	}
	rec := newRecorder(t)
	Acceptance{
		Change: func(t testing.TB, sync string) {
			up.add("Post", "p4")
			up.del("p2")
			up.del("a1")
			up.add("Author", "tmp")
			up.del("tmp")
			up.del("never-seen")
		},
	}.run(rec, &feedConn{up: up})
	if len(*rec.errs) > 0 {
		t.Fatalf("a connector deleting by id failed:\n%s", strings.Join(*rec.errs, "\n"))
	}
}

// TestStateDeleteByID: the suite's model of the host resolves a delete by
// id in every model holding the id and ignores an unknown id.
func TestStateDeleteByID(t *testing.T) {
	st := newState([]Change{
		{Model: "Post", ID: "x", Data: []byte(`{"id":"x"}`)},
		{Model: "Author", ID: "x", Data: []byte(`{"id":"x"}`)},
		{Model: "Author", ID: "y", Data: []byte(`{"id":"y"}`)},
		{ID: "x", Delete: true},
		{ID: "nope", Delete: true},
	})
	if !st[key{"Post", "x"}].deleted || !st[key{"Author", "x"}].deleted || st[key{"Author", "y"}].deleted {
		t.Fatalf("state after DeleteByID: %v", st.keys())
	}
	if len(st) != 3 {
		t.Fatalf("an unknown id left an entry: %v", st.keys())
	}
}
