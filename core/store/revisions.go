package store

import (
	"errors"
	"time"
)

// LeaseTTL is how long a revision that a reader is paging stays readable
// after its last page, whatever keep_revisions and keep_for say: each page
// of a cursor walk renews it.
const LeaseTTL = 5 * time.Minute

// AuditEntry is one entry of the audit log: who changed what, when.
type AuditEntry struct {
	Seq     uint64            `json:"seq"`
	Time    time.Time         `json:"time"`
	Layer   string            `json:"layer"`
	Action  string            `json:"action"`
	Details map[string]string `json:"details,omitempty"`
}

// Counts are the changes of one model in a run or revision.
type Counts struct {
	Added     int64 `json:"added"`
	Updated   int64 `json:"updated"`
	Deleted   int64 `json:"deleted"`
	Unchanged int64 `json:"unchanged,omitempty"`
}

// Changed is the number of records added, updated or deleted.
func (c Counts) Changed() int64 { return c.Added + c.Updated + c.Deleted }

// Revision is one published change set of a layer.
type Revision struct {
	Number    int64     `json:"revision"`
	CreatedAt time.Time `json:"created_at"`
	Trigger   string    `json:"trigger"`
	Run       string    `json:"run,omitempty"`
	Sources   []string  `json:"sources"`
	// Counts by source, then model.
	Counts map[string]map[string]Counts `json:"counts"`
	Pinned bool                         `json:"pinned"`
	// TS is the Badger commit timestamp readers of this revision use.
	TS uint64 `json:"ts"`
}

// ErrNoRevision is returned for a revision the layer does not have.
var ErrNoRevision = errors.New("no such revision")
