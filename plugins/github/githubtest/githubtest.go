// Package githubtest is a fake of the part of GitHub's REST API that the
// github connector reads, faithful to GitHub's public documentation, for
// the connector's unit tests, the sdktest acceptance suite and the
// integration tests:
//
//   - GET /repos/{owner}/{repo} (and /repositories/{id}/…, where GitHub's
//     Link headers point),
//   - GET /repos/{owner}/{repo}/issues?state=&sort=&direction=&since=
//     (pull requests included, marked by a "pull_request" key),
//   - GET /repos/{owner}/{repo}/pulls?state=&sort=&direction= (no since),
//   - GET /repos/{owner}/{repo}/issues/comments?sort=&direction=&since=,
//   - GET /rate_limit (free of charge, as on GitHub).
//
// Lists are paged with per_page (default 30, at most 100) and page, and
// answer a Link header of absolute URLs (rel prev, next, last, first).
// Every answer carries an ETag; a request whose If-None-Match matches
// answers 304 without a body and without spending quota. Tokens travel as
// "Authorization: Bearer <t>" or "token <t>"; an unknown one answers 401
// Bad credentials, a repository the token may not see 404 Not Found, a
// permission the token lacks 403 "Resource not accessible by personal
// access token". Each token has a primary rate limit (X-RateLimit-Limit,
// -Remaining, -Reset, -Used, -Resource); once it is spent requests answer
// 403 (or 429) with X-RateLimit-Remaining: 0 until the reset time.
// Secondary rate limits (403 or 429 with Retry-After) and server errors can
// be injected.
//
// The test API adds, edits and deletes issues, pull requests and comments
// between syncs, and builds the webhook deliveries GitHub would send for
// them (see webhooks.go). Timestamps come from a clock of its own that
// moves one second after each change (see SetStep), so that tests are
// deterministic.
package githubtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// APIVersion is the REST API version the fake serves (the
// X-GitHub-Api-Version request header; absent means this one).
const APIVersion = "2022-11-28"

// DefaultRateLimit is a token's primary rate limit per hour, GitHub's for
// a personal access token.
const DefaultRateLimit = 5000

// Documentation URLs quoted in error bodies, as GitHub quotes them.
const (
	docsAuth      = "https://docs.github.com/rest"
	docsPrimary   = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-primary-rate-limits"
	docsSecondary = "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
	docsIssues    = "https://docs.github.com/rest/issues/issues#list-repository-issues"
	docsPulls     = "https://docs.github.com/rest/pulls/pulls#list-pull-requests"
	docsComments  = "https://docs.github.com/rest/issues/comments#list-issue-comments-for-a-repository"
	docsRepo      = "https://docs.github.com/rest/repos/repos#get-a-repository"
)

// Start is the fake clock's first time.
var Start = time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)

// Server is a running fake of GitHub's REST API.
type Server struct {
	// URL is the API's root, like https://api.github.com (no trailing
	// slash).
	URL string

	srv *httptest.Server

	mu       sync.Mutex
	clock    time.Time
	step     time.Duration
	nextID   int64
	users    map[string]User
	repos    map[string]*repo // by lower-case full name
	byID     map[int64]*repo
	tokens   map[string]*token
	failures []failure
	requests []Request
}

// User is a GitHub account, as embedded in issues and comments.
type User struct {
	Login string
	ID    int64
}

// Issue is an issue or a pull request (GitHub numbers them together) as
// the fake stores it. Edit it through EditIssue; the fields below are
// what the fake renders.
type Issue struct {
	// ID is the issue's id (the issues endpoint's "id"); PullID the pull
	// request's own id (the pulls endpoint's "id"), 0 for an issue.
	ID, PullID int64
	Number     int
	Title      string
	// Body nil renders as null, as GitHub answers for an empty body.
	Body        *string
	State       string // "open" or "closed"
	StateReason string // "completed", "not_planned", "reopened" or ""
	Locked      bool
	User        User
	Labels      []string
	Assignees   []User
	Milestone   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	ClosedAt    *time.Time
	// Pull request fields.
	Draft              bool
	Head, Base         string // branch names
	HeadSHA, BaseSHA   string
	MergedAt           *time.Time
	MergeCommitSHA     string
	RequestedReviewers []User
	// comments counts the issue's comments.
	comments int
}

// IsPull tells whether the issue is a pull request.
func (i *Issue) IsPull() bool { return i.PullID != 0 }

// Comment is a comment on an issue or a pull request's conversation.
type Comment struct {
	ID        int64
	Issue     int // the issue's number
	User      User
	Body      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

type repo struct {
	id       int64
	owner    User
	name     string
	created  time.Time
	issues   map[int]*Issue
	comments map[int64]*Comment
	next     int
}

func (r *repo) fullName() string { return r.owner.Login + "/" + r.name }

type token struct {
	repos    []string // lower-case full names it may see; empty: all
	noIssues bool
	noPulls  bool
	limit    int
	used     int
	reset    time.Time // end of the current window; zero before the first request
	status   int       // status of a rate-limited answer (403 or 429)
}

type failure struct {
	n          int // how many requests it still fails
	status     int
	body       string
	retryAfter string
	secondary  bool
}

// Request is one request the fake received.
type Request struct {
	Method string
	// URI is the path and query.
	URI string
	// IfNoneMatch is the request's If-None-Match header.
	IfNoneMatch string
	// Status is the answer's status.
	Status int
	// At is the (real) time it arrived.
	At time.Time
}

// New starts a fake, closed when the test ends. It knows no token and no
// repository yet: add them with AddToken and AddRepo.
func New(t testing.TB) *Server {
	s := &Server{
		clock:  Start,
		step:   time.Second,
		nextID: 1000,
		users:  map[string]User{},
		repos:  map[string]*repo{},
		byID:   map[int64]*repo{},
		tokens: map[string]*token{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Close stops the server (New already arranges it at the end of the test).
func (s *Server) Close() { s.srv.Close() }

// TokenOptions restricts a token, as a fine-grained personal access token
// is restricted.
type TokenOptions struct {
	// Repos are the repositories ("owner/name") the token may see; empty
	// means all. Others answer 404, as on GitHub.
	Repos []string
	// NoIssues and NoPullRequests withhold the "Issues: read" and "Pull
	// requests: read" permissions: their endpoints answer 403.
	NoIssues, NoPullRequests bool
	// Limit is the primary rate limit per hour (default DefaultRateLimit).
	Limit int
}

// AddToken makes value a valid token.
func (s *Server) AddToken(value string, opts TokenOptions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tk := &token{noIssues: opts.NoIssues, noPulls: opts.NoPullRequests, limit: opts.Limit, status: http.StatusForbidden}
	if tk.limit <= 0 {
		tk.limit = DefaultRateLimit
	}
	for _, r := range opts.Repos {
		tk.repos = append(tk.repos, strings.ToLower(r))
	}
	s.tokens[value] = tk
}

// AddRepo creates a repository "owner/name".
func (s *Server) AddRepo(fullName string) {
	owner, name, ok := strings.Cut(fullName, "/")
	if !ok || owner == "" || name == "" {
		panic("githubtest: AddRepo wants owner/name, not " + fullName)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &repo{id: s.id(), owner: s.user(owner), name: name, created: s.clock, issues: map[int]*Issue{}, comments: map[int64]*Comment{}, next: 1}
	s.repos[strings.ToLower(fullName)] = r
	s.byID[r.id] = r
}

// SetStep sets how far the clock moves after each change (default one
// second); zero gives changes the same updated_at, to test ties.
func (s *Server) SetStep(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.step = d
}

// Now is the fake clock's time: the updated_at the next change gets.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clock
}

func (s *Server) id() int64 {
	s.nextID++
	return s.nextID
}

// user returns the account with that login, creating it.
func (s *Server) user(login string) User {
	if u, ok := s.users[login]; ok {
		return u
	}
	u := User{Login: login, ID: s.id()}
	s.users[login] = u
	return u
}

// tick returns the time of a change and moves the clock.
func (s *Server) tick() time.Time {
	now := s.clock
	s.clock = s.clock.Add(s.step)
	return now
}

func (s *Server) mustRepo(fullName string) *repo {
	r := s.repos[strings.ToLower(fullName)]
	if r == nil {
		panic("githubtest: no repository " + fullName)
	}
	return r
}

func (s *Server) mustIssue(fullName string, number int) (*repo, *Issue) {
	r := s.mustRepo(fullName)
	is := r.issues[number]
	if is == nil {
		panic(fmt.Sprintf("githubtest: no issue or pull request %s#%d", fullName, number))
	}
	return r, is
}

// IssueInput is a new issue or pull request.
type IssueInput struct {
	Title string
	Body  string // "" renders as null
	// User is the author's login (default "octocat").
	User      string
	Labels    []string
	Assignees []string
	Milestone string
	// Pull request fields: the branches (default "feature" into "main")
	// and draft.
	Head, Base string
	Draft      bool
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// CreateIssue opens an issue and returns it.
func (s *Server) CreateIssue(repoName string, in IssueInput) Issue {
	return s.create(repoName, in, false)
}

// CreatePull opens a pull request and returns it.
func (s *Server) CreatePull(repoName string, in IssueInput) Issue {
	return s.create(repoName, in, true)
}

func (s *Server) create(repoName string, in IssueInput, pull bool) Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.mustRepo(repoName)
	if in.User == "" {
		in.User = "octocat"
	}
	now := s.tick()
	is := &Issue{
		ID: s.id(), Number: r.next, Title: in.Title, Body: strPtr(in.Body), State: "open",
		User: s.user(in.User), Labels: slices.Clone(in.Labels), Milestone: in.Milestone,
		CreatedAt: now, UpdatedAt: now,
	}
	for _, a := range in.Assignees {
		is.Assignees = append(is.Assignees, s.user(a))
	}
	if pull {
		is.PullID = s.id()
		is.Head, is.Base, is.Draft = in.Head, in.Base, in.Draft
		if is.Head == "" {
			is.Head = "feature-" + strconv.Itoa(r.next)
		}
		if is.Base == "" {
			is.Base = "main"
		}
		is.HeadSHA, is.BaseSHA = sha(fmt.Sprint(is.PullID, "head")), sha(fmt.Sprint(is.PullID, "base"))
	}
	r.next++
	r.issues[is.Number] = is
	return s.copyIssue(is)
}

func sha(seed string) string {
	h := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(h[:20])
}

func (s *Server) copyIssue(is *Issue) Issue {
	c := *is
	c.Labels = slices.Clone(is.Labels)
	c.Assignees = slices.Clone(is.Assignees)
	c.RequestedReviewers = slices.Clone(is.RequestedReviewers)
	return c
}

// Issue returns an issue or pull request as it stands.
func (s *Server) Issue(repoName string, number int) (Issue, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos[strings.ToLower(repoName)]
	if r == nil || r.issues[number] == nil {
		return Issue{}, false
	}
	return s.copyIssue(r.issues[number]), true
}

// EditIssue changes an issue or pull request with edit and stamps it with
// a new updated_at; it returns the result.
func (s *Server) EditIssue(repoName string, number int, edit func(*Issue)) Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, is := s.mustIssue(repoName, number)
	edit(is)
	is.UpdatedAt = s.tick()
	return s.copyIssue(is)
}

// CloseIssue closes an issue or pull request ("completed" or
// "not_planned" for an issue; "" for a pull request).
func (s *Server) CloseIssue(repoName string, number int, reason string) Issue {
	return s.EditIssue(repoName, number, func(is *Issue) {
		t := s.clock
		is.State, is.StateReason, is.ClosedAt = "closed", reason, &t
	})
}

// MergePull merges a pull request (and so closes it).
func (s *Server) MergePull(repoName string, number int) Issue {
	return s.EditIssue(repoName, number, func(is *Issue) {
		if !is.IsPull() {
			panic("githubtest: MergePull of an issue")
		}
		t := s.clock
		is.State, is.ClosedAt, is.MergedAt = "closed", &t, &t
		is.MergeCommitSHA = sha(fmt.Sprint(is.PullID, "merge"))
	})
}

// DeleteIssue deletes an issue and its comments, as a repository admin
// can; it returns the issue as it was, for the "deleted" webhook. Pull
// requests cannot be deleted on GitHub: that panics.
func (s *Server) DeleteIssue(repoName string, number int) Issue {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, is := s.mustIssue(repoName, number)
	if is.IsPull() {
		panic("githubtest: GitHub does not delete pull requests")
	}
	delete(r.issues, number)
	for id, c := range r.comments {
		if c.Issue == number {
			delete(r.comments, id)
		}
	}
	s.tick()
	return s.copyIssue(is)
}

// AddComment comments on an issue or pull request; it returns the comment.
// Like GitHub, it also moves the issue's updated_at.
func (s *Server) AddComment(repoName string, number int, login, body string) Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, is := s.mustIssue(repoName, number)
	if login == "" {
		login = "octocat"
	}
	now := s.tick()
	c := &Comment{ID: s.id(), Issue: number, User: s.user(login), Body: body, CreatedAt: now, UpdatedAt: now}
	r.comments[c.ID] = c
	is.comments++
	is.UpdatedAt = now
	return *c
}

// EditComment changes a comment's body and updated_at.
func (s *Server) EditComment(repoName string, id int64, body string) Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.mustRepo(repoName).comments[id]
	if c == nil {
		panic(fmt.Sprintf("githubtest: no comment %d in %s", id, repoName))
	}
	c.Body, c.UpdatedAt = body, s.tick()
	return *c
}

// Comment returns a comment as it stands.
func (s *Server) Comment(repoName string, id int64) (Comment, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.repos[strings.ToLower(repoName)]
	if r == nil || r.comments[id] == nil {
		return Comment{}, false
	}
	return *r.comments[id], true
}

// DeleteComment deletes a comment and returns it as it was.
func (s *Server) DeleteComment(repoName string, id int64) Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.mustRepo(repoName)
	c := r.comments[id]
	if c == nil {
		panic(fmt.Sprintf("githubtest: no comment %d in %s", id, repoName))
	}
	delete(r.comments, id)
	if is := r.issues[c.Issue]; is != nil {
		is.comments--
	}
	s.tick()
	return *c
}

// ExhaustRateLimit spends token's primary rate limit: its requests answer
// status (403 or 429) with X-RateLimit-Remaining: 0 until resetIn from
// now (rounded up to a whole second, as X-RateLimit-Reset is in seconds),
// when the limit is full again.
func (s *Server) ExhaustRateLimit(tok string, resetIn time.Duration, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tk := s.tokens[tok]
	if tk == nil {
		panic("githubtest: ExhaustRateLimit of an unknown token")
	}
	reset := time.Now().Add(resetIn)
	tk.reset = time.Unix(int64(math.Ceil(float64(reset.UnixNano())/1e9)), 0)
	tk.used, tk.status = tk.limit, status
}

// RateLimit returns token's primary rate limit as the headers would show
// it now.
func (s *Server) RateLimit(tok string) (limit, remaining, used int, reset time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tk := s.tokens[tok]
	if tk == nil {
		return 0, 0, 0, time.Time{}
	}
	s.window(tk, time.Now())
	return tk.limit, tk.limit - tk.used, tk.used, tk.reset
}

// SecondaryLimit makes the next n requests hit a secondary rate limit:
// status 403 or 429, with Retry-After (whole seconds) unless retryAfter is
// zero, and GitHub's message.
func (s *Server) SecondaryLimit(n int, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := failure{n: n, status: status, secondary: true,
		body: `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000.","documentation_url":"` + docsSecondary + `","status":"` + strconv.Itoa(status) + `"}`}
	if retryAfter > 0 {
		f.retryAfter = strconv.Itoa(int(math.Ceil(retryAfter.Seconds())))
	}
	s.failures = append(s.failures, f)
}

// FailNext makes the next n requests answer status with body (a server
// error, say).
func (s *Server) FailNext(n int, status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, failure{n: n, status: status, body: body})
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

// window starts a new rate-limit window when the last one has ended.
func (s *Server) window(tk *token, now time.Time) {
	if tk.reset.IsZero() || !now.Before(tk.reset) {
		tk.used = 0
		tk.reset = time.Unix(now.Add(time.Hour).Unix(), 0)
	}
}
