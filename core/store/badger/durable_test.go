package badger

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A payload webhook and a revision are fsync'ed before AppendInbox and
// publish return (that is, before the 202 and before readers see the
// revision); waiting commits share fsyncs.
func TestAcknowledgedWritesAreSyncedFirst(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	var syncs atomic.Int64
	release := make(chan struct{})
	var blocked atomic.Bool
	testHookSync = func() {
		syncs.Add(1)
		if blocked.Load() {
			<-release
		}
	}
	defer func() { testHookSync = nil }()

	blocked.Store(true)
	returned := make(chan error, 1)
	go func() {
		_, err := l.AppendInbox(InboxItem{Source: "shop", Body: []byte("{}")})
		returned <- err
	}()
	select {
	case <-returned:
		t.Fatal("AppendInbox returned while its fsync had not finished")
	case <-time.After(200 * time.Millisecond):
	}
	blocked.Store(false)
	close(release)
	if err := <-returned; err != nil {
		t.Fatal(err)
	}

	before := syncs.Load()
	runChanges(t, l, "run_1", save("M", "a", "1"))
	if syncs.Load() == before {
		t.Fatal("a revision became readable without an fsync")
	}

	// Group commit: while one fsync runs, the webhooks committed meanwhile
	// wait for the next one, which covers them all.
	before = syncs.Load()
	hold := make(chan struct{})
	blocked.Store(true)
	release = hold
	testHookSync = func() {
		syncs.Add(1)
		if blocked.Load() {
			<-release
		}
	}
	var wg sync.WaitGroup
	append1 := func() {
		defer wg.Done()
		if _, err := l.AppendInbox(InboxItem{Source: "shop", Body: []byte("{}")}); err != nil {
			t.Error(err)
		}
	}
	wg.Add(1)
	go append1() // its fsync is held
	for syncs.Load() == before {
		time.Sleep(time.Millisecond)
	}
	requested := func() uint64 {
		l.syncer.mu.Lock()
		defer l.syncer.mu.Unlock()
		return l.syncer.requested
	}
	base := requested()
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go append1()
	}
	for requested() < base+50 { // all 50 committed and waiting
		time.Sleep(time.Millisecond)
	}
	blocked.Store(false)
	close(hold)
	wg.Wait()
	if n := syncs.Load() - before; n != 2 {
		t.Fatalf("%d fsyncs for 51 webhooks, 50 of them committed while the first fsync ran: want 2", n)
	}
}
