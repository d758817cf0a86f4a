package wire

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
)

// Server implements connectorv1.ConnectorServer over a Handler.
type Server struct {
	connectorv1.UnimplementedConnectorServer
	h     Handler
	log   hclog.Logger // stderr, hclog JSON: outside a stream
	level hclog.Level  // level of the stream loggers
}

// NewServer returns a Server. log is the stderr logger used outside streams
// (Describe, Check, VerifyWebhook, panics); level filters the loggers that
// write into streams.
func NewServer(h Handler, log hclog.Logger, level hclog.Level) *Server {
	return &Server{h: h, log: log, level: level}
}

var _ connectorv1.ConnectorServer = (*Server)(nil)

// Describe implements connectorv1.ConnectorServer.
func (s *Server) Describe(ctx context.Context, req *connectorv1.DescribeRequest) (res *connectorv1.DescribeResponse, err error) {
	var rc *RunContext
	if c := req.GetContext(); c != nil && len(c.GetConfig()) > 0 {
		x := runContextFromProto(c)
		rc = &x
	}
	log := s.log
	if rc != nil {
		log = log.With("layer", rc.Layer, "source", rc.Source)
	}
	var d *Description
	err = s.guard("Describe", func() error {
		var err error
		d, err = s.h.Describe(ctx, rc, log)
		return err
	})
	if err != nil {
		return nil, toStatus(ctx, err)
	}
	res, err = describeToProto(d)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return res, nil
}

// Check implements connectorv1.ConnectorServer. A failed check is an answer
// (ok=false with the connector's message), not an RPC error.
func (s *Server) Check(ctx context.Context, req *connectorv1.CheckRequest) (*connectorv1.CheckResponse, error) {
	rc := runContextFromProto(req.GetContext())
	log := s.log.With("layer", rc.Layer, "source", rc.Source)
	err := s.guard("Check", func() error { return s.h.Check(ctx, &rc, log) })
	if err != nil {
		return &connectorv1.CheckResponse{Ok: false, Message: err.Error()}, nil
	}
	return &connectorv1.CheckResponse{Ok: true}, nil
}

// Sync implements connectorv1.ConnectorServer.
func (s *Server) Sync(req *connectorv1.SyncRequest, stream connectorv1.Connector_SyncServer) error {
	ctx := stream.Context()
	out := NewStream(stream.Send, s.log)
	defer out.Close()
	call := &SyncCall{
		RunContext: runContextFromProto(req.GetContext()),
		Sync:       req.GetSync(),
		Models:     req.GetModels(),
		Full:       req.GetFull(),
		Resume:     req.GetResume(),
		Checkpoint: req.GetCheckpoint(),
	}
	call.Logger = out.Logger(s.level).With("layer", call.Layer, "source", call.Source, "sync", call.Sync)
	err := s.guard("Sync", func() error { return s.h.Sync(ctx, call, out) })
	if err == nil {
		err = out.Flush()
	}
	return toStatus(ctx, err)
}

// VerifyWebhook implements connectorv1.ConnectorServer. A rejected request
// is an answer (ok=false with the reason).
func (s *Server) VerifyWebhook(ctx context.Context, req *connectorv1.WebhookRequest) (*connectorv1.VerifyWebhookResponse, error) {
	call := webhookFromProto(req)
	call.Logger = s.log.With("layer", call.Layer, "source", call.Source)
	err := s.guard("VerifyWebhook", func() error { return s.h.VerifyWebhook(ctx, call) })
	if errors.Is(err, ErrUnimplemented) {
		return nil, toStatus(ctx, err)
	}
	if err != nil {
		return &connectorv1.VerifyWebhookResponse{Ok: false, Reason: err.Error()}, nil
	}
	return &connectorv1.VerifyWebhookResponse{Ok: true}, nil
}

// HandleWebhook implements connectorv1.ConnectorServer.
func (s *Server) HandleWebhook(req *connectorv1.WebhookRequest, stream connectorv1.Connector_HandleWebhookServer) error {
	ctx := stream.Context()
	out := NewStream(stream.Send, s.log)
	defer out.Close()
	call := webhookFromProto(req)
	call.Logger = out.Logger(s.level).With("layer", call.Layer, "source", call.Source)
	err := s.guard("HandleWebhook", func() error { return s.h.HandleWebhook(ctx, call, out) })
	if err == nil {
		err = out.Flush()
	}
	return toStatus(ctx, err)
}

// Watch implements connectorv1.ConnectorServer. The handler's Watch runs
// in its own goroutine while this one sends its events: gRPC streams allow
// one sender at a time, and an Emit waiting for a slow host can give up
// when its own ctx ends. The call returns once the handler's Watch has
// returned: when the host closed the stream (ctx ends), on the handler's
// error, or with OK when it had nothing more to watch.
func (s *Server) Watch(req *connectorv1.WatchRequest, stream connectorv1.Connector_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	call := &WatchCall{RunContext: runContextFromProto(req.GetContext())}
	call.Logger = s.log.With("layer", call.Layer, "source", call.Source)

	type outgoing struct {
		ev   *connectorv1.WatchEvent
		sent chan error
	}
	queue := make(chan outgoing)
	emit := func(ectx context.Context, syncs []string, reason string) error {
		if err := ectx.Err(); err != nil {
			return err
		}
		o := outgoing{ev: &connectorv1.WatchEvent{Syncs: syncs, Reason: reason}, sent: make(chan error, 1)}
		select {
		case queue <- o:
		case <-ctx.Done():
			return ErrWatchClosed
		case <-ectx.Done():
			return ectx.Err()
		}
		select {
		case err := <-o.sent:
			return err
		case <-ectx.Done():
			return ectx.Err()
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.guard("Watch", func() error { return s.h.Watch(ctx, call, emit) }) }()
	var sendErr error
	for {
		select {
		case err := <-done:
			if sendErr != nil {
				return status.Error(codes.Unavailable, sendErr.Error())
			}
			return toStatus(stream.Context(), err)
		case o := <-queue:
			err := stream.Send(o.ev)
			if err != nil {
				err = fmt.Errorf("sending to the host: %w", err)
				if sendErr == nil {
					sendErr = err
				}
				cancel() // the stream is broken: end the handler's Watch
			}
			o.sent <- err
		}
	}
}

// PanicError is a panic of the connector, recovered and turned into a
// failed call.
type PanicError struct {
	// Value is what was passed to panic.
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

// Error implements error.
func (e *PanicError) Error() string { return fmt.Sprintf("connector panicked: %v", e.Value) }

// guard runs f, turning a panic into a *PanicError logged with its stack.
func (s *Server) guard(call string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			pe := &PanicError{Value: r, Stack: debug.Stack()}
			s.log.Error("connector panicked", "call", call, "panic", fmt.Sprint(r), "stack", string(pe.Stack))
			err = pe
		}
	}()
	return f()
}

// MaxMessageBytes caps one gRPC message either way, as the host does (the
// host's core/plugin.MaxMessageBytes); grpc-go's default for what a server
// receives is 4 MiB, go-plugin's for the host 2 GiB.
const MaxMessageBytes = 16 << 20

// ServerOptions are the options of the plugin's gRPC server: the message
// size limits.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes)}
}

// IsTransient tells whether a handler's error is temporary. The sdk
// package sets it (sdk.IsTransient); unset, an error is temporary when one
// in its chain has a Transient method that returns true.
var IsTransient func(error) bool

// IsUnauthorized tells whether a handler's error is an authentication
// failure (the sdk package sets it: sdk.IsUnauthorized); unset, an error
// is one when one in its chain has an Unauthorized method that returns
// true.
var IsUnauthorized func(error) bool

func isUnauthorized(err error) bool {
	if IsUnauthorized != nil {
		return IsUnauthorized(err)
	}
	var u interface{ Unauthorized() bool }
	return errors.As(err, &u) && u.Unauthorized()
}

func isTransient(err error) bool {
	if IsTransient != nil {
		return IsTransient(err)
	}
	var t interface{ Transient() bool }
	return errors.As(err, &t) && t.Transient()
}

// toStatus turns a handler's error into the call's status. A temporary
// failure (see IsTransient) is codes.Aborted, which the host reads as "try
// again later"; a failure of the connector's own is codes.Unknown,
// permanent; an authentication failure (see IsUnauthorized) is
// codes.Unauthenticated, permanent too.
func toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var pe *PanicError
	var ia *InvalidArgumentError
	switch {
	case errors.As(err, &pe):
		return status.Error(codes.Internal, err.Error())
	case errors.Is(err, ErrUnimplemented):
		return status.Error(codes.Unimplemented, err.Error())
	case errors.As(err, &ia):
		return status.Error(codes.InvalidArgument, err.Error())
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return status.Error(status.FromContextError(ctx.Err()).Code(), err.Error())
	case isUnauthorized(err):
		return status.Error(codes.Unauthenticated, err.Error())
	case isTransient(err):
		return status.Error(codes.Aborted, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}
