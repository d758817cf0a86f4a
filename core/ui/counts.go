package ui

import (
	"sync"

	"github.com/synclayer/synclayer/core/store"
)

// recordCounts keeps, per layer, the record counts per model of the
// revision readers see, for the layer page's chart. A count is made once
// per revision: the first by a walk of the record index, the next ones
// from the counts before and the records changed since.
type recordCounts struct {
	mu sync.Mutex
	m  map[string]*layerCounts
}

type layerCounts struct {
	mu     sync.Mutex // held while counting: one count per layer at a time
	rev    int64
	counts []store.ModelCount
}

// get returns the counts of the revision db's readers see now (0 and none
// before the first revision).
func (rc *recordCounts) get(layer string, db store.Layer) (int64, []store.ModelCount, error) {
	rc.mu.Lock()
	lc := rc.m[layer]
	if lc == nil {
		lc = &layerCounts{}
		rc.m[layer] = lc
	}
	rc.mu.Unlock()
	snap, ok, err := db.OpenSnapshot(0)
	if err != nil || !ok {
		return 0, nil, err
	}
	defer snap.Close()
	lc.mu.Lock()
	defer lc.mu.Unlock()
	rev := snap.Revision().Number
	if lc.rev == rev {
		return rev, lc.counts, nil
	}
	counts, err := lc.count(db, snap)
	if err != nil {
		return 0, nil, err
	}
	lc.rev, lc.counts = rev, counts
	return rev, counts, nil
}

// count counts snap's revision: from the counts kept and the changes since
// when their revision is older and still readable, else by a full walk.
func (lc *layerCounts) count(db store.Layer, snap store.Snapshot) ([]store.ModelCount, error) {
	if lc.rev > 0 && lc.rev < snap.Revision().Number {
		old, ok, err := db.OpenSnapshot(lc.rev)
		if err == nil && ok {
			defer old.Close()
			return snap.CountChanges(old, lc.counts)
		}
	}
	return snap.CountRecords()
}
