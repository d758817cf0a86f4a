package contentfultest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Headers of Contentful's webhook calls and of its request verification.
const (
	HeaderTopic         = "X-Contentful-Topic"
	HeaderWebhookName   = "X-Contentful-Webhook-Name"
	HeaderSignature     = "X-Contentful-Signature"
	HeaderSignedHeaders = "X-Contentful-Signed-Headers"
	HeaderTimestamp     = "X-Contentful-Timestamp"
)

// Webhook is a webhook call as Contentful sends it: its topic header and
// JSON payload (the entity the topic is about).
type Webhook struct {
	Header http.Header
	Body   []byte
}

// EntryWebhook is the call Contentful makes for topic
// (ContentManagement.Entry.publish, …unpublish, …delete) about entry id of
// the environment: the entry as published for publish, its deletion sys
// for unpublish and delete. It panics when the entry was never put.
func (e *Environment) EntryWebhook(topic, id string) Webhook { return e.webhook(topic, "Entry", id) }

// AssetWebhook is EntryWebhook for an asset
// (ContentManagement.Asset.publish, …).
func (e *Environment) AssetWebhook(topic, id string) Webhook { return e.webhook(topic, "Asset", id) }

func (e *Environment) webhook(topic, kind, id string) Webhook {
	e.mu.Lock()
	it := e.items[itemKey(kind, id)]
	if it == nil {
		e.mu.Unlock()
		panic(fmt.Sprintf("contentfultest: no %s %q", kind, id))
	}
	payload := e.itemJSON(it)
	e.mu.Unlock()
	if strings.HasSuffix(topic, ".unpublish") || strings.HasSuffix(topic, ".delete") {
		sys := payload["sys"].(map[string]any)
		if !strings.HasPrefix(sys["type"].(string), "Deleted") {
			sys["type"] = "Deleted" + kind
		}
		payload = map[string]any{"sys": sys}
	}
	body, _ := json.Marshal(payload)
	h := http.Header{}
	h.Set("Content-Type", "application/vnd.contentful.management.v1+json")
	h.Set(HeaderTopic, topic)
	h.Set(HeaderWebhookName, "synclayer")
	return Webhook{Header: h, Body: body}
}

// Send posts the call to rawURL, signed with secret at time at when secret
// is set (see Sign), and returns the answer's status and body.
func (wh Webhook) Send(ctx context.Context, rawURL, secret string, at time.Time) (int, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, "", err
	}
	h := wh.Header.Clone()
	if secret != "" {
		Sign(secret, http.MethodPost, u.RequestURI(), h, wh.Body, at)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(wh.Body))
	if err != nil {
		return 0, "", err
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String(), nil
}

// Sign adds Contentful's request-verification headers to h, as Contentful
// signs a webhook call with the space's signing secret: every header of
// h whose name starts with X-Contentful- is signed, with
// X-Contentful-Timestamp (Unix milliseconds) and
// X-Contentful-Signed-Headers (the signed names, lower case, sorted,
// comma-separated) added; X-Contentful-Signature is the hex HMAC-SHA256,
// keyed with secret, of the canonical request
//
//	METHOD "\n" path "\n" name:value;name:value… "\n" body
//
// with the headers lower-cased, trimmed and sorted by name.
func Sign(secret, method, path string, h http.Header, body []byte, at time.Time) {
	h.Del(HeaderSignature)
	h.Set(HeaderTimestamp, strconv.FormatInt(at.UnixMilli(), 10))
	var names []string
	for k := range h {
		lk := strings.ToLower(strings.TrimSpace(k))
		if strings.HasPrefix(lk, "x-contentful-") {
			names = append(names, lk)
		}
	}
	if h.Get(HeaderSignedHeaders) == "" {
		names = append(names, strings.ToLower(HeaderSignedHeaders))
	}
	sort.Strings(names)
	h.Set(HeaderSignedHeaders, strings.Join(names, ","))
	pairs := make([]string, len(names))
	for i, n := range names {
		pairs[i] = n + ":" + strings.TrimSpace(h.Get(n))
	}
	canonical := strings.Join([]string{strings.ToUpper(method), path, strings.Join(pairs, ";"), string(body)}, "\n")
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(canonical))
	h.Set(HeaderSignature, hex.EncodeToString(mac.Sum(nil)))
}
