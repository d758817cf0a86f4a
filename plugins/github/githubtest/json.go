package githubtest

import (
	"fmt"
	"strings"
	"time"
)

// The JSON shapes below follow GitHub's REST API reference (API version
// 2022-11-28): the simple user, label, issue, pull request (list and full
// forms), issue comment and repository objects. Fields the API documents
// but the fake has no state for (reactions, timeline_url, …) are rendered
// with plausible values, so that a client meets the same keys.

// htmlBase is where html_url fields point, as on github.com.
const htmlBase = "https://github.com"

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func tsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
}

func strOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) userJSON(u User) map[string]any {
	typ := "User"
	if strings.HasSuffix(u.Login, "[bot]") {
		typ = "Bot"
	}
	return map[string]any{
		"login":               u.Login,
		"id":                  u.ID,
		"node_id":             fmt.Sprintf("U_kgDOA%07d", u.ID),
		"avatar_url":          fmt.Sprintf("https://avatars.githubusercontent.com/u/%d?v=4", u.ID),
		"gravatar_id":         "",
		"url":                 s.URL + "/users/" + u.Login,
		"html_url":            htmlBase + "/" + u.Login,
		"type":                typ,
		"site_admin":          false,
		"user_view_type":      "public",
		"followers_url":       s.URL + "/users/" + u.Login + "/followers",
		"repos_url":           s.URL + "/users/" + u.Login + "/repos",
		"events_url":          s.URL + "/users/" + u.Login + "/events{/privacy}",
		"received_events_url": s.URL + "/users/" + u.Login + "/received_events",
	}
}

func (s *Server) usersJSON(us []User) []any {
	out := make([]any, 0, len(us))
	for _, u := range us {
		out = append(out, s.userJSON(u))
	}
	return out
}

// labelID derives a stable id for a label name.
func labelID(name string) int64 {
	var h int64 = 7
	for _, c := range name {
		h = h*31 + int64(c)
	}
	if h < 0 {
		h = -h
	}
	return h%1_000_000_000 + 1
}

func (s *Server) labelsJSON(rp *repo, names []string) []any {
	out := make([]any, 0, len(names))
	for _, n := range names {
		id := labelID(n)
		out = append(out, map[string]any{
			"id":          id,
			"node_id":     fmt.Sprintf("LA_kwDOA%07d", id%10_000_000),
			"url":         s.repoURL(rp) + "/labels/" + n,
			"name":        n,
			"color":       fmt.Sprintf("%06x", id%0xffffff),
			"default":     n == "bug" || n == "enhancement" || n == "documentation",
			"description": nil,
		})
	}
	return out
}

func (s *Server) milestoneJSON(rp *repo, title string) any {
	if title == "" {
		return nil
	}
	id := labelID("milestone:" + title)
	return map[string]any{
		"id": id, "number": id%100 + 1, "title": title, "state": "open",
		"url":      s.repoURL(rp) + fmt.Sprintf("/milestones/%d", id%100+1),
		"html_url": htmlBase + "/" + rp.fullName() + fmt.Sprintf("/milestone/%d", id%100+1),
	}
}

func (s *Server) repoURL(rp *repo) string { return s.URL + "/repos/" + rp.fullName() }

func (s *Server) repoJSON(rp *repo) map[string]any {
	return map[string]any{
		"id":                rp.id,
		"node_id":           fmt.Sprintf("R_kgDOA%07d", rp.id),
		"name":              rp.name,
		"full_name":         rp.fullName(),
		"private":           true,
		"visibility":        "private",
		"owner":             s.userJSON(rp.owner),
		"html_url":          htmlBase + "/" + rp.fullName(),
		"description":       nil,
		"fork":              false,
		"url":               s.repoURL(rp),
		"issues_url":        s.repoURL(rp) + "/issues{/number}",
		"pulls_url":         s.repoURL(rp) + "/pulls{/number}",
		"created_at":        ts(rp.created),
		"updated_at":        ts(rp.created),
		"pushed_at":         ts(rp.created),
		"default_branch":    "main",
		"has_issues":        true,
		"open_issues_count": s.openCount(rp),
		"archived":          false,
		"disabled":          false,
	}
}

func (s *Server) openCount(rp *repo) int {
	n := 0
	for _, is := range rp.issues {
		if is.State == "open" {
			n++
		}
	}
	return n
}

func reactions(url string) map[string]any {
	return map[string]any{"url": url + "/reactions", "total_count": 0, "+1": 0, "-1": 0, "laugh": 0,
		"hooray": 0, "confused": 0, "heart": 0, "rocket": 0, "eyes": 0}
}

func body(b *string) any {
	if b == nil {
		return nil
	}
	return *b
}

// issueJSON is an issue as the issues endpoints render it; a pull request
// there carries a "pull_request" object.
func (s *Server) issueJSON(rp *repo, is *Issue) map[string]any {
	url := s.repoURL(rp) + fmt.Sprintf("/issues/%d", is.Number)
	html := htmlBase + "/" + rp.fullName() + fmt.Sprintf("/issues/%d", is.Number)
	var assignee any
	if len(is.Assignees) > 0 {
		assignee = s.userJSON(is.Assignees[0])
	}
	m := map[string]any{
		"id":                       is.ID,
		"node_id":                  fmt.Sprintf("I_kwDOA%07d", is.ID),
		"url":                      url,
		"repository_url":           s.repoURL(rp),
		"labels_url":               url + "/labels{/name}",
		"comments_url":             url + "/comments",
		"events_url":               url + "/events",
		"html_url":                 html,
		"number":                   is.Number,
		"state":                    is.State,
		"state_reason":             strOrNil(is.StateReason),
		"title":                    is.Title,
		"body":                     body(is.Body),
		"user":                     s.userJSON(is.User),
		"labels":                   s.labelsJSON(rp, is.Labels),
		"assignee":                 assignee,
		"assignees":                s.usersJSON(is.Assignees),
		"milestone":                s.milestoneJSON(rp, is.Milestone),
		"locked":                   is.Locked,
		"active_lock_reason":       nil,
		"comments":                 is.comments,
		"closed_at":                tsPtr(is.ClosedAt),
		"created_at":               ts(is.CreatedAt),
		"updated_at":               ts(is.UpdatedAt),
		"closed_by":                nil,
		"author_association":       association(rp, is.User),
		"reactions":                reactions(url),
		"timeline_url":             url + "/timeline",
		"performed_via_github_app": nil,
	}
	if is.IsPull() {
		pr := s.repoURL(rp) + fmt.Sprintf("/pulls/%d", is.Number)
		phtml := htmlBase + "/" + rp.fullName() + fmt.Sprintf("/pull/%d", is.Number)
		m["html_url"] = phtml
		m["draft"] = is.Draft
		m["pull_request"] = map[string]any{
			"url": pr, "html_url": phtml, "diff_url": phtml + ".diff", "patch_url": phtml + ".patch",
			"merged_at": tsPtr(is.MergedAt),
		}
	}
	return m
}

func association(rp *repo, u User) string {
	if u.Login == rp.owner.Login {
		return "OWNER"
	}
	return "CONTRIBUTOR"
}

func (s *Server) branchJSON(rp *repo, ref, sha string) map[string]any {
	return map[string]any{
		"label": rp.owner.Login + ":" + ref,
		"ref":   ref,
		"sha":   sha,
		"user":  s.userJSON(rp.owner),
		"repo":  s.repoJSON(rp),
	}
}

// pullJSON is a pull request as the pulls list renders it; full adds what
// the single pull request (and the pull_request webhook) adds: merged,
// mergeable, comments, commits and line counts.
func (s *Server) pullJSON(rp *repo, is *Issue, full bool) map[string]any {
	url := s.repoURL(rp) + fmt.Sprintf("/pulls/%d", is.Number)
	issueURL := s.repoURL(rp) + fmt.Sprintf("/issues/%d", is.Number)
	html := htmlBase + "/" + rp.fullName() + fmt.Sprintf("/pull/%d", is.Number)
	var assignee any
	if len(is.Assignees) > 0 {
		assignee = s.userJSON(is.Assignees[0])
	}
	m := map[string]any{
		"url":                 url,
		"id":                  is.PullID,
		"node_id":             fmt.Sprintf("PR_kwDOA%07d", is.PullID),
		"html_url":            html,
		"diff_url":            html + ".diff",
		"patch_url":           html + ".patch",
		"issue_url":           issueURL,
		"commits_url":         url + "/commits",
		"review_comments_url": url + "/comments",
		"comments_url":        issueURL + "/comments",
		"statuses_url":        s.repoURL(rp) + "/statuses/" + is.HeadSHA,
		"number":              is.Number,
		"state":               is.State,
		"locked":              is.Locked,
		"title":               is.Title,
		"user":                s.userJSON(is.User),
		"body":                body(is.Body),
		"labels":              s.labelsJSON(rp, is.Labels),
		"milestone":           s.milestoneJSON(rp, is.Milestone),
		"active_lock_reason":  nil,
		"created_at":          ts(is.CreatedAt),
		"updated_at":          ts(is.UpdatedAt),
		"closed_at":           tsPtr(is.ClosedAt),
		"merged_at":           tsPtr(is.MergedAt),
		"merge_commit_sha":    strOrNil(is.MergeCommitSHA),
		"assignee":            assignee,
		"assignees":           s.usersJSON(is.Assignees),
		"requested_reviewers": s.usersJSON(is.RequestedReviewers),
		"requested_teams":     []any{},
		"head":                s.branchJSON(rp, is.Head, is.HeadSHA),
		"base":                s.branchJSON(rp, is.Base, is.BaseSHA),
		"author_association":  association(rp, is.User),
		"auto_merge":          nil,
		"draft":               is.Draft,
	}
	if full {
		m["merged"] = is.MergedAt != nil
		m["mergeable"] = nil
		m["rebaseable"] = nil
		m["mergeable_state"] = "unknown"
		m["merged_by"] = nil
		m["comments"] = is.comments
		m["review_comments"] = 0
		m["maintainer_can_modify"] = false
		m["commits"] = 1
		m["additions"] = 10
		m["deletions"] = 2
		m["changed_files"] = 1
	}
	return m
}

func (s *Server) commentJSON(rp *repo, c *Comment) map[string]any {
	url := s.repoURL(rp) + fmt.Sprintf("/issues/comments/%d", c.ID)
	kind := "issues"
	if is := rp.issues[c.Issue]; is != nil && is.IsPull() {
		kind = "pull"
	}
	return map[string]any{
		"id":                       c.ID,
		"node_id":                  fmt.Sprintf("IC_kwDOA%07d", c.ID),
		"url":                      url,
		"html_url":                 htmlBase + "/" + rp.fullName() + fmt.Sprintf("/%s/%d#issuecomment-%d", kind, c.Issue, c.ID),
		"issue_url":                s.repoURL(rp) + fmt.Sprintf("/issues/%d", c.Issue),
		"body":                     c.Body,
		"user":                     s.userJSON(c.User),
		"created_at":               ts(c.CreatedAt),
		"updated_at":               ts(c.UpdatedAt),
		"author_association":       association(rp, c.User),
		"reactions":                reactions(url),
		"performed_via_github_app": nil,
	}
}
