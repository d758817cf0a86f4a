// Package store is the engine's view of where layers live: records in
// atomic revisions, the staging of runs, reads by cursor and by revision,
// the webhook inbox, the outbox, the event and audit logs, runs, checkpoints
// and connections. It holds the interfaces and the types they speak in, and
// no storage code: each driver is a sibling package (core/store/badger, the
// embedded default; core/store/postgres, for replicas), and every driver
// passes the same conformance suite (core/store/storetest).
//
// The interfaces wrap a driver with the thinnest layer that keeps the
// guarantees of SPEC §4–§8 and §12 in the driver, where the storage can
// keep them in one transaction: a revision is published atomically, cursors
// of a layer grow strictly in publish order, a record's modification time
// is that of the revision it changed in, and a reader of revision N sees
// exactly N. Callers (engine, api, ui, graphql, notify) must not learn
// which driver they have.
package store

import (
	"errors"
	"io"
	"time"
)

// Errors returned by every driver.
var (
	ErrClosed      = errors.New("store: closed")
	ErrNotFound    = errors.New("not found")
	ErrStagingDone = errors.New("store: staging already published or aborted")
)

// Store holds the layers.
type Store interface {
	// Layer opens (creating if needed) the named layer.
	Layer(name string) (Layer, error)
	// LayerNames lists the layers the store holds, open or not.
	LayerNames() ([]string, error)
	// Dir is a local folder the host may keep its own files in (the
	// connections key), or "" when the driver has none: then every host
	// must be given the same key in its configuration.
	Dir() string
	// Close closes every layer.
	Close() error
}

// Backuper is a Store that writes and reads its own backups (synclayer
// backup/restore). A driver whose database has its own tools (pg_dump) need
// not be one.
type Backuper interface {
	Store
	// Encrypted tells whether the store encrypts at rest.
	Encrypted() bool
	// Backup writes every layer to w.
	Backup(w io.Writer) error
	// Restore reads a backup into an empty store and names its layers.
	Restore(r io.Reader) ([]string, error)
}

// Layer is one layer's data. Its methods are safe for concurrent use.
type Layer interface {
	// Name is the layer's name.
	Name() string

	Records
	Revisions
	Inbox
	Outbox
	Logs
	Runs
	Connections
	Settings
}

// Records are a layer's staging, publishing and reads of records.
type Records interface {
	// BeginStaging starts staging the changes of a run. Runs may stage side
	// by side; each publishes on its own.
	BeginStaging(run string) (Staging, error)
	// PublishChanges publishes changes outside a run (payload webhooks) as
	// one revision.
	PublishChanges(info PublishInfo, batches []Batch) (Revision, error)
	// Records reads a page of records (SPEC §4), rendering each with its
	// metadata.
	Records(q Query, emit func(record []byte) error) (Page, error)
	// OpenSnapshot opens revision n (0: the current one) for reads; ok is
	// false when there is no such revision or it is no longer kept.
	OpenSnapshot(n int64) (s Snapshot, ok bool, err error)
	// SetFieldIndexes declares the fields indexed for lookups (GraphQL
	// filters and cross-references).
	SetFieldIndexes(defs []FieldIndex) error
	// DiskSize is what the layer takes on disk: its index (lsm) and its
	// payloads (vlog), as far as the driver can tell them apart.
	DiskSize() (lsm, vlog int64)
}

// Revisions are the layer's published revisions, retention and pins.
type Revisions interface {
	// Revisions lists the readable revisions, newest first, with the
	// pinned flag set on the pinned one.
	Revisions() []Revision
	// Current is the revision readers see: the pinned one, or the newest.
	Current() (Revision, bool)
	// Newest is the newest published revision.
	Newest() (Revision, bool)
	// Pinned is the pinned revision, or 0.
	Pinned() int64
	// KeptRevisions is how many revisions are kept.
	KeptRevisions() int
	// SetRetention keeps the newest keep revisions, and those younger than
	// keepFor.
	SetRetention(keep int, keepFor time.Duration)
	// Pin pins revision n, with outbound events in the same commit.
	Pin(n int64, announce ...Delivery) error
	// Unpin unpins and returns the revision that was pinned.
	Unpin() (int64, error)
	// UnpinWith unpins, with the outbound events announce makes of the
	// revision that was pinned in the same commit.
	UnpinWith(announce func(was int64) []Delivery) (int64, error)
}

// Inbox is the layer's durable webhook inbox: payloads are appended before
// the 202 and handled in order.
type Inbox interface {
	// SetInboxLimit bounds the pending items (AppendInbox then answers
	// ErrInboxFull).
	SetInboxLimit(n int)
	// InboxDepth is how many items are pending.
	InboxDepth() int
	// AppendInbox stores an item durably and returns its sequence number.
	AppendInbox(it InboxItem) (uint64, error)
	// PendingInbox lists pending items after a sequence number.
	PendingInbox(after uint64, limit int) ([]InboxItem, error)
	// InboxProcessed tells the store that every item up to seq was
	// published or set aside, so that the oldest pending item InboxStats
	// reports starts after them; DropInbox removes items durably.
	InboxProcessed(seq uint64)
	// UpdateInbox stores an item's new state (attempts, next try).
	UpdateInbox(it InboxItem) error
	// SetAsideInbox moves an item that cannot be handled out of the way,
	// with the reason.
	SetAsideInbox(it InboxItem, reason string) error
	// DropInbox deletes handled items.
	DropInbox(seqs ...uint64) error
	// InboxSignal is signalled when an item is appended.
	InboxSignal() <-chan struct{}
	// InboxStats counts pending items and tells the oldest one's time.
	InboxStats() (pending int, oldest time.Time, err error)
	// Webhooks are the layer's payload webhook endpoints.
	AddWebhook(name string) (Webhook, error)
	DeleteWebhook(id string) (Webhook, error)
	Webhooks() []Webhook
	LookupWebhook(id string) (Webhook, bool)
	HasWebhooks() bool
}

// Outbox holds the outbound deliveries: each event for each endpoint,
// written in the same commit as what it announces.
type Outbox interface {
	// Enqueue stores deliveries.
	Enqueue(ds []Delivery) error
	// OutboxSignal is signalled when deliveries are stored or change.
	OutboxSignal() <-chan struct{}
	// Deliveries lists deliveries after an id.
	Deliveries(after string, limit int, pendingOnly bool) ([]*Delivery, error)
	// GetDelivery reads one delivery.
	GetDelivery(id string) (*Delivery, error)
	// UpdateDelivery stores a delivery's new state.
	UpdateDelivery(d *Delivery) error
	// ModifyDelivery changes a delivery under the outbox's lock.
	ModifyDelivery(id string, fn func(d *Delivery) error) (*Delivery, error)
	// RedeliverDelivery makes a finished delivery pending again.
	RedeliverDelivery(id string) (*Delivery, error)
	// OutboxChanges lists the deliveries changed since a change number and
	// returns the newest change number.
	OutboxChanges(since uint64) ([]*Delivery, uint64, error)
	// PruneDeliveries deletes finished deliveries older than before.
	PruneDeliveries(before time.Time) (int, error)
}

// Logs are the layer's event log (sync events, read by followers) and
// audit log (who changed what).
type Logs interface {
	AppendEvents(es []Event) error
	Events(after uint64, limit int) ([]Event, error)
	LastEventSeq() (uint64, error)
	// EventSignal is signalled when events are appended.
	EventSignal() <-chan struct{}
	PruneEvents(before time.Time) (int, error)
	AppendAudit(a AuditEntry) (AuditEntry, error)
	Audit(after uint64, limit int) ([]AuditEntry, error)
	AuditTail(limit int) ([]AuditEntry, error)
	PruneAudit(before time.Time) (int, error)
}

// Runs are the records of runs and the checkpoints of syncs.
type Runs interface {
	// PutRun stores a run, with outbound events in the same commit.
	PutRun(r *Run, announce ...Delivery) error
	GetRun(id string) (*Run, error)
	// ActiveRuns lists runs queued or running (for recovery at start).
	ActiveRuns() ([]*Run, error)
	Runs() ([]*Run, error)
	RecentRuns(limit int) ([]*Run, error)
	// PruneRuns deletes finished runs older than before.
	PruneRuns(before time.Time) (int, error)
	// Checkpoint is the published checkpoint of a sync of a source key.
	Checkpoint(source, sync string) ([]byte, error)
}

// Connections are the connections of the layer's sources (SPEC §12).
type Connections interface {
	// PutConnection stores a connection, with outbound events in the same
	// commit; with create, ErrExists when it exists.
	PutConnection(c *Connection, create bool, announce ...Delivery) error
	GetConnection(source, id string) (*Connection, error)
	// Connections calls fn for the connections of source after an id, in
	// id order, until fn returns false.
	Connections(source, after string, fn func(c *Connection) bool) error
	// DeleteConnection soft-deletes the connection's records and its
	// checkpoints in one revision and deletes the connection.
	DeleteConnection(info PublishInfo, source, id string) (Revision, error)
}

// Settings are small values the host keeps per layer.
type Settings interface {
	Meta(name string) ([]byte, error)
	SetMeta(name string, value []byte) error
	DeleteMeta(names ...string) error
}

// Snapshot reads one revision. Close it when done.
type Snapshot interface {
	Revision() Revision
	// Retained tells whether the revision is still kept.
	Retained() bool
	Close()
	// Get reads one record by source key, model and id.
	Get(source, model, id string) (StoredRecord, bool, error)
	// Scan walks a model's records of a source key by id.
	Scan(source, model, afterID string, fn func(r *StoredRecord) (bool, error)) error
	// ScanConnections walks a model's records over every connection of a
	// source, by connection and id.
	ScanConnections(source, model, afterConn, afterID string, fn func(r *StoredRecord) (bool, error)) error
	// Changes walks the records changed after revision since.
	Changes(since int64, fn func(r *StoredRecord) error) error
	CountRecords() ([]ModelCount, error)
	CountSource(sourceKey string) ([]ModelCount, error)
	// CountChanges counts this revision's records from an older snapshot's
	// counts and the changes in between.
	CountChanges(old Snapshot, oldCounts []ModelCount) ([]ModelCount, error)
	// Lookup finds ids of records whose indexed field has one of values.
	Lookup(source, model, field string, values []any, limit int) (ids []string, more bool, err error)
	LookupConnections(source, model, field string, values []any, limit int) (keys []RecordKey, more bool, err error)
}

// Staging is a run's changes until they are published or aborted.
type Staging interface {
	Run() string
	// NextAttempt forgets the changes of a failed attempt.
	NextAttempt() error
	// Checkpoint is where a sync of a source key resumes: own tells that
	// it was written by this staging.
	Checkpoint(source, sync string, fromScratch bool) (cp []byte, own bool, err error)
	// Writer writes the changes of one source key.
	Writer(source string, opts WriterOptions) StageWriter
	// Publish makes the staged changes a revision.
	Publish(info PublishInfo) (Revision, error)
	// Abort drops the staged changes.
	Abort() error
}

// StageWriter writes one source key's changes into a staging.
type StageWriter interface {
	Apply(changes []Change) error
	// Checkpoint stages a sync's checkpoint, published with the changes.
	Checkpoint(sync string, state []byte) error
	Close() error
}
