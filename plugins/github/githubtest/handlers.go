package githubtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The HTTP side of the fake: authentication, rate limits, injected
// failures, ETags, and the list endpoints with their parameters and Link
// headers.

// answer is what a handler produces before the common headers.
type answer struct {
	status int
	body   []byte
	header http.Header
}

func errorAnswer(status int, message, docs string) answer {
	b, _ := json.Marshal(map[string]string{"message": message, "documentation_url": docs, "status": strconv.Itoa(status)})
	return answer{status: status, body: b}
}

var (
	reRepo      = regexp.MustCompile(`^/repos/([^/]+)/([^/]+)(/.*)?$`)
	reRepoByID  = regexp.MustCompile(`^/repositories/([0-9]+)(/.*)?$`)
	reBearerTok = regexp.MustCompile(`^(?i:bearer|token)\s+(\S+)$`)
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	rec := Request{Method: r.Method, URI: r.URL.RequestURI(), IfNoneMatch: r.Header.Get("If-None-Match"), At: now}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-GitHub-Media-Type", "github.v3; format=json")
	h.Set("X-GitHub-Request-Id", fmt.Sprintf("FAKE:%04X:%06X", len(s.requests), now.UnixNano()&0xffffff))
	h.Set("Vary", "Accept, Authorization, Cookie, X-GitHub-OTP")
	a, tk := s.route(r, now)
	if tk != nil {
		h.Set("X-RateLimit-Limit", strconv.Itoa(tk.limit))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(tk.limit-tk.used))
		h.Set("X-RateLimit-Reset", strconv.FormatInt(tk.reset.Unix(), 10))
		h.Set("X-RateLimit-Used", strconv.Itoa(tk.used))
		h.Set("X-RateLimit-Resource", "core")
	}
	if a.status == http.StatusOK {
		h.Set("X-GitHub-Api-Version-Selected", APIVersion)
		h.Set("Cache-Control", "private, max-age=60, s-maxage=60")
	}
	for k, vs := range a.header {
		h[k] = vs
	}
	rec.Status = a.status
	s.requests = append(s.requests, rec)
	w.WriteHeader(a.status)
	if a.status != http.StatusNotModified && r.Method != http.MethodHead {
		w.Write(a.body)
	}
}

// route authenticates, applies limits and serves; the token is returned
// for the rate-limit headers once known.
func (s *Server) route(r *http.Request, now time.Time) (answer, *token) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return errorAnswer(http.StatusNotFound, "Not Found", docsAuth), nil
	}
	if v := r.Header.Get("X-GitHub-Api-Version"); v != "" && v != APIVersion {
		return errorAnswer(http.StatusBadRequest, fmt.Sprintf("API version %s is not supported.", v), docsAuth), nil
	}
	auth := strings.TrimSpace(r.Header.Get("Authorization"))
	if auth == "" {
		return errorAnswer(http.StatusUnauthorized, "Requires authentication", docsAuth), nil
	}
	m := reBearerTok.FindStringSubmatch(auth)
	var tk *token
	if m != nil {
		tk = s.tokens[m[1]]
	}
	if tk == nil {
		return errorAnswer(http.StatusUnauthorized, "Bad credentials", docsAuth), nil
	}
	s.window(tk, now)
	if r.URL.Path == "/rate_limit" {
		core := map[string]any{"limit": tk.limit, "remaining": tk.limit - tk.used, "reset": tk.reset.Unix(), "used": tk.used, "resource": "core"}
		b, _ := json.Marshal(map[string]any{"resources": map[string]any{"core": core}, "rate": core})
		return answer{status: http.StatusOK, body: b}, tk
	}
	if tk.used >= tk.limit {
		a := errorAnswer(tk.status, "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.", docsPrimary)
		return a, tk
	}
	if len(s.failures) > 0 {
		f := &s.failures[0]
		f.n--
		a := answer{status: f.status, body: []byte(f.body), header: http.Header{}}
		if f.retryAfter != "" {
			a.header.Set("Retry-After", f.retryAfter)
		}
		if f.n <= 0 {
			s.failures = s.failures[1:]
		}
		if f.secondary {
			tk.used++ // GitHub counts a request that hits a secondary limit
		}
		return a, tk
	}
	a := s.resource(r, tk)
	if a.status == http.StatusOK {
		etag := `W/"` + hashHex(a.body) + `"`
		if a.header == nil {
			a.header = http.Header{}
		}
		a.header.Set("ETag", etag)
		if etagMatch(r.Header.Get("If-None-Match"), etag) {
			// A 304 costs no quota, and carries no Link: the client
			// has the page already.
			return answer{status: http.StatusNotModified, header: http.Header{"Etag": {etag}}}, tk
		}
	}
	tk.used++
	return a, tk
}

func hashHex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// etagMatch compares If-None-Match with an ETag weakly (RFC 9110 §13.1.2).
func etagMatch(inm, etag string) bool {
	weak := func(s string) string { return strings.TrimPrefix(strings.TrimSpace(s), "W/") }
	for _, v := range strings.Split(inm, ",") {
		if v = strings.TrimSpace(v); v == "*" || (v != "" && weak(v) == weak(etag)) {
			return true
		}
	}
	return false
}

// resource serves an authenticated, unlimited request.
func (s *Server) resource(r *http.Request, tk *token) answer {
	var rp *repo
	var rest string
	if m := reRepo.FindStringSubmatch(r.URL.Path); m != nil {
		rp, rest = s.repos[strings.ToLower(m[1]+"/"+m[2])], m[3]
	} else if m := reRepoByID.FindStringSubmatch(r.URL.Path); m != nil {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		rp, rest = s.byID[id], m[2]
	} else {
		return errorAnswer(http.StatusNotFound, "Not Found", docsAuth)
	}
	if rp == nil || !tk.sees(rp) {
		return errorAnswer(http.StatusNotFound, "Not Found", docsRepo)
	}
	q := r.URL.Query()
	switch rest {
	case "", "/":
		return jsonAnswer(s.repoJSON(rp))
	case "/issues":
		if tk.noIssues {
			return errorAnswer(http.StatusForbidden, "Resource not accessible by personal access token", docsIssues)
		}
		return s.listIssues(r, rp, q)
	case "/pulls":
		if tk.noPulls {
			return errorAnswer(http.StatusForbidden, "Resource not accessible by personal access token", docsPulls)
		}
		return s.listPulls(r, rp, q)
	case "/issues/comments":
		if tk.noIssues {
			return errorAnswer(http.StatusForbidden, "Resource not accessible by personal access token", docsComments)
		}
		return s.listComments(r, rp, q)
	}
	return errorAnswer(http.StatusNotFound, "Not Found", docsAuth)
}

func (tk *token) sees(r *repo) bool {
	return len(tk.repos) == 0 || slices.Contains(tk.repos, strings.ToLower(r.fullName()))
}

func jsonAnswer(v any) answer {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return answer{status: http.StatusOK, body: b}
}

func validation(message, docs string) answer {
	return errorAnswer(http.StatusUnprocessableEntity, message, docs)
}

// listParams are a list request's common parameters.
type listParams struct {
	state, sort, direction string
	since                  time.Time
	page, perPage          int
}

func parseList(q url.Values, sorts []string, defaultDirection func(sort string) string, docs string) (listParams, *answer) {
	p := listParams{state: q.Get("state"), sort: q.Get("sort"), direction: q.Get("direction"), page: 1, perPage: 30}
	if p.state == "" {
		p.state = "open"
	}
	if p.state != "open" && p.state != "closed" && p.state != "all" {
		a := validation("Validation Failed: state must be one of open, closed, all", docs)
		return p, &a
	}
	if p.sort == "" {
		p.sort = sorts[0]
	}
	if !slices.Contains(sorts, p.sort) {
		a := validation("Validation Failed: sort must be one of "+strings.Join(sorts, ", "), docs)
		return p, &a
	}
	if p.direction == "" {
		p.direction = defaultDirection(q.Get("sort"))
	}
	if p.direction != "asc" && p.direction != "desc" {
		a := validation("Validation Failed: direction must be asc or desc", docs)
		return p, &a
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			a := validation("Validation Failed: since must be an ISO 8601 timestamp: YYYY-MM-DDTHH:MM:SSZ", docs)
			return p, &a
		}
		p.since = t
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil && n > 0 {
			p.perPage = min(n, 100)
		}
	}
	if v := q.Get("page"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			p.page = n
		}
	}
	return p, nil
}

func descByDefault(string) string { return "desc" }

// page cuts one page out of n items and sets the Link header.
func (s *Server) page(r *http.Request, rp *repo, p listParams, n int) (from, to int, h http.Header) {
	last := max(1, (n+p.perPage-1)/p.perPage)
	from = min((p.page-1)*p.perPage, n)
	to = min(from+p.perPage, n)
	h = http.Header{}
	link := func(page int, rel string) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(page))
		// GitHub's links name the repository by id.
		path := reRepo.ReplaceAllString(r.URL.Path, fmt.Sprintf("/repositories/%d$3", rp.id))
		return fmt.Sprintf(`<%s%s?%s>; rel="%s"`, s.URL, path, q.Encode(), rel)
	}
	var links []string
	if p.page > 1 {
		links = append(links, link(min(p.page-1, last), "prev"))
	}
	if p.page < last {
		links = append(links, link(p.page+1, "next"), link(last, "last"))
	}
	if p.page > 1 {
		links = append(links, link(1, "first"))
	}
	if len(links) > 0 {
		h.Set("Link", strings.Join(links, ", "))
	}
	return from, to, h
}

func orderBy(less func(a, b int) int, direction string) func(a, b int) int {
	if direction == "desc" {
		return func(a, b int) int { return less(b, a) }
	}
	return less
}

func cmpTime(a, b time.Time) int { return a.Compare(b) }

func (s *Server) listIssues(r *http.Request, rp *repo, q url.Values) answer {
	p, bad := parseList(q, []string{"created", "updated", "comments"}, descByDefault, docsIssues)
	if bad != nil {
		return *bad
	}
	var list []*Issue
	for _, is := range rp.issues {
		if (p.state == "all" || is.State == p.state) && (p.since.IsZero() || !is.UpdatedAt.Before(p.since)) {
			list = append(list, is)
		}
	}
	sortIssues(list, p)
	from, to, h := s.page(r, rp, p, len(list))
	out := make([]map[string]any, 0, to-from)
	for _, is := range list[from:to] {
		out = append(out, s.issueJSON(rp, is))
	}
	a := jsonAnswer(out)
	a.header = h
	return a
}

func sortIssues(list []*Issue, p listParams) {
	key := func(a, b int) int {
		x, y := list[a], list[b]
		var c int
		switch p.sort {
		case "updated":
			c = cmpTime(x.UpdatedAt, y.UpdatedAt)
		case "comments":
			c = x.comments - y.comments
		default:
			c = cmpTime(x.CreatedAt, y.CreatedAt)
		}
		if c == 0 {
			c = x.Number - y.Number
		}
		return c
	}
	cmp := orderBy(key, p.direction)
	idx := make([]int, len(list))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return cmp(idx[a], idx[b]) < 0 })
	sorted := make([]*Issue, len(list))
	for i, j := range idx {
		sorted[i] = list[j]
	}
	copy(list, sorted)
}

func (s *Server) listPulls(r *http.Request, rp *repo, q url.Values) answer {
	// GitHub: direction defaults to desc when sort is created or not
	// given, else asc. The pulls list has no since parameter.
	dir := func(sort string) string {
		if sort == "" || sort == "created" {
			return "desc"
		}
		return "asc"
	}
	p, bad := parseList(q, []string{"created", "updated", "popularity", "long-running"}, dir, docsPulls)
	if bad != nil {
		return *bad
	}
	p.since = time.Time{}
	var list []*Issue
	for _, is := range rp.issues {
		if is.IsPull() && (p.state == "all" || is.State == p.state) {
			list = append(list, is)
		}
	}
	if p.sort != "updated" {
		p.sort = "created"
	}
	sortIssues(list, p)
	from, to, h := s.page(r, rp, p, len(list))
	out := make([]map[string]any, 0, to-from)
	for _, is := range list[from:to] {
		out = append(out, s.pullJSON(rp, is, false))
	}
	a := jsonAnswer(out)
	a.header = h
	return a
}

func (s *Server) listComments(r *http.Request, rp *repo, q url.Values) answer {
	// GitHub: direction is ignored without sort; then comments come in
	// ascending id order.
	p, bad := parseList(q, []string{"created", "updated"}, descByDefault, docsComments)
	if bad != nil {
		return *bad
	}
	if q.Get("sort") == "" {
		p.direction = "asc"
	}
	p.state = "all"
	var list []*Comment
	for _, c := range rp.comments {
		if p.since.IsZero() || !c.UpdatedAt.Before(p.since) {
			list = append(list, c)
		}
	}
	sort.Slice(list, func(a, b int) bool {
		x, y := list[a], list[b]
		if p.direction == "desc" {
			x, y = y, x
		}
		if p.sort == "updated" && !x.UpdatedAt.Equal(y.UpdatedAt) {
			return x.UpdatedAt.Before(y.UpdatedAt)
		}
		return x.ID < y.ID
	})
	from, to, h := s.page(r, rp, p, len(list))
	out := make([]map[string]any, 0, to-from)
	for _, c := range list[from:to] {
		out = append(out, s.commentJSON(rp, c))
	}
	a := jsonAnswer(out)
	a.header = h
	return a
}
