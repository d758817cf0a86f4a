package ui

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/internal/redact"
	"github.com/synclayer/synclayer/core/internal/sse"
	"github.com/synclayer/synclayer/core/store"
)

// flashes are the notices an action leaves for the page it returns to,
// by key (?ok=): fixed texts, so no request can put words on a page.
var flashes = map[string]string{
	"paused":       "The sync's schedule is paused. Manual and webhook runs still go.",
	"resumed":      "The sync's schedule runs again.",
	"pinned":       "The revision is pinned: readers see it until you unpin.",
	"unpinned":     "Unpinned: readers see the newest revision again.",
	"deleted":      "The hook is deleted; its URL answers 404 from now on.",
	"redelivered":  "The delivery is due again; its attempt shows here once made.",
	"queued":       "The run is queued.",
	"conn-created": "The connection is created; its first full run is queued.",
	"conn-deleted": "The connection is deleted, and its records with it in a new revision.",
}

func (u *UI) baseView(r *http.Request, title, tab string) view {
	return view{Title: title, Layer: r.PathValue("layer"), Tab: tab, Flash: flashes[r.URL.Query().Get("ok")]}
}

// runRow is a run as the pages show it.
type runRow struct {
	ID, State, Trigger string
	Revision           int64
	Queued             time.Time
	Started, Finished  *time.Time
	Duration           time.Duration
	Error              string
	Changes            int64
	Syncs              []store.SyncRef
	Attempt            int
}

func toRunRow(r *store.Run) runRow {
	row := runRow{ID: r.ID, State: r.State, Trigger: r.Trigger, Revision: r.Revision, Queued: r.QueuedAt,
		Started: r.StartedAt, Finished: r.FinishedAt, Error: redact.Internals(r.Error), Syncs: r.Syncs, Attempt: r.Attempt}
	if r.StartedAt != nil && r.FinishedAt != nil {
		row.Duration = r.FinishedAt.Sub(*r.StartedAt)
	}
	for _, models := range r.Counts {
		for _, c := range models {
			row.Changes += c.Changed()
		}
	}
	return row
}

// syncRow is one sync of a layer with its state, last and next run.
type syncRow struct {
	Source, Plugin, Sync string
	Models               []string
	State                string
	Last                 *runRow
	Next                 *time.Time
	// Connections: the source has connections, whose runs and schedules
	// are each their own (the connection pages show them).
	Connections bool
}

// layerSummary is what the overview shows of a layer.
type layerSummary struct {
	Name     string
	Revision int64
	Pinned   *int64
	Syncs    []syncRow
	Runs     []runRow // newest first
	// LastSeq is the newest event's number: live updates follow from it.
	LastSeq uint64
	// Run is the run a "Sync now" started (?run=), when the page shows one.
	Run *runRow
	// Connections are the sources with connections, with their counts
	// of connections by state.
	Connections []connSourceRow
}

// recentRuns is how many runs a layer's page reads for last runs and
// the durations chart.
const recentRuns = 200

func (u *UI) summary(name string) (*layerSummary, error) {
	e := u.eng()
	st, err := e.Layer(name)
	if err != nil {
		return nil, err
	}
	db, err := e.Store(name)
	if err != nil {
		return nil, err
	}
	next, err := e.NextRuns(name)
	if err != nil {
		return nil, err
	}
	runs, err := db.RecentRuns(recentRuns)
	if err != nil {
		return nil, err
	}
	seq, err := db.LastEventSeq()
	if err != nil {
		return nil, err
	}
	sum := &layerSummary{Name: name, Revision: st.Revision, Pinned: st.Pinned, LastSeq: seq, Connections: connectionSources(st)}
	last := map[store.SyncRef]*runRow{}
	for _, r := range runs {
		row := toRunRow(r)
		sum.Runs = append(sum.Runs, row)
		for _, ref := range r.Syncs {
			if last[ref] == nil {
				last[ref] = &row
			}
		}
	}
	for _, src := range st.Sources {
		for _, y := range src.Syncs {
			ref := store.SyncRef{Source: src.Name, Sync: y.Name}
			row := syncRow{Source: src.Name, Plugin: src.Plugin, Sync: y.Name, Models: y.Models, State: y.State, Last: last[ref], Connections: src.Connections != nil}
			if t, ok := next[ref]; ok {
				row.Next = &t
			}
			sum.Syncs = append(sum.Syncs, row)
		}
	}
	return sum, nil
}

func (u *UI) overview(w http.ResponseWriter, r *http.Request) {
	var layers []*layerSummary
	for _, name := range u.eng().LayerNames() {
		s, err := u.summary(name)
		if err != nil {
			u.engineError(w, r, err)
			return
		}
		s.Runs = nil
		if id := r.URL.Query().Get("run"); id != "" {
			if run, err := u.eng().Run(name, id); err == nil {
				row := toRunRow(run.Run)
				s.Run = &row
			}
		}
		layers = append(layers, s)
	}
	v := u.baseView(r, "Overview", "")
	v.Data = layers
	u.render(w, r, http.StatusOK, "overview", v)
}

// layerData is the layer page.
type layerData struct {
	S         *layerSummary
	Records   *chart
	Durations *chart
	// CountsRevision is the revision the records chart counts.
	CountsRevision int64
}

func (u *UI) layerPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("layer")
	sum, err := u.summary(name)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	if id := r.URL.Query().Get("run"); id != "" {
		if run, err := u.eng().Run(name, id); err == nil {
			row := toRunRow(run.Run)
			sum.Run = &row
		}
	}
	data := layerData{S: sum, Durations: durationsChart(sum.Runs)}
	db, err := u.eng().Store(name)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	rev, counts, err := u.counts.get(name, db)
	if err != nil && !errors.Is(err, store.ErrRevisionGone) {
		u.engineError(w, r, err)
		return
	}
	data.CountsRevision, data.Records = rev, recordsChart(counts)
	if len(sum.Runs) > 20 {
		sum.Runs = sum.Runs[:20]
	}
	v := u.baseView(r, name, "overview")
	v.Data = data
	u.render(w, r, http.StatusOK, "layer", v)
}

// back is where a form returns to: its "back" field when that is a page
// of the dashboard, else the layer's page.
func back(r *http.Request) string {
	b := r.PostForm.Get("back")
	if b == "" || safeNext(b) != b {
		return "/ui/layers/" + url.PathEscape(r.PathValue("layer"))
	}
	return b
}

func withParam(path, key, value string) string {
	u, err := url.Parse(path)
	if err != nil {
		return path
	}
	q := u.Query()
	q.Set(key, value)
	for _, k := range []string{"ok", "run"} {
		if k != key {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// wantsJSON: the page's script sent the form and reads the answer.
func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

// syncNow triggers a run of the layer, a source, one sync or a
// connection's syncs, as POST /v1/layers/{layer}/syncs (and
// …/connections/{id}/syncs) does (the engine audits it). The page's script
// gets {"run", "after"} and follows the run live from event after;
// without script the browser returns to the page, which shows the run.
func (u *UI) syncNow(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	db, err := u.eng().Store(layer)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	after, err := db.LastEventSeq()
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	id, err := u.eng().Trigger(layer, engine.TriggerRequest{Source: r.PostForm.Get("source"), Sync: r.PostForm.Get("sync"),
		Connection: r.PostForm.Get("connection"), Trigger: engine.TriggerManual})
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			status := http.StatusInternalServerError
			switch {
			case errors.Is(err, engine.ErrUnknownLayer), errors.Is(err, engine.ErrUnknownSource), errors.Is(err, engine.ErrUnknownSync),
				errors.Is(err, engine.ErrUnknownConnection):
				status = http.StatusNotFound
			case errors.Is(err, engine.ErrNotReady):
				status = http.StatusServiceUnavailable
			default:
				u.log.Error("dashboard: sync now failed", "layer", layer, "error", err)
				err = errors.New("the run could not be queued; the server log has the details")
			}
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"run": id, "after": after, "layer": layer,
			"url": "/ui/layers/" + url.PathEscape(layer) + "/runs/" + url.PathEscape(id)})
		return
	}
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	redirect(w, r, withParam(back(r), "run", id))
}

func (u *UI) pause(w http.ResponseWriter, r *http.Request)  { u.setPaused(w, r, true) }
func (u *UI) resume(w http.ResponseWriter, r *http.Request) { u.setPaused(w, r, false) }

func (u *UI) setPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	f, ok := u.eng().Resume, "resumed"
	if paused {
		f, ok = u.eng().Pause, "paused"
	}
	if err := f(r.PathValue("layer"), r.PostForm.Get("source"), r.PostForm.Get("sync")); err != nil {
		u.engineError(w, r, err)
		return
	}
	redirect(w, r, withParam(back(r), "ok", ok))
}

func (u *UI) runPage(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	run, err := u.eng().Run(layer, r.PathValue("run"))
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	type countRow struct {
		Source, Model           string
		Added, Updated, Deleted int64
	}
	var counts []countRow
	for src, models := range run.Counts {
		for m, c := range models {
			counts = append(counts, countRow{src, m, c.Added, c.Updated, c.Deleted})
		}
	}
	sort.Slice(counts, func(i, j int) bool {
		return counts[i].Source+"\x00"+counts[i].Model < counts[j].Source+"\x00"+counts[j].Model
	})
	v := u.baseView(r, "Run "+run.ID, "overview")
	v.Data = struct {
		Run      runRow
		Received int64
		Counts   []countRow
	}{toRunRow(run.Run), run.Received, counts}
	u.render(w, r, http.StatusOK, "run", v)
}

// eventsPage is how many events the activity page lists.
const eventsPage = 100

func (u *UI) activity(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	db, err := u.eng().Store(layer)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	last, err := db.LastEventSeq()
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	top := last
	live := true
	if b := r.URL.Query().Get("before"); b != "" {
		n, err := strconv.ParseUint(b, 10, 63)
		if err != nil || n == 0 {
			u.fail(w, r, http.StatusBadRequest, "before must be an event number (1 or more).")
			return
		}
		top, live = min(n-1, last), false
	}
	from := uint64(0)
	if top > eventsPage {
		from = top - eventsPage
	}
	evs, err := db.Events(from, int(top-from))
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	slices.Reverse(evs)
	for i := range evs {
		sse.Scrub(&evs[i])
	}
	var older uint64
	if len(evs) > 0 && evs[len(evs)-1].Seq > 1 && from > 0 {
		older = evs[len(evs)-1].Seq
	}
	v := u.baseView(r, "Activity · "+layer, "activity")
	v.Data = struct {
		Events []store.Event
		Live   bool
		After  uint64
		Older  uint64
	}{evs, live, top, older}
	u.render(w, r, http.StatusOK, "activity", v)
}

// events streams the layer's event log to the page's script (Server-Sent
// Events, as GET /v1/layers/{layer}/events?follow=1 does for apps).
func (u *UI) events(w http.ResponseWriter, r *http.Request) {
	db, err := u.eng().Store(r.PathValue("layer"))
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	after, err := sse.Resume(r, db)
	if err != nil {
		u.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	sse.Serve(w, r, db, after, u.opts.Events)
}

type revisionRow struct {
	Number    int64
	CreatedAt time.Time
	Trigger   string
	Run       string
	Sources   []string
	Changes   int64
	Pinned    bool
	Current   bool
}

func (u *UI) revisions(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	db, err := u.eng().Store(layer)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	cur, _ := db.Current()
	var rows []revisionRow
	for _, rv := range db.Revisions() {
		row := revisionRow{Number: rv.Number, CreatedAt: rv.CreatedAt, Trigger: rv.Trigger, Run: rv.Run, Sources: rv.Sources, Pinned: rv.Pinned, Current: rv.Number == cur.Number}
		for _, models := range rv.Counts {
			for _, c := range models {
				row.Changes += c.Changed()
			}
		}
		rows = append(rows, row)
	}
	v := u.baseView(r, "Revisions · "+layer, "revisions")
	v.Data = struct {
		Revisions []revisionRow
		Pinned    int64
	}{rows, db.Pinned()}
	u.render(w, r, http.StatusOK, "revisions", v)
}

func (u *UI) pin(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	n, err := strconv.ParseInt(r.PostForm.Get("revision"), 10, 64)
	if err != nil || n < 1 {
		u.fail(w, r, http.StatusBadRequest, "revision must be a revision number.")
		return
	}
	if err := u.eng().Pin(layer, n); err != nil {
		u.engineError(w, r, err)
		return
	}
	redirect(w, r, "/ui/layers/"+url.PathEscape(layer)+"/revisions?ok=pinned")
}

func (u *UI) unpin(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	if _, err := u.eng().Unpin(layer); err != nil {
		u.engineError(w, r, err)
		return
	}
	redirect(w, r, "/ui/layers/"+url.PathEscape(layer)+"/revisions?ok=unpinned")
}
