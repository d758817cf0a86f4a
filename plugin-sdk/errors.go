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
