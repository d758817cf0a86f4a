package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// The records: one shape per model, built from GitHub's objects by the
// same functions whether the object came from a list (a poll) or from a
// webhook delivery, so that a record is the same either way. They keep
// what readers use and drop the API's URL templates, reactions and
// per-form extras (a webhook's pull request has "merged" and line counts
// that the pulls list has not).

// User is an account as records embed it.
type User struct {
	Login string `json:"login"`
	ID    int64  `json:"id"`
	Type  string `json:"type"`
}

// Issue is a record of model Issue.
type Issue struct {
	// ID is "<owner>/<repo>#<number>".
	ID                string   `json:"id"`
	Repo              string   `json:"repo"`
	Number            int      `json:"number"`
	GitHubID          int64    `json:"github_id"`
	NodeID            string   `json:"node_id"`
	Title             string   `json:"title"`
	Body              *string  `json:"body"`
	State             string   `json:"state"`
	StateReason       *string  `json:"state_reason"`
	Locked            bool     `json:"locked"`
	User              *User    `json:"user"`
	Labels            []string `json:"labels"`
	Assignees         []string `json:"assignees"`
	Milestone         *string  `json:"milestone"`
	Comments          int      `json:"comments"`
	AuthorAssociation string   `json:"author_association"`
	HTMLURL           string   `json:"html_url"`
	CreatedAt         string   `json:"created_at"`
	UpdatedAt         string   `json:"updated_at"`
	ClosedAt          *string  `json:"closed_at"`
}

// Branch is a pull request's head or base.
type Branch struct {
	Ref   string `json:"ref"`
	SHA   string `json:"sha"`
	Label string `json:"label"`
	// Repo is the branch's repository ("owner/name"); null when it was
	// deleted (a fork's head).
	Repo *string `json:"repo"`
}

// PullRequest is a record of model PullRequest.
type PullRequest struct {
	// ID is "<owner>/<repo>#<number>".
	ID                 string   `json:"id"`
	Repo               string   `json:"repo"`
	Number             int      `json:"number"`
	GitHubID           int64    `json:"github_id"`
	NodeID             string   `json:"node_id"`
	Title              string   `json:"title"`
	Body               *string  `json:"body"`
	State              string   `json:"state"`
	Draft              bool     `json:"draft"`
	Locked             bool     `json:"locked"`
	Merged             bool     `json:"merged"`
	User               *User    `json:"user"`
	Labels             []string `json:"labels"`
	Assignees          []string `json:"assignees"`
	RequestedReviewers []string `json:"requested_reviewers"`
	Milestone          *string  `json:"milestone"`
	Head               Branch   `json:"head"`
	Base               Branch   `json:"base"`
	MergedAt           *string  `json:"merged_at"`
	MergeCommitSHA     *string  `json:"merge_commit_sha"`
	AuthorAssociation  string   `json:"author_association"`
	HTMLURL            string   `json:"html_url"`
	CreatedAt          string   `json:"created_at"`
	UpdatedAt          string   `json:"updated_at"`
	ClosedAt           *string  `json:"closed_at"`
}

// Comment is a record of model Comment: a comment on an issue or on a
// pull request's conversation.
type Comment struct {
	// ID is GitHub's numeric id, as a string.
	ID   string `json:"id"`
	Repo string `json:"repo"`
	// Issue is the id of the Issue or PullRequest commented on.
	Issue             string `json:"issue"`
	IssueNumber       int    `json:"issue_number"`
	NodeID            string `json:"node_id"`
	Body              string `json:"body"`
	User              *User  `json:"user"`
	AuthorAssociation string `json:"author_association"`
	HTMLURL           string `json:"html_url"`
	CreatedAt         string `json:"created_at"`
	UpdatedAt         string `json:"updated_at"`
}

// GitHub's objects, as far as the records read them.

type ghUser struct {
	Login string `json:"login"`
	ID    int64  `json:"id"`
	Type  string `json:"type"`
}

// ghLabel is a label: an object, or (the API allows it) a bare name.
type ghLabel struct{ Name string }

func (l *ghLabel) UnmarshalJSON(b []byte) error {
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &l.Name)
	}
	var o struct {
		Name string `json:"name"`
	}
	err := json.Unmarshal(b, &o)
	l.Name = o.Name
	return err
}

type ghMilestone struct {
	Title string `json:"title"`
}

type ghRepo struct {
	FullName string `json:"full_name"`
}

type ghIssue struct {
	ID                int64           `json:"id"`
	NodeID            string          `json:"node_id"`
	Number            int             `json:"number"`
	Title             string          `json:"title"`
	Body              *string         `json:"body"`
	State             string          `json:"state"`
	StateReason       *string         `json:"state_reason"`
	Locked            bool            `json:"locked"`
	User              *ghUser         `json:"user"`
	Labels            []ghLabel       `json:"labels"`
	Assignees         []ghUser        `json:"assignees"`
	Milestone         *ghMilestone    `json:"milestone"`
	Comments          int             `json:"comments"`
	AuthorAssociation string          `json:"author_association"`
	HTMLURL           string          `json:"html_url"`
	RepositoryURL     string          `json:"repository_url"`
	CreatedAt         string          `json:"created_at"`
	UpdatedAt         string          `json:"updated_at"`
	ClosedAt          *string         `json:"closed_at"`
	PullRequest       json.RawMessage `json:"pull_request"`
}

// isPull tells whether the issues endpoint's item is a pull request.
func (i *ghIssue) isPull() bool {
	return len(i.PullRequest) > 0 && string(i.PullRequest) != "null"
}

type ghBranch struct {
	Ref   string  `json:"ref"`
	SHA   string  `json:"sha"`
	Label string  `json:"label"`
	Repo  *ghRepo `json:"repo"`
}

type ghPull struct {
	ID                 int64        `json:"id"`
	NodeID             string       `json:"node_id"`
	Number             int          `json:"number"`
	Title              string       `json:"title"`
	Body               *string      `json:"body"`
	State              string       `json:"state"`
	Draft              bool         `json:"draft"`
	Locked             bool         `json:"locked"`
	User               *ghUser      `json:"user"`
	Labels             []ghLabel    `json:"labels"`
	Assignees          []ghUser     `json:"assignees"`
	RequestedReviewers []ghUser     `json:"requested_reviewers"`
	Milestone          *ghMilestone `json:"milestone"`
	Head               ghBranch     `json:"head"`
	Base               ghBranch     `json:"base"`
	MergedAt           *string      `json:"merged_at"`
	MergeCommitSHA     *string      `json:"merge_commit_sha"`
	AuthorAssociation  string       `json:"author_association"`
	HTMLURL            string       `json:"html_url"`
	IssueURL           string       `json:"issue_url"`
	CreatedAt          string       `json:"created_at"`
	UpdatedAt          string       `json:"updated_at"`
	ClosedAt           *string      `json:"closed_at"`
}

type ghComment struct {
	ID                int64   `json:"id"`
	NodeID            string  `json:"node_id"`
	Body              string  `json:"body"`
	User              *ghUser `json:"user"`
	AuthorAssociation string  `json:"author_association"`
	HTMLURL           string  `json:"html_url"`
	IssueURL          string  `json:"issue_url"`
	CreatedAt         string  `json:"created_at"`
	UpdatedAt         string  `json:"updated_at"`
}

var (
	// reRepoURL finds owner/name in an API URL: …/repos/{owner}/{name}.
	reRepoURL = regexp.MustCompile(`/repos/([^/]+)/([^/]+)$`)
	// reIssueURL finds owner/name and the number in an issue's API URL.
	reIssueURL = regexp.MustCompile(`/repos/([^/]+)/([^/]+)/issues/([0-9]+)$`)
)

// issueID is the id of an issue or pull request.
func issueID(repo string, number int) string { return repo + "#" + strconv.Itoa(number) }

func user(u *ghUser) *User {
	if u == nil {
		return nil
	}
	return &User{Login: u.Login, ID: u.ID, Type: u.Type}
}

func logins(us []ghUser) []string {
	out := make([]string, 0, len(us))
	for _, u := range us {
		out = append(out, u.Login)
	}
	return out
}

func labelNames(ls []ghLabel) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.Name)
	}
	return out
}

func milestone(m *ghMilestone) *string {
	if m == nil {
		return nil
	}
	return &m.Title
}

// timestamp normalizes a GitHub time to RFC 3339 in UTC; what does not
// parse is kept as it is.
func timestamp(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	return t.UTC().Format(time.RFC3339)
}

func timestampPtr(s *string) *string {
	if s == nil {
		return nil
	}
	t := timestamp(*s)
	return &t
}

// issueRecord builds the Issue record of an issue of repo (the name the
// item's own URLs give, GitHub's spelling, else the configured one).
func issueRecord(is *ghIssue, repo string) (*Issue, error) {
	if is.Number <= 0 {
		return nil, errors.New("the issue has no number")
	}
	if m := reRepoURL.FindStringSubmatch(is.RepositoryURL); m != nil {
		repo = m[1] + "/" + m[2]
	}
	return &Issue{
		ID: issueID(repo, is.Number), Repo: repo, Number: is.Number, GitHubID: is.ID, NodeID: is.NodeID,
		Title: is.Title, Body: is.Body, State: is.State, StateReason: is.StateReason, Locked: is.Locked,
		User: user(is.User), Labels: labelNames(is.Labels), Assignees: logins(is.Assignees),
		Milestone: milestone(is.Milestone), Comments: is.Comments, AuthorAssociation: is.AuthorAssociation,
		HTMLURL: is.HTMLURL, CreatedAt: timestamp(is.CreatedAt), UpdatedAt: timestamp(is.UpdatedAt),
		ClosedAt: timestampPtr(is.ClosedAt),
	}, nil
}

func branch(b ghBranch) Branch {
	out := Branch{Ref: b.Ref, SHA: b.SHA, Label: b.Label}
	if b.Repo != nil && b.Repo.FullName != "" {
		name := b.Repo.FullName
		out.Repo = &name
	}
	return out
}

// pullRecord builds the PullRequest record of a pull request of repo.
func pullRecord(pr *ghPull, repo string) (*PullRequest, error) {
	if pr.Number <= 0 {
		return nil, errors.New("the pull request has no number")
	}
	if m := reIssueURL.FindStringSubmatch(pr.IssueURL); m != nil {
		repo = m[1] + "/" + m[2]
	} else if pr.Base.Repo != nil && pr.Base.Repo.FullName != "" {
		repo = pr.Base.Repo.FullName
	}
	return &PullRequest{
		ID: issueID(repo, pr.Number), Repo: repo, Number: pr.Number, GitHubID: pr.ID, NodeID: pr.NodeID,
		Title: pr.Title, Body: pr.Body, State: pr.State, Draft: pr.Draft, Locked: pr.Locked,
		Merged: pr.MergedAt != nil, User: user(pr.User), Labels: labelNames(pr.Labels),
		Assignees: logins(pr.Assignees), RequestedReviewers: logins(pr.RequestedReviewers),
		Milestone: milestone(pr.Milestone), Head: branch(pr.Head), Base: branch(pr.Base),
		MergedAt: timestampPtr(pr.MergedAt), MergeCommitSHA: pr.MergeCommitSHA,
		AuthorAssociation: pr.AuthorAssociation, HTMLURL: pr.HTMLURL,
		CreatedAt: timestamp(pr.CreatedAt), UpdatedAt: timestamp(pr.UpdatedAt), ClosedAt: timestampPtr(pr.ClosedAt),
	}, nil
}

// commentRecord builds the Comment record of a comment of repo.
func commentRecord(c *ghComment, repo string) (*Comment, error) {
	if c.ID <= 0 {
		return nil, errors.New("the comment has no id")
	}
	m := reIssueURL.FindStringSubmatch(c.IssueURL)
	if m == nil {
		return nil, fmt.Errorf("comment %d: issue_url %q does not name an issue", c.ID, c.IssueURL)
	}
	repo = m[1] + "/" + m[2]
	n, _ := strconv.Atoi(m[3])
	return &Comment{
		ID: strconv.FormatInt(c.ID, 10), Repo: repo, Issue: issueID(repo, n), IssueNumber: n,
		NodeID: c.NodeID, Body: c.Body, User: user(c.User), AuthorAssociation: c.AuthorAssociation,
		HTMLURL: c.HTMLURL, CreatedAt: timestamp(c.CreatedAt), UpdatedAt: timestamp(c.UpdatedAt),
	}, nil
}
