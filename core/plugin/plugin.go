// Package plugin finds, checks, launches and talks to connector plugin
// processes. Each source runs in its own process, driven over gRPC through
// hashicorp/go-plugin with a versioned handshake, on a Unix socket in a
// directory only the host's user can open (sockets.go), with mutual TLS on
// top when asked for (tls.go). Protocol
// messages are turned into this package's own types here, so the rest of the
// host never sees generated code.
package plugin

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/status"

	"github.com/synclayer/synclayer/core/config"
	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
	"github.com/synclayer/synclayer/proto/connector/v1/handshake"
)

// BinaryPrefix is the file name prefix of connector binaries.
const BinaryPrefix = "synclayer-plugin-"

// Options configure a Manager.
type Options struct {
	Logger hclog.Logger
	// Declared are the plugin blocks of the configuration, by name.
	Declared map[string]*config.Plugin
	// SearchPaths are the folders searched, in order, for a plugin that has
	// no path of its own. Default: ./bin, each entry of
	// $SYNCLAYER_PLUGIN_PATH, then the folder of the host binary.
	SearchPaths []string
	// StartTimeout bounds a plugin's start-up (default 20s).
	StartTimeout time.Duration
	// CallTimeout bounds Describe (and so the connector's Configure) and
	// Check; default config.DefaultCallTimeout. A call past it fails with
	// a *TimeoutError and the plugin is killed.
	CallTimeout time.Duration
	// MaxWebhookChanges and MaxWebhookBytes bound the changes one
	// HandleWebhook may make (count, and bytes of model, id and data);
	// defaults DefaultMaxWebhookChanges and DefaultMaxWebhookBytes.
	MaxWebhookChanges int
	MaxWebhookBytes   int64
	// MutualTLS puts mutual TLS on every plugin connection (tls.go). Off
	// by default: the socket's directory already admits only the host's
	// user, whom TLS cannot keep out (see sockets.go).
	MutualTLS bool
}

// Limits on what crosses the wire between the host and a plugin.
const (
	// MaxMessageBytes caps one gRPC message either way (go-plugin's
	// default is 2 GiB). A batch of changes is one message, so this also
	// caps a batch's bytes; a record is at most 4 MiB, well within it.
	MaxMessageBytes = 16 << 20
	// MaxBatchChanges caps the changes of one batch (the SDK sends at most
	// 1,000): a message of tiny changes would otherwise decode into a
	// million Go values.
	MaxBatchChanges = 10_000
	// DefaultMaxWebhookChanges and DefaultMaxWebhookBytes bound the
	// changes of one payload webhook, which the host holds in memory until
	// it publishes them.
	DefaultMaxWebhookChanges = 50_000
	DefaultMaxWebhookBytes   = 32 << 20
)

// DefaultSearchPaths is where plugins are looked up when a plugin block
// gives no path.
func DefaultSearchPaths() []string {
	paths := []string{"./bin"}
	if env := os.Getenv("SYNCLAYER_PLUGIN_PATH"); env != "" {
		paths = append(paths, filepath.SplitList(env)...)
	}
	if exe, err := os.Executable(); err == nil {
		paths = append(paths, filepath.Dir(exe))
	}
	return paths
}

// Manager launches plugin processes and stops them all on Shutdown.
type Manager struct {
	opts Options
	log  hclog.Logger

	certs *launchCerts // the mutual TLS of launches (tls.go); nil without

	mu        sync.Mutex
	instances map[*Instance]struct{}
	closed    bool
	sockDir   string // the plugins' socket directory, made at the first launch (sockets.go)
}

// NewManager returns a Manager.
func NewManager(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.SearchPaths == nil {
		opts.SearchPaths = DefaultSearchPaths()
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 20 * time.Second
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = config.DefaultCallTimeout
	}
	if opts.MaxWebhookChanges <= 0 {
		opts.MaxWebhookChanges = DefaultMaxWebhookChanges
	}
	if opts.MaxWebhookBytes <= 0 {
		opts.MaxWebhookBytes = DefaultMaxWebhookBytes
	}
	m := &Manager{opts: opts, log: opts.Logger, instances: map[*Instance]struct{}{}}
	if opts.MutualTLS {
		m.certs = newLaunchCerts()
		m.certs.prepare()
	}
	return m
}

// Found is a plugin binary located on disk.
type Found struct {
	Name   string
	Path   string
	SHA256 string // the checksum required by the configuration, if any
}

// Find locates the binary of the named plugin: the path of its plugin block
// if it has one, else synclayer-plugin-<name> in the search paths.
func (m *Manager) Find(name string) (Found, error) {
	f := Found{Name: name}
	if d, ok := m.opts.Declared[name]; ok {
		f.SHA256 = strings.ToLower(d.SHA256)
		if d.Path != "" {
			if _, err := os.Stat(d.Path); err != nil {
				return f, fmt.Errorf("plugin %q: %w (from the plugin block's path)", name, err)
			}
			f.Path = d.Path
			return f, nil
		}
	}
	for _, dir := range m.opts.SearchPaths {
		p := filepath.Join(dir, BinaryPrefix+name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			abs, err := filepath.Abs(p)
			if err != nil {
				return f, err
			}
			f.Path = abs
			return f, nil
		}
	}
	return f, fmt.Errorf("plugin %q not found: looked for %s%s in %s; build it (make build), put it on $SYNCLAYER_PLUGIN_PATH, or give a plugin %q { path = ... } block",
		name, BinaryPrefix, name, strings.Join(m.opts.SearchPaths, ", "), name)
}

// List returns every plugin binary found in the search paths and plugin
// blocks, by name.
func (m *Manager) List() []Found {
	seen := map[string]Found{}
	for name := range m.opts.Declared {
		if f, err := m.Find(name); err == nil {
			seen[name] = f
		}
	}
	for _, dir := range m.opts.SearchPaths {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			name, ok := strings.CutPrefix(e.Name(), BinaryPrefix)
			if !ok || e.IsDir() {
				continue
			}
			if _, dup := seen[name]; !dup {
				abs, _ := filepath.Abs(filepath.Join(dir, e.Name()))
				seen[name] = Found{Name: name, Path: abs}
			}
		}
	}
	out := make([]Found, 0, len(seen))
	for _, f := range seen {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ChecksumMismatchError is returned when a plugin binary's sha256 differs
// from the one its plugin block requires.
type ChecksumMismatchError struct {
	Plugin, Path, Want, Got string
}

func (e *ChecksumMismatchError) Error() string {
	return fmt.Sprintf("plugin %q at %s refused: its sha256 is %s but the plugin block requires %s", e.Plugin, e.Path, e.Got, e.Want)
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// LaunchSpec describes one plugin process to start.
type LaunchSpec struct {
	Plugin string // plugin name
	Layer  string
	Source string
	// Dir is the plugin's working directory: the folder of the layer file,
	// so that relative paths in a config block mean what the user sees.
	Dir string
	// MemoryLimit, when positive, is the resident memory (bytes) of the
	// plugin and every process it started (its process group) past which
	// they are all killed; the call in progress fails with the reason.
	MemoryLimit int64
}

// Launch starts the plugin process of a source and connects to it.
func (m *Manager) Launch(ctx context.Context, spec LaunchSpec) (*Instance, error) {
	found, err := m.Find(spec.Plugin)
	if err != nil {
		return nil, err
	}
	log := dedupe(m.log.Named("plugin").With("plugin", spec.Plugin, "layer", spec.Layer, "source", spec.Source))
	cmd := exec.Command(found.Path)
	cmd.Dir = spec.Dir
	cmd.Env = pluginEnv()
	// Own process group: a Ctrl-C at the terminal reaches the host, which
	// then stops its plugins in order; and the host can kill the plugin
	// with whatever it started (kill -PGID).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	dir, err := m.socketDir()
	if err != nil {
		return nil, fmt.Errorf("plugin %q: %w", spec.Plugin, err)
	}
	cmd.Env = append(cmd.Env, goplugin.EnvUnixSocketDir+"="+dir)
	var tlsConfig *tls.Config
	if m.certs != nil {
		var tlsEnv []string
		tlsConfig, tlsEnv, err = m.certs.launch()
		defer m.certs.replenish()
		if err != nil {
			return nil, fmt.Errorf("plugin %q: %w", spec.Plugin, err)
		}
		cmd.Env = append(cmd.Env, tlsEnv...)
	}
	cc := &goplugin.ClientConfig{
		HandshakeConfig:  handshake.Config,
		VersionedPlugins: handshake.VersionedPlugins(nil),
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		TLSConfig:        tlsConfig,
		Managed:          false,
		SkipHostEnv:      true,
		StartTimeout:     m.opts.StartTimeout,
		Logger:           log,
		// Appended after go-plugin's own 2 GiB limits, so these win.
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageBytes),
			grpc.MaxCallSendMsgSize(MaxMessageBytes),
		), experimental.WithBufferPool(BufferPool)},
	}
	if found.SHA256 != "" {
		want, err := hex.DecodeString(found.SHA256)
		if err != nil {
			return nil, fmt.Errorf("plugin %q: sha256 %q is not hex", spec.Plugin, found.SHA256)
		}
		got, err := fileSHA256(found.Path)
		if err != nil {
			return nil, fmt.Errorf("plugin %q: %w", spec.Plugin, err)
		}
		if string(got) != string(want) {
			return nil, &ChecksumMismatchError{Plugin: spec.Plugin, Path: found.Path, Want: found.SHA256, Got: hex.EncodeToString(got)}
		}
		// go-plugin checks again as it starts the binary.
		cc.SecureConfig = &goplugin.SecureConfig{Checksum: want, Hash: sha256.New()}
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("plugin manager is shut down")
	}
	m.mu.Unlock()

	started := time.Now()
	client := goplugin.NewClient(cc)
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, friendlyStartError(spec.Plugin, found.Path, err)
	}
	raw, err := rpc.Dispense(connectorv1.PluginName)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("plugin %q: %w", spec.Plugin, err)
	}
	inst := &Instance{
		m:       m,
		spec:    spec,
		path:    found.Path,
		client:  client,
		rpc:     raw.(connectorv1.ConnectorClient),
		log:     log,
		started: started,
	}
	if rc := client.ReattachConfig(); rc != nil {
		inst.pid = rc.Pid
	}
	m.mu.Lock()
	m.instances[inst] = struct{}{}
	m.mu.Unlock()
	if spec.MemoryLimit > 0 && inst.pid > 0 {
		go inst.watchMemory(inst.pid, spec.MemoryLimit)
	}
	return inst, nil
}

func friendlyStartError(name, path string, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "Incompatible API version") {
		return fmt.Errorf("plugin %q at %s speaks another connector protocol version than this host (protocol %d): rebuild the plugin against this synclayer's plugin-sdk, or upgrade synclayer (%w)",
			name, path, connectorv1.ProtocolVersion, err)
	}
	if errors.Is(err, goplugin.ErrChecksumsDoNotMatch) {
		return fmt.Errorf("plugin %q at %s changed on disk while starting: checksum mismatch (%w)", name, path, err)
	}
	return fmt.Errorf("plugin %q at %s did not start: %w", name, path, err)
}

// pluginEnv is the whole environment of a plugin process: nothing of the
// host's own (secrets stay in the host), only what a process needs to run.
func pluginEnv() []string {
	env := []string{}
	for _, k := range []string{"PATH", "TMPDIR", "TZ", "LANG", "SSL_CERT_FILE", "SSL_CERT_DIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// Shutdown stops every plugin process (and whatever each started).
func (m *Manager) Shutdown() {
	m.mu.Lock()
	m.closed = true
	insts := make([]*Instance, 0, len(m.instances))
	for i := range m.instances {
		insts = append(insts, i)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, i := range insts {
		wg.Add(1)
		go func() { defer wg.Done(); i.Kill() }()
	}
	wg.Wait()
	m.removeSocketDir()
}

// Instance is one running plugin process.
type Instance struct {
	m       *Manager
	spec    LaunchSpec
	path    string
	client  *goplugin.Client
	rpc     connectorv1.ConnectorClient
	log     hclog.Logger
	started time.Time
	pid     int // also the id of its process group; 0 if unknown
	// killed holds the reason when the host killed the process.
	killed atomic.Pointer[string]
}

// Path is the binary the instance runs.
func (i *Instance) Path() string { return i.path }

// Started is when the instance was launched.
func (i *Instance) Started() time.Time { return i.started }

// Exited tells whether the process has ended, or the host killed it (a call
// timed out, the memory limit passed): launch a new instance then.
func (i *Instance) Exited() bool { return i.killed.Load() != nil || i.client.Exited() }

// Kill stops the process (gracefully first, as go-plugin does), then
// whatever it started and left behind in its process group.
func (i *Instance) Kill() {
	i.client.Kill()
	i.signalGroup()
	i.m.mu.Lock()
	delete(i.m.instances, i)
	i.m.mu.Unlock()
}

// Logger is the instance's logger, tagged with plugin, layer and source.
func (i *Instance) Logger() hclog.Logger { return i.log }

// Description is what a connector says about itself.
type Description struct {
	Name            string
	Version         string
	ProtocolVersion uint32
	Config          []config.Field
	Models          []Model
	Syncs           []SyncSpec
	Webhooks        bool
	// Watches is true when the connector asks for runs by itself for this
	// configuration (postgres with listen set): keep an Instance.Watch
	// open for the source. In the description without a configuration it
	// means the connector can watch for some configurations. Plugins that
	// predate Watch answer false.
	Watches bool
}

// Model is a record type a connector emits.
type Model struct {
	Name        string
	Description string
	Fields      []ModelField
}

// ModelField is one declared field of a model.
type ModelField struct{ Name, Type string }

// SyncSpec is a sync a connector offers, with its default schedule.
type SyncSpec struct {
	Name        string
	Models      []string
	Every       time.Duration
	Cron        string
	Incremental bool
}

// Sync returns the sync with that name, or nil.
func (d *Description) Sync(name string) *SyncSpec {
	for i := range d.Syncs {
		if d.Syncs[i].Name == name {
			return &d.Syncs[i]
		}
	}
	return nil
}

// HasModel tells whether the connector declares the model.
func (d *Description) HasModel(name string) bool {
	for _, m := range d.Models {
		if m.Name == name {
			return true
		}
	}
	return false
}

// Sensitive returns the names of the config fields declared sensitive.
func (d *Description) Sensitive() []string {
	var out []string
	for _, f := range d.Config {
		if f.Sensitive {
			out = append(out, f.Name)
		}
	}
	return out
}

// callContext bounds a unary call by the manager's CallTimeout.
func (i *Instance) callContext(ctx context.Context, call string) (context.Context, context.CancelFunc) {
	d := i.m.opts.CallTimeout
	return context.WithTimeoutCause(ctx, d, fmt.Errorf("no answer within %s (the host's timeout for %s)", d, call))
}

// Describe asks the connector for its description; with a config (JSON
// object) the answer is for that configuration. It times out after the
// manager's CallTimeout (the plugin is then killed: see TimeoutError).
func (i *Instance) Describe(ctx context.Context, layer, source string, cfg []byte) (*Description, error) {
	req := &connectorv1.DescribeRequest{}
	if cfg != nil {
		req.Context = &connectorv1.RunContext{Layer: layer, Source: source, Config: cfg}
	}
	ctx, cancel := i.callContext(ctx, "Describe")
	defer cancel()
	resp, err := i.rpc.Describe(ctx, req)
	if err != nil {
		return nil, i.wrap(ctx, "Describe", err, nil)
	}
	d := &Description{Name: resp.Name, Version: resp.Version, ProtocolVersion: resp.ProtocolVersion, Webhooks: resp.Webhooks, Watches: resp.Watches}
	for _, f := range resp.Config {
		ty := cty.DynamicPseudoType
		if len(f.Type) > 0 {
			if ty, err = ctyjson.UnmarshalType(f.Type); err != nil {
				return nil, fmt.Errorf("plugin %q: config field %q has an invalid type: %w", i.spec.Plugin, f.Name, err)
			}
		}
		d.Config = append(d.Config, config.Field{Name: f.Name, Type: ty, Required: f.Required, Sensitive: f.Sensitive, Description: f.Description})
	}
	for _, m := range resp.Models {
		mm := Model{Name: m.Name, Description: m.Description}
		for _, f := range m.Fields {
			mm.Fields = append(mm.Fields, ModelField{Name: f.Name, Type: f.Type})
		}
		d.Models = append(d.Models, mm)
	}
	for _, s := range resp.Syncs {
		ss := SyncSpec{Name: s.Name, Models: s.Models, Cron: s.Cron, Incremental: s.Incremental}
		if s.Every != "" {
			if ss.Every, err = time.ParseDuration(s.Every); err != nil {
				return nil, fmt.Errorf("plugin %q: sync %q has an invalid default schedule %q", i.spec.Plugin, s.Name, s.Every)
			}
		}
		if len(ss.Models) == 0 {
			for _, m := range d.Models {
				ss.Models = append(ss.Models, m.Name)
			}
		}
		d.Syncs = append(d.Syncs, ss)
	}
	return d, nil
}

// Check asks the connector whether its configuration reaches the upstream.
// It times out after the manager's CallTimeout, as Describe does.
func (i *Instance) Check(ctx context.Context, layer, source string, cfg []byte) error {
	ctx, cancel := i.callContext(ctx, "Check")
	defer cancel()
	resp, err := i.rpc.Check(ctx, &connectorv1.CheckRequest{Context: &connectorv1.RunContext{Layer: layer, Source: source, Config: cfg}})
	if err != nil {
		return i.wrap(ctx, "Check", err, nil)
	}
	if !resp.Ok {
		return &ConnectorError{Plugin: i.spec.Plugin, Call: "Check", Message: resp.Message}
	}
	return nil
}

// SyncRequest asks for one sync.
type SyncRequest struct {
	Layer, Source string
	Config        []byte
	Sync          string
	Models        []string
	Full          bool
	// Resume: Checkpoint was written by this same run in a failed attempt.
	Resume     bool
	Checkpoint []byte
	// ProgressTimeout is how long the connector may send nothing (no
	// batch, checkpoint, progress report or log line) before the sync
	// fails with a *TimeoutError and the plugin is killed; 0:
	// config.DefaultProgressTimeout. Time the host spends handling a
	// message does not count. The sync's overall timeout is ctx's.
	ProgressTimeout time.Duration
}

// Change is one record change sent by a connector.
type Change struct {
	Model  string
	ID     string
	Data   []byte
	Delete bool
}

// Message is one message of a sync stream: exactly one field is set.
type Message struct {
	Changes    []Change
	Checkpoint []byte
	Log        *LogEntry
	Progress   *Progress
}

// LogEntry is a log line a connector sent within a sync.
type LogEntry struct {
	Level   hclog.Level
	Message string
	Fields  []string
}

// Progress is a connector's progress report.
type Progress struct {
	Model       string
	Done, Total int64
}

// Sync runs a sync and calls handle for each message, in order; handle's
// error cancels the sync. Change slices passed to handle are not reused.
// Messages are read one at a time: the next is not decoded before handle
// returns, so a slow handle holds the plugin back (gRPC flow control)
// rather than filling the host's memory.
//
// When ctx's deadline passes, or the connector sends nothing for
// req.ProgressTimeout, Sync kills the plugin and returns a *TimeoutError.
func (i *Instance) Sync(ctx context.Context, req SyncRequest, handle func(*Message) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := req.ProgressTimeout
	if idle <= 0 {
		idle = config.DefaultProgressTimeout
	}
	w := newWatchdog(idle, cancel)
	defer w.disarm()
	stream, err := i.rpc.Sync(ctx, &connectorv1.SyncRequest{
		Context:    &connectorv1.RunContext{Layer: req.Layer, Source: req.Source, Config: req.Config},
		Sync:       req.Sync,
		Models:     req.Models,
		Full:       req.Full,
		Resume:     req.Resume,
		Checkpoint: req.Checkpoint,
	})
	if err != nil {
		return i.wrap(ctx, "Sync", err, w)
	}
	return i.pump(ctx, "Sync", stream, handle, w, nil)
}

type messageStream interface {
	Recv() (*connectorv1.SyncMessage, error)
}

// budget bounds the changes of a whole stream (a webhook's).
type budget struct {
	maxChanges   int
	maxBytes     int64
	changes      int
	bytes        int64
	what, remedy string
}

// take counts a batch against the budget.
func (b *budget) take(cs []*connectorv1.Change) error {
	if b == nil {
		return nil
	}
	b.changes += len(cs)
	for _, c := range cs {
		b.bytes += int64(len(c.Model) + len(c.Id) + len(c.Data))
	}
	if b.changes > b.maxChanges || b.bytes > b.maxBytes {
		return fmt.Errorf("%s passed the limit of %d changes or %d MiB (%d changes, %d bytes so far); %s: %w",
			b.what, b.maxChanges, b.maxBytes>>20, b.changes, b.bytes, b.remedy, ErrTooLarge)
	}
	return nil
}

// pump reads a stream of SyncMessages, one at a time, into handle. idle,
// when set, is armed while waiting for each message; limit, when set,
// bounds the stream's changes in all.
func (i *Instance) pump(ctx context.Context, call string, stream messageStream, handle func(*Message) error, idle *watchdog, limit *budget) error {
	var msg Message
	for {
		idle.arm()
		in, err := stream.Recv()
		idle.disarm()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return i.wrap(ctx, call, err, idle)
		}
		msg = Message{}
		switch k := in.Kind.(type) {
		case *connectorv1.SyncMessage_Batch:
			if n := len(k.Batch.Changes); n > MaxBatchChanges {
				return fmt.Errorf("plugin %q: %s: a batch of %d changes, more than the %d one batch may hold: %w", i.spec.Plugin, call, n, MaxBatchChanges, ErrTooLarge)
			}
			if err := limit.take(k.Batch.Changes); err != nil {
				return fmt.Errorf("plugin %q: %s: %w", i.spec.Plugin, call, err)
			}
			cs := make([]Change, len(k.Batch.Changes))
			for j, c := range k.Batch.Changes {
				cs[j] = Change{Model: c.Model, ID: c.Id, Data: c.Data, Delete: c.Delete}
			}
			msg.Changes = cs
		case *connectorv1.SyncMessage_Checkpoint:
			msg.Checkpoint = k.Checkpoint.State
			if msg.Checkpoint == nil {
				msg.Checkpoint = []byte("null")
			}
		case *connectorv1.SyncMessage_Log:
			msg.Log = &LogEntry{Level: logLevel(k.Log.Level), Message: k.Log.Message, Fields: k.Log.Fields}
		case *connectorv1.SyncMessage_Progress:
			msg.Progress = &Progress{Model: k.Progress.Model, Done: k.Progress.Done, Total: k.Progress.Total}
		default:
			continue
		}
		if err := handle(&msg); err != nil {
			return err
		}
	}
}

func logLevel(l connectorv1.LogEntry_Level) hclog.Level {
	switch l {
	case connectorv1.LogEntry_LEVEL_TRACE:
		return hclog.Trace
	case connectorv1.LogEntry_LEVEL_DEBUG:
		return hclog.Debug
	case connectorv1.LogEntry_LEVEL_WARN:
		return hclog.Warn
	case connectorv1.LogEntry_LEVEL_ERROR:
		return hclog.Error
	}
	return hclog.Info
}

// Webhook is an inbound payload webhook handed to a connector.
type Webhook struct {
	Layer, Source string
	Config        []byte
	Method, Path  string
	Header        map[string][]string
	Body          []byte
}

// proto converts the webhook for the wire. Protocol strings must be UTF-8;
// anything else in a header or the path (it comes from the internet) is
// replaced, where a byte-exact check would fail anyway.
func (w *Webhook) proto() *connectorv1.WebhookRequest {
	req := &connectorv1.WebhookRequest{
		Context: &connectorv1.RunContext{Layer: w.Layer, Source: w.Source, Config: w.Config},
		Method:  strings.ToValidUTF8(w.Method, "\uFFFD"), Path: strings.ToValidUTF8(w.Path, "\uFFFD"), Body: w.Body,
	}
	for k, v := range w.Header {
		vals := make([]string, len(v))
		for i, x := range v {
			vals[i] = strings.ToValidUTF8(x, "\uFFFD")
		}
		req.Headers = append(req.Headers, &connectorv1.Header{Name: strings.ToValidUTF8(k, "\uFFFD"), Values: vals})
	}
	return req
}

// VerifyWebhook asks the connector whether a payload webhook is authentic;
// it returns the connector's reason when it is not. When ctx's deadline
// passes, the plugin is killed and the error is a *TimeoutError.
func (i *Instance) VerifyWebhook(ctx context.Context, w *Webhook) (ok bool, reason string, err error) {
	resp, err := i.rpc.VerifyWebhook(ctx, w.proto())
	if err != nil {
		return false, "", i.wrap(ctx, "VerifyWebhook", err, nil)
	}
	return resp.Ok, resp.Reason, nil
}

// HandleWebhook asks the connector to turn a verified webhook into changes.
// The changes of one webhook are bounded (Options.MaxWebhookChanges and
// MaxWebhookBytes): past them the call fails with an error wrapping
// ErrTooLarge. When ctx's deadline passes, the plugin is killed and the
// error is a *TimeoutError.
func (i *Instance) HandleWebhook(ctx context.Context, w *Webhook, handle func(*Message) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := i.rpc.HandleWebhook(ctx, w.proto())
	if err != nil {
		return i.wrap(ctx, "HandleWebhook", err, nil)
	}
	limit := &budget{
		maxChanges: i.m.opts.MaxWebhookChanges, maxBytes: i.m.opts.MaxWebhookBytes,
		what:   "the changes of one webhook",
		remedy: "have the upstream send smaller webhooks, or have the connector trigger a sync for bulk changes",
	}
	return i.pump(ctx, "HandleWebhook", stream, handle, nil, limit)
}

// ErrWatchUnsupported is returned (wrapped: test with errors.Is) by
// Instance.Watch when the connector does not watch this source: a plugin
// built without Watch, or a configuration that does not enable it (its
// Description.Watches is false). Do not reopen the watch until the
// source's configuration or plugin changes.
var ErrWatchUnsupported = errors.New("the connector does not watch its upstream for this source")

// Watch opens the connector's watch of a configured source (cfg is its
// config block as a JSON object; open it when the source's Description has
// Watches) and calls fn, from the calling goroutine and in order, for each
// event: syncs are the syncs to run incrementally, empty for every sync of
// the source, as the connector sent them (check them against the source's
// syncs); reason says why ("NOTIFY synclayer_changes, 'Customer'") and may
// be empty. fn should return quickly (enqueue the runs): while it runs,
// the connector's next events wait.
//
// Watch blocks until the stream ends. It returns nil when ctx ends (the
// host closes the stream: reload, shutdown), and nil when the connector
// ended the stream by itself, having nothing more to watch: do not reopen
// it until the configuration or plugin changes. Otherwise it returns an
// error wrapping ErrWatchUnsupported when the connector does not watch this
// source; a *CrashError when the plugin process died (reopen on a new
// instance); or a *ConnectorError with the connector's message on a fatal
// failure of its watch, or another error when the connection was lost
// (reopen after a backoff).
func (i *Instance) Watch(ctx context.Context, layer, source string, cfg []byte, fn func(syncs []string, reason string)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := i.rpc.Watch(ctx, &connectorv1.WatchRequest{Context: &connectorv1.RunContext{Layer: layer, Source: source, Config: cfg}})
	for err == nil {
		var ev *connectorv1.WatchEvent
		if ev, err = stream.Recv(); err == nil {
			fn(ev.Syncs, ev.Reason)
		}
	}
	switch {
	case err == io.EOF, ctx.Err() != nil:
		return nil
	case status.Code(err) == codes.Unimplemented && !i.client.Exited():
		return fmt.Errorf("plugin %q: %w: %s", i.spec.Plugin, ErrWatchUnsupported, status.Convert(err).Message())
	}
	return i.wrap(ctx, "Watch", err, nil)
}
