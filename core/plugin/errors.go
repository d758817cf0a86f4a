package plugin

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrTooLarge is wrapped by the errors of a plugin that sent more than the
// host takes (a message past MaxMessageBytes, a batch past
// MaxBatchChanges, a webhook past its limits). It is permanent.
var ErrTooLarge = errors.New("too large")

// IsTransient tells whether err, from a call of this package, is worth
// trying again later (with backoff): the call timed out (the plugin was
// killed and starts again on next use), the plugin crashed or was killed,
// the connection to it was lost, or the connector said the failure is
// temporary (its upstream answered 5xx or 429, or could not be reached; see
// sdk.Transient). Anything else is permanent, as trying again would give
// the same answer: an error of the connector's own, a limit passed, a
// request the host got wrong, a call the host cancelled itself.
//
// It looks through wrapping (errors.As), so keep the error's chain when
// adding context: fmt.Errorf("…: %w", err).
func IsTransient(err error) bool {
	var t interface{ Transient() bool }
	return errors.As(err, &t) && t.Transient()
}

// CrashError is a call that failed because the plugin process died, or
// the host killed it (Err then says why). It is transient.
type CrashError struct {
	Plugin, Call string
	Err          error
}

func (e *CrashError) Error() string {
	return fmt.Sprintf("plugin %q crashed during %s (the host will start it again for the next run): %v", e.Plugin, e.Call, e.Err)
}

func (e *CrashError) Unwrap() error { return e.Err }

// Transient implements the interface IsTransient looks for: true.
func (e *CrashError) Transient() bool { return true }

// TimeoutError is a call that did not finish in time, or a sync that sent
// nothing for longer than its progress timeout. A plugin that does not
// answer may be hung, so the host killed its process group: the next use of
// the source starts it again. It is transient and wraps
// context.DeadlineExceeded.
type TimeoutError struct {
	Plugin, Call string
	// Reason says which limit passed.
	Reason string
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("plugin %q: %s: %s; the host killed the plugin and starts it again on next use", e.Plugin, e.Call, e.Reason)
}

// Unwrap returns context.DeadlineExceeded.
func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }

// Transient implements the interface IsTransient looks for: true.
func (e *TimeoutError) Transient() bool { return true }

// UnavailableError is a call whose connection to the plugin was lost while
// the process still runs. It is transient.
type UnavailableError struct {
	Plugin, Call, Message string
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("plugin %q: %s: connection lost: %s", e.Plugin, e.Call, e.Message)
}

// Transient implements the interface IsTransient looks for: true.
func (e *UnavailableError) Transient() bool { return true }

// ConnectorError is an error the connector itself reported.
type ConnectorError struct {
	Plugin, Call, Message string
	// Temporary is set when the connector marked the failure as temporary
	// (an upstream 5xx or 429, an upstream it could not reach): the same
	// call may succeed later.
	Temporary bool
	// Unauthorized is set when the upstream refused the credentials (the
	// SDK's ErrUnauthorized, an upstream 401 or 403).
	Unauthorized bool
}

// IsUnauthorized tells whether err, from a call of this package, is an
// authentication failure the connector reported (sdk.ErrUnauthorized, an
// upstream 401 or 403): the config's credentials need fixing.
func IsUnauthorized(err error) bool {
	var ce *ConnectorError
	return errors.As(err, &ce) && ce.Unauthorized
}

func (e *ConnectorError) Error() string {
	return fmt.Sprintf("%s: %s", e.Call, e.Message)
}

// Transient implements the interface IsTransient looks for: whether the
// connector marked the failure temporary.
func (e *ConnectorError) Transient() bool { return e.Temporary }

// wrap turns the error of a call made with ctx into a plain error: a
// *CrashError when the process died, a *TimeoutError (after killing the
// plugin) when ctx's deadline passed or idle reports that the progress
// timeout fired, an *UnavailableError when the connection dropped, a
// *ConnectorError for the connector's own failure.
func (i *Instance) wrap(ctx context.Context, call string, err error, idle *watchdog) error {
	if err == nil {
		return nil
	}
	if ce := i.crashed(call, err); ce != nil {
		return ce
	}
	if idle.hasFired() {
		return i.timedOut(call, fmt.Sprintf("no batch, checkpoint, progress or log message for %s (the sync's progress_timeout)", idle.d))
	}
	if deadlinePassed(ctx, err) {
		reason := "its deadline passed"
		if ctx.Err() != nil {
			reason = context.Cause(ctx).Error()
		}
		return i.timedOut(call, reason)
	}
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.Unavailable:
			// The connection dropped: most likely the process died and
			// go-plugin has not noticed yet. Give it a moment.
			for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if ce := i.crashed(call, err); ce != nil {
					return ce
				}
			}
			return &UnavailableError{Plugin: i.spec.Plugin, Call: call, Message: s.Message()}
		case codes.Canceled:
			return fmt.Errorf("plugin %q: %s: %w", i.spec.Plugin, call, context.Canceled)
		case codes.ResourceExhausted:
			return fmt.Errorf("plugin %q: %s: a message between the host and the plugin passed the limit of %d MiB (a batch of changes is one message; a record may be at most 4 MiB): %s: %w",
				i.spec.Plugin, call, MaxMessageBytes>>20, s.Message(), ErrTooLarge)
		case codes.Aborted:
			// The SDK's answer to an error marked temporary.
			return &ConnectorError{Plugin: i.spec.Plugin, Call: call, Message: s.Message(), Temporary: true}
		case codes.Unauthenticated:
			// The SDK's answer to an authentication failure.
			return &ConnectorError{Plugin: i.spec.Plugin, Call: call, Message: s.Message(), Unauthorized: true}
		}
		return &ConnectorError{Plugin: i.spec.Plugin, Call: call, Message: s.Message()}
	}
	return fmt.Errorf("plugin %q: %s: %w", i.spec.Plugin, call, err)
}

// deadlinePassed tells whether a call failed because ctx's deadline
// passed. The plugin sees the same deadline (gRPC propagates it) and may
// answer DeadlineExceeded a moment before the host's own timer fires: then
// wait for it, briefly, so that the cause is the host's.
func deadlinePassed(ctx context.Context, err error) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	dl, ok := ctx.Deadline()
	if !ok || status.Code(err) != codes.DeadlineExceeded {
		return false
	}
	if wait := time.Until(dl); wait < time.Second {
		// ctx's own timer fires at dl; on a loaded machine it may run
		// late, so the bound is generous (it is only reached if the
		// plugin lied about the deadline).
		t := time.NewTimer(wait + 5*time.Second)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return true
}

// timedOut kills the plugin after a call timed out and returns the error.
func (i *Instance) timedOut(call, reason string) error {
	i.kill(fmt.Sprintf("killed: %s timed out: %s", call, reason))
	return &TimeoutError{Plugin: i.spec.Plugin, Call: call, Reason: reason}
}

// crashed returns a CrashError when the process is dead (with the host's
// reason when the host killed it), else nil.
func (i *Instance) crashed(call string, err error) error {
	if reason := i.killed.Load(); reason != nil {
		return &CrashError{Plugin: i.spec.Plugin, Call: call, Err: errors.New(*reason)}
	}
	if i.client.Exited() {
		return &CrashError{Plugin: i.spec.Plugin, Call: call, Err: err}
	}
	return nil
}

// watchdog cancels a stream that has waited longer than d for its next
// message. Armed only while waiting for the plugin, so that a host slow to
// consume does not count against the plugin.
type watchdog struct {
	d     time.Duration
	t     *time.Timer
	fired atomic.Bool
}

func newWatchdog(d time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{d: d}
	w.t = time.AfterFunc(d, func() { w.fired.Store(true); cancel() })
	return w
}

// arm starts (again) the wait for the next message.
func (w *watchdog) arm() {
	if w != nil {
		w.t.Reset(w.d)
	}
}

// disarm stops the wait: a message arrived.
func (w *watchdog) disarm() {
	if w != nil {
		w.t.Stop()
	}
}

func (w *watchdog) hasFired() bool {
	return w != nil && w.fired.Load()
}
