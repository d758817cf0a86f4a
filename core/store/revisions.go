package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

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

// readRevisions loads every revision record, ascending.
func (l *Layer) readRevisions() ([]Revision, error) {
	var revs []Revision
	err := l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxRevision}, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var r Revision
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return fmt.Errorf("decode revision: %w", err)
			}
			revs = append(revs, r)
		}
		return nil
	})
	return revs, err
}

// Revisions returns the layer's readable revisions, newest first, with the
// pinned flag set on the pinned one.
func (l *Layer) Revisions() []Revision {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := []Revision{}
	for i := len(l.revs) - 1; i >= 0; i-- {
		r := l.revs[i]
		if !l.retainedLocked(r) {
			continue
		}
		r.Pinned = r.Number == l.pinned
		out = append(out, r)
	}
	return out
}

// Current returns the revision readers see now (pinned or newest) and
// whether the layer has any revision.
func (l *Layer) Current() (Revision, bool) {
	r, ok, _ := l.revisionAt(0)
	if ok {
		r.Pinned = r.Number == l.Pinned()
	}
	return r, ok
}

// Newest returns the newest revision, pinned or not.
func (l *Layer) Newest() (Revision, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.revs) == 0 {
		return Revision{}, false
	}
	return l.revs[len(l.revs)-1], true
}

// Pinned returns the pinned revision number, 0 when none.
func (l *Layer) Pinned() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.pinned
}

// ErrNoRevision is returned for a revision the layer does not have.
var ErrNoRevision = errors.New("no such revision")

// appendRevision adds a committed revision to the in-memory list.
func (l *Layer) appendRevision(r Revision) {
	l.mu.Lock()
	l.revs = append(l.revs, r)
	l.mu.Unlock()
}
