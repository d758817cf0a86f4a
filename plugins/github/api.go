package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// APIVersion is the REST API version the connector asks for
// (X-GitHub-Api-Version).
const APIVersion = "2022-11-28"

// MaxPageBytes bounds the body of one page: 100 issues with bodies at
// GitHub's 65,536-character limit stay well below it.
const MaxPageBytes = 64 << 20

// Defaults of the rate-limit handling (see GitHub).
const (
	// DefaultResetSlack is added to X-RateLimit-Reset before the next
	// request, for the clocks' skew.
	DefaultResetSlack = time.Second
	// DefaultSecondaryWait is the wait after a secondary rate limit that
	// names no Retry-After: GitHub says "at least one minute".
	DefaultSecondaryWait = time.Minute
	// DefaultMaxRateLimitWait bounds one wait for a rate limit: GitHub's
	// window is an hour.
	DefaultMaxRateLimitWait = 65 * time.Minute
	// maxRateLimitWaits bounds how often one request waits for a rate
	// limit before the run fails.
	maxRateLimitWaits = 10
)

// client sends the connector's requests to GitHub through the SDK's HTTP
// client (headers, timeouts, transport) and does the retrying itself,
// because GitHub's rate limits need what the SDK's policy has not: a
// primary limit answers 403 (or 429) with X-RateLimit-Remaining: 0 and must
// wait for X-RateLimit-Reset, not back off and retry; a secondary limit
// answers 403 or 429 with Retry-After (or none: wait a minute). Server
// errors and lost connections are retried with the SDK's backoff.
type client struct {
	http *sdk.HTTPClient
	log  hclog.Logger
	g    *GitHub
	now  func() time.Time

	mu sync.Mutex
	// pausedUntil is set when an answer said the quota is spent: no
	// request goes before it.
	pausedUntil time.Time
}

func (g *GitHub) newClient(cfg *Config, log hclog.Logger) *client {
	opts := g.HTTP
	opts.RetryMax = -1 // one attempt per Do: the loop in get retries
	if opts.Logger == nil {
		opts.Logger = log
	}
	opts.Header = opts.Header.Clone()
	if opts.Header == nil {
		opts.Header = http.Header{}
	}
	opts.Header.Set("Authorization", "Bearer "+cfg.Token)
	opts.Header.Set("X-GitHub-Api-Version", APIVersion)
	if opts.UserAgent == "" {
		opts.UserAgent = "synclayer-plugin-github/" + Version
	}
	return &client{http: sdk.NewHTTPClient(opts), log: log, g: g, now: time.Now}
}

func (c *client) close() { c.http.CloseIdleConnections() }

func (c *client) retryMax() int {
	switch {
	case c.g.HTTP.RetryMax < 0:
		return 0
	case c.g.HTTP.RetryMax == 0:
		return sdk.DefaultRetryMax
	}
	return c.g.HTTP.RetryMax
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// get fetches u. With etag set it asks If-None-Match and answers
// notModified on a 304. A non-2xx answer that is not retried is an
// *sdk.HTTPError.
func (c *client) get(ctx context.Context, u *url.URL, etag string) (page *sdk.Page, notModified bool, err error) {
	retries, waits := 0, 0
	for {
		if err := c.waitPaused(ctx, u); err != nil {
			return nil, false, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, false, err
		}
		req.Header.Set("Accept", "application/vnd.github+json")
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, false, ctx.Err()
			}
			if retries >= c.retryMax() {
				return nil, false, err
			}
			wait := sdk.Backoff(orDefault(c.g.HTTP.RetryWaitMin, sdk.DefaultRetryWaitMin), orDefault(c.g.HTTP.RetryWaitMax, sdk.DefaultRetryWaitMax), retries, nil, 0)
			retries++
			c.log.Debug("retrying a GitHub request", "url", sdk.RedactURL(u), "error", err, "wait", wait.String())
			if err := sleep(ctx, wait); err != nil {
				return nil, false, err
			}
			continue
		}
		c.notePaused(resp)
		switch {
		case resp.StatusCode == http.StatusNotModified:
			drain(resp)
			return nil, true, nil
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPageBytes+1))
			resp.Body.Close()
			if err != nil {
				return nil, false, fmt.Errorf("GET %s: reading the answer: %w", sdk.RedactURL(u), err)
			}
			if len(body) > MaxPageBytes {
				return nil, false, fmt.Errorf("GET %s: the answer is larger than %d MiB", sdk.RedactURL(u), MaxPageBytes>>20)
			}
			return &sdk.Page{URL: u, Header: resp.Header, Body: body}, false, nil
		}
		herr := httpError(resp)
		if wait, why, limited := rateLimitWait(resp.StatusCode, resp.Header, herr.Body, c.now(), c.g); limited {
			waits++
			if err := c.checkWait(ctx, wait, why, waits); err != nil {
				return nil, false, fmt.Errorf("%w (%w)", err, herr)
			}
			c.log.Warn("GitHub rate limit: waiting", "reason", why, "wait", wait.Round(time.Millisecond).String(), "url", sdk.RedactURL(u))
			if err := sleep(ctx, wait); err != nil {
				return nil, false, err
			}
			continue
		}
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented && retries < c.retryMax() {
			wait := sdk.Backoff(orDefault(c.g.HTTP.RetryWaitMin, sdk.DefaultRetryWaitMin), orDefault(c.g.HTTP.RetryWaitMax, sdk.DefaultRetryWaitMax), retries, resp, orDefault(c.g.HTTP.MaxRetryAfter, sdk.DefaultMaxRetryAfter))
			retries++
			c.log.Debug("retrying a GitHub request", "url", sdk.RedactURL(u), "status", resp.StatusCode, "wait", wait.String())
			if err := sleep(ctx, wait); err != nil {
				return nil, false, err
			}
			continue
		}
		return nil, false, herr
	}
}

// httpError reads the start of a failed answer's body and closes it.
func httpError(resp *http.Response) *sdk.HTTPError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, sdk.ErrorBodyLimit))
	drain(resp)
	e := &sdk.HTTPError{StatusCode: resp.StatusCode, Status: resp.Status, Body: body, Header: resp.Header}
	if e.Status == "" {
		e.Status = strconv.Itoa(resp.StatusCode)
	}
	if resp.Request != nil {
		e.Method, e.URL = resp.Request.Method, sdk.RedactURL(resp.Request.URL)
	}
	return e
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
}

// rateLimitWait tells whether an answer is one of GitHub's rate limits,
// and how long to wait before the next request, following GitHub's
// "Rate limits for the REST API": a 403 or 429 with Retry-After waits
// that long; one with X-RateLimit-Remaining: 0 waits until
// X-RateLimit-Reset; another 429, or a 403 whose message names a
// secondary rate limit, waits a minute.
func rateLimitWait(status int, h http.Header, body []byte, now time.Time, g *GitHub) (time.Duration, string, bool) {
	if status != http.StatusForbidden && status != http.StatusTooManyRequests {
		return 0, "", false
	}
	if d, ok := sdk.RetryAfter(h, now); ok {
		return d, fmt.Sprintf("secondary rate limit (%d with Retry-After: %s)", status, h.Get("Retry-After")), true
	}
	if strings.TrimSpace(h.Get("X-RateLimit-Remaining")) == "0" {
		if reset, ok := resetTime(h); ok {
			wait := max(reset.Sub(now), 0) + orDefault(g.ResetSlack, DefaultResetSlack)
			return wait, fmt.Sprintf("primary rate limit of %s requests per hour spent (resource %s); it resets at %s",
				h.Get("X-RateLimit-Limit"), orString(h.Get("X-RateLimit-Resource"), "core"), reset.UTC().Format(time.RFC3339)), true
		}
	}
	if status == http.StatusTooManyRequests || bytes.Contains(bytes.ToLower(body), []byte("secondary rate limit")) {
		return orDefault(g.SecondaryWait, DefaultSecondaryWait), fmt.Sprintf("secondary rate limit (%d without Retry-After)", status), true
	}
	return 0, "", false
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func resetTime(h http.Header) (time.Time, bool) {
	sec, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// notePaused remembers, from a successful answer, that the quota is spent
// until the reset, so that the next request waits rather than be refused.
func (c *client) notePaused(resp *http.Response) {
	if resp.StatusCode >= 300 || strings.TrimSpace(resp.Header.Get("X-RateLimit-Remaining")) != "0" {
		return
	}
	if reset, ok := resetTime(resp.Header); ok {
		c.mu.Lock()
		c.pausedUntil = reset.Add(orDefault(c.g.ResetSlack, DefaultResetSlack))
		c.mu.Unlock()
	}
}

func (c *client) waitPaused(ctx context.Context, u *url.URL) error {
	c.mu.Lock()
	until := c.pausedUntil
	c.mu.Unlock()
	wait := until.Sub(c.now())
	if wait <= 0 {
		return nil
	}
	why := "the last answer said the primary rate limit is spent until " + until.UTC().Format(time.RFC3339)
	if err := c.checkWait(ctx, wait, why, 1); err != nil {
		return err
	}
	c.log.Warn("GitHub rate limit: waiting", "reason", why, "wait", wait.Round(time.Millisecond).String(), "url", sdk.RedactURL(u))
	return sleep(ctx, wait)
}

// checkWait refuses a wait that cannot end well: longer than the
// connector's bound, past the run's deadline, or one too many.
func (c *client) checkWait(ctx context.Context, wait time.Duration, why string, waits int) error {
	if waits > maxRateLimitWaits {
		return fmt.Errorf("GitHub kept answering with rate limits after %d waits (%s); try again later, or lower how often the sync runs", maxRateLimitWaits, why)
	}
	if bound := orDefault(c.g.MaxRateLimitWait, DefaultMaxRateLimitWait); wait > bound {
		return fmt.Errorf("GitHub rate limit: %s; the wait of %s is longer than the %s the connector waits", why, wait.Round(time.Second), bound)
	}
	if deadline, ok := ctx.Deadline(); ok && c.now().Add(wait).After(deadline) {
		return fmt.Errorf("GitHub rate limit: %s; waiting %s would outlast the run's timeout, so the run stops here and its retry resumes from the last checkpoint", why, wait.Round(time.Second))
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// githubMessage is the "message" of a GitHub error body, or the body.
func githubMessage(body []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return e.Message
	}
	return strings.TrimSpace(string(body))
}

// explain turns an error about repo into one that says what to fix.
func explain(repo string, err error) error {
	var he *sdk.HTTPError
	if !errors.As(err, &he) {
		return fmt.Errorf("repository %s: %w", repo, err)
	}
	msg := githubMessage(he.Body)
	switch he.StatusCode {
	case http.StatusUnauthorized:
		return fmt.Errorf("GitHub refused the token (401 %q): it is wrong, expired or revoked; create a new token and set token (see docs/connectors/github.md): %w", msg, err)
	case http.StatusForbidden:
		return fmt.Errorf("repository %s: GitHub answered 403 %q: the token lacks a permission; a fine-grained token needs read access to Issues, Pull requests and Metadata of this repository: %w", repo, msg, err)
	case http.StatusNotFound:
		return fmt.Errorf("repository %s not found: it does not exist, or the token cannot see it (a fine-grained token must include it under Repository access; a classic token needs the repo scope for a private repository): %w", repo, err)
	}
	return fmt.Errorf("repository %s: %w", repo, err)
}
