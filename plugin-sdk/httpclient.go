package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/time/rate"
)

// Defaults of HTTPClientOptions.
const (
	DefaultRetryMax      = 5
	DefaultRetryWaitMin  = 500 * time.Millisecond
	DefaultRetryWaitMax  = 30 * time.Second
	DefaultMaxRetryAfter = 5 * time.Minute
	DefaultHTTPTimeout   = 60 * time.Second
)

// ErrorBodyLimit is how many bytes of an error answer's body an HTTPError
// quotes.
const ErrorBodyLimit = 512

// HTTPClientOptions configures NewHTTPClient. The zero value is usable: five
// retries, backoff from half a second to thirty seconds, no rate limit.
type HTTPClientOptions struct {
	// RetryMax is how many times a request is retried after its first
	// attempt (default DefaultRetryMax); negative means never.
	RetryMax int
	// RetryWaitMin and RetryWaitMax bound the exponential backoff between
	// attempts (defaults DefaultRetryWaitMin and DefaultRetryWaitMax). The
	// wait doubles with each attempt, with jitter.
	RetryWaitMin, RetryWaitMax time.Duration
	// MaxRetryAfter caps how long a Retry-After header may make the client
	// wait before its next attempt (default DefaultMaxRetryAfter).
	MaxRetryAfter time.Duration
	// Timeout bounds each attempt, headers and body (default
	// DefaultHTTPTimeout); negative means none.
	Timeout time.Duration
	// RateLimit is the most requests per second the client sends,
	// attempts and retries alike; zero means no limit. Burst is how many may
	// go at once (default 1).
	RateLimit float64
	Burst     int
	// Header is added to every request (a header the request sets itself
	// wins). Put credentials here rather than in URLs: headers are never
	// logged.
	Header http.Header
	// UserAgent is sent unless the request or Header sets one.
	UserAgent string
	// Logger receives a debug line per retry (method, URL without its
	// query, status, wait). Nil logs nothing.
	Logger hclog.Logger
	// Transport is the underlying RoundTripper (default: a pooled
	// transport of its own, not shared with other clients).
	Transport http.RoundTripper
}

// HTTPClient is an HTTP client for connectors: it retries connection
// errors, 429 Too Many Requests and 5xx answers (except 501) with
// exponential backoff and jitter, honours Retry-After (seconds or an HTTP
// date) on those answers, and keeps to a rate limit. It is built on
// hashicorp/go-retryablehttp and golang.org/x/time/rate, and is safe for
// concurrent use.
//
// Do returns the final answer whatever its status, like http.Client;
// GetJSON and CheckResponse turn a non-2xx answer into an *HTTPError that
// quotes the start of its body.
type HTTPClient struct {
	rc     *retryablehttp.Client
	header http.Header
	ua     string
}

// NewHTTPClient returns a client with opts (see HTTPClientOptions for the
// defaults). Call CloseIdleConnections when done with it, at the end of a
// Sync, so that no connection outlives the run.
func NewHTTPClient(opts HTTPClientOptions) *HTTPClient {
	if opts.RetryMax == 0 {
		opts.RetryMax = DefaultRetryMax
	} else if opts.RetryMax < 0 {
		opts.RetryMax = 0
	}
	if opts.RetryWaitMin <= 0 {
		opts.RetryWaitMin = DefaultRetryWaitMin
	}
	if opts.RetryWaitMax <= 0 {
		opts.RetryWaitMax = DefaultRetryWaitMax
	}
	if opts.RetryWaitMax < opts.RetryWaitMin {
		opts.RetryWaitMax = opts.RetryWaitMin
	}
	if opts.MaxRetryAfter <= 0 {
		opts.MaxRetryAfter = DefaultMaxRetryAfter
	}
	switch {
	case opts.Timeout == 0:
		opts.Timeout = DefaultHTTPTimeout
	case opts.Timeout < 0:
		opts.Timeout = 0
	}
	transport := opts.Transport
	if transport == nil {
		transport = cleanhttp.DefaultPooledTransport()
	}
	if opts.RateLimit > 0 {
		burst := opts.Burst
		if burst <= 0 {
			burst = 1
		}
		transport = &limitedTransport{next: transport, lim: rate.NewLimiter(rate.Limit(opts.RateLimit), burst)}
	}
	rc := &retryablehttp.Client{
		HTTPClient:   &http.Client{Transport: transport, Timeout: opts.Timeout},
		RetryMax:     opts.RetryMax,
		RetryWaitMin: opts.RetryWaitMin,
		RetryWaitMax: opts.RetryWaitMax,
		CheckRetry:   retryablehttp.DefaultRetryPolicy,
		ErrorHandler: giveUp,
	}
	maxAfter := opts.MaxRetryAfter
	log := opts.Logger
	rc.Backoff = func(min, max time.Duration, attempt int, resp *http.Response) time.Duration {
		wait := Backoff(min, max, attempt, resp, maxAfter)
		if log != nil {
			args := []any{"wait", wait.String(), "attempt", attempt + 1}
			if resp != nil && resp.Request != nil {
				args = append(args, "method", resp.Request.Method, "url", RedactURL(resp.Request.URL), "status", resp.StatusCode)
			}
			log.Debug("retrying an HTTP request", args...)
		}
		return wait
	}
	return &HTTPClient{rc: rc, header: opts.Header.Clone(), ua: opts.UserAgent}
}

// giveUp is the retryablehttp ErrorHandler: once retries are exhausted the
// last answer is returned as is (its status tells what went wrong), and a
// transport error says how many attempts were made.
func giveUp(resp *http.Response, err error, attempts int) (*http.Response, error) {
	if resp != nil && err == nil {
		return resp, nil
	}
	if resp != nil {
		resp.Body.Close()
	}
	if err == nil {
		err = errors.New("no answer")
	}
	// The *url.Error wrapper repeats the full URL, query included; the
	// caller names the request itself.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if attempts > 1 {
		return nil, fmt.Errorf("giving up after %d attempts: %w", attempts, err)
	}
	return nil, err
}

// Backoff is the wait before retry number attempt+1 of a request whose
// last answer was resp (nil after a transport error): the answer's
// Retry-After when it has one (capped at maxRetryAfter), else min·2^attempt
// capped at max, with jitter between half and all of it.
func Backoff(min, max time.Duration, attempt int, resp *http.Response, maxRetryAfter time.Duration) time.Duration {
	if resp != nil {
		if d, ok := RetryAfter(resp.Header, time.Now()); ok {
			if maxRetryAfter > 0 && d > maxRetryAfter {
				d = maxRetryAfter
			}
			return d
		}
	}
	d := float64(min) * math.Pow(2, float64(attempt))
	if d > float64(max) || math.IsInf(d, 0) {
		d = float64(max)
	}
	half := d / 2
	return time.Duration(half + rand.Float64()*half)
}

// RetryAfter reads a Retry-After header: a number of seconds or an HTTP
// date (relative to now). A date in the past is zero.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
			return 0, false
		}
		return time.Duration(s * float64(time.Second)), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// limitedTransport waits for the rate limiter before each round trip.
type limitedTransport struct {
	next http.RoundTripper
	lim  *rate.Limiter
}

// RoundTrip implements http.RoundTripper.
func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.lim.Wait(req.Context()); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return t.next.RoundTrip(req)
}

// CloseIdleConnections implements http.Client's method of that name.
func (t *limitedTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Do sends req, retrying as the client is configured; the request's body
// is buffered so that it can be sent again. It returns the final answer
// whatever its status; an error means no answer (a transport error after
// the retries, or req's context ended).
func (c *HTTPClient) Do(req *http.Request) (*http.Response, error) {
	for k, vs := range c.header {
		if _, set := req.Header[k]; !set {
			req.Header[k] = vs
		}
	}
	if c.ua != "" && req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", c.ua)
	}
	rr, err := retryablehttp.FromRequest(req)
	if err != nil {
		return nil, err
	}
	resp, err := c.rc.Do(rr)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("%s %s: %w", req.Method, RedactURL(req.URL), err)
	}
	return resp, nil
}

// Get sends a GET request for rawURL with ctx.
func (c *HTTPClient) Get(ctx context.Context, rawURL string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

// GetJSON gets rawURL with Accept: application/json and decodes a 2xx
// answer into v (numbers as json.Number when v is an *any or a map). A
// non-2xx answer is an *HTTPError. It returns the answer's header.
func (c *HTTPClient) GetJSON(ctx context.Context, rawURL string, v any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := CheckResponse(resp); err != nil {
		return resp.Header, err
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return resp.Header, fmt.Errorf("%s %s: the answer is not valid JSON: %w", req.Method, RedactURL(req.URL), err)
	}
	return resp.Header, nil
}

// CloseIdleConnections closes the client's idle keep-alive connections (and
// the goroutines behind them). Call it at the end of a run.
func (c *HTTPClient) CloseIdleConnections() { c.rc.HTTPClient.CloseIdleConnections() }

// StandardClient returns an *http.Client that sends through c (retries,
// rate limit, default headers), for libraries that take one.
func (c *HTTPClient) StandardClient() *http.Client {
	return &http.Client{Transport: roundTripper{c}}
}

type roundTripper struct{ c *HTTPClient }

// RoundTrip implements http.RoundTripper.
func (r roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	return r.c.Do(req)
}

// HTTPError is a non-2xx answer.
type HTTPError struct {
	// Method and URL are the request's; URL has its query and user info
	// removed (see RedactURL).
	Method, URL string
	// StatusCode and Status are the answer's ("404", "404 Not Found").
	StatusCode int
	Status     string
	// Body is the start of the answer's body, at most ErrorBodyLimit bytes.
	Body []byte
	// Header is the answer's header.
	Header http.Header
}

// Error implements error: "GET http://host/posts: 404 Not Found: <body>".
func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("%s %s: %s", e.Method, e.URL, e.Status)
	if body := strings.TrimSpace(string(e.Body)); body != "" {
		msg += ": " + body
	}
	return msg
}

// CheckResponse returns nil for a 2xx answer, else an *HTTPError quoting
// the first ErrorBodyLimit bytes of its body (which it reads; the caller
// still closes it).
func CheckResponse(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, ErrorBodyLimit))
	e := &HTTPError{StatusCode: resp.StatusCode, Status: resp.Status, Body: body, Header: resp.Header}
	if e.Status == "" {
		e.Status = strconv.Itoa(resp.StatusCode)
	}
	if resp.Request != nil {
		e.Method, e.URL = resp.Request.Method, RedactURL(resp.Request.URL)
	}
	return e
}

// RedactURL renders u without its user info and query, for logs and
// errors: a query may carry an API key.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User = nil
	c.RawQuery, c.ForceQuery = "", false
	c.Fragment, c.RawFragment = "", ""
	return c.String()
}
