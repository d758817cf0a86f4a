package sdktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
)

// WatchEvent is one event of a Watch stream: the connector asking the host
// for a run.
type WatchEvent struct {
	// Syncs are the syncs to run; empty means every sync of the source.
	Syncs []string
	// Reason is why, as given with sdk.WithTriggerReason; may be empty.
	Reason string
}

// watchBuffer is how many events a WatchStream holds that the test has not
// received yet.
const watchBuffer = 64

// WatchStream is an open Watch call (see Harness.Watch).
type WatchStream struct {
	events  chan WatchEvent
	cancel  context.CancelFunc
	abandon chan struct{} // closed by Wait: stop delivering events
	ended   chan struct{} // closed when the stream has ended
	// Set before ended is closed:
	err      error // how the stream ended; nil for a clean end or ctx's
	canceled bool  // it ended because ctx ended or Stop was called

	calls *calls
	id    string
	done  chan struct{} // closed when the connector's Watch returned

	abandonOnce sync.Once
	waitOnce    sync.Once
	waitErr     error
}

// Watch opens the connector's Watch stream for cfg, as the host does for a
// source whose description says Watches, and delivers the events the
// connector triggers on Events, in order:
//
//	w := h.Watch(t.Context(), cfg)
//	defer w.Stop()
//	// make a change upstream
//	ev, err := w.Next(5 * time.Second)
//
// The stream ends when ctx ends or Stop is called (the host closing it), or
// when the connector's Watch returns by itself. A connector that does not
// watch (for this configuration) ends it at once: Next and Wait return its
// error, which says so. Always call Stop when done.
func (h *Harness) Watch(ctx context.Context, cfg map[string]any) *WatchStream {
	ctx, cancel := context.WithCancel(ctx)
	id, done := h.calls.start()
	w := &WatchStream{
		events: make(chan WatchEvent, watchBuffer), cancel: cancel,
		abandon: make(chan struct{}), ended: make(chan struct{}),
		calls: h.calls, id: id, done: done,
	}
	fail := func(err error) *WatchStream {
		w.err = err
		close(w.ended)
		close(w.events)
		return w
	}
	rc, err := h.runContext(cfg)
	if err != nil {
		return fail(err)
	}
	stream, err := h.client.Watch(metadata.AppendToOutgoingContext(ctx, callIDKey, id), &connectorv1.WatchRequest{Context: rc})
	if err != nil {
		return fail(callError(err))
	}
	go func() {
		defer close(w.events)
		defer close(w.ended)
		for {
			msg, err := stream.Recv()
			if err != nil {
				switch {
				case err == io.EOF:
				case ctx.Err() != nil:
					w.canceled = true
				default:
					w.err = callError(err)
				}
				return
			}
			ev := WatchEvent{Syncs: msg.GetSyncs(), Reason: msg.GetReason()}
			select {
			case w.events <- ev:
			case <-w.abandon: // nobody reads any more: drop it
			}
		}
	}()
	return w
}

// Events delivers the connector's events in order. It is closed once the
// stream has ended and every event before the end was received (after
// Wait or Stop, events the test had not received yet beyond a buffer of
// 64 are dropped).
func (w *WatchStream) Events() <-chan WatchEvent { return w.events }

// Next waits at most timeout for the next event. It fails when none came
// in time, or when the stream ended, with the connector's error if it
// failed.
func (w *WatchStream) Next(timeout time.Duration) (WatchEvent, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ev, ok := <-w.events:
		if !ok {
			if w.err != nil {
				return WatchEvent{}, fmt.Errorf("sdktest: the Watch stream ended: %w", w.err)
			}
			return WatchEvent{}, errors.New("sdktest: the Watch stream ended without an error")
		}
		return ev, nil
	case <-t.C:
		return WatchEvent{}, fmt.Errorf("sdktest: no watch event within %s", timeout)
	}
}

// Wait waits until the stream has ended and returns how: nil when the
// connector's Watch returned nil, or because ctx ended or Stop was called,
// else the connector's error (a panic reads "connector panicked: ...").
// When the stream was closed by the test, Wait also waits for the
// connector's Watch to return, at most CancelGrace, and fails if it does
// not. Events not yet received beyond a buffer of 64 are dropped.
func (w *WatchStream) Wait() error {
	w.abandonOnce.Do(func() { close(w.abandon) })
	<-w.ended
	w.waitOnce.Do(func() {
		w.waitErr = w.err
		if w.canceled && w.calls.inConnector(w.id) {
			select {
			case <-w.done:
			case <-time.After(CancelGrace):
				w.waitErr = fmt.Errorf("sdktest: the connector's Watch did not return within %s of its stream being closed; return when ctx is done", CancelGrace)
			}
		}
		w.calls.end(w.id) // when the call never reached the connector
		w.cancel()
	})
	return w.waitErr
}

// Stop closes the stream as the host does (the connector's ctx ends),
// then returns Wait's answer: nil unless the connector had failed before,
// or does not return from Watch within CancelGrace. It may be called more
// than once.
func (w *WatchStream) Stop() error {
	w.cancel()
	return w.Wait()
}
