package graphql

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/graphql-go/graphql"
	"github.com/graphql-go/graphql/gqlerrors"
	"github.com/graphql-go/graphql/language/ast"
	"github.com/graphql-go/graphql/language/parser"
	"github.com/graphql-go/graphql/language/source"
	"github.com/hashicorp/go-hclog"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/store"
)

// DefaultTimeLimit is how long one request may run.
const DefaultTimeLimit = 10 * time.Second

// maxBodyBytes bounds a POST body: the query and its variables.
const maxBodyBytes = 256 << 10

// Options configure a Service.
type Options struct {
	Logger hclog.Logger
	// TimeLimit bounds a request's execution (default DefaultTimeLimit).
	TimeLimit time.Duration
	// MaxCost is the estimated-cost ceiling (default DefaultMaxCost).
	MaxCost int
}

// Service serves one layer's GraphQL API. It caches field statistics and
// schemas per revision. It is safe for concurrent use.
type Service struct {
	opts  Options
	log   hclog.Logger
	stats statsCache
	// graphqlGo runs every query on graphql-go's executor alone (tests
	// compare the two).
	graphqlGo bool

	mu      sync.Mutex
	schemas []*cachedSchema // most recent last
}

type cachedSchema struct {
	key   string
	built *builtSchema
	lists listFields

	// docs are queries that parsed and validated against this schema, by
	// text: a query sent again with other variables skips both.
	docMu sync.Mutex
	docs  map[string]*ast.Document
}

const docsKept = 256

func (cs *cachedSchema) doc(q string) *ast.Document {
	cs.docMu.Lock()
	defer cs.docMu.Unlock()
	return cs.docs[q]
}

func (cs *cachedSchema) keepDoc(q string, d *ast.Document) {
	cs.docMu.Lock()
	defer cs.docMu.Unlock()
	if cs.docs == nil || len(cs.docs) >= docsKept {
		cs.docs = map[string]*ast.Document{}
	}
	cs.docs[q] = d
}

const schemasKept = 16

// New returns the GraphQL service of one layer.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.TimeLimit <= 0 {
		opts.TimeLimit = DefaultTimeLimit
	}
	if opts.MaxCost <= 0 {
		opts.MaxCost = DefaultMaxCost
	}
	return &Service{opts: opts, log: opts.Logger}
}

// Env is what a request is served from: the layer's configuration, the
// models its connectors declare (by source) and its store.
type Env struct {
	Config *config.Layer
	Models map[string][]Model
	Store  store.Layer
}

// Scope is what the reader may see: everything, or an api_token's models,
// sources and connections (types out of scope are left out of the schema).
type Scope struct {
	All     bool
	Models  []string
	Sources []string
	// Connections limits the reader to the records of these connections
	// (config.APIToken.Connections): records of other connections, and
	// types whose records belong to no connection, are invisible. Empty:
	// no limit.
	Connections []string
}

// conns is the scope's connection list, sorted without repeats; nil: no
// limit.
func (s Scope) conns() []string {
	if s.All || len(s.Connections) == 0 {
		return nil
	}
	c := append([]string(nil), s.Connections...)
	sort.Strings(c)
	return slices.Compact(c)
}

func (s Scope) visible(source, model string) bool {
	if s.All {
		return true
	}
	return (len(s.Models) == 0 || slices.Contains(s.Models, model)) &&
		(len(s.Sources) == 0 || slices.Contains(s.Sources, source))
}

func (s Scope) key() string {
	if s.All {
		return "*"
	}
	m := append([]string(nil), s.Models...)
	src := append([]string(nil), s.Sources...)
	sort.Strings(m)
	sort.Strings(src)
	return strings.Join(m, ",") + "|" + strings.Join(src, ",") + "|" + strings.Join(s.conns(), ",")
}

// request is a GraphQL request as GET and POST carry it.
type request struct {
	Query         string          `json:"query"`
	Variables     json.RawMessage `json:"variables"`
	OperationName string          `json:"operationName"`
	Extensions    json.RawMessage `json:"extensions"`
}

// response is a GraphQL answer.
type response struct {
	Data       any             `json:"data,omitempty"`
	Errors     []responseError `json:"errors,omitempty"`
	Extensions map[string]any  `json:"extensions,omitempty"`
	noData     bool
}

type responseError struct {
	Message    string         `json:"message"`
	Locations  []any          `json:"locations,omitempty"`
	Path       []any          `json:"path,omitempty"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

func writeResponse(w http.ResponseWriter, status int, r *response) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	parts, err := marshalParts(r)
	if err != nil {
		parts = [][]byte{[]byte(`{"errors":[{"message":"the answer could not be encoded","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}` + "\n")}
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(status)
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return
		}
	}
}

// marshalParts encodes an answer as encoding/json would, in parts: the
// fragments the executor rendered (rawJSON values of data) are written as
// they are, not copied or checked again.
func marshalParts(r *response) ([][]byte, error) {
	m, ok := r.Data.(map[string]any)
	if r.noData || r.Data == nil || !ok {
		b, err := marshal(r)
		return [][]byte{b}, err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts [][]byte
	b := []byte(`{"data":{`)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, k), ':')
		if raw, ok := m[k].(rawJSON); ok {
			parts = append(parts, b, raw)
			b = nil
			continue
		}
		var err error
		if b, err = appendJSON(b, m[k]); err != nil {
			return nil, err
		}
	}
	b = append(b, '}')
	if len(r.Errors) > 0 {
		var err error
		b = append(b, `,"errors":`...)
		if b, err = appendJSON(b, r.Errors); err != nil {
			return nil, err
		}
	}
	if len(r.Extensions) > 0 {
		var err error
		b = append(b, `,"extensions":`...)
		if b, err = appendJSON(b, r.Extensions); err != nil {
			return nil, err
		}
	}
	return append(parts, append(b, '}', '\n')), nil
}

func marshal(r *response) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if r.noData || r.Data == nil {
		type noData struct {
			Errors     []responseError `json:"errors,omitempty"`
			Extensions map[string]any  `json:"extensions,omitempty"`
		}
		err := enc.Encode(noData{Errors: r.Errors, Extensions: r.Extensions})
		return buf.Bytes(), err
	}
	type withData struct {
		Data       any             `json:"data"`
		Errors     []responseError `json:"errors,omitempty"`
		Extensions map[string]any  `json:"extensions,omitempty"`
	}
	err := enc.Encode(withData{Data: r.Data, Errors: r.Errors, Extensions: r.Extensions})
	return buf.Bytes(), err
}

// fail answers an HTTP-level error (the request is not a GraphQL request
// this endpoint can serve) as the rest of the API does:
// {"error": {"code": ..., "message": ...}} with a fitting status.
func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	w.Write(append(b, '\n'))
}

// gqlFail answers a GraphQL request error (nothing executed): as the
// GraphQL-over-HTTP specification asks for application/json answers,
// with 200 and the error in errors[], its code in extensions.code.
func gqlFail(w http.ResponseWriter, rev int64, err *codedError) {
	writeResponse(w, http.StatusOK, &response{noData: true, Errors: []responseError{{Message: err.msg, Extensions: map[string]any{"code": err.code}}},
		Extensions: map[string]any{"revision": rev}})
}

// readRequest reads the request from a GET query string or a POST body.
func readRequest(w http.ResponseWriter, r *http.Request) (*request, bool) {
	var req request
	switch r.Method {
	case http.MethodGet:
		v := r.URL.Query()
		req.Query = v.Get("query")
		req.OperationName = v.Get("operationName")
		if s := v.Get("variables"); s != "" {
			req.Variables = json.RawMessage(s)
		}
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
		if err != nil {
			fail(w, http.StatusBadRequest, "bad_body", "could not read the request body")
			return nil, false
		}
		if len(body) > maxBodyBytes {
			fail(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the request body is larger than %d bytes", maxBodyBytes))
			return nil, false
		}
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt == "application/graphql" {
			req.Query = string(body)
			break
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		if err := dec.Decode(&req); err != nil {
			fail(w, http.StatusBadRequest, "bad_json", `the body must be a JSON object {"query": "...", "variables": {...}, "operationName": "..."}: `+err.Error())
			return nil, false
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		fail(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET or POST")
		return nil, false
	}
	if strings.TrimSpace(req.Query) == "" {
		fail(w, http.StatusBadRequest, "bad_query", "the request has no query: pass query= (GET) or {\"query\": \"...\"} (POST)")
		return nil, false
	}
	return &req, true
}

// variables decodes the request's variables (an object, or null).
func (req *request) variables() (map[string]any, error) {
	raw := bytes.TrimSpace(req.Variables)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || v == nil {
		return nil, errors.New("variables must be a JSON object")
	}
	return numbersToNative(v).(map[string]any), nil
}

// numbersToNative turns JSON numbers of variables into int or float64, as
// graphql-go's input coercion expects.
func numbersToNative(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(x.String(), 10, 64); err == nil {
			if i >= -1<<31 && i < 1<<31 {
				return int(i)
			}
			return float64(i)
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = numbersToNative(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = numbersToNative(x[k])
		}
	}
	return v
}

// ServeHTTP answers one GraphQL request (GET or POST) on revision rev (0:
// the pinned revision, else the newest).
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request, env Env, rev int64, scope Scope) {
	req, ok := readRequest(w, r)
	if !ok {
		return
	}
	vars, err := req.variables()
	if err != nil {
		fail(w, http.StatusBadRequest, "bad_variables", err.Error())
		return
	}
	snap, published, err := env.Store.OpenSnapshot(rev)
	switch {
	case errors.Is(err, store.ErrNoRevision):
		fail(w, http.StatusNotFound, "not_found", err.Error())
		return
	case errors.Is(err, store.ErrRevisionGone):
		fail(w, http.StatusGone, "revision_gone", err.Error()+"; read a newer revision")
		return
	case err != nil:
		s.log.Error("graphql: open revision", "error", err)
		fail(w, http.StatusInternalServerError, "internal", "reading the store failed; see the server log")
		return
	}
	var number int64
	if published {
		defer snap.Close()
		number = snap.Revision().Number
	}
	cs, err := s.schema(env, snap, scope)
	if err != nil {
		s.log.Error("graphql: build schema", "revision", number, "error", err)
		fail(w, http.StatusInternalServerError, "internal", "building the schema failed; see the server log")
		return
	}
	if len(req.Query) > MaxQueryBytes {
		gqlFail(w, number, errorf(CodeQueryTooLarge, "the query is %d bytes; at most %d are allowed", len(req.Query), MaxQueryBytes))
		return
	}
	etag := etagOf(number, cs.key, req, vars)
	w.Header().Set("Cache-Control", "no-cache")
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, etag) {
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	status, resp, rc := s.execute(r.Context(), cs, snap, number, req, vars, scope.conns())
	resp.Extensions = map[string]any{"revision": number}
	if status == http.StatusOK && len(resp.Errors) == 0 {
		w.Header().Set("ETag", etag)
	}
	writeResponse(w, status, resp)
	if rc != nil {
		rc.release()
	}
}

// etagOf is the answer's ETag: the revision, the schema (configuration,
// declared models, scope), the query, variables and operation.
func etagOf(rev int64, schemaKey string, req *request, vars map[string]any) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00%s\x00%s\x00%s\x00", rev, schemaKey, req.Query, req.OperationName)
	if len(vars) > 0 {
		b, _ := json.Marshal(vars) // map keys sorted: one text per value
		h.Write(b)
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// schema returns the cached schema of the snapshot's revision for env and
// scope, building it when needed.
func (s *Service) schema(env Env, snap store.Snapshot, scope Scope) (*cachedSchema, error) {
	var number int64
	if snap != nil {
		number = snap.Revision().Number
	}
	key := fmt.Sprintf("%d|%p|%s|%s", number, env.Config, modelsKey(env.Models), scope.key())
	s.mu.Lock()
	for _, c := range s.schemas {
		if c.key == key {
			s.mu.Unlock()
			return c, nil
		}
	}
	s.mu.Unlock()
	stats := &revStats{models: map[typeTarget]*modelStats{}}
	if snap != nil {
		var err error
		stats, err = s.stats.get(snap, func(n int64) (store.Snapshot, error) {
			old, ok, err := env.Store.OpenSnapshot(n)
			if err == nil && !ok {
				err = store.ErrNoRevision
			}
			return old, err
		})
		if err != nil {
			return nil, err
		}
	}
	built, err := build(buildInput{cfg: env.Config, models: env.Models, stats: stats, visible: scope.visible, connScoped: scope.conns() != nil})
	if err != nil {
		return nil, err
	}
	if len(built.warnings) > 0 {
		s.log.Warn("graphql: parts of the layer are left out of the schema", "revision", number, "reasons", strings.Join(built.warnings, "; "))
	}
	cs := &cachedSchema{key: key, built: built, lists: listFields{paged: map[string]bool{}, refs: map[string]bool{}}}
	for _, t := range built.types {
		cs.lists.paged["all"+t.Name] = true
		for _, r := range t.reverses {
			cs.lists.paged[r.cfg.Reverse] = true
		}
		for _, r := range t.refs {
			if r.list {
				cs.lists.refs[r.cfg.Name] = true
			}
		}
	}
	s.mu.Lock()
	s.schemas = append(s.schemas, cs)
	if len(s.schemas) > schemasKept {
		s.schemas = s.schemas[1:]
	}
	s.mu.Unlock()
	return cs, nil
}

// modelsKey fingerprints the declared models.
func modelsKey(models map[string][]Model) string {
	h := sha256.New()
	srcs := make([]string, 0, len(models))
	for k := range models {
		srcs = append(srcs, k)
	}
	sort.Strings(srcs)
	var b []byte // written once: this runs for every request
	for _, src := range srcs {
		b = append(append(b, src...), 0)
		for _, m := range models[src] {
			b = append(append(b, m.Name...), 1)
			for _, f := range m.Fields {
				b = append(append(append(append(b, f.Name...), 2), f.Type...), 3)
			}
		}
	}
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// execute parses, validates, checks the limits of, and runs a query.
func (s *Service) execute(ctx context.Context, cs *cachedSchema, snap store.Snapshot, rev int64, req *request, vars map[string]any, conns []string) (int, *response, *reqCtx) {
	coded := func(status int, err *codedError) (int, *response, *reqCtx) {
		return status, &response{noData: true, Errors: []responseError{{Message: err.msg, Extensions: map[string]any{"code": err.code}}}}, nil
	}
	doc := cs.doc(req.Query)
	if doc == nil {
		var err error
		doc, err = parser.Parse(parser.ParseParams{Source: source.NewSource(&source.Source{Body: []byte(req.Query), Name: "GraphQL request"})})
		if err != nil {
			return http.StatusOK, &response{noData: true, Errors: formatErrors([]gqlerrors.FormattedError{gqlerrors.FormatError(err)}, CodeParseFailed)}, nil
		}
		if n := countFields(doc); n > s.opts.MaxCost {
			return coded(http.StatusOK, errorf(CodeCostLimit, "the query selects %d fields, above the cost ceiling of %d", n, s.opts.MaxCost))
		}
		if res := graphql.ValidateDocument(&cs.built.schema, doc, nil); !res.IsValid {
			return http.StatusOK, &response{noData: true, Errors: formatErrors(res.Errors, CodeValidationFailed)}, nil
		}
		cs.keepDoc(req.Query, doc)
	}
	if err := analyze(doc, req.OperationName, vars, cs.lists, s.opts.MaxCost); err != nil {
		return coded(http.StatusOK, err)
	}
	rc := &reqCtx{ctx: ctx, until: time.Now().Add(s.opts.TimeLimit), snap: snap, rev: rev, deadline: s.opts.TimeLimit, conns: conns}
	// graphql-go gives up waiting when its context ends but leaves the
	// resolvers running; they stop at the time limit by themselves
	// (reqCtx.check), so execution is given a context that does not end,
	// and the snapshot outlives every resolver.
	schema := cs.built.schema
	if cs.built.fastOK && !s.graphqlGo && !usesIntrospection(doc, req.OperationName) {
		schema = cs.built.fast
	}
	resp := run(ctx, schema, doc, req.OperationName, vars, rc)
	if rc.internal != nil {
		s.log.Error("graphql: query failed reading the store", "revision", rev, "error", rc.internal)
	}
	return http.StatusOK, resp, rc
}

// run executes a validated document on schema (the served one, or the one
// whose root fields the executor answers) and makes the answer: the errors
// of graphql-go, then those of the executor.
func run(ctx context.Context, schema graphql.Schema, doc *ast.Document, opName string, vars map[string]any, rc *reqCtx) *response {
	res := graphql.Execute(graphql.ExecuteParams{
		Schema:        schema,
		AST:           doc,
		OperationName: opName,
		Args:          vars,
		Context:       context.WithValue(context.WithoutCancel(ctx), ctxKey{}, rc),
	})
	errs := res.Errors
	for _, e := range rc.errs {
		errs = append(errs, gqlerrors.FormatError(e))
	}
	resp := &response{Data: res.Data, Errors: formatErrors(errs, "")}
	if res.Data == nil {
		resp.noData = true
	}
	return resp
}

// formatErrors turns graphql-go errors into answer errors, each with an
// extensions.code (def when the error has none: BAD_USER_INPUT for
// errors graphql-go raises before resolving).
func formatErrors(errs []gqlerrors.FormattedError, def string) []responseError {
	out := make([]responseError, 0, len(errs))
	for _, e := range errs {
		re := responseError{Message: e.Message, Extensions: e.Extensions}
		for _, l := range e.Locations {
			re.Locations = append(re.Locations, map[string]int{"line": l.Line, "column": l.Column})
		}
		re.Path = e.Path
		if re.Extensions == nil {
			re.Extensions = map[string]any{}
		}
		if _, ok := re.Extensions["code"]; !ok {
			code := def
			if code == "" {
				code = CodeBadUserInput
				if len(e.Path) > 0 {
					code = CodeInternal
				}
				if strings.Contains(e.Message, "Unknown operation named") || strings.Contains(e.Message, "Must provide operation name") {
					code = CodeOperationNotFound
				}
			}
			re.Extensions["code"] = code
		}
		out = append(out, re)
	}
	return out
}
