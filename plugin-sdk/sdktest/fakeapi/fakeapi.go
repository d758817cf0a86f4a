// Package fakeapi is a kit for the fake upstream every HTTP connector's
// tests need: JSON list endpoints paged by cursor, offset, page number or
// Link header; a bearer-token check; injected failures (429 with
// Retry-After, 5xx); HMAC signatures for payload webhooks; and a record of
// every request.
//
//	api := fakeapi.New(t)
//	api.RequireBearer("t0ken")
//	api.List("/posts", fakeapi.List{
//		Items:       func(r *http.Request) []any { return posts.since(r.URL.Query().Get("updated_since")) },
//		Paging:      fakeapi.Cursor,
//		Param:       "after",
//		RecordsPath: "data",
//		NextPath:    "meta.next_cursor",
//	})
//	api.FailNext(fakeapi.TooManyRequests(time.Second))
//	… run the connector against api.URL …
//	api.URIs() // ["/posts", "/posts", "/posts?after=2", …]
//
// The pages it serves are the ones the paginators of plugin-sdk walk
// (sdk.CursorPagination, OffsetPagination, PageNumberPagination,
// LinkPagination).
package fakeapi

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// MaxBody bounds the request bodies a Server reads and records.
const MaxBody = 1 << 20

// Server is a fake HTTP API, listening on a local port until the test
// ends. It is safe for concurrent use; configure it before the connector
// calls it, or from the test while it does.
type Server struct {
	// URL is the server's base URL, "http://127.0.0.1:port" (no trailing
	// slash).
	URL string

	srv      *httptest.Server
	mux      *http.ServeMux
	mu       sync.Mutex
	token    string
	failures []Failure
	requests []Request
}

// New starts a Server; it is closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{mux: http.NewServeMux()}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Client returns an http.Client for the server (its transport is closed
// with the server).
func (s *Server) Client() *http.Client { return s.srv.Client() }

// RequireBearer makes every request need "Authorization: Bearer <token>";
// others get 401 with a JSON error. The comparison is constant-time. An
// empty token turns the check off.
func (s *Server) RequireBearer(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// Handle serves pattern (an http.ServeMux pattern) with h, behind the
// token check, the injected failures and the request record. Unknown paths
// answer 404.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleFunc is Handle for a function.
func (s *Server) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	s.mux.HandleFunc(pattern, h)
}

// Failure is an answer injected in place of the next matching request's.
type Failure struct {
	// Match restricts the failure to requests whose URI (path and query)
	// contains it; empty matches any request.
	Match string
	// Status is the HTTP status to answer.
	Status int
	// Body is the answer's body.
	Body string
	// Header holds headers of the answer (Retry-After, …).
	Header http.Header
}

// TooManyRequests is a 429 answer that asks the client to wait
// retryAfter (whole seconds, rounded up) in its Retry-After header.
func TooManyRequests(retryAfter time.Duration) Failure {
	secs := int((retryAfter + time.Second - 1) / time.Second)
	return Failure{
		Status: http.StatusTooManyRequests,
		Body:   `{"error":"rate limited"}`,
		Header: http.Header{"Retry-After": {strconv.Itoa(secs)}},
	}
}

// ServerError is a 5xx answer (503 Service Unavailable when status is 0).
func ServerError(status int) Failure {
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	return Failure{Status: status, Body: `{"error":"` + http.StatusText(status) + `"}`}
}

// FailNext queues failures: each answers, in order, the next request that
// it matches (once), instead of the handler.
func (s *Server) FailNext(f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, f...)
}

// Request is one request the server received.
type Request struct {
	// Method is the HTTP method.
	Method string
	// URI is the path and query ("/posts?after=2").
	URI string
	// Header is the request's header.
	Header http.Header
	// Body is the request's body (up to MaxBody bytes).
	Body []byte
	// Time is when the server received it.
	Time time.Time
}

// Requests returns every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// URIs returns the URI of every request received so far, in order.
func (s *Server) URIs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.requests))
	for i, r := range s.requests {
		out[i] = r.URI
	}
	return out
}

// ResetRequests forgets the requests received so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, MaxBody))
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, URI: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body, Time: time.Now()})
	token := s.token
	var fail *Failure
	for i, f := range s.failures {
		if strings.Contains(r.URL.RequestURI(), f.Match) {
			fail = &f
			s.failures = append(s.failures[:i:i], s.failures[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	if token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			writeJSONStatus(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
			return
		}
	}
	if fail != nil {
		for k, v := range fail.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(fail.Status)
		io.WriteString(w, fail.Body)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Paging is how a List endpoint splits its items into pages.
type Paging int

// Paging styles of a List.
const (
	// None answers every item at once.
	None Paging = iota
	// Cursor answers a next cursor in the body (at NextPath) until the
	// last page; the client sends it back in ?Param= (default "cursor").
	// The cursor is the offset of the next page's first item, as text.
	Cursor
	// Offset reads ?Param= (default "offset", from 0) and ?LimitParam=
	// (default "limit"; PageSize when absent); a short page is the last.
	Offset
	// PageNumber reads ?Param= (default "page", from 1) and ?LimitParam=
	// (default "limit"; PageSize when absent); past the end, a page is
	// empty.
	PageNumber
	// Link sends `Link: <path?Param=N>; rel="next"` (default "page", from
	// 1; a relative URL) until the last page.
	Link
)

// List is a paged JSON list endpoint.
type List struct {
	// Items returns the items for a request, in order; it is called for
	// every page, so the test may change the data between requests and
	// filter on the request's query (?updated_since=…). Each item is
	// encoded with encoding/json.
	Items func(r *http.Request) []any
	// Paging is the paging style.
	Paging Paging
	// PageSize is the size of a page when the client asks for none
	// (default 2, so that a few items make several pages).
	PageSize int
	// Param is the query parameter of the position (defaults: see
	// Paging).
	Param string
	// LimitParam is the query parameter of the page size asked for
	// (default "limit"; Offset and PageNumber only).
	LimitParam string
	// RecordsPath is the dot path of the items' array in the answer:
	// empty answers a bare array, "data" {"data": […]}, "result.items"
	// {"result": {"items": […]}}.
	RecordsPath string
	// NextPath is the dot path of the next cursor (Cursor only; default
	// "next"). On the last page it holds NextEnd. A Cursor list needs an
	// object to put it in: its RecordsPath defaults to "data".
	NextPath string
	// NextEnd is the value of NextPath on the last page: "" (the default,
	// an empty string) or "null" (JSON null) or "absent" (no such key).
	NextEnd string
	// NextAsURL answers, at NextPath, the next page's URL relative to the
	// server ("/posts?cursor=4") instead of the cursor value.
	NextAsURL bool
}

// List serves l at path (an exact path).
func (s *Server) List(path string, l List) {
	if l.PageSize <= 0 {
		l.PageSize = 2
	}
	if l.LimitParam == "" {
		l.LimitParam = "limit"
	}
	if l.NextPath == "" {
		l.NextPath = "next"
	}
	if l.Paging == Cursor && l.RecordsPath == "" {
		l.RecordsPath = "data"
	}
	if l.Param == "" {
		l.Param = map[Paging]string{Cursor: "cursor", Offset: "offset", PageNumber: "page", Link: "page"}[l.Paging]
	}
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		l.serve(w, r)
	})
}

func (l *List) serve(w http.ResponseWriter, r *http.Request) {
	var items []any
	if l.Items != nil {
		items = l.Items(r)
	}
	q := r.URL.Query()
	num := func(name string, def int) (int, bool) {
		v := q.Get(name)
		if v == "" {
			return def, true
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeJSONStatus(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("?%s=%q is not a number", name, v)})
			return 0, false
		}
		return n, true
	}
	size := l.PageSize
	if l.Paging == Offset || l.Paging == PageNumber {
		var ok bool
		if size, ok = num(l.LimitParam, l.PageSize); !ok {
			return
		}
		if size == 0 {
			size = l.PageSize
		}
	}
	from, ok := 0, true
	switch l.Paging {
	case None:
		size = len(items)
	case Cursor, Offset:
		from, ok = num(l.Param, 0)
	case PageNumber, Link:
		var page int
		if page, ok = num(l.Param, 1); ok {
			from = (max(page, 1) - 1) * size
		}
	}
	if !ok {
		return
	}
	page := []any{}
	if from < len(items) {
		page = items[from:min(from+size, len(items))]
	}
	more := from+size < len(items)
	answer := nest(l.RecordsPath, page)
	switch l.Paging {
	case Cursor:
		var next any = strconv.Itoa(from + size)
		if l.NextAsURL {
			next = withParam(r.URL, l.Param, strconv.Itoa(from+size))
		}
		if !more {
			switch l.NextEnd {
			case "null":
				next = nil
			case "absent":
				next = absent{}
			default:
				next = ""
			}
		}
		if _, isAbsent := next.(absent); !isAbsent {
			answer = merge(answer, nest(l.NextPath, next))
		}
	case Link:
		if more {
			w.Header().Add("Link", fmt.Sprintf(`<%s>; rel="next"`, withParam(r.URL, l.Param, strconv.Itoa(from/size+2))))
		}
	}
	writeJSONStatus(w, http.StatusOK, answer)
}

type absent struct{}

// withParam is u's path and query with one parameter set.
func withParam(u *url.URL, key, value string) string {
	q := u.Query()
	q.Set(key, value)
	return u.Path + "?" + q.Encode()
}

// nest wraps v in objects along a dot path: "a.b" → {"a":{"b":v}}.
func nest(path string, v any) any {
	if path == "" {
		return v
	}
	keys := strings.Split(path, ".")
	for i := len(keys) - 1; i >= 0; i-- {
		v = map[string]any{keys[i]: v}
	}
	return v
}

// merge merges object b into object a, recursively.
func merge(a, b any) any {
	am, ok1 := a.(map[string]any)
	bm, ok2 := b.(map[string]any)
	if !ok1 || !ok2 {
		return b
	}
	for k, v := range bm {
		am[k] = merge(am[k], v)
	}
	return am
}

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ---- signatures ----

// SignHex returns prefix followed by the hex HMAC-SHA256 of body with
// secret: the X-Hub-Signature-256 style ("sha256=…", GitHub and most
// others).
func SignHex(secret string, body []byte, prefix string) string {
	return sdk.HMACSignature{Secret: []byte(secret), Prefix: prefix}.Sign(body)
}

// SignBase64 returns prefix followed by the base64 HMAC-SHA256 of body
// with secret (Shopify's X-Shopify-Hmac-Sha256 style).
func SignBase64(secret string, body []byte, prefix string) string {
	return sdk.HMACSignature{Secret: []byte(secret), Prefix: prefix, Encoding: sdk.Base64}.Sign(body)
}

// SignedHeader returns a header holding the hex signature of body (see
// SignHex) under name: ready for sdktest.WebhookOptions.Header.
func SignedHeader(name, secret string, body []byte, prefix string) http.Header {
	return http.Header{http.CanonicalHeaderKey(name): {SignHex(secret, body, prefix)}}
}
