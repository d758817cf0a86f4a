package postgres

import "github.com/synclayer/synclayer/core/store"

// The driver's types are the store's interfaces.
var (
	_ store.Store       = (*Store)(nil)
	_ store.Layer       = (*Layer)(nil)
	_ store.Snapshot    = (*Snapshot)(nil)
	_ store.Staging     = (*Staging)(nil)
	_ store.StageWriter = (*StageWriter)(nil)
)

// Layer opens (creating if needed) the named layer.
func (s *Store) Layer(name string) (store.Layer, error) {
	l, err := s.layer(name)
	if err != nil {
		return nil, err
	}
	return l, nil
}
