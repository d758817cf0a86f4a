package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/store"
)

// Limits of connection requests (besides the 1 MiB body).
const (
	// MaxConnectionsLimit bounds one page of GET …/connections.
	MaxConnectionsLimit = 1000
	// MaxTags bounds the tags of a connection, and the tag filters of a list.
	MaxTags = 64
	// MaxTagKey and MaxTagValue bound a tag's key and value, in bytes.
	MaxTagKey   = 128
	MaxTagValue = 1024
)

// connectionRoutes registers the connections of SPEC §12: instances of a
// source created at runtime, each with its own config, schedule and
// records.
func (s *Server) connectionRoutes() {
	const base = "/v1/layers/{layer}/sources/{source}/connections"
	s.handle("POST "+base, s.createConnection)
	s.handle("GET "+base, s.listConnections)
	s.handle("GET "+base+"/{id}", s.getConnection)
	s.handle("PATCH "+base+"/{id}", s.updateConnection)
	s.handle("DELETE "+base+"/{id}", s.deleteConnection)
	s.handle("POST "+base+"/{id}/syncs", s.triggerConnection)
	s.handle("POST "+base+"/{id}/syncs/{sync}/pause", s.pauseConnection)
	s.handle("POST "+base+"/{id}/syncs/{sync}/resume", s.resumeConnection)
}

// connectionView is a connection as the API shows it: the engine's view
// (sensitive config fields already left out) with host internals scrubbed
// from its error texts.
func connectionView(c *engine.Connection) *engine.Connection {
	v := *c
	v.Error = scrubInternals(v.Error)
	if len(c.Syncs) > 0 {
		v.Syncs = make([]engine.ConnectionSync, len(c.Syncs))
		for i, y := range c.Syncs {
			if y.LastRun != nil {
				run := *y.LastRun
				run.Error = scrubInternals(run.Error)
				y.LastRun = &run
			}
			v.Syncs[i] = y
		}
	}
	return &v
}

// checkTags answers 400 on tags beyond the limits.
func checkTags(w http.ResponseWriter, tags map[string]*string) bool {
	if len(tags) > MaxTags {
		writeError(w, http.StatusBadRequest, "bad_tags", fmt.Sprintf("a connection has at most %d tags; this request has %d", MaxTags, len(tags)))
		return false
	}
	for k, v := range tags {
		if k == "" || len(k) > MaxTagKey {
			writeError(w, http.StatusBadRequest, "bad_tags", fmt.Sprintf("a tag key is 1 to %d bytes", MaxTagKey))
			return false
		}
		if v != nil && len(*v) > MaxTagValue {
			writeError(w, http.StatusBadRequest, "bad_tags", fmt.Sprintf("tag %q: a tag value is at most %d bytes", k, MaxTagValue))
			return false
		}
	}
	return true
}

func (s *Server) createConnection(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ID       string            `json:"id"`
		Config   json.RawMessage   `json:"config"`
		Metadata json.RawMessage   `json:"metadata"`
		Tags     map[string]string `json:"tags"`
		Every    map[string]string `json:"every"`
		Check    *bool             `json:"check"`
	}
	if !s.decodeBody(w, r, &body) {
		return
	}
	if body.ID == "" {
		writeError(w, http.StatusBadRequest, "invalid", `the body needs "id": the connection's id, 1 to 128 characters of A-Z, a-z, 0-9 and . _ : @ -`)
		return
	}
	tags := make(map[string]*string, len(body.Tags))
	for k, v := range body.Tags {
		tags[k] = &v
	}
	if !checkTags(w, tags) {
		return
	}
	c, err := s.eng().CreateConnection(r.Context(), r.PathValue("layer"), r.PathValue("source"), engine.ConnectionInput{
		ID: body.ID, Config: body.Config, Metadata: body.Metadata, Tags: body.Tags, Every: body.Every,
		NoCheck: body.Check != nil && !*body.Check,
	})
	if err != nil {
		s.engineError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, connectionView(c))
}

// listConnections answers GET …/connections?tag.<k>=<v>&after=&limit=:
// connections in id order, those with every tag given, after the id
// `after`; `next` is the id to pass as `after` for the next page (null at
// the end).
func (s *Server) listConnections(w http.ResponseWriter, r *http.Request) {
	limit, ok := intParam(w, r, "limit", DefaultLimit, 1, MaxConnectionsLimit)
	if !ok {
		return
	}
	q := r.URL.Query()
	tags := map[string]string{}
	for k, vs := range q {
		key, ok := strings.CutPrefix(k, "tag.")
		if !ok {
			continue
		}
		if key == "" || len(vs) != 1 {
			writeError(w, http.StatusBadRequest, "bad_tags", "filter by tags with tag.<key>=<value>, each key once, like ?tag.plan=pro")
			return
		}
		tags[key] = vs[0]
	}
	if len(tags) > MaxTags {
		writeError(w, http.StatusBadRequest, "bad_tags", fmt.Sprintf("at most %d tag filters", MaxTags))
		return
	}
	conns, next, err := s.eng().ListConnections(r.PathValue("layer"), r.PathValue("source"),
		engine.ListOptions{Tags: tags, After: q.Get("after"), Limit: int(limit)})
	if err != nil {
		s.engineError(w, err)
		return
	}
	out := make([]*engine.Connection, len(conns))
	for i, c := range conns {
		out[i] = connectionView(c)
	}
	var nextID *string
	if next != "" {
		nextID = &next
	}
	writeJSON(w, http.StatusOK, map[string]any{"connections": out, "next": nextID})
}

func (s *Server) getConnection(w http.ResponseWriter, r *http.Request) {
	c, err := s.eng().GetConnection(r.PathValue("layer"), r.PathValue("source"), r.PathValue("id"))
	if err != nil {
		s.engineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, connectionView(c))
}

func (s *Server) updateConnection(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Config   json.RawMessage    `json:"config"`
		Metadata json.RawMessage    `json:"metadata"`
		Tags     map[string]*string `json:"tags"`
		Every    map[string]*string `json:"every"`
	}
	if !s.decodeBody(w, r, &body) {
		return
	}
	if !checkTags(w, body.Tags) {
		return
	}
	// every: a duration sets a sync's override; null or "" drops it.
	var every map[string]string
	if len(body.Every) > 0 {
		every = make(map[string]string, len(body.Every))
		for k, v := range body.Every {
			every[k] = ""
			if v != nil {
				every[k] = *v
			}
		}
	}
	c, err := s.eng().UpdateConnection(r.PathValue("layer"), r.PathValue("source"), r.PathValue("id"),
		engine.ConnectionPatch{Config: body.Config, Metadata: body.Metadata, Tags: body.Tags, Every: every})
	if err != nil {
		s.engineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, connectionView(c))
}

// deleteConnection answers with the revision that soft-deleted the
// connection's records.
func (s *Server) deleteConnection(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rev, err := s.eng().DeleteConnection(r.Context(), r.PathValue("layer"), r.PathValue("source"), id)
	if err != nil {
		s.engineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": id, "revision": rev.Number})
}

// triggerConnection queues a run of one connection: all its syncs, or one
// (`sync`), from its checkpoints or from scratch (`reset`).
func (s *Server) triggerConnection(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Sync  string `json:"sync"`
		Reset bool   `json:"reset"`
	}
	if !s.decodeBody(w, r, &body) {
		return
	}
	source, id := r.PathValue("source"), r.PathValue("id")
	run, err := s.eng().Trigger(r.PathValue("layer"), engine.TriggerRequest{Source: source, Sync: body.Sync, Connection: id, Reset: body.Reset, Trigger: engine.TriggerManual})
	if err != nil {
		s.engineError(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"run": run})
}

func (s *Server) pauseConnection(w http.ResponseWriter, r *http.Request) {
	s.setConnectionPaused(w, r, true)
}

func (s *Server) resumeConnection(w http.ResponseWriter, r *http.Request) {
	s.setConnectionPaused(w, r, false)
}

func (s *Server) setConnectionPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	err := s.eng().PauseConnection(r.PathValue("layer"), r.PathValue("source"), r.PathValue("id"), r.PathValue("sync"), paused)
	if err != nil {
		s.engineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"paused": paused})
}

// connectionScope narrows a records query to what an api_token limited to
// connections may read: the connection named (one of the token's), or the
// token's only connection when none is named. It answers 403 otherwise.
func (sc readScope) connectionScope(w http.ResponseWriter, q *store.Query) bool {
	if sc.all || len(sc.connections) == 0 {
		return true
	}
	if q.Connection == "" && len(sc.connections) == 1 {
		q.Connection = sc.connections[0]
		return true
	}
	for _, c := range sc.connections {
		if q.Connection != "" && c == q.Connection {
			return true
		}
	}
	names := append([]string(nil), sc.connections...)
	sort.Strings(names)
	writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("token %q reads only the connections %s: pass connection= one of them", sc.token, strings.Join(names, ", ")))
	return false
}
