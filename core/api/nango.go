package api

// The Nango-compatible API (SPEC §13): the paths, parameters, headers and
// answers of Nango's public API that its Node client (@nangohq/node) uses
// to read records, trigger and inspect syncs and manage connections, so
// that code written for Nango reads from synclayer with only its host and
// key changed. It is a thin adapter: every call goes to the engine, as the
// /v1 API's do. docs/coming-from-nango.md maps each call.
//
// A Provider-Config-Key (provider_config_key) names a source: "<layer>.<source>",
// or the source's name alone where no other layer has a source of that
// name. A source without connections answers to the connection id
// "default". Reads (records, connections, sync status) take the admin
// token or an api_token of the source's layer, within its scopes; changes
// (creating, changing and deleting connections, metadata, triggering,
// starting and pausing syncs) take the admin token.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/store"
)

// Limits of the Nango API.
const (
	// nangoMaxIDs bounds the ids= of one records request.
	nangoMaxIDs = 1000
	// nangoDefaultConnections and nangoMaxConnections page GET /connections.
	nangoDefaultConnections = 1000
	nangoMaxConnections     = 10000
	// nangoMaxStatusConnections bounds the connections one GET
	// /sync/status without connection_id reports.
	nangoMaxStatusConnections = 1000
	// nangoRecentRuns is how many recent runs GET /sync/status looks
	// through for the last run of a source without connections.
	nangoRecentRuns = 500
)

func (s *Server) nangoRoutes() {
	// Each handler authenticates itself: reads take an api_token too.
	s.public("GET /records", s.nangoRecords)
	s.public("GET /records/{$}", s.nangoRecords)
	s.public("GET /connections", s.nangoListConnections)
	s.public("POST /connections", s.nangoCreateConnection)
	s.public("GET /connections/{id}", s.nangoGetConnection)
	s.public("GET /connection/{id}", s.nangoGetConnection)
	s.public("PATCH /connections/{id}", s.nangoPatchConnection)
	s.public("DELETE /connections/{id}", s.nangoDeleteConnection)
	s.public("POST /connections/metadata", s.nangoSetMetadata)
	s.public("PATCH /connections/metadata", s.nangoUpdateMetadata)
	s.public("POST /sync/trigger", s.nangoTrigger)
	s.public("POST /sync/start", s.nangoStart)
	s.public("POST /sync/pause", s.nangoPause)
	s.public("GET /sync/status", s.nangoSyncStatus)
}

// nangoErrorBody is Nango's error envelope: synclayer's, with the
// offending fields listed for bad parameters.
type nangoErrorBody struct {
	Error struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Errors  []nangoFieldError `json:"errors,omitempty"`
	} `json:"error"`
}

type nangoFieldError struct {
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Path    []string `json:"path"`
}

// nangoInvalid answers 400 for a bad parameter: code is invalid_query_params,
// invalid_headers or invalid_body; field names it.
func nangoInvalid(w http.ResponseWriter, code, field, msg string) {
	var b nangoErrorBody
	b.Error.Code, b.Error.Message = code, msg
	if field != "" {
		b.Error.Errors = []nangoFieldError{{Code: "invalid", Message: msg, Path: []string{field}}}
	}
	writeJSON(w, http.StatusBadRequest, b)
}

// nangoSource is what a Provider-Config-Key names.
type nangoSource struct {
	key         string // as the caller wrote it
	layer       string
	source      string
	plugin      string
	connections bool
	cfg         *config.Source
}

// nangoCaller is who calls: the admin (or anyone on an open server), or
// the holder of a bearer token that may be an api_token of some layer.
type nangoCaller struct {
	admin bool
	sum   [sha256.Size]byte // of the bearer token, when not admin
}

// nangoAuth authenticates a request before anything is looked up: the
// admin token, or some bearer token (matched against a layer's api_tokens
// once the layer is known). ok is false when an answer was written.
func (s *Server) nangoAuth(w http.ResponseWriter, r *http.Request) (nangoCaller, bool) {
	if s.token() == "" || s.isAdmin(r) {
		return nangoCaller{admin: true}, true
	}
	got, ok := bearer(r)
	if !ok || got == "" {
		unauthorized(w)
		return nangoCaller{}, false
	}
	return nangoCaller{sum: sha256.Sum256([]byte(got))}, true
}

// token returns the api_token of a layer the caller holds (nil: none).
func (s *Server) nangoToken(c nangoCaller, layer string) *config.APIToken {
	var match *config.APIToken
	for _, t := range s.eng().APITokens(layer) {
		want, err := hex.DecodeString(t.TokenSHA256)
		if err != nil {
			continue
		}
		if subtle.ConstantTimeCompare(c.sum[:], want) == 1 && match == nil {
			match = t
		}
	}
	return match
}

// holdsAnyToken tells whether the caller holds an api_token of any layer.
func (s *Server) holdsAnyToken(c nangoCaller) bool {
	for _, l := range s.eng().LayerNames() {
		if s.nangoToken(c, l) != nil {
			return true
		}
	}
	return false
}

// nangoResolve finds the source a Provider-Config-Key names and checks the
// caller's access to it: write needs the admin token; a read takes an
// api_token of the layer too (returned, for its scopes). ok is false when
// an answer was written.
func (s *Server) nangoResolve(w http.ResponseWriter, c nangoCaller, key string, write bool) (nangoSource, *config.APIToken, bool) {
	src, status, code, msg := s.findSource(key)
	if status != 0 {
		if !c.admin && !s.holdsAnyToken(c) {
			// Say nothing of what exists to a stranger.
			unauthorized(w)
			return src, nil, false
		}
		writeError(w, status, code, msg)
		return src, nil, false
	}
	if c.admin {
		return src, nil, true
	}
	tok := s.nangoToken(c, src.layer)
	if tok == nil {
		unauthorized(w)
		return src, nil, false
	}
	if write {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("api_token %q only reads records, connections and sync status; this call changes something and needs the admin token", tok.Name))
		return src, nil, false
	}
	if len(tok.Sources) > 0 && !slices.Contains(tok.Sources, src.source) {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("api_token %q reads only the sources %s", tok.Name, strings.Join(tok.Sources, ", ")))
		return src, nil, false
	}
	return src, tok, true
}

// findSource resolves a Provider-Config-Key; status is non-zero (with an
// error code and message) when it names no source.
func (s *Server) findSource(key string) (src nangoSource, status int, code, msg string) {
	src.key = key
	if strings.TrimSpace(key) == "" {
		return src, http.StatusBadRequest, "missing_provider_config_key",
			"the Provider-Config-Key (provider_config_key) is required: \"<layer>.<source>\", or the source's name where no other layer has a source of that name"
	}
	found := func(layer string, sc *config.Source) nangoSource {
		return nangoSource{key: key, layer: layer, source: sc.Name, plugin: sc.Plugin, connections: sc.Connections, cfg: sc}
	}
	if layer, name, ok := strings.Cut(key, "."); ok {
		if lc, err := s.eng().LayerConfig(layer); err == nil {
			if sc := lc.Source(name); sc != nil {
				return found(layer, sc), 0, "", ""
			}
		}
		return src, http.StatusNotFound, "unknown_provider_config",
			fmt.Sprintf("no source %q in a layer %q: the Provider-Config-Key is \"<layer>.<source>\" or a source name", name, layer)
	}
	var hits []nangoSource
	for _, layer := range s.eng().LayerNames() {
		if lc, err := s.eng().LayerConfig(layer); err == nil {
			if sc := lc.Source(key); sc != nil {
				hits = append(hits, found(layer, sc))
			}
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], 0, "", ""
	case 0:
		return src, http.StatusNotFound, "unknown_provider_config",
			fmt.Sprintf("no source named %q in any layer: the Provider-Config-Key is \"<layer>.<source>\" or a source name", key)
	}
	names := make([]string, len(hits))
	for i, h := range hits {
		names[i] = h.layer + "." + h.source
	}
	return src, http.StatusBadRequest, "invalid_provider_config_key",
		fmt.Sprintf("several layers have a source named %q: name one as %s", key, strings.Join(names, " or "))
}

// keyOf is the Provider-Config-Key answers show for a source: its name when
// no other layer has a source of that name, else "<layer>.<source>" (as
// the webhooks of format "nango" name it).
func (s *Server) keyOf(layer, source string) string {
	n := 0
	for _, l := range s.eng().LayerNames() {
		if lc, err := s.eng().LayerConfig(l); err == nil && lc.Source(source) != nil {
			n++
		}
	}
	if n == 1 {
		return source
	}
	return layer + "." + source
}

// nangoEngineError maps engine errors to Nango's codes.
func (s *Server) nangoEngineError(w http.ResponseWriter, err error) {
	var ce *engine.CheckError
	switch {
	case errors.As(err, &ce):
		writeError(w, http.StatusUnprocessableEntity, "connection_test_failed", "the connector could not reach the upstream with this connection's config: "+scrubInternals(ce.Message))
	case errors.Is(err, engine.ErrUnknownConnection):
		writeError(w, http.StatusNotFound, "unknown_connection", scrubInternals(err.Error()))
	case errors.Is(err, engine.ErrExists):
		writeError(w, http.StatusConflict, "conflict", err.Error()+": delete it first, or change it with PATCH /connections/{id} and the metadata calls")
	case errors.Is(err, engine.ErrInvalid):
		nangoInvalid(w, "invalid_body", "", err.Error())
	case errors.Is(err, engine.ErrUnknownSync):
		writeError(w, http.StatusNotFound, "unknown_sync", err.Error())
	case errors.Is(err, engine.ErrUnknownSource), errors.Is(err, engine.ErrUnknownLayer):
		writeError(w, http.StatusNotFound, "unknown_provider_config", err.Error())
	default:
		s.engineError(w, err)
	}
}

// nangoConnectionID checks a connection id against a source: an existing
// connection of a source with connections, or "default" for one without.
// ok is false when an answer was written.
func (s *Server) nangoConnectionID(w http.ResponseWriter, src nangoSource, id string) bool {
	if !src.connections {
		if id != engine.NangoConnectionDefault {
			writeError(w, http.StatusNotFound, "unknown_connection", fmt.Sprintf(
				"source %q has no connections: its records answer to the connection id %q", src.source, engine.NangoConnectionDefault))
			return false
		}
		return true
	}
	db, err := s.eng().Store(src.layer)
	if err != nil {
		s.nangoEngineError(w, err)
		return false
	}
	if _, err := db.GetConnection(src.source, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, "unknown_connection", fmt.Sprintf("source %q has no connection %q", src.source, id))
		} else {
			s.nangoEngineError(w, err)
		}
		return false
	}
	return true
}

// tokenAllowsConnection applies an api_token's connections scope.
func tokenAllowsConnection(w http.ResponseWriter, tok *config.APIToken, src nangoSource, id string) bool {
	if tok == nil || len(tok.Connections) == 0 {
		return true
	}
	if !src.connections || !slices.Contains(tok.Connections, id) {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("api_token %q reads only the connections %s", tok.Name, strings.Join(tok.Connections, ", ")))
		return false
	}
	return true
}

// parseNangoTime reads a modified_after: RFC 3339 (with or without
// fractions and zone) or a date.
func parseNangoTime(v string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// nangoRecords answers GET /records: the records of one model of one
// connection, in Nango's shape.
func (s *Server) nangoRecords(w http.ResponseWriter, r *http.Request) {
	c, ok := s.nangoAuth(w, r)
	if !ok {
		return
	}
	key, connID := r.Header.Get("Provider-Config-Key"), r.Header.Get("Connection-Id")
	if key == "" {
		nangoInvalid(w, "invalid_headers", "provider-config-key", "the Provider-Config-Key header is required: \"<layer>.<source>\" or a source name")
		return
	}
	if connID == "" {
		nangoInvalid(w, "invalid_headers", "connection-id", "the Connection-Id header is required (\"default\" for a source without connections)")
		return
	}
	src, tok, ok := s.nangoResolve(w, c, key, false)
	if !ok || !s.nangoConnectionID(w, src, connID) || !tokenAllowsConnection(w, tok, src, connID) {
		return
	}
	q, ok := parseNangoRecordsQuery(w, r)
	if !ok {
		return
	}
	if tok != nil && len(tok.Models) > 0 && !slices.Contains(tok.Models, q.Model) {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("api_token %q reads only the models %s", tok.Name, strings.Join(tok.Models, ", ")))
		return
	}
	q.Source = src.source
	if src.connections {
		q.Connection = connID
	}
	db, err := s.eng().Store(src.layer)
	if err != nil {
		s.nangoEngineError(w, err)
		return
	}
	// As GET /v1/…/records: streamed, each 64 KiB within recordsWriteTimeout.
	bw := bufio.NewWriterSize(deadlineWriter{w: w, rc: http.NewResponseController(w)}, 64<<10)
	n := 0
	start := func() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		bw.WriteString(`{"records":[`)
	}
	page, err := db.Records(q, func(rec []byte) error {
		if n == 0 {
			start()
		} else {
			bw.WriteByte(',')
		}
		n++
		_, err := bw.Write(rec)
		return err
	})
	if err != nil {
		if n == 0 {
			s.nangoEngineError(w, err)
			return
		}
		s.log.Error("records query failed while streaming", "layer", src.layer, "error", err)
		panic(http.ErrAbortHandler)
	}
	if n == 0 {
		start()
	}
	bw.WriteString(`],"next_cursor":`)
	if page.Next == "" {
		bw.WriteString("null")
	} else {
		bw.WriteString(`"` + page.Next + `"`)
	}
	bw.WriteString("}\n")
	bw.Flush()
}

// parseNangoRecordsQuery reads the query of GET /records (Nango's names).
func parseNangoRecordsQuery(w http.ResponseWriter, r *http.Request) (store.Query, bool) {
	v := r.URL.Query()
	q := store.Query{Model: v.Get("model"), Limit: DefaultLimit, Metadata: store.MetadataNango}
	bad := func(field, msg string) (store.Query, bool) {
		nangoInvalid(w, "invalid_query_params", field, msg)
		return q, false
	}
	if q.Model == "" {
		return bad("model", "model is required: the model whose records to read")
	}
	if vr := v.Get("variant"); vr != "" && vr != "base" {
		return bad("variant", "synclayer has no sync variants: leave variant out, or pass \"base\"")
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxLimit {
			return bad("limit", "limit must be an integer from 1 to "+strconv.Itoa(MaxLimit))
		}
		q.Limit = n
	}
	if c := v.Get("cursor"); c != "" {
		cur, rev, err := store.ParsePosition(c)
		if err != nil {
			return bad("cursor", "cursor is not a cursor this server gave out (a next_cursor, or a record's _nango_metadata.cursor)")
		}
		q.Revision = rev // a next_cursor keeps the walk on its revision
		q.After = &cur
	}
	ma, field := v.Get("modified_after"), "modified_after"
	if ma == "" {
		ma, field = v.Get("delta"), "delta" // Nango's former name
	}
	if ma != "" {
		t, ok := parseNangoTime(ma)
		if !ok {
			return bad(field, field+" must be an ISO 8601 time, like 2026-11-23T07:05:00.000456Z")
		}
		q.ModifiedAfter = t
	}
	if f := v.Get("filter"); f != "" {
		var ok bool
		if q.Actions, ok = parseActions(f); !ok {
			return bad("filter", "filter is added, updated or deleted, or a comma list of them")
		}
	}
	for _, id := range v["ids"] {
		if id != "" {
			q.IDs = append(q.IDs, id)
		}
	}
	if len(q.IDs) > nangoMaxIDs {
		return bad("ids", "ids takes at most "+strconv.Itoa(nangoMaxIDs)+" ids")
	}
	return q, true
}

// nangoConnection is a connection as Nango shows it. Credentials are
// never shown.
type nangoConnection struct {
	ConnectionID      string            `json:"connection_id"`
	ProviderConfigKey string            `json:"provider_config_key"`
	Provider          string            `json:"provider"`
	Created           *string           `json:"created,omitempty"`
	CreatedAt         *string           `json:"created_at"`
	UpdatedAt         *string           `json:"updated_at,omitempty"`
	Metadata          json.RawMessage   `json:"metadata"`
	ConnectionConfig  any               `json:"connection_config,omitempty"` // a map, in full views only
	Errors            []nangoConnError  `json:"errors"`
	EndUser           *struct{}         `json:"end_user"`
	Tags              map[string]string `json:"tags"`
}

type nangoConnError struct {
	Type  string `json:"type"`
	LogID string `json:"log_id"`
}

func nangoTimeString(t time.Time) *string {
	s := t.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	return &s
}

// nangoView shapes a connection; full adds what GET /connections/{id}
// shows besides the list's fields.
func (s *Server) nangoView(src nangoSource, c *engine.Connection, full bool) nangoConnection {
	v := nangoConnection{ConnectionID: c.ID, ProviderConfigKey: s.keyOf(src.layer, src.source), Provider: src.plugin,
		CreatedAt: nangoTimeString(c.CreatedAt), Metadata: c.Metadata, Errors: []nangoConnError{}, Tags: c.Tags}
	if len(v.Metadata) == 0 {
		v.Metadata = json.RawMessage("{}")
	}
	if v.Tags == nil {
		v.Tags = map[string]string{}
	}
	if c.State == engine.ConnectionNeedsAttention {
		v.Errors = append(v.Errors, nangoConnError{Type: "auth", LogID: ""})
	}
	if full {
		v.UpdatedAt = nangoTimeString(c.UpdatedAt)
		cc := c.Config
		if cc == nil {
			cc = map[string]any{}
		}
		v.ConnectionConfig = cc
	} else {
		v.Created = v.CreatedAt
	}
	return v
}

// defaultView is the connection "default" of a source without connections:
// created when its layer's oldest kept revision was.
func (s *Server) defaultView(src nangoSource, full bool) nangoConnection {
	v := nangoConnection{ConnectionID: engine.NangoConnectionDefault, ProviderConfigKey: s.keyOf(src.layer, src.source), Provider: src.plugin,
		Metadata: json.RawMessage("{}"), Errors: []nangoConnError{}, Tags: map[string]string{}}
	if db, err := s.eng().Store(src.layer); err == nil {
		if revs := db.Revisions(); len(revs) > 0 {
			v.CreatedAt = nangoTimeString(revs[len(revs)-1].CreatedAt)
			if full {
				v.UpdatedAt = nangoTimeString(revs[0].CreatedAt)
			}
		}
	}
	if full {
		v.ConnectionConfig = map[string]any{}
	} else {
		v.Created = v.CreatedAt
	}
	return v
}

// nangoListConnections answers GET /connections: the connections of every
// source the caller may read (of integrationId's sources when given), with
// Nango's filters.
func (s *Server) nangoListConnections(w http.ResponseWriter, r *http.Request) {
	c, ok := s.nangoAuth(w, r)
	if !ok {
		return
	}
	if !c.admin && !s.holdsAnyToken(c) {
		unauthorized(w)
		return
	}
	v := r.URL.Query()
	limit, page := nangoDefaultConnections, 0
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > nangoMaxConnections {
			nangoInvalid(w, "invalid_query_params", "limit", "limit must be an integer from 1 to "+strconv.Itoa(nangoMaxConnections))
			return
		}
		limit = n
	}
	if p := v.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 1<<20 {
			nangoInvalid(w, "invalid_query_params", "page", "page must be an integer from 0")
			return
		}
		page = n
	}
	tags := map[string]string{}
	for k, vals := range v {
		if name, ok := strings.CutPrefix(k, "tags["); ok && strings.HasSuffix(name, "]") && len(vals) > 0 {
			tags[strings.TrimSuffix(name, "]")] = vals[0]
		}
	}
	connFilter, search := v.Get("connectionId"), v.Get("search")
	out := []nangoConnection{}
	if v.Get("endUserId") != "" || v.Get("endUserOrganizationId") != "" {
		// synclayer keeps no end users: no connection belongs to one.
		writeJSON(w, http.StatusOK, map[string]any{"connections": out})
		return
	}
	var sources []nangoSource
	if ids := v.Get("integrationId"); ids != "" {
		for _, key := range strings.Split(ids, ",") {
			src, _, ok := s.nangoResolve(w, c, strings.TrimSpace(key), false)
			if !ok {
				return
			}
			sources = append(sources, src)
		}
	} else {
		for _, layer := range s.eng().LayerNames() {
			lc, err := s.eng().LayerConfig(layer)
			if err != nil || (!c.admin && s.nangoToken(c, layer) == nil) {
				continue
			}
			for _, sc := range lc.Sources {
				sources = append(sources, nangoSource{layer: layer, source: sc.Name, plugin: sc.Plugin, connections: sc.Connections, cfg: sc})
			}
		}
	}
	skip := page * limit
	take := func(id string) bool {
		if connFilter != "" && id != connFilter {
			return false
		}
		if search != "" && !strings.Contains(strings.ToLower(id), strings.ToLower(search)) {
			return false
		}
		if skip > 0 {
			skip--
			return false
		}
		return true
	}
	for _, src := range sources {
		var tok *config.APIToken
		if !c.admin {
			tok = s.nangoToken(c, src.layer)
			if tok == nil || (len(tok.Sources) > 0 && !slices.Contains(tok.Sources, src.source)) {
				continue
			}
		}
		if !src.connections {
			if len(tags) == 0 && (tok == nil || len(tok.Connections) == 0) && len(out) < limit && take(engine.NangoConnectionDefault) {
				out = append(out, s.defaultView(src, false))
			}
			continue
		}
		after := ""
		for len(out) < limit {
			conns, next, err := s.eng().ListConnections(src.layer, src.source, engine.ListOptions{Tags: tags, After: after, Limit: 500})
			if err != nil {
				s.nangoEngineError(w, err)
				return
			}
			for _, cn := range conns {
				if len(out) == limit {
					break
				}
				if tok != nil && len(tok.Connections) > 0 && !slices.Contains(tok.Connections, cn.ID) {
					continue
				}
				if take(cn.ID) {
					out = append(out, s.nangoView(src, cn, false))
				}
			}
			if next == "" {
				break
			}
			after = next
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"connections": out})
}

// nangoGetConnection answers GET /connections/{id}?provider_config_key= (and
// /connection/{id}). Nango's force_refresh, refresh_token and
// refresh_github_app_jwt_token are accepted and change nothing: synclayer
// hands out no credentials.
func (s *Server) nangoGetConnection(w http.ResponseWriter, r *http.Request) {
	c, ok := s.nangoAuth(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	src, tok, ok := s.nangoResolve(w, c, r.URL.Query().Get("provider_config_key"), false)
	if !ok || !tokenAllowsConnection(w, tok, src, id) {
		return
	}
	if !src.connections {
		if s.nangoConnectionID(w, src, id) {
			writeJSON(w, http.StatusOK, s.defaultView(src, true))
		}
		return
	}
	cn, err := s.eng().GetConnection(src.layer, src.source, id)
	if err != nil {
		s.nangoEngineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.nangoView(src, cn, true))
}

// nangoDecode reads a JSON object body into v, answering Nango's
// invalid_body on anything else. Unknown fields are refused, so that a
// misspelt or unsupported option is not silently dropped.
func (s *Server) nangoDecode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, ok := s.readBody(w, r)
	if !ok {
		return false
	}
	t := bytes.TrimSpace(body)
	if len(t) == 0 || t[0] != '{' {
		nangoInvalid(w, "invalid_body", "", "the body must be a JSON object")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		nangoInvalid(w, "invalid_body", "", jsonErrorMessage(err, v))
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		nangoInvalid(w, "invalid_body", "", "the body has more after its JSON object: send exactly one object")
		return false
	}
	return true
}

// unsupported refuses a Nango option synclayer has no counterpart for.
func unsupported(w http.ResponseWriter, raw json.RawMessage, field, why string) bool {
	if t := bytes.TrimSpace(raw); len(t) > 0 && string(t) != "null" {
		nangoInvalid(w, "invalid_body", field, field+" is not supported by synclayer: "+why)
		return true
	}
	return false
}

// newConnectionID makes an id for an imported connection without one, as
// Nango does (a UUID).
func newConnectionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// nangoCreateConnection answers POST /connections, Nango's import: the
// fields of credentials (but "type") and of connection_config become the
// connection's config, checked by the connector as POST
// /v1/…/connections does.
func (s *Server) nangoCreateConnection(w http.ResponseWriter, r *http.Request) {
	c, ok := s.nangoAuth(w, r)
	if !ok {
		return
	}
	var body struct {
		ProviderConfigKey  string                     `json:"provider_config_key"`
		ConnectionID       string                     `json:"connection_id"`
		Credentials        map[string]json.RawMessage `json:"credentials"`
		ConnectionConfig   map[string]json.RawMessage `json:"connection_config"`
		Metadata           json.RawMessage            `json:"metadata"`
		Tags               map[string]string          `json:"tags"`
		EndUser            json.RawMessage            `json:"end_user"`
		WebhookURLOverride json.RawMessage            `json:"webhook_url_override"`
	}
	if !s.nangoDecode(w, r, &body) {
		return
	}
	if unsupported(w, body.EndUser, "end_user", "synclayer keeps no end users; use tags") ||
		unsupported(w, body.WebhookURLOverride, "webhook_url_override", "webhooks go to the layer's notify blocks") {
		return
	}
	src, _, ok := s.nangoResolve(w, c, body.ProviderConfigKey, true)
	if !ok {
		return
	}
	if !src.connections {
		nangoInvalid(w, "invalid_body", "provider_config_key", fmt.Sprintf("source %q has no connections: set connections = true in its block to create them", src.source))
		return
	}
	cfg := map[string]json.RawMessage{}
	for k, v := range body.ConnectionConfig {
		cfg[k] = v
	}
	for k, v := range body.Credentials {
		if k != "type" {
			cfg[k] = v
		}
	}
	raw, _ := json.Marshal(cfg)
	if body.ConnectionID == "" {
		body.ConnectionID = newConnectionID()
	}
	cn, err := s.eng().CreateConnection(r.Context(), src.layer, src.source, engine.ConnectionInput{
		ID: body.ConnectionID, Config: raw, Metadata: body.Metadata, Tags: body.Tags})
	if err != nil {
		s.nangoEngineError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.nangoView(src, cn, true))
}

// storedConnection reads a connection of a source with connections, for
// the calls that replace rather than merge. ok is false when an answer was
// written.
func (s *Server) storedConnection(w http.ResponseWriter, src nangoSource, id string) (*store.Connection, bool) {
	if !src.connections {
		nangoInvalid(w, "invalid_body", "connection_id", fmt.Sprintf("source %q has no connections: %q stands for the source itself, which has no metadata or tags to change", src.source, id))
		return nil, false
	}
	db, err := s.eng().Store(src.layer)
	if err != nil {
		s.nangoEngineError(w, err)
		return nil, false
	}
	sc, err := db.GetConnection(src.source, id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "unknown_connection", fmt.Sprintf("source %q has no connection %q", src.source, id))
		return nil, false
	}
	if err != nil {
		s.nangoEngineError(w, err)
		return nil, false
	}
	return sc, true
}

// nangoPatchConnection answers PATCH /connections/{id}: Nango's tags
// replace the connection's.
func (s *Server) nangoPatchConnection(w http.ResponseWriter, r *http.Request) {
	c, ok := s.nangoAuth(w, r)
	if !ok {
		return
	}
	var body struct {
		Tags               map[string]string `json:"tags"`
		EndUser            json.RawMessage   `json:"end_user"`
		WebhookURLOverride json.RawMessage   `json:"webhook_url_override"`
	}
	if !s.nangoDecode(w, r, &body) {
		return
	}
	if unsupported(w, body.EndUser, "end_user", "synclayer keeps no end users; use tags") ||
		unsupported(w, body.WebhookURLOverride, "webhook_url_override", "webhooks go to the layer's notify blocks") {
		return
	}
	id := r.PathValue("id")
	src, _, ok := s.nangoResolve(w, c, r.URL.Query().Get("provider_config_key"), true)
	if !ok {
		return
	}
	sc, ok := s.storedConnection(w, src, id)
	if !ok {
		return
	}
	if body.Tags != nil {
		patch := map[string]*string{}
		for k := range sc.Tags {
			patch[k] = nil
		}
		for k, v := range body.Tags {
			patch[k] = &v
		}
		if _, err := s.eng().UpdateConnection(src.layer, src.source, id, engine.ConnectionPatch{Tags: patch}); err != nil {
			s.nangoEngineError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// nangoDeleteConnection answers DELETE /connections/{id}: the connection's
// records are deleted (soft, in one revision).
func (s *Server) nangoDeleteConnection(w http.ResponseWriter, r *http.Request) {
	c, ok := s.nangoAuth(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	src, _, ok := s.nangoResolve(w, c, r.URL.Query().Get("provider_config_key"), true)
	if !ok {
		return
	}
	if !src.connections {
		if s.nangoConnectionID(w, src, id) {
			nangoInvalid(w, "invalid_uri_params", "connectionId", fmt.Sprintf("source %q has no connections: %q stands for the source itself and cannot be deleted", src.source, id))
		}
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	if _, err := s.eng().DeleteConnection(ctx, src.layer, src.source, id); err != nil {
		s.nangoEngineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// nangoMetadata answers POST (replace) and PATCH (merge) /connections/metadata.
func (s *Server) nangoMetadata(w http.ResponseWriter, r *http.Request, replace bool) {
	c, ok := s.nangoAuth(w, r)
	if !ok {
		return
	}
	var body struct {
		ConnectionID      json.RawMessage `json:"connection_id"`
		ProviderConfigKey string          `json:"provider_config_key"`
		Metadata          json.RawMessage `json:"metadata"`
	}
	if !s.nangoDecode(w, r, &body) {
		return
	}
	var ids []string
	var one string
	if json.Unmarshal(body.ConnectionID, &one) == nil && one != "" {
		ids = []string{one}
	} else if json.Unmarshal(body.ConnectionID, &ids) != nil || len(ids) == 0 || slices.Contains(ids, "") {
		nangoInvalid(w, "invalid_body", "connection_id", "connection_id must be a connection id or a non-empty list of them")
		return
	}
	var meta map[string]json.RawMessage
	if t := bytes.TrimSpace(body.Metadata); len(t) == 0 || t[0] != '{' || json.Unmarshal(t, &meta) != nil {
		nangoInvalid(w, "invalid_body", "metadata", "metadata must be a JSON object")
		return
	}
	src, _, ok := s.nangoResolve(w, c, body.ProviderConfigKey, true)
	if !ok {
		return
	}
	stored := make([]*store.Connection, len(ids))
	for i, id := range ids {
		if stored[i], ok = s.storedConnection(w, src, id); !ok {
			return
		}
	}
	for i, id := range ids {
		patch := map[string]json.RawMessage{}
		if replace {
			var old map[string]json.RawMessage
			_ = json.Unmarshal(stored[i].Metadata, &old)
			for k := range old {
				patch[k] = json.RawMessage("null")
			}
		}
		for k, v := range meta {
			patch[k] = v
		}
		raw, _ := json.Marshal(patch)
		if len(patch) == 0 {
			continue
		}
		if _, err := s.eng().UpdateConnection(src.layer, src.source, id, engine.ConnectionPatch{Metadata: raw}); err != nil {
			s.nangoEngineError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"connection_id": body.ConnectionID, "provider_config_key": body.ProviderConfigKey, "metadata": body.Metadata})
}

func (s *Server) nangoSetMetadata(w http.ResponseWriter, r *http.Request) {
	s.nangoMetadata(w, r, true)
}

func (s *Server) nangoUpdateMetadata(w http.ResponseWriter, r *http.Request) {
	s.nangoMetadata(w, r, false)
}

// nangoSyncBody is the body of POST /sync/trigger, /sync/start and
// /sync/pause.
type nangoSyncBody struct {
	Syncs             []json.RawMessage `json:"syncs"`
	ProviderConfigKey string            `json:"provider_config_key"`
	ConnectionID      string            `json:"connection_id"`
	Opts              *struct {
		Reset      bool `json:"reset"`
		EmptyCache bool `json:"emptyCache"`
	} `json:"opts"`
	FullResync *bool  `json:"full_resync"`
	SyncMode   string `json:"sync_mode"`
}

// nangoSyncTarget is what a sync call acts on.
type nangoSyncTarget struct {
	src        nangoSource
	syncs      []string // empty: every sync of the source
	connection string   // "": every connection (or the source itself)
}

// parseSyncCall reads and checks a sync call's body (Provider-Config-Key
// and Connection-Id headers stand in for absent fields). ok is false when
// an answer was written.
func (s *Server) parseSyncCall(w http.ResponseWriter, r *http.Request) (nangoSyncTarget, nangoSyncBody, bool) {
	var t nangoSyncTarget
	var body nangoSyncBody
	c, ok := s.nangoAuth(w, r)
	if !ok || !s.nangoDecode(w, r, &body) {
		return t, body, false
	}
	if body.ProviderConfigKey == "" {
		body.ProviderConfigKey = r.Header.Get("Provider-Config-Key")
	}
	if body.ConnectionID == "" {
		body.ConnectionID = r.Header.Get("Connection-Id")
	}
	switch body.SyncMode {
	case "", "incremental", "full_refresh", "full_refresh_and_clear_cache":
	default:
		nangoInvalid(w, "invalid_body", "sync_mode", "sync_mode is incremental, full_refresh or full_refresh_and_clear_cache")
		return t, body, false
	}
	for _, raw := range body.Syncs {
		var name string
		if json.Unmarshal(raw, &name) != nil {
			var obj struct {
				Name    string `json:"name"`
				Variant string `json:"variant"`
			}
			if json.Unmarshal(raw, &obj) != nil || obj.Name == "" {
				nangoInvalid(w, "invalid_body", "syncs", "syncs is a list of sync names (or {\"name\": …, \"variant\": \"base\"} objects)")
				return t, body, false
			}
			if obj.Variant != "" && obj.Variant != "base" {
				nangoInvalid(w, "invalid_body", "syncs", "synclayer has no sync variants: use the variant \"base\", or a plain sync name")
				return t, body, false
			}
			name = obj.Name
		}
		name, variant, _ := strings.Cut(name, "::")
		if variant != "" && variant != "base" {
			nangoInvalid(w, "invalid_body", "syncs", "synclayer has no sync variants: use the variant \"base\", or a plain sync name")
			return t, body, false
		}
		t.syncs = append(t.syncs, name)
	}
	if t.src, _, ok = s.nangoResolve(w, c, body.ProviderConfigKey, true); !ok {
		return t, body, false
	}
	if !s.syncsExist(w, t.src, t.syncs) {
		return t, body, false
	}
	if body.ConnectionID != "" {
		if !s.nangoConnectionID(w, t.src, body.ConnectionID) {
			return t, body, false
		}
		if t.src.connections {
			t.connection = body.ConnectionID
		}
	}
	return t, body, true
}

// sourceSyncs lists a source's syncs (with their models) as the engine
// knows them.
func (s *Server) sourceSyncs(src nangoSource) ([]engine.SyncStatus, error) {
	st, err := s.eng().Layer(src.layer)
	if err != nil {
		return nil, err
	}
	for _, ss := range st.Sources {
		if ss.Name == src.source {
			return ss.Syncs, nil
		}
	}
	return nil, fmt.Errorf("%w %q", engine.ErrUnknownSource, src.source)
}

// syncsExist checks sync names against a source; ok is false when an
// answer was written.
func (s *Server) syncsExist(w http.ResponseWriter, src nangoSource, names []string) bool {
	if len(names) == 0 {
		return true
	}
	syncs, err := s.sourceSyncs(src)
	if err != nil {
		s.nangoEngineError(w, err)
		return false
	}
	var have []string
	for _, y := range syncs {
		have = append(have, y.Name)
	}
	for _, n := range names {
		if !slices.Contains(have, n) {
			writeError(w, http.StatusNotFound, "no_syncs_found", fmt.Sprintf("source %q has no sync %q; its syncs are %s", src.source, n, strings.Join(have, ", ")))
			return false
		}
	}
	return true
}

// nangoTrigger answers POST /sync/trigger: a run of each sync named (every
// sync when none is), of one connection or of all; opts.reset (or a full
// resync) runs them from scratch.
func (s *Server) nangoTrigger(w http.ResponseWriter, r *http.Request) {
	t, body, ok := s.parseSyncCall(w, r)
	if !ok {
		return
	}
	reset := body.SyncMode == "full_refresh" || body.SyncMode == "full_refresh_and_clear_cache" ||
		(body.FullResync != nil && *body.FullResync) || (body.Opts != nil && (body.Opts.Reset || body.Opts.EmptyCache))
	syncs := t.syncs
	if len(syncs) == 0 {
		syncs = []string{""}
	}
	for _, y := range syncs {
		if _, err := s.eng().Trigger(t.src.layer, engine.TriggerRequest{Source: t.src.source, Sync: y, Connection: t.connection, Reset: reset, Trigger: engine.TriggerManual}); err != nil {
			s.nangoEngineError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// nangoStart answers POST /sync/start: the schedules of the syncs named
// (every sync when none is) go on, for one connection or all.
func (s *Server) nangoStart(w http.ResponseWriter, r *http.Request) { s.nangoSetPaused(w, r, false) }

// nangoPause answers POST /sync/pause: the schedules stop.
func (s *Server) nangoPause(w http.ResponseWriter, r *http.Request) { s.nangoSetPaused(w, r, true) }

func (s *Server) nangoSetPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	t, _, ok := s.parseSyncCall(w, r)
	if !ok {
		return
	}
	e := s.eng()
	syncs := t.syncs
	if !t.src.connections {
		if len(syncs) == 0 {
			all, err := s.sourceSyncs(t.src)
			if err != nil {
				s.nangoEngineError(w, err)
				return
			}
			for _, y := range all {
				syncs = append(syncs, y.Name)
			}
		}
		for _, y := range syncs {
			var err error
			if paused {
				err = e.Pause(t.src.layer, t.src.source, y)
			} else {
				err = e.Resume(t.src.layer, t.src.source, y)
			}
			if err != nil {
				s.nangoEngineError(w, err)
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]bool{"success": true})
		return
	}
	if len(syncs) == 0 {
		syncs = []string{""} // every sync of the connection
	}
	apply := func(id string) error {
		for _, y := range syncs {
			if err := e.PauseConnection(t.src.layer, t.src.source, id, y, paused); err != nil {
				return err
			}
		}
		return nil
	}
	if t.connection != "" {
		if err := apply(t.connection); err != nil {
			s.nangoEngineError(w, err)
			return
		}
	} else {
		after := ""
		for {
			conns, next, err := e.ListConnections(t.src.layer, t.src.source, engine.ListOptions{After: after, Limit: 500})
			if err == nil {
				for _, cn := range conns {
					if err = apply(cn.ID); err != nil && !errors.Is(err, engine.ErrUnknownConnection) {
						break
					}
					err = nil
				}
			}
			if err != nil {
				s.nangoEngineError(w, err)
				return
			}
			if next == "" {
				break
			}
			after = next
		}
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// nangoSyncStatus is one sync of one connection, as GET /sync/status shows
// it.
type nangoSyncStatus struct {
	ID                    string                 `json:"id"`
	ConnectionID          string                 `json:"connection_id"`
	Name                  string                 `json:"name"`
	Variant               string                 `json:"variant"`
	Type                  string                 `json:"type"`
	Status                string                 `json:"status"`
	JobStatus             string                 `json:"jobStatus"`
	LatestExecutionStatus *string                `json:"latestExecutionStatus"`
	FinishedAt            *time.Time             `json:"finishedAt"`
	NextScheduledSyncAt   *time.Time             `json:"nextScheduledSyncAt"`
	Frequency             *string                `json:"frequency"`
	LatestResult          map[string]nangoResult `json:"latestResult,omitempty"`
	RecordCount           map[string]int64       `json:"recordCount"`
	Checkpoint            *struct{}              `json:"checkpoint"`
}

// nangoResult is a model's changes in a run (Nango's SyncResult).
type nangoResult struct {
	Added   int64 `json:"added"`
	Updated int64 `json:"updated"`
	Deleted int64 `json:"deleted"`
}

// nangoStatusOf fills the status fields from a sync's state and last run.
func nangoStatusOf(st *nangoSyncStatus, state string, last *store.Run, source string) {
	var exec string
	if last != nil {
		switch last.State {
		case store.RunCompleted:
			exec = "SUCCESS"
		case store.RunFailed:
			exec = "ERROR"
		default:
			exec = "RUNNING"
		}
		st.LatestExecutionStatus = &exec
		st.FinishedAt = last.FinishedAt
		st.Type = "INCREMENTAL"
		if last.Full {
			st.Type = "FULL"
		}
		st.LatestResult = map[string]nangoResult{}
		for key, models := range last.Counts {
			if src, _ := store.SplitSourceKey(key); src != source {
				continue
			}
			for m, c := range models {
				rc := st.LatestResult[m]
				rc.Added, rc.Updated, rc.Deleted = rc.Added+c.Added, rc.Updated+c.Updated, rc.Deleted+c.Deleted
				st.LatestResult[m] = rc
			}
		}
	} else {
		st.Type = "INITIAL"
	}
	switch {
	case state == engine.SyncRunning || state == engine.SyncQueued:
		st.Status = "RUNNING"
	case state == engine.SyncPaused:
		st.Status = "PAUSED"
	case exec != "":
		st.Status = exec
	default:
		st.Status = "STOPPED"
	}
	st.JobStatus = st.Status
}

// nangoFrequency writes a schedule as Nango does ("every 1h"), or a cron
// expression as it is.
func nangoFrequency(every time.Duration, cron string) *string {
	if every > 0 {
		d := every.String()
		for _, z := range []string{"0s", "0m"} {
			if strings.HasSuffix(d, z) && len(d) > len(z) {
				d = strings.TrimSuffix(d, z)
			}
		}
		f := "every " + d
		return &f
	}
	if cron != "" {
		return &cron
	}
	return nil
}

// nangoSyncStatus answers GET /sync/status?syncs=*|a,b&provider_config_key=
// [&connection_id=]: each sync's state in Nango's words (RUNNING, PAUSED,
// SUCCESS, ERROR, STOPPED), its last run, schedule and record counts.
func (s *Server) nangoSyncStatus(w http.ResponseWriter, r *http.Request) {
	c, ok := s.nangoAuth(w, r)
	if !ok {
		return
	}
	v := r.URL.Query()
	names := v.Get("syncs")
	if names == "" {
		nangoInvalid(w, "invalid_query_params", "syncs", "syncs is required: \"*\" for every sync, or a comma list of sync names")
		return
	}
	src, tok, ok := s.nangoResolve(w, c, v.Get("provider_config_key"), false)
	if !ok {
		return
	}
	var want []string
	if names != "*" {
		for _, n := range strings.Split(names, ",") {
			n, variant, _ := strings.Cut(strings.TrimSpace(n), "::")
			if variant != "" && variant != "base" {
				nangoInvalid(w, "invalid_query_params", "syncs", "synclayer has no sync variants: use the variant \"base\", or a plain sync name")
				return
			}
			if n != "" {
				want = append(want, n)
			}
		}
	}
	if !s.syncsExist(w, src, want) {
		return
	}
	wanted := func(name string) bool { return len(want) == 0 || slices.Contains(want, name) }
	connID := v.Get("connection_id")
	if connID != "" && (!s.nangoConnectionID(w, src, connID) || !tokenAllowsConnection(w, tok, src, connID)) {
		return
	}
	out := []nangoSyncStatus{}
	e := s.eng()
	if !src.connections {
		if !tokenAllowsConnection(w, tok, src, engine.NangoConnectionDefault) {
			return
		}
		st, err := s.defaultSyncStatus(src, wanted)
		if err != nil {
			s.nangoEngineError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"syncs": append(out, st...)})
		return
	}
	ids := []string{connID}
	if connID == "" {
		ids = nil
		after := ""
		for {
			conns, next, err := e.ListConnections(src.layer, src.source, engine.ListOptions{After: after, Limit: 500})
			if err != nil {
				s.nangoEngineError(w, err)
				return
			}
			for _, cn := range conns {
				if tok == nil || len(tok.Connections) == 0 || slices.Contains(tok.Connections, cn.ID) {
					ids = append(ids, cn.ID)
				}
			}
			if len(ids) > nangoMaxStatusConnections {
				nangoInvalid(w, "invalid_query_params", "connection_id", fmt.Sprintf("source %q has more than %d connections: pass connection_id", src.source, nangoMaxStatusConnections))
				return
			}
			if next == "" {
				break
			}
			after = next
		}
	}
	for _, id := range ids {
		cn, err := e.GetConnection(src.layer, src.source, id)
		if errors.Is(err, engine.ErrUnknownConnection) && connID == "" {
			continue // deleted meanwhile
		}
		if err != nil {
			s.nangoEngineError(w, err)
			return
		}
		for _, y := range cn.Syncs {
			if !wanted(y.Name) {
				continue
			}
			st := nangoSyncStatus{ID: src.layer + "." + src.source + "." + y.Name + "." + id, ConnectionID: id, Name: y.Name, Variant: "base",
				NextScheduledSyncAt: y.NextRunAt, RecordCount: y.Records}
			if st.RecordCount == nil {
				st.RecordCount = map[string]int64{}
			}
			if y.Every != "" {
				if d, err := time.ParseDuration(y.Every); err == nil {
					st.Frequency = nangoFrequency(d, "")
				} else {
					st.Frequency = nangoFrequency(0, y.Every)
				}
			}
			nangoStatusOf(&st, y.State, y.LastRun, src.source)
			out = append(out, st)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"syncs": out})
}

// defaultSyncStatus reports the syncs of a source without connections.
func (s *Server) defaultSyncStatus(src nangoSource, wanted func(string) bool) ([]nangoSyncStatus, error) {
	e := s.eng()
	syncs, err := s.sourceSyncs(src)
	if err != nil {
		return nil, err
	}
	db, err := e.Store(src.layer)
	if err != nil {
		return nil, err
	}
	next, err := e.NextRuns(src.layer)
	if err != nil {
		return nil, err
	}
	runs, err := db.RecentRuns(nangoRecentRuns)
	if err != nil {
		return nil, err
	}
	counts := map[string]int64{}
	if snap, ok, err := db.OpenSnapshot(0); err == nil && ok {
		if mcs, err := snap.CountSource(src.source); err == nil {
			for _, m := range mcs {
				counts[m.Model] = m.Live
			}
		}
		snap.Close()
	}
	var out []nangoSyncStatus
	for _, y := range syncs {
		if !wanted(y.Name) {
			continue
		}
		ref := store.SyncRef{Source: src.source, Sync: y.Name}
		st := nangoSyncStatus{ID: src.layer + "." + src.source + "." + y.Name, ConnectionID: engine.NangoConnectionDefault, Name: y.Name, Variant: "base",
			RecordCount: map[string]int64{}}
		for _, m := range y.Models {
			st.RecordCount[m] = counts[m]
		}
		if t, ok := next[ref]; ok {
			t := t.UTC()
			st.NextScheduledSyncAt = &t
		}
		if b := src.cfg.Sync(y.Name); b != nil {
			st.Frequency = nangoFrequency(b.Every, b.Cron)
		}
		var last *store.Run
		for _, run := range runs { // newest first
			if (run.State == store.RunCompleted || run.State == store.RunFailed) && slices.Contains(run.Syncs, ref) {
				last = run
				break
			}
		}
		nangoStatusOf(&st, y.State, last, src.source)
		out = append(out, st)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
