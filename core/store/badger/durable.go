package badger

import "sync"

// Durability. Badger runs with SyncWrites off, so a commit is in the
// operating system's hands when it returns: a kill -9 of the host loses
// nothing, a power cut or kernel crash could. What synclayer acknowledges
// is fsync'ed before it is: a payload webhook before its 202 (AppendInbox)
// and a revision before readers can see it (awaitVisible). Commits that
// wait at the same time share one fsync (group commit): the first to find
// no fsync running starts one covering every commit made so far; the
// others wait for it or the next.
type syncer struct {
	mu        sync.Mutex
	cond      *sync.Cond
	requested uint64 // tickets handed out
	done      uint64 // tickets covered by a finished fsync
	running   bool
	err       error // of the last fsync
}

// testHookSync, when set (tests only), runs inside each fsync;
// testHookSyncErr, when set, may fail it.
var (
	testHookSync    func()
	testHookSyncErr func() error
)

// durable returns once everything this layer committed before the call is
// on stable storage.
func (l *Layer) durable() error {
	s := &l.syncer
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cond == nil {
		s.cond = sync.NewCond(&s.mu)
	}
	s.requested++
	ticket := s.requested
	for s.done < ticket {
		if s.running {
			s.cond.Wait()
			continue
		}
		s.running = true
		covers := s.requested
		s.mu.Unlock()
		err := l.db.Sync()
		if testHookSync != nil {
			testHookSync()
		}
		if testHookSyncErr != nil && err == nil {
			err = testHookSyncErr()
		}
		s.mu.Lock()
		s.running = false
		s.done, s.err = covers, err
		s.cond.Broadcast()
	}
	return s.err
}
