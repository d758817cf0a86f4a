package badger

import "github.com/dgraph-io/badger/v4"

// count adds the record of one index item to the counts.
func countItem(m *ModelCount, item *badger.Item) error {
	return item.Value(func(v []byte) error {
		e, err := decodeIndex(v)
		if err != nil {
			return err
		}
		if e.deleted {
			m.Deleted++
		} else {
			m.Live++
		}
		return nil
	})
}

func queryMatches(q *Query, e *entry) bool {
	if q.Model != "" && string(e.model) != q.Model {
		return false
	}
	if q.Source != "" || q.Connection != "" {
		src, conn := splitSourceBytes(e.source)
		if q.Source != "" && string(src) != q.Source {
			return false
		}
		if q.Connection != "" && string(conn) != q.Connection {
			return false
		}
	}
	if q.Actions != 0 && q.Actions&(1<<e.action) == 0 {
		return false
	}
	return true
}
