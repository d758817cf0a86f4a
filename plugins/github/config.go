package main

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// DefaultBaseURL is GitHub.com's REST API.
const DefaultBaseURL = "https://api.github.com"

// Config is the connector's configuration (SPEC §11 github).
type Config struct {
	Token         string   `config:"token,required,sensitive" doc:"A GitHub token: a fine-grained personal access token (or a GitHub App installation token) with read access to Issues, Pull requests and Metadata of the repositories; a classic token needs the repo scope for private repositories."`
	Repos         []string `config:"repos,required" doc:"The repositories to sync, as \"owner/name\"."`
	BaseURL       string   `config:"base_url" doc:"Root of the REST API (default https://api.github.com); GitHub Enterprise Server: https://HOST/api/v3."`
	WebhookSecret string   `config:"webhook_secret,sensitive" doc:"The secret of the GitHub webhook; when set, POST /hooks/sources/{layer}/{source} takes issues, pull_request and issue_comment deliveries signed with it (X-Hub-Signature-256). Without it, payload webhooks are refused."`
}

var (
	reOwner = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$`)
	reName  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
)

// Validate is called by DecodeConfig: it fills defaults and checks what
// the tags cannot.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.Token) == "" {
		return errors.New("token must not be empty: set it to a GitHub token (see docs/connectors/github.md for the permissions it needs)")
	}
	if strings.ContainsAny(c.Token, " \t\r\n") {
		// Never quote the token itself.
		return errors.New("token contains white space: set it to the token alone, without \"Bearer \" or a trailing newline")
	}
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("base_url %q must be an absolute http or https URL without a query, like %s", c.BaseURL, DefaultBaseURL)
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if len(c.Repos) == 0 {
		return errors.New(`repos must name at least one repository, like ["octo-org/octo-repo"]`)
	}
	seen := map[string]bool{}
	for i, r := range c.Repos {
		owner, name, ok := strings.Cut(r, "/")
		if !ok || !reOwner.MatchString(owner) || !reName.MatchString(name) || name == "." || name == ".." {
			return fmt.Errorf("repos[%d] %q must be \"owner/name\", like \"octo-org/octo-repo\"", i, r)
		}
		if seen[strings.ToLower(r)] {
			return fmt.Errorf("repos[%d]: %q is listed twice", i, r)
		}
		seen[strings.ToLower(r)] = true
	}
	return nil
}

// repo returns the configured name of a repository full_name matches
// (GitHub's names are case-insensitive), or "".
func (c *Config) repo(fullName string) string {
	for _, r := range c.Repos {
		if strings.EqualFold(r, fullName) {
			return r
		}
	}
	return ""
}

// repoURL is the API URL of a repository, with path appended
// ("issues", "pulls", "issues/comments", or "" for the repository).
func (c *Config) repoURL(repo, path string) *url.URL {
	owner, name, _ := strings.Cut(repo, "/")
	raw := c.BaseURL + "/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(name)
	if path != "" {
		raw += "/" + path
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Validate checked base_url and the names.
		panic(fmt.Sprintf("github: repository URL %q: %v", raw, err))
	}
	return u
}
