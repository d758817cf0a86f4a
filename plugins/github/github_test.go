package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
	"github.com/synclayer/synclayer/plugins/github/githubtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	token  = "ghp_unitTestT0ken0123456789abcdef"
	secret = "whsec-github-unit-s3cret"
	repoA  = "octo-org/octo-repo"
	repoB  = "octo-org/other-repo"
)

// fixture is a fake GitHub with two repositories: repoA has issues 1–3,
// pull requests 4 and 5 and comments on 1 and 4; repoB one issue with a
// comment.
func fixture(t *testing.T) *githubtest.Server {
	t.Helper()
	s := githubtest.New(t)
	s.AddToken(token, githubtest.TokenOptions{})
	s.AddRepo(repoA)
	s.AddRepo(repoB)
	s.CreateIssue(repoA, githubtest.IssueInput{Title: "Crash on start", Body: "It crashes.", Labels: []string{"bug"}, Assignees: []string{"hubot"}})
	s.CreateIssue(repoA, githubtest.IssueInput{Title: "Docs", User: "monalisa"})
	s.CreateIssue(repoA, githubtest.IssueInput{Title: "Ideas", Milestone: "v2"})
	s.CreatePull(repoA, githubtest.IssueInput{Title: "Fix the crash", Body: "Fixes #1", Labels: []string{"bug"}})
	s.CreatePull(repoA, githubtest.IssueInput{Title: "Draft", Draft: true})
	s.AddComment(repoA, 1, "monalisa", "Me too")
	s.AddComment(repoA, 4, "hubot", "LGTM")
	s.CreateIssue(repoB, githubtest.IssueInput{Title: "Other"})
	s.AddComment(repoB, 1, "octocat", "first")
	return s
}

func config(s *githubtest.Server) map[string]any {
	return map[string]any{"token": token, "repos": []string{repoA, repoB}, "base_url": s.URL, "webhook_secret": secret}
}

// fast is the connector with pages of two and short waits (GitHub's own
// Retry-After and X-RateLimit-Reset still hold).
func fast() *GitHub {
	return &GitHub{
		HTTP:    sdk.HTTPClientOptions{RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond},
		PerPage: 2, ResetSlack: 20 * time.Millisecond, SecondaryWait: 50 * time.Millisecond,
	}
}

func syncRun(t *testing.T, h *sdktest.Harness, cfg map[string]any, sync string, full bool, cp sdk.Checkpoint) *sdktest.Result {
	t.Helper()
	res, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: sync, Full: full, Checkpoint: cp})
	if err != nil {
		t.Fatalf("sync %s: %v", sync, err)
	}
	return res
}

func ids(res *sdktest.Result) string {
	var out []string
	for _, c := range res.Changes {
		if c.Delete {
			out = append(out, "-"+c.ID)
		} else {
			out = append(out, c.ID)
		}
	}
	return strings.Join(out, ",")
}

func data(t *testing.T, res *sdktest.Result, id string) map[string]any {
	t.Helper()
	for _, c := range res.Changes {
		if c.ID == id && !c.Delete {
			var m map[string]any
			if err := json.Unmarshal(c.Data, &m); err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Fatalf("no record %s in %s", id, ids(res))
	return nil
}

func uris(s *githubtest.Server) []string {
	var out []string
	for _, r := range s.Requests() {
		out = append(out, r.URI)
	}
	return out
}

func TestDescribe(t *testing.T) {
	h := sdktest.New(t, fast())
	d, err := h.Describe(nil)
	if err != nil || d.Name != "github" {
		t.Fatalf("%v %+v", err, d)
	}
	for name, sensitive := range map[string]bool{"token": true, "repos": false, "base_url": false, "webhook_secret": true} {
		if f := d.Field(name); f == nil || f.Sensitive != sensitive {
			t.Errorf("config attribute %s: %+v", name, f)
		}
	}
	// Payload webhooks only with a webhook_secret: the host answers 404
	// for the others, so that nobody writes records unsigned.
	cfg := map[string]any{"token": "ghp_x", "repos": []any{"octo-org/octo-repo"}}
	if d, err := h.Describe(cfg); err != nil || d.Webhooks {
		t.Fatalf("a source without webhook_secret: %v, webhooks %v", err, d != nil && d.Webhooks)
	}
	cfg["webhook_secret"] = "s3cret"
	if d, err := h.Describe(cfg); err != nil || !d.Webhooks {
		t.Fatalf("a source with webhook_secret: %v, webhooks %v", err, d != nil && d.Webhooks)
	}
	var got []string
	for _, s := range d.Syncs {
		got = append(got, s.Name+":"+strings.Join(s.Models, "+"))
		if !s.Incremental || s.Every != DefaultEvery {
			t.Errorf("sync %+v", s)
		}
	}
	if strings.Join(got, " ") != "issue:Issue pullrequest:PullRequest comment:Comment" {
		t.Fatalf("syncs %v", got)
	}
	if !d.Webhooks {
		t.Fatal("webhooks not advertised")
	}
}

func TestConfigValidation(t *testing.T) {
	h := sdktest.New(t, fast())
	ok := func() map[string]any { return map[string]any{"token": "t0ken", "repos": []string{repoA}} }
	cases := map[string]func(map[string]any){
		`repos[0] "octo-org" must be "owner/name"`:       func(c map[string]any) { c["repos"] = []string{"octo-org"} },
		`repos[1]: "Octo-Org/Octo-Repo" is listed twice`: func(c map[string]any) { c["repos"] = []string{repoA, "Octo-Org/Octo-Repo"} },
		`repos must name at least one repository`:        func(c map[string]any) { c["repos"] = []string{} },
		`base_url "ftp://x" must be an absolute http`:    func(c map[string]any) { c["base_url"] = "ftp://x" },
		`token contains white space`:                     func(c map[string]any) { c["token"] = "Bearer t0ken" },
		`attribute "token": required but not set`:        func(c map[string]any) { delete(c, "token") },
	}
	for want, edit := range cases {
		cfg := ok()
		edit(cfg)
		if err := h.Check(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}

func TestCheck(t *testing.T) {
	s := fixture(t)
	h := sdktest.New(t, fast())
	if err := h.Check(t.Context(), config(s)); err != nil {
		t.Fatalf("check: %v", err)
	}
	cases := map[string]func(map[string]any){
		"GitHub refused the token (401 \"Bad credentials\")":                  func(c map[string]any) { c["token"] = "ghp_revokedT0ken" },
		"repository octo-org/nope not found: it does not exist, or the token": func(c map[string]any) { c["repos"] = []string{repoA, "octo-org/nope"} },
		"repository octo-org/octo-repo: GitHub answered 403 \"Resource not accessible by personal access token\": the token lacks a permission": func(c map[string]any) {
			c["token"] = "ghp_noIssuesT0ken"
		},
	}
	s.AddToken("ghp_noIssuesT0ken", githubtest.TokenOptions{NoIssues: true})
	for want, edit := range cases {
		cfg := config(s)
		edit(cfg)
		err := h.Check(t.Context(), cfg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		} else if strings.Contains(err.Error(), "T0ken") {
			t.Errorf("the error quotes the token: %v", err)
		}
	}
}

// TestFullRuns reads each list page by page along the Link header, newest
// update first, and builds records of the declared shapes.
func TestFullRuns(t *testing.T) {
	s := fixture(t)
	h := sdktest.New(t, fast())
	cfg := config(s)

	s.ResetRequests()
	res := syncRun(t, h, cfg, SyncIssue, true, nil)
	// Issue 1 was updated last (by its comment); pull requests 4 and 5
	// come from the issues list too and are skipped.
	if got := ids(res); got != "octo-org/octo-repo#1,octo-org/octo-repo#3,octo-org/octo-repo#2,octo-org/other-repo#1" {
		t.Fatalf("issues: %s", got)
	}
	reqs := uris(s)
	if len(reqs) != 4 || !strings.HasPrefix(reqs[0], "/repos/octo-org/octo-repo/issues?direction=desc&per_page=2&sort=updated&state=all") ||
		!strings.HasPrefix(reqs[1], "/repositories/") || !strings.Contains(reqs[2], "page=3") {
		t.Fatalf("requests %v", reqs)
	}
	if n := len(res.Checkpoints()); n != 4 {
		t.Fatalf("%d checkpoints for 4 pages", n)
	}
	is := data(t, res, "octo-org/octo-repo#1")
	want := map[string]any{"repo": repoA, "number": 1.0, "title": "Crash on start", "body": "It crashes.", "state": "open", "comments": 1.0,
		"labels": []any{"bug"}, "assignees": []any{"hubot"}, "milestone": nil, "closed_at": nil, "author_association": "CONTRIBUTOR",
		"html_url": "https://github.com/octo-org/octo-repo/issues/1"}
	for k, v := range want {
		if g, _ := json.Marshal(is[k]); string(g) != mustJSON(v) {
			t.Errorf("issue %s = %s, want %s", k, g, mustJSON(v))
		}
	}
	if u := is["user"].(map[string]any); u["login"] != "octocat" || u["type"] != "User" {
		t.Errorf("user %v", u)
	}

	res = syncRun(t, h, cfg, SyncPullRequest, true, nil)
	// Pull request 4 was updated last, by its comment.
	if got := ids(res); got != "octo-org/octo-repo#4,octo-org/octo-repo#5" {
		t.Fatalf("pull requests: %s", got)
	}
	pr := data(t, res, "octo-org/octo-repo#5")
	if pr["draft"] != true || pr["merged"] != false || pr["head"].(map[string]any)["ref"] != "feature-5" || pr["base"].(map[string]any)["repo"] != repoA {
		t.Fatalf("pull request %v", pr)
	}

	res = syncRun(t, h, cfg, SyncComment, true, nil)
	if len(res.Changes) != 3 {
		t.Fatalf("comments: %s", ids(res))
	}
	c := data(t, res, res.Changes[0].ID)
	if c["issue"] != "octo-org/octo-repo#4" || c["issue_number"] != 4.0 || c["body"] != "LGTM" {
		t.Fatalf("comment %v", c)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestIncremental: since from the checkpoint, ties at the boundary, and
// conditional requests answered 304 without quota.
func TestIncremental(t *testing.T) {
	s := fixture(t)
	h := sdktest.New(t, fast())
	cfg := config(s)
	cfg["repos"] = []string{repoA}
	full := syncRun(t, h, cfg, SyncIssue, true, nil)
	// Pull request 4 was updated last (by its comment): not an Issue, it
	// still moves the checkpoint, so that the next since skips it.
	pr4, _ := s.Issue(repoA, 4)
	max := pr4.UpdatedAt.Format(time.RFC3339)
	rs := full.Checkpoint["repos"].(map[string]any)[repoA].(map[string]any)
	if rs["since"] != max || mustJSON(rs["at_since"]) != `["pull:4"]` || rs["etag"] == nil {
		t.Fatalf("checkpoint %v", full.Checkpoint)
	}

	// Nothing changed: GitHub answers pull request 4 again (since is
	// inclusive); the connector skips it.
	s.ResetRequests()
	res := syncRun(t, h, cfg, SyncIssue, false, full.Checkpoint)
	if ids(res) != "" {
		t.Fatalf("unchanged upstream: %s", ids(res))
	}
	reqs := s.Requests()
	if len(reqs) != 1 || !strings.Contains(reqs[0].URI, "since="+url.QueryEscape(max)) || reqs[0].IfNoneMatch != "" {
		t.Fatalf("requests %+v", reqs)
	}

	// Still nothing: the same first page again, asked conditionally: 304,
	// no quota spent.
	_, _, usedBefore, _ := s.RateLimit(token)
	s.ResetRequests()
	res = syncRun(t, h, cfg, SyncIssue, false, res.Checkpoint)
	reqs = s.Requests()
	if ids(res) != "" || len(reqs) != 1 || reqs[0].Status != 304 || reqs[0].IfNoneMatch == "" {
		t.Fatalf("conditional run: %s %+v", ids(res), reqs)
	}
	if _, _, used, _ := s.RateLimit(token); used != usedBefore {
		t.Fatalf("a 304 spent quota: %d → %d", usedBefore, used)
	}

	// Issue 2 edited, issue 6 new, and issue 7 new in the same second as
	// issue 6 (a tie the next run must not lose or repeat).
	s.EditIssue(repoA, 2, func(is *githubtest.Issue) { is.Title = "Docs, edited" })
	s.SetStep(0)
	s.CreateIssue(repoA, githubtest.IssueInput{Title: "six"})
	s.CreateIssue(repoA, githubtest.IssueInput{Title: "seven"})
	s.SetStep(time.Second)
	res = syncRun(t, h, cfg, SyncIssue, false, res.Checkpoint)
	if got := ids(res); got != "octo-org/octo-repo#7,octo-org/octo-repo#6,octo-org/octo-repo#2" {
		t.Fatalf("incremental: %s", got)
	}
	if data(t, res, "octo-org/octo-repo#2")["title"] != "Docs, edited" {
		t.Fatal("edit not synced")
	}
	s.SetStep(0)
	s.CreateIssue(repoA, githubtest.IssueInput{Title: "eight, tied with six and seven"})
	s.SetStep(time.Second)
	res = syncRun(t, h, cfg, SyncIssue, false, res.Checkpoint)
	if got := ids(res); got != "octo-org/octo-repo#8" {
		t.Fatalf("after a tie: %s", got)
	}
}

// TestIncrementalPullRequests: the pulls list has no since; an
// incremental walk stops at the first pull request older than the
// checkpoint, and an unchanged first page answers 304.
func TestIncrementalPullRequests(t *testing.T) {
	s := fixture(t)
	for i := 0; i < 5; i++ {
		s.CreatePull(repoA, githubtest.IssueInput{Title: "more"})
	}
	h := sdktest.New(t, fast())
	cfg := config(s)
	cfg["repos"] = []string{repoA}
	full := syncRun(t, h, cfg, SyncPullRequest, true, nil)
	if len(full.Changes) != 7 {
		t.Fatalf("full: %s", ids(full))
	}
	s.ResetRequests()
	res := syncRun(t, h, cfg, SyncPullRequest, false, full.Checkpoint)
	reqs := s.Requests()
	if ids(res) != "" || len(reqs) != 1 || reqs[0].Status != 304 {
		t.Fatalf("unchanged: %s %+v", ids(res), reqs)
	}
	// Merged, pull request 4 comes first; the first page ends with #10,
	// at the checkpoint; the second starts with #9, older: the walk stops
	// there, two pages of four.
	s.MergePull(repoA, 4)
	s.ResetRequests()
	res = syncRun(t, h, cfg, SyncPullRequest, false, res.Checkpoint)
	if ids(res) != "octo-org/octo-repo#4" || len(s.Requests()) != 2 {
		t.Fatalf("merged: %s after %v", ids(res), uris(s))
	}
	pr := data(t, res, "octo-org/octo-repo#4")
	if pr["merged"] != true || pr["state"] != "closed" || pr["merged_at"] == nil {
		t.Fatalf("merged pull request %v", pr)
	}
}

func TestIncrementalComments(t *testing.T) {
	s := fixture(t)
	h := sdktest.New(t, fast())
	cfg := config(s)
	full := syncRun(t, h, cfg, SyncComment, true, nil)
	c := s.AddComment(repoA, 2, "monalisa", "new")
	old := full.Changes[len(full.Changes)-1].ID
	var oldID int64
	json.Unmarshal([]byte(old), &oldID)
	s.EditComment(repoB, oldID, "first, edited")
	res := syncRun(t, h, cfg, SyncComment, false, full.Checkpoint)
	if got := ids(res); got != mustJSON(c.ID)+","+old {
		t.Fatalf("incremental comments: %s", got)
	}
}

// TestFullRunsFindDeletes: a full run writes every record GitHub still
// has, so that the host's track_deletes deletes the others.
func TestFullRunsFindDeletes(t *testing.T) {
	s := fixture(t)
	h := sdktest.New(t, fast())
	cfg := config(s)
	first := syncRun(t, h, cfg, SyncIssue, true, nil)
	s.DeleteIssue(repoA, 2)
	s.ResetRequests()
	res := syncRun(t, h, cfg, SyncIssue, true, first.Checkpoint)
	if got := ids(res); got != "octo-org/octo-repo#1,octo-org/octo-repo#3,octo-org/other-repo#1" {
		t.Fatalf("full run after a delete: %s", got)
	}
	// A full run needs every record: it never asks conditionally.
	for _, r := range s.Requests() {
		if r.IfNoneMatch != "" || r.Status != 200 {
			t.Fatalf("full run request %+v", r)
		}
	}
}

func TestResumeFromTheNextPage(t *testing.T) {
	s := fixture(t)
	h := sdktest.New(t, fast())
	cfg := config(s)
	part, err := h.Sync(t.Context(), sdktest.SyncOptions{Config: cfg, Sync: SyncIssue, Full: true, StopAfterCheckpoints: 1})
	if err != nil || ids(part) != "octo-org/octo-repo#1" {
		t.Fatalf("%v %s", err, ids(part))
	}
	next := part.Checkpoint["repos"].(map[string]any)[repoA].(map[string]any)["next"].(string)
	if !strings.HasPrefix(next, s.URL+"/repositories/") || !strings.Contains(next, "page=2") {
		t.Fatalf("checkpoint %v", part.Checkpoint)
	}
	s.ResetRequests()
	res := syncRun(t, h, cfg, SyncIssue, true, part.Checkpoint)
	if ids(res) != "octo-org/octo-repo#3,octo-org/octo-repo#2,octo-org/other-repo#1" || !strings.HasPrefix(s.URL+uris(s)[0], next) {
		t.Fatalf("resumed: %s after %v", ids(res), uris(s))
	}
}

// TestPrimaryRateLimit: a spent quota (403 or 429 with
// X-RateLimit-Remaining: 0) waits until X-RateLimit-Reset, then goes on.
func TestPrimaryRateLimit(t *testing.T) {
	for _, status := range []int{403, 429} {
		s := fixture(t)
		h := sdktest.New(t, fast())
		s.ExhaustRateLimit(token, 500*time.Millisecond, status)
		_, _, _, reset := s.RateLimit(token)
		s.ResetRequests()
		res := syncRun(t, h, config(s), SyncPullRequest, true, nil)
		reqs := s.Requests()
		if ids(res) != "octo-org/octo-repo#4,octo-org/octo-repo#5" || len(reqs) != 3 || reqs[0].Status != status || reqs[1].Status != 200 {
			t.Fatalf("%d: %s after %+v", status, ids(res), reqs)
		}
		if reqs[1].At.Before(reset) {
			t.Fatalf("%d: asked again at %s, before the reset at %s", status, reqs[1].At, reset)
		}
		if !slices.ContainsFunc(res.Logs, func(l string) bool { return strings.Contains(l, "primary rate limit of 5000 requests per hour spent") }) {
			t.Fatalf("no log of the wait: %v", res.Logs)
		}
	}
}

// TestRateLimitWaitEndsWithTheRun: a reset beyond the run's deadline
// fails the run at once, saying why, rather than wait in vain.
func TestRateLimitWaitEndsWithTheRun(t *testing.T) {
	s := fixture(t)
	h := sdktest.New(t, fast())
	s.ExhaustRateLimit(token, time.Hour, 403)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err := h.Sync(ctx, sdktest.SyncOptions{Config: config(s), Sync: SyncIssue, Full: true})
	if err == nil || !strings.Contains(err.Error(), "would outlast the run's timeout") || !strings.Contains(err.Error(), "API rate limit exceeded") {
		t.Fatalf("got %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the connector waited for the deadline")
	}
}

// TestSpentQuotaWaitsBeforeAsking: an answer that says the quota is spent
// (X-RateLimit-Remaining: 0 on a 200) makes the next request wait for the
// reset rather than be refused; here the reset is an hour away, past the
// run's deadline, so the run fails at once without another request.
func TestSpentQuotaWaitsBeforeAsking(t *testing.T) {
	s := fixture(t)
	s.AddToken("ghp_tinyQuotaT0ken", githubtest.TokenOptions{Limit: 2})
	h := sdktest.New(t, fast())
	cfg := config(s)
	cfg["token"] = "ghp_tinyQuotaT0ken"
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s.ResetRequests()
	res, err := h.Sync(ctx, sdktest.SyncOptions{Config: cfg, Sync: SyncIssue, Full: true})
	if err == nil || !strings.Contains(err.Error(), "the last answer said the primary rate limit is spent") {
		t.Fatalf("got %v", err)
	}
	if reqs := s.Requests(); len(reqs) != 2 || reqs[1].Status != 200 || len(res.Checkpoints()) != 2 {
		t.Fatalf("requests %+v, %d checkpoints", reqs, len(res.Checkpoints()))
	}
}

// TestSecondaryRateLimit: 403 and 429 with Retry-After wait that long.
func TestSecondaryRateLimit(t *testing.T) {
	s := fixture(t)
	h := sdktest.New(t, fast())
	s.SecondaryLimit(1, 403, time.Second)
	s.SecondaryLimit(1, 429, time.Second)
	s.ResetRequests()
	res := syncRun(t, h, config(s), SyncPullRequest, true, nil)
	reqs := s.Requests()
	if ids(res) != "octo-org/octo-repo#4,octo-org/octo-repo#5" || len(reqs) != 4 || reqs[0].Status != 403 || reqs[1].Status != 429 {
		t.Fatalf("%s after %+v", ids(res), reqs)
	}
	for i := 1; i <= 2; i++ {
		if gap := reqs[i].At.Sub(reqs[i-1].At); gap < time.Second {
			t.Fatalf("request %d came %s after a Retry-After: 1", i, gap)
		}
	}
}

func TestServerErrorsAreRetried(t *testing.T) {
	s := fixture(t)
	h := sdktest.New(t, fast())
	s.FailNext(2, 502, `{"message":"Server Error"}`)
	res := syncRun(t, h, config(s), SyncPullRequest, true, nil)
	if ids(res) != "octo-org/octo-repo#4,octo-org/octo-repo#5" || len(s.Requests()) != 4 {
		t.Fatalf("%s after %v", ids(res), uris(s))
	}
}

func TestRateLimitWaitDecisions(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	g := &GitHub{}
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	cases := []struct {
		name    string
		status  int
		h       http.Header
		body    string
		limited bool
		wait    time.Duration
	}{
		{"primary 403", 403, hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1800000030"), "", true, 31 * time.Second},
		{"primary 429", 429, hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1800000010"), "", true, 11 * time.Second},
		{"reset in the past", 403, hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1799999990"), "", true, time.Second},
		{"secondary with Retry-After", 403, hdr("Retry-After", "7", "X-RateLimit-Remaining", "4000"), "", true, 7 * time.Second},
		{"Retry-After wins over reset", 429, hdr("Retry-After", "3", "X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1800000100"), "", true, 3 * time.Second},
		{"secondary without Retry-After", 403, hdr("X-RateLimit-Remaining", "10"), `{"message":"You have exceeded a secondary rate limit."}`, true, time.Minute},
		{"429 without headers", 429, hdr(), "", true, time.Minute},
		{"a permission", 403, hdr("X-RateLimit-Remaining", "4999"), `{"message":"Resource not accessible by personal access token"}`, false, 0},
		{"not a limit", 404, hdr("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", "1800000030"), "", false, 0},
	}
	for _, c := range cases {
		wait, why, limited := rateLimitWait(c.status, c.h, []byte(c.body), now, g)
		if limited != c.limited || wait != c.wait || (limited && why == "") {
			t.Errorf("%s: %v %s %q", c.name, limited, wait, why)
		}
	}
}

func TestAcceptance(t *testing.T) {
	s := fixture(t)
	n := 0
	sdktest.Acceptance{
		Config: config(s),
		Change: func(tb testing.TB, sync string) {
			n++
			switch sync {
			case SyncIssue:
				s.EditIssue(repoA, 2, func(is *githubtest.Issue) { is.Title = "edited" })
				s.CreateIssue(repoB, githubtest.IssueInput{Title: "new"})
				s.DeleteIssue(repoA, 3)
			case SyncPullRequest:
				s.CloseIssue(repoA, 5, "")
				s.CreatePull(repoB, githubtest.IssueInput{Title: "new pull"})
			case SyncComment:
				s.AddComment(repoA, 2, "hubot", "new comment")
				s.AddComment(repoB, 1, "hubot", "another")
			}
		},
	}.Run(t, fast())
	if n != 3 {
		t.Fatalf("Change called %d times", n)
	}
}
