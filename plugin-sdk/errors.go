package sdk

import (
	"errors"
	"net"
)

// Transient marks err as temporary: the upstream is down, overloaded or
// rate-limiting, or could not be reached, and the same call may succeed
// later. The host then tries again with backoff (a payload webhook stays in
// its inbox and is handled again; a run is retried per its retry block)
// instead of giving up on it. Return it from Sync or HandleWebhook:
//
//	if err := db.Ping(ctx); err != nil {
//		return sdk.Transient(fmt.Errorf("postgres at %s: %w", host, err))
//	}
//
// An *HTTPError of a 429 or 5xx answer (the HTTPClient's, after its own
// retries), and a network failure (connection refused or reset, a timeout,
// a temporary DNS failure) are transient without it. Transient(nil) is nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err}
}

type transientError struct{ err error }

func (e *transientError) Error() string   { return e.err.Error() }
func (e *transientError) Unwrap() error   { return e.err }
func (e *transientError) Transient() bool { return true }

// IsTransient tells whether err, or an error it wraps, is temporary: marked
// with Transient, an *HTTPError whose Transient method says so, or a
// network failure: a *net.OpError (connection refused, reset, …), a
// net.Error that timed out, or a *net.DNSError that is temporary or timed
// out (an unknown host is not). The SDK answers the host with the same
// verdict.
func IsTransient(err error) bool {
	var t interface{ Transient() bool }
	if errors.As(err, &t) {
		return t.Transient()
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.IsTemporary || dns.IsTimeout
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Transient tells whether the answer is a temporary failure of the
// upstream: 429 Too Many Requests, or a 5xx other than 501 Not Implemented.
func (e *HTTPError) Transient() bool {
	return e.StatusCode == 429 || (e.StatusCode >= 500 && e.StatusCode != 501)
}

// ErrUnauthorized is an authentication failure: the upstream refused the
// credentials of the config (a bad, expired or revoked token, missing
// permissions). Return it, or an error made with Unauthorized, from Sync,
// Check or HandleWebhook; the host then marks the connection that ran as
// needing attention (connection.needs_attention) instead of retrying a run
// that cannot succeed until someone fixes its credentials. An *HTTPError of
// a 401 or 403 answer is one without it.
var ErrUnauthorized = errors.New("the upstream refused the credentials")

// Unauthorized marks err as an authentication failure (see
// ErrUnauthorized):
//
//	if resp.StatusCode == http.StatusUnauthorized {
//		return sdk.Unauthorized(fmt.Errorf("crm: token refused: %s", body))
//	}
//
// Unauthorized(nil) is nil.
func Unauthorized(err error) error {
	if err == nil {
		return nil
	}
	return &unauthorizedError{err}
}

type unauthorizedError struct{ err error }

func (e *unauthorizedError) Error() string      { return e.err.Error() }
func (e *unauthorizedError) Unwrap() error      { return e.err }
func (e *unauthorizedError) Unauthorized() bool { return true }

// IsUnauthorized tells whether err, or an error it wraps, is an
// authentication failure: ErrUnauthorized, marked with Unauthorized, or an
// *HTTPError of a 401 or 403 answer.
func IsUnauthorized(err error) bool {
	if errors.Is(err, ErrUnauthorized) {
		return true
	}
	var u interface{ Unauthorized() bool }
	return errors.As(err, &u) && u.Unauthorized()
}

// Unauthorized tells whether the answer refused the credentials: 401
// Unauthorized or 403 Forbidden.
func (e *HTTPError) Unauthorized() bool {
	return e.StatusCode == 401 || e.StatusCode == 403
}
