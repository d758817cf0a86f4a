package badger

import "github.com/synclayer/synclayer/core/store"

// The store's types, under their short names in this driver.
type (
	Action         = store.Action
	ActionMask     = store.ActionMask
	Attempt        = store.Attempt
	AuditEntry     = store.AuditEntry
	Batch          = store.Batch
	Change         = store.Change
	Connection     = store.Connection
	Counts         = store.Counts
	Cursor         = store.Cursor
	Delivery       = store.Delivery
	Event          = store.Event
	FieldIndex     = store.FieldIndex
	InboxItem      = store.InboxItem
	MetadataFormat = store.MetadataFormat
	ModelCount     = store.ModelCount
	ModelCounts    = store.ModelCounts
	Page           = store.Page
	PublishInfo    = store.PublishInfo
	Query          = store.Query
	RecordKey      = store.RecordKey
	Revision       = store.Revision
	Run            = store.Run
	StoredRecord   = store.StoredRecord
	SyncRef        = store.SyncRef
	Webhook        = store.Webhook
	WriterOptions  = store.WriterOptions
)

// The store's constants and errors, under their short names in this driver.
const (
	Added   = store.Added
	Updated = store.Updated
	Deleted = store.Deleted

	MaskAdded   = store.MaskAdded
	MaskUpdated = store.MaskUpdated
	MaskDeleted = store.MaskDeleted

	MetadataSynclayer = store.MetadataSynclayer
	MetadataNango     = store.MetadataNango

	RunQueued    = store.RunQueued
	RunRunning   = store.RunRunning
	RunCompleted = store.RunCompleted
	RunFailed    = store.RunFailed

	DeliveryPending   = store.DeliveryPending
	DeliveryDelivered = store.DeliveryDelivered
	DeliveryFailed    = store.DeliveryFailed
	DeliveryStopped   = store.DeliveryStopped

	LeaseTTL = store.LeaseTTL
)

var (
	ErrBadCursor    = store.ErrBadCursor
	ErrClosed       = store.ErrClosed
	ErrExists       = store.ErrExists
	ErrInboxFull    = store.ErrInboxFull
	ErrNoRevision   = store.ErrNoRevision
	ErrNotFound     = store.ErrNotFound
	ErrNotIndexed   = store.ErrNotIndexed
	ErrRevisionGone = store.ErrRevisionGone
	ErrStagingDone  = store.ErrStagingDone

	SourceKey      = store.SourceKey
	SplitSourceKey = store.SplitSourceKey
	PageToken      = store.PageToken
	ParsePosition  = store.ParsePosition
	ParseCursor    = store.ParseCursor
	RunIDTime      = store.RunIDTime
)
