// Package api is synclayer's HTTP interface: management and read endpoints
// under /v1, inbound hooks under /hooks, health, readiness and metrics. It
// turns requests into engine calls and answers into JSON, and owns
// authentication and input limits; it holds no business rules.
package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/internal/sse"
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
	// server then listens on loopback only). SetAdminToken changes it.
	AdminToken string
	// Store is backed up by GET /v1/backup (nil: that route answers 503).
	Store store.Store
	// Limits bound connections and request reading; zero fields take
	// their defaults.
	Limits Limits
	// GraphQLTimeLimit bounds one GraphQL request (default 10s).
	GraphQLTimeLimit time.Duration
	// Events tunes the Server-Sent Events of GET …/events?follow=1.
	Events sse.Options
	// Dashboard, when set, is served at /ui/ (core/ui). It is no part of
	// the /v1 API: not in Routes, not in openapi.json. The server passes
	// it the engine and the admin token whenever they change.
	Dashboard Dashboard
}

// Dashboard is the web dashboard (core/ui) as the server mounts it.
type Dashboard interface {
	http.Handler
	// SetEngine switches the dashboard to another engine (a reload).
	SetEngine(*engine.Engine)
	// SetAdminToken sets the token that signs in; empty: open.
	SetAdminToken(string)
}

// Server is the HTTP handler.
type Server struct {
	opts    Options
	log     hclog.Logger
	mux     *http.ServeMux
	latency *prometheus.HistogramVec
	engine  atomic.Pointer[engine.Engine]
	// routeList holds every registered pattern, for Routes.
	routeList  []string
	plugins    atomic.Pointer[plugin.Manager]
	adminToken atomic.Pointer[string]
	conns      *connMetrics
	gql        graphqlServices // graphql.go
	// streamsStop closes when the HTTP server shuts down: event streams
	// end then instead of holding the drain until its deadline.
	streamsStop     chan struct{}
	streamsStopOnce sync.Once
}

// catchAll is the pattern of the route that answers 404 and 405.
const catchAll = "/"

// SetAdminToken replaces the admin token (a configuration reload): requests
// with the old one get 401 from then on. Empty opens the server, which the
// caller allows only on a loopback address.
func (s *Server) SetAdminToken(token string) {
	s.adminToken.Store(&token)
	if s.opts.Dashboard != nil {
		s.opts.Dashboard.SetAdminToken(token)
	}
}

// token is the admin token now.
func (s *Server) token() string { return *s.adminToken.Load() }

// eng is the engine requests go to now.
func (s *Server) eng() *engine.Engine { return s.engine.Load() }

// SetEngine switches requests to another engine (a configuration reload).
func (s *Server) SetEngine(e *engine.Engine, p *plugin.Manager) {
	s.engine.Store(e)
	s.plugins.Store(p)
	if s.opts.Dashboard != nil {
		s.opts.Dashboard.SetEngine(e)
	}
}

// StopStreams ends the event streams being served and those that start
// later. HTTPServer's server calls it when it shuts down.
func (s *Server) StopStreams() { s.streamsStopOnce.Do(func() { close(s.streamsStop) }) }

// New builds the API handler.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	opts.Limits.setDefaults()
	s := &Server{opts: opts, log: opts.Logger, mux: http.NewServeMux(), streamsStop: make(chan struct{})}
	s.SetEngine(opts.Engine, opts.Plugins)
	s.SetAdminToken(opts.AdminToken)
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "synclayer_http_request_duration_seconds",
		Help:    "HTTP request latency by route and status code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "code"})
	if err := opts.Registry.Register(s.latency); err != nil {
		return nil, err
	}
	// Present from the start, as every documented family is.
	s.latency.WithLabelValues("GET /healthz", "200")
	var err error
	if s.conns, err = newConnMetrics(opts.Registry); err != nil {
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
	s.connectionRoutes()
	s.openAPIRoutes()
	s.backupRoutes()
	s.graphqlRoutes()
	s.nangoRoutes() // nango.go: the Nango-compatible API (SPEC §13)
	if d := s.opts.Dashboard; d != nil {
		// Not in routeList: the dashboard is no part of the /v1 API. It
		// authenticates by its own session; its live streams end at
		// shutdown as the API's do.
		s.mux.Handle("/ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d.ServeHTTP(w, r.WithContext(sse.WithStop(r.Context(), s.streamsStop)))
		}))
		s.mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	}
	s.mux.HandleFunc(catchAll, s.noRoute)
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

// ServeHTTP serves a request with a body limit and pace, panic recovery
// and metrics. On a reserve connection (see Limits) only health and
// metrics are served.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	if r.Context().Value(reserveKey{}) != nil {
		rec.Header().Set("Connection", "close")
		if !isHealthPath(r) {
			rec.Header().Set("Retry-After", "5")
			writeError(rec, http.StatusServiceUnavailable, "overloaded", "the server has too many open connections; try again in a few seconds")
			s.latency.WithLabelValues("unmatched", "503").Observe(time.Since(start).Seconds())
			return
		}
	}
	var paced *pacedBody
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		paced = newPacedBody(w, r, &s.opts.Limits)
		r.Body = paced
	}
	defer func() {
		if paced != nil {
			paced.done()
		}
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
		if route == "" || route == catchAll {
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

// Unwrap gives http.ResponseController the connection's writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// auth checks the admin token when one is set (constant time).
func (s *Server) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.token() != "" && !s.isAdmin(r) {
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
	admin := s.token()
	return ok && admin != "" && subtle.ConstantTimeCompare([]byte(got), []byte(admin)) == 1
}

// readScope is what a request may read of a layer's records: everything
// (admin, or an open server), or an api_token's models, sources and
// connections.
type readScope struct {
	all         bool
	token       string
	models      []string
	sources     []string
	connections []string
}

// authRead authenticates a record read: the admin token, or an api_token
// of the layer (its SHA-256 compared in constant time with every token's).
// With no admin token set the server is open (it then listens on loopback
// only). ok is false when an answer was written.
func (s *Server) authRead(w http.ResponseWriter, r *http.Request, layer string) (readScope, bool) {
	if s.token() == "" || s.isAdmin(r) {
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
			match = &readScope{token: t.Name, models: t.Models, sources: t.Sources, connections: t.Connections}
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

// engineError maps engine and store errors to answers.
func (s *Server) engineError(w http.ResponseWriter, err error) {
	var checkErr *engine.CheckError
	switch {
	case errors.Is(err, engine.ErrUnknownLayer), errors.Is(err, engine.ErrUnknownRun),
		errors.Is(err, engine.ErrUnknownSource), errors.Is(err, engine.ErrUnknownSync),
		errors.Is(err, engine.ErrUnknownConnection),
		errors.Is(err, store.ErrNoRevision), errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, engine.ErrInvalid):
		writeError(w, http.StatusBadRequest, "invalid", scrubInternals(strings.TrimPrefix(err.Error(), engine.ErrInvalid.Error()+": ")))
	case errors.Is(err, engine.ErrExists):
		writeError(w, http.StatusConflict, "exists", strings.TrimPrefix(err.Error(), engine.ErrExists.Error()+": ")+" already exists: pick another id, or change it with PATCH")
	case errors.As(err, &checkErr):
		writeError(w, http.StatusUnprocessableEntity, "check_failed", "the connector's check refused the connection: "+scrubInternals(checkErr.Message))
	case errors.Is(err, store.ErrRevisionGone):
		writeError(w, http.StatusGone, "revision_gone", err.Error())
	case errors.Is(err, engine.ErrNotReady):
		writeError(w, http.StatusServiceUnavailable, "not_ready", err.Error())
	default:
		s.log.Error("request failed", "error", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error; see the server log")
	}
}
