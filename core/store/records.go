package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/synclayer/synclayer/core/store/internal/jsonvalid"
)

// CheckChanges checks the records of source's changes as every driver
// checks what it writes: each one JSON object, without the top-level key
// _metadata (however spelled), which readers add. The error names the
// first that fails. A write with a record that fails it fails whole; the
// drivers check a direct publish with it before writing anything, and a
// caller that gathers changes of several origins into one write (the
// payload webhook inbox) checks each origin's first, so that one bad
// webhook is set aside alone.
func CheckChanges(source string, cs []Change) error {
	for i := range cs {
		if c := &cs[i]; !c.Delete {
			if _, err := jsonvalid.Record(c.Data); err != nil {
				return fmt.Errorf("%s %s/%s: %w", source, c.Model, c.ID, err)
			}
		}
	}
	return nil
}

// Batch is one source's changes in a direct publish.
type Batch struct {
	Source  string
	Changes []Change
	Options WriterOptions
}

// StoredRecord is a record as a snapshot returns it: its payload (the
// connector's JSON object) and its metadata.
type StoredRecord struct {
	Source string
	Model  string
	ID     string
	// Connection is the connection the record belongs to; "" for records
	// of a source without connections (today every record).
	Connection     string
	Payload        []byte
	Action         Action
	Cursor         Cursor
	FirstSeenAt    time.Time
	LastModifiedAt time.Time
	// Revision is the revision that last changed the record.
	Revision int64
}

// Deleted tells whether the record is soft-deleted.
func (r *StoredRecord) Deleted() bool { return r.Action == Deleted }

// ErrNotIndexed is returned by Lookup for a field without a complete index
// at the snapshot's revision.
var ErrNotIndexed = errors.New("store: field not indexed at this revision")

// RecordKey names a record of a model of a source: the connection it
// belongs to ("" for none) and its id.
type RecordKey struct{ Connection, ID string }

// Less orders record keys by connection, then id.
func (k RecordKey) Less(o RecordKey) bool {
	if k.Connection != o.Connection {
		return k.Connection < o.Connection
	}
	return k.ID < o.ID
}

// Change is one record change as a connector sends it.
type Change struct {
	Model  string
	ID     string
	Data   []byte // JSON object; unused for a delete
	Delete bool
}

// WriterOptions tune how a source's changes are applied.
type WriterOptions struct {
	// IgnoreIfModifiedAfter skips a change to a record that a revision
	// published after this staging began has modified (the merging strategy
	// ignore_if_modified_after).
	IgnoreIfModifiedAfter bool
	// TrackDeletes lists models whose records this writer does not save
	// become deleted when the staging is published (a full run with
	// track_deletes).
	TrackDeletes []string
	// Models are the models the writer's sync writes: the merging
	// strategy holds for them only (every model of the source if empty).
	Models []string
}

// AddPairs records, for a staging, the (source key, model) pairs a writer
// of source with these options stages under: in tracked those whose
// records it does not save are deleted at the publish (TrackDeletes), in
// ignore those merged with ignore_if_modified_after (model "": every model
// of the source key).
func (o WriterOptions) AddPairs(source string, tracked, ignore map[[2]string]bool) {
	for _, m := range o.TrackDeletes {
		tracked[[2]string{source, m}] = true
	}
	if o.IgnoreIfModifiedAfter {
		if len(o.Models) == 0 {
			ignore[[2]string{source, ""}] = true
		}
		for _, m := range o.Models {
			ignore[[2]string{source, m}] = true
		}
	}
}

// PublishInfo describes the revision a change set becomes.
type PublishInfo struct {
	Trigger string
	Sources []string
	Run     string
	// Announce, when set, returns the outbound events that announce the
	// revision; they are committed with it.
	Announce func(Revision) []Delivery
	// Consume lists inbox items whose changes the revision holds; they are
	// removed in the same commit.
	Consume []uint64
	// Meta holds settings (as Settings.SetMeta sets them) that the
	// revision sets in its own commit: what a run learned that its next
	// run reads, such as a sync having completed once.
	Meta map[string][]byte
}
