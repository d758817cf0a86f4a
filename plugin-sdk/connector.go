package sdk

import (
	"context"
	"time"
)

// Connector is what every connector implements.
type Connector interface {
	// Describe tells the host who the connector is: name, version, config
	// schema, models and syncs. It must not depend on any configuration
	// (see ConnectorWithConfiguredModels for that) and must be cheap: it is
	// called at start-up and whenever the host asks.
	Describe() Description
	// Sync runs the sync named req.Sync: it fetches the models in req.Models
	// and writes their records, deletes and checkpoints to w. It resumes from
	// req.Checkpoint when req.Full is false, and should return promptly when
	// ctx is cancelled. Returning an error fails the run with that message;
	// the host retries it from the last checkpoint the connector wrote. A
	// panic fails the run too, and does not kill the plugin.
	Sync(ctx context.Context, req *SyncRequest, w *Writer) error
}

// Description is the connector's answer to Describe.
type Description struct {
	// Name is the connector's name, as in `plugin = "name"` in a layer file.
	Name string
	// Version is the connector's version, for the host's logs and UI.
	Version string
	// Config is a pointer to the connector's config struct. Only its type is
	// used, to derive the config schema from the struct's `config` and `doc`
	// tags (see the package documentation); a typed nil pointer is fine.
	// Nil means the connector takes no configuration.
	Config any
	// Models are the record types the connector emits.
	Models []Model
	// Syncs are the connector's jobs, each fetching some of the models.
	Syncs []SyncSpec
	// Watches, in the answer of Configure, says that this configuration
	// enables watching: the host then keeps a Watch call open for the
	// source (see ConnectorWithWatch, which the connector must implement).
	// Describe's value is ignored: without a configuration the SDK answers
	// whether the connector implements ConnectorWithWatch, and a connector
	// without Configure watches whenever it implements ConnectorWithWatch.
	Watches bool
}

// Model is a record type the connector emits (Product, Customer).
type Model struct {
	// Name is the model's name; records are stored per (source, model).
	Name string
	// Description says what a record of this model is.
	Description string
	// Fields lists the record's notable attributes, for documentation and
	// UIs; records may carry more. Every record also has a string "id".
	Fields []ModelField
}

// ModelField is one attribute of a model.
type ModelField struct {
	// Name is the attribute's name in the record's JSON object.
	Name string
	// Type is a free-form type name such as "string", "number", "bool",
	// "timestamp", "object" or "array".
	Type string
}

// SyncSpec declares one sync: a named job that fetches some models on its
// own schedule.
type SyncSpec struct {
	// Name is the sync's name, as in `sync "name" { ... }` in a layer file.
	Name string
	// Models are the names of the models this sync fetches; each must be
	// one of Description.Models.
	Models []string
	// Every is the default schedule as an interval; zero for none.
	Every time.Duration
	// Cron is the default schedule as a cron expression ("0 3 * * *");
	// empty for none. Set at most one of Every and Cron.
	Cron string
	// Incremental is true when the sync can resume from a checkpoint and
	// fetch only what changed; false when every run reads everything.
	Incremental bool
}

// ConnectorWithCheck is a Connector that can tell whether a configuration
// reaches its upstream (credentials valid, host reachable). Without it, a
// check always succeeds.
type ConnectorWithCheck interface {
	Connector
	// Check returns nil when the configuration works, or an error that
	// tells the user what is wrong and how to fix it.
	Check(ctx context.Context, req *CheckRequest) error
}

// ConnectorWithConfiguredModels is a Connector whose models and syncs depend
// on its configuration (a REST connector whose models are listed in its
// config, a database connector whose models are tables). When the host asks
// for the description of a configured source, Configure answers it; when it
// asks without a configuration (to learn the config schema), Describe does.
type ConnectorWithConfiguredModels interface {
	Connector
	// Configure returns the description for req's configuration. Only its
	// Models and Syncs are used; name, version and config schema always come
	// from Describe. It is also called before each Sync and HandleWebhook to
	// know which models the run may write. A model can disappear between
	// the host's Describe and a run (its file or table was removed): a Sync
	// may still be asked for it, and the Writer accepts Delete on any model
	// the configuration no longer declares, so that the connector can
	// delete its records.
	Configure(ctx context.Context, req *ConfigRequest) (*Description, error)
}

// ConnectorWithWebhooks is a Connector that takes payload webhooks
// (POST /hooks/sources/{layer}/{source}): the upstream pushes changes, the
// host asks the connector to verify the request, stores it durably, then
// asks the connector to turn it into record changes.
//
// Which sources take them: every source of a connector that implements
// ConnectorWithWebhooks, unless it also implements
// ConnectorWithConfiguredWebhooks, whose WebhooksEnabled then decides per
// configuration. For the other sources the host answers 404 and never calls
// VerifyWebhook.
type ConnectorWithWebhooks interface {
	Connector
	// VerifyWebhook returns nil when the request is authentic (signature,
	// freshness); an error rejects it with 401 and the error as the reason.
	// It must not change anything: the request is not yet stored.
	VerifyWebhook(ctx context.Context, req *WebhookRequest) error
	// HandleWebhook turns a verified request into changes written to w. It
	// may fetch more from the upstream. It may be called again with the same
	// request after a crash, so it must be idempotent.
	HandleWebhook(ctx context.Context, req *WebhookRequest, w *Writer) error
}

// ConnectorWithConfiguredWebhooks is a ConnectorWithWebhooks for which
// only some configurations take payload webhooks: typically those with a
// secret to verify them by, so that nobody who can reach the host writes
// records unsigned. The host asks when it describes a configured source
// (the description's webhook support is then WebhooksEnabled's answer) and
// answers 404 to the webhooks of a source whose configuration does not
// take them. The SDK also refuses VerifyWebhook and HandleWebhook for such
// a configuration, should a host ask anyway.
//
// A connector that implements ConnectorWithWebhooks alone takes payload
// webhooks for every configuration, as before this interface existed.
type ConnectorWithConfiguredWebhooks interface {
	ConnectorWithWebhooks
	// WebhooksEnabled tells whether req's configuration takes payload
	// webhooks. It should be cheap (decode the configuration, look at
	// it) and must not reach the upstream. An error fails the host's
	// Describe of the source, like an error of Configure.
	WebhooksEnabled(ctx context.Context, req *ConfigRequest) (bool, error)
}

// ConnectorWithWatch is a Connector that can ask the host for runs: it
// watches its upstream (a database's LISTEN/NOTIFY channel, a change feed, a
// long poll) and calls trigger whenever something changed, and the host
// starts an incremental run of the syncs named, through its normal queue, so
// that a burst of triggers coalesces into few runs.
//
// Which sources watch: a connector without ConnectorWithConfiguredModels
// watches for every configuration; one with it watches only for the
// configurations whose Configure answer sets Description.Watches (a
// postgres source with `listen` set, say). The host calls Watch only for
// those; the SDK refuses the call for the others, as it does for a
// connector without Watch, so the host sees the same "does not watch"
// answer either way.
type ConnectorWithWatch interface {
	Connector
	// Watch watches the upstream for the source req describes until ctx
	// ends (the host closed the stream: a reload, a shutdown, the source
	// removed), then returns nil or ctx's error. It calls trigger with the
	// syncs to run, or with none to run every sync of the source; trigger
	// checks that each name is one of the source's syncs, and returns once
	// the event is on its way to the host (gRPC flow control makes it wait
	// while the host is slow to read), with ctx's error when ctx ends
	// first, or with an error once the stream is broken (then return too). Give the host a
	// reason to record with the run by passing a context made with
	// WithTriggerReason.
	//
	// Watch should survive what it can (reconnect with backoff after a lost
	// connection) and return an error only on a fatal failure; the host
	// then reopens the stream after a backoff of its own. Returning nil
	// before ctx ends means there is nothing (more) to watch for this
	// configuration: the host does not reopen the stream until the
	// configuration or the plugin changes. A panic ends the stream with an
	// error and does not kill the plugin. Watch runs alongside Syncs and
	// other calls of the same source.
	Watch(ctx context.Context, req *WatchRequest, trigger func(ctx context.Context, syncs ...string) error) error
}
