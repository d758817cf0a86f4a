package main

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
	cf "github.com/synclayer/synclayer/plugins/contentful/contentfultest"
)

// testSecret is a signing secret of the form Contentful generates: 64
// characters of [0-9a-zA-Z+/=_-].
const testSecret = "synclayer-test-secret-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"

// The vectors were computed with Contentful's own implementation,
// signRequest of @contentful/node-apps-toolkit, and again with openssl
// over the canonical request written out by hand:
//
//	printf 'POST\n/hooks/sources/cms/contentful\nx-contentful-signed-headers:x-contentful-signed-headers,x-contentful-timestamp,x-contentful-topic,x-contentful-webhook-name;x-contentful-timestamp:1764316800000;x-contentful-topic:ContentManagement.Entry.publish;x-contentful-webhook-name:synclayer\n{"sys":{"type":"Entry","id":"post-1"}}' |
//	  openssl dgst -sha256 -hmac "$secret"
//	printf 'POST\n/hooks/sources/my%%20layer/cms%%20%%C3%%BC\nx-contentful-signed-headers:x-contentful-signed-headers,x-contentful-timestamp;x-contentful-timestamp:1764316800000\n' |
//	  openssl dgst -sha256 -hmac "$secret"
const (
	vectorTime      = 1764316800000 // ms
	vectorBody      = `{"sys":{"type":"Entry","id":"post-1"}}`
	vectorSignature = "22f93e3a5cdd7e9ef402df0806f426429c79ff880762cedb9403061c0d58b7cc"
	vectorPathSig   = "7821a3effc63ef47b4a03956ec66d7043fda4c0f0907fbd2f4a7c64a6b279a88"
)

func vectorHeader() http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/vnd.contentful.management.v1+json")
	h.Set("X-Contentful-Topic", "ContentManagement.Entry.publish")
	h.Set("X-Contentful-Webhook-Name", "synclayer")
	h.Set("X-Contentful-Signed-Headers", "x-contentful-signed-headers,x-contentful-timestamp,x-contentful-topic,x-contentful-webhook-name")
	h.Set("X-Contentful-Timestamp", "1764316800000")
	h.Set("X-Contentful-Signature", vectorSignature)
	return h
}

func TestVerifySignatureVectors(t *testing.T) {
	now := time.UnixMilli(vectorTime).Add(10 * time.Second)
	if err := VerifySignature(testSecret, "POST", "/hooks/sources/cms/contentful", vectorHeader(), []byte(vectorBody), now, time.Minute); err != nil {
		t.Fatalf("Contentful's vector: %v", err)
	}
	// The path is encoded as encodeURI does before it is signed.
	h := http.Header{}
	h.Set("X-Contentful-Signed-Headers", "x-contentful-signed-headers,x-contentful-timestamp")
	h.Set("X-Contentful-Timestamp", "1764316800000")
	h.Set("X-Contentful-Signature", vectorPathSig)
	if err := VerifySignature(testSecret, "post", "/hooks/sources/my layer/cms ü", h, nil, now, time.Minute); err != nil {
		t.Fatalf("the vector with an encoded path: %v", err)
	}

	for _, tc := range []struct {
		name   string
		change func(h http.Header, body *string, path *string, now *time.Time)
		want   error
		says   string
	}{
		{"body changed", func(h http.Header, b, p *string, n *time.Time) { *b = strings.Replace(*b, "post-1", "post-2", 1) }, sdk.ErrBadSignature, "does not match"},
		{"signed header changed", func(h http.Header, b, p *string, n *time.Time) {
			h.Set("X-Contentful-Topic", "ContentManagement.Entry.delete")
		}, sdk.ErrBadSignature, ""},
		{"path changed", func(h http.Header, b, p *string, n *time.Time) { *p = "/hooks/sources/cms/other" }, sdk.ErrBadSignature, ""},
		{"unsigned header changed", func(h http.Header, b, p *string, n *time.Time) { h.Set("Content-Type", "text/plain") }, nil, ""},
		{"signed header names in another order", func(h http.Header, b, p *string, n *time.Time) {
			h.Set("X-Contentful-Signed-Headers", "x-contentful-webhook-name,x-contentful-topic,x-contentful-timestamp,x-contentful-signed-headers")
		}, sdk.ErrBadSignature, ""},
		{"upper-case signature", func(h http.Header, b, p *string, n *time.Time) {
			h.Set("X-Contentful-Signature", strings.ToUpper(vectorSignature))
		}, nil, ""},
		{"no signature", func(h http.Header, b, p *string, n *time.Time) { h.Del("X-Contentful-Signature") }, sdk.ErrMissingSignature, "request verification"},
		{"signature not hex", func(h http.Header, b, p *string, n *time.Time) { h.Set("X-Contentful-Signature", "zz") }, sdk.ErrBadSignature, "not hexadecimal"},
		{"timestamp not signed", func(h http.Header, b, p *string, n *time.Time) {
			h.Set("X-Contentful-Signed-Headers", "x-contentful-signed-headers,x-contentful-topic")
		}, sdk.ErrBadSignature, "does not list X-Contentful-Timestamp"},
		{"stale", func(h http.Header, b, p *string, n *time.Time) { *n = n.Add(2 * time.Minute) }, sdk.ErrStaleTimestamp, "away from now"},
		{"from the future", func(h http.Header, b, p *string, n *time.Time) { *n = n.Add(-3 * time.Minute) }, sdk.ErrStaleTimestamp, ""},
	} {
		h, body, path, at := vectorHeader(), vectorBody, "/hooks/sources/cms/contentful", now
		tc.change(h, &body, &path, &at)
		err := VerifySignature(testSecret, "POST", path, h, []byte(body), at, time.Minute)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) || !strings.Contains(errText(err), tc.says) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.want, tc.says)
		}
	}
	if err := VerifySignature("another secret", "POST", "/hooks/sources/cms/contentful", vectorHeader(), []byte(vectorBody), now, time.Minute); !errors.Is(err, sdk.ErrBadSignature) {
		t.Fatalf("another secret: %v", err)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestFakeSignsAsContentful: the fake's signer agrees with Contentful's
// vector, so that the tests that use it test the real scheme.
func TestFakeSignsAsContentful(t *testing.T) {
	h := http.Header{}
	h.Set("Content-Type", "application/vnd.contentful.management.v1+json")
	h.Set("X-Contentful-Topic", "ContentManagement.Entry.publish")
	h.Set("X-Contentful-Webhook-Name", "synclayer")
	cf.Sign(testSecret, "POST", "/hooks/sources/cms/contentful", h, []byte(vectorBody), time.UnixMilli(vectorTime))
	if h.Get("X-Contentful-Signature") != vectorSignature || h.Get("X-Contentful-Signed-Headers") != vectorHeader().Get("X-Contentful-Signed-Headers") {
		t.Fatalf("the fake signs %v", h)
	}
}

func webhookOpts(api *cf.Server, cfg map[string]any, wh cf.Webhook, secret string, at time.Time) sdktest.WebhookOptions {
	h := wh.Header.Clone()
	if secret != "" {
		cf.Sign(secret, "POST", "/hooks/sources/"+sdktest.DefaultLayer+"/"+sdktest.DefaultSource, h, wh.Body, at)
	}
	return sdktest.WebhookOptions{Config: cfg, Header: h, Body: wh.Body}
}

func TestVerifyWebhook(t *testing.T) {
	api := space(t)
	h := sdktest.New(t, fast())
	cfg := config(api)
	cfg["webhook_secret"] = testSecret
	wh := api.EntryWebhook("ContentManagement.Entry.publish", "post-1")
	now := time.Now()

	if err := h.VerifyWebhook(t.Context(), webhookOpts(api, cfg, wh, testSecret, now)); err != nil {
		t.Fatalf("a signed call: %v", err)
	}
	for name, tc := range map[string]struct {
		secret string
		at     time.Time
		want   string
	}{
		"unsigned":     {"", now, "no X-Contentful-Signature header"},
		"other secret": {strings.Repeat("x", 64), now, "the signature does not match"},
		"stale":        {testSecret, now.Add(-SignatureTolerance - time.Minute), "too old or in the future"},
	} {
		if err := h.VerifyWebhook(t.Context(), webhookOpts(api, cfg, wh, tc.secret, tc.at)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	noTopic := wh
	noTopic.Header = wh.Header.Clone()
	noTopic.Header.Del("X-Contentful-Topic")
	if err := h.VerifyWebhook(t.Context(), webhookOpts(api, cfg, noTopic, testSecret, now)); err == nil || !strings.Contains(err.Error(), "X-Contentful-Topic") {
		t.Errorf("no topic: %v", err)
	}

	// Without webhook_secret, no payload webhook is accepted, signed or not.
	off := config(api)
	for _, secret := range []string{"", testSecret} {
		if err := h.VerifyWebhook(t.Context(), webhookOpts(api, off, wh, secret, now)); err == nil || !strings.Contains(err.Error(), "does not take payload webhooks") {
			t.Errorf("a source without webhook_secret: %v", err)
		}
	}
	if _, err := h.HandleWebhook(t.Context(), webhookOpts(api, off, wh, testSecret, now)); err == nil {
		t.Error("HandleWebhook of a source without webhook_secret succeeded")
	}
}

// TestWebhookStartsIncrementalRun: a verified webhook of a topic that
// changes published content asks the host, through the Watch stream, for
// a run of "content"; other topics do not; a webhook that arrives while
// no stream is open is delivered once one opens.
func TestWebhookStartsIncrementalRun(t *testing.T) {
	api := space(t)
	h := sdktest.New(t, fast())
	cfg := config(api)
	cfg["webhook_secret"] = testSecret
	now := time.Now()

	w := h.Watch(t.Context(), cfg)
	defer w.Stop()
	for _, topic := range []string{"ContentManagement.Entry.save", "ContentManagement.Entry.auto_save", "ContentManagement.ContentType.publish", "ContentManagement.Entry.publish"} {
		res, err := h.HandleWebhook(t.Context(), webhookOpts(api, cfg, api.EntryWebhook(topic, "post-1"), testSecret, now))
		if err != nil || len(res.Changes) != 0 {
			t.Fatalf("%s: %v %v", topic, err, res)
		}
	}
	ev, err := w.Next(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Syncs) != 1 || ev.Syncs[0] != SyncName || ev.Reason != "Contentful webhook ContentManagement.Entry.publish post-1" {
		t.Fatalf("event %+v", ev)
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}

	// Two webhooks while no stream is open: one event once it opens.
	for _, id := range []string{"post-1", "img-1"} {
		topic, wh := "ContentManagement.Entry.unpublish", api.EntryWebhook
		if id == "img-1" {
			topic, wh = "ContentManagement.Asset.publish", api.AssetWebhook
		}
		if _, err := h.HandleWebhook(t.Context(), webhookOpts(api, cfg, wh(topic, id), testSecret, now)); err != nil {
			t.Fatal(err)
		}
	}
	w2 := h.Watch(t.Context(), cfg)
	defer w2.Stop()
	ev, err = w2.Next(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Reason != "2 Contentful webhooks, the last: ContentManagement.Asset.publish img-1" {
		t.Fatalf("event %+v", ev)
	}

	// A source without webhook_secret does not watch.
	if err := h.Watch(t.Context(), config(api)).Wait(); err == nil || !strings.Contains(err.Error(), "watch") {
		t.Fatalf("watch without webhook_secret: %v", err)
	}
}

// TestSameShapeFromPollAndWebhook: the record a webhook-triggered run
// writes is the one a poll writes for the same entry.
func TestSameShapeFromPollAndWebhook(t *testing.T) {
	api := space(t)
	h := sdktest.New(t, fast())
	cfg := config(api)
	cfg["webhook_secret"] = testSecret
	cfg["locale"] = "de-DE"
	first := syncRun(t, h, cfg, true, nil)

	w := h.Watch(t.Context(), cfg)
	defer w.Stop()
	api.PutEntry("post-1", "blogPost", cf.Fields{
		"title":  {"en-US": "Hello again", "de-DE": "Hallo wieder"},
		"author": {"en-US": cf.Link("Entry", "ada")},
		"images": {"en-US": []any{cf.Link("Asset", "img-1")}},
	})
	wh := api.EntryWebhook("ContentManagement.Entry.publish", "post-1")
	if err := h.VerifyWebhook(t.Context(), webhookOpts(api, cfg, wh, testSecret, time.Now())); err != nil {
		t.Fatal(err)
	}
	if _, err := h.HandleWebhook(t.Context(), webhookOpts(api, cfg, wh, testSecret, time.Now())); err != nil {
		t.Fatal(err)
	}
	ev, err := w.Next(10 * time.Second)
	if err != nil || len(ev.Syncs) != 1 || ev.Syncs[0] != SyncName {
		t.Fatalf("watch event %+v %v", ev, err)
	}
	// The host runs the sync incrementally from its checkpoint.
	pushed := syncRun(t, h, cfg, false, first.Checkpoint)
	if got := changes(pushed); got != "BlogPost:post-1" {
		t.Fatalf("the webhook's run wrote %s", got)
	}
	polled := syncRun(t, h, cfg, true, nil)
	a, b := canonical(t, record(t, pushed, "BlogPost", "post-1")), canonical(t, record(t, polled, "BlogPost", "post-1"))
	if a != b {
		t.Fatalf("the same entry differs:\nwebhook %s\npoll    %s", a, b)
	}
	if !strings.Contains(a, `"title":"Hallo wieder"`) || !strings.Contains(a, `"author":"ada"`) || !strings.Contains(a, `"revision":2`) {
		t.Fatalf("record %s", a)
	}
}
