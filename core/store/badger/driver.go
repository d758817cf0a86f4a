package badger

import (
	"fmt"

	"github.com/synclayer/synclayer/core/store"
)

// The driver's types are the store's interfaces.
var (
	_ store.Backuper    = (*Store)(nil)
	_ store.Layer       = (*Layer)(nil)
	_ store.Snapshot    = (*Snapshot)(nil)
	_ store.Staging     = (*Staging)(nil)
	_ store.StageWriter = (*StageWriter)(nil)
)

// Layer opens (creating if needed) the database of the named layer.
func (s *Store) Layer(name string) (store.Layer, error) {
	l, err := s.layer(name)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// OpenSnapshot opens revision n for reading; n == 0 opens the current
// revision. ok is false when the revision does not exist or is no longer
// kept.
func (l *Layer) OpenSnapshot(n int64) (store.Snapshot, bool, error) {
	s, ok, err := l.openSnapshot(n)
	if err != nil || !ok {
		return nil, ok, err
	}
	return s, true, nil
}

// BeginStaging starts staging the changes of run.
func (l *Layer) BeginStaging(run string) (store.Staging, error) {
	st, err := l.beginStaging(run)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Writer writes the changes of one source key into the staging.
func (st *Staging) Writer(source string, opts WriterOptions) store.StageWriter {
	return st.writer(source, opts)
}

// CountChanges counts the records of this revision from an older snapshot
// of the same layer and its counts, walking only the changes in between.
func (s *Snapshot) CountChanges(old store.Snapshot, oldCounts []ModelCount) ([]ModelCount, error) {
	o, ok := old.(*Snapshot)
	if !ok {
		return nil, fmt.Errorf("store: CountChanges given a %T, not a snapshot of this driver", old)
	}
	return s.countChanges(o, oldCounts)
}
