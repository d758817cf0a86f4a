package sdktest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// Acceptance is the suite of checks every connector owes the host, modelled
// on Conduit's connector acceptance kit. Run it from the connector's tests
// against a live upstream (an httptest server, a database started by the
// test, a temporary folder):
//
//	func TestAcceptance(t *testing.T) {
//		srv := startFakeAPI(t)
//		sdktest.Acceptance{
//			Config: map[string]any{"base_url": srv.URL, "token": "s3cr3t-t0ken"},
//			Change: func(t testing.TB, sync string) { srv.UpdateSomething() },
//		}.Run(t, &MyConnector{})
//	}
//
// For each sync of the configured description it checks, each in its own
// subtest:
//
//   - DeclaredModels: runs succeed and write only models the sync declares.
//   - StableIDs: every record is a JSON object whose "id" is the id it was
//     written with; one run never writes two different records under one
//     id; a second full run of the unchanged upstream writes the same ids
//     with the same content.
//   - Resume: a full run interrupted right after a checkpoint (as when the
//     host dies) and rerun from it loses nothing: the records before the
//     checkpoint plus those of the rerun are every record of an
//     uninterrupted run. An exact resume and a clean restart both pass.
//   - Incremental (incremental syncs): an incremental run from the last
//     checkpoint of an unchanged upstream repeats no unchanged record and
//     deletes nothing that is not there (a Writer.DeleteByID of an id no
//     model holds is allowed: the upstream may report a deletion of
//     something the host never saw). With Change set, the upstream is
//     then changed and a second incremental run must bring every change a
//     fresh full run sees (deletions excepted: those may be left to the
//     host's track_deletes), again without repeats, and must also resume
//     without loss from any of its checkpoints.
//   - SensitiveConfig: the values of config attributes declared sensitive
//     appear in no log line (streamed or stderr), error message or
//     checkpoint of any call the suite made.
//   - Goroutines: once the connector's server has stopped, no goroutine it
//     started is left (go.uber.org/goleak).
//
// The goroutine check compares with the goroutines that existed when Run
// started, so do not run the suite in parallel (t.Parallel) with other
// tests of the package that start goroutines.
type Acceptance struct {
	// Config is the source's configuration. Give sensitive attributes
	// distinctive values (at least 4 characters) so that a leak is found.
	Config map[string]any
	// Syncs limits the suite to these syncs; empty means every sync of the
	// description for Config.
	Syncs []string
	// Change, when set, changes the upstream (adds, updates and deletes
	// records) between two incremental runs of sync. It is called once per
	// incremental sync; the changes may accumulate.
	Change func(t testing.TB, sync string)
	// ResumePoints is how many checkpoints of a run are each tried as the
	// point of an interruption (default 3: the first, one in the middle,
	// the last).
	ResumePoints int
	// Timeout bounds each call (default one minute).
	Timeout time.Duration
	// IgnoreGoroutines are goleak options for goroutines that may outlive
	// the connector's server by design.
	IgnoreGoroutines []goleak.Option
}

// Run runs the suite against c; see Acceptance.
func (a Acceptance) Run(t *testing.T, c sdk.Connector) {
	t.Helper()
	a.run(testingSuite{t}, c)
}

// suiteT is what the suite reports to: *testing.T in Run, a recorder in
// the kit's own tests.
type suiteT interface {
	Helper()
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
	// Run runs f as a subtest named name.
	Run(name string, f func(suiteT))
	// TB is handed to Acceptance.Change.
	TB() testing.TB
}

type testingSuite struct{ t *testing.T }

func (s testingSuite) Helper()                      { s.t.Helper() }
func (s testingSuite) Errorf(f string, args ...any) { s.t.Helper(); s.t.Errorf(f, args...) }
func (s testingSuite) Logf(f string, args ...any)   { s.t.Helper(); s.t.Logf(f, args...) }
func (s testingSuite) TB() testing.TB               { return s.t }
func (s testingSuite) Run(name string, f func(suiteT)) {
	s.t.Run(name, func(t *testing.T) { f(testingSuite{t}) })
}

// lockedBuffer collects the plugin's stderr log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// suite is one run of the checks.
type suite struct {
	a  Acceptance
	h  *Harness
	mu sync.Mutex
	// seen is every log line, error message and checkpoint of the calls,
	// for the sensitive-config check.
	seen []string
}

func (a Acceptance) run(t suiteT, c sdk.Connector) {
	t.Helper()
	if a.ResumePoints <= 0 {
		a.ResumePoints = 3
	}
	if a.Timeout <= 0 {
		a.Timeout = time.Minute
	}
	before := goleak.IgnoreCurrent()
	stderr := &lockedBuffer{}
	h, stop, err := serve(c, stderr)
	if err != nil {
		t.Errorf("sdktest: %v", err)
		return
	}
	s := &suite{a: a, h: h}
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()

	static, err := h.Describe(nil)
	if err != nil {
		t.Errorf("Describe without a configuration: %v", err)
		return
	}
	d, err := h.Describe(a.Config)
	if err != nil {
		t.Errorf("Describe with the configuration: %v", err)
		return
	}
	s.note(fmt.Sprintf("%+v", *d))
	specs := d.Syncs
	if len(a.Syncs) > 0 {
		specs = nil
		for _, name := range a.Syncs {
			i := slices.IndexFunc(d.Syncs, func(s sdk.SyncSpec) bool { return s.Name == name })
			if i < 0 {
				t.Errorf("the description has no sync %q", name)
				return
			}
			specs = append(specs, d.Syncs[i])
		}
	}
	if len(specs) == 0 {
		t.Errorf("the description for the configuration declares no sync")
		return
	}
	for _, spec := range specs {
		t.Run("sync="+spec.Name, func(t suiteT) { s.checkSync(t, spec) })
	}
	s.provokeErrors(d)

	t.Run("SensitiveConfig", func(t suiteT) {
		s.checkSensitive(t, static, stderr.String())
	})
	stop()
	stopped = true
	t.Run("Goroutines", func(t suiteT) {
		opts := append(slices.Clone(a.IgnoreGoroutines), before)
		if err := goleak.Find(opts...); err != nil {
			t.Errorf("goroutines left running after the connector's server stopped (close clients and connections at the end of each call):\n%v", err)
		}
	})
}

// note keeps text for the sensitive-config check.
func (s *suite) note(text ...string) {
	s.mu.Lock()
	s.seen = append(s.seen, text...)
	s.mu.Unlock()
}

// sync runs one call, keeping its logs, error and checkpoints.
func (s *suite) sync(opts SyncOptions) (*Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.a.Timeout)
	defer cancel()
	opts.Config = s.a.Config
	res, err := s.h.Sync(ctx, opts)
	s.note(res.Logs...)
	if err != nil {
		s.note(err.Error())
	}
	for _, cp := range res.Checkpoints() {
		b, _ := json.Marshal(cp)
		s.note(string(b))
	}
	return res, err
}

// provokeErrors calls what a connector answers with errors (Check, an
// unsigned webhook, an unknown sync), so that the sensitive-config check
// sees those messages too.
func (s *suite) provokeErrors(d *Description) {
	ctx, cancel := context.WithTimeout(context.Background(), s.a.Timeout)
	defer cancel()
	if err := s.h.Check(ctx, s.a.Config); err != nil {
		s.note(err.Error())
	}
	if d.Webhooks {
		opts := WebhookOptions{Config: s.a.Config, Body: []byte(`{"sdktest":"unsigned"}`)}
		if err := s.h.VerifyWebhook(ctx, opts); err != nil {
			s.note(err.Error())
		}
	}
	_, _ = s.sync(SyncOptions{Sync: "sdktest-no-such-sync", Full: true})
}

func (s *suite) checkSync(t suiteT, spec sdk.SyncSpec) {
	t.Helper()
	var full *Result
	ok := true
	t.Run("DeclaredModels", func(t suiteT) {
		var err error
		full, err = s.sync(SyncOptions{Sync: spec.Name, Full: true})
		if err != nil {
			t.Errorf("full run of sync %q failed: %v", spec.Name, err)
			ok = false
			return
		}
		s.checkModels(t, spec, "the full run", full)
		if len(full.Changes) == 0 {
			t.Logf("the full run wrote no record: the other checks have little to see; give the upstream some data")
		}
	})
	if !ok {
		return
	}
	t.Run("StableIDs", func(t suiteT) {
		checkIDs(t, "the full run", full)
		again, err := s.sync(SyncOptions{Sync: spec.Name, Full: true})
		if err != nil {
			t.Errorf("second full run failed: %v", err)
			return
		}
		checkIDs(t, "the second full run", again)
		a, b := newState(full.Changes), newState(again.Changes)
		diffStates(t, "a second full run of the unchanged upstream", a, b, 5)
	})
	t.Run("Resume", func(t suiteT) {
		s.checkResume(t, spec, "full run", SyncOptions{Sync: spec.Name, Full: true}, full)
	})
	if !spec.Incremental {
		return
	}
	t.Run("Incremental", func(t suiteT) { s.checkIncremental(t, spec, full) })
}

// checkModels: only the sync's models.
func (s *suite) checkModels(t suiteT, spec sdk.SyncSpec, what string, res *Result) {
	t.Helper()
	bad := map[string]int{}
	for _, c := range res.Changes {
		if c.Model == "" && c.Delete {
			continue // a DeleteByID: resolved across the source's models
		}
		if !slices.Contains(spec.Models, c.Model) {
			bad[c.Model]++
		}
	}
	for m, n := range bad {
		t.Errorf("%s of sync %q wrote %d changes of model %q, which the sync does not declare (its models: %s)",
			what, spec.Name, n, m, strings.Join(spec.Models, ", "))
	}
}

// checkIDs: every saved record is an object whose id is its change's id,
// and one run never writes two different records under one id.
func checkIDs(t suiteT, what string, res *Result) {
	t.Helper()
	errs := 0
	report := func(f string, args ...any) {
		if errs++; errs <= 5 {
			t.Errorf(f, args...)
		}
	}
	seen := map[key]string{}
	for _, c := range res.Changes {
		if c.ID == "" {
			report("%s wrote a %s change with an empty id", what, c.Model)
			continue
		}
		if c.Delete {
			continue
		}
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(c.Data))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil || obj == nil {
			report("%s wrote %s %q whose data is not a JSON object: %s", what, c.Model, c.ID, clip(c.Data))
			continue
		}
		var id string
		switch v := obj["id"].(type) {
		case string:
			id = v
		case json.Number:
			id = v.String()
		}
		if id != c.ID {
			report("%s wrote %s %q whose \"id\" attribute is %v: a record's id must be its \"id\" attribute", what, c.Model, c.ID, obj["id"])
		}
		k := key{c.Model, c.ID}
		canon := canonical(c.Data)
		if prev, dup := seen[k]; dup && prev != canon {
			report("%s wrote two different records under %s %q (ids must be unique):\n  %s\n  %s", what, c.Model, c.ID, clip([]byte(prev)), clip([]byte(canon)))
		}
		seen[k] = canon
	}
	if errs > 5 {
		t.Errorf("... and %d more", errs-5)
	}
}

// checkResume interrupts the run described by opts (whose uninterrupted
// result is ref) after chosen checkpoints and reruns it from each.
func (s *suite) checkResume(t suiteT, spec sdk.SyncSpec, what string, opts SyncOptions, ref *Result) {
	t.Helper()
	n := len(ref.Checkpoints())
	if n == 0 {
		if spec.Incremental {
			t.Errorf("the %s of incremental sync %q wrote no checkpoint: write one after each page, and at the end", what, spec.Name)
		} else {
			t.Logf("the %s wrote no checkpoint: nothing to resume from", what)
		}
		return
	}
	want := newState(ref.Changes)
	for _, k := range resumePoints(n, s.a.ResumePoints) {
		stopOpts := opts
		stopOpts.StopAfterCheckpoints = k
		part, err := s.sync(stopOpts)
		if err != nil {
			t.Errorf("%s interrupted after checkpoint %d of %d: %v", what, k, n, err)
			continue
		}
		if len(part.Checkpoints()) != k {
			t.Errorf("%s: a rerun wrote %d checkpoints where the first wrote %d; is the upstream changing?", what, len(part.Checkpoints()), n)
			continue
		}
		again := opts
		again.Checkpoint = part.Checkpoint
		again.Resume = true // the host's retry of a failed attempt
		rest, err := s.sync(again)
		if err != nil {
			t.Errorf("%s resumed from checkpoint %d of %d (%s): %v", what, k, n, clipCP(part.Checkpoint), err)
			continue
		}
		got := newState(part.Changes)
		got.apply(rest.Changes)
		label := fmt.Sprintf("%s interrupted after checkpoint %d of %d (%s) and resumed from it", what, k, n, clipCP(part.Checkpoint))
		if diffStates(t, label, want, got, 5) {
			t.Logf("%s: %s", label, resumeKind(ref, part, rest))
		}
	}
}

// resumePoints picks up to max checkpoint numbers (1-based) among n: the
// first, the last, and evenly between.
func resumePoints(n, max int) []int {
	if max >= n {
		out := make([]int, n)
		for i := range out {
			out[i] = i + 1
		}
		return out
	}
	var out []int
	for i := range max {
		k := 1
		if max > 1 {
			k = 1 + i*(n-1)/(max-1)
		}
		if len(out) == 0 || out[len(out)-1] != k {
			out = append(out, k)
		}
	}
	return out
}

func resumeKind(ref, part, rest *Result) string {
	restKeys := newState(rest.Changes).keys()
	after := newState(ref.Changes[min(len(part.Changes), len(ref.Changes)):]).keys()
	all := newState(ref.Changes).keys()
	switch {
	case slices.Equal(restKeys, after):
		return "an exact resume"
	case slices.Equal(restKeys, all):
		return "a clean restart"
	}
	return fmt.Sprintf("a resume that repeats %d of the %d records before the checkpoint", len(restKeys)-len(after), len(all)-len(after))
}

func (s *suite) checkIncremental(t suiteT, spec sdk.SyncSpec, full *Result) {
	t.Helper()
	if full.Checkpoint == nil {
		t.Errorf("the full run of incremental sync %q wrote no checkpoint, so no incremental run can follow it", spec.Name)
		return
	}
	st := newState(full.Changes)
	incr, err := s.sync(SyncOptions{Sync: spec.Name, Checkpoint: full.Checkpoint})
	if err != nil {
		t.Errorf("incremental run from the full run's last checkpoint failed: %v", err)
		return
	}
	s.checkModels(t, spec, "the incremental run", incr)
	checkIDs(t, "the incremental run", incr)
	checkNoRepeats(t, "an incremental run of the unchanged upstream", st, incr.Changes)
	st.apply(incr.Changes)
	if s.a.Change == nil {
		return
	}
	cp := incr.Checkpoint
	if cp == nil {
		cp = full.Checkpoint
	}
	s.a.Change(tbOf(t), spec.Name)
	next, err := s.sync(SyncOptions{Sync: spec.Name, Checkpoint: cp})
	if err != nil {
		t.Errorf("incremental run after the upstream changed failed: %v", err)
		return
	}
	if len(next.Changes) == 0 {
		t.Errorf("the incremental run after the upstream changed wrote nothing")
	}
	checkIDs(t, "the incremental run after the change", next)
	checkNoRepeats(t, "the incremental run after the change", st, next.Changes)
	st.apply(next.Changes)
	fresh, err := s.sync(SyncOptions{Sync: spec.Name, Full: true})
	if err != nil {
		t.Errorf("full run after the change failed: %v", err)
		return
	}
	want := newState(fresh.Changes)
	missed := 0
	for _, k := range want.keys() {
		w, g := want[k], st[k]
		if w.deleted {
			continue
		}
		if g == nil || g.deleted || g.data != w.data {
			if missed++; missed <= 5 {
				t.Errorf("the incremental runs missed a change that a full run sees: %s %q is %s after them, %s upstream",
					k.model, k.id, g.describe(), w.describe())
			}
		}
	}
	if missed > 5 {
		t.Errorf("... and %d more", missed-5)
	}
	stale := 0
	for k, g := range st {
		if !g.deleted && want[k] == nil {
			stale++
		}
	}
	if stale > 0 {
		t.Logf("%d records the full run no longer sees stay after the incremental runs (the host's track_deletes removes them on a full run)", stale)
	}
	s.checkResume(t, spec, "incremental run after the change", SyncOptions{Sync: spec.Name, Checkpoint: cp}, next)
}

// checkNoRepeats: no save of a record identical to the state's, no delete
// of a record the state does not hold.
func checkNoRepeats(t suiteT, what string, st state, changes []Change) {
	t.Helper()
	n := 0
	for _, c := range changes {
		if c.Model == "" && c.Delete {
			continue // DeleteByID: harmless where no model holds the id
		}
		prev := st[key{c.Model, c.ID}]
		var msg string
		switch {
		case c.Delete && (prev == nil || prev.deleted):
			msg = fmt.Sprintf("deleted %s %q, which was not there", c.Model, c.ID)
		case !c.Delete && prev != nil && !prev.deleted && prev.data == canonical(c.Data):
			msg = fmt.Sprintf("wrote %s %q again, unchanged", c.Model, c.ID)
		default:
			continue
		}
		if n++; n <= 5 {
			t.Errorf("%s %s: an incremental run must repeat nothing unchanged (filter on the checkpoint)", what, msg)
		}
	}
	if n > 5 {
		t.Errorf("... and %d more", n-5)
	}
}

func (s *suite) checkSensitive(t suiteT, static *Description, stderr string) {
	t.Helper()
	var secrets []string
	for _, f := range static.Config {
		if f.Sensitive {
			secrets = append(secrets, stringsIn(s.a.Config[f.Name])...)
		}
	}
	if len(secrets) == 0 {
		t.Logf("no sensitive attribute is set in Config: nothing to look for")
		return
	}
	s.mu.Lock()
	seen := append(slices.Clone(s.seen), stderr)
	s.mu.Unlock()
	for _, secret := range secrets {
		for _, text := range seen {
			if i := strings.Index(text, secret); i >= 0 {
				lo, hi := max(0, i-60), min(len(text), i+len(secret)+20)
				t.Errorf("the value of a sensitive config attribute appears in a log line, error or checkpoint: …%s…", strings.ReplaceAll(text[lo:hi], secret, "<SECRET>"))
				break
			}
		}
	}
}

// stringsIn returns the strings of at least 4 characters in v (a config
// value: a string, a list, a map), without the common "Bearer " prefix.
func stringsIn(v any) []string {
	var out []string
	switch x := v.(type) {
	case string:
		x = strings.TrimPrefix(x, "Bearer ")
		if len(x) >= 4 {
			out = append(out, x)
		}
	case []any:
		for _, e := range x {
			out = append(out, stringsIn(e)...)
		}
	case []string:
		for _, e := range x {
			out = append(out, stringsIn(e)...)
		}
	case map[string]any:
		for _, e := range x {
			out = append(out, stringsIn(e)...)
		}
	case map[string]string:
		for _, e := range x {
			out = append(out, stringsIn(e)...)
		}
	}
	return out
}

// ---- record states ----

type key struct{ model, id string }

type entry struct {
	data    string // canonical JSON
	deleted bool
}

func (e *entry) describe() string {
	switch {
	case e == nil:
		return "absent"
	case e.deleted:
		return "deleted"
	}
	return clip([]byte(e.data))
}

// state is what the host would hold after applying changes in order.
type state map[key]*entry

func newState(changes []Change) state {
	s := state{}
	s.apply(changes)
	return s
}

func (s state) apply(changes []Change) {
	for _, c := range changes {
		k := key{c.Model, c.ID}
		if c.Model == "" && c.Delete {
			// DeleteByID: as the host does, delete the id in every model
			// that holds it; an id no model holds changes nothing.
			for k, e := range s {
				if k.id == c.ID && !e.deleted {
					s[k] = &entry{deleted: true}
				}
			}
			continue
		}
		if c.Delete {
			s[k] = &entry{deleted: true}
		} else {
			s[k] = &entry{data: canonical(c.Data)}
		}
	}
}

func (s state) keys() []key {
	out := make([]key, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].model != out[j].model {
			return out[i].model < out[j].model
		}
		return out[i].id < out[j].id
	})
	return out
}

// diffStates reports records of want that got lacks or holds differently,
// and records got has that want lacks; it returns true when they match.
func diffStates(t suiteT, label string, want, got state, limit int) bool {
	t.Helper()
	n := 0
	report := func(f string, args ...any) {
		if n++; n <= limit {
			t.Errorf(f, args...)
		}
	}
	for _, k := range want.keys() {
		w, g := want[k], got[k]
		switch {
		case g == nil:
			report("%s: %s %q is missing (lost)", label, k.model, k.id)
		case g.deleted != w.deleted || g.data != w.data:
			report("%s: %s %q differs:\n  got  %s\n  want %s", label, k.model, k.id, g.describe(), w.describe())
		}
	}
	for _, k := range got.keys() {
		if want[k] == nil {
			report("%s: %s %q appears that the reference run did not write", label, k.model, k.id)
		}
	}
	if n > limit {
		t.Errorf("%s: ... and %d more differences", label, n-limit)
	}
	return n == 0
}

// canonical re-encodes a JSON value with sorted keys, numbers as written.
// The suite compares the same records over and over (every resume point
// replays runs), so results are remembered, up to canonMemoBytes.
func canonical(b []byte) string {
	canonMu.Lock()
	c, ok := canonMemo[string(b)]
	canonMu.Unlock()
	if ok {
		return c
	}
	c = canonicalize(b)
	canonMu.Lock()
	defer canonMu.Unlock()
	if canonBytes += len(b) + len(c); canonBytes > canonMemoBytes {
		clear(canonMemo)
		canonBytes = len(b) + len(c)
	}
	canonMemo[string(b)] = c
	return c
}

// canonMemoBytes bounds the memory of canonical's memo.
const canonMemoBytes = 64 << 20

var (
	canonMu    sync.Mutex
	canonMemo  = map[string]string{}
	canonBytes int
)

func canonicalize(b []byte) string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return string(b)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return string(b)
	}
	return string(out)
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

func clipCP(cp sdk.Checkpoint) string {
	b, _ := json.Marshal(cp)
	return clip(b)
}

func tbOf(t suiteT) testing.TB { return t.TB() }
