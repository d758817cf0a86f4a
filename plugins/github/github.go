package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// Version is the connector's version.
const Version = "0.1.0"

// DefaultPerPage is the page size asked for: GitHub's largest.
const DefaultPerPage = 100

// DefaultEvery is the syncs' default schedule: webhooks bring changes at
// once, polls catch what a missed delivery lost, and cost little (an
// unchanged list answers 304, which spends no quota).
const DefaultEvery = 15 * time.Minute

// MaxTies is how many ids sharing the highest updated_at a checkpoint
// remembers, so that the next incremental run skips them; past it they
// are saved again (harmless: the host ignores identical saves).
const MaxTies = 10_000

// Models and syncs (SPEC §11 github: syncs named after the models, in
// lower case).
const (
	ModelIssue       = "Issue"
	ModelPullRequest = "PullRequest"
	ModelComment     = "Comment"

	SyncIssue       = "issue"
	SyncPullRequest = "pullrequest"
	SyncComment     = "comment"
)

// GitHub syncs the issues, pull requests and comments of repositories.
type GitHub struct {
	// HTTP configures the HTTP client: timeout, transport, and the
	// retries of server errors (RetryMax, RetryWaitMin, RetryWaitMax,
	// MaxRetryAfter); the zero value is the SDK's defaults. Rate limits
	// are handled apart (see the fields below).
	HTTP sdk.HTTPClientOptions
	// PerPage is the page size asked for (default DefaultPerPage).
	PerPage int
	// ResetSlack is added to X-RateLimit-Reset (default
	// DefaultResetSlack); SecondaryWait is the wait after a secondary
	// limit without Retry-After (default DefaultSecondaryWait);
	// MaxRateLimitWait bounds one wait (default DefaultMaxRateLimitWait).
	// Waits also end with the run's context.
	ResetSlack, SecondaryWait, MaxRateLimitWait time.Duration
}

var (
	_ sdk.ConnectorWithCheck    = (*GitHub)(nil)
	_ sdk.ConnectorWithWebhooks = (*GitHub)(nil)
)

var (
	userFields    = []sdk.ModelField{{Name: "user", Type: "object"}, {Name: "labels", Type: "array"}, {Name: "assignees", Type: "array"}}
	commonFields  = []sdk.ModelField{{Name: "id", Type: "string"}, {Name: "repo", Type: "string"}, {Name: "number", Type: "number"}, {Name: "github_id", Type: "number"}, {Name: "title", Type: "string"}, {Name: "body", Type: "string"}, {Name: "state", Type: "string"}}
	timeFields    = []sdk.ModelField{{Name: "html_url", Type: "string"}, {Name: "created_at", Type: "timestamp"}, {Name: "updated_at", Type: "timestamp"}, {Name: "closed_at", Type: "timestamp"}}
	issueFields   = slices.Concat(commonFields, []sdk.ModelField{{Name: "state_reason", Type: "string"}, {Name: "locked", Type: "bool"}, {Name: "milestone", Type: "string"}, {Name: "comments", Type: "number"}}, userFields, timeFields)
	pullFields    = slices.Concat(commonFields, []sdk.ModelField{{Name: "draft", Type: "bool"}, {Name: "merged", Type: "bool"}, {Name: "head", Type: "object"}, {Name: "base", Type: "object"}, {Name: "requested_reviewers", Type: "array"}, {Name: "merged_at", Type: "timestamp"}, {Name: "merge_commit_sha", Type: "string"}}, userFields, timeFields)
	commentFields = []sdk.ModelField{{Name: "id", Type: "string"}, {Name: "repo", Type: "string"}, {Name: "issue", Type: "string"}, {Name: "issue_number", Type: "number"}, {Name: "body", Type: "string"}, {Name: "user", Type: "object"}, {Name: "html_url", Type: "string"}, {Name: "created_at", Type: "timestamp"}, {Name: "updated_at", Type: "timestamp"}}
)

// Describe implements sdk.Connector.
func (g *GitHub) Describe() sdk.Description {
	return sdk.Description{
		Name: "github", Version: Version, Config: (*Config)(nil),
		Models: []sdk.Model{
			{Name: ModelIssue, Description: `An issue of a repository (pull requests excluded); id "<owner>/<repo>#<number>".`, Fields: issueFields},
			{Name: ModelPullRequest, Description: `A pull request of a repository; id "<owner>/<repo>#<number>".`, Fields: pullFields},
			{Name: ModelComment, Description: "A comment on an issue or a pull request's conversation; id GitHub's numeric id.", Fields: commentFields},
		},
		Syncs: []sdk.SyncSpec{
			{Name: SyncIssue, Models: []string{ModelIssue}, Every: DefaultEvery, Incremental: true},
			{Name: SyncPullRequest, Models: []string{ModelPullRequest}, Every: DefaultEvery, Incremental: true},
			{Name: SyncComment, Models: []string{ModelComment}, Every: DefaultEvery, Incremental: true},
		},
	}
}

func decodeConfig(decode func(any) error) (*Config, error) {
	cfg := &Config{}
	if err := decode(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (g *GitHub) perPage() int {
	if g.PerPage > 0 {
		return min(g.PerPage, 100)
	}
	return DefaultPerPage
}

// Check implements sdk.ConnectorWithCheck: the token is valid, and it can
// read each repository, its issues and its pull requests. The error names
// what is wrong: the token, a repository, or a permission.
func (g *GitHub) Check(ctx context.Context, req *sdk.CheckRequest) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	c := g.newClient(cfg, req.Logger)
	defer c.close()
	for _, repo := range cfg.Repos {
		for _, path := range []string{"", "issues", "pulls"} {
			u := cfg.repoURL(repo, path)
			if path != "" {
				u.RawQuery = "per_page=1&state=all"
			}
			if _, _, err := c.get(ctx, u, ""); err != nil {
				return explain(repo, err)
			}
		}
	}
	return nil
}

// endpoint is what a sync reads: a list under /repos/{owner}/{repo}/,
// newest update first.
type endpoint struct {
	model string
	path  string
	// since tells whether the list takes ?since= (the pulls list does
	// not: its walk stops at the first item older than the checkpoint).
	since bool
	query url.Values
	// record decodes an item into its record, id and updated_at; a nil
	// record skips the item (a pull request in the issues list), which
	// still counts for the high-water mark when it has an id.
	record func(raw json.RawMessage, repo string) (rec any, id, updated string, err error)
}

var endpoints = map[string]endpoint{
	SyncIssue: {
		model: ModelIssue, path: "issues", since: true,
		query: url.Values{"state": {"all"}, "sort": {"updated"}, "direction": {"desc"}},
		record: func(raw json.RawMessage, repo string) (any, string, string, error) {
			var is ghIssue
			if err := json.Unmarshal(raw, &is); err != nil {
				return nil, "", "", err
			}
			if is.isPull() {
				// Not an Issue; it still moves the high-water mark, so
				// that the next since skips it (the id only marks ties).
				return nil, "pull:" + strconv.Itoa(is.Number), timestamp(is.UpdatedAt), nil
			}
			rec, err := issueRecord(&is, repo)
			if err != nil {
				return nil, "", "", err
			}
			return rec, rec.ID, rec.UpdatedAt, nil
		},
	},
	SyncPullRequest: {
		model: ModelPullRequest, path: "pulls",
		query: url.Values{"state": {"all"}, "sort": {"updated"}, "direction": {"desc"}},
		record: func(raw json.RawMessage, repo string) (any, string, string, error) {
			var pr ghPull
			if err := json.Unmarshal(raw, &pr); err != nil {
				return nil, "", "", err
			}
			rec, err := pullRecord(&pr, repo)
			if err != nil {
				return nil, "", "", err
			}
			return rec, rec.ID, rec.UpdatedAt, nil
		},
	},
	SyncComment: {
		model: ModelComment, path: "issues/comments", since: true,
		query: url.Values{"sort": {"updated"}, "direction": {"desc"}},
		record: func(raw json.RawMessage, repo string) (any, string, string, error) {
			var c ghComment
			if err := json.Unmarshal(raw, &c); err != nil {
				return nil, "", "", err
			}
			rec, err := commentRecord(&c, repo)
			if err != nil {
				return nil, "", "", err
			}
			return rec, rec.ID, rec.UpdatedAt, nil
		},
	},
}

// state is a sync's checkpoint: one entry per repository.
type state struct {
	Repos map[string]*repoState `json:"repos"`
}

// repoState is where a sync stands in one repository.
//
// After a completed walk: Since is the highest updated_at seen and
// AtSince the ids that have it (an incremental run asks since=Since,
// which GitHub answers inclusively, and skips those unless they changed
// again); ETag is the ETag of the walk's first page, whose URL is
// ETagURL: the next run asking the same URL sends If-None-Match, and a
// 304 means nothing changed.
//
// During a walk (after each page that has a next one): Since and AtSince
// are the walk's base, Next the URL of the next page, Max and AtMax the
// highest updated_at so far: a retry resumes at Next.
type repoState struct {
	Since   string   `json:"since,omitempty"`
	AtSince []string `json:"at_since,omitempty"`
	ETag    string   `json:"etag,omitempty"`
	ETagURL string   `json:"etag_url,omitempty"`
	Next    string   `json:"next,omitempty"`
	Max     string   `json:"max,omitempty"`
	AtMax   []string `json:"at_max,omitempty"`
}

func checkpointOf(st *state) sdk.Checkpoint {
	cp := sdk.Checkpoint{}
	b, _ := json.Marshal(st)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	_ = dec.Decode(&cp)
	return cp
}

// Sync implements sdk.Connector: for each repository it walks the sync's
// list newest update first, page by page along the Link header, saving
// each record and writing a checkpoint after each page. An incremental
// run asks only for what changed since the checkpoint (?since=, or a
// walk that stops at the first older item where the list has no since),
// with a conditional request when it asks the same first page as the run
// before. A full run reads everything, so that the host's track_deletes
// finds what was deleted on GitHub.
func (g *GitHub) Sync(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	ep, ok := endpoints[req.Sync]
	if !ok {
		return fmt.Errorf("unknown sync %q; this connector's syncs: %s, %s, %s", req.Sync, SyncIssue, SyncPullRequest, SyncComment)
	}
	st := &state{Repos: map[string]*repoState{}}
	if req.Checkpoint != nil {
		var prev state
		if err := req.Checkpoint.Decode(&prev); err != nil {
			return fmt.Errorf("the checkpoint is not one of this connector's; reset the sync: %w", err)
		}
		// Only the configured repositories: a removed one is forgotten.
		for _, r := range cfg.Repos {
			if rs := prev.Repos[r]; rs != nil {
				st.Repos[r] = rs
			}
		}
	}
	c := g.newClient(cfg, req.Logger)
	defer c.close()
	wk := &walker{g: g, cfg: cfg, c: c, ep: ep, w: w, log: req.Logger, st: st}
	for _, repo := range cfg.Repos {
		if st.Repos[repo] == nil {
			st.Repos[repo] = &repoState{}
		}
		if err := wk.walk(ctx, repo, req.Full); err != nil {
			return err
		}
	}
	req.Logger.Info("synced", "model", ep.model, "repos", len(cfg.Repos), "saved", wk.saved, "skipped_unchanged", wk.skipped, "not_modified", wk.notModified)
	return nil
}

// walker walks one sync's list in each repository.
type walker struct {
	g   *GitHub
	cfg *Config
	c   *client
	ep  endpoint
	w   *sdk.Writer
	log hclog.Logger
	st  *state

	saved, skipped, notModified int64
}

// progress is one walk's high-water mark.
type progress struct {
	base    string // the since of this walk; "" for none
	atBase  map[string]bool
	max     string
	atMax   map[string]bool
	tooMany bool
}

func (p *progress) see(id, updated string) {
	if updated == "" {
		return
	}
	switch c := compareTimes(updated, p.max); {
	case p.max == "" || c > 0:
		p.max, p.atMax, p.tooMany = updated, map[string]bool{id: true}, false
	case c == 0 && !p.tooMany:
		p.atMax[id] = true
		if len(p.atMax) > MaxTies {
			p.atMax, p.tooMany = map[string]bool{}, true
		}
	}
}

func (wk *walker) walk(ctx context.Context, repo string, full bool) error {
	rs := wk.st.Repos[repo]
	p := &progress{atBase: map[string]bool{}, atMax: map[string]bool{}}
	var u *url.URL
	etag := ""
	resume := rs.Next != "" && (!full || rs.Since == "")
	if resume {
		// The retry of an interrupted walk; a full run resumes only an
		// unfiltered one.
		p.base, p.atBase = rs.Since, set(rs.AtSince)
		p.max, p.atMax = rs.Max, set(rs.AtMax)
		var err error
		if u, err = url.Parse(rs.Next); err != nil {
			return fmt.Errorf("repository %s: the checkpoint's next page %q is not a URL; reset the sync", repo, rs.Next)
		}
		wk.log.Info("resuming an interrupted walk", "model", wk.ep.model, "repo", repo, "page", sdk.RedactURL(u))
	} else {
		if !full && rs.Since != "" {
			p.base, p.atBase = rs.Since, set(rs.AtSince)
			p.max, p.atMax = rs.Since, set(rs.AtSince)
		}
		u = wk.firstURL(repo, p.base)
		if !full && rs.ETag != "" && rs.ETagURL == u.String() {
			etag = rs.ETag
		}
	}
	first := !resume
	for u != nil {
		page, notModified, err := wk.c.get(ctx, u, etag)
		if err != nil {
			return explain(repo, err)
		}
		if notModified {
			wk.notModified++
			wk.log.Debug("unchanged since the last run (304)", "model", wk.ep.model, "repo", repo)
			return wk.w.Checkpoint(ctx, checkpointOf(wk.st))
		}
		if first {
			rs.ETag, rs.ETagURL = page.Header.Get("ETag"), u.String()
			first, etag = false, ""
		}
		var items []json.RawMessage
		if err := json.Unmarshal(page.Body, &items); err != nil {
			return fmt.Errorf("repository %s: GET %s: the answer is not a JSON array: %w", repo, sdk.RedactURL(u), err)
		}
		older := false
		for i, raw := range items {
			rec, id, updated, err := wk.ep.record(raw, repo)
			if err != nil {
				return fmt.Errorf("repository %s: item %d of %s: %w", repo, i, sdk.RedactURL(u), err)
			}
			if p.base != "" && updated != "" {
				c := compareTimes(updated, p.base)
				if c < 0 {
					// Newest first: everything from here on is older
					// than the checkpoint.
					older = true
					break
				}
				if c == 0 && p.atBase[id] {
					if rec != nil {
						wk.skipped++
					}
					continue
				}
			}
			if rec == nil {
				if id != "" {
					p.see(id, updated)
				}
				continue
			}
			if err := wk.w.Save(ctx, wk.ep.model, rec); err != nil {
				return err
			}
			wk.saved++
			p.see(id, updated)
		}
		var next *url.URL
		if !older {
			if next, err = (sdk.LinkPagination{}).Next(page, len(items)); err != nil {
				return fmt.Errorf("repository %s: %w", repo, err)
			}
		}
		if next != nil {
			rs.Since, rs.AtSince = p.base, keys(p.atBase)
			rs.Next, rs.Max, rs.AtMax = next.String(), p.max, keys(p.atMax)
		} else {
			rs.Since, rs.AtSince = p.max, keys(p.atMax)
			rs.Next, rs.Max, rs.AtMax = "", "", nil
		}
		wk.log.Debug("page", "model", wk.ep.model, "repo", repo, "url", sdk.RedactURL(u), "items", len(items))
		if err := wk.w.Progress(ctx, wk.ep.model, wk.saved, 0); err != nil {
			return err
		}
		if err := wk.w.Checkpoint(ctx, checkpointOf(wk.st)); err != nil {
			return err
		}
		u = next
	}
	return nil
}

// firstURL is the first page of the list in repo, filtered by since when
// the list takes it.
func (wk *walker) firstURL(repo, since string) *url.URL {
	u := wk.cfg.repoURL(repo, wk.ep.path)
	q := url.Values{}
	for k, v := range wk.ep.query {
		q[k] = slices.Clone(v)
	}
	q.Set("per_page", strconv.Itoa(wk.g.perPage()))
	if since != "" && wk.ep.since {
		q.Set("since", since)
	}
	u.RawQuery = q.Encode()
	return u
}

// compareTimes orders two RFC 3339 times (as strings when one does not
// parse); it returns -1, 0 or 1.
func compareTimes(a, b string) int {
	if a == b {
		return 0
	}
	x, errA := time.Parse(time.RFC3339Nano, a)
	y, errB := time.Parse(time.RFC3339Nano, b)
	if errA != nil || errB != nil {
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	}
	return x.Compare(y)
}

func set(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func keys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
