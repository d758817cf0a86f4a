package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-hclog"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// MaxResponseBytes bounds the body of one answer of the API. Contentful
// caps its own answers well below it (7 MB), so a larger one is not
// Contentful's.
const MaxResponseBytes = 64 << 20

// collectionLimit is the page size asked of the collection endpoints
// (content types, locales): Contentful's maximum.
const collectionLimit = 1000

// RateLimitResetHeader is the header of Contentful's 429 answers that says
// how many seconds remain until the rate limit resets.
const RateLimitResetHeader = "X-Contentful-RateLimit-Reset"

// api talks to one environment of the Content Delivery API.
type api struct {
	cfg    *Config
	client *sdk.HTTPClient
}

// newAPI returns a client for cfg's environment; opts tunes retries (tests
// shorten the backoff). Close it at the end of the call.
func newAPI(cfg *Config, opts sdk.HTTPClientOptions, log hclog.Logger) *api {
	if opts.Logger == nil {
		opts.Logger = log
	}
	opts.Header = opts.Header.Clone()
	if opts.Header == nil {
		opts.Header = http.Header{}
	}
	opts.Header.Set("Authorization", "Bearer "+cfg.AccessToken)
	if opts.UserAgent == "" {
		opts.UserAgent = "synclayer-plugin-contentful/" + Version
	}
	next := opts.Transport
	if next == nil {
		next = cleanhttp.DefaultPooledTransport()
	}
	opts.Transport = resetAsRetryAfter{next}
	return &api{cfg: cfg, client: sdk.NewHTTPClient(opts)}
}

func (a *api) close() { a.client.CloseIdleConnections() }

// resetAsRetryAfter turns Contentful's X-Contentful-RateLimit-Reset into
// the Retry-After the SDK's client honours: a 429 answer of Contentful
// says when to come back in that header only.
type resetAsRetryAfter struct{ next http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (t resetAsRetryAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "" {
		return resp, err
	}
	if v := strings.TrimSpace(resp.Header.Get(RateLimitResetHeader)); v != "" {
		if secs, perr := strconv.Atoi(v); perr == nil && secs >= 0 {
			resp.Header.Set("Retry-After", strconv.Itoa(secs))
		}
	}
	return resp, nil
}

// CloseIdleConnections implements http.Client's method of that name.
func (t resetAsRetryAfter) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// APIError is an error answer of Contentful:
// {"sys":{"type":"Error","id":"NotFound"},"message":"…","requestId":"…"}.
type APIError struct {
	// Method and URL are the request's (the URL without its query).
	Method, URL string
	// StatusCode is the HTTP status.
	StatusCode int
	// ID is Contentful's error id: AccessTokenInvalid, NotFound,
	// BadRequest, RateLimitExceeded, …; empty when the body was not
	// Contentful's.
	ID string
	// Message is Contentful's message, or the start of the body.
	Message string
	// RequestID is Contentful's id of the request, for its support.
	RequestID string
}

// Error implements error.
func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s %s: %d", e.Method, e.URL, e.StatusCode)
	if e.ID != "" {
		msg += " " + e.ID
	}
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

// get fetches rawURL and decodes a 2xx answer into v (numbers as
// json.Number); any other answer is an *APIError.
func (a *api) get(ctx context.Context, rawURL string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, MaxResponseBytes+1)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errorOf(req, resp, body)
	}
	dec := json.NewDecoder(body)
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return fmt.Errorf("GET %s: the answer is cut short or larger than %d MiB", sdk.RedactURL(req.URL), MaxResponseBytes>>20)
		}
		return fmt.Errorf("GET %s: the answer is not the JSON expected: %w", sdk.RedactURL(req.URL), err)
	}
	return nil
}

func errorOf(req *http.Request, resp *http.Response, body io.Reader) error {
	b, _ := io.ReadAll(io.LimitReader(body, sdk.ErrorBodyLimit))
	e := &APIError{Method: req.Method, URL: sdk.RedactURL(req.URL), StatusCode: resp.StatusCode}
	var cf struct {
		Sys struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"sys"`
		Message   string `json:"message"`
		RequestID string `json:"requestId"`
	}
	if json.Unmarshal(b, &cf) == nil && cf.Sys.Type == "Error" {
		e.ID, e.Message, e.RequestID = cf.Sys.ID, cf.Message, cf.RequestID
	} else {
		e.Message = strings.TrimSpace(string(b))
	}
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("X-Contentful-Request-Id")
	}
	return e
}

// link is the sys of a link: {"type":"Link","linkType":"Entry","id":"…"}.
type link struct {
	Sys struct {
		Type     string `json:"type"`
		LinkType string `json:"linkType"`
		ID       string `json:"id"`
	} `json:"sys"`
}

// contentType is an item of the content_types endpoint.
type contentType struct {
	Sys struct {
		ID string `json:"id"`
	} `json:"sys"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Fields      []struct {
		ID        string `json:"id"`
		Type      string `json:"type"`
		LinkType  string `json:"linkType"`
		Localized bool   `json:"localized"`
		Omitted   bool   `json:"omitted"`
		Items     *struct {
			Type     string `json:"type"`
			LinkType string `json:"linkType"`
		} `json:"items"`
	} `json:"fields"`
}

// locale is an item of the locales endpoint.
type locale struct {
	Code         string  `json:"code"`
	Default      bool    `json:"default"`
	FallbackCode *string `json:"fallbackCode"`
}

// collection is a page of a collection endpoint.
type collection[T any] struct {
	Total int `json:"total"`
	Skip  int `json:"skip"`
	Limit int `json:"limit"`
	Items []T `json:"items"`
}

// all reads every page of a collection endpoint of the environment.
func all[T any](ctx context.Context, a *api, endpoint string) ([]T, error) {
	var out []T
	for skip := 0; ; {
		var page collection[T]
		q := url.Values{"limit": {strconv.Itoa(collectionLimit)}, "skip": {strconv.Itoa(skip)}}
		if err := a.get(ctx, a.cfg.envURL(endpoint, q), &page); err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		skip += len(page.Items)
		if len(page.Items) == 0 || skip >= page.Total {
			return out, nil
		}
	}
}

func (a *api) contentTypes(ctx context.Context) ([]contentType, error) {
	return all[contentType](ctx, a, "content_types")
}

func (a *api) locales(ctx context.Context) ([]locale, error) {
	return all[locale](ctx, a, "locales")
}

// syncPage is one page of the Sync API.
type syncPage struct {
	Items       []syncItem `json:"items"`
	NextPageURL string     `json:"nextPageUrl"`
	NextSyncURL string     `json:"nextSyncUrl"`
}

// syncItem is an Entry, Asset, DeletedEntry or DeletedAsset.
type syncItem struct {
	Sys struct {
		ID          string      `json:"id"`
		Type        string      `json:"type"`
		CreatedAt   string      `json:"createdAt"`
		UpdatedAt   string      `json:"updatedAt"`
		Revision    json.Number `json:"revision"`
		ContentType *link       `json:"contentType"`
	} `json:"sys"`
	// Fields are the values by field id, then by locale code.
	Fields map[string]map[string]any `json:"fields"`
}

// Item types of the Sync API.
const (
	typeEntry        = "Entry"
	typeAsset        = "Asset"
	typeDeletedEntry = "DeletedEntry"
	typeDeletedAsset = "DeletedAsset"
)

// sync fetches one page of the Sync API: the initial sync when token is
// empty, else the page or delta the token stands for.
func (a *api) sync(ctx context.Context, token string) (*syncPage, error) {
	q := url.Values{"initial": {"true"}}
	if token != "" {
		q = url.Values{"sync_token": {token}}
	}
	var page syncPage
	if err := a.get(ctx, a.cfg.envURL("sync", q), &page); err != nil {
		return nil, err
	}
	if page.NextPageURL == "" && page.NextSyncURL == "" {
		return nil, errors.New("a page of the Sync API has neither nextPageUrl nor nextSyncUrl")
	}
	return &page, nil
}

// tokenOf reads the sync_token of a nextPageUrl or nextSyncUrl. Only the
// token is kept, as Contentful's own SDKs do: the next request goes to
// base_url (so that the access token never leaves for another host).
func tokenOf(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("the Sync API's next URL is not a URL: %w", err)
	}
	tok := u.Query().Get("sync_token")
	if tok == "" {
		return "", errors.New("the Sync API's next URL has no sync_token")
	}
	return tok, nil
}
