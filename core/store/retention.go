package store

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dgraph-io/badger/v4"
)

const metaPinned = "pinned"

// SetKeepRevisions sets how many of the newest revisions stay readable
// (pinned ones always do). Older versions of records are garbage-collected.
func (l *Layer) SetKeepRevisions(n int) {
	if n < 1 {
		n = 1
	}
	l.pub.Lock()
	l.mu.Lock()
	l.keep = n
	l.mu.Unlock()
	l.retain()
	l.pub.Unlock()
}

// retainedLocked tells whether revision r is still readable. Call with l.mu
// held.
func (l *Layer) retainedLocked(r Revision) bool {
	if len(l.revs) == 0 {
		return false
	}
	newest := l.revs[len(l.revs)-1].Number
	return r.Number > newest-int64(l.keep) || r.Number == l.pinned
}

// retain moves Badger's discard timestamp up to the oldest readable
// revision, so that compactions drop the versions only older revisions
// needed. Call with l.pub held.
func (l *Layer) retain() {
	l.mu.RLock()
	var oldest uint64
	for _, r := range l.revs {
		if l.retainedLocked(r) {
			oldest = r.TS
			break
		}
	}
	l.mu.RUnlock()
	if oldest > l.discardTS {
		l.discardTS = oldest
		l.db.SetDiscardTs(oldest)
	}
}

// Pin makes revision n the one readers see until Unpin. Syncs go on
// publishing newer revisions meanwhile.
func (l *Layer) Pin(n int64) error {
	l.pub.Lock()
	defer l.pub.Unlock()
	l.mu.RLock()
	var found, retained bool
	for _, r := range l.revs {
		if r.Number == n {
			found, retained = true, l.retainedLocked(r)
			break
		}
	}
	l.mu.RUnlock()
	if !found {
		return fmt.Errorf("%w: %d", ErrNoRevision, n)
	}
	if !retained {
		return fmt.Errorf("%w: %d", ErrRevisionGone, n)
	}
	txn := l.db.NewTransactionAt(readLatest, true)
	defer txn.Discard()
	if err := txn.Set(metaKey(metaPinned), []byte(strconv.FormatInt(n, 10))); err != nil {
		return err
	}
	if err := txn.CommitAt(l.nextTS(), nil); err != nil {
		return err
	}
	l.mu.Lock()
	l.pinned = n
	l.mu.Unlock()
	return nil
}

// Unpin lets readers see the newest revision again. It returns the
// revision that was pinned (0: none).
func (l *Layer) Unpin() (int64, error) {
	l.pub.Lock()
	defer l.pub.Unlock()
	txn := l.db.NewTransactionAt(readLatest, true)
	defer txn.Discard()
	if err := txn.Delete(metaKey(metaPinned)); err != nil {
		return 0, err
	}
	if err := txn.CommitAt(l.nextTS(), nil); err != nil {
		return 0, err
	}
	l.mu.Lock()
	was := l.pinned
	l.pinned = 0
	l.mu.Unlock()
	l.retain()
	return was, nil
}

func (l *Layer) loadPinned() error {
	b, err := l.getLatest(metaKey(metaPinned))
	if err != nil || b == nil {
		return err
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("corrupt pin %q", b)
	}
	l.pinned = n
	return nil
}

// gcLoop reclaims value log space now and then, until stop closes.
func (l *Layer) gcLoop(stop <-chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for i := 0; i < 10; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := l.db.RunValueLogGC(0.5); err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
					l.log.Warn("value log garbage collection failed", "error", err)
				}
				break
			}
		}
	}
}

// AuditEntry is one entry of the audit log: who changed what, when.
type AuditEntry struct {
	Seq     uint64            `json:"seq"`
	Time    time.Time         `json:"time"`
	Layer   string            `json:"layer"`
	Action  string            `json:"action"`
	Details map[string]string `json:"details,omitempty"`
}
