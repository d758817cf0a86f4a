package badger

import (
	"fmt"
	"sync"
	"testing"
)

// A reader following the event log by sequence number never skips one:
// a batch of events committed while it reads shows whole or not at all
// (a read at the newest version could see a later entry of a batch being
// applied before an earlier one, and go on past it).
func TestEventLogReadersSeeWholeBatches(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	const batches, per = 400, 64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := 0; b < batches; b++ {
			es := make([]Event, per)
			for i := range es {
				es[i] = Event{Type: "test", Message: fmt.Sprint(b, "/", i)}
			}
			if err := l.AppendEvents(es); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var after uint64
	for after < batches*per {
		es, err := l.Events(after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Seq != after+1 {
				t.Fatalf("read event %d after %d: event %d was skipped", e.Seq, after, after+1)
			}
			after = e.Seq
		}
	}
	wg.Wait()
}
