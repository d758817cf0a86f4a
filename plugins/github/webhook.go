package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// Headers of GitHub's webhook deliveries.
const (
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the
	// raw body, keyed with the webhook's secret.
	SignatureHeader = "X-Hub-Signature-256"
	// EventHeader names the event: issues, pull_request, issue_comment,
	// ping, …
	EventHeader = "X-GitHub-Event"
	// DeliveryHeader is the delivery's GUID, for the logs.
	DeliveryHeader = "X-GitHub-Delivery"
)

// Events the connector applies.
const (
	EventIssues       = "issues"
	EventPullRequest  = "pull_request"
	EventIssueComment = "issue_comment"
	EventPing         = "ping"
)

// errNoSecret refuses payload webhooks of a source without a secret: no
// unsigned writes.
var errNoSecret = errors.New("payload webhooks are off for this source: set webhook_secret to the secret of the GitHub webhook to take them")

// payload is what the connector reads of a delivery's body.
type payload struct {
	Action      string          `json:"action"`
	Issue       json.RawMessage `json:"issue"`
	PullRequest json.RawMessage `json:"pull_request"`
	Comment     json.RawMessage `json:"comment"`
	Repository  *ghRepo         `json:"repository"`
	Changes     *struct {
		NewIssue      json.RawMessage `json:"new_issue"`
		NewRepository *ghRepo         `json:"new_repository"`
	} `json:"changes"`
}

// change is one record change a delivery makes.
type change struct {
	model  string
	id     string
	record any // nil: delete id
}

// delivery is a parsed webhook request.
type delivery struct {
	event, action, guid string
	changes             []change
	// ignored says why a valid delivery changes nothing ("" when it does).
	ignored string
}

// WebhooksEnabled implements sdk.ConnectorWithConfiguredWebhooks: only a
// source with a webhook_secret takes payload webhooks; for the others the
// host answers 404 and never asks VerifyWebhook.
func (g *GitHub) WebhooksEnabled(ctx context.Context, req *sdk.ConfigRequest) (bool, error) {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return false, err
	}
	return cfg.WebhookSecret != "", nil
}

// VerifyWebhook implements sdk.ConnectorWithWebhooks: the source must
// have a webhook_secret, the body must carry its signature
// (X-Hub-Signature-256, compared in constant time), and it must be a
// delivery the connector can read, so that nothing unusable is stored.
func (g *GitHub) VerifyWebhook(ctx context.Context, req *sdk.WebhookRequest) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	if cfg.WebhookSecret == "" {
		return errNoSecret
	}
	sig := sdk.HMACSignature{Secret: []byte(cfg.WebhookSecret), Prefix: "sha256="}
	if err := sig.VerifyHeader(req.Header, SignatureHeader, req.Body); err != nil {
		return fmt.Errorf("%w: check that the GitHub webhook's secret is the source's webhook_secret", err)
	}
	_, err = parseDelivery(cfg, req.Header, req.Body)
	return err
}

// HandleWebhook implements sdk.ConnectorWithWebhooks: it applies the
// delivery's change at once. A ping, another event, or an event of a
// repository the source does not sync changes nothing. It does not check
// the signature again: the host hands it only requests VerifyWebhook
// accepted when they arrived (the secret may have been rotated since).
func (g *GitHub) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest, w *sdk.Writer) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	d, err := parseDelivery(cfg, req.Header, req.Body)
	if err != nil {
		return err
	}
	if d.ignored != "" {
		req.Logger.Info("webhook changes nothing", "event", d.event, "action", d.action, "delivery", d.guid, "reason", d.ignored)
		return nil
	}
	for _, c := range d.changes {
		if c.record == nil {
			err = w.Delete(ctx, c.model, c.id)
		} else {
			err = w.Save(ctx, c.model, c.record)
		}
		if err != nil {
			return err
		}
	}
	req.Logger.Info("applied a webhook", "event", d.event, "action", d.action, "delivery", d.guid, "changes", len(d.changes))
	return nil
}

// parseDelivery reads a delivery: its event, and the record changes it
// makes. The body is JSON, or (a webhook made with content type
// application/x-www-form-urlencoded) a form whose payload field is.
func parseDelivery(cfg *Config, h http.Header, body []byte) (*delivery, error) {
	d := &delivery{event: strings.TrimSpace(h.Get(EventHeader)), guid: h.Get(DeliveryHeader)}
	if d.event == "" {
		return nil, fmt.Errorf("no %s header: this is not a GitHub webhook delivery", EventHeader)
	}
	if ct, _, _ := mime.ParseMediaType(h.Get("Content-Type")); ct == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil || form.Get("payload") == "" {
			return nil, errors.New("a form-encoded delivery must have a payload field")
		}
		body = []byte(form.Get("payload"))
	}
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("the %s delivery's body is not JSON: %w", d.event, err)
	}
	d.action = p.Action
	switch d.event {
	case EventPing:
		d.ignored = "a ping: the webhook is set up"
		return d, nil
	case EventIssues, EventPullRequest, EventIssueComment:
	default:
		d.ignored = "the connector applies issues, pull_request and issue_comment events only; unselect the others in the webhook's settings"
		return d, nil
	}
	if p.Repository == nil || p.Repository.FullName == "" {
		return nil, fmt.Errorf("the %s delivery has no repository.full_name", d.event)
	}
	repo := cfg.repo(p.Repository.FullName)
	if repo == "" {
		d.ignored = fmt.Sprintf("repository %s is not among the source's repos", p.Repository.FullName)
		return d, nil
	}
	var err error
	switch d.event {
	case EventIssues:
		err = d.issues(cfg, &p, p.Repository.FullName)
	case EventPullRequest:
		err = d.pullRequest(&p, p.Repository.FullName)
	case EventIssueComment:
		err = d.issueComment(&p, p.Repository.FullName)
	}
	if err != nil {
		return nil, fmt.Errorf("the %s delivery (action %q): %w", d.event, d.action, err)
	}
	return d, nil
}

func decodeObject(raw json.RawMessage, name string, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return fmt.Errorf("it has no %s", name)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("its %s: %w", name, err)
	}
	return nil
}

func (d *delivery) issues(cfg *Config, p *payload, repo string) error {
	var is ghIssue
	if err := decodeObject(p.Issue, "issue", &is); err != nil {
		return err
	}
	if is.isPull() {
		d.ignored = "an issues event about a pull request (pull_request events carry those)"
		return nil
	}
	rec, err := issueRecord(&is, repo)
	if err != nil {
		return err
	}
	switch d.action {
	case "deleted":
		d.changes = append(d.changes, change{model: ModelIssue, id: rec.ID})
	case "transferred":
		// The issue left this repository; when it moved to another
		// repository the source syncs, it appears there.
		d.changes = append(d.changes, change{model: ModelIssue, id: rec.ID})
		if c := p.Changes; c != nil && c.NewRepository != nil && cfg.repo(c.NewRepository.FullName) != "" && len(c.NewIssue) > 0 {
			var ni ghIssue
			if err := decodeObject(c.NewIssue, "changes.new_issue", &ni); err != nil {
				return err
			}
			moved, err := issueRecord(&ni, c.NewRepository.FullName)
			if err != nil {
				return err
			}
			d.changes = append(d.changes, change{model: ModelIssue, id: moved.ID, record: moved})
		}
	default:
		d.changes = append(d.changes, change{model: ModelIssue, id: rec.ID, record: rec})
	}
	return nil
}

func (d *delivery) pullRequest(p *payload, repo string) error {
	var pr ghPull
	if err := decodeObject(p.PullRequest, "pull_request", &pr); err != nil {
		return err
	}
	rec, err := pullRecord(&pr, repo)
	if err != nil {
		return err
	}
	// GitHub deletes no pull request: every action leaves one to save.
	d.changes = append(d.changes, change{model: ModelPullRequest, id: rec.ID, record: rec})
	return nil
}

func (d *delivery) issueComment(p *payload, repo string) error {
	var c ghComment
	if err := decodeObject(p.Comment, "comment", &c); err != nil {
		return err
	}
	if d.action == "deleted" {
		if c.ID <= 0 {
			return errors.New("the comment has no id")
		}
		d.changes = append(d.changes, change{model: ModelComment, id: strconv.FormatInt(c.ID, 10)})
		return nil
	}
	rec, err := commentRecord(&c, repo)
	if err != nil {
		return err
	}
	d.changes = append(d.changes, change{model: ModelComment, id: rec.ID, record: rec})
	return nil
}
