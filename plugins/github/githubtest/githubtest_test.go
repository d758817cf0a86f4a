package githubtest

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const tok = "ghp_fakeTokenForTheFake"

func get(t *testing.T, url, auth, inm string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if inm != "" {
		req.Header.Set("If-None-Match", inm)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func fixture(t *testing.T) *Server {
	s := New(t)
	s.AddToken(tok, TokenOptions{})
	s.AddRepo("octo-org/octo-repo")
	for i := 0; i < 5; i++ {
		s.CreateIssue("octo-org/octo-repo", IssueInput{Title: "issue " + strconv.Itoa(i), Labels: []string{"bug"}})
	}
	s.CreatePull("octo-org/octo-repo", IssueInput{Title: "a pull request"})
	return s
}

func TestAuthAndNotFound(t *testing.T) {
	s := fixture(t)
	for auth, want := range map[string]string{"": "Requires authentication", "Bearer nope": "Bad credentials", "token nope": "Bad credentials"} {
		resp, b := get(t, s.URL+"/repos/octo-org/octo-repo/issues", auth, "")
		if resp.StatusCode != 401 || !strings.Contains(string(b), `"message":"`+want+`"`) || !strings.Contains(string(b), "documentation_url") {
			t.Errorf("auth %q: %d %s", auth, resp.StatusCode, b)
		}
	}
	for _, auth := range []string{"Bearer " + tok, "token " + tok} {
		if resp, b := get(t, s.URL+"/repos/octo-org/octo-repo", auth, ""); resp.StatusCode != 200 || !strings.Contains(string(b), `"full_name":"octo-org/octo-repo"`) {
			t.Errorf("%s: %d %s", auth, resp.StatusCode, b)
		}
	}
	resp, b := get(t, s.URL+"/repos/octo-org/nope/issues", "Bearer "+tok, "")
	if resp.StatusCode != 404 || !strings.Contains(string(b), `"message":"Not Found"`) {
		t.Fatalf("unknown repo: %d %s", resp.StatusCode, b)
	}
	s.AddToken("narrow", TokenOptions{Repos: []string{"other/repo"}})
	if resp, _ := get(t, s.URL+"/repos/octo-org/octo-repo", "Bearer narrow", ""); resp.StatusCode != 404 {
		t.Fatalf("a token without the repo: %d", resp.StatusCode)
	}
	s.AddToken("noissues", TokenOptions{NoIssues: true})
	if resp, b := get(t, s.URL+"/repos/octo-org/octo-repo/issues", "Bearer noissues", ""); resp.StatusCode != 403 || !strings.Contains(string(b), "Resource not accessible") {
		t.Fatalf("a token without Issues: %d %s", resp.StatusCode, b)
	}
}

func TestPagesLinksAndPullRequestsInIssues(t *testing.T) {
	s := fixture(t)
	url := s.URL + "/repos/octo-org/octo-repo/issues?state=all&sort=updated&direction=asc&per_page=2"
	var numbers []int
	pulls := 0
	for url != "" {
		resp, b := get(t, url, "Bearer "+tok, "")
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", url, resp.StatusCode, b)
		}
		var items []map[string]any
		json.Unmarshal(b, &items)
		for _, it := range items {
			numbers = append(numbers, int(it["number"].(float64)))
			if _, ok := it["pull_request"]; ok {
				pulls++
			}
		}
		url = ""
		for _, l := range strings.Split(resp.Header.Get("Link"), ",") {
			if strings.Contains(l, `rel="next"`) {
				url = strings.Trim(strings.TrimSpace(strings.Split(l, ";")[0]), "<>")
				if !strings.HasPrefix(url, s.URL+"/repositories/") {
					t.Fatalf("next link %q is not absolute", url)
				}
			}
		}
		if strings.Contains(resp.Header.Get("Link"), `rel="next"`) && !strings.Contains(resp.Header.Get("Link"), `rel="last"`) {
			t.Fatalf("no last link: %s", resp.Header.Get("Link"))
		}
	}
	if len(numbers) != 6 || numbers[0] != 1 || numbers[5] != 6 || pulls != 1 {
		t.Fatalf("numbers %v, %d pull requests", numbers, pulls)
	}
	// The default state is open, the default direction desc.
	s.CloseIssue("octo-org/octo-repo", 1, "completed")
	_, b := get(t, s.URL+"/repos/octo-org/octo-repo/issues", "Bearer "+tok, "")
	var items []map[string]any
	json.Unmarshal(b, &items)
	if len(items) != 5 || items[0]["number"].(float64) != 6 {
		t.Fatalf("open issues newest first: %d items", len(items))
	}
}

func TestSinceETagAndQuota(t *testing.T) {
	s := fixture(t)
	since := s.Now().Add(-2 * time.Second).Format(time.RFC3339)
	url := s.URL + "/repos/octo-org/octo-repo/issues?state=all&since=" + since
	resp, b := get(t, url, "Bearer "+tok, "")
	var items []map[string]any
	json.Unmarshal(b, &items)
	if len(items) != 2 { // issue 5 and the pull request, since is inclusive
		t.Fatalf("since %s: %s", since, b)
	}
	etag := resp.Header.Get("ETag")
	remaining := resp.Header.Get("X-RateLimit-Remaining")
	if !strings.HasPrefix(etag, `W/"`) || remaining != strconv.Itoa(DefaultRateLimit-1) || resp.Header.Get("X-RateLimit-Resource") != "core" {
		t.Fatalf("headers %v", resp.Header)
	}
	resp, b = get(t, url, "Bearer "+tok, etag)
	if resp.StatusCode != 304 || len(b) != 0 || resp.Header.Get("X-RateLimit-Remaining") != remaining {
		t.Fatalf("conditional request: %d %q remaining %s", resp.StatusCode, b, resp.Header.Get("X-RateLimit-Remaining"))
	}
	s.EditIssue("octo-org/octo-repo", 5, func(is *Issue) { is.Title = "changed" })
	if resp, _ = get(t, url, "Bearer "+tok, etag); resp.StatusCode != 200 {
		t.Fatalf("changed list answered %d", resp.StatusCode)
	}
	// pulls has no since; comments have.
	c := s.AddComment("octo-org/octo-repo", 6, "hubot", "LGTM")
	_, b = get(t, s.URL+"/repos/octo-org/octo-repo/pulls?state=all&since="+s.Now().Format(time.RFC3339), "Bearer "+tok, "")
	if !strings.Contains(string(b), `"head":`) || strings.Count(string(b), `"number":6`) != 1 {
		t.Fatalf("pulls: %s", b)
	}
	_, b = get(t, s.URL+"/repos/octo-org/octo-repo/issues/comments?sort=updated&direction=asc&since="+c.UpdatedAt.Format(time.RFC3339), "Bearer "+tok, "")
	if !strings.Contains(string(b), `"body":"LGTM"`) || !strings.Contains(string(b), `/issues/6"`) {
		t.Fatalf("comments: %s", b)
	}
}

func TestRateLimits(t *testing.T) {
	s := fixture(t)
	s.ExhaustRateLimit(tok, time.Second, 429)
	resp, b := get(t, s.URL+"/repos/octo-org/octo-repo", "Bearer "+tok, "")
	if resp.StatusCode != 429 || resp.Header.Get("X-RateLimit-Remaining") != "0" || !strings.Contains(string(b), "API rate limit exceeded") {
		t.Fatalf("exhausted: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	reset, _ := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64)
	time.Sleep(time.Until(time.Unix(reset, 0)) + 10*time.Millisecond)
	if resp, _ := get(t, s.URL+"/repos/octo-org/octo-repo", "Bearer "+tok, ""); resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Used") != "1" {
		t.Fatalf("after the reset: %d %v", resp.StatusCode, resp.Header)
	}
	s.SecondaryLimit(1, 403, 2*time.Second)
	resp, b = get(t, s.URL+"/repos/octo-org/octo-repo", "Bearer "+tok, "")
	if resp.StatusCode != 403 || resp.Header.Get("Retry-After") != "2" || !strings.Contains(string(b), "secondary rate limit") {
		t.Fatalf("secondary: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	if resp, _ := get(t, s.URL+"/repos/octo-org/octo-repo", "Bearer "+tok, ""); resp.StatusCode != 200 {
		t.Fatalf("after the secondary limit: %d", resp.StatusCode)
	}
}

// TestSignatureVector checks Sign against the example of GitHub's
// "Validating webhook deliveries".
func TestSignatureVector(t *testing.T) {
	got := Sign("It's a Secret to Everybody", []byte("Hello, World!"))
	if got != "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17" {
		t.Fatalf("Sign = %s", got)
	}
}

func TestEvents(t *testing.T) {
	s := fixture(t)
	is, _ := s.Issue("octo-org/octo-repo", 2)
	var p map[string]any
	json.Unmarshal(s.IssuesEvent("opened", "octo-org/octo-repo", is), &p)
	if p["action"] != "opened" || p["issue"].(map[string]any)["number"].(float64) != 2 || p["repository"].(map[string]any)["full_name"] != "octo-org/octo-repo" {
		t.Fatalf("issues event %v", p)
	}
	pr, _ := s.Issue("octo-org/octo-repo", 6)
	json.Unmarshal(s.PullRequestEvent("closed", "octo-org/octo-repo", pr), &p)
	if p["pull_request"].(map[string]any)["merged"] != false {
		t.Fatalf("pull_request event %v", p)
	}
	h := DeliveryHeader("ping", "s3cret", []byte("{}"))
	if h.Get("X-GitHub-Event") != "ping" || h.Get("X-Hub-Signature-256") != Sign("s3cret", []byte("{}")) || len(h.Get("X-GitHub-Delivery")) != 36 {
		t.Fatalf("header %v", h)
	}
}
