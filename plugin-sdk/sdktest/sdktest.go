// Package sdktest runs a connector in-process against the real connector
// protocol, for the connector's own tests. The connector is served by the
// same gRPC server a plugin process runs (go-plugin's default server with
// the protocol's plugin map), reached over an in-memory connection, so what
// a test sees is what the host would see: batches, checkpoints, log
// entries, errors.
//
//	func TestSync(t *testing.T) {
//		h := sdktest.New(t, &MyConnector{})
//		res, err := h.Sync(t.Context(), sdktest.SyncOptions{
//			Config: map[string]any{"dir": "testdata"},
//			Sync:   "files",
//			Full:   true,
//		})
//		if err != nil {
//			t.Fatal(err)
//		}
//		// inspect res.Changes, res.Checkpoint, res.Logs
//	}
//
// Acceptance runs the checks every connector owes the host (declared models
// only, stable ids, resume from any checkpoint without loss, incremental
// runs without repeats, no leaked secrets or goroutines) against a live
// upstream the test provides.
package sdktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/internal/wire"
	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
	"github.com/synclayer/synclayer/proto/connector/v1/handshake"
)

// Default names of the layer and source a Harness talks about.
const (
	DefaultLayer  = "test"
	DefaultSource = "test"
)

// Harness serves one connector for the duration of a test. Its methods are
// safe for concurrent use. Everything it started is stopped when the test
// ends (t.Cleanup).
type Harness struct {
	// Layer and Source are sent with every call; DefaultLayer and
	// DefaultSource unless changed.
	Layer, Source string

	client connectorv1.ConnectorClient
	calls  *calls
}

// New serves c and returns a Harness talking to it. It fails the test when
// the connector cannot start (a panic in Describe, an invalid config struct
// or description), as Serve would refuse to.
func New(t testing.TB, c sdk.Connector) *Harness {
	t.Helper()
	tw := &testWriter{t: t}
	h, stop, err := serve(c, tw)
	if err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	t.Cleanup(func() {
		stop()
		tw.close()
	})
	return h
}

// serve serves c over an in-memory connection; the plugin's stderr log (hclog
// lines) goes to logOut. stop ends the server and waits for it.
func serve(c sdk.Connector, logOut io.Writer) (h *Harness, stop func(), err error) {
	wh, err := wire.Adapt(c)
	if err != nil {
		return nil, nil, fmt.Errorf("the connector cannot start: %w", err)
	}
	log := hclog.New(&hclog.LoggerOptions{Output: logOut, Level: hclog.Trace, Name: "plugin"})
	// The plugin side exactly as sdk.Serve builds it (go-plugin's default
	// gRPC server, the protocol's plugin map), over an in-memory listener.
	tracked := &trackedHandler{Handler: wh, calls: &calls{running: map[string]chan struct{}{}}}
	p := handshake.VersionedPlugins(wire.NewServer(tracked, log, hclog.Trace))[connectorv1.ProtocolVersion][connectorv1.PluginName].(plugin.GRPCPlugin)
	server := plugin.DefaultGRPCServer(nil)
	if err := p.GRPCServer(nil, server); err != nil {
		return nil, nil, err
	}
	lis := bufconn.Listen(1 << 20)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = server.Serve(lis)
	}()
	conn, err := grpc.NewClient("passthrough:///sdktest",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)
	stop = func() {
		if conn != nil {
			_ = conn.Close()
		}
		server.Stop()
		<-served
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	raw, err := p.GRPCClient(context.Background(), nil, conn)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return &Harness{Layer: DefaultLayer, Source: DefaultSource, client: raw.(connectorv1.ConnectorClient), calls: tracked.calls}, stop, nil
}

// callIDKey is the gRPC metadata key naming a Sync call, so that the
// harness can wait for the connector's side of a call it stopped early.
const callIDKey = "sdktest-call"

// calls tracks the Sync and Watch calls the connector is running, by call
// id.
type calls struct {
	mu      sync.Mutex
	next    int
	running map[string]chan struct{}
	begun   map[string]bool // the connector's side of the call has started
}

// start registers a call and returns its id and a channel closed when the
// connector's Sync has returned.
func (c *calls) start() (string, chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next++
	id := strconv.Itoa(c.next)
	done := make(chan struct{})
	c.running[id] = done
	return id, done
}

func (c *calls) end(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if done, ok := c.running[id]; ok {
		close(done)
		delete(c.running, id)
	}
	delete(c.begun, id)
}

// begin records that the connector's side of a call has started.
func (c *calls) begin(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.running[id]; !ok {
		return
	}
	if c.begun == nil {
		c.begun = map[string]bool{}
	}
	c.begun[id] = true
}

// inConnector tells whether the connector is running the call: it began
// and has not returned.
func (c *calls) inConnector(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.begun[id]
}

// trackedHandler tells calls when a Sync returned.
type trackedHandler struct {
	wire.Handler
	calls *calls
}

// Sync implements wire.Handler.
func (t *trackedHandler) Sync(ctx context.Context, call *wire.SyncCall, out *wire.Stream) error {
	if ids := metadata.ValueFromIncomingContext(ctx, callIDKey); len(ids) == 1 {
		defer t.calls.end(ids[0])
	}
	return t.Handler.Sync(ctx, call, out)
}

// Watch implements wire.Handler.
func (t *trackedHandler) Watch(ctx context.Context, call *wire.WatchCall, emit wire.Emit) error {
	if ids := metadata.ValueFromIncomingContext(ctx, callIDKey); len(ids) == 1 {
		t.calls.begin(ids[0])
		defer t.calls.end(ids[0])
	}
	return t.Handler.Watch(ctx, call, emit)
}

// CancelGrace is how long a connector may take to return from a Sync once
// its run is cancelled (see SyncOptions.StopAfterCheckpoints), or from a
// Watch once its stream is closed (see WatchStream.Stop).
const CancelGrace = 10 * time.Second

// testWriter sends the plugin's stderr log to the test log while the test
// runs.
type testWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

// Write implements io.Writer.
func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

func (h *Harness) runContext(cfg map[string]any) (*connectorv1.RunContext, error) {
	rc := &connectorv1.RunContext{Layer: h.Layer, Source: h.Source}
	if cfg != nil {
		b, err := json.Marshal(cfg)
		if err != nil {
			return nil, fmt.Errorf("sdktest: config is not encodable as JSON: %w", err)
		}
		rc.Config = b
	}
	return rc, nil
}

// Description is a connector's Describe answer as the host receives it.
type Description struct {
	// Name and Version are the connector's.
	Name, Version string
	// Config is the config schema derived from the connector's config
	// struct, in declaration order.
	Config []ConfigField
	// Models and Syncs are the declared models and syncs.
	Models []sdk.Model
	Syncs  []sdk.SyncSpec
	// Webhooks is true when the connector takes payload webhooks.
	Webhooks bool
	// Watches is true when the connector answers Watch: for this
	// configuration, or, in the static description, for some.
	Watches bool
	// ProtocolVersion is the protocol version the connector speaks.
	ProtocolVersion int
}

// ConfigField is one attribute of the config schema as the host receives
// it.
type ConfigField struct {
	// Name is the attribute's name, from the `config` tag.
	Name string
	// Type is the cty type the host checks the attribute against.
	Type cty.Type
	// Required and Sensitive are the tag's options.
	Required  bool
	Sensitive bool
	// Description is the `doc` tag.
	Description string
}

// Field returns the config attribute with that name, or nil.
func (d *Description) Field(name string) *ConfigField {
	for i := range d.Config {
		if d.Config[i].Name == name {
			return &d.Config[i]
		}
	}
	return nil
}

// Describe asks for the connector's description: the static one when cfg is
// nil, else the one for that configuration (see
// sdk.ConnectorWithConfiguredModels).
func (h *Harness) Describe(cfg map[string]any) (*Description, error) {
	req := &connectorv1.DescribeRequest{}
	if cfg != nil {
		rc, err := h.runContext(cfg)
		if err != nil {
			return nil, err
		}
		req.Context = rc
	}
	res, err := h.client.Describe(context.Background(), req)
	if err != nil {
		return nil, callError(err)
	}
	d := &Description{
		Name: res.GetName(), Version: res.GetVersion(),
		Webhooks: res.GetWebhooks(), Watches: res.GetWatches(), ProtocolVersion: int(res.GetProtocolVersion()),
	}
	for _, f := range res.GetConfig() {
		typ, err := ctyjson.UnmarshalType(f.GetType())
		if err != nil {
			return nil, fmt.Errorf("sdktest: config attribute %q has an invalid type %s: %w", f.GetName(), f.GetType(), err)
		}
		d.Config = append(d.Config, ConfigField{
			Name: f.GetName(), Type: typ, Required: f.GetRequired(),
			Sensitive: f.GetSensitive(), Description: f.GetDescription(),
		})
	}
	for _, m := range res.GetModels() {
		sm := sdk.Model{Name: m.GetName(), Description: m.GetDescription()}
		for _, f := range m.GetFields() {
			sm.Fields = append(sm.Fields, sdk.ModelField{Name: f.GetName(), Type: f.GetType()})
		}
		d.Models = append(d.Models, sm)
	}
	for _, s := range res.GetSyncs() {
		ss := sdk.SyncSpec{Name: s.GetName(), Models: s.GetModels(), Cron: s.GetCron(), Incremental: s.GetIncremental()}
		if s.GetEvery() != "" {
			if ss.Every, err = time.ParseDuration(s.GetEvery()); err != nil {
				return nil, fmt.Errorf("sdktest: sync %q has an invalid every %q: %w", ss.Name, s.GetEvery(), err)
			}
		}
		d.Syncs = append(d.Syncs, ss)
	}
	return d, nil
}

// Check runs the connector's check with cfg; a failed check is an error
// with the connector's message.
func (h *Harness) Check(ctx context.Context, cfg map[string]any) error {
	rc, err := h.runContext(cfg)
	if err != nil {
		return err
	}
	res, err := h.client.Check(ctx, &connectorv1.CheckRequest{Context: rc})
	if err != nil {
		return callError(err)
	}
	if !res.GetOk() {
		return errors.New(res.GetMessage())
	}
	return nil
}

// SyncOptions is one Sync call.
type SyncOptions struct {
	// Config is the source's configuration, as the JSON object of its
	// evaluated config block.
	Config map[string]any
	// Sync is the name of the sync to run.
	Sync string
	// Models limits the run to these models; empty means the sync's own.
	Models []string
	// Full asks for a full run.
	Full bool
	// Checkpoint is the checkpoint to resume from; typically the Checkpoint
	// of an earlier Result.
	Checkpoint sdk.Checkpoint
	// Resume marks Checkpoint as written by a failed attempt of this same
	// run (sdk.SyncRequest.Resume), as the host does when it retries.
	Resume bool
	// StopAfterCheckpoints, when positive, ends the run as a host that
	// died would: once that many checkpoints have arrived, the harness
	// cancels the call, waits for the connector's Sync to return (at most
	// CancelGrace, else an error), and returns what arrived, without an
	// error. Rerun from the Result's Checkpoint to test a resume.
	StopAfterCheckpoints int
}

// Result is everything a call streamed back, in order.
type Result struct {
	// Changes are every saved and deleted record, in order.
	Changes []Change
	// Checkpoint is the last checkpoint written, or nil.
	Checkpoint sdk.Checkpoint
	// Logs are the log lines, as "[LEVEL] message key=value ...".
	Logs []string
	// Messages are the stream's messages in arrival order: one per record
	// batch, checkpoint, log entry and progress report.
	Messages []Message
}

// Change is one saved or deleted record.
type Change struct {
	// Model and ID name the record. Model is empty for a delete by id
	// alone (Writer.DeleteByID), which the host resolves across the
	// source's models.
	Model string
	ID    string
	// Data is the record's JSON object; nil for a delete.
	Data json.RawMessage
	// Delete is true for a delete.
	Delete bool
}

// Message is one message of the stream; exactly one field is set.
type Message struct {
	// Batch is a record batch, as the Writer sent it.
	Batch []Change
	// Checkpoint is a checkpoint.
	Checkpoint sdk.Checkpoint
	// Log is a log entry.
	Log *Log
	// Progress is a progress report.
	Progress *Progress
}

// Log is one log entry sent on the stream.
type Log struct {
	// Level is "trace", "debug", "info", "warn" or "error".
	Level string
	// Message is the log message.
	Message string
	// Fields alternate keys and values.
	Fields []string
}

// String renders the entry as "[LEVEL] message key=value ...".
func (l *Log) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s", strings.ToUpper(l.Level), l.Message)
	for i := 0; i+1 < len(l.Fields); i += 2 {
		fmt.Fprintf(&b, " %s=%s", l.Fields[i], l.Fields[i+1])
	}
	return b.String()
}

// Progress is one progress report.
type Progress struct {
	// Model is the model reported on; "" for the whole run.
	Model string
	// Done and Total count records; Total is 0 when unknown.
	Done, Total int64
}

// Checkpoints returns every checkpoint of the result, in order.
func (r *Result) Checkpoints() []sdk.Checkpoint {
	var out []sdk.Checkpoint
	for _, m := range r.Messages {
		if m.Checkpoint != nil {
			out = append(out, m.Checkpoint)
		}
	}
	return out
}

// Sync runs one sync and collects what it streams. On failure it returns
// what arrived before the failure along with an error carrying the
// connector's message (a panic reads "connector panicked: ...").
func (h *Harness) Sync(ctx context.Context, opts SyncOptions) (*Result, error) {
	rc, err := h.runContext(opts.Config)
	if err != nil {
		return &Result{}, err
	}
	req := &connectorv1.SyncRequest{Context: rc, Sync: opts.Sync, Models: opts.Models, Full: opts.Full, Resume: opts.Resume}
	if opts.Checkpoint != nil {
		if req.Checkpoint, err = json.Marshal(opts.Checkpoint); err != nil {
			return &Result{}, fmt.Errorf("sdktest: checkpoint is not encodable as JSON: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	id, done := h.calls.start()
	defer h.calls.end(id) // when the call never reached the connector
	stream, err := h.client.Sync(metadata.AppendToOutgoingContext(ctx, callIDKey, id), req)
	if err != nil {
		return &Result{}, callError(err)
	}
	res, err := collect(stream, opts.StopAfterCheckpoints)
	if err == nil && opts.StopAfterCheckpoints > 0 {
		// Stopped early: cancel the call and wait until the connector's
		// Sync has returned, so that what follows does not race with it.
		cancel()
		select {
		case <-done:
		case <-time.After(CancelGrace):
			return res, fmt.Errorf("sdktest: the connector's Sync did not return within %s of its run being cancelled; return when ctx is done", CancelGrace)
		}
	}
	return res, err
}

// WebhookOptions is one inbound payload webhook.
type WebhookOptions struct {
	// Config is the source's configuration.
	Config map[string]any
	// Method defaults to POST, Path to /hooks/sources/<layer>/<source>.
	Method, Path string
	// Header and Body are the request's.
	Header http.Header
	Body   []byte
}

func (h *Harness) webhookRequest(opts WebhookOptions) (*connectorv1.WebhookRequest, error) {
	rc, err := h.runContext(opts.Config)
	if err != nil {
		return nil, err
	}
	req := &connectorv1.WebhookRequest{Context: rc, Method: opts.Method, Path: opts.Path, Body: opts.Body}
	if req.Method == "" {
		req.Method = http.MethodPost
	}
	if req.Path == "" {
		req.Path = "/hooks/sources/" + h.Layer + "/" + h.Source
	}
	for k, v := range opts.Header {
		req.Headers = append(req.Headers, &connectorv1.Header{Name: k, Values: v})
	}
	return req, nil
}

// VerifyWebhook asks the connector whether the request is authentic; a
// rejection is an error with the connector's reason.
func (h *Harness) VerifyWebhook(ctx context.Context, opts WebhookOptions) error {
	req, err := h.webhookRequest(opts)
	if err != nil {
		return err
	}
	res, err := h.client.VerifyWebhook(ctx, req)
	if err != nil {
		return callError(err)
	}
	if !res.GetOk() {
		return errors.New(res.GetReason())
	}
	return nil
}

// HandleWebhook has the connector turn the request into changes.
func (h *Harness) HandleWebhook(ctx context.Context, opts WebhookOptions) (*Result, error) {
	req, err := h.webhookRequest(opts)
	if err != nil {
		return &Result{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := h.client.HandleWebhook(ctx, req)
	if err != nil {
		return &Result{}, callError(err)
	}
	return collect(stream, 0)
}

// collect reads the stream to its end, or until stopAfter checkpoints
// arrived when stopAfter is positive.
func collect(stream interface {
	Recv() (*connectorv1.SyncMessage, error)
}, stopAfter int) (*Result, error) {
	res := &Result{}
	checkpoints := 0
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return res, callError(err)
		}
		switch k := msg.GetKind().(type) {
		case *connectorv1.SyncMessage_Batch:
			batch := make([]Change, 0, len(k.Batch.GetChanges()))
			for _, c := range k.Batch.GetChanges() {
				ch := Change{Model: c.GetModel(), ID: c.GetId(), Delete: c.GetDelete()}
				if len(c.GetData()) > 0 {
					ch.Data = json.RawMessage(c.GetData())
				}
				batch = append(batch, ch)
			}
			res.Changes = append(res.Changes, batch...)
			res.Messages = append(res.Messages, Message{Batch: batch})
		case *connectorv1.SyncMessage_Checkpoint:
			cp, err := decodeCheckpoint(k.Checkpoint.GetState())
			if err != nil {
				return res, err
			}
			res.Checkpoint = cp
			res.Messages = append(res.Messages, Message{Checkpoint: cp})
			if checkpoints++; stopAfter > 0 && checkpoints >= stopAfter {
				return res, nil
			}
		case *connectorv1.SyncMessage_Log:
			l := &Log{
				Level:   levelName(k.Log.GetLevel()),
				Message: k.Log.GetMessage(),
				Fields:  k.Log.GetFields(),
			}
			res.Logs = append(res.Logs, l.String())
			res.Messages = append(res.Messages, Message{Log: l})
		case *connectorv1.SyncMessage_Progress:
			p := &Progress{Model: k.Progress.GetModel(), Done: k.Progress.GetDone(), Total: k.Progress.GetTotal()}
			res.Messages = append(res.Messages, Message{Progress: p})
		default:
			return res, fmt.Errorf("sdktest: the connector sent an empty stream message")
		}
	}
}

// decodeCheckpoint decodes like the SDK does (numbers as json.Number), so
// that a Result's Checkpoint can be passed back unchanged.
func decodeCheckpoint(b []byte) (sdk.Checkpoint, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var cp sdk.Checkpoint
	if err := dec.Decode(&cp); err != nil {
		return nil, fmt.Errorf("sdktest: the connector sent a checkpoint that is not a JSON object: %w", err)
	}
	if cp == nil {
		cp = sdk.Checkpoint{}
	}
	return cp, nil
}

func levelName(l connectorv1.LogEntry_Level) string {
	switch l {
	case connectorv1.LogEntry_LEVEL_TRACE:
		return "trace"
	case connectorv1.LogEntry_LEVEL_DEBUG:
		return "debug"
	case connectorv1.LogEntry_LEVEL_INFO:
		return "info"
	case connectorv1.LogEntry_LEVEL_WARN:
		return "warn"
	case connectorv1.LogEntry_LEVEL_ERROR:
		return "error"
	}
	return "unspecified"
}

// callError turns a failed call into an error carrying the connector's
// message.
func callError(err error) error {
	if st, ok := status.FromError(err); ok {
		return errors.New(st.Message())
	}
	return err
}
