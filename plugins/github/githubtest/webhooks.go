package githubtest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Webhook deliveries as GitHub sends them ("Webhook events and payloads"):
// a POST with the event's name in X-GitHub-Event, a GUID in
// X-GitHub-Delivery, the body's HMAC in X-Hub-Signature-256 (and the
// legacy SHA-1 one in X-Hub-Signature), and a JSON body holding the
// action, the object, the repository and the sender.

// Sign returns the X-Hub-Signature-256 value of body: "sha256=" and the
// hex HMAC-SHA256 of body keyed with secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func signSHA1(secret string, body []byte) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write(body)
	return "sha1=" + hex.EncodeToString(m.Sum(nil))
}

// DeliveryHeader is the header of a delivery of event with body; an empty
// secret sends no signature, as GitHub does for a webhook without one.
func DeliveryHeader(event, secret string, body []byte) http.Header {
	var guid [16]byte
	rand.Read(guid[:])
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "GitHub-Hookshot/f1a2b3c")
	h.Set("X-GitHub-Event", event)
	h.Set("X-GitHub-Delivery", fmt.Sprintf("%x-%x-%x-%x-%x", guid[0:4], guid[4:6], guid[6:8], guid[8:10], guid[10:]))
	h.Set("X-GitHub-Hook-ID", "424242")
	h.Set("X-GitHub-Hook-Installation-Target-Type", "repository")
	h.Set("X-GitHub-Hook-Installation-Target-ID", "1")
	if secret != "" {
		h.Set("X-Hub-Signature-256", Sign(secret, body))
		h.Set("X-Hub-Signature", signSHA1(secret, body))
	}
	return h
}

// Deliver POSTs a delivery of event with body to url, as GitHub would,
// and returns the answer's status and (start of its) body.
func Deliver(ctx context.Context, url, event, secret string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header = DeliveryHeader(event, secret, body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b), nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func (s *Server) eventRepo(repoName string) *repo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mustRepo(repoName)
}

// IssuesEvent is the body of an "issues" delivery (action "opened",
// "edited", "closed", "reopened", "labeled", "deleted", …) for is, an
// issue of repoName as returned by CreateIssue, EditIssue or DeleteIssue.
func (s *Server) IssuesEvent(action, repoName string, is Issue) []byte {
	rp := s.eventRepo(repoName)
	s.mu.Lock()
	defer s.mu.Unlock()
	if is.IsPull() {
		panic("githubtest: pull requests have pull_request events, not issues events")
	}
	p := map[string]any{
		"action":     action,
		"issue":      s.issueJSON(rp, &is),
		"repository": s.repoJSON(rp),
		"sender":     s.userJSON(is.User),
	}
	if action == "edited" {
		p["changes"] = map[string]any{"title": map[string]any{"from": is.Title}}
	}
	if action == "labeled" || action == "unlabeled" {
		if len(is.Labels) > 0 {
			p["label"] = s.labelsJSON(rp, is.Labels[len(is.Labels)-1:])[0]
		}
	}
	return mustJSON(p)
}

// PullRequestEvent is the body of a "pull_request" delivery ("opened",
// "edited", "closed", "reopened", "synchronize", …) for pr.
func (s *Server) PullRequestEvent(action, repoName string, pr Issue) []byte {
	rp := s.eventRepo(repoName)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !pr.IsPull() {
		panic("githubtest: PullRequestEvent of an issue")
	}
	return mustJSON(map[string]any{
		"action":       action,
		"number":       pr.Number,
		"pull_request": s.pullJSON(rp, &pr, true),
		"repository":   s.repoJSON(rp),
		"sender":       s.userJSON(pr.User),
	})
}

// IssueCommentEvent is the body of an "issue_comment" delivery
// ("created", "edited", "deleted") for c, whose issue must still exist.
func (s *Server) IssueCommentEvent(action, repoName string, c Comment) []byte {
	rp := s.eventRepo(repoName)
	s.mu.Lock()
	defer s.mu.Unlock()
	is := rp.issues[c.Issue]
	if is == nil {
		panic(fmt.Sprintf("githubtest: IssueCommentEvent: issue %d is gone", c.Issue))
	}
	p := map[string]any{
		"action":     action,
		"issue":      s.issueJSON(rp, is),
		"comment":    s.commentJSON(rp, &c),
		"repository": s.repoJSON(rp),
		"sender":     s.userJSON(c.User),
	}
	if action == "edited" {
		p["changes"] = map[string]any{"body": map[string]any{"from": strings.TrimSpace(c.Body) + " (before)"}}
	}
	return mustJSON(p)
}

// PingEvent is the body of the "ping" delivery GitHub sends when a webhook
// is created.
func (s *Server) PingEvent(repoName string) []byte {
	rp := s.eventRepo(repoName)
	s.mu.Lock()
	defer s.mu.Unlock()
	return mustJSON(map[string]any{
		"zen":     "Keep it logically awesome.",
		"hook_id": 424242,
		"hook": map[string]any{
			"type": "Repository", "id": 424242, "name": "web", "active": true,
			"events": []string{"issues", "issue_comment", "pull_request"},
			"config": map[string]any{"content_type": "json", "insecure_ssl": "0", "url": "https://example.com/hooks"},
		},
		"repository": s.repoJSON(rp),
		"sender":     s.userJSON(rp.owner),
	})
}
