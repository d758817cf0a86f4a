package sdk

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
)

// Paginator walks a paginated list: it gives the URL of the first page and,
// from each page fetched, the URL of the next one. The paginators here are
// stateless (everything they need is in the page's URL, header and body),
// so a connector can checkpoint the next page's URL and resume from it.
type Paginator interface {
	// First returns the URL of the first page of the list at base.
	First(base *url.URL) (*url.URL, error)
	// Next returns the URL of the page after p, which held n records, or
	// nil when p was the last page.
	Next(p *Page, n int) (*url.URL, error)
}

// Page is one fetched page of a list.
type Page struct {
	// URL is the page's URL.
	URL *url.URL
	// Header is the answer's header.
	Header http.Header
	// Body is the answer's body.
	Body []byte
	// Index counts the pages fetched by Paginate, from 0.
	Index int

	// pager and next serve Next on pages handed out by Paginate.
	pager Paginator
	next  *nextPage
}

// nextPage memoises the paginator's answer for a page.
type nextPage struct {
	n   int
	u   *url.URL
	err error
}

// Next returns the URL of the page after p given that p held n records,
// or nil when p is the last page: the next position that Paginate and
// PaginateFrom then follow. A handler checkpoints it (its String) after
// writing the page's records, and a retry resumes the walk there with
// PaginateFrom:
//
//	err := client.PaginateFrom(ctx, resumeURL, pager, func(page *sdk.Page) (int, error) {
//		recs := … // decode and save the page's records
//		next, err := page.Next(len(recs))
//		if err != nil {
//			return 0, err
//		}
//		cp := sdk.Checkpoint{"done": next == nil}
//		if next != nil {
//			cp["next"] = next.String()
//		}
//		return len(recs), w.Checkpoint(ctx, cp)
//	})
//
// The answer is computed once per n. On a page that Paginate did not hand
// out (one from FetchPage), Next is an error.
func (p *Page) Next(n int) (*url.URL, error) {
	if p.pager == nil {
		return nil, errors.New("sdk: Page.Next: only pages handed out by Paginate or PaginateFrom know their paginator; call the Paginator's Next")
	}
	if p.next == nil || p.next.n != n {
		u, err := p.pager.Next(p, n)
		p.next = &nextPage{n: n, u: u, err: err}
	}
	if p.next.u == nil {
		return nil, p.next.err
	}
	return cloneURL(p.next.u), p.next.err
}

// JSON decodes the page's body into v, with numbers as json.Number.
func (p *Page) JSON(v any) error {
	dec := json.NewDecoder(strings.NewReader(string(p.Body)))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("GET %s: the answer is not valid JSON: %w", RedactURL(p.URL), err)
	}
	return nil
}

// CursorPagination follows a cursor found in each page's body: the next
// page is the list's URL with ?Param=<cursor>, until the cursor is missing,
// null or empty. The cursor is at the dot path NextPath
// ("meta.next_cursor"), or given by NextFunc when set.
//
// Some APIs answer the next page's URL instead of a cursor value. A value
// that is an absolute http(s) URL ("https://api…/items?after=x"), a query
// ("?after=x") or a path with a query ("/v1/items?after=x") is followed as
// a URL, resolved against the page's URL as a browser would (and as
// LinkPagination does). Set NextIsURL when the next URL may lack a query
// ("/v1/items/page/2"); a cursor value never holds a '?', so the default
// does not mistake one for a URL.
type CursorPagination struct {
	// Param is the query parameter that carries the cursor.
	Param string
	// NextPath is the dot path of the next cursor in the body (see
	// Lookup).
	NextPath string
	// NextFunc, when set, extracts the next cursor from the page instead.
	NextFunc func(p *Page) (string, error)
	// NextIsURL treats every next value as a URL, absolute or relative to
	// the page's URL.
	NextIsURL bool
}

// looksLikeURL tells a next-page URL from a cursor value (see
// CursorPagination).
func looksLikeURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") ||
		strings.HasPrefix(s, "?") || (strings.HasPrefix(s, "/") && strings.Contains(s, "?"))
}

// First implements Paginator.
func (c CursorPagination) First(base *url.URL) (*url.URL, error) { return cloneURL(base), nil }

// Next implements Paginator. A cursor equal to the one that fetched p is an
// error: the list would never end.
func (c CursorPagination) Next(p *Page, n int) (*url.URL, error) {
	var next string
	if c.NextFunc != nil {
		var err error
		if next, err = c.NextFunc(p); err != nil {
			return nil, err
		}
	} else {
		var body any
		if err := p.JSON(&body); err != nil {
			return nil, err
		}
		v, ok := Lookup(body, c.NextPath)
		if !ok || v == nil {
			return nil, nil
		}
		switch x := v.(type) {
		case string:
			next = x
		case json.Number:
			next = x.String()
		case bool:
			return nil, nil
		default:
			return nil, fmt.Errorf("GET %s: the next cursor at %q is %s, not a string", RedactURL(p.URL), c.NextPath, describeValue(v))
		}
	}
	if next == "" {
		return nil, nil
	}
	if c.NextIsURL || looksLikeURL(next) {
		u, err := p.URL.Parse(next)
		if err != nil {
			return nil, fmt.Errorf("GET %s: the next page %q is not a URL: %w", RedactURL(p.URL), next, err)
		}
		if u.String() == p.URL.String() {
			return nil, fmt.Errorf("GET %s: the API answered the same next page again; stopping rather than looping", RedactURL(p.URL))
		}
		return u, nil
	}
	if next == p.URL.Query().Get(c.Param) {
		return nil, fmt.Errorf("GET %s: the API answered the same cursor %q again; stopping rather than looping", RedactURL(p.URL), next)
	}
	return withQuery(p.URL, c.Param, next), nil
}

// OffsetPagination asks for ?Param=<offset>&LimitParam=<Limit>, the offset
// growing by the records of each page, until a page holds fewer than Limit
// records (or none, when Limit is 0 and the API's page size is unknown).
type OffsetPagination struct {
	// Param carries the offset ("offset").
	Param string
	// LimitParam carries the page size ("limit"); empty sends none.
	LimitParam string
	// Limit is the page size asked for; 0 leaves it to the API.
	Limit int
	// Start is the first offset (default 0).
	Start int
}

// First implements Paginator.
func (o OffsetPagination) First(base *url.URL) (*url.URL, error) {
	u := withQuery(base, o.Param, strconv.Itoa(o.Start))
	if o.LimitParam != "" && o.Limit > 0 {
		u = withQuery(u, o.LimitParam, strconv.Itoa(o.Limit))
	}
	return u, nil
}

// Next implements Paginator.
func (o OffsetPagination) Next(p *Page, n int) (*url.URL, error) {
	if n == 0 || (o.Limit > 0 && n < o.Limit) {
		return nil, nil
	}
	cur := o.Start
	if v := p.URL.Query().Get(o.Param); v != "" {
		var err error
		if cur, err = strconv.Atoi(v); err != nil {
			return nil, fmt.Errorf("page URL %s: offset %q is not a number", RedactURL(p.URL), v)
		}
	}
	return withQuery(p.URL, o.Param, strconv.Itoa(cur+n)), nil
}

// PageNumberPagination asks for ?Param=1, 2, … until an empty page, or a
// page holding fewer than Limit records when Limit is set.
type PageNumberPagination struct {
	// Param carries the page number ("page").
	Param string
	// Start is the first page number (default 1).
	Start int
	// LimitParam and Limit ask for a page size, as in OffsetPagination.
	LimitParam string
	Limit      int
}

// First implements Paginator.
func (pn PageNumberPagination) First(base *url.URL) (*url.URL, error) {
	start := pn.Start
	if start == 0 {
		start = 1
	}
	u := withQuery(base, pn.Param, strconv.Itoa(start))
	if pn.LimitParam != "" && pn.Limit > 0 {
		u = withQuery(u, pn.LimitParam, strconv.Itoa(pn.Limit))
	}
	return u, nil
}

// Next implements Paginator.
func (pn PageNumberPagination) Next(p *Page, n int) (*url.URL, error) {
	if n == 0 || (pn.Limit > 0 && n < pn.Limit) {
		return nil, nil
	}
	v := p.URL.Query().Get(pn.Param)
	cur, err := strconv.Atoi(v)
	if err != nil {
		return nil, fmt.Errorf("page URL %s: page number %q is not a number", RedactURL(p.URL), v)
	}
	return withQuery(p.URL, pn.Param, strconv.Itoa(cur+1)), nil
}

// LinkPagination follows the Link header's rel="next" (RFC 8288, as GitHub
// and many others send it), resolved against the page's URL, until a page
// has none.
type LinkPagination struct {
	// Rel is the relation to follow (default "next").
	Rel string
}

// First implements Paginator.
func (l LinkPagination) First(base *url.URL) (*url.URL, error) { return cloneURL(base), nil }

// Next implements Paginator.
func (l LinkPagination) Next(p *Page, n int) (*url.URL, error) {
	rel := l.Rel
	if rel == "" {
		rel = "next"
	}
	ref, ok := LinkHeader(p.Header, rel)
	if !ok {
		return nil, nil
	}
	u, err := p.URL.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("GET %s: bad Link %q: %w", RedactURL(p.URL), ref, err)
	}
	if u.String() == p.URL.String() {
		return nil, fmt.Errorf("GET %s: the Link header points to the same page; stopping rather than looping", RedactURL(p.URL))
	}
	return u, nil
}

// LinkHeader returns the target of the first link with relation rel in the
// Link headers of h (`<https://api/x?page=2>; rel="next", <…>; rel="last"`).
// rel matches case-insensitively, also within a space-separated list of
// relations.
func LinkHeader(h http.Header, rel string) (string, bool) {
	for _, line := range h.Values("Link") {
		for _, link := range splitLinks(line) {
			link = strings.TrimSpace(link)
			if !strings.HasPrefix(link, "<") {
				continue
			}
			end := strings.IndexByte(link, '>')
			if end < 0 {
				continue
			}
			target := link[1:end]
			for _, param := range strings.Split(link[end+1:], ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(param), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for _, r := range strings.Fields(strings.Trim(strings.TrimSpace(v), `"`)) {
					if strings.EqualFold(r, rel) {
						return target, true
					}
				}
			}
		}
	}
	return "", false
}

// splitLinks splits a Link header value on the commas between links,
// not those inside <…> or quotes.
func splitLinks(s string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' && depth == 0:
			quoted = !quoted
		case c == '<' && !quoted:
			depth++
		case c == '>' && !quoted && depth > 0:
			depth--
		case c == ',' && depth == 0 && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// Paginate fetches every page of the list at rawURL with c, following p,
// and calls handle with each; handle returns how many records the page
// held (the paginator needs it to know where the list ends). The handler
// may ask the page for the next page's URL (Page.Next) to checkpoint it.
// Non-2xx answers are *HTTPError. It stops at the first error.
func (c *HTTPClient) Paginate(ctx context.Context, rawURL string, p Paginator, handle func(*Page) (int, error)) error {
	base, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	u, err := p.First(base)
	if err != nil {
		return err
	}
	return c.walk(ctx, u, p, handle)
}

// PaginateFrom is Paginate resuming a walk: it starts at next, a URL that
// Page.Next gave earlier (a checkpoint), as it is, without the
// paginator's First.
func (c *HTTPClient) PaginateFrom(ctx context.Context, next string, p Paginator, handle func(*Page) (int, error)) error {
	u, err := url.Parse(next)
	if err != nil {
		return fmt.Errorf("sdk: PaginateFrom: the next page %q is not a URL: %w", next, err)
	}
	return c.walk(ctx, u, p, handle)
}

func (c *HTTPClient) walk(ctx context.Context, u *url.URL, p Paginator, handle func(*Page) (int, error)) error {
	var err error
	for i := 0; u != nil && err == nil; i++ {
		var page *Page
		if page, err = c.FetchPage(ctx, u); err != nil {
			return err
		}
		page.Index, page.pager = i, p
		var n int
		if n, err = handle(page); err != nil {
			return err
		}
		u, err = page.Next(n)
	}
	return err
}

// FetchPage GETs u (Accept: application/json) and returns it as a Page; a
// non-2xx answer is an *HTTPError.
func (c *HTTPClient) FetchPage(ctx context.Context, u *url.URL) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
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
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the answer: %w", RedactURL(u), err)
	}
	return &Page{URL: u, Header: resp.Header, Body: body}, nil
}

// Lookup returns the value at a dot path ("meta.next_cursor", "data.0.id")
// in a decoded JSON value: object keys by name, array elements by index.
// The empty path is v itself.
func Lookup(v any, path string) (any, bool) {
	if path == "" {
		return v, true
	}
	for _, key := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[key]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// ErrPathNotFound is returned by LookupString when the path is absent.
var ErrPathNotFound = errors.New("not found")

// LookupString returns the value at path as a string: strings as they are,
// numbers as their JSON text (17 → "17"). Absent or null is ErrPathNotFound;
// another type is an error.
func LookupString(v any, path string) (string, error) {
	x, ok := Lookup(v, path)
	if !ok || x == nil {
		return "", ErrPathNotFound
	}
	switch s := x.(type) {
	case string:
		return s, nil
	case json.Number:
		return s.String(), nil
	case float64:
		return strconv.FormatFloat(s, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("%s, not a string or a number", describeValue(x))
}

func cloneURL(u *url.URL) *url.URL {
	c := *u
	if u.User != nil {
		user := *u.User
		c.User = &user
	}
	return &c
}

// withQuery returns a copy of u with the query parameter key set to value.
func withQuery(u *url.URL, key, value string) *url.URL {
	c := cloneURL(u)
	q := c.Query()
	q.Set(key, value)
	c.RawQuery = q.Encode()
	return c
}
