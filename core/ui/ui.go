// Package ui is synclayer's web dashboard, served at /ui/ from the binary:
// server-rendered html/template pages with embedded assets (no CDN, no web
// fonts), that call the same engine and store methods as core/api, never
// HTTP to the host itself.
//
// Sign-in takes the admin token and opens a server-side session (a random
// id in an HttpOnly, SameSite=Strict cookie, Secure over TLS, expiring
// after SessionLifetime). Every form carries the session's CSRF token; a
// POST without it is refused with 403. With no admin token configured (the
// host then listens on loopback only) the dashboard is open, as the API
// is, but forms still carry CSRF tokens.
//
// Pages work with JavaScript off; the small script only adds live updates
// (the event log as Server-Sent Events) and runs "Sync now" in place.
package ui

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/time/rate"

	"github.com/synclayer/synclayer/core/engine"
	"github.com/synclayer/synclayer/core/graphql"
	"github.com/synclayer/synclayer/core/internal/sse"
	"github.com/synclayer/synclayer/core/store"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Defaults of Options.
const (
	DefaultSessionLifetime = 12 * time.Hour
	DefaultMaxSessions     = 10000
)

// Options configure the dashboard.
type Options struct {
	Logger hclog.Logger
	// SessionLifetime is how long a sign-in lasts (default 12h).
	SessionLifetime time.Duration
	// MaxSessions bounds the sessions held in memory (default 10000);
	// past it the oldest are dropped.
	MaxSessions int
	// GraphQLTimeLimit bounds one query of the explorer (default 10s).
	GraphQLTimeLimit time.Duration
	// Events tunes the live event streams.
	Events sse.Options
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// UI is the dashboard's handler. Mount it at /ui/; give it the engine
// (SetEngine) and the admin token (SetAdminToken) as they change. core/api
// does both when it is set as api.Options.Dashboard.
type UI struct {
	opts   Options
	log    hclog.Logger
	mux    *http.ServeMux
	engine atomic.Pointer[engine.Engine]
	token  atomic.Pointer[[32]byte] // SHA-256 of the admin token; nil: open
	pages  map[string]*template.Template
	static http.Handler

	sessions sessions
	// signins limits failed sign-ins host-wide: guessing a token is slow.
	signins *rate.Limiter
	// handleKey keys the opaque handles that stand for trigger-hook ids
	// in forms: the ids are secrets and are never rendered.
	handleKey []byte

	gqlMu sync.Mutex
	gql   map[string]*graphql.Service

	counts recordCounts
}

// New builds the dashboard. It serves nothing useful until SetEngine.
func New(opts Options) (*UI, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.SessionLifetime <= 0 {
		opts.SessionLifetime = DefaultSessionLifetime
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	u := &UI{opts: opts, log: opts.Logger, mux: http.NewServeMux(), gql: map[string]*graphql.Service{},
		signins: rate.NewLimiter(rate.Every(time.Second), 10), handleKey: make([]byte, 32)}
	u.sessions.m = map[string]*session{}
	u.counts.m = map[string]*layerCounts{}
	if _, err := rand.Read(u.handleKey); err != nil {
		return nil, err
	}
	if err := u.parseTemplates(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	u.static = http.StripPrefix("/ui/static/", http.FileServerFS(static))
	u.routes()
	return u, nil
}

// SetEngine switches the dashboard to another engine (a reload).
func (u *UI) SetEngine(e *engine.Engine) {
	u.engine.Store(e)
	u.gqlMu.Lock()
	u.gql = map[string]*graphql.Service{} // schemas belong to the old configuration
	u.gqlMu.Unlock()
}

// SetAdminToken sets the token that signs in; empty opens the dashboard.
// Sessions signed in with another token end.
func (u *UI) SetAdminToken(token string) {
	if token == "" {
		u.token.Store(nil)
		return
	}
	sum := sha256.Sum256([]byte(token))
	u.token.Store(&sum)
}

func (u *UI) eng() *engine.Engine { return u.engine.Load() }

// open tells whether no admin token is set.
func (u *UI) open() bool { return u.token.Load() == nil }

func (u *UI) parseTemplates() error {
	funcs := template.FuncMap{
		"time":     fmtTime,
		"ago":      func(t time.Time) string { return ago(u.opts.Now(), t) },
		"duration": fmtDuration,
		"stateClass": func(s string) string {
			// Run, sync and delivery states, and event types.
			switch s {
			case store.RunCompleted, store.DeliveryDelivered, "sync.completed", engine.ConnectionActive:
				return "ok"
			case store.RunFailed, store.DeliveryStopped, "sync.failed", "plugin.crashed", "webhook.failed",
				engine.ConnectionNeedsAttention, engine.EventConnectionNeedsAttention:
				return "bad"
			case engine.SyncRunning, engine.SyncQueued, store.DeliveryPending:
				return "busy"
			case engine.SyncPaused:
				return "paused"
			}
			return "idle"
		},
		"join":     strings.Join,
		"schedule": fmtSchedule,
		"inc":      func(i int) int { return i + 1 },
		"dict": func(kv ...any) (map[string]any, error) {
			if len(kv)%2 != 0 {
				return nil, errors.New("dict needs key and value pairs")
			}
			m := make(map[string]any, len(kv)/2)
			for i := 0; i < len(kv); i += 2 {
				k, ok := kv[i].(string)
				if !ok {
					return nil, errors.New("dict keys are strings")
				}
				m[k] = kv[i+1]
			}
			return m, nil
		},
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html")
	if err != nil {
		return err
	}
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return err
	}
	u.pages = map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(assets, n)
		if err != nil {
			return err
		}
		u.pages[name] = t
	}
	return nil
}

func (u *UI) routes() {
	u.mux.Handle("GET /ui/static/", u.static)
	u.mux.HandleFunc("GET /ui/signin", u.signinPage)
	u.mux.HandleFunc("POST /ui/signin", u.signin)
	u.mux.HandleFunc("POST /ui/signout", u.authed(u.signout))

	u.mux.HandleFunc("GET /ui/{$}", u.authed(u.overview))
	u.mux.HandleFunc("GET /ui/layers/{layer}", u.authed(u.layerPage))
	u.mux.HandleFunc("POST /ui/layers/{layer}/sync", u.authed(u.syncNow))
	u.mux.HandleFunc("POST /ui/layers/{layer}/pause", u.authed(u.pause))
	u.mux.HandleFunc("POST /ui/layers/{layer}/resume", u.authed(u.resume))
	u.mux.HandleFunc("GET /ui/layers/{layer}/runs/{run}", u.authed(u.runPage))
	u.mux.HandleFunc("GET /ui/layers/{layer}/activity", u.authed(u.activity))
	u.mux.HandleFunc("GET /ui/layers/{layer}/events", u.authed(u.events))
	u.mux.HandleFunc("GET /ui/layers/{layer}/revisions", u.authed(u.revisions))
	u.mux.HandleFunc("POST /ui/layers/{layer}/pin", u.authed(u.pin))
	u.mux.HandleFunc("POST /ui/layers/{layer}/unpin", u.authed(u.unpin))
	u.mux.HandleFunc("GET /ui/layers/{layer}/records", u.authed(u.records))
	u.mux.HandleFunc("GET /ui/layers/{layer}/hooks", u.authed(u.hooks))
	u.mux.HandleFunc("POST /ui/layers/{layer}/hooks", u.authed(u.addHook))
	u.mux.HandleFunc("POST /ui/layers/{layer}/hooks/delete", u.authed(u.deleteHook))
	u.mux.HandleFunc("GET /ui/layers/{layer}/deliveries", u.authed(u.deliveries))
	u.mux.HandleFunc("POST /ui/layers/{layer}/deliveries/retry", u.authed(u.redeliver))
	u.mux.HandleFunc("GET /ui/layers/{layer}/graphql", u.authed(u.graphqlPage))
	u.mux.HandleFunc("POST /ui/layers/{layer}/graphql", u.authed(u.graphqlPage))
	u.mux.HandleFunc("GET /ui/layers/{layer}/connections", u.authed(u.connectionsIndex))
	u.mux.HandleFunc("GET /ui/layers/{layer}/connections/{source}", u.authed(u.connectionList))
	u.mux.HandleFunc("POST /ui/layers/{layer}/connections/{source}", u.authed(u.createConnection))
	u.mux.HandleFunc("GET /ui/layers/{layer}/connections/{source}/{id}", u.authed(u.connectionPage))
	u.mux.HandleFunc("POST /ui/layers/{layer}/connections/{source}/{id}/pause", u.authed(u.pauseConnection))
	u.mux.HandleFunc("POST /ui/layers/{layer}/connections/{source}/{id}/resume", u.authed(u.resumeConnection))
	u.mux.HandleFunc("GET /ui/layers/{layer}/connections/{source}/{id}/delete", u.authed(u.deleteConfirm))
	u.mux.HandleFunc("POST /ui/layers/{layer}/connections/{source}/{id}/delete", u.authed(u.deleteConnection))
	u.mux.HandleFunc("/ui/", u.authed(u.notFound))
}

// ServeHTTP serves the dashboard, with the security headers every answer
// carries: no script, style or frame from anywhere else.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if !strings.HasPrefix(r.URL.Path, "/ui/static/") {
		h.Set("Cache-Control", "no-store")
	}
	if u.eng() == nil {
		http.Error(w, "the dashboard is starting", http.StatusServiceUnavailable)
		return
	}
	u.mux.ServeHTTP(w, r)
}

// view is what every page template gets.
type view struct {
	Title string
	// Layer is the layer the page is about ("" on the overview); Tab the
	// active entry of its navigation.
	Layer  string
	Tab    string
	Layers []string
	CSRF   string
	// SignOut shows the sign-out button (not on an open dashboard).
	SignOut bool
	// Connections shows the connections entry of a layer's navigation:
	// set by render for a layer with a source with connections (SPEC §12).
	Connections bool
	// Flash is a notice at the top of the page (an action's outcome);
	// Error an error notice.
	Flash, Error string
	Data         any
}

// render writes a page.
func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	t := u.pages[name]
	if t == nil {
		u.log.Error("dashboard: no template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if s := sessionOf(r); s != nil {
		v.CSRF = s.csrf
	}
	v.SignOut = !u.open() && sessionOf(r) != nil && sessionOf(r).authed
	if v.Layers == nil && u.eng() != nil {
		v.Layers = u.eng().LayerNames()
	}
	if v.Layer != "" && u.eng() != nil {
		v.Connections = u.hasConnections(v.Layer)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		u.log.Error("dashboard: render", "page", name, "error", err)
		http.Error(w, "internal error; see the server log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail renders an error page.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	v := view{Title: http.StatusText(status), Error: msg}
	if l := r.PathValue("layer"); l != "" && slices.Contains(u.eng().LayerNames(), l) {
		v.Layer = l // the layer's navigation, for a layer that exists
	}
	u.render(w, r, status, "error", v)
}

func (u *UI) notFound(w http.ResponseWriter, r *http.Request) {
	u.fail(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path+".")
}

// engineError renders an engine or store error as the API maps it.
func (u *UI) engineError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, engine.ErrUnknownLayer), errors.Is(err, engine.ErrUnknownRun),
		errors.Is(err, engine.ErrUnknownSource), errors.Is(err, engine.ErrUnknownSync),
		errors.Is(err, engine.ErrUnknownConnection),
		errors.Is(err, store.ErrNoRevision), errors.Is(err, store.ErrNotFound):
		u.fail(w, r, http.StatusNotFound, err.Error())
	case errors.Is(err, engine.ErrInvalid):
		u.fail(w, r, http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrRevisionGone):
		u.fail(w, r, http.StatusGone, err.Error())
	case errors.Is(err, engine.ErrNotReady):
		u.fail(w, r, http.StatusServiceUnavailable, err.Error())
	default:
		u.log.Error("dashboard: request failed", "path", r.URL.Path, "error", err)
		u.fail(w, r, http.StatusInternalServerError, "Something went wrong; the server log has the details.")
	}
}

// graphqlService is the GraphQL service of a layer, for the explorer. It
// caches schemas as the API's does (a second cache: the dashboard cannot
// reach the API's).
func (u *UI) graphqlService(layer string) *graphql.Service {
	u.gqlMu.Lock()
	defer u.gqlMu.Unlock()
	g := u.gql[layer]
	if g == nil {
		g = graphql.New(graphql.Options{Logger: u.log.Named("graphql").With("layer", layer), TimeLimit: u.opts.GraphQLTimeLimit})
		u.gql[layer] = g
	}
	return g
}

// hookHandle is the opaque name of a trigger hook in forms: an HMAC of its
// id under a key of this process, so the id itself (a secret: it triggers
// syncs) never reaches a page after the one that shows it once.
func (u *UI) hookHandle(id string) string {
	m := hmac.New(sha256.New, u.handleKey)
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil)[:12])
}

// redirect answers a form with 303 See Other.
func redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}
