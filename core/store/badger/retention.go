package badger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

const (
	metaPinned  = "pinned"
	metaDiscard = "discard"
)

// SetKeepRevisions sets how many of the newest revisions stay readable
// (pinned ones always do). Older versions of records are garbage-collected.
func (l *Layer) SetKeepRevisions(n int) { l.SetRetention(n, l.keepForNow()) }

func (l *Layer) keepForNow() time.Duration {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.keepFor
}

// SetRetention sets which revisions stay readable: the newest keep, every
// one younger than keepFor, the pinned one, and those a reader is paging
// (LeaseTTL). A revision that stopped being readable never becomes readable
// again, even when keep or keepFor grow: compactions may have dropped what
// it needs.
func (l *Layer) SetRetention(keep int, keepFor time.Duration) {
	if keep < 1 {
		keep = 1
	}
	l.pub.Lock()
	defer l.pub.Unlock()
	l.mu.Lock()
	l.keep, l.keepFor = keep, max(keepFor, 0)
	l.mu.Unlock()
	if err := l.retainNow(); err != nil {
		l.log.Warn("could not prune revisions", "error", err)
	}
}

// readableLocked tells whether refs[i] is still readable. Call with l.mu
// held.
func (l *Layer) readableLocked(i int, now time.Time) bool {
	newest := l.newestVisibleLocked()
	if i < 0 || i > newest {
		return false // none, or not visible yet
	}
	r := l.refs[i]
	if r.ts < l.discardTS {
		return false // what it needs may be compacted away
	}
	if r.num > l.refs[newest].num-int64(l.keep) || r.num == l.pinned {
		return true
	}
	if l.keepFor > 0 && now.Sub(r.createdAt()) < l.keepFor {
		return true
	}
	exp, ok := l.leases[r.num]
	return ok && now.Before(exp)
}

// retentionPlan is what a commit does for retention: the new discard
// timestamp (0: unchanged) and the revision records to delete.
type retentionPlan struct {
	discard uint64
	drop    []int64
}

// planRetention works out the oldest readable revision as of now, with
// next (when set) counted as published, and which revision records are no
// longer readable. It costs in proportion to the revisions it drops and
// the pinned and leased ones, not to the layer's history. Call with l.pub
// held.
func (l *Layer) planRetention(now time.Time, next *revRef) retentionPlan {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A plan with next applies when next becomes visible, and so every
	// revision committed before it; one without applies now, to what
	// readers see.
	refs := l.refs[:l.visible]
	if next != nil {
		l.refs = append(l.refs, *next)
		defer func() { l.refs = l.refs[:len(l.refs)-1] }()
		refs = l.refs
	}
	n := len(refs)
	if n == 0 {
		return retentionPlan{}
	}
	for num, exp := range l.leases {
		if !now.Before(exp) {
			delete(l.leases, num)
		}
	}
	// The window of keep_revisions and keep_for starts at boundary; both
	// conditions hold for a suffix of the refs.
	newest := refs[n-1].num
	boundary := sort.Search(n, func(i int) bool { return refs[i].num > newest-int64(l.keep) })
	if l.keepFor > 0 {
		cut := now.Add(-l.keepFor).UnixMicro()
		boundary = min(boundary, sort.Search(n, func(i int) bool { return refs[i].at > cut }))
	}
	oldest := refs[min(boundary, n-1)].ts
	held := func(num int64) bool {
		if num == l.pinned {
			return true
		}
		exp, ok := l.leases[num]
		return ok && now.Before(exp)
	}
	if l.pinned != 0 {
		if i := l.refIndexLocked(l.pinned); i >= 0 && i < n && refs[i].ts >= l.discardTS {
			oldest = min(oldest, refs[i].ts)
		}
	}
	for num := range l.leases {
		if i := l.refIndexLocked(num); i >= 0 && i < n && refs[i].ts >= l.discardTS {
			oldest = min(oldest, refs[i].ts)
		}
	}
	var plan retentionPlan
	if oldest > l.discardTS {
		plan.discard = oldest
	}
	bnum := refs[min(boundary, n-1)].num
	for _, num := range l.stored {
		if num >= bnum {
			break
		}
		if !held(num) {
			plan.drop = append(plan.drop, num)
		}
	}
	return plan
}

// write adds the plan's writes to txn.
func (p retentionPlan) write(txn *badger.Txn) error {
	if p.discard != 0 {
		if err := txn.Set(metaKey(metaDiscard), []byte(strconv.FormatUint(p.discard, 10))); err != nil {
			return err
		}
	}
	for _, num := range p.drop {
		if err := txn.Delete(u64Key(pfxRevision, uint64(num))); err != nil {
			return err
		}
	}
	return nil
}

// apply makes a committed plan effective: Badger may now drop the versions
// only older revisions needed. Call with l.pub held or from awaitVisible
// (the discard timestamp only moves forward).
func (l *Layer) applyRetention(p retentionPlan) {
	l.mu.Lock()
	if p.discard > l.discardTS {
		l.discardTS = p.discard
	}
	discard := l.discardTS
	if len(p.drop) > 0 {
		drop := make(map[int64]bool, len(p.drop))
		for _, n := range p.drop {
			drop[n] = true
		}
		kept := l.stored[:0]
		for _, n := range l.stored {
			if !drop[n] {
				kept = append(kept, n)
			}
		}
		l.stored = kept
	}
	if p.discard != 0 {
		l.db.SetDiscardTs(discard)
	}
	l.mu.Unlock()
}

// retainNow applies retention in a commit of its own. Call with l.pub
// held.
func (l *Layer) retainNow() error {
	plan := l.planRetention(time.Now(), nil)
	if plan.discard == 0 && len(plan.drop) == 0 {
		return nil
	}
	for len(plan.drop) > 0 || plan.discard != 0 {
		chunk := plan
		if len(chunk.drop) > 1000 {
			chunk.drop = chunk.drop[:1000]
		}
		txn := l.db.NewTransactionAt(readLatest, true)
		err := chunk.write(txn)
		if err == nil {
			err = txn.CommitAt(l.nextTS(), nil)
		}
		txn.Discard()
		if err != nil {
			return err
		}
		l.applyRetention(chunk)
		plan.drop = plan.drop[len(chunk.drop):]
		plan.discard = 0
	}
	return nil
}

// Lease keeps revision n readable for LeaseTTL from now (a reader is
// paging it). It does nothing for a revision no longer readable.
func (l *Layer) Lease(n int64) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if i := l.refIndexLocked(n); i >= 0 && l.readableLocked(i, now) {
		if l.leases == nil {
			l.leases = map[int64]time.Time{}
		}
		l.leases[n] = now.Add(LeaseTTL)
	}
}

// Pin makes revision n the one readers see until Unpin. Syncs go on
// publishing newer revisions meanwhile.
//
// announce are the outbound events of the pin, committed with it.
func (l *Layer) Pin(n int64, announce ...Delivery) error {
	l.pub.Lock()
	defer l.pub.Unlock()
	l.mu.RLock()
	i := l.refIndexLocked(n)
	retained := l.readableLocked(i, time.Now())
	var newest int64
	if v := l.newestVisibleLocked(); v >= 0 {
		newest = l.refs[v].num
	}
	l.mu.RUnlock()
	if i < 0 && (n < 1 || n > newest) {
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
	if err := putDeliveries(txn, announce); err != nil {
		return err
	}
	if err := txn.CommitAt(l.nextTS(), nil); err != nil {
		return err
	}
	l.mu.Lock()
	l.pinned = n
	l.mu.Unlock()
	if len(announce) > 0 {
		l.signalOutbox()
	}
	return nil
}

// Unpin lets readers see the newest revision again. It returns the
// revision that was pinned (0: none).
func (l *Layer) Unpin() (int64, error) { return l.UnpinWith(nil) }

// UnpinWith is Unpin, with the outbound events that announce it (given
// the revision that was pinned) committed with it.
func (l *Layer) UnpinWith(announce func(was int64) []Delivery) (int64, error) {
	l.pub.Lock()
	defer l.pub.Unlock()
	txn := l.db.NewTransactionAt(readLatest, true)
	defer txn.Discard()
	l.mu.RLock()
	was := l.pinned
	l.mu.RUnlock()
	if err := txn.Delete(metaKey(metaPinned)); err != nil {
		return 0, err
	}
	var ds []Delivery
	if announce != nil && was != 0 {
		ds = announce(was)
		if err := putDeliveries(txn, ds); err != nil {
			return 0, err
		}
	}
	if err := txn.CommitAt(l.nextTS(), nil); err != nil {
		return 0, err
	}
	l.mu.Lock()
	l.pinned = 0
	l.mu.Unlock()
	if len(ds) > 0 {
		l.signalOutbox()
	}
	if err := l.retainNow(); err != nil {
		l.log.Warn("could not prune revisions", "error", err)
	}
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

// loadRetention reads the discard point (Badger may have compacted up to
// it: no revision below it is readable, whatever the settings say now) and
// which revision records are on disk.
func (l *Layer) loadRetention() error {
	b, err := l.getLatest(metaKey(metaDiscard))
	if err != nil {
		return err
	}
	if b != nil {
		if l.discardTS, err = strconv.ParseUint(string(b), 10, 64); err != nil {
			return fmt.Errorf("corrupt discard point %q", b)
		}
		l.db.SetDiscardTs(l.discardTS)
	}
	l.stored = l.stored[:0]
	return l.viewLatest(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxRevision}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			l.stored = append(l.stored, int64(binary.BigEndian.Uint64(it.Item().Key()[1:])))
		}
		return nil
	})
}

// Value-log garbage collection. A record payload (and an inbox item) is
// written once to the value log; when a newer version replaces it and no
// retained revision needs the old one any more, a compaction of the LSM
// tree drops the old pointer and tells the value log that its bytes are
// garbage. RunValueLogGC then rewrites the file with the most garbage, if
// at least gcDiscardRatio of it is, and deletes it. Collection is paced by
// what the layer writes, not by the clock: garbage can only come from
// writes, so a layer that writes a lot is collected often (and each pass is
// short), and an idle layer costs nothing.
const (
	// gcCheckEvery is how often the loop looks at the bytes written.
	gcCheckEvery = 10 * time.Second
	// gcDiscardRatio is the share of a value-log file that must be known
	// garbage before it is rewritten. At 0.5 a rewrite copies at most as
	// many live bytes as it frees (a write amplification of at most 2),
	// and the files other than the one being written hold at most twice
	// their live data. Lower ratios bound the disk closer to the live data
	// but copy more to free less (0.25: three live bytes per freed one).
	gcDiscardRatio = 0.5
)

// vlogWrites counts the bytes a layer writes to its value log: values at
// or above Badger's value threshold (smaller ones stay in the LSM tree).
type vlogWrites struct {
	threshold int64
	n         atomic.Int64
}

// add counts a value written. A nil counter counts nothing.
func (w *vlogWrites) add(v []byte) {
	if w != nil && int64(len(v)) >= w.threshold {
		w.n.Add(int64(len(v)))
	}
}

// gcLoop collects value-log garbage until stop closes: every check, once
// the layer has written at least every bytes to its value log since the
// last pass. It closes done when it returns.
func (l *Layer) gcLoop(stop <-chan struct{}, done chan<- struct{}, check time.Duration, every int64) {
	defer close(done)
	t := time.NewTicker(check)
	defer t.Stop()
	var sinceFlatten int64
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if l.vlog.n.Load() < every {
			continue
		}
		written := l.vlog.n.Swap(0)
		sinceFlatten += written
		// Badger learns of garbage only when a compaction drops the
		// versions that pointed at it, and by itself compacts level 0
		// only once it holds several tables: hundreds of megabytes of
		// value log later. Compacting the tree first makes the garbage
		// written so far known, at the cost of rewriting the tree's
		// tables (keys and pointers, small next to the payloads): done
		// at most once per the tree's size of value-log writes, so it
		// costs at most as much as the writes themselves. (Flatten
		// merges level 0 into the levels below it; while the whole tree
		// is in level 0 it does nothing, so it is not called.)
		var lsm int64
		used := 0
		levels := l.db.Levels()
		for _, lv := range levels {
			lsm += lv.Size
			if lv.NumTables > 0 {
				used++
			}
		}
		if used > 1 && levels[0].NumTables > 0 && sinceFlatten >= lsm {
			sinceFlatten = 0
			if err := l.db.Flatten(1); err != nil {
				l.log.Warn("could not compact the tree before collecting value-log garbage", "error", err)
			}
		}
		// A rewrite frees at least gcDiscardRatio of a file: this many
		// keep up with what was written, and one pass stays short.
		l.collectValueLog(stop, int(written/int64(gcDiscardRatio*float64(l.db.Opts().ValueLogFileSize)))+1)
	}
}

// collectValueLog rewrites value-log files while one has enough garbage,
// up to most of them. It returns how many it rewrote.
func (l *Layer) collectValueLog(stop <-chan struct{}, most int) int {
	n := 0
	for ; n < most; n++ {
		select {
		case <-stop:
			return n
		default:
		}
		start := time.Now()
		if err := l.db.RunValueLogGC(gcDiscardRatio); err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				l.log.Warn("value log garbage collection failed", "error", err)
			}
			break
		}
		l.log.Debug("value log file rewritten", "took", time.Since(start))
	}
	return n
}
