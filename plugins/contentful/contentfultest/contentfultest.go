// Package contentfultest is a fake of Contentful's Content Delivery API,
// faithful to its public documentation where the contentful connector
// touches it: the Sync API (initial and delta syncs, pages linked by
// absolute nextPageUrl / nextSyncUrl, Entry, Asset, DeletedEntry and
// DeletedAsset items with every locale), content types, locales and the
// space; bearer-token auth and Contentful's error bodies (AccessTokenInvalid,
// NotFound, BadRequest, RateLimitExceeded with X-Contentful-RateLimit-Reset).
// Tests change the content between syncs (PutEntry, DeleteEntry, …) and
// build webhook calls signed as Contentful signs them (Webhook, Sign).
//
//	api := contentfultest.Start(t, contentfultest.Options{})
//	api.AddContentType(contentfultest.ContentType{ID: "blogPost", Fields: …})
//	api.PutEntry("post-1", "blogPost", contentfultest.Fields{"title": {"en-US": "Hello"}})
//	cfg := map[string]any{"space_id": api.SpaceID(), "access_token": api.AccessToken(), "base_url": api.URL}
package contentfultest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Defaults of Options.
const (
	DefaultSpaceID     = "cfexamplespace"
	DefaultEnvironment = "master"
	DefaultAccessToken = "cda-fake-t0ken-1234"
	DefaultLocale      = "en-US"
	// DefaultPageSize is the sync page size when the initial request sets no
	// limit; Contentful's is 100 items.
	DefaultPageSize = 100
	// MaxPageSize is the largest limit the sync and collection endpoints
	// accept, as Contentful's.
	MaxPageSize = 1000
)

// Options configures the fake.
type Options struct {
	// SpaceID is the one space the fake serves (default DefaultSpaceID).
	SpaceID string
	// Environments are the space's environments; the first is the one the
	// Server's content methods change (default ["master"]). Each has its
	// own content.
	Environments []string
	// AccessToken is the delivery token the fake accepts (default
	// DefaultAccessToken).
	AccessToken string
	// Locales are the environment's locales (default en-US, the default).
	// Exactly one should be Default; the first is taken otherwise.
	Locales []Locale
	// PageSize is the sync page size when the initial request sets no limit
	// (default DefaultPageSize).
	PageSize int
	// Now gives the time of each change (createdAt, updatedAt, deletedAt).
	// Default: a clock that starts at 2026-11-23T07:00:00Z and moves one
	// second per change, so that runs are reproducible.
	Now func() time.Time
}

// Locale is one of an environment's locales.
type Locale struct {
	Code    string
	Name    string
	Default bool
	// Fallback is the code of the locale whose value is used when this one
	// has none; empty for none.
	Fallback string
}

// ContentType is a content type: the shape of its entries.
type ContentType struct {
	ID           string
	Name         string
	Description  string
	DisplayField string
	Fields       []Field
}

// Field is one field of a content type.
type Field struct {
	ID   string
	Name string
	// Type is Contentful's field type: Symbol, Text, RichText, Integer,
	// Number, Date, Boolean, Location, Object, Link or Array.
	Type string
	// LinkType is Entry or Asset for a Link field.
	LinkType string
	// Items describes the elements of an Array field.
	Items     *Items
	Localized bool
	Required  bool
}

// Items is the element type of an Array field: {Type: "Symbol"} or
// {Type: "Link", LinkType: "Entry"}.
type Items struct {
	Type     string
	LinkType string
}

// Fields are an entry's or asset's field values by field id, then by locale
// code, as the Sync API returns them: {"title": {"en-US": "Hello"}}.
type Fields map[string]map[string]any

// Link is the value of a link field: a reference to the entry or asset id.
func Link(linkType, id string) map[string]any {
	return map[string]any{"sys": map[string]any{"type": "Link", "linkType": linkType, "id": id}}
}

// Server is a running fake. Its content methods (AddContentType, PutEntry,
// …) change its first environment; Env returns the others.
type Server struct {
	*Environment
	// URL is the fake's base URL, the connector's base_url.
	URL string

	srv     *httptest.Server
	space   string
	token   string
	envs    map[string]*Environment
	envList []string

	mu        sync.Mutex
	requests  []string
	throttles []int // X-Contentful-RateLimit-Reset of the next 429 answers
}

// Environment is one environment of the space: its locales, content types,
// entries and assets.
type Environment struct {
	s        *Server
	name     string
	locales  []Locale
	pageSize int
	now      func() time.Time

	mu           sync.Mutex
	contentTypes []*ContentType
	seq          int64 // bumped by every change
	items        map[string]*item
}

// item is the latest state of an entry or asset.
type item struct {
	kind        string // Entry or Asset
	id          string
	contentType string
	fields      Fields
	revision    int
	createdAt   time.Time
	updatedAt   time.Time
	deletedAt   time.Time
	deleted     bool
	seq         int64 // the change that made this state
}

func itemKey(kind, id string) string { return kind + "/" + id }

// Start serves a fake for the duration of the test.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := New(opts)
	t.Cleanup(s.Close)
	return s
}

// New serves a fake until Close.
func New(opts Options) *Server {
	if opts.SpaceID == "" {
		opts.SpaceID = DefaultSpaceID
	}
	if len(opts.Environments) == 0 {
		opts.Environments = []string{DefaultEnvironment}
	}
	if opts.AccessToken == "" {
		opts.AccessToken = DefaultAccessToken
	}
	if len(opts.Locales) == 0 {
		opts.Locales = []Locale{{Code: DefaultLocale, Name: "English (United States)", Default: true}}
	}
	if !slices.ContainsFunc(opts.Locales, func(l Locale) bool { return l.Default }) {
		opts.Locales = slices.Clone(opts.Locales)
		opts.Locales[0].Default = true
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	if opts.Now == nil {
		clock := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
		var mu sync.Mutex
		opts.Now = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(time.Second)
			return clock
		}
	}
	s := &Server{space: opts.SpaceID, token: opts.AccessToken, envs: map[string]*Environment{}}
	for _, name := range opts.Environments {
		s.envs[name] = &Environment{s: s, name: name, locales: opts.Locales, pageSize: opts.PageSize, now: opts.Now, items: map[string]*item{}}
		s.envList = append(s.envList, name)
	}
	s.Environment = s.envs[opts.Environments[0]]
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the fake.
func (s *Server) Close() { s.srv.Close() }

// SpaceID is the id of the fake's space.
func (s *Server) SpaceID() string { return s.space }

// AccessToken is the delivery token the fake accepts.
func (s *Server) AccessToken() string { return s.token }

// Env returns the environment of that name, or nil.
func (s *Server) Env(name string) *Environment { return s.envs[name] }

// Requests returns the request URIs (path and query) received so far.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ResetRequests forgets the requests received so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// RateLimit answers the next n requests with 429 Too Many Requests and
// X-Contentful-RateLimit-Reset: reset (seconds until the limit resets), as
// Contentful does once a client exceeds its rate limit.
func (s *Server) RateLimit(n, reset int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.throttles = append(s.throttles, reset)
	}
}

// Name is the environment's name.
func (e *Environment) Name() string { return e.name }

// AddContentType adds or replaces a content type.
func (e *Environment) AddContentType(ct ContentType) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ct.Name == "" {
		ct.Name = ct.ID
	}
	for i, have := range e.contentTypes {
		if have.ID == ct.ID {
			e.contentTypes[i] = &ct
			return
		}
	}
	e.contentTypes = append(e.contentTypes, &ct)
}

// PutEntry publishes an entry of a content type: a new one, or a new
// revision of an existing one (a deleted one comes back). It panics when the
// content type is unknown. It returns the entry's revision.
func (e *Environment) PutEntry(id, contentType string, fields Fields) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !slices.ContainsFunc(e.contentTypes, func(ct *ContentType) bool { return ct.ID == contentType }) {
		panic(fmt.Sprintf("contentfultest: PutEntry %q: no content type %q; add it first", id, contentType))
	}
	return e.put("Entry", id, contentType, fields)
}

// PutAsset publishes an asset (fields title, description, file by locale).
// It returns the asset's revision.
func (e *Environment) PutAsset(id string, fields Fields) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.put("Asset", id, "", fields)
}

func (e *Environment) put(kind, id, contentType string, fields Fields) int {
	if id == "" {
		panic("contentfultest: an empty id")
	}
	now := e.now().UTC()
	e.seq++
	k := itemKey(kind, id)
	it := e.items[k]
	if it == nil || it.deleted {
		it = &item{kind: kind, id: id, createdAt: now}
		e.items[k] = it
	}
	it.contentType, it.fields = contentType, clone(fields)
	it.revision++
	it.updatedAt, it.seq = now, e.seq
	return it.revision
}

// DeleteEntry unpublishes an entry: the next delta sync has a DeletedEntry
// for it. It reports whether the entry was there.
func (e *Environment) DeleteEntry(id string) bool { return e.remove("Entry", id) }

// DeleteAsset unpublishes an asset: the next delta sync has a DeletedAsset
// for it. It reports whether the asset was there.
func (e *Environment) DeleteAsset(id string) bool { return e.remove("Asset", id) }

func (e *Environment) remove(kind, id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	it := e.items[itemKey(kind, id)]
	if it == nil || it.deleted {
		return false
	}
	e.seq++
	it.deleted, it.deletedAt, it.seq = true, e.now().UTC(), e.seq
	return true
}

func clone(f Fields) Fields {
	out := make(Fields, len(f))
	for name, byLocale := range f {
		out[name] = make(map[string]any, len(byLocale))
		for loc, v := range byLocale {
			out[name][loc] = v
		}
	}
	return out
}

// ---- HTTP ----

// errorBody is Contentful's error answer.
func errorBody(id, message string, details map[string]any) map[string]any {
	b := map[string]any{"sys": map[string]any{"type": "Error", "id": id}, "message": message, "requestId": requestID()}
	if details != nil {
		b["details"] = details
	}
	return b
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/vnd.contentful.delivery.v1+json")
	if w.Header().Get("X-Contentful-Request-Id") == "" {
		w.Header().Set("X-Contentful-Request-Id", requestID())
	}
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body)
}

func notFound(w http.ResponseWriter, details map[string]any) {
	writeJSON(w, http.StatusNotFound, errorBody("NotFound", "The resource could not be found.", details))
}

func badRequest(w http.ResponseWriter, message string) {
	writeJSON(w, http.StatusBadRequest, errorBody("BadRequest", message, nil))
}

// serve routes /spaces/{space}[/environments/{env}]/{sync|content_types|locales}
// and /spaces/{space}. Without /environments/{env}, the master environment
// is meant, as at Contentful.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.URL.RequestURI())
	throttled, reset := len(s.throttles) > 0, 0
	if throttled {
		reset, s.throttles = s.throttles[0], s.throttles[1:]
	}
	s.mu.Unlock()
	if throttled {
		w.Header().Set("X-Contentful-RateLimit-Reset", strconv.Itoa(reset))
		writeJSON(w, http.StatusTooManyRequests, errorBody("RateLimitExceeded",
			"You have exceeded the rate limit of the Organization this Space belongs to by making too many API requests within a short timespan. Please wait a moment before trying the request again.", nil))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeJSON(w, http.StatusMethodNotAllowed, errorBody("MethodNotAllowed", "The Content Delivery API is read-only: use GET.", nil))
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 || parts[0] != "spaces" {
		notFound(w, nil)
		return
	}
	if parts[1] != s.space {
		notFound(w, map[string]any{"type": "Space", "id": parts[1]})
		return
	}
	if !s.authorized(r) {
		writeJSON(w, http.StatusUnauthorized, errorBody("AccessTokenInvalid", "The access token you sent could not be found or is invalid.", nil))
		return
	}
	rest := parts[2:]
	if len(rest) == 0 {
		s.serveSpace(w)
		return
	}
	envName := DefaultEnvironment
	if rest[0] == "environments" {
		if len(rest) < 3 {
			notFound(w, nil)
			return
		}
		envName, rest = rest[1], rest[2:]
	}
	env := s.envs[envName]
	if env == nil {
		notFound(w, map[string]any{"type": "Environment", "id": envName, "space": s.space})
		return
	}
	if len(rest) != 1 {
		notFound(w, nil)
		return
	}
	switch rest[0] {
	case "sync":
		env.serveSync(w, r)
	case "content_types":
		env.serveContentTypes(w, r)
	case "locales":
		env.serveLocales(w, r)
	default:
		notFound(w, nil)
	}
}

// authorized checks the delivery token, sent as Authorization: Bearer or
// as the access_token query parameter.
func (s *Server) authorized(r *http.Request) bool {
	tok := r.URL.Query().Get("access_token")
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return false
		}
		tok = strings.TrimSpace(rest)
	}
	return tok != "" && tok == s.token
}

func (s *Server) serveSpace(w http.ResponseWriter) {
	env := s.envs[s.envList[0]]
	writeJSON(w, http.StatusOK, map[string]any{
		"sys":     map[string]any{"type": "Space", "id": s.space},
		"name":    "Fake space " + s.space,
		"locales": env.localeList(false),
	})
}

func (e *Environment) localeList(withSys bool) []any {
	var out []any
	for _, l := range e.locales {
		name := l.Name
		if name == "" {
			name = l.Code
		}
		var fallback any
		if l.Fallback != "" {
			fallback = l.Fallback
		}
		m := map[string]any{"code": l.Code, "name": name, "default": l.Default, "fallbackCode": fallback}
		if withSys {
			m["sys"] = map[string]any{"id": "locale-" + l.Code, "type": "Locale", "version": 1}
		}
		out = append(out, m)
	}
	return out
}

// collection answers a collection endpoint with skip and limit.
func collection(w http.ResponseWriter, r *http.Request, all []any) {
	q := r.URL.Query()
	skip, limit := 0, 100
	if v := q.Get("skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			badRequest(w, "skip must be a non-negative integer")
			return
		}
		skip = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxPageSize {
			badRequest(w, fmt.Sprintf("limit must be an integer between 0 and %d", MaxPageSize))
			return
		}
		limit = n
	}
	page := all[min(skip, len(all)):min(skip+limit, len(all))]
	if page == nil {
		page = []any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"sys": map[string]any{"type": "Array"}, "total": len(all), "skip": skip, "limit": limit, "items": page})
}

func (e *Environment) serveLocales(w http.ResponseWriter, r *http.Request) {
	collection(w, r, e.localeList(true))
}

func (e *Environment) serveContentTypes(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	var all []any
	for _, ct := range e.contentTypes {
		all = append(all, e.contentTypeJSON(ct))
	}
	e.mu.Unlock()
	collection(w, r, all)
}

func (e *Environment) link(linkType, id string) map[string]any {
	return map[string]any{"sys": map[string]any{"type": "Link", "linkType": linkType, "id": id}}
}

func (e *Environment) contentTypeJSON(ct *ContentType) map[string]any {
	fields := []any{}
	for _, f := range ct.Fields {
		name := f.Name
		if name == "" {
			name = f.ID
		}
		m := map[string]any{"id": f.ID, "name": name, "type": f.Type, "localized": f.Localized, "required": f.Required, "disabled": false, "omitted": false}
		if f.LinkType != "" {
			m["linkType"] = f.LinkType
		}
		if f.Items != nil {
			items := map[string]any{"type": f.Items.Type}
			if f.Items.LinkType != "" {
				items["linkType"] = f.Items.LinkType
			}
			m["items"] = items
		}
		fields = append(fields, m)
	}
	var display any
	if ct.DisplayField != "" {
		display = ct.DisplayField
	}
	return map[string]any{
		"sys": map[string]any{
			"space": e.s.link("Space"), "id": ct.ID, "type": "ContentType",
			"createdAt": "2026-11-01T00:00:00.000Z", "updatedAt": "2026-11-01T00:00:00.000Z",
			"environment": e.link("Environment", e.name), "revision": 1,
		},
		"displayField": display,
		"name":         ct.Name,
		"description":  ct.Description,
		"fields":       fields,
	}
}

func (s *Server) link(linkType string) map[string]any {
	return map[string]any{"sys": map[string]any{"type": "Link", "linkType": linkType, "id": s.space}}
}

// ---- Sync API ----

// syncToken is what a fake sync token stands for; it travels base64url
// encoded, opaque to clients. A delta token (Page false) means "everything
// after change From"; a page token means "the changes in (After, To] of the
// sync that started after From".
type syncToken struct {
	Space   string `json:"s"`
	Env     string `json:"e"`
	From    int64  `json:"f"`
	To      int64  `json:"t,omitempty"`
	After   int64  `json:"a,omitempty"`
	Page    bool   `json:"p,omitempty"`
	Initial bool   `json:"i,omitempty"`
	Limit   int    `json:"l"`
	Type    string `json:"y,omitempty"`
}

func (t syncToken) encode() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(s string) (syncToken, error) {
	var t syncToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, err
	}
	return t, nil
}

var syncTypes = []string{"all", "Entry", "Asset", "Deletion", "DeletedEntry", "DeletedAsset"}

func (e *Environment) serveSync(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	initial, token := q.Get("initial"), q.Get("sync_token")
	var t syncToken
	switch {
	case initial != "" && token != "":
		badRequest(w, "Send either initial=true or sync_token, not both.")
		return
	case initial == "true":
		t = syncToken{Space: e.s.space, Env: e.name, Initial: true, Limit: e.pageSize, Type: "all"}
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxPageSize {
				badRequest(w, fmt.Sprintf("limit must be an integer between 1 and %d", MaxPageSize))
				return
			}
			t.Limit = n
		}
		if v := q.Get("type"); v != "" {
			if !slices.Contains(syncTypes, v) {
				badRequest(w, fmt.Sprintf("type must be one of %s", strings.Join(syncTypes, ", ")))
				return
			}
			t.Type = v
		}
	case token != "":
		var err error
		t, err = decodeToken(token)
		if err != nil || t.Space != e.s.space || t.Env != e.name || t.Limit < 1 {
			badRequest(w, "The sync token is invalid or belongs to another space or environment.")
			return
		}
		for _, p := range []string{"initial", "limit", "type", "content_type"} {
			if q.Has(p) {
				badRequest(w, fmt.Sprintf("%s can only be sent with initial=true; the sync token carries it.", p))
				return
			}
		}
	default:
		badRequest(w, "Send initial=true to start a sync, or the sync_token of a nextPageUrl or nextSyncUrl.")
		return
	}

	e.mu.Lock()
	if !t.Page {
		// The first page of a sync: it covers the changes up to now.
		t.To, t.After, t.Page = e.seq, t.From, true
	}
	var window []*item
	for _, it := range e.items {
		if it.seq > t.After && it.seq <= t.To && it.seq > t.From && matches(t, it) {
			window = append(window, it)
		}
	}
	sort.Slice(window, func(i, j int) bool { return window[i].seq < window[j].seq })
	more := len(window) > t.Limit
	if more {
		window = window[:t.Limit]
	}
	items := make([]any, 0, len(window))
	for _, it := range window {
		items = append(items, e.itemJSON(it))
	}
	e.mu.Unlock()

	base := e.s.URL + "/spaces/" + e.s.space + "/environments/" + e.name + "/sync?sync_token="
	body := map[string]any{"sys": map[string]any{"type": "Array"}, "items": items}
	if more {
		next := t
		next.After = window[len(window)-1].seq
		body["nextPageUrl"] = base + url.QueryEscape(next.encode())
	} else {
		next := syncToken{Space: t.Space, Env: t.Env, From: t.To, Limit: t.Limit, Type: t.Type}
		body["nextSyncUrl"] = base + url.QueryEscape(next.encode())
	}
	writeJSON(w, http.StatusOK, body)
}

// matches applies the sync's type filter; an initial sync has no
// deletions.
func matches(t syncToken, it *item) bool {
	if it.deleted && t.Initial {
		return false
	}
	kind := it.kind
	if it.deleted {
		kind = "Deleted" + kind
	}
	switch t.Type {
	case "", "all":
		return true
	case "Deletion":
		return it.deleted
	}
	return t.Type == kind
}

func (e *Environment) itemJSON(it *item) map[string]any {
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
	sys := map[string]any{
		"space":       e.s.link("Space"),
		"id":          it.id,
		"type":        it.kind,
		"createdAt":   ts(it.createdAt),
		"updatedAt":   ts(it.updatedAt),
		"environment": e.link("Environment", e.name),
		"revision":    it.revision,
	}
	if it.deleted {
		sys["type"] = "Deleted" + it.kind
		sys["deletedAt"] = ts(it.deletedAt)
		sys["updatedAt"] = ts(it.deletedAt)
		return map[string]any{"sys": sys}
	}
	if it.kind == "Entry" {
		sys["contentType"] = e.link("ContentType", it.contentType)
	}
	return map[string]any{"metadata": map[string]any{"tags": []any{}}, "sys": sys, "fields": it.fields}
}
