// Package sse streams a layer's event log as Server-Sent Events, for the
// API (GET /v1/layers/{layer}/events?follow=1) and the dashboard's live
// activity. Each event goes out as
//
//	id: <seq>
//	data: <the event as JSON, as GET …/events lists it>
//
// so a client that reconnects sends Last-Event-ID and resumes after it.
// Comments (": heartbeat") keep proxies from closing an idle stream. A
// stream lives at most Options.Lifetime, then ends; EventSource clients
// reconnect on their own (after the retry: the stream announces) and
// resume where they were. Every write has a deadline, so a client that
// stops reading is dropped instead of holding the handler.
package sse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/synclayer/synclayer/core/internal/redact"
	"github.com/synclayer/synclayer/core/store"
)

// Defaults of Options.
const (
	DefaultHeartbeat    = 15 * time.Second
	DefaultLifetime     = 10 * time.Minute
	DefaultWriteTimeout = 10 * time.Second
	DefaultRetry        = 3 * time.Second
	// batch is how many events one read of the log takes.
	batch = 200
)

// Options tune a stream; zero fields take the defaults.
type Options struct {
	// Heartbeat is the longest silence: a comment is sent after it.
	Heartbeat time.Duration
	// Lifetime bounds one connection; the client reconnects after it.
	Lifetime time.Duration
	// WriteTimeout bounds each write to the client.
	WriteTimeout time.Duration
	// Retry is the reconnection delay announced to EventSource clients.
	Retry time.Duration
}

func (o *Options) setDefaults() {
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Retry <= 0 {
		o.Retry = DefaultRetry
	}
}

type stopKey struct{}

// WithStop returns a context that carries stop: a stream served with it
// ends when stop is closed (the server is shutting down and must not wait
// for streams that never end on their own).
func WithStop(ctx context.Context, stop <-chan struct{}) context.Context {
	return context.WithValue(ctx, stopKey{}, stop)
}

func stopOf(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(stopKey{}).(<-chan struct{})
	return ch // nil: never
}

// ErrBadResume is returned by Resume for a Last-Event-ID or after= that is
// not an event sequence number.
var ErrBadResume = errors.New("Last-Event-ID and after must be event sequence numbers (integers of 0 or more)")

// Resume is where a stream starts: after the Last-Event-ID header when the
// client sends one (a reconnection), else after the query parameter
// after=, else after the newest event (only what happens from now on).
func Resume(r *http.Request, db store.Layer) (uint64, error) {
	v := strings.TrimSpace(r.Header.Get("Last-Event-ID"))
	if v == "" {
		v = r.URL.Query().Get("after")
	}
	if v == "" {
		return db.LastEventSeq()
	}
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		return 0, ErrBadResume
	}
	return n, nil
}

// Scrub takes host internals out of an event before it is shown.
func Scrub(ev *store.Event) {
	ev.Message = redact.Internals(ev.Message)
	for k, v := range ev.Fields {
		ev.Fields[k] = redact.Internals(v)
	}
}

// Serve streams db's events after seq until the client goes, the lifetime
// ends, a write fails or the context's stop (WithStop) closes. Headers are
// written first; an error after that can only end the stream.
func Serve(w http.ResponseWriter, r *http.Request, db store.Layer, after uint64, opts Options) {
	opts.setDefaults()
	rc := http.NewResponseController(w)
	// The connection may serve other requests after the stream: it must
	// not keep the last write's deadline.
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	write := func(s string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(opts.WriteTimeout))
		if _, err := w.Write([]byte(s)); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write(fmt.Sprintf("retry: %d\n: synclayer event log, after %d\n\n", opts.Retry.Milliseconds(), after)) {
		return
	}
	ctx := r.Context()
	stop := stopOf(ctx)
	end := time.NewTimer(opts.Lifetime)
	defer end.Stop()
	beat := time.NewTicker(opts.Heartbeat)
	defer beat.Stop()
	var b strings.Builder
	for {
		sig := db.EventSignal() // before the read: an append after it closes sig
		evs, err := db.Events(after, batch)
		if err != nil {
			write(": the event log could not be read; reconnect to resume\n\n")
			return
		}
		if len(evs) > 0 {
			b.Reset()
			for i := range evs {
				Scrub(&evs[i])
				data, err := json.Marshal(evs[i])
				if err != nil {
					return
				}
				fmt.Fprintf(&b, "id: %d\ndata: %s\n\n", evs[i].Seq, data)
				after = evs[i].Seq
			}
			if !write(b.String()) {
				return
			}
			beat.Reset(opts.Heartbeat)
			if len(evs) == batch {
				continue // more are waiting
			}
		}
		select {
		case <-sig:
		case <-beat.C:
			if !write(": heartbeat\n\n") {
				return
			}
		case <-end.C:
			return
		case <-ctx.Done():
			return
		case <-stop:
			return
		}
	}
}
