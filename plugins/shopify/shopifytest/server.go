// Package shopifytest is a fake of Shopify's Admin GraphQL API for tests:
// one shop with products (options, variants, images) and collections,
// served at POST /admin/api/{version}/graphql.json behind an
// X-Shopify-Access-Token, as Shopify's public documentation describes it.
//
// Queries are parsed and validated against a subset of the Admin schema
// (github.com/vektah/gqlparser), then executed: products and collections
// connections with first/after/last/before/reverse, sortKey and a
// Shopify search query (`updated_at:>'2026-11-23T07:00:00Z'`), edges/node
// and nodes, pageInfo, global ids (gid://shopify/Product/123), and the
// single-object product(id:) and collection(id:) fields. Every answer
// carries extensions.cost (requestedQueryCost, actualQueryCost,
// throttleStatus) from a leaky bucket; a query that costs more than the
// bucket holds is answered with a THROTTLED error, one over the single
// query limit with MAX_COST_EXCEEDED. A wrong token is answered 401 with
// Shopify's body, a shop other than the fake's 404, and FailNext scripts
// other answers (a 429 with Retry-After, a 5xx).
//
// WebhookRequest renders Shopify's REST-shaped webhook payloads
// (products/create, collections/delete, …) with their headers, signed
// as Shopify signs them.
package shopifytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Defaults of Options.
const (
	DefaultShop        = "demo.myshopify.com"
	DefaultToken       = "shpat_0123456789abcdef0123456789abcdef"
	DefaultBucketSize  = 2000
	DefaultRestoreRate = 100
	MaxQueryCost       = 1000
	// MaxPageSize is the most a connection's first or last may ask for.
	MaxPageSize = 250
	// MaxBodyBytes bounds a request's body.
	MaxBodyBytes = 1 << 20
)

// SupportedVersions are the API versions the fake answers as such; another
// version is answered by the oldest of them, with X-Shopify-API-Version
// saying so, as Shopify does.
var SupportedVersions = []string{"2025-10", "2026-01", "2026-04", "2026-07", "2026-10", "unstable"}

// InvalidTokenBody is Shopify's answer to a missing or wrong access token.
const InvalidTokenBody = `{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}`

// Options configures New.
type Options struct {
	// Shop is the shop's myshopify.com domain (default DefaultShop).
	Shop string
	// Token is the Admin API access token the fake accepts (default
	// DefaultToken).
	Token string
	// BucketSize and RestoreRate are the cost bucket's size and its restore
	// rate in points per second (defaults DefaultBucketSize and
	// DefaultRestoreRate, the Standard plan's).
	BucketSize, RestoreRate float64
	// Start is the time of the first change to the shop's data (default
	// 2026-11-23T07:00:00Z); each later change is a second later (see
	// Freeze).
	Start time.Time
}

// Failure is a scripted answer (see FailNext).
type Failure struct {
	Status int
	Header http.Header
	Body   string
}

// Request is one request the fake received.
type Request struct {
	Host, Version string
	// Query and Variables are the GraphQL request.
	Query     string
	Variables map[string]any
	// Status is the HTTP status of the answer.
	Status int
	// Code is the first error's extensions.code ("THROTTLED",
	// "MAX_COST_EXCEEDED"), or "" when the query ran.
	Code string
	// RequestedCost and ActualCost are the answer's cost extension.
	RequestedCost, ActualCost int
	// Available is the bucket before the query was charged.
	Available float64
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the fake's base URL (http://127.0.0.1:port): the connector's
	// base_url. Requests to it are for the fake's shop.
	URL string
	// Shop and Token are the shop's domain and access token.
	Shop, Token string

	srv *httptest.Server

	mu          sync.Mutex
	opts        Options
	products    map[int64]*Product
	collections map[int64]*Collection
	clock       time.Time
	frozen      bool
	nextID      int64
	available   float64
	filledAt    time.Time
	failures    []Failure
	requests    []Request
}

// New starts a fake shop; it is closed when the test ends.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := NewServer(opts)
	tb.Cleanup(s.Close)
	return s
}

// NewServer starts a fake shop; Close stops it.
func NewServer(opts Options) *Server {
	if opts.Shop == "" {
		opts.Shop = DefaultShop
	}
	if opts.Token == "" {
		opts.Token = DefaultToken
	}
	if opts.BucketSize <= 0 {
		opts.BucketSize = DefaultBucketSize
	}
	if opts.RestoreRate <= 0 {
		opts.RestoreRate = DefaultRestoreRate
	}
	if opts.Start.IsZero() {
		opts.Start = time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	}
	s := &Server{
		Shop: opts.Shop, Token: opts.Token, opts: opts,
		products: map[int64]*Product{}, collections: map[int64]*Collection{},
		clock: opts.Start.UTC().Truncate(time.Second), nextID: 1000,
		available: opts.BucketSize, filledAt: time.Now(),
	}
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Addr is the server's listening address (host:port), for a transport
// that sends every shop's requests to the fake.
func (s *Server) Addr() string { return s.srv.Listener.Addr().String() }

// FailNext answers the next requests (after authentication) with fs, in
// order, instead of running them.
func (s *Server) FailNext(fs ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, fs...)
}

// SetAvailable sets what the cost bucket holds now.
func (s *Server) SetAvailable(points float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.available, s.filledAt = points, time.Now()
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
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

// Freeze makes every later change happen at t, until Unfreeze: records
// then share an updated_at, as many do after a bulk edit.
func (s *Server) Freeze(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock, s.frozen = t.UTC().Truncate(time.Second), true
}

// Unfreeze makes each change a second later than the one before again.
func (s *Server) Unfreeze() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = false
}

// Now is the time of the latest change.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clock
}

func (s *Server) tick() time.Time {
	if !s.frozen {
		s.clock = s.clock.Add(time.Second)
	}
	return s.clock
}

func (s *Server) id() int64 {
	s.nextID++
	return s.nextID
}

// CreateProduct adds a product and returns it with its ids, handle and
// times filled in. Variants and options default to Shopify's single
// "Default Title" variant.
func (s *Server) CreateProduct(p Product) Product {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.tick()
	p.ID = 8_000_000_000_000 + s.id()
	if p.Handle == "" {
		p.Handle = handleize(p.Title)
	}
	if p.Status == "" {
		p.Status = "ACTIVE"
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = now
	}
	p.UpdatedAt = now
	if p.PublishedAt == nil && p.Status == "ACTIVE" {
		t := now
		p.PublishedAt = &t
	}
	if len(p.Options) == 0 {
		p.Options = []Option{{Name: "Title", Values: []string{"Default Title"}}}
	}
	for i := range p.Options {
		p.Options[i].ID = 10_000_000_000_000 + s.id()
	}
	if len(p.Variants) == 0 {
		p.Variants = []Variant{{Price: "0.00", OptionValues: []string{"Default Title"}, Taxable: true}}
	}
	for i := range p.Variants {
		s.fillVariant(&p.Variants[i], now)
	}
	for i := range p.Images {
		s.fillImage(&p.Images[i], now)
	}
	s.products[p.ID] = p.clone()
	return p
}

func (s *Server) fillVariant(v *Variant, now time.Time) {
	if v.ID == 0 {
		v.ID = 44_000_000_000_000 + s.id()
		v.CreatedAt = now
	}
	if v.Title == "" {
		v.Title = strings.Join(v.OptionValues, " / ")
	}
	if v.Price == "" {
		v.Price = "0.00"
	}
	v.UpdatedAt = now
}

func (s *Server) fillImage(img *Image, now time.Time) {
	if img.ID == 0 {
		img.ID = 36_000_000_000_000 + s.id()
		img.CreatedAt = now
	}
	if img.URL == "" {
		img.URL = "https://cdn.shopify.com/s/files/1/0000/0001/files/" + strings.TrimPrefix(GID("ProductImage", img.ID), "gid://shopify/ProductImage/") + ".jpg?v=1"
	}
	img.UpdatedAt = now
}

// ErrNotFound is returned for an id the shop does not have.
var ErrNotFound = errors.New("shopifytest: no such record")

// UpdateProduct changes a product with fn and stamps it (and its new
// variants and images) with the next change time.
func (s *Server) UpdateProduct(id int64, fn func(*Product)) (Product, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.products[id]
	if !ok {
		return Product{}, ErrNotFound
	}
	c := p.clone()
	fn(c)
	now := s.tick()
	c.ID, c.UpdatedAt = id, now
	for i := range c.Variants {
		s.fillVariant(&c.Variants[i], now)
	}
	for i := range c.Images {
		s.fillImage(&c.Images[i], now)
	}
	s.products[id] = c
	return *c.clone(), nil
}

// DeleteProduct removes a product, and it from every collection.
func (s *Server) DeleteProduct(id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.products[id]; !ok {
		return ErrNotFound
	}
	delete(s.products, id)
	for _, c := range s.collections {
		c.ProductIDs = slices.DeleteFunc(c.ProductIDs, func(x int64) bool { return x == id })
	}
	return nil
}

// Product returns a product.
func (s *Server) Product(id int64) (Product, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.products[id]
	if !ok {
		return Product{}, false
	}
	return *p.clone(), true
}

// ProductIDs lists the products' ids, ascending.
func (s *Server) ProductIDs() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.products))
}

// CreateCollection adds a collection and returns it with its id, handle
// and time filled in.
func (s *Server) CreateCollection(c Collection) Collection {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.tick()
	c.ID = 480_000_000_000 + s.id()
	if c.Handle == "" {
		c.Handle = handleize(c.Title)
	}
	if c.SortOrder == "" {
		c.SortOrder = "MANUAL"
	}
	c.UpdatedAt = now
	if c.PublishedAt == nil {
		t := now
		c.PublishedAt = &t
	}
	s.collections[c.ID] = c.clone()
	return c
}

// UpdateCollection changes a collection with fn and stamps it with the
// next change time.
func (s *Server) UpdateCollection(id int64, fn func(*Collection)) (Collection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.collections[id]
	if !ok {
		return Collection{}, ErrNotFound
	}
	x := c.clone()
	fn(x)
	x.ID, x.UpdatedAt = id, s.tick()
	s.collections[id] = x
	return *x.clone(), nil
}

// DeleteCollection removes a collection.
func (s *Server) DeleteCollection(id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.collections[id]; !ok {
		return ErrNotFound
	}
	delete(s.collections, id)
	return nil
}

// CollectionIDs lists the collections' ids, ascending.
func (s *Server) CollectionIDs() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.collections))
}

var graphqlPath = regexp.MustCompile(`^/admin/api/([^/]+)/graphql\.json$`)

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Request{Host: r.Host}
	status, body, header := s.serve(r, &rec)
	for k, v := range header {
		w.Header()[k] = v
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	// Recorded before the answer goes, so that the log is in the order the
	// client saw.
	rec.Status = status
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// jsonBody renders an answer as Shopify does: no HTML escaping.
func jsonBody(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func (s *Server) serve(r *http.Request, rec *Request) (int, []byte, http.Header) {
	header := http.Header{}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil && host != s.Addr() {
		host = h
	}
	if host != s.Shop && host != s.Addr() {
		return http.StatusNotFound, []byte(`{"errors":"Not Found"}`), header
	}
	m := graphqlPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		return http.StatusNotFound, []byte(`{"errors":"Not Found"}`), header
	}
	if r.Method != http.MethodPost {
		header.Set("Allow", "POST")
		return http.StatusMethodNotAllowed, []byte(`{"errors":"Method Not Allowed"}`), header
	}
	if r.Header.Get("X-Shopify-Access-Token") != s.Token {
		return http.StatusUnauthorized, []byte(InvalidTokenBody), header
	}
	version := m[1]
	if !slices.Contains(SupportedVersions, version) {
		version = SupportedVersions[0]
	}
	rec.Version = version
	header.Set("X-Shopify-API-Version", version)

	s.mu.Lock()
	if len(s.failures) > 0 {
		f := s.failures[0]
		s.failures = s.failures[1:]
		s.mu.Unlock()
		for k, v := range f.Header {
			header[k] = v
		}
		return f.Status, []byte(f.Body), header
	}
	s.mu.Unlock()

	raw, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return http.StatusBadRequest, jsonBody(map[string]any{"errors": "could not read the body"}), header
	}
	if len(raw) > MaxBodyBytes {
		return http.StatusRequestEntityTooLarge, jsonBody(map[string]any{"errors": "Request body too large"}), header
	}
	var req struct {
		Query         string         `json:"query"`
		Variables     map[string]any `json:"variables"`
		OperationName string         `json:"operationName"`
	}
	switch ct := r.Header.Get("Content-Type"); {
	case strings.HasPrefix(ct, "application/graphql"):
		req.Query = string(raw)
	case strings.HasPrefix(ct, "application/json"):
		if err := json.Unmarshal(raw, &req); err != nil {
			return http.StatusBadRequest, jsonBody(map[string]any{"errors": "Invalid JSON in request body"}), header
		}
	default:
		return http.StatusUnsupportedMediaType, jsonBody(map[string]any{"errors": "Content-Type must be application/json or application/graphql"}), header
	}
	rec.Query, rec.Variables = req.Query, req.Variables
	if strings.TrimSpace(req.Query) == "" {
		return http.StatusBadRequest, jsonBody(map[string]any{"errors": map[string]any{"query": "Required parameter missing or invalid"}}), header
	}
	return http.StatusOK, s.run(req.Query, req.Variables, req.OperationName, rec), header
}

// cost is the extensions.cost object.
type cost struct {
	RequestedQueryCost int            `json:"requestedQueryCost"`
	ActualQueryCost    *int           `json:"actualQueryCost"`
	ThrottleStatus     throttleStatus `json:"throttleStatus"`
}

type throttleStatus struct {
	MaximumAvailable   float64 `json:"maximumAvailable"`
	CurrentlyAvailable float64 `json:"currentlyAvailable"`
	RestoreRate        float64 `json:"restoreRate"`
}

// refill brings the bucket up to now. The caller holds s.mu.
func (s *Server) refill() {
	now := time.Now()
	s.available = math.Min(s.opts.BucketSize, s.available+now.Sub(s.filledAt).Seconds()*s.opts.RestoreRate)
	s.filledAt = now
}

func (s *Server) status() throttleStatus {
	return throttleStatus{MaximumAvailable: s.opts.BucketSize, CurrentlyAvailable: math.Floor(s.available), RestoreRate: s.opts.RestoreRate}
}

// run parses, validates, charges and executes a query, and renders the
// answer's body.
func (s *Server) run(query string, vars map[string]any, opName string, rec *Request) []byte {
	prep, gerrs := prepare(query, vars, opName)
	if gerrs != nil {
		rec.Code = firstCode(gerrs)
		return jsonBody(map[string]any{"errors": gerrs})
	}
	requested := prep.requestedCost()
	rec.RequestedCost = requested

	s.mu.Lock()
	defer s.mu.Unlock()
	s.refill()
	rec.Available = s.available
	if requested > MaxQueryCost {
		rec.Code = "MAX_COST_EXCEEDED"
		return jsonBody(map[string]any{
			"errors": []any{map[string]any{
				"message": "Query cost is " + itoa(requested) + ", which exceeds the single query max cost limit (" + itoa(MaxQueryCost) + ").\n\n" +
					"See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\ncost of a query is calculated.\n\n" +
					"To query larger amounts of data with fewer limits, bulk operations should be used instead.\n" +
					"See https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for usage details.\n",
				"extensions": map[string]any{"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": MaxQueryCost, "documentation": "https://shopify.dev/api/usage/rate-limits"},
			}},
			"extensions": map[string]any{"cost": cost{RequestedQueryCost: requested, ThrottleStatus: s.status()}},
		})
	}
	if float64(requested) > s.available {
		rec.Code = "THROTTLED"
		return jsonBody(map[string]any{
			"errors": []any{map[string]any{
				"message":    "Throttled",
				"extensions": map[string]any{"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
			}},
			"extensions": map[string]any{"cost": cost{RequestedQueryCost: requested, ThrottleStatus: s.status()}},
		})
	}
	s.available -= float64(requested)
	data, actual, errs, warnings := s.execute(prep)
	if actual > requested {
		actual = requested
	}
	s.available += float64(requested - actual)
	rec.ActualCost = actual
	out := &object{}
	if len(errs) > 0 {
		out.set("errors", errs)
		rec.Code = firstCode(errs)
	}
	out.set("data", data)
	ext := &object{}
	ext.set("cost", cost{RequestedQueryCost: requested, ActualQueryCost: &actual, ThrottleStatus: s.status()})
	if len(warnings) > 0 {
		ext.set("search", warnings)
	}
	out.set("extensions", ext)
	return jsonBody(out)
}
