package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// MaxResponseBytes bounds the body of one answer of the API. A page of
// the connector's queries is far smaller (a query costs at most 1000
// points), so a larger body is not Shopify's.
const MaxResponseBytes = 64 << 20

// MaxThrottledRetries is how often a query answered THROTTLED is sent
// again (each time after waiting for the bucket to hold its cost) before
// the run fails.
const MaxThrottledRetries = 10

// Headers of the Admin API.
const (
	AccessTokenHeader = "X-Shopify-Access-Token"
	APIVersionHeader  = "X-Shopify-API-Version"
	RequestIDHeader   = "X-Request-Id"
)

// Error codes of GraphQL errors (errors[].extensions.code).
const (
	CodeThrottled       = "THROTTLED"
	CodeMaxCostExceeded = "MAX_COST_EXCEEDED"
	CodeAccessDenied    = "ACCESS_DENIED"
)

// api talks to one shop's Admin GraphQL API, keeping to its cost bucket.
type api struct {
	cfg    *Config
	client *sdk.HTTPClient
	log    hclog.Logger
	wait   func(ctx context.Context, d time.Duration) error

	mu     sync.Mutex
	bucket bucket
	// costs is the requestedQueryCost last charged for each named query,
	// the estimate of what its next run costs.
	costs         map[string]int
	warnedVersion bool
	warnedSearch  bool
}

// newAPI returns a client of cfg's shop; opts tunes retries (tests shorten
// the backoff), wait sleeps (nil: a timer). Close it at the end of the call.
func newAPI(cfg *Config, opts sdk.HTTPClientOptions, wait func(context.Context, time.Duration) error, log hclog.Logger) *api {
	if opts.Logger == nil {
		opts.Logger = log
	}
	opts.Header = opts.Header.Clone()
	if opts.Header == nil {
		opts.Header = http.Header{}
	}
	opts.Header.Set(AccessTokenHeader, cfg.AccessToken)
	if opts.UserAgent == "" {
		opts.UserAgent = "synclayer-plugin-shopify/" + Version
	}
	if wait == nil {
		wait = sleep
	}
	return &api{cfg: cfg, client: sdk.NewHTTPClient(opts), log: log, wait: wait, costs: map[string]int{}}
}

func (a *api) close() { a.client.CloseIdleConnections() }

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// bucket is what the last answer said of the shop's cost bucket
// (extensions.cost.throttleStatus): it holds available points at at, up
// to max, and gains rate points a second.
type bucket struct {
	known          bool
	available, max float64
	rate           float64
	at             time.Time
}

// waitFor is how long to wait at now until the bucket holds cost points.
// A point of slack covers Shopify's rounding.
func (b bucket) waitFor(cost int, now time.Time) time.Duration {
	if !b.known || b.rate <= 0 || cost <= 0 {
		return 0
	}
	need := math.Min(float64(cost)+1, b.max)
	have := math.Min(b.max, b.available+now.Sub(b.at).Seconds()*b.rate)
	if have >= need {
		return 0
	}
	return time.Duration((need - have) / b.rate * float64(time.Second)).Round(time.Millisecond)
}

// APIError is a non-2xx answer of the Admin API. Shopify's error bodies
// are {"errors": "…"} or {"errors": {…}}; Message is that, or the start of
// the body.
type APIError struct {
	// Method and URL are the request's.
	Method, URL string
	// StatusCode is the HTTP status.
	StatusCode int
	// Message is Shopify's message.
	Message string
	// RequestID is Shopify's X-Request-Id, for its support.
	RequestID string
}

// Error implements error.
func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RequestID != "" {
		msg += " (request id " + e.RequestID + ")"
	}
	return msg
}

func asAPIError(err error) *APIError {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	return nil
}

// GraphQLError is a query's errors array.
type GraphQLError struct {
	// Query names the query.
	Query  string
	Errors []gqlError
}

type gqlError struct {
	Message    string `json:"message"`
	Path       []any  `json:"path"`
	Extensions struct {
		Code string `json:"code"`
	} `json:"extensions"`
}

// Error implements error.
func (e *GraphQLError) Error() string {
	var parts []string
	for i, g := range e.Errors {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(e.Errors)-3))
			break
		}
		p := strings.TrimSpace(g.Message)
		if g.Extensions.Code != "" {
			p = g.Extensions.Code + ": " + p
		}
		if len(g.Path) > 0 {
			p += fmt.Sprintf(" (at %v)", g.Path)
		}
		parts = append(parts, p)
	}
	return fmt.Sprintf("query %s: %s", e.Query, strings.Join(parts, "; "))
}

// Has tells whether one of the errors has code.
func (e *GraphQLError) Has(code string) bool {
	for _, g := range e.Errors {
		if g.Extensions.Code == code {
			return true
		}
	}
	return false
}

func asGraphQLError(err error) *GraphQLError {
	var ge *GraphQLError
	if errors.As(err, &ge) {
		return ge
	}
	return nil
}

// answer is a GraphQL answer.
type answer struct {
	Data       json.RawMessage `json:"data"`
	Errors     []gqlError      `json:"errors"`
	Extensions struct {
		Cost *struct {
			RequestedQueryCost int `json:"requestedQueryCost"`
			ThrottleStatus     struct {
				MaximumAvailable   float64 `json:"maximumAvailable"`
				CurrentlyAvailable float64 `json:"currentlyAvailable"`
				RestoreRate        float64 `json:"restoreRate"`
			} `json:"throttleStatus"`
		} `json:"cost"`
		Search []struct {
			Query    string `json:"query"`
			Warnings []struct {
				Field   any    `json:"field"`
				Message string `json:"message"`
			} `json:"warnings"`
		} `json:"search"`
	} `json:"extensions"`
}

// query runs the GraphQL query named name with vars and decodes its data
// into out. It first waits until the cost bucket, as the last answer
// described it, holds what this query cost last time; a THROTTLED answer
// is sent again once the bucket holds the cost it names. 429 and 5xx
// answers are retried by the HTTP client, honouring Retry-After.
func (a *api) query(ctx context.Context, name, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		a.mu.Lock()
		d := a.bucket.waitFor(a.costs[name], time.Now())
		a.mu.Unlock()
		if d > 0 {
			a.log.Debug("waiting for the query cost bucket to refill", "query", name, "wait", d.String())
			if err := a.wait(ctx, d); err != nil {
				return err
			}
		}
		ans, err := a.post(ctx, name, body)
		if err != nil {
			return err
		}
		a.note(name, ans)
		if len(ans.Errors) > 0 {
			ge := &GraphQLError{Query: name, Errors: ans.Errors}
			if !ge.Has(CodeThrottled) {
				return ge
			}
			if attempt >= MaxThrottledRetries {
				return fmt.Errorf("%w (still throttled after %d tries; another app may be using the shop's API budget)", ge, attempt+1)
			}
			a.mu.Lock()
			if !a.bucket.known {
				// No throttleStatus: wait a second, as for a 429.
				a.bucket = bucket{known: true, max: 1, rate: 1, at: time.Now()}
				a.costs[name] = 1
			}
			a.mu.Unlock()
			a.log.Debug("query throttled; waiting for the cost bucket", "query", name, "attempt", attempt+1)
			continue
		}
		if len(ans.Data) == 0 || string(ans.Data) == "null" {
			return fmt.Errorf("query %s: the answer has no data and no errors", name)
		}
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(ans.Data, out); err != nil {
			return fmt.Errorf("query %s: the answer's data is not the shape asked for: %w", name, err)
		}
		return nil
	}
}

// note records what an answer says of the bucket and of the query's cost,
// and warns once about a search filter Shopify ignored.
func (a *api) note(name string, ans *answer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := ans.Extensions.Cost; c != nil {
		ts := c.ThrottleStatus
		if ts.MaximumAvailable > 0 && ts.RestoreRate > 0 {
			a.bucket = bucket{known: true, available: ts.CurrentlyAvailable, max: ts.MaximumAvailable, rate: ts.RestoreRate, at: time.Now()}
		}
		if c.RequestedQueryCost > 0 {
			a.costs[name] = c.RequestedQueryCost
		}
	}
	for _, s := range ans.Extensions.Search {
		for _, w := range s.Warnings {
			if !a.warnedSearch {
				a.warnedSearch = true
				a.log.Warn("Shopify ignored part of a search filter; the run reads more than it needs", "query", s.Query, "field", fmt.Sprint(w.Field), "warning", w.Message)
			}
		}
	}
}

// post sends one query and reads its answer.
func (a *api) post(ctx context.Context, name string, body []byte) (*answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.endpoint(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	limited := io.LimitReader(resp.Body, MaxResponseBytes+1)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, errorOf(req, resp, limited)
	}
	if v := resp.Header.Get(APIVersionHeader); v != "" && v != a.cfg.APIVersion {
		a.mu.Lock()
		if !a.warnedVersion {
			a.warnedVersion = true
			a.log.Warn("Shopify answered with another API version than api_version asks for (it is no longer supported); set api_version to a supported one", "asked", a.cfg.APIVersion, "answered", v)
		}
		a.mu.Unlock()
	}
	var ans answer
	if err := json.NewDecoder(limited).Decode(&ans); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("query %s: POST %s: the answer is cut short or larger than %d MiB", name, sdk.RedactURL(req.URL), MaxResponseBytes>>20)
		}
		return nil, fmt.Errorf("query %s: POST %s: the answer is not GraphQL JSON: %w", name, sdk.RedactURL(req.URL), err)
	}
	return &ans, nil
}

func errorOf(req *http.Request, resp *http.Response, body io.Reader) error {
	b, _ := io.ReadAll(io.LimitReader(body, sdk.ErrorBodyLimit))
	e := &APIError{Method: req.Method, URL: sdk.RedactURL(req.URL), StatusCode: resp.StatusCode, RequestID: resp.Header.Get(RequestIDHeader)}
	var shaped struct {
		Errors json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(b, &shaped) == nil && len(shaped.Errors) > 0 {
		var s string
		if json.Unmarshal(shaped.Errors, &s) == nil {
			e.Message = s
		} else {
			e.Message = string(shaped.Errors)
		}
	} else if ct := resp.Header.Get("Content-Type"); strings.Contains(ct, "json") || strings.HasPrefix(ct, "text/plain") {
		e.Message = strings.TrimSpace(string(b))
	}
	return e
}
