package graphql

import (
	"sort"

	"github.com/synclayer/synclayer/core/store"
)

// ModelCount is how many records one model of one source holds in a
// revision.
type ModelCount struct {
	Source string
	Model  string
	// Live counts the records not deleted; Deleted the soft-deleted ones.
	Live, Deleted int64
}

// ModelCounts counts the records of each (source, model) in revision rev
// of db (0: the revision readers see), from the field statistics the
// service caches per revision: the first call walks the revision, later
// ones only what changed since. It returns the revision's number (0 and
// no counts before anything is published), sorted by source and model.
func (s *Service) ModelCounts(db *store.Layer, rev int64) (int64, []ModelCount, error) {
	snap, ok, err := db.OpenSnapshot(rev)
	if err != nil || !ok {
		return 0, nil, err
	}
	defer snap.Close()
	stats, err := s.stats.get(snap, func(n int64) (*store.Snapshot, error) {
		old, ok, err := db.OpenSnapshot(n)
		if err == nil && !ok {
			err = store.ErrNoRevision
		}
		return old, err
	})
	if err != nil {
		return 0, nil, err
	}
	out := make([]ModelCount, 0, len(stats.models))
	for t, m := range stats.models {
		out = append(out, ModelCount{Source: t.Source, Model: t.Model, Live: m.Live, Deleted: m.Records - m.Live})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Source != out[j].Source {
			return out[i].Source < out[j].Source
		}
		return out[i].Model < out[j].Model
	})
	return snap.Revision().Number, out, nil
}
