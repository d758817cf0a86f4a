package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synclayer/synclayer/plugins/github/githubtest"
)

const (
	ghToken  = "ghp_integrationT0ken0123456789"
	ghSecret = "whsec-github-integration"
	ghRepo   = "octo-org/octo-repo"
)

func githubLayer(baseURL string) string {
	return fmt.Sprintf(`
layer "dev" {
  source "gh" {
    plugin = "github"
    config {
      token          = %q
      repos          = [%q]
      base_url       = %q
      webhook_secret = %q
    }
    sync "issue" {
      track_deletes = true
    }
  }
}
`, ghToken, ghRepo, baseURL, ghSecret)
}

// ghRecordData is a record as the connector wrote it.
func ghRecordData(r record) string {
	c := map[string]any{}
	for k, v := range r {
		if k != "_metadata" {
			c[k] = v
		}
	}
	return fmt.Sprint(c)
}

// ghWaitRecord polls a record until ok accepts it.
func ghWaitRecord(h *host, layer, query string, ok func(record) bool) record {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if rs := h.records(layer, query); len(rs) == 1 && ok(rs[0]) {
			return rs[0]
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: no record as expected: %v\n%s", query, h.records(layer, query), h.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ghSyncAndWait(h *host, layer string, body map[string]any) runStatus {
	h.t.Helper()
	var started struct {
		Run string `json:"run"`
	}
	h.call("POST", "/v1/layers/"+layer+"/syncs", body, 202, &started)
	r := h.waitRun(layer, started.Run, 60*time.Second)
	if r.State != "completed" {
		h.t.Fatalf("run %+v\n%s", r, h.logs())
	}
	return r
}

// TestGitHubSourceEndToEnd serves a layer with a github source through the
// real binaries against the fake GitHub: the first run brings issues, pull
// requests and comments; signed deliveries are applied at once (and are
// the records a poll writes: the next poll changes nothing), forged ones
// refused; a full run with track_deletes finds an issue deleted without a
// webhook; no secret reaches the log.
func TestGitHubSourceEndToEnd(t *testing.T) {
	gh := githubtest.New(t)
	gh.AddToken(ghToken, githubtest.TokenOptions{Repos: []string{ghRepo}})
	gh.AddRepo(ghRepo)
	gh.CreateIssue(ghRepo, githubtest.IssueInput{Title: "Crash on start", Labels: []string{"bug"}})
	gh.CreateIssue(ghRepo, githubtest.IssueInput{Title: "Docs"})
	gh.CreatePull(ghRepo, githubtest.IssueInput{Title: "Fix the crash", Body: "Fixes #1"})
	gh.AddComment(ghRepo, 1, "monalisa", "Me too")

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "layer.hcl"), githubLayer(gh.URL))
	h := startHost(t, filepath.Join(dir, "layer.hcl"), "")
	h.waitRevision("dev", 1, 60*time.Second)

	issues := h.records("dev", "model=Issue")
	if len(issues) != 2 || issues[0].meta("source") != "gh" {
		t.Fatalf("issues after the first run: %v\n%s", issues, h.logs())
	}
	prs := h.records("dev", "model=PullRequest")
	if len(prs) != 1 || prs[0]["id"] != "octo-org/octo-repo#3" || prs[0]["title"] != "Fix the crash" {
		t.Fatalf("pull requests: %v", prs)
	}
	if cs := h.records("dev", "model=Comment"); len(cs) != 1 || cs[0]["issue"] != "octo-org/octo-repo#1" || cs[0]["body"] != "Me too" {
		t.Fatalf("comments: %v", cs)
	}

	hook := h.url("/hooks/sources/dev/gh")
	deliver := func(event, key string, body []byte) int {
		t.Helper()
		code, resp, err := githubtest.Deliver(t.Context(), hook, event, key, body)
		if err != nil {
			t.Fatal(err)
		}
		if code != 202 && code != 401 {
			t.Fatalf("%s delivery: %d %s", event, code, resp)
		}
		return code
	}
	if code := deliver("ping", ghSecret, gh.PingEvent(ghRepo)); code != 202 {
		t.Fatalf("ping: %d", code)
	}

	// A new issue, pushed by its webhook: applied at once.
	is := gh.CreateIssue(ghRepo, githubtest.IssueInput{Title: "Pushed", Body: "by a webhook", Labels: []string{"triage"}})
	body := gh.IssuesEvent("opened", ghRepo, is)
	if code := deliver("issues", "not-the-secret", body); code != 401 {
		t.Fatalf("forged delivery: %d", code)
	}
	if code := deliver("issues", "", body); code != 401 {
		t.Fatalf("unsigned delivery: %d", code)
	}
	if code := deliver("issues", ghSecret, body); code != 202 {
		t.Fatalf("signed delivery: %d", code)
	}
	pushed := ghWaitRecord(h, "dev", "model=Issue&ids="+strings.ReplaceAll("octo-org/octo-repo#4", "#", "%23"), func(r record) bool { return r["title"] == "Pushed" })

	// The poll brings the same record (the one issue newer than the
	// checkpoint): it is saved unchanged.
	run := ghSyncAndWait(h, "dev", map[string]any{"source": "gh", "sync": "issue"})
	if c := run.Counts["gh"]["Issue"]; c["unchanged"] != 1 || c["added"]+c["updated"]+c["deleted"] != 0 {
		t.Fatalf("the poll after the webhook changed %v", run.Counts)
	}
	polled := h.records("dev", "model=Issue&ids=octo-org/octo-repo%234")[0]
	if ghRecordData(polled) != ghRecordData(pushed) || polled.meta("cursor") != pushed.meta("cursor") {
		t.Fatalf("poll and webhook differ:\n%v\n%v", polled, pushed)
	}

	// A comment deleted on GitHub: its webhook deletes it at once.
	cs := h.records("dev", "model=Comment")
	var cid int64
	fmt.Sscan(cs[0]["id"].(string), &cid)
	c := gh.DeleteComment(ghRepo, cid)
	if code := deliver("issue_comment", ghSecret, gh.IssueCommentEvent("deleted", ghRepo, c)); code != 202 {
		t.Fatalf("comment deleted: %d", code)
	}
	ghWaitRecord(h, "dev", "model=Comment&ids="+cs[0]["id"].(string), func(r record) bool { return r.meta("last_action") == "DELETED" })

	// An issue deleted without a webhook: a full run (reset) with
	// track_deletes finds it.
	gh.DeleteIssue(ghRepo, 2)
	ghSyncAndWait(h, "dev", map[string]any{"source": "gh", "sync": "issue", "reset": true})
	gone := h.records("dev", "model=Issue&ids=octo-org/octo-repo%232")
	if len(gone) != 1 || gone[0].meta("last_action") != "DELETED" {
		t.Fatalf("after the full run: %v", gone)
	}
	if live := h.records("dev", "model=Issue&filter=added,updated"); len(live) != 2 {
		t.Fatalf("live issues: %v", live)
	}

	if logs := h.logs(); strings.Contains(logs, ghToken) || strings.Contains(logs, ghSecret) {
		t.Fatalf("a secret reached the host log:\n%s", logs)
	}
}
