package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"

	"github.com/synclayer/synclayer/core/config"
)

// FormatNango is the notify format that sends Nango's sync webhooks (SPEC
// §13): the engine writes one delivery per model with Nango's body, and
// each is signed with X-Nango-Hmac-Sha256 instead of Standard Webhooks.
const FormatNango = config.NotifyFormatNango

// Headers of a delivery of format "nango".
const (
	// HeaderNangoHMAC is hex(HMAC-SHA256(secret, body)): what Nango's
	// verifyIncomingWebhookRequest checks.
	HeaderNangoHMAC = "X-Nango-Hmac-Sha256"
	// HeaderNangoSignature is hex(SHA-256(secret + body)), Nango's older
	// signature, for receivers still on the deprecated
	// verifyWebhookSignature (which hashes JSON.stringify of the parsed
	// body: the engine writes bodies that survive that round trip).
	HeaderNangoSignature = "X-Nango-Signature"
)

// NangoSignature returns the X-Nango-Hmac-Sha256 value of a body.
func NangoSignature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// signNango sets the Nango signature headers of a request.
func signNango(h http.Header, secret string, body []byte) {
	h.Set(HeaderNangoHMAC, NangoSignature(secret, body))
	legacy := sha256.New()
	legacy.Write([]byte(secret))
	legacy.Write(body)
	h.Set(HeaderNangoSignature, hex.EncodeToString(legacy.Sum(nil)))
}
