package ui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/synclayer/synclayer/core/engine"
)

// Connections (SPEC §12) in the dashboard: per source with connections, a
// list (tag filter, pages) with the create form, a page per connection
// (Sync now, pause and resume per sync, delete after a confirmation).
// Every action calls the engine method the API's route calls, which
// audits it. A connection's sensitive config fields never reach a page:
// the engine leaves them out of what it returns, and a create form that
// comes back with an error keeps its config keys but not their values.

// Bounds of the connection forms.
const (
	maxConfigRows = 100
	maxTags       = 50
	maxTagKey     = 128
	maxTagValue   = 512
	// configRows is how many empty config rows the create form offers.
	configRows = 4
)

// connSourceRow is a source with connections and its counts by state.
type connSourceRow struct {
	Name, Plugin           string
	Active, NeedsAttention int
	Total                  int
}

// connectionSources lists the sources of a layer that have connections.
func connectionSources(st *engine.LayerStatus) []connSourceRow {
	var out []connSourceRow
	for _, s := range st.Sources {
		if s.Connections == nil {
			continue
		}
		row := connSourceRow{Name: s.Name, Plugin: s.Plugin, Active: s.Connections[engine.ConnectionActive],
			NeedsAttention: s.Connections[engine.ConnectionNeedsAttention]}
		for _, n := range s.Connections {
			row.Total += n
		}
		out = append(out, row)
	}
	return out
}

// hasConnections tells whether a layer has a source with connections: its
// navigation then shows the Connections tab.
func (u *UI) hasConnections(layer string) bool {
	cfg, err := u.eng().LayerConfig(layer)
	if err != nil {
		return false
	}
	for _, s := range cfg.Sources {
		if s.Connections {
			return true
		}
	}
	return false
}

// connectionsIndex lists the layer's sources with connections.
func (u *UI) connectionsIndex(w http.ResponseWriter, r *http.Request) {
	layer := r.PathValue("layer")
	st, err := u.eng().Layer(layer)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	v := u.baseView(r, "Connections · "+layer, "connections")
	v.Data = connectionSources(st)
	u.render(w, r, http.StatusOK, "connections", v)
}

// kv is a key and its value as a page shows it.
type kv struct{ Key, Value string }

func sortedKV[V any](m map[string]V, format func(V) string) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{k, format(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// connRow is a connection of the list.
type connRow struct {
	ID, State, Error string
	Tags             []kv
	Created, Updated time.Time
	NeedsAttention   bool
}

// connForm is the create form's content: what was typed, to fill it
// again after an error. Config values are never kept (a sensitive one
// would be rendered); config keys are.
type connForm struct {
	ID, Metadata, Tags string
	ConfigJSON         bool // the JSON textarea was used: its text is not kept either
	Rows               []kv
	SkipCheck          bool
	// Error is what was wrong; Dropped says the config values must be
	// entered again.
	Error   string
	Dropped bool
}

func emptyForm() connForm {
	return connForm{Rows: make([]kv, configRows)}
}

type connListData struct {
	Source string
	Counts connSourceRow
	Rows   []connRow
	// Tags is the tag filter as typed; Limit the page size.
	Tags   string
	Limit  int
	Limits []int
	// Next is the link to the next page ("" at the end); First the link
	// back to the first page (on later pages).
	Next, First string
	Form        connForm
}

// connectionList lists a source's connections, a page at a time, with
// the create form.
func (u *UI) connectionList(w http.ResponseWriter, r *http.Request) {
	u.renderConnectionList(w, r, http.StatusOK, emptyForm())
}

func (u *UI) renderConnectionList(w http.ResponseWriter, r *http.Request, status int, form connForm) {
	layer, source := r.PathValue("layer"), r.PathValue("source")
	q := r.URL.Query()
	d := connListData{Source: source, Tags: strings.TrimSpace(q.Get("tags")), Limit: 25, Limits: recordLimits, Form: form}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && slices.Contains(recordLimits, n) {
		d.Limit = n
	}
	tags, err := parseTags(d.Tags)
	if err != nil {
		u.fail(w, r, http.StatusBadRequest, "Tag filter: "+err.Error())
		return
	}
	after := q.Get("after")
	if len(after) > 128 {
		u.fail(w, r, http.StatusBadRequest, "after is a connection id (at most 128 characters).")
		return
	}
	conns, next, err := u.eng().ListConnections(layer, source, engine.ListOptions{Tags: tags, After: after, Limit: d.Limit})
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	if st, err := u.eng().Layer(layer); err == nil {
		for _, s := range connectionSources(st) {
			if s.Name == source {
				d.Counts = s
			}
		}
	}
	for _, c := range conns {
		d.Rows = append(d.Rows, connRow{ID: c.ID, State: c.State, Error: c.Error, NeedsAttention: c.State == engine.ConnectionNeedsAttention,
			Tags: sortedKV(c.Tags, func(s string) string { return s }), Created: c.CreatedAt, Updated: c.UpdatedAt})
	}
	page := func(after string) string {
		p := url.Values{}
		if d.Tags != "" {
			p.Set("tags", d.Tags)
		}
		if d.Limit != 25 {
			p.Set("limit", strconv.Itoa(d.Limit))
		}
		if after != "" {
			p.Set("after", after)
		}
		return "?" + p.Encode()
	}
	if next != "" {
		d.Next = page(next)
	}
	if after != "" {
		d.First = page("")
	}
	v := u.baseView(r, source+" connections · "+layer, "connections")
	v.Data = d
	u.render(w, r, status, "connlist", v)
}

// parseTags reads "key=value" pairs separated by commas or new lines.
func parseTags(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("write each tag as key=value (like plan=pro), separated by commas or new lines; %q is not", truncate(part, 40))
		}
		if len(k) > maxTagKey || len(v) > maxTagValue {
			return nil, fmt.Errorf("a tag's key is at most %d characters and its value at most %d", maxTagKey, maxTagValue)
		}
		out[k] = v
		if len(out) > maxTags {
			return nil, fmt.Errorf("at most %d tags", maxTags)
		}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// configValue is the JSON of a value typed in a config row: JSON when it
// is a JSON number, boolean, null, list, object or quoted string; else
// the text as a string.
func configValue(s string) json.RawMessage {
	t := strings.TrimSpace(s)
	if t != "" && json.Valid([]byte(t)) {
		return json.RawMessage(t)
	}
	b, _ := json.Marshal(s)
	return b
}

// formConfig reads the config of the create form: the JSON textarea (an
// object), then the key/value rows over it.
func formConfig(f url.Values, form *connForm) (json.RawMessage, error) {
	cfg := map[string]json.RawMessage{}
	if t := strings.TrimSpace(f.Get("config_json")); t != "" {
		form.ConfigJSON = true
		if err := json.Unmarshal([]byte(t), &cfg); err != nil || cfg == nil || t[0] != '{' {
			return nil, errors.New(`the config JSON must be a JSON object of the connector's fields, like {"api_key": "…"}`)
		}
	}
	keys, values := f["config_key"], f["config_value"]
	if len(keys) > maxConfigRows {
		return nil, fmt.Errorf("at most %d config rows; use the JSON field for more", maxConfigRows)
	}
	for i, k := range keys {
		k = strings.TrimSpace(k)
		val := ""
		if i < len(values) {
			val = values[i]
		}
		if k == "" {
			if strings.TrimSpace(val) != "" {
				return nil, fmt.Errorf("config row %d has a value but no field name", i+1)
			}
			continue
		}
		form.Rows = append(form.Rows, kv{Key: k})
		cfg[k] = configValue(val)
	}
	if len(cfg) == 0 {
		return nil, nil
	}
	return json.Marshal(cfg)
}

// createConnection creates a connection as POST
// /v1/layers/{layer}/sources/{source}/connections does (the engine runs
// the connector's check and audits it), then opens its page. A refusal
// shows the list page again with the form, its error and what was typed
// (but no config value).
func (u *UI) createConnection(w http.ResponseWriter, r *http.Request) {
	layer, source := r.PathValue("layer"), r.PathValue("source")
	f := r.PostForm
	form := connForm{ID: strings.TrimSpace(f.Get("id")), Metadata: strings.TrimSpace(f.Get("metadata")),
		Tags: strings.TrimSpace(f.Get("tags")), SkipCheck: f.Get("skip_check") != ""}
	refuse := func(status int, msg string) {
		form.Error = msg
		form.Dropped = len(form.Rows) > 0 || form.ConfigJSON
		for len(form.Rows) < configRows {
			form.Rows = append(form.Rows, kv{})
		}
		u.renderConnectionList(w, r, status, form)
	}
	cfg, err := formConfig(f, &form)
	if err != nil {
		refuse(http.StatusBadRequest, "Config: "+err.Error()+".")
		return
	}
	in := engine.ConnectionInput{ID: form.ID, Config: cfg, NoCheck: form.SkipCheck}
	if form.Metadata != "" {
		in.Metadata = json.RawMessage(form.Metadata)
		if !json.Valid(in.Metadata) {
			refuse(http.StatusBadRequest, `Metadata must be a JSON object, like {"customer": "Acme"}.`)
			return
		}
	}
	if in.Tags, err = parseTags(form.Tags); err != nil {
		refuse(http.StatusBadRequest, "Tags: "+err.Error()+".")
		return
	}
	c, err := u.eng().CreateConnection(r.Context(), layer, source, in)
	var ce *engine.CheckError
	switch {
	case err == nil:
		redirect(w, r, connectionPath(layer, source, c.ID)+"?ok=conn-created")
	case errors.As(err, &ce):
		refuse(http.StatusUnprocessableEntity, "The connector's check refused the connection: "+ce.Message+
			" Nothing was stored. Correct the config, or tick “Skip the connector's check” to create it anyway.")
	case errors.Is(err, engine.ErrInvalid):
		refuse(http.StatusBadRequest, upperFirst(strings.TrimPrefix(err.Error(), engine.ErrInvalid.Error()+": "))+".")
	case errors.Is(err, engine.ErrExists):
		refuse(http.StatusConflict, "There is a connection "+form.ID+" of "+source+" already: choose another id, or open it from the list.")
	case errors.Is(err, engine.ErrNotReady):
		refuse(http.StatusServiceUnavailable, upperFirst(err.Error())+". Try again in a few seconds.")
	case errors.Is(err, engine.ErrUnknownLayer), errors.Is(err, engine.ErrUnknownSource):
		u.engineError(w, r, err)
	default:
		// The check could not run (the plugin crashed, timed out): the
		// engine's message has the connection's secrets redacted.
		u.log.Error("dashboard: create connection failed", "layer", layer, "source", source, "connection", form.ID, "error", err)
		refuse(http.StatusBadGateway, "The connection could not be created: "+err.Error()+". Nothing was stored.")
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// connectionPath is a connection's page.
func connectionPath(layer, source, id string) string {
	return "/ui/layers/" + url.PathEscape(layer) + "/connections/" + url.PathEscape(source) + "/" + url.PathEscape(id)
}

// connSyncRow is one sync of a connection.
type connSyncRow struct {
	Name    string
	Models  []string
	State   string
	Every   string
	Next    *time.Time
	Last    *runRow
	Records []kv
}

type connPageData struct {
	C        *engine.Connection
	Config   []kv
	Metadata string
	Tags     []kv
	Syncs    []connSyncRow
	// S carries what the run box and Sync now need: the layer's name,
	// the run a Sync now started (?run=) and the newest event.
	S *layerSummary
	// Path is the connection's page (the forms' way back).
	Path string
}

// connectionPage shows a connection: its non-sensitive config, metadata,
// tags and each sync's state, schedule, next and last run and records.
func (u *UI) connectionPage(w http.ResponseWriter, r *http.Request) {
	layer, source, id := r.PathValue("layer"), r.PathValue("source"), r.PathValue("id")
	c, err := u.eng().GetConnection(layer, source, id)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	db, err := u.eng().Store(layer)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	seq, err := db.LastEventSeq()
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	d := connPageData{C: c, S: &layerSummary{Name: layer, LastSeq: seq}, Path: connectionPath(layer, source, id),
		Config: sortedKV(c.Config, func(v any) string {
			b, err := json.Marshal(v)
			if err != nil {
				return "?"
			}
			return string(b)
		}),
		Tags: sortedKV(c.Tags, func(s string) string { return s })}
	var pretty bytes.Buffer
	if json.Indent(&pretty, c.Metadata, "", "  ") == nil {
		d.Metadata = pretty.String()
	}
	if run := r.URL.Query().Get("run"); run != "" {
		if rs, err := u.eng().Run(layer, run); err == nil {
			row := toRunRow(rs.Run)
			d.S.Run = &row
		}
	}
	for _, y := range c.Syncs {
		row := connSyncRow{Name: y.Name, Models: y.Models, State: y.State, Every: y.Every, Next: y.NextRunAt,
			Records: sortedKV(y.Records, func(n int64) string { return strconv.FormatInt(n, 10) })}
		if y.LastRun != nil {
			last := toRunRow(y.LastRun)
			row.Last = &last
		}
		d.Syncs = append(d.Syncs, row)
	}
	v := u.baseView(r, id+" · "+source+" · "+layer, "connections")
	v.Data = d
	u.render(w, r, http.StatusOK, "connection", v)
}

func (u *UI) pauseConnection(w http.ResponseWriter, r *http.Request)  { u.setConnPaused(w, r, true) }
func (u *UI) resumeConnection(w http.ResponseWriter, r *http.Request) { u.setConnPaused(w, r, false) }

// setConnPaused pauses or resumes the schedule of one sync of a
// connection (or all of them, with no sync), as POST
// …/connections/{id}/syncs/{sync}/pause does (the engine audits it).
func (u *UI) setConnPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	layer, source, id := r.PathValue("layer"), r.PathValue("source"), r.PathValue("id")
	if err := u.eng().PauseConnection(layer, source, id, r.PostForm.Get("sync"), paused); err != nil {
		u.engineError(w, r, err)
		return
	}
	ok := "resumed"
	if paused {
		ok = "paused"
	}
	redirect(w, r, connectionPath(layer, source, id)+"?ok="+ok)
}

// deleteConfirm is the second step of deleting a connection: a page that
// names it and what goes with it, where its id is typed to confirm.
func (u *UI) deleteConfirm(w http.ResponseWriter, r *http.Request) {
	u.renderDeleteConfirm(w, r, http.StatusOK, "")
}

func (u *UI) renderDeleteConfirm(w http.ResponseWriter, r *http.Request, status int, msg string) {
	layer, source, id := r.PathValue("layer"), r.PathValue("source"), r.PathValue("id")
	c, err := u.eng().GetConnection(layer, source, id)
	if err != nil {
		u.engineError(w, r, err)
		return
	}
	var records int64
	for _, y := range c.Syncs {
		for _, n := range y.Records {
			records += n
		}
	}
	v := u.baseView(r, "Delete "+id+" · "+source+" · "+layer, "connections")
	v.Error = msg
	v.Data = struct {
		C       *engine.Connection
		Records int64
		Path    string
	}{c, records, connectionPath(layer, source, id)}
	u.render(w, r, status, "conndelete", v)
}

// deleteConnection deletes a connection whose id was typed to confirm, as
// DELETE …/connections/{id} does (the engine audits it).
func (u *UI) deleteConnection(w http.ResponseWriter, r *http.Request) {
	layer, source, id := r.PathValue("layer"), r.PathValue("source"), r.PathValue("id")
	if strings.TrimSpace(r.PostForm.Get("confirm")) != id {
		u.renderDeleteConfirm(w, r, http.StatusBadRequest, "Type the connection's id, "+id+", to confirm: nothing was deleted.")
		return
	}
	if _, err := u.eng().DeleteConnection(r.Context(), layer, source, id); err != nil {
		u.engineError(w, r, err)
		return
	}
	redirect(w, r, "/ui/layers/"+url.PathEscape(layer)+"/connections/"+url.PathEscape(source)+"?ok=conn-deleted")
}
