package sdk

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Errors of the webhook signature helpers; match them with errors.Is.
var (
	// ErrMissingSignature: the request carries no signature.
	ErrMissingSignature = errors.New("the request is not signed")
	// ErrBadSignature: no signature of the request matches.
	ErrBadSignature = errors.New("the signature does not match")
	// ErrStaleTimestamp: the request's timestamp is outside the tolerance.
	ErrStaleTimestamp = errors.New("the request's timestamp is too old or in the future")
)

// SignatureEncoding is how an HMAC is written in a header.
type SignatureEncoding int

// Encodings of an HMAC.
const (
	// Hex is lower- or upper-case hexadecimal (GitHub, Shopify's
	// X-Hub-Signature style).
	Hex SignatureEncoding = iota
	// Base64 is standard or URL base64, padded or not (Shopify, Standard
	// Webhooks).
	Base64
)

// HMACSignature signs and verifies webhook bodies with an HMAC, the scheme
// most APIs use:
//
//	sig := sdk.HMACSignature{Secret: []byte(secret), Prefix: "sha256="}
//	err := sig.VerifyHeader(req.Header, "X-Signature-256", req.Body)
//
// The comparison is constant-time.
type HMACSignature struct {
	// Secret is the shared key.
	Secret []byte
	// Hash is the hash function (default sha256.New).
	Hash func() hash.Hash
	// Encoding is how the MAC is written (default Hex).
	Encoding SignatureEncoding
	// Prefix precedes the MAC in the header ("sha256=", "v1,"); when set, a
	// signature without it does not match.
	Prefix string
}

func (s HMACSignature) mac(payload []byte) []byte {
	h := s.Hash
	if h == nil {
		h = sha256.New
	}
	m := hmac.New(h, s.Secret)
	m.Write(payload)
	return m.Sum(nil)
}

// Sign returns the signature of payload: Prefix and the encoded MAC.
func (s HMACSignature) Sign(payload []byte) string {
	mac := s.mac(payload)
	if s.Encoding == Base64 {
		return s.Prefix + base64.StdEncoding.EncodeToString(mac)
	}
	return s.Prefix + hex.EncodeToString(mac)
}

// Verify checks signature against payload. signature may hold several
// signatures separated by spaces (as during a secret rotation); one match
// is enough. An empty signature is ErrMissingSignature, no match
// ErrBadSignature.
func (s HMACSignature) Verify(payload []byte, signature string) error {
	sigs := strings.Fields(signature)
	if len(sigs) == 0 {
		return ErrMissingSignature
	}
	want := s.mac(payload)
	ok := false
	for _, sig := range sigs {
		enc, found := strings.CutPrefix(sig, s.Prefix)
		if !found {
			continue
		}
		got, err := s.decode(enc)
		if err != nil {
			continue
		}
		// Check them all, so the time does not tell which one matched.
		if hmac.Equal(got, want) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	return nil
}

func (s HMACSignature) decode(enc string) ([]byte, error) {
	if s.Encoding == Base64 {
		for _, e := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := e.DecodeString(enc); err == nil {
				return b, nil
			}
		}
		return nil, errors.New("not base64")
	}
	return hex.DecodeString(enc)
}

// VerifyHeader verifies the signature in header name of h against payload.
// Its errors name the header and wrap ErrMissingSignature or
// ErrBadSignature.
func (s HMACSignature) VerifyHeader(h http.Header, name string, payload []byte) error {
	v := strings.TrimSpace(h.Get(name))
	if v == "" {
		return fmt.Errorf("no %s header: %w", name, ErrMissingSignature)
	}
	if err := s.Verify(payload, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// CheckTimestamp checks that a request's timestamp (Unix seconds, or RFC
// 3339) is within tolerance of now, either way, so that a captured request
// cannot be replayed later. Sign the timestamp along with the body (as
// Stripe and Standard Webhooks do) for this to mean anything. A zero
// tolerance accepts any time. Errors wrap ErrStaleTimestamp, or say the
// timestamp is missing or unreadable.
func CheckTimestamp(ts string, tolerance time.Duration, now time.Time) error {
	ts = strings.TrimSpace(ts)
	if ts == "" {
		return fmt.Errorf("no timestamp: %w", ErrMissingSignature)
	}
	var t time.Time
	if sec, err := strconv.ParseFloat(ts, 64); err == nil {
		if math.IsNaN(sec) || math.IsInf(sec, 0) {
			return fmt.Errorf("timestamp %q is not a time", ts)
		}
		whole, frac := math.Modf(sec)
		t = time.Unix(int64(whole), int64(frac*1e9))
	} else if t, err = time.Parse(time.RFC3339Nano, ts); err != nil {
		return fmt.Errorf("timestamp %q is neither Unix seconds nor RFC 3339", ts)
	}
	if tolerance <= 0 {
		return nil
	}
	if d := now.Sub(t); d > tolerance || d < -tolerance {
		return fmt.Errorf("timestamp %s is %s away from now, more than the %s allowed: %w",
			t.UTC().Format(time.RFC3339), d.Abs().Round(time.Second), tolerance, ErrStaleTimestamp)
	}
	return nil
}
