// Package config turns synclayer's HCL layer files into typed configuration:
// decoding, the env() and file() functions, validation with diagnostics that
// name file, line and column, checking a source's config block against the
// schema its connector declares, and hashing a source's evaluated
// configuration. It never opens the store or starts plugins.
package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Defaults of the service block and of layers.
const (
	DefaultListen         = "127.0.0.1:8750"
	DefaultDataDir        = "./data"
	DefaultKeepRevisions  = 10
	DefaultKeepFor        = time.Hour
	DefaultEventRetention = 5 * 24 * time.Hour
	// DefaultInboxLimit bounds the payload webhooks of a layer accepted
	// but not yet published; beyond it the host answers 429.
	DefaultInboxLimit = 10000
	DefaultLogLevel   = "info"
	DefaultLogFormat  = "text"
	// DefaultSourceConcurrentRuns bounds the runs of one source (of its
	// connections) at once; DefaultHostConcurrentRuns those of the host.
	DefaultSourceConcurrentRuns = 8
	DefaultHostConcurrentRuns   = 32
	// DefaultPluginIdleTimeout stops a plugin process nothing used for
	// that long; it starts again on demand.
	DefaultPluginIdleTimeout = 5 * time.Minute
)

// Merging strategies of a sync (SPEC §4).
const (
	MergeOverride              = "override"
	MergeIgnoreIfModifiedAfter = "ignore_if_modified_after"
)

// Config is every loaded file merged: one service block at most, any number
// of plugin and layer blocks.
type Config struct {
	Service Service
	Plugins map[string]*Plugin // by name
	Layers  []*Layer           // in file order
	// Files are the paths that were read, in order.
	Files []string
}

// Layer returns the layer with that name, or nil.
func (c *Config) Layer(name string) *Layer {
	for _, l := range c.Layers {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// Service is the service block. Zero values are replaced by the defaults.
type Service struct {
	Listen        string
	DataDir       string // resolved relative to the file that sets it
	EncryptionKey string // sensitive
	AdminToken    string // sensitive
	LogLevel      string
	LogFormat     string
	// MaxConcurrentRuns bounds the runs in progress on the host.
	MaxConcurrentRuns int
	// PluginIdleTimeout stops idle plugin processes.
	PluginIdleTimeout time.Duration
	// Store is where layers live (SPEC §16).
	Store Store
	Range hcl.Range
}

// Store drivers.
const (
	// StoreBadger is the embedded default: one Badger database per layer
	// under data_dir.
	StoreBadger = "badger"
	// StorePostgres lets N hosts share one PostgreSQL database.
	StorePostgres = "postgres"
)

// Store is the service's store block.
type Store struct {
	Driver string // StoreBadger (default) or StorePostgres
	DSN    string // sensitive; the postgres driver's connection string
	Range  hcl.Range
}

// Plugin is a plugin block: where a connector binary lives and its checksum.
type Plugin struct {
	Name   string
	Path   string // resolved relative to the file; empty: discovery
	SHA256 string // lower-case hex; empty: not checked
	Range  hcl.Range
}

// Layer is a layer block.
type Layer struct {
	Name          string
	KeepRevisions int
	// KeepFor keeps every revision readable at least this long.
	KeepFor        time.Duration
	EventRetention time.Duration
	// InboxLimit bounds the payload webhooks accepted but not yet
	// published (429 beyond it).
	InboxLimit int
	Sources    []*Source
	Notify     []*Notify
	APITokens  []*APIToken
	References []*Reference // GraphQL cross-references (graphql.go)
	Indexes    []*Index     // GraphQL field indexes (graphql.go)
	Range      hcl.Range
}

// Source returns the source with that name, or nil.
func (l *Layer) Source(name string) *Source {
	for _, s := range l.Sources {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Source is a source block. Its config block is kept undecoded until the
// connector's schema is known (see DecodeSourceConfig).
type Source struct {
	Name   string
	Plugin string
	// PluginRange is where the plugin attribute's value is written.
	PluginRange hcl.Range
	MemoryLimit int64 // bytes; 0: none
	// Connections makes the source a template: its instances, connections,
	// are created at run time (SPEC §12); it has none at start.
	Connections bool
	// MaxConcurrentRuns bounds the runs of this source (of its
	// connections) in progress at once.
	MaxConcurrentRuns int
	// ConfigBody is the raw config block (nil when absent), evaluated with
	// EvalContext (the functions of the file that holds it).
	ConfigBody  hcl.Body
	ConfigRange hcl.Range
	EvalContext *hcl.EvalContext
	Syncs       []*Sync
	// TypePrefix is put before the source's model names to make their
	// GraphQL type names ("Blog" + "Post").
	TypePrefix string
	Range      hcl.Range
}

// Sync returns the sync block with that name, or nil.
func (s *Source) Sync(name string) *Sync {
	for _, y := range s.Syncs {
		if y.Name == name {
			return y
		}
	}
	return nil
}

// Sync is a sync block: per-sync overrides of the connector's defaults.
type Sync struct {
	Name         string
	Models       []string // empty: every model the connector's sync declares
	Every        time.Duration
	Cron         string
	TrackDeletes bool
	Merging      string // MergeOverride (default) or MergeIgnoreIfModifiedAfter
	// Timeout bounds a run of the sync; 0: DefaultSyncTimeout.
	Timeout time.Duration
	// ProgressTimeout is how long the connector may send nothing during a
	// run before the run fails as hung; 0: DefaultProgressTimeout.
	ProgressTimeout time.Duration
	Retry           Retry
	Range           hcl.Range
}

// Retry is a sync's retry block. Attempts 0 means no retry.
type Retry struct {
	Attempts int
	Backoff  time.Duration
	Max      time.Duration
}

// Notify is a notify block: an outbound webhook endpoint.
type Notify struct {
	Name      string
	URL       string
	Secret    string // sensitive; whsec_ + base64 of 24–64 bytes (any non-empty string with format "nango"); required unless Format is "slack"
	Events    []string
	SkipEmpty bool
	Format    string // "" (Standard Webhooks JSON), "slack" or "nango"
	Range     hcl.Range
}

// APIToken is an api_token block: a read token of a layer, by hash.
type APIToken struct {
	Name        string
	TokenSHA256 string // lower-case hex
	Models      []string
	Sources     []string
	// Connections limits the token to the records of these connections
	// (empty: every connection and the sources without any).
	Connections []string
	Range       hcl.Range
}

// Field is one attribute of a connector's config schema, as the connector
// declares it.
type Field struct {
	Name        string
	Type        cty.Type // cty.DynamicPseudoType for "any"
	Required    bool
	Sensitive   bool
	Description string
}
