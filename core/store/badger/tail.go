package badger

import (
	"encoding/json"

	"github.com/dgraph-io/badger/v4"
)

// What readers that follow a layer (the dashboard, Server-Sent Events of the
// event log) need beside the paged reads: the newest entries and a signal
// when events arrive.

// EventSignal is closed-and-replaced whenever events are appended, so a
// follower of the event log can wait for new entries instead of polling.
// Take the channel before reading, then read, then wait on it: an append
// between the read and the wait closes the channel already taken.
func (l *Layer) EventSignal() <-chan struct{} {
	l.evMu.Lock()
	defer l.evMu.Unlock()
	if l.evSig == nil {
		l.evSig = make(chan struct{})
	}
	return l.evSig
}

func (l *Layer) signalEvents() {
	l.evMu.Lock()
	defer l.evMu.Unlock()
	if l.evSig != nil {
		close(l.evSig)
		l.evSig = nil
	}
}

// LastEventSeq is the sequence number of the newest event in the log (0
// when it is empty).
func (l *Layer) LastEventSeq() (uint64, error) { return l.lastSeq(pfxEvent) }

// RecentRuns returns up to limit run records, newest first. Run ids begin
// with their time, so the newest are the last keys.
func (l *Layer) RecentRuns(limit int) ([]*Run, error) {
	out := []*Run{}
	err := l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxRun}, Reverse: true, PrefetchValues: true, PrefetchSize: min(limit, 100)})
		defer it.Close()
		for it.Seek([]byte{pfxRun, 0xff}); it.Valid() && len(out) < limit; it.Next() {
			var r Run
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return err
			}
			out = append(out, &r)
		}
		return nil
	})
	return out, err
}
