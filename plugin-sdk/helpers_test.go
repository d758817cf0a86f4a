package sdk_test

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
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

// ---- HTTP client ----

// fastClient retries quickly, so that tests do not wait on backoff.
func fastClient(t *testing.T, opts sdk.HTTPClientOptions) *sdk.HTTPClient {
	opts.RetryWaitMin, opts.RetryWaitMax = time.Millisecond, 5*time.Millisecond
	c := sdk.NewHTTPClient(opts)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// script answers the i-th request with the i-th handler (the last one
// repeats) and records the arrival times and bodies.
type script struct {
	mu       sync.Mutex
	handlers []http.HandlerFunc
	times    []time.Time
	bodies   []string
	headers  []http.Header
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	i := len(s.times)
	s.times = append(s.times, time.Now())
	s.bodies = append(s.bodies, string(b))
	s.headers = append(s.headers, r.Header.Clone())
	h := s.handlers[min(i, len(s.handlers)-1)]
	s.mu.Unlock()
	h(w, r)
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.times)
}

func status(code int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPRetriesServerErrorsThenSucceeds(t *testing.T) {
	s := &script{handlers: []http.HandlerFunc{status(503, "busy"), status(500, "oops"), status(200, `{"ok":true}`)}}
	srv := serve(t, s)
	c := fastClient(t, sdk.HTTPClientOptions{Header: http.Header{"Authorization": {"Bearer t0k3n"}}, UserAgent: "test/1"})
	var out map[string]any
	if _, err := c.GetJSON(t.Context(), srv.URL+"/x", &out); err != nil {
		t.Fatal(err)
	}
	if out["ok"] != true || s.count() != 3 {
		t.Fatalf("out %v after %d requests", out, s.count())
	}
	for _, h := range s.headers {
		if h.Get("Authorization") != "Bearer t0k3n" || h.Get("User-Agent") != "test/1" {
			t.Fatalf("headers %v", h)
		}
	}
}

func TestHTTPRetryAfterIsHonoured(t *testing.T) {
	s := &script{handlers: []http.HandlerFunc{status(429, "slow down", "Retry-After", "1"), status(200, "{}")}}
	srv := serve(t, s)
	c := fastClient(t, sdk.HTTPClientOptions{})
	if _, err := c.GetJSON(t.Context(), srv.URL, new(any)); err != nil {
		t.Fatal(err)
	}
	if s.count() != 2 {
		t.Fatalf("%d requests", s.count())
	}
	// The backoff alone would wait at most 5ms.
	if gap := s.times[1].Sub(s.times[0]); gap < 900*time.Millisecond {
		t.Fatalf("retried after %s despite Retry-After: 1", gap)
	}
}

func TestHTTPGivesUpWithTheLastAnswer(t *testing.T) {
	s := &script{handlers: []http.HandlerFunc{status(502, "bad gateway")}}
	srv := serve(t, s)
	c := fastClient(t, sdk.HTTPClientOptions{RetryMax: 2})
	_, err := c.GetJSON(t.Context(), srv.URL+"/p?api_key=secret", new(any))
	var he *sdk.HTTPError
	if !errors.As(err, &he) || he.StatusCode != 502 || string(he.Body) != "bad gateway" {
		t.Fatalf("got %v", err)
	}
	if s.count() != 3 {
		t.Fatalf("%d requests, want 3 (1 + 2 retries)", s.count())
	}
	if strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "GET "+srv.URL+"/p: 502 Bad Gateway: bad gateway") {
		t.Fatalf("error %q", err)
	}
}

func TestHTTPClientErrorsAreNotRetriedAndQuoted(t *testing.T) {
	long := strings.Repeat("x", 600) + "TAIL"
	s := &script{handlers: []http.HandlerFunc{status(404, long)}}
	srv := serve(t, s)
	c := fastClient(t, sdk.HTTPClientOptions{})
	_, err := c.GetJSON(t.Context(), srv.URL, new(any))
	var he *sdk.HTTPError
	if !errors.As(err, &he) || he.StatusCode != 404 || len(he.Body) != sdk.ErrorBodyLimit || strings.Contains(err.Error(), "TAIL") {
		t.Fatalf("got %v", err)
	}
	if s.count() != 1 {
		t.Fatalf("a 404 was retried: %d requests", s.count())
	}
}

func TestHTTPTransportErrorAfterRetries(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	c := fastClient(t, sdk.HTTPClientOptions{RetryMax: 1})
	_, err := c.Get(t.Context(), addr+"/x?token=secret")
	if err == nil || !strings.Contains(err.Error(), "giving up after 2 attempts") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("got %v", err)
	}
}

func TestHTTPBodyIsResentOnRetry(t *testing.T) {
	s := &script{handlers: []http.HandlerFunc{status(500, ""), status(201, "")}}
	srv := serve(t, s)
	c := fastClient(t, sdk.HTTPClientOptions{})
	req, _ := http.NewRequestWithContext(t.Context(), "POST", srv.URL, strings.NewReader("payload"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 || s.bodies[0] != "payload" || s.bodies[1] != "payload" {
		t.Fatalf("status %d bodies %q", resp.StatusCode, s.bodies)
	}
}

func TestHTTPCancelDuringBackoff(t *testing.T) {
	s := &script{handlers: []http.HandlerFunc{status(429, "", "Retry-After", "60")}}
	srv := serve(t, s)
	c := fastClient(t, sdk.HTTPClientOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Get(ctx, srv.URL)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("got %v after %s", err, time.Since(start))
	}
}

func TestHTTPRateLimit(t *testing.T) {
	s := &script{handlers: []http.HandlerFunc{status(200, "{}")}}
	srv := serve(t, s)
	c := fastClient(t, sdk.HTTPClientOptions{RateLimit: 20, Burst: 1})
	start := time.Now()
	for range 5 {
		if _, err := c.GetJSON(t.Context(), srv.URL, new(any)); err != nil {
			t.Fatal(err)
		}
	}
	// 5 requests at 20/s with a burst of 1: at least 4 gaps of 50ms.
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Fatalf("5 requests took %s at 20 per second", d)
	}
}

func TestRetryAfterAndBackoff(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]time.Duration{
		"7": 7 * time.Second, "0": 0, "1.5": 1500 * time.Millisecond,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	}
	for v, want := range cases {
		got, ok := sdk.RetryAfter(http.Header{"Retry-After": {v}}, now)
		if !ok || got != want {
			t.Errorf("Retry-After %q: %s %v, want %s", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "soon", "-3"} {
		if _, ok := sdk.RetryAfter(http.Header{"Retry-After": {v}}, now); ok {
			t.Errorf("Retry-After %q accepted", v)
		}
	}
	resp := &http.Response{Header: http.Header{"Retry-After": {"600"}}}
	if d := sdk.Backoff(time.Second, time.Minute, 0, resp, 5*time.Minute); d != 5*time.Minute {
		t.Errorf("Retry-After not capped: %s", d)
	}
	for attempt := range 12 {
		d := sdk.Backoff(time.Second, time.Minute, attempt, nil, 0)
		full := min(time.Second<<attempt, time.Minute)
		if d < full/2 || d > full {
			t.Errorf("attempt %d: %s not in [%s, %s]", attempt, d, full/2, full)
		}
	}
}

// ---- pagination ----

// listServer serves 7 items, ids 1..7, under every pagination style.
func listServer(t *testing.T, requests *[]string) *httptest.Server {
	items := []int{1, 2, 3, 4, 5, 6, 7}
	var mu sync.Mutex
	page := func(from, n int) []int {
		if from >= len(items) {
			return []int{}
		}
		return items[from:min(from+n, len(items))]
	}
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*requests = append(*requests, r.URL.RequestURI())
		mu.Unlock()
		q := r.URL.Query()
		switch r.URL.Path {
		case "/cursor":
			from, _ := strconv.Atoi(q.Get("cursor"))
			got := page(from, 3)
			next := ""
			if from+3 < len(items) {
				next = strconv.Itoa(from + 3)
			}
			fmt.Fprintf(w, `{"data":%s,"meta":{"next":%q}}`, ints(got), next)
		case "/offset":
			off, _ := strconv.Atoi(q.Get("offset"))
			lim, _ := strconv.Atoi(q.Get("limit"))
			fmt.Fprint(w, ints(page(off, lim)))
		case "/pages":
			p, _ := strconv.Atoi(q.Get("page"))
			fmt.Fprint(w, ints(page((p-1)*2, 2)))
		case "/link":
			p, _ := strconv.Atoi(q.Get("p"))
			if (p+1)*3 < len(items) {
				w.Header().Add("Link", fmt.Sprintf(`</link?p=%d>; rel="next", </link?p=9>; rel="last"`, p+1))
			}
			fmt.Fprint(w, ints(page(p*3, 3)))
		}
	}))
}

func ints(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return "[" + strings.Join(s, ",") + "]"
}

func collectPages(t *testing.T, c *sdk.HTTPClient, u string, p sdk.Paginator, path string) string {
	t.Helper()
	var got []string
	err := c.Paginate(t.Context(), u, p, func(pg *sdk.Page) (int, error) {
		var body any
		if err := pg.JSON(&body); err != nil {
			return 0, err
		}
		list, _ := sdk.Lookup(body, path)
		for _, x := range list.([]any) {
			got = append(got, fmt.Sprint(x))
		}
		return len(list.([]any)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(got, ",")
}

func TestPaginators(t *testing.T) {
	var reqs []string
	srv := listServer(t, &reqs)
	c := fastClient(t, sdk.HTTPClientOptions{})
	cases := []struct {
		name, path, records string
		p                   sdk.Paginator
		want                []string
	}{
		{"cursor", "/cursor?x=1", "data", sdk.CursorPagination{Param: "cursor", NextPath: "meta.next"},
			[]string{"/cursor?x=1", "/cursor?cursor=3&x=1", "/cursor?cursor=6&x=1"}},
		{"offset", "/offset", "", sdk.OffsetPagination{Param: "offset", LimitParam: "limit", Limit: 3},
			[]string{"/offset?limit=3&offset=0", "/offset?limit=3&offset=3", "/offset?limit=3&offset=6"}},
		{"offset, exact multiple", "/offset", "", sdk.OffsetPagination{Param: "offset", LimitParam: "limit", Limit: 7},
			[]string{"/offset?limit=7&offset=0", "/offset?limit=7&offset=7"}},
		{"page", "/pages", "", sdk.PageNumberPagination{Param: "page"},
			[]string{"/pages?page=1", "/pages?page=2", "/pages?page=3", "/pages?page=4", "/pages?page=5"}},
		{"link", "/link", "", sdk.LinkPagination{},
			[]string{"/link", "/link?p=1", "/link?p=2"}},
	}
	for _, tc := range cases {
		reqs = nil
		if got := collectPages(t, c, srv.URL+tc.path, tc.p, tc.records); got != "1,2,3,4,5,6,7" {
			t.Errorf("%s: items %s", tc.name, got)
		}
		if strings.Join(reqs, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: requests\n%s\nwant\n%s", tc.name, strings.Join(reqs, " "), strings.Join(tc.want, " "))
		}
	}
}

func TestPaginationStopsOnRepeatedCursor(t *testing.T) {
	srv := serve(t, status(200, `{"data":[1],"next":"same"}`))
	c := fastClient(t, sdk.HTTPClientOptions{})
	err := c.Paginate(t.Context(), srv.URL, sdk.CursorPagination{Param: "c", NextPath: "next"}, func(*sdk.Page) (int, error) { return 1, nil })
	if err == nil || !strings.Contains(err.Error(), `same cursor "same"`) {
		t.Fatalf("got %v", err)
	}
}

func TestCursorThatIsAURL(t *testing.T) {
	u, _ := url.Parse("https://api.example.com/x?cursor=a")
	body := []byte(`{"next":"https://api.example.com/x?cursor=b&sig=1"}`)
	next, err := sdk.CursorPagination{Param: "cursor", NextPath: "next"}.Next(&sdk.Page{URL: u, Body: body}, 1)
	if err != nil || next.String() != "https://api.example.com/x?cursor=b&sig=1" {
		t.Fatalf("%v %v", next, err)
	}
	next, err = sdk.CursorPagination{Param: "cursor", NextPath: "next"}.Next(&sdk.Page{URL: u, Body: []byte(`{"next":null}`)}, 1)
	if err != nil || next != nil {
		t.Fatalf("null cursor: %v %v", next, err)
	}
}

func TestCursorThatIsARelativeURL(t *testing.T) {
	u, _ := url.Parse("https://api.example.com/v1/x?cursor=a&limit=2")
	next := func(p sdk.CursorPagination, value string) string {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"next": value})
		got, err := p.Next(&sdk.Page{URL: u, Body: body}, 1)
		if err != nil {
			t.Fatalf("next %q: %v", value, err)
		}
		return got.String()
	}
	p := sdk.CursorPagination{Param: "cursor", NextPath: "next"}
	for value, want := range map[string]string{
		"/v1/x?cursor=b":  "https://api.example.com/v1/x?cursor=b",
		"?cursor=c":       "https://api.example.com/v1/x?cursor=c",
		"/other?after=d":  "https://api.example.com/other?after=d",
		"/Zm9v+YmFy==":    "https://api.example.com/v1/x?cursor=%2FZm9v%2BYmFy%3D%3D&limit=2", // a base64 cursor
		"eyJpZCI6NDJ9":    "https://api.example.com/v1/x?cursor=eyJpZCI6NDJ9&limit=2",
		"https://b.io/x?": "https://b.io/x?",
	} {
		if got := next(p, value); got != want {
			t.Errorf("next %q: %s, want %s", value, got, want)
		}
	}
	p.NextIsURL = true
	if got := next(p, "page/2"); got != "https://api.example.com/v1/page/2" {
		t.Errorf("NextIsURL: %s", got)
	}
	// The same page again, spelt relatively, is a loop.
	body := []byte(`{"next":"?cursor=a&limit=2"}`)
	if _, err := p.Next(&sdk.Page{URL: u, Body: body}, 1); err == nil || !strings.Contains(err.Error(), "same next page") {
		t.Fatalf("loop: %v", err)
	}
}

// TestPaginateHandsTheNextPageToTheHandler: a handler checkpoints
// Page.Next after each page; a walk cut short resumes there with
// PaginateFrom, for every paginator, and fetches each page once.
func TestPaginateHandsTheNextPageToTheHandler(t *testing.T) {
	var reqs []string
	srv := listServer(t, &reqs)
	c := fastClient(t, sdk.HTTPClientOptions{})
	for name, tc := range map[string]struct {
		path, records string
		p             sdk.Paginator
	}{
		"cursor": {"/cursor", "data", sdk.CursorPagination{Param: "cursor", NextPath: "meta.next"}},
		"offset": {"/offset", "", sdk.OffsetPagination{Param: "offset", LimitParam: "limit", Limit: 3}},
		"page":   {"/pages", "", sdk.PageNumberPagination{Param: "page"}},
		"link":   {"/link", "", sdk.LinkPagination{}},
	} {
		reqs = nil
		var items []string
		var checkpoint string
		interrupted := false
		errStop := errors.New("the host died")
		handle := func(pg *sdk.Page) (int, error) {
			var body any
			if err := pg.JSON(&body); err != nil {
				return 0, err
			}
			list, _ := sdk.Lookup(body, tc.records)
			n := len(list.([]any))
			for _, x := range list.([]any) {
				items = append(items, fmt.Sprint(x))
			}
			next, err := pg.Next(n)
			if err != nil {
				return 0, err
			}
			if next == nil {
				checkpoint = ""
				return n, nil
			}
			checkpoint = next.String()
			if !interrupted {
				interrupted = true
				return 0, errStop // interrupted after the first page's checkpoint
			}
			return n, nil
		}
		if err := c.Paginate(t.Context(), srv.URL+tc.path, tc.p, handle); !errors.Is(err, errStop) {
			t.Fatalf("%s: first walk: %v", name, err)
		}
		if checkpoint == "" {
			t.Fatalf("%s: no next page after the first", name)
		}
		if err := c.PaginateFrom(t.Context(), checkpoint, tc.p, handle); err != nil {
			t.Fatalf("%s: resumed walk: %v", name, err)
		}
		if got := strings.Join(items, ","); got != "1,2,3,4,5,6,7" {
			t.Errorf("%s: items %s (requests %v)", name, got, reqs)
		}
		seen := map[string]bool{}
		for _, r := range reqs {
			if seen[r] {
				t.Errorf("%s: %s fetched twice (requests %v)", name, r, reqs)
			}
			seen[r] = true
		}
	}
	// A page from FetchPage has no paginator to ask.
	u, _ := url.Parse(srv.URL + "/link")
	pg, err := c.FetchPage(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Next(3); err == nil || !strings.Contains(err.Error(), "only pages handed out by Paginate") {
		t.Fatalf("Next on a fetched page: %v", err)
	}
	if err := c.PaginateFrom(t.Context(), "http://[::1", sdk.LinkPagination{}, nil); err == nil || !strings.Contains(err.Error(), "is not a URL") {
		t.Fatalf("bad resume URL: %v", err)
	}
}

func TestLinkHeader(t *testing.T) {
	h := http.Header{}
	h.Add("Link", `<https://api.example.com/x?page=1>; rel="prev first", <https://api.example.com/x?a=1,2&page=3>; rel="Next"`)
	if got, ok := sdk.LinkHeader(h, "next"); !ok || got != "https://api.example.com/x?a=1,2&page=3" {
		t.Fatalf("next: %q %v", got, ok)
	}
	if got, ok := sdk.LinkHeader(h, "first"); !ok || got != "https://api.example.com/x?page=1" {
		t.Fatalf("first: %q %v", got, ok)
	}
	if _, ok := sdk.LinkHeader(h, "last"); ok {
		t.Fatal("last found")
	}
	u, _ := url.Parse("https://api.example.com/v1/x?page=2")
	next, err := sdk.LinkPagination{}.Next(&sdk.Page{URL: u, Header: http.Header{"Link": {`<x?page=3>; rel=next`}}}, 1)
	if err != nil || next.String() != "https://api.example.com/v1/x?page=3" {
		t.Fatalf("relative link: %v %v", next, err)
	}
}

func TestLookup(t *testing.T) {
	v := map[string]any{"a": map[string]any{"b": []any{"x", map[string]any{"c": 17.0}}}}
	if got, ok := sdk.Lookup(v, "a.b.1.c"); !ok || got != 17.0 {
		t.Fatalf("got %v %v", got, ok)
	}
	if _, ok := sdk.Lookup(v, "a.z"); ok {
		t.Fatal("a.z found")
	}
	if s, err := sdk.LookupString(v, "a.b.1.c"); err != nil || s != "17" {
		t.Fatalf("got %q %v", s, err)
	}
	if _, err := sdk.LookupString(v, "a.b"); err == nil {
		t.Fatal("an array as string")
	}
	if _, err := sdk.LookupString(v, "nope"); !errors.Is(err, sdk.ErrPathNotFound) {
		t.Fatalf("got %v", err)
	}
}

// ---- webhook signatures ----

func TestHMACSignature(t *testing.T) {
	body := []byte(`{"model":"Post"}`)
	// Known answer: HMAC-SHA256("key", body).
	hexSig := sdk.HMACSignature{Secret: []byte("key"), Prefix: "sha256="}
	sig := hexSig.Sign(body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != 7+64 {
		t.Fatalf("sig %q", sig)
	}
	if err := hexSig.Verify(body, sig); err != nil {
		t.Fatal(err)
	}
	if err := hexSig.Verify(body, strings.ToUpper(sig[7:])); !errors.Is(err, sdk.ErrBadSignature) {
		t.Fatalf("no prefix: %v", err)
	}
	if err := hexSig.Verify(body, "sha256="+strings.ToUpper(sig[7:])); err != nil {
		t.Fatalf("upper-case hex: %v", err)
	}
	if err := hexSig.Verify([]byte(`{"model":"Pos7"}`), sig); !errors.Is(err, sdk.ErrBadSignature) {
		t.Fatalf("tampered body: %v", err)
	}
	if err := hexSig.Verify(body, "sha256=zz "+sig); err != nil {
		t.Fatalf("one of several: %v", err)
	}
	if err := (sdk.HMACSignature{Secret: []byte("other"), Prefix: "sha256="}).Verify(body, sig); !errors.Is(err, sdk.ErrBadSignature) {
		t.Fatalf("other secret: %v", err)
	}
	if err := hexSig.Verify(body, "  "); !errors.Is(err, sdk.ErrMissingSignature) {
		t.Fatalf("empty: %v", err)
	}

	b64 := sdk.HMACSignature{Secret: []byte("key"), Encoding: sdk.Base64, Prefix: "v1,", Hash: sha1.New}
	sig = b64.Sign(body)
	if err := b64.Verify(body, sig); err != nil {
		t.Fatal(err)
	}
	raw := strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(sig), "=")
	if err := b64.Verify(body, raw); err != nil {
		t.Fatalf("URL base64 without padding: %v", err)
	}
	if err := (sdk.HMACSignature{Secret: []byte("key"), Encoding: sdk.Base64, Prefix: "v1,"}).Verify(body, sig); err == nil {
		t.Fatal("a SHA-1 MAC passed as SHA-256")
	}

	h := http.Header{}
	if err := hexSig.VerifyHeader(h, "X-Signature-256", body); !errors.Is(err, sdk.ErrMissingSignature) || !strings.Contains(err.Error(), "X-Signature-256") {
		t.Fatalf("missing header: %v", err)
	}
	h.Set("X-Signature-256", "sha256=00")
	if err := hexSig.VerifyHeader(h, "X-Signature-256", body); !errors.Is(err, sdk.ErrBadSignature) {
		t.Fatalf("bad header: %v", err)
	}
}

func TestHMACKnownAnswer(t *testing.T) {
	// RFC 4231 test case 2.
	s := sdk.HMACSignature{Secret: []byte("Jefe")}
	want := "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got := s.Sign([]byte("what do ya want for nothing?")); got != want {
		t.Fatalf("got %s", got)
	}
}

func TestCheckTimestamp(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ok := []string{"1800000000", "1799999760", "1800000240.5", now.Add(-time.Minute).UTC().Format(time.RFC3339)}
	for _, ts := range ok {
		if err := sdk.CheckTimestamp(ts, 5*time.Minute, now); err != nil {
			t.Errorf("%s: %v", ts, err)
		}
	}
	for _, ts := range []string{"1799999000", "1800000400"} {
		if err := sdk.CheckTimestamp(ts, 5*time.Minute, now); !errors.Is(err, sdk.ErrStaleTimestamp) {
			t.Errorf("%s: %v", ts, err)
		}
	}
	if err := sdk.CheckTimestamp("yesterday", time.Minute, now); err == nil {
		t.Error("bad timestamp accepted")
	}
	if err := sdk.CheckTimestamp("", time.Minute, now); err == nil {
		t.Error("no timestamp accepted")
	}
	if err := sdk.CheckTimestamp("1", 0, now); err != nil {
		t.Errorf("zero tolerance: %v", err)
	}
}
