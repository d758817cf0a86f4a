package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// A payload webhook from Contentful (a publish, unpublish or delete of an
// entry or asset) starts an incremental run of the sync, rather than being
// applied as it is: the Sync API then brings the change in the same shape
// as a poll does, with links and locales resolved the same way, and the
// sync token stays the one record of what the source has seen.
//
// The connector asks for that run through the protocol's Watch call
// (sdk.ConnectorWithWatch): a source with a webhook_secret watches, the
// host keeps a Watch stream open to the plugin (one process per source),
// HandleWebhook signals the source's relay, and Watch asks the host for a
// run of "content" through its queue, where a burst of webhooks coalesces
// into few runs. A signal that arrives while no stream is open is kept
// until one is.

// Headers of Contentful's webhook calls and request verification.
const (
	TopicHeader         = "X-Contentful-Topic"
	SignatureHeader     = "X-Contentful-Signature"
	SignedHeadersHeader = "X-Contentful-Signed-Headers"
	TimestampHeader     = "X-Contentful-Timestamp"
)

// SignatureTolerance is how far from now the X-Contentful-Timestamp of a
// webhook call may be, either way. A replayed call within it only starts
// one more incremental run, which changes nothing.
const SignatureTolerance = 5 * time.Minute

// WebhooksEnabled implements sdk.ConnectorWithConfiguredWebhooks: only a
// source with a webhook_secret takes payload webhooks; for the others the
// host answers 404 and never asks VerifyWebhook.
func (c *Contentful) WebhooksEnabled(ctx context.Context, req *sdk.ConfigRequest) (bool, error) {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return false, err
	}
	return cfg.WebhookSecret != "", nil
}

// VerifyWebhook implements sdk.ConnectorWithWebhooks: the source must have
// a webhook_secret, and the call must carry Contentful's request
// verification signed with it (see VerifySignature) and a topic.
func (c *Contentful) VerifyWebhook(ctx context.Context, req *sdk.WebhookRequest) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	if cfg.WebhookSecret == "" {
		return errNoSecret
	}
	if err := VerifySignature(cfg.WebhookSecret, req.Method, req.Path, req.Header, req.Body, time.Now(), SignatureTolerance); err != nil {
		return err
	}
	if strings.TrimSpace(req.Header.Get(TopicHeader)) == "" {
		return fmt.Errorf("no %s header: not a Contentful webhook call", TopicHeader)
	}
	return nil
}

// HandleWebhook implements sdk.ConnectorWithWebhooks: a topic that changes
// what the Content Delivery API serves (publish, unpublish or delete of an
// entry or asset) asks for an incremental run; other topics (save,
// auto_save, archive, content types, …) change nothing. It writes no
// record itself; calling it again asks for one more run, which is harmless.
func (c *Contentful) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest, w *sdk.Writer) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	if cfg.WebhookSecret == "" {
		return errNoSecret
	}
	topic := strings.TrimSpace(req.Header.Get(TopicHeader))
	if !changesDelivery(topic) {
		req.Logger.Debug("ignoring a webhook whose topic changes no published content", "topic", topic)
		return nil
	}
	reason := "Contentful webhook " + topic
	var body struct {
		Sys struct {
			ID string `json:"id"`
		} `json:"sys"`
	}
	if json.Unmarshal(req.Body, &body) == nil && idPattern.MatchString(body.Sys.ID) {
		reason += " " + body.Sys.ID
	}
	c.relays.get(req.Layer, req.Source).signal(reason)
	req.Logger.Info("a webhook asks for an incremental run", "topic", topic)
	return nil
}

// changesDelivery tells whether a topic (ContentManagement.Entry.publish)
// changes what the Content Delivery API serves.
func changesDelivery(topic string) bool {
	parts := strings.Split(topic, ".")
	if len(parts) != 3 {
		return false
	}
	return (parts[1] == "Entry" || parts[1] == "Asset") &&
		(parts[2] == "publish" || parts[2] == "unpublish" || parts[2] == "delete")
}

// Watch implements sdk.ConnectorWithWatch: it asks the host for a run of
// the sync whenever HandleWebhook signals the source, until ctx ends. A
// source without webhook_secret has nothing to watch (Configure does not
// set Watches for it).
func (c *Contentful) Watch(ctx context.Context, req *sdk.WatchRequest, trigger func(context.Context, ...string) error) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	if cfg.WebhookSecret == "" {
		return nil
	}
	r := c.relays.get(req.Layer, req.Source)
	for {
		if reason, ok := r.take(); ok {
			if err := trigger(sdk.WithTriggerReason(ctx, reason), SyncName); err != nil {
				r.signal(reason) // for the next stream
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		}
	}
}

// relays holds a relay per source.
type relays struct {
	mu sync.Mutex
	m  map[string]*relay
}

func (rs *relays) get(layer, source string) *relay {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.m == nil {
		rs.m = map[string]*relay{}
	}
	k := layer + "\x00" + source
	r := rs.m[k]
	if r == nil {
		r = &relay{wake: make(chan struct{}, 1)}
		rs.m[k] = r
	}
	return r
}

// relay carries "run the sync" from HandleWebhook to Watch. Signals that
// arrive before Watch takes them merge into one: the run it asks for
// starts after all of them, so it brings all their changes.
type relay struct {
	mu      sync.Mutex
	pending int    // signals not yet taken
	reason  string // the last one's
	wake    chan struct{}
}

func (r *relay) signal(reason string) {
	r.mu.Lock()
	r.pending++
	r.reason = reason
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// take returns the reason of the pending signals and clears them.
func (r *relay) take() (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == 0 {
		return "", false
	}
	reason := r.reason
	if r.pending > 1 {
		reason = fmt.Sprintf("%d Contentful webhooks, the last: %s", r.pending, strings.TrimPrefix(reason, "Contentful webhook "))
	}
	r.pending, r.reason = 0, ""
	return reason, true
}

// VerifySignature checks Contentful's request verification of a webhook
// call: X-Contentful-Signature must be the hex HMAC-SHA256, keyed with
// secret, of the canonical request
//
//	METHOD "\n" path "\n" name:value;name:value… "\n" body
//
// where the headers are those X-Contentful-Signed-Headers names (lower
// case, values trimmed, sorted by name), which must include
// X-Contentful-Timestamp and X-Contentful-Signed-Headers; the path is
// URI-encoded as JavaScript's encodeURI does. The timestamp (Unix
// milliseconds) must be within tolerance of now. Errors wrap
// sdk.ErrMissingSignature, sdk.ErrBadSignature or sdk.ErrStaleTimestamp.
//
// The path is the one Contentful called: a proxy in front of the host
// that rewrites paths breaks the signature.
func VerifySignature(secret, method, path string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	sig := strings.TrimSpace(h.Get(SignatureHeader))
	if sig == "" {
		return fmt.Errorf("no %s header (turn on request verification in the webhook settings of the space): %w", SignatureHeader, sdk.ErrMissingSignature)
	}
	var names []string
	for _, n := range strings.Split(h.Get(SignedHeadersHeader), ",") {
		if n = strings.ToLower(strings.TrimSpace(n)); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, must := range []string{TimestampHeader, SignedHeadersHeader} {
		if !slices.Contains(names, strings.ToLower(must)) {
			return fmt.Errorf("%s does not list %s: %w", SignedHeadersHeader, must, sdk.ErrBadSignature)
		}
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("%s is not hexadecimal: %w", SignatureHeader, sdk.ErrBadSignature)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(CanonicalRequest(method, path, h, names, body)))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Errorf("%s: %w (is webhook_secret the space's signing secret?)", SignatureHeader, sdk.ErrBadSignature)
	}
	ts := strings.TrimSpace(h.Get(TimestampHeader))
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%s %q is not Unix milliseconds: %w", TimestampHeader, ts, sdk.ErrBadSignature)
	}
	at := time.UnixMilli(ms)
	if d := now.Sub(at); d > tolerance || d < -tolerance {
		return fmt.Errorf("%s %s is %s away from now, more than the %s allowed: %w",
			TimestampHeader, at.UTC().Format(time.RFC3339), d.Abs().Round(time.Second), tolerance, sdk.ErrStaleTimestamp)
	}
	return nil
}

// CanonicalRequest is the text Contentful signs: the method, the encoded
// path, the signed headers (names lower case, values trimmed, sorted by
// name, "name:value" joined by ";"; a listed header the request lacks is
// left out) and the body, joined by newlines.
func CanonicalRequest(method, path string, h http.Header, signed []string, body []byte) string {
	names := slices.Clone(signed)
	sort.Strings(names)
	var pairs []string
	for _, n := range names {
		if vs := h.Values(n); len(vs) > 0 {
			pairs = append(pairs, n+":"+strings.TrimSpace(strings.Join(vs, ", ")))
		}
	}
	return strings.Join([]string{strings.ToUpper(method), encodeURI(path), strings.Join(pairs, ";"), string(body)}, "\n")
}

// encodeURI escapes s as JavaScript's encodeURI does: every byte but
// letters, digits and -_.!~*'();/?:@&=+$,# is percent-encoded (UTF-8,
// upper-case hex).
func encodeURI(s string) string {
	const keep = "-_.!~*'();/?:@&=+$,#"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(keep, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
