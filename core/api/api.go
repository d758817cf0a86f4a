// Package api is synclayer's HTTP interface: management and read endpoints
// under /v1, inbound hooks under /hooks, health, readiness and metrics. It
// turns requests into engine calls and answers into JSON, and owns
// authentication and input limits; it holds no business rules.
package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/plugin"
	"github.com/synclayer/synclayer/core/store"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 1 << 20

// Options configure the API server.
type Options struct {
	Engine  *engine.Engine
	Plugins *plugin.Manager
	Logger  hclog.Logger
	// Registry serves /metrics; the API adds its HTTP metrics to it.
	Registry *prometheus.Registry
	// AdminToken guards management and read paths; empty: open (the
	// server then listens on loopback only).
	AdminToken string
	// GraphQLTimeLimit bounds one GraphQL request (default 10s).
	GraphQLTimeLimit time.Duration
}

// Server is the HTTP handler.
type Server struct {
	opts    Options
	log     hclog.Logger
	mux     *http.ServeMux
	latency *prometheus.HistogramVec
	engine  atomic.Pointer[engine.Engine]
	// routeList holds every registered pattern, for Routes.
	routeList []string
	plugins   atomic.Pointer[plugin.Manager]
	gql       graphqlServices // graphql.go
}

// eng is the engine requests go to now.
func (s *Server) eng() *engine.Engine { return s.engine.Load() }

// SetEngine switches requests to another engine (a configuration reload).
func (s *Server) SetEngine(e *engine.Engine, p *plugin.Manager) {
	s.engine.Store(e)
	s.plugins.Store(p)
}

// New builds the API handler.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	s := &Server{opts: opts, log: opts.Logger, mux: http.NewServeMux()}
	s.SetEngine(opts.Engine, opts.Plugins)
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "synclayer_http_request_duration_seconds",
		Help:    "HTTP request latency by route and status code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "code"})
	if err := opts.Registry.Register(s.latency); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	s.public("GET /healthz", s.healthz)
	s.public("GET /readyz", s.readyz)
	s.public("GET /metrics", promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{}).ServeHTTP)

	s.handle("GET /v1/layers", s.listLayers)
	s.handle("GET /v1/layers/{layer}", s.getLayer)
	s.handle("POST /v1/layers/{layer}/syncs", s.triggerSync)
	s.handle("GET /v1/layers/{layer}/runs/{run}", s.getRun)
	s.handle("GET /v1/layers/{layer}/events", s.listEvents)
	s.public("GET /v1/layers/{layer}/records", s.listRecords) // authRead: admin or api_token
	s.handle("GET /v1/layers/{layer}/revisions", s.listRevisions)
	s.handle("PUT /v1/layers/{layer}/pin", s.pin)
	s.handle("DELETE /v1/layers/{layer}/pin", s.unpin)
	s.handle("GET /v1/audit", s.listAudit)
	s.handle("GET /v1/plugins", s.listPlugins)
	s.hookRoutes()
	s.deliveryRoutes()
	s.openAPIRoutes()
	s.graphqlRoutes()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
}

// handle registers an authenticated route.
func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.routeList = append(s.routeList, pattern)
	s.mux.Handle(pattern, s.auth(h))
}

// public registers a route that needs no bearer token (health, metrics,
// and hooks, which authenticate by their own means).
func (s *Server) public(pattern string, h http.HandlerFunc) {
	s.routeList = append(s.routeList, pattern)
	s.mux.HandleFunc(pattern, h)
}

// Routes lists every route the server registers ("METHOD /path/{param}"),
// in registration order.
func (s *Server) Routes() []string { return append([]string(nil), s.routeList...) }

// ServeHTTP serves a request with a body limit, panic recovery and metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v)
			if !rec.wrote {
				writeError(rec, http.StatusInternalServerError, "internal", "internal error")
			}
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.latency.WithLabelValues(route, strconv.Itoa(rec.status)).Observe(time.Since(start).Seconds())
	}()
	r.Body = http.MaxBytesReader(rec, r.Body, MaxBodyBytes)
	s.mux.ServeHTTP(rec, r)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// auth checks the admin token when one is set (constant time).
func (s *Server) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.AdminToken != "" && !s.isAdmin(r) {
			unauthorized(w)
			return
		}
		h(w, r)
	})
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="synclayer"`)
	writeError(w, http.StatusUnauthorized, "unauthorized", "a valid token is required: Authorization: Bearer <token>")
}

func bearer(r *http.Request) (string, bool) {
	return strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// isAdmin tells whether the request carries the admin token.
func (s *Server) isAdmin(r *http.Request) bool {
	got, ok := bearer(r)
	return ok && s.opts.AdminToken != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.AdminToken)) == 1
}

// readScope is what a request may read of a layer's records: everything
// (admin, or an open server), or an api_token's models and sources.
type readScope struct {
	all     bool
	token   string
	models  []string
	sources []string
}

// authRead authenticates a record read: the admin token, or an api_token
// of the layer (its SHA-256 compared in constant time with every token's).
// With no admin token set the server is open (it then listens on loopback
// only). ok is false when an answer was written.
func (s *Server) authRead(w http.ResponseWriter, r *http.Request, layer string) (readScope, bool) {
	if s.opts.AdminToken == "" || s.isAdmin(r) {
		return readScope{all: true}, true
	}
	got, ok := bearer(r)
	if !ok || got == "" {
		unauthorized(w)
		return readScope{}, false
	}
	sum := sha256.Sum256([]byte(got))
	var match *readScope
	for _, t := range s.eng().APITokens(layer) {
		want, err := hex.DecodeString(t.TokenSHA256)
		if err != nil {
			continue
		}
		if subtle.ConstantTimeCompare(sum[:], want) == 1 && match == nil {
			match = &readScope{token: t.Name, models: t.Models, sources: t.Sources}
		}
	}
	if match == nil {
		unauthorized(w)
		return readScope{}, false
	}
	return *match, true
}

// allows checks a records query against the scope; it answers 403 when the
// query reaches beyond it.
func (sc readScope) allows(w http.ResponseWriter, model, source string) bool {
	if sc.all {
		return true
	}
	if len(sc.models) > 0 && !slices.Contains(sc.models, model) {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("token %q reads only the models %s: pass model= one of them", sc.token, strings.Join(sc.models, ", ")))
		return false
	}
	if len(sc.sources) > 0 && !slices.Contains(sc.sources, source) {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("token %q reads only the sources %s: pass source= one of them", sc.token, strings.Join(sc.sources, ", ")))
		return false
	}
	return true
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.eng().Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// Error answers are {"error": {"code": ..., "message": ...}}.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// engineError maps engine and store errors to answers.
func (s *Server) engineError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, engine.ErrUnknownLayer), errors.Is(err, engine.ErrUnknownRun),
		errors.Is(err, engine.ErrUnknownSource), errors.Is(err, engine.ErrUnknownSync),
		errors.Is(err, store.ErrNoRevision), errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, store.ErrRevisionGone):
		writeError(w, http.StatusGone, "revision_gone", err.Error())
	case errors.Is(err, engine.ErrNotReady):
		writeError(w, http.StatusServiceUnavailable, "not_ready", err.Error())
	default:
		s.log.Error("request failed", "error", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error; see the server log")
	}
}

// decodeBody reads an optional JSON object body into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than "+strconv.Itoa(MaxBodyBytes)+" bytes")
			return false
		}
		writeError(w, http.StatusBadRequest, "bad_body", "could not read the request body")
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return true
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad_json", "the body is not the expected JSON object: "+err.Error())
		return false
	}
	return true
}
