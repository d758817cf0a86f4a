package badger

import (
	"strings"
	"testing"
	"time"
)

// Garbage collection paces itself on the bytes written to the value log:
// record payloads of staged runs and direct publishes, and inbox items,
// counted when they reach Badger's value threshold (smaller values live in
// the LSM tree and never become value-log garbage).
func TestValueLogWritesAreCounted(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	big := `{"body":"` + strings.Repeat("x", 2000) + `"}`
	written := func() int64 { return l.vlog.n.Load() }

	runChanges(t, l, "run_1", save("M", "small", "tiny"))
	if n := written(); n != 0 {
		t.Fatalf("a record below the value threshold counted %d bytes", n)
	}
	runChanges(t, l, "run_2", Change{Model: "M", ID: "a", Data: []byte(big)})
	staged := written()
	if staged < int64(len(big)) {
		t.Fatalf("a staged record of %d bytes counted %d", len(big), staged)
	}
	if _, err := l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: "src", Changes: []Change{{Model: "M", ID: "b", Data: []byte(big)}}}}); err != nil {
		t.Fatal(err)
	}
	direct := written()
	if direct-staged < int64(len(big)) {
		t.Fatalf("a directly published record of %d bytes counted %d", len(big), direct-staged)
	}
	if _, err := l.AppendInbox(InboxItem{Source: "src", Method: "POST", Path: "/", Body: []byte(big)}); err != nil {
		t.Fatal(err)
	}
	if got := written() - direct; got < int64(len(big)) {
		t.Fatalf("an inbox item with a body of %d bytes counted %d", len(big), got)
	}
}

// Past its threshold the loop compacts the tree and collects, resets the
// count, and a layer closed meanwhile waits for the pass to end instead of
// closing Badger under it.
func TestGCLoopRunsOnWritesAndStopsWithTheLayer(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	l.SetRetention(1, 0)
	big := `{"body":"` + strings.Repeat("y", 4000) + `"}`
	for i := 0; i < 20; i++ {
		runChanges(t, l, "run_"+string(rune('a'+i)), Change{Model: "M", ID: "a", Data: []byte(big + strings.Repeat(" ", i))})
	}
	if l.vlog.n.Load() == 0 {
		t.Fatal("nothing counted")
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go l.gcLoop(stop, done, time.Millisecond, 1)
	for l.vlog.n.Load() != 0 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	<-done
	if got, _ := readAll(t, l, Query{}); len(got) != 1 {
		t.Fatalf("after a collection pass: %d records, want 1", len(got))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
