package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// SignatureHeader carries the HMAC of a payload webhook's body.
const SignatureHeader = "X-Signature-256"

// change is one entry of a payload webhook:
// {"model":"Post","action":"upsert","record":{…}} or
// {"model":"Post","action":"delete","id":"17"}.
type change struct {
	Model  string          `json:"model"`
	Action string          `json:"action"`
	Record json.RawMessage `json:"record"`
	ID     json.RawMessage `json:"id"`
}

// WebhooksEnabled implements sdk.ConnectorWithConfiguredWebhooks: only a
// source with a webhook_secret takes payload webhooks (SPEC §11 rest); for
// the others the host answers 404, so that nobody writes records unsigned.
func (r *Rest) WebhooksEnabled(ctx context.Context, req *sdk.ConfigRequest) (bool, error) {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return false, err
	}
	return cfg.WebhookSecret != "", nil
}

// VerifyWebhook implements sdk.ConnectorWithWebhooks: the body must be
// signed with the webhook_secret (X-Signature-256: sha256=<hex
// HMAC-SHA256>), and must be changes this connector can apply, so that
// nothing unusable is stored. Without a webhook_secret nothing is accepted
// (the SDK already refuses: see WebhooksEnabled).
func (r *Rest) VerifyWebhook(ctx context.Context, req *sdk.WebhookRequest) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	if cfg.WebhookSecret == "" {
		return errors.New("this source has no webhook_secret, so it takes no payload webhooks; set webhook_secret to take signed ones")
	}
	sig := sdk.HMACSignature{Secret: []byte(cfg.WebhookSecret), Prefix: "sha256="}
	if err := sig.VerifyHeader(req.Header, SignatureHeader, req.Body); err != nil {
		return err
	}
	_, err = parseChanges(cfg, req.Body)
	return err
}

// HandleWebhook implements sdk.ConnectorWithWebhooks: it applies the
// changes in order.
func (r *Rest) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest, w *sdk.Writer) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	changes, err := parseChanges(cfg, req.Body)
	if err != nil {
		return err
	}
	for i, c := range changes {
		m := cfg.Models[c.Model]
		switch c.Action {
		case "upsert":
			rec, id, err := webhookRecord(c, m)
			if err != nil {
				return fmt.Errorf("change %d: %w", i, err)
			}
			if err := w.Save(ctx, c.Model, withID(rec, m, id)); err != nil {
				return err
			}
		case "delete":
			id, err := webhookID(c.ID)
			if err != nil {
				return fmt.Errorf("change %d: %w", i, err)
			}
			if err := w.Delete(ctx, c.Model, id); err != nil {
				return err
			}
		}
	}
	req.Logger.Info("applied a webhook", "changes", len(changes))
	return nil
}

// parseChanges reads a body of one change or an array of them, and checks
// each names a configured model and a known action with what it needs.
func parseChanges(cfg *Config, body []byte) ([]change, error) {
	body = bytes.TrimSpace(body)
	var changes []change
	switch {
	case len(body) > 0 && body[0] == '[':
		if err := json.Unmarshal(body, &changes); err != nil {
			return nil, fmt.Errorf("the body is not an array of changes: %w", err)
		}
	case len(body) > 0 && body[0] == '{':
		var c change
		if err := json.Unmarshal(body, &c); err != nil {
			return nil, fmt.Errorf("the body is not a change: %w", err)
		}
		changes = []change{c}
	default:
		return nil, errors.New(`the body must be a change or an array of changes: {"model":"Post","action":"upsert","record":{…}} or {"model":"Post","action":"delete","id":"17"}`)
	}
	for i, c := range changes {
		m := cfg.Models[c.Model]
		if m == nil {
			return nil, fmt.Errorf("change %d: model %q is not one of the config's models (%v)", i, c.Model, cfg.modelNames())
		}
		switch c.Action {
		case "upsert":
			if _, _, err := webhookRecord(c, m); err != nil {
				return nil, fmt.Errorf("change %d: %w", i, err)
			}
		case "delete":
			if _, err := webhookID(c.ID); err != nil {
				return nil, fmt.Errorf("change %d: %w", i, err)
			}
		default:
			return nil, fmt.Errorf("change %d: action %q must be \"upsert\" or \"delete\"", i, c.Action)
		}
	}
	return changes, nil
}

func webhookRecord(c change, m *ModelConfig) (map[string]any, string, error) {
	var rec map[string]any
	dec := json.NewDecoder(bytes.NewReader(c.Record))
	dec.UseNumber()
	if len(c.Record) == 0 || dec.Decode(&rec) != nil || rec == nil {
		return nil, "", errors.New(`an upsert needs "record", a JSON object`)
	}
	id, _, err := identify(rec, m)
	if err != nil {
		return nil, "", fmt.Errorf("the record: %w", err)
	}
	return rec, id, nil
}

func webhookID(raw json.RawMessage) (string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if len(raw) == 0 || dec.Decode(&v) != nil {
		return "", errors.New(`a delete needs "id", a string or a number`)
	}
	switch x := v.(type) {
	case string:
		if x != "" {
			return x, nil
		}
	case json.Number:
		return x.String(), nil
	}
	return "", errors.New(`a delete needs "id", a non-empty string or a number`)
}
