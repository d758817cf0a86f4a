package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
	"github.com/synclayer/synclayer/plugins/github/githubtest"
)

// delivery is a webhook request as GitHub sends it, signed with key.
func deliveryOf(cfg map[string]any, event, key string, body []byte) sdktest.WebhookOptions {
	return sdktest.WebhookOptions{Config: cfg, Header: githubtest.DeliveryHeader(event, key, body), Body: body}
}

// TestSignatureTestVector checks the verification against the example of
// GitHub's "Validating webhook deliveries".
func TestSignatureTestVector(t *testing.T) {
	const vectorSecret = "It's a Secret to Everybody"
	const vectorSig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	body := []byte("Hello, World!")
	h := sdktest.New(t, fast())
	cfg := map[string]any{"token": token, "repos": []string{repoA}, "base_url": "http://127.0.0.1:1", "webhook_secret": vectorSecret}
	hdr := http.Header{SignatureHeader: {vectorSig}, EventHeader: {"ping"}}
	// The signature holds; the body, not JSON, is then refused for what
	// it is.
	err := h.VerifyWebhook(t.Context(), sdktest.WebhookOptions{Config: cfg, Header: hdr, Body: body})
	if err == nil || !strings.Contains(err.Error(), "the ping delivery's body is not JSON") {
		t.Fatalf("the test vector: %v", err)
	}
	for name, sig := range map[string]string{
		"another secret":   githubtest.Sign("It's a Secret to Everybody.", body),
		"upper-case hex":   "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17",
		"no prefix":        strings.TrimPrefix(vectorSig, "sha256="),
		"one digit off":    vectorSig[:len(vectorSig)-1] + "8",
		"the sha1 of them": "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59",
	} {
		hdr := http.Header{SignatureHeader: {sig}, EventHeader: {"ping"}}
		err := h.VerifyWebhook(t.Context(), sdktest.WebhookOptions{Config: cfg, Header: hdr, Body: body})
		if name == "upper-case hex" {
			// Hex is case-insensitive: this one is the same signature.
			if err == nil || !strings.Contains(err.Error(), "not JSON") {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "the signature does not match") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The same vector through the SDK helper the connector uses.
	sig := sdk.HMACSignature{Secret: []byte(vectorSecret), Prefix: "sha256="}
	if got := sig.Sign(body); got != vectorSig {
		t.Fatalf("Sign = %s", got)
	}
}

func TestWebhookVerification(t *testing.T) {
	s := fixture(t)
	h := sdktest.New(t, fast())
	cfg := config(s)
	is, _ := s.Issue(repoA, 1)
	body := s.IssuesEvent("edited", repoA, is)
	if err := h.VerifyWebhook(t.Context(), deliveryOf(cfg, "issues", secret, body)); err != nil {
		t.Fatalf("a good delivery: %v", err)
	}
	if err := h.VerifyWebhook(t.Context(), deliveryOf(cfg, "ping", secret, s.PingEvent(repoA))); err != nil {
		t.Fatalf("ping: %v", err)
	}
	cases := map[string]sdktest.WebhookOptions{
		"the signature does not match":           deliveryOf(cfg, "issues", "another-secret", body),
		"no X-Hub-Signature-256 header":          deliveryOf(cfg, "issues", "", body),
		"no X-GitHub-Event header":               {Config: cfg, Header: http.Header{SignatureHeader: {githubtest.Sign(secret, body)}}, Body: body},
		"it has no issue":                        deliveryOf(cfg, "issues", secret, []byte(`{"action":"opened","repository":{"full_name":"octo-org/octo-repo"}}`)),
		"has no repository.full_name":            deliveryOf(cfg, "issue_comment", secret, []byte(`{"action":"created"}`)),
		"the issues delivery's body is not JSON": deliveryOf(cfg, "issues", secret, []byte(`{"action":`)),
	}
	tampered := deliveryOf(cfg, "issues", secret, body)
	tampered.Body = []byte(strings.Replace(string(body), "Crash on start", "Crash at start", 1))
	cases["the signature does not match "] = tampered
	for want, opts := range cases {
		if err := h.VerifyWebhook(t.Context(), opts); err == nil || !strings.Contains(err.Error(), strings.TrimSpace(want)) {
			t.Errorf("got %v, want %q", err, want)
		}
	}

	// Without a webhook_secret no delivery is taken, signed or not.
	delete(cfg, "webhook_secret")
	if err := h.VerifyWebhook(t.Context(), deliveryOf(cfg, "issues", secret, body)); err == nil || !strings.Contains(err.Error(), "does not take payload webhooks") {
		t.Fatalf("without a secret: %v", err)
	}
}

// TestWebhookRecordsAreThePolledRecords: each event saves exactly the
// record a poll writes for the same object, deletes delete at once, and a
// ping changes nothing.
func TestWebhookRecordsAreThePolledRecords(t *testing.T) {
	s := fixture(t)
	h := sdktest.New(t, fast())
	cfg := config(s)
	polled := func(sync, id string) string {
		t.Helper()
		res := syncRun(t, h, cfg, sync, true, nil)
		for _, c := range res.Changes {
			if c.ID == id {
				return string(c.Data)
			}
		}
		t.Fatalf("poll of %s: no %s in %s", sync, id, ids(res))
		return ""
	}
	handle := func(event string, body []byte) *sdktest.Result {
		t.Helper()
		opts := deliveryOf(cfg, event, secret, body)
		if err := h.VerifyWebhook(t.Context(), opts); err != nil {
			t.Fatalf("verify %s: %v", event, err)
		}
		res, err := h.HandleWebhook(t.Context(), opts)
		if err != nil {
			t.Fatalf("handle %s: %v", event, err)
		}
		return res
	}
	same := func(what string, res *sdktest.Result, model, id, poll string) {
		t.Helper()
		if len(res.Changes) != 1 || res.Changes[0].Model != model || res.Changes[0].ID != id || res.Changes[0].Delete {
			t.Fatalf("%s: changes %+v", what, res.Changes)
		}
		if got := string(res.Changes[0].Data); got != poll {
			t.Fatalf("%s: the webhook's record\n%s\nis not the poll's\n%s", what, got, poll)
		}
	}

	is := s.EditIssue(repoA, 2, func(is *githubtest.Issue) { is.Labels = append(is.Labels, "docs"); is.Title = "Docs!" })
	same("issues labeled", handle("issues", s.IssuesEvent("labeled", repoA, is)), ModelIssue, "octo-org/octo-repo#2", polled(SyncIssue, "octo-org/octo-repo#2"))
	is = s.CloseIssue(repoA, 3, "not_planned")
	same("issues closed", handle("issues", s.IssuesEvent("closed", repoA, is)), ModelIssue, "octo-org/octo-repo#3", polled(SyncIssue, "octo-org/octo-repo#3"))

	pr := s.MergePull(repoA, 4)
	same("pull_request closed", handle("pull_request", s.PullRequestEvent("closed", repoA, pr)), ModelPullRequest, "octo-org/octo-repo#4", polled(SyncPullRequest, "octo-org/octo-repo#4"))
	pr = s.CreatePull(repoB, githubtest.IssueInput{Title: "From a fork", Head: "patch-1"})
	same("pull_request opened", handle("pull_request", s.PullRequestEvent("opened", repoB, pr)), ModelPullRequest, "octo-org/other-repo#2", polled(SyncPullRequest, "octo-org/other-repo#2"))

	c := s.AddComment(repoA, 5, "monalisa", "Why a draft?")
	cid := mustJSON(c.ID)
	same("issue_comment created", handle("issue_comment", s.IssueCommentEvent("created", repoA, c)), ModelComment, cid, polled(SyncComment, cid))
	c = s.EditComment(repoA, c.ID, "Why a draft? Ready now.")
	same("issue_comment edited", handle("issue_comment", s.IssueCommentEvent("edited", repoA, c)), ModelComment, cid, polled(SyncComment, cid))

	// Deletes apply at once.
	c = s.DeleteComment(repoA, c.ID)
	if res := handle("issue_comment", s.IssueCommentEvent("deleted", repoA, c)); ids(res) != "-"+cid || res.Changes[0].Model != ModelComment {
		t.Fatalf("issue_comment deleted: %+v", res.Changes)
	}
	gone := s.DeleteIssue(repoA, 2)
	if res := handle("issues", s.IssuesEvent("deleted", repoA, gone)); ids(res) != "-octo-org/octo-repo#2" || res.Changes[0].Model != ModelIssue {
		t.Fatalf("issues deleted: %+v", res.Changes)
	}

	// A ping, another event, another repository: accepted, no change.
	for name, res := range map[string]*sdktest.Result{
		"ping":       handle("ping", s.PingEvent(repoA)),
		"push":       handle("push", []byte(`{"ref":"refs/heads/main","repository":{"full_name":"octo-org/octo-repo"}}`)),
		"other repo": handle("issues", []byte(`{"action":"opened","issue":{"number":1},"repository":{"full_name":"someone/else"}}`)),
	} {
		if len(res.Changes) != 0 {
			t.Errorf("%s changed %s", name, ids(res))
		}
	}
}

func TestWebhookTransferAndFormEncoding(t *testing.T) {
	s := fixture(t)
	h := sdktest.New(t, fast())
	cfg := config(s)
	is, _ := s.Issue(repoA, 1)
	moved := s.CreateIssue(repoB, githubtest.IssueInput{Title: is.Title})
	// GitHub's "transferred" carries the new issue and repository in
	// changes; the body goes here as a form, as a webhook made with
	// content type application/x-www-form-urlencoded sends it.
	old := s.IssuesEvent("transferred", repoA, is)
	newIssue := s.IssuesEvent("opened", repoB, moved)
	payload := strings.Replace(string(old), `"action":"transferred"`, `"action":"transferred","changes":{"new_issue":`+extract(t, newIssue, "issue")+`,"new_repository":{"full_name":"octo-org/other-repo"}}`, 1)
	body := []byte(url.Values{"payload": {payload}}.Encode())
	opts := deliveryOf(cfg, "issues", secret, body)
	opts.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if err := h.VerifyWebhook(t.Context(), opts); err != nil {
		t.Fatal(err)
	}
	res, err := h.HandleWebhook(t.Context(), opts)
	if err != nil || ids(res) != "-octo-org/octo-repo#1,octo-org/other-repo#2" {
		t.Fatalf("%v %+v", err, res.Changes)
	}
}

// extract returns the JSON text of a top-level key of a JSON object.
func extract(t *testing.T, body []byte, key string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return mustJSON(m[key])
}

// FuzzParseDelivery: whatever the body and event, reading a delivery
// returns a delivery or an error, never panics, and every change it makes
// names a model and an id.
func FuzzParseDelivery(f *testing.F) {
	s := githubtest.New(f)
	s.AddRepo(repoA)
	is := s.CreateIssue(repoA, githubtest.IssueInput{Title: "t", Labels: []string{"bug"}})
	pr := s.CreatePull(repoA, githubtest.IssueInput{Title: "p"})
	c := s.AddComment(repoA, 1, "hubot", "c")
	f.Add("issues", s.IssuesEvent("opened", repoA, is))
	f.Add("issues", s.IssuesEvent("deleted", repoA, is))
	f.Add("pull_request", s.PullRequestEvent("closed", repoA, pr))
	f.Add("issue_comment", s.IssueCommentEvent("deleted", repoA, c))
	f.Add("ping", s.PingEvent(repoA))
	f.Add("issues", []byte(`{"action":"transferred","issue":{"number":1,"labels":["x"]},"repository":{"full_name":"octo-org/octo-repo"},"changes":{"new_issue":{"number":2},"new_repository":{"full_name":"OCTO-ORG/octo-repo"}}}`))
	cfg := &Config{Token: "t", Repos: []string{repoA}, BaseURL: DefaultBaseURL}
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		d, err := parseDelivery(cfg, http.Header{EventHeader: {event}}, body)
		if err != nil {
			return
		}
		for _, ch := range d.changes {
			if ch.model == "" || ch.id == "" {
				t.Fatalf("change %+v of %s %s", ch, event, body)
			}
		}
	})
}
