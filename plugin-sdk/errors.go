package sdk

import "errors"

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
// retries) is transient without it. Transient(nil) is nil.
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
// with Transient, or an *HTTPError whose Transient method says so. The SDK
// answers the host with the same verdict.
func IsTransient(err error) bool {
	var t interface{ Transient() bool }
	return errors.As(err, &t) && t.Transient()
}

// Transient tells whether the answer is a temporary failure of the
// upstream: 429 Too Many Requests, or a 5xx other than 501 Not Implemented.
func (e *HTTPError) Transient() bool {
	return e.StatusCode == 429 || (e.StatusCode >= 500 && e.StatusCode != 501)
}
