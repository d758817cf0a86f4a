package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/synclayer/synclayer/core/store"
)

// Headers of a delivery, besides the Standard Webhooks ones.
const (
	HeaderEvent = "X-Synclayer-Event"
	userAgent   = "synclayer-notify/1"
)

// maxErrorBody is how much of a failed answer's body an attempt keeps.
const maxErrorBody = 200

// send makes one attempt to deliver d to t. When stop ends (cancels
// stop) before the answer, the attempt is cut: nothing is recorded.
func (n *Notifier) send(stop context.Context, t *target, d *store.Delivery) result {
	at := n.opts.Now().UTC()
	r := result{attempt: store.Attempt{At: at}}
	body := d.Body
	if t.cfg.Format == FormatSlack {
		body = slackMessage(d)
	}
	ctx, cancel := context.WithTimeout(stop, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.cfg.URL, bytes.NewReader(body))
	if err != nil {
		// config.Load checks URLs; never echo one (it may be a credential).
		r.attempt.Error = "invalid endpoint URL"
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderEvent, d.Type)
	if t.cfg.Format == FormatNango {
		signNango(req.Header, t.cfg.Secret, body)
	}
	if t.signer != nil {
		// webhook-id is the event's id: the same on every attempt, so that
		// a receiver can drop a delivery it has had before.
		sig, err := t.signer.Sign(d.EventID, at, body)
		if err != nil {
			r.attempt.Error = "cannot sign the event"
			return r
		}
		req.Header.Set(standardwebhooks.HeaderWebhookID, d.EventID)
		req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(at.Unix(), 10))
		req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	}
	start := time.Now()
	resp, err := n.client.Do(req)
	if err != nil {
		r.attempt.LatencyMS = time.Since(start).Milliseconds()
		switch {
		case stop.Err() != nil:
			r.cut = true
		case errors.Is(err, context.DeadlineExceeded):
			r.attempt.Error = fmt.Sprintf("no answer within %s", n.opts.Timeout)
		default:
			r.attempt.Error = requestError(err, t.cfg.URL)
		}
		return r
	}
	defer resp.Body.Close()
	r.attempt.Status = resp.StatusCode
	// Read a little of the body, so that a failure says why and the
	// connection can be reused; the latency includes it.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	r.attempt.LatencyMS = time.Since(start).Milliseconds()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		r.ok = true
	case resp.StatusCode == http.StatusGone:
		r.gone = true
		r.attempt.Error = "410 Gone: delivery to this endpoint stopped"
	default:
		r.attempt.Error = statusError(resp, head)
		r.retryAfter = retryAfter(resp.Header.Get("Retry-After"), at)
	}
	return r
}

// statusError describes a non-2xx answer with the start of its body.
func statusError(resp *http.Response, body []byte) string {
	msg := "the endpoint answered " + resp.Status
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		msg += " (redirects are not followed)"
	}
	s := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, string(body))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxErrorBody {
		s = strings.ToValidUTF8(s[:maxErrorBody], "") + "…"
	}
	if s != "" {
		msg += ": " + s
	}
	return msg
}

// requestError describes a request that got no answer, without the URL
// (a Slack webhook URL is a credential).
func requestError(err error, u string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if u != "" {
		msg = strings.ReplaceAll(msg, u, "<url>")
	}
	return msg
}

// retryAfter parses a Retry-After header: seconds, or an HTTP date. It
// returns 0 when absent or unusable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(365*24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
