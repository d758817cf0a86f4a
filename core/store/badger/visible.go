package badger

import (
	"fmt"
	"sync"
)

// Visibility of revisions. A publish commits its revision under the
// publisher lock (l.pub), which orders revisions, hands out their numbers
// and keeps their timestamps in order; the revision then has to reach
// stable storage before readers may see it. That fsync happens after the
// lock is released (awaitVisible): the next publish, a checkpoint or a
// run's record commit meanwhile instead of queueing behind the disk, and
// publishes that wait at the same time share one fsync (durable.go).
//
// Readers still see revisions strictly in order: a committed revision is
// in l.refs (the writers' view: numbers, retention, merging) but readers
// see only the first l.visible of them. A revision becomes visible once an
// fsync that began after its commit has finished, together with every
// revision committed before it (the same fsync covered them); its
// in-memory effects (retention, inbox depth, the outbox's wake-up) are
// applied then, in commit order.
//
// A kill -9 at any point loses nothing: a committed revision is in
// Badger's write-ahead log, and the next start finds it (a revision is one
// commit, or parts that no reader sees before the last). A failed fsync
// leaves the revision invisible, and every later one too (they may build
// on its records): the layer then refuses to publish until the host
// restarts and finds on disk what was written.
type visibility struct {
	mu sync.Mutex
	// pending are the committed revisions readers do not see yet,
	// ascending by number.
	pending []pendingRevision
	// failed is set when the fsync of a revision failed.
	failed error
	// inflight counts the revisions committed and not yet through
	// awaitVisible: closing the layer waits for them.
	inflight sync.WaitGroup
}

// pendingRevision is what making a committed revision visible does.
type pendingRevision struct {
	num       int64
	ts        uint64
	plan      retentionPlan
	consumed  int
	announced bool
}

// committed records a revision just committed at the end of l.refs.
// Call with l.pub held; awaitVisible(num) must follow, without l.pub.
func (l *Layer) committed(p pendingRevision) {
	l.vis.mu.Lock()
	l.vis.pending = append(l.vis.pending, p)
	l.vis.mu.Unlock()
	l.vis.inflight.Add(1)
}

// publishable fails once a revision's fsync failed. Call with l.pub held.
func (l *Layer) publishable() error {
	l.vis.mu.Lock()
	defer l.vis.mu.Unlock()
	if l.vis.failed != nil {
		return fmt.Errorf("store: layer %q publishes no more revisions in this process: %w; restart the host (it finds on disk what was written)", l.name, l.vis.failed)
	}
	return nil
}

// madeVisible finishes a publish: rev and err are what its commit under
// l.pub returned; it waits for rev to become visible (awaitVisible). what
// names the publish in an error.
func (l *Layer) madeVisible(rev Revision, err error, what string) (Revision, error) {
	if err != nil {
		return Revision{}, err
	}
	if err := l.awaitVisible(rev.Number); err != nil {
		return Revision{}, fmt.Errorf("store: %s: %w", what, err)
	}
	return rev, nil
}

// awaitVisible returns once revision num, committed by this caller, is
// on stable storage and readers see it. Call without l.pub, exactly once
// per committed revision.
func (l *Layer) awaitVisible(num int64) error {
	defer l.vis.inflight.Done()
	err := l.durable()
	v := &l.vis
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil && v.failed == nil {
		v.failed = fmt.Errorf("an fsync failed: %w", err)
	}
	if v.failed != nil {
		if l.visibleThrough(num) {
			return nil // an earlier fsync covered it
		}
		return fmt.Errorf("sync the revision: %w", v.failed)
	}
	// Everything committed before this caller's fsync began is on disk:
	// this revision and those before it.
	n := 0
	for n < len(v.pending) && v.pending[n].num <= num {
		n++
	}
	if n == 0 {
		return nil // made visible by a later revision's caller
	}
	done := v.pending[:n]
	l.mu.Lock()
	l.visible += n
	for _, p := range done {
		l.stored = append(l.stored, p.num)
	}
	l.mu.Unlock()
	announced := false
	for _, p := range done {
		l.applyRetention(p.plan)
		l.inboxConsumed(p.consumed)
		announced = announced || p.announced
	}
	v.pending = append(v.pending[:0:0], v.pending[n:]...)
	if announced {
		l.signalOutbox()
	}
	return nil
}

// visibleThrough tells whether readers see revision num.
func (l *Layer) visibleThrough(num int64) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.visible > 0 && l.refs[l.visible-1].num >= num
}

// newestVisibleLocked is the index of the newest revision readers see (-1:
// none). Call with l.mu held.
func (l *Layer) newestVisibleLocked() int { return l.visible - 1 }

// firstPendingTS is the timestamp of the oldest revision committed and
// not yet visible, if any.
func (l *Layer) firstPendingTS() (uint64, bool) {
	l.vis.mu.Lock()
	defer l.vis.mu.Unlock()
	if len(l.vis.pending) == 0 {
		return 0, false
	}
	return l.vis.pending[0].ts, true
}
