package store

import (
	"errors"
	"sort"
	"time"
)

// ModelCount is how many records one model of one source holds in a
// revision, over every connection of the source.
type ModelCount struct {
	Source, Model string
	// Live counts the records not deleted; Deleted the soft-deleted ones.
	Live, Deleted int64
	// Connections tells that records of the model belong to connections
	// of the source (SPEC §12): ids are unique per connection only.
	Connections bool
}

// ModelCounts gathers ModelCount rows by source and model as a driver
// counts records: every connection's records count toward their source's
// row.
type ModelCounts map[[2]string]*ModelCount

// ModelCountsOf gathers rows already counted (an earlier revision's, to
// count changes onto).
func ModelCountsOf(rows []ModelCount) ModelCounts {
	m := make(ModelCounts, len(rows))
	for _, c := range rows {
		m[[2]string{c.Source, c.Model}] = &c
	}
	return m
}

// Row returns the row of model under sourceKey (a source, or one
// connection of it: the row then says Connections), making it.
func (m ModelCounts) Row(sourceKey, model string) *ModelCount {
	source, conn := SplitSourceKey(sourceKey)
	k := [2]string{source, model}
	mc := m[k]
	if mc == nil {
		mc = &ModelCount{Source: source, Model: model}
		m[k] = mc
	}
	mc.Connections = mc.Connections || conn != ""
	return mc
}

// Sorted lists the rows that hold records, in source and model order.
func (m ModelCounts) Sorted() []ModelCount {
	out := make([]ModelCount, 0, len(m))
	for _, c := range m {
		if c.Live != 0 || c.Deleted != 0 {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Source != out[j].Source {
			return out[i].Source < out[j].Source
		}
		return out[i].Model < out[j].Model
	})
	return out
}

// FieldIndex names one indexed field: records of Model from Source, by the
// value of their top-level attribute Field.
type FieldIndex struct {
	Source string `json:"source"`
	Model  string `json:"model"`
	Field  string `json:"field"`
}

// ActionMask selects record actions in a query; zero selects every action.
type ActionMask uint8

// Bits of an ActionMask.
const (
	MaskAdded   ActionMask = 1 << Added
	MaskUpdated ActionMask = 1 << Updated
	MaskDeleted ActionMask = 1 << Deleted
)

// Query selects records of one revision.
type Query struct {
	// Revision to read; 0 reads the pinned revision, else the newest.
	Revision int64
	Model    string // empty: every model
	Source   string // empty: every source
	// Connection keeps the records of one connection (of Source, or of
	// any source when Source is empty).
	Connection string
	// After starts after this cursor (exclusive).
	After *Cursor
	// ModifiedAfter keeps records whose last_modified_at is at or after it.
	ModifiedAfter time.Time
	Actions       ActionMask
	// IDs selects records by id (with Model set); Sources lists the sources
	// to look in when Source is empty.
	IDs     []string
	Sources []string
	Limit   int
	// Metadata selects the key and shape of each record's metadata:
	// MetadataSynclayer (the default) or MetadataNango.
	Metadata MetadataFormat
}

// MetadataFormat is how rendered records carry their metadata.
type MetadataFormat uint8

// Metadata formats of a records query.
const (
	// MetadataSynclayer is "_metadata" (SPEC §4).
	MetadataSynclayer MetadataFormat = iota
	// MetadataNango is Nango's "_nango_metadata" (SPEC §13): first_seen_at,
	// last_modified_at, last_action, deleted_at, cursor and pruned_at
	// (always null: synclayer never prunes a payload).
	MetadataNango
)

// Page is the outcome of a records query besides the records themselves.
type Page struct {
	Revision Revision
	// Next is the page token to continue from (it keeps the walk on this
	// revision); empty when there is nothing more.
	Next string
}

// ErrRevisionGone is returned for a revision that is no longer kept.
var ErrRevisionGone = errors.New("revision no longer retained")
