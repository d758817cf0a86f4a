// Package wire is the plugin side of the connector protocol: the gRPC
// server, the conversion between protocol messages and plain Go values
// (toproto / fromproto), and the batching stream behind sdk.Writer. The sdk
// package adapts the connector author's types to the Handler defined here, so
// no protocol type ever reaches a connector author.
package wire

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/synclayer/synclayer/plugin-sdk/internal/schema"
)

// Handler is what the server calls for each RPC. The sdk package implements
// it over the connector author's Connector.
type Handler interface {
	// Describe answers the static description when rc is nil, else the
	// description for that configuration.
	Describe(ctx context.Context, rc *RunContext, log hclog.Logger) (*Description, error)
	// Check returns nil when the configuration can reach the upstream.
	Check(ctx context.Context, rc *RunContext, log hclog.Logger) error
	// Sync runs one sync, writing to out.
	Sync(ctx context.Context, call *SyncCall, out *Stream) error
	// VerifyWebhook returns nil when the request is authentic, or
	// ErrUnimplemented.
	VerifyWebhook(ctx context.Context, call *WebhookCall) error
	// HandleWebhook turns a verified request into changes, or returns
	// ErrUnimplemented.
	HandleWebhook(ctx context.Context, call *WebhookCall, out *Stream) error
	// Watch watches the upstream until ctx ends, calling emit for each
	// event, or returns an error wrapping ErrUnimplemented when the
	// connector does not watch (for this configuration).
	Watch(ctx context.Context, call *WatchCall, emit Emit) error
}

// Emit sends one WatchEvent to the host: the syncs to run (none: all) and
// why. It returns once the event was handed to the transport, or with
// ctx's error, or with ErrWatchClosed once the stream has ended.
type Emit func(ctx context.Context, syncs []string, reason string) error

// ErrWatchClosed is returned by an Emit used after its Watch stream ended.
var ErrWatchClosed = errors.New("the Watch stream has ended (the host closed it, or Watch returned); the trigger is only valid during the call")

// ErrUnimplemented is returned by a Handler for an optional feature the
// connector does not have; the server answers codes.Unimplemented.
var ErrUnimplemented = errors.New("not implemented by this connector")

// InvalidArgumentError marks a request the host got wrong (an unknown sync,
// a model the sync does not declare); the server answers
// codes.InvalidArgument.
type InvalidArgumentError struct{ Err error }

// Error implements error.
func (e *InvalidArgumentError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *InvalidArgumentError) Unwrap() error { return e.Err }

// RunContext is the configured source a call is about.
type RunContext struct {
	Layer  string
	Source string
	// Config is the source's evaluated config block as a JSON object.
	Config []byte
}

// Description mirrors sdk.Description with the config schema derived.
type Description struct {
	Name     string
	Version  string
	Config   []schema.Field
	Models   []Model
	Syncs    []SyncSpec
	Webhooks bool
	Watches  bool
}

// Model mirrors sdk.Model.
type Model struct {
	Name        string
	Description string
	Fields      []ModelField
}

// ModelField mirrors sdk.ModelField.
type ModelField struct {
	Name string
	Type string
}

// SyncSpec mirrors sdk.SyncSpec.
type SyncSpec struct {
	Name        string
	Models      []string
	Every       time.Duration
	Cron        string
	Incremental bool
}

// SyncCall is a Sync request.
type SyncCall struct {
	RunContext
	Sync   string
	Models []string
	Full   bool
	// Resume is set when Checkpoint was written by this same run in a
	// failed attempt.
	Resume bool
	// Checkpoint is the last checkpoint as JSON, empty if none.
	Checkpoint []byte
	// Logger writes LogEntry messages into the stream, tagged with layer,
	// source and sync.
	Logger hclog.Logger
}

// WebhookCall is a VerifyWebhook or HandleWebhook request.
type WebhookCall struct {
	RunContext
	Method string
	Path   string
	Header http.Header
	Body   []byte
	// Logger writes into the stream for HandleWebhook and to stderr for
	// VerifyWebhook; tagged with layer and source.
	Logger hclog.Logger
}

// Adapt turns an sdk.Connector (passed as any, since this package cannot
// import sdk) into a Handler. The sdk package sets it in its init, so that
// sdktest can build a server from a connector without the sdk exporting
// protocol types.
var Adapt func(connector any) (Handler, error)

// WatchCall is a Watch request.
type WatchCall struct {
	RunContext
	// Logger writes hclog JSON to stderr (a Watch stream carries no log
	// entries), tagged with layer and source.
	Logger hclog.Logger
}
