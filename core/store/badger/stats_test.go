package badger

import (
	"testing"
	"time"
)

func TestInboxStatsAndDiskSize(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := s.layer("cat")
	if err != nil {
		t.Fatal(err)
	}
	if n, oldest, err := l.InboxStats(); err != nil || n != 0 || !oldest.IsZero() {
		t.Fatalf("empty inbox: %d %v %v", n, oldest, err)
	}
	first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var seqs []uint64
	for i := range 3 {
		seq, err := l.AppendInbox(InboxItem{Source: "s", Body: []byte(`{}`), Received: first.Add(time.Duration(i) * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	n, oldest, err := l.InboxStats()
	if err != nil || n != 3 || !oldest.Equal(first) {
		t.Fatalf("inbox of 3: %d %v %v, want 3 and %v", n, oldest, err, first)
	}
	if err := l.DropInbox(seqs[0]); err != nil {
		t.Fatal(err)
	}
	if n, oldest, _ := l.InboxStats(); n != 2 || !oldest.Equal(first.Add(time.Minute)) {
		t.Fatalf("after dropping the oldest: %d %v", n, oldest)
	}
	if lsm, vlog := l.DiskSize(); lsm < 0 || vlog < 0 {
		t.Fatalf("disk size %d %d", lsm, vlog)
	}
	s.Close()
	if lsm, vlog := l.DiskSize(); lsm != 0 || vlog != 0 {
		t.Fatalf("disk size of a closed layer %d %d, want 0", lsm, vlog)
	}
}
