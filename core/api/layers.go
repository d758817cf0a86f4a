package api

import (
	"bufio"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/internal/sse"
	"github.com/synclayer/synclayer/core/store"
)

func (s *Server) listLayers(w http.ResponseWriter, _ *http.Request) {
	type item struct {
		Name     string `json:"name"`
		Revision int64  `json:"revision"`
	}
	out := struct {
		Layers []item `json:"layers"`
	}{Layers: []item{}}
	for _, name := range s.eng().LayerNames() {
		it := item{Name: name}
		if st, err := s.eng().Layer(name); err == nil {
			it.Revision = st.Revision
		}
		out.Layers = append(out.Layers, it)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getLayer(w http.ResponseWriter, r *http.Request) {
	st, err := s.eng().Layer(r.PathValue("layer"))
	if err != nil {
		s.engineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) triggerSync(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Source string `json:"source"`
		Sync   string `json:"sync"`
		Reset  bool   `json:"reset"`
	}
	if !s.decodeBody(w, r, &body) {
		return
	}
	id, err := s.eng().Trigger(r.PathValue("layer"), engine.TriggerRequest{Source: body.Source, Sync: body.Sync, Reset: body.Reset, Trigger: engine.TriggerManual})
	if err != nil {
		s.engineError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"run": id})
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.eng().Run(r.PathValue("layer"), r.PathValue("run"))
	if err != nil {
		s.engineError(w, err)
		return
	}
	view := *run
	view.Error = scrubInternals(view.Error)
	writeJSON(w, http.StatusOK, view)
}

// Limits of list endpoints.
const (
	DefaultLimit   = 100
	MaxLimit       = 10000
	MaxEventsLimit = 1000
	MaxIDs         = 100
)

// intParam parses an optional integer query parameter within [min, max].
func intParam(w http.ResponseWriter, r *http.Request, name string, def, min, max int64) (int64, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min || n > max {
		writeError(w, http.StatusBadRequest, "bad_"+name, name+" must be an integer from "+strconv.FormatInt(min, 10)+" to "+strconv.FormatInt(max, 10))
		return 0, false
	}
	return n, true
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	db, err := s.eng().Store(r.PathValue("layer"))
	if err != nil {
		s.engineError(w, err)
		return
	}
	if f := r.URL.Query().Get("follow"); f == "1" || f == "true" {
		s.followEvents(w, r, db)
		return
	}
	after, ok := intParam(w, r, "after", 0, 0, 1<<62)
	if !ok {
		return
	}
	limit, ok := intParam(w, r, "limit", DefaultLimit, 1, MaxEventsLimit)
	if !ok {
		return
	}
	evs, err := db.Events(uint64(after), int(limit))
	if err != nil {
		s.engineError(w, err)
		return
	}
	for i := range evs {
		sse.Scrub(&evs[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": evs})
}

// parseRecordsQuery turns the query string of GET …/records into a store
// query, answering 400 on bad input.
func parseRecordsQuery(w http.ResponseWriter, r *http.Request) (store.Query, bool) {
	v := r.URL.Query()
	q := store.Query{Model: v.Get("model"), Source: v.Get("source"), Connection: v.Get("connection")}
	limit, ok := intParam(w, r, "limit", DefaultLimit, 1, MaxLimit)
	if !ok {
		return q, false
	}
	q.Limit = int(limit)
	if q.Revision, ok = intParam(w, r, "revision", 0, 1, 1<<62); !ok {
		return q, false
	}
	if c := v.Get("cursor"); c != "" {
		cur, rev, err := store.ParsePosition(c)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_cursor", "cursor is not a cursor this server gave out")
			return q, false
		}
		if rev != 0 {
			// A next_cursor: the walk stays on its revision.
			if q.Revision != 0 && q.Revision != rev {
				writeError(w, http.StatusBadRequest, "bad_cursor", "this next_cursor belongs to revision "+strconv.FormatInt(rev, 10)+", not to the revision asked for")
				return q, false
			}
			q.Revision = rev
		}
		q.After = &cur
	}
	if m := v.Get("modified_after"); m != "" {
		t, err := time.Parse(time.RFC3339Nano, m)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_modified_after", "modified_after must be an RFC 3339 time, like 2026-11-23T07:05:00.000456Z")
			return q, false
		}
		q.ModifiedAfter = t
	}
	if f := v.Get("filter"); f != "" {
		var ok bool
		if q.Actions, ok = parseActions(f); !ok {
			writeError(w, http.StatusBadRequest, "bad_filter", "filter is a comma list of added, updated, deleted")
			return q, false
		}
	}
	if ids := v.Get("ids"); ids != "" {
		if q.Model == "" {
			writeError(w, http.StatusBadRequest, "bad_ids", "ids needs model")
			return q, false
		}
		for _, id := range strings.Split(ids, ",") {
			if id = strings.TrimSpace(id); id != "" {
				q.IDs = append(q.IDs, id)
			}
		}
		if len(q.IDs) > MaxIDs {
			writeError(w, http.StatusBadRequest, "bad_ids", "ids takes at most "+strconv.Itoa(MaxIDs)+" ids")
			return q, false
		}
	}
	return q, true
}

func (s *Server) listRecords(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	scope, ok := s.authRead(w, r, layer)
	if !ok {
		return
	}
	db, err := s.eng().Store(layer)
	if err != nil {
		s.engineError(w, err)
		return
	}
	q, ok := parseRecordsQuery(w, r)
	if !ok {
		return
	}
	if !scope.allows(w, q.Model, q.Source) || !scope.connectionScope(w, &q) {
		return
	}
	if len(q.IDs) > 0 && q.Source != "" && q.Connection == "" && s.hasConnections(layer, q.Source) {
		writeError(w, http.StatusBadRequest, "bad_ids", "source "+strconv.Quote(q.Source)+" has connections: ids needs connection= too (a record id is unique per connection)")
		return
	}
	if len(q.IDs) > 0 && q.Source == "" {
		q.Sources, _ = s.eng().Sources(layer)
	}
	// Records stream out as they are read; the status is settled by the
	// first write, so a query that fails before it still gets its error.
	// Each 64 KiB must reach the client within recordsWriteTimeout: a slow
	// reader must not hold the store's iterator (and with it old tables
	// and value log files) as long as it likes.
	bw := bufio.NewWriterSize(deadlineWriter{w: w, rc: http.NewResponseController(w)}, 64<<10)
	n := 0
	page, err := db.Records(q, func(rec []byte) error {
		if n == 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			bw.WriteString(`{"records":[`)
		} else {
			bw.WriteByte(',')
		}
		n++
		_, err := bw.Write(rec)
		return err
	})
	if err != nil {
		if n == 0 {
			s.engineError(w, err)
			return
		}
		s.log.Error("records query failed while streaming", "layer", layer, "error", err)
		panic(http.ErrAbortHandler)
	}
	if n == 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		bw.WriteString(`{"records":[`)
	}
	bw.WriteString(`],"next_cursor":`)
	if page.Next == "" {
		bw.WriteString("null")
	} else {
		bw.WriteString(`"` + page.Next + `"`)
	}
	bw.WriteString(`,"revision":` + strconv.FormatInt(page.Revision.Number, 10) + "}\n")
	bw.Flush()
}

// revisionView is a revision as the API shows it.
type revisionView struct {
	Revision  int64                              `json:"revision"`
	CreatedAt time.Time                          `json:"created_at"`
	Trigger   string                             `json:"trigger"`
	Run       string                             `json:"run,omitempty"`
	Sources   []string                           `json:"sources"`
	Counts    map[string]map[string]store.Counts `json:"counts"`
	Pinned    bool                               `json:"pinned"`
}

func (s *Server) listRevisions(w http.ResponseWriter, r *http.Request) {
	db, err := s.eng().Store(r.PathValue("layer"))
	if err != nil {
		s.engineError(w, err)
		return
	}
	revs := db.Revisions()
	out := make([]revisionView, len(revs))
	for i, rv := range revs {
		out[i] = revisionView{Revision: rv.Number, CreatedAt: rv.CreatedAt, Trigger: rv.Trigger, Run: rv.Run, Sources: rv.Sources, Counts: rv.Counts, Pinned: rv.Pinned}
		if out[i].Sources == nil {
			out[i].Sources = []string{}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"revisions": out})
}

func (s *Server) listPlugins(w http.ResponseWriter, _ *http.Request) {
	type item struct {
		Name string `json:"name"`
		Path string `json:"path"`
	}
	out := []item{}
	if pm := s.plugins.Load(); pm != nil {
		for _, f := range pm.List() {
			out = append(out, item{Name: f.Name, Path: f.Path})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"plugins": out})
}

func (s *Server) pin(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Revision *int64 `json:"revision"`
	}
	if !s.decodeBody(w, r, &body) {
		return
	}
	if body.Revision == nil || *body.Revision < 1 {
		writeError(w, http.StatusBadRequest, "bad_revision", `the body must be {"revision": N} with N a revision number`)
		return
	}
	if err := s.eng().Pin(r.PathValue("layer"), *body.Revision); err != nil {
		s.engineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"pinned": *body.Revision})
}

func (s *Server) unpin(w http.ResponseWriter, r *http.Request) {
	was, err := s.eng().Unpin(r.PathValue("layer"))
	if err != nil {
		s.engineError(w, err)
		return
	}
	out := map[string]any{"unpinned": nil}
	if was != 0 {
		out["unpinned"] = was
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	limit, ok := intParam(w, r, "limit", DefaultLimit, 1, MaxEventsLimit)
	if !ok {
		return
	}
	entries, err := s.eng().Audit(r.URL.Query().Get("layer"), int(limit))
	if err != nil {
		s.engineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"audit": entries})
}

// recordsWriteTimeout bounds how long one buffered chunk of a records
// answer may take to reach the client.
var recordsWriteTimeout = 30 * time.Second

// deadlineWriter sets the connection's write deadline before each write,
// so that every chunk gets recordsWriteTimeout, however long the answer.
type deadlineWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	// Without support (a test recorder) the write goes on without one.
	_ = d.rc.SetWriteDeadline(time.Now().Add(recordsWriteTimeout))
	return d.w.Write(p)
}

// followEvents answers GET …/events?follow=1: the event log as Server-Sent
// Events, from after Last-Event-ID (a reconnection), else after=, else
// from now on. The stream ends after its lifetime or when the server shuts
// down; EventSource clients reconnect and resume.
func (s *Server) followEvents(w http.ResponseWriter, r *http.Request, db store.Layer) {
	after, err := sse.Resume(r, db)
	if errors.Is(err, sse.ErrBadResume) {
		writeError(w, http.StatusBadRequest, "bad_after", err.Error())
		return
	}
	if err != nil {
		s.engineError(w, err)
		return
	}
	sse.Serve(w, r.WithContext(sse.WithStop(r.Context(), s.streamsStop)), db, after, s.opts.Events)
}

// parseActions reads a records filter: a comma list of added, updated and
// deleted (any case).
func parseActions(f string) (store.ActionMask, bool) {
	var m store.ActionMask
	for _, a := range strings.Split(f, ",") {
		switch strings.ToLower(strings.TrimSpace(a)) {
		case "added":
			m |= store.MaskAdded
		case "updated":
			m |= store.MaskUpdated
		case "deleted":
			m |= store.MaskDeleted
		default:
			return 0, false
		}
	}
	return m, true
}
