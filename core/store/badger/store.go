// Package badger is the embedded store driver, the default: the only code
// that touches Badger. Each layer has its own
// Badger database, opened in managed mode so that every version of a key
// carries the timestamp it was committed at. A published revision is a
// timestamp: readers of revision N open a Badger transaction at N's
// timestamp, so they see exactly the records of revision N and nothing a run
// is still staging. Runs stage their changes in place, at a timestamp above
// every published one, and become visible when their revision record is
// committed: there is no second write of the records when a run is
// published.
package badger

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/hashicorp/go-hclog"
)

// stagingGap separates a run's staging timestamp from the newest published
// one. Everything published while the run stages (webhook batches) takes a
// timestamp inside the gap, below the staged changes.
const stagingGap = 1 << 32

// readLatest is the read timestamp for keys that are not versioned by
// revision (runs, checkpoints, events, metadata).
const readLatest = math.MaxUint64

// Options configure a Store.
type Options struct {
	// Dir holds one Badger directory per layer under Dir/layers.
	Dir string
	// EncryptionKey, when set, enables Badger's AES encryption at rest. It
	// must be 16, 24 or 32 bytes.
	EncryptionKey []byte
	Logger        hclog.Logger
	// InMemory keeps everything in memory (tests only).
	InMemory bool
	// MappedBudget bounds the host's file-backed resident memory: above
	// it, the layers' memory-mapped Badger files are paged out (Linux,
	// maptrim_linux.go). 0 means DefaultMappedBudget; a negative value
	// turns trimming off.
	MappedBudget int64
	// MemoryLimit keeps the process's Go soft memory limit at what the
	// open layers need (memlimit.go): MemoryBase plus LayerMemory per
	// layer on disk, over every store that asks for it. The host sets it;
	// an operator's GOMEMLIMIT overrides it.
	MemoryLimit bool
}

// Store holds the layers' databases.
type Store struct {
	opts   Options
	log    hclog.Logger
	mu     sync.Mutex
	layers map[string]*Layer
	closed bool
	trim   *mapTrimmer
	// memory is what this store's layers add to the soft memory limit.
	memory int64
}

// Dir is the folder the store lives in (the service's data_dir).
func (s *Store) Dir() string { return s.opts.Dir }

var layerName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// Open prepares a store under opts.Dir. Layers are opened on first use.
func Open(opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if !opts.InMemory {
		if err := os.MkdirAll(filepath.Join(opts.Dir, "layers"), 0o700); err != nil {
			return nil, fmt.Errorf("store: create data dir: %w", err)
		}
	}
	s := &Store{opts: opts, log: opts.Logger, layers: map[string]*Layer{}}
	if !opts.InMemory && opts.MappedBudget >= 0 {
		budget := opts.MappedBudget
		if budget == 0 {
			budget = DefaultMappedBudget
		}
		s.trim = startMapTrimmer(opts.Dir, budget)
	}
	return s, nil
}

// BadgerOptions are the Badger options of a layer database. They are chosen
// for bounded memory (small memtables and caches) and fast ingest of records
// of about a kilobyte: record payloads go to the value log, written once and
// in cursor order, while the LSM tree holds keys, pointers and the small
// record index.
func BadgerOptions(dir string) badger.Options {
	opts := badger.DefaultOptions(dir)
	// Tables of one size at every level: compactions build tables in
	// memory, and bigger tables deep in the tree made the host's memory
	// grow with the layer's size.
	opts.TableSizeMultiplier = 1
	// Memtables of 8 MiB: each is a skiplist arena of its size plus a
	// table builder of up to twice it when flushed, allocated anew each
	// time; at 16 MiB the host's peak heap during an ingest grew from
	// ~52 MiB at 30,000 records to ~115 MiB at 300,000.
	return opts.
		WithLogger(nil).
		WithNumVersionsToKeep(1).
		WithDetectConflicts(false).
		WithValueThreshold(256).
		WithMemTableSize(8 << 20).
		WithNumMemtables(3).
		WithNumLevelZeroTables(5).
		WithNumLevelZeroTablesStall(15).
		WithBaseTableSize(4 << 20).
		WithBlockCacheSize(24 << 20).
		WithIndexCacheSize(8 << 20).
		WithValueLogFileSize(256 << 20).
		WithCompression(options.None).
		WithNumCompactors(2).
		WithCompactL0OnClose(false)
}

// Layer opens (creating if needed) the database of the named layer.
func (s *Store) layer(name string) (*Layer, error) {
	if !layerName.MatchString(name) {
		return nil, fmt.Errorf("store: invalid layer name %q", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if l, ok := s.layers[name]; ok {
		return l, nil
	}
	opts := BadgerOptions(filepath.Join(s.opts.Dir, "layers", name))
	if s.opts.InMemory {
		// In memory, Badger keeps every value in the LSM tree.
		opts = opts.WithDir("").WithValueDir("").WithInMemory(true).WithValueThreshold(1 << 20)
	}
	if len(s.opts.EncryptionKey) > 0 {
		opts = opts.WithEncryptionKey(s.opts.EncryptionKey)
	}
	opts = opts.WithLogger(badgerLogger{s.log.Named("badger").With("layer", name)})
	db, err := badger.OpenManaged(opts)
	if err != nil {
		return nil, fmt.Errorf("store: open layer %q: %w", name, err)
	}
	l := &Layer{name: name, db: db, log: s.log.With("layer", name), keep: 10, stopGC: make(chan struct{}),
		vlog: vlogWrites{threshold: opts.ValueThreshold}}
	if err := l.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: load layer %q: %w", name, err)
	}
	if !s.opts.InMemory {
		// Collect once a quarter of a value-log file was written.
		l.gcDone = make(chan struct{})
		go l.gcLoop(l.stopGC, l.gcDone, gcCheckEvery, opts.ValueLogFileSize/4)
	}
	s.layers[name] = l
	if s.opts.MemoryLimit && !s.opts.InMemory {
		n := LayerMemory(opts)
		s.memory += n
		addLayerMemory(n)
	}
	return l, nil
}

// Close closes every open layer.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.trim != nil {
		s.trim.close()
	}
	var errs []error
	for _, l := range s.layers {
		errs = append(errs, l.close())
	}
	addLayerMemory(-s.memory)
	s.memory = 0
	return errors.Join(errs...)
}

// Layer is one layer's database: records, revisions, runs, checkpoints and
// events. All changes to what readers see go through the layer's publisher
// lock, one commit at a time.
type Layer struct {
	name string
	db   *badger.DB
	log  hclog.Logger

	// pub serialises everything that allocates timestamps or publishes.
	pub sync.Mutex
	// ts is the newest timestamp handed out below any active staging.
	ts      uint64
	staging *Staging

	// mu guards refs, stored, pinned, keep, keepFor, leases and discardTS
	// for readers.
	mu sync.RWMutex
	// refs has every committed revision, ascending by number (and so by
	// timestamp and commit time). It only grows: readers may keep a
	// snapshot of the slice header. Readers see its first visible ones:
	// those after are committed and not yet on stable storage
	// (visible.go).
	refs    []revRef
	visible int
	// stored lists, ascending, the revisions whose record (v/) is on disk:
	// the readable ones and those about to be pruned.
	stored  []int64
	pinned  int64
	keep    int
	keepFor time.Duration
	leases  map[int64]time.Time
	// discardTS is the oldest timestamp readers may use; Badger may drop
	// versions only older revisions needed. Persisted (m/discard).
	discardTS uint64
	stopGC    chan struct{}
	gcDone    chan struct{} // closed when gcLoop returns (nil: none runs)
	vlog      vlogWrites    // bytes written to the value log since the last collection
	// backups counts backups reading the layer: closing waits for them
	// (they stop early once closed is set).
	backups sync.WaitGroup
	// closed is set when the layer closes: calls after it get ErrClosed
	// instead of reaching Badger, which panics on a closed database.
	closed atomic.Bool
	// ops counts reads in progress (enter, exit); close waits for them.
	ops atomic.Int64
	// syncer fsyncs what is acknowledged, in groups (durable.go).
	syncer syncer
	// vis makes committed revisions visible in order (visible.go).
	vis visibility

	eventSeq uint64
	// sysTS is the timestamp of the last system commit that completed
	// (setLatest): reads of the logs happen there (viewCommitted).
	sysTS    atomic.Uint64
	auditSeq uint64

	outMu  sync.Mutex
	outSig chan struct{}

	evMu  sync.Mutex
	evSig chan struct{} // closed when events are appended (tail.go)

	hookMu   sync.RWMutex
	hooks    map[[32]byte]Webhook
	inboxSeq uint64
	inMu     sync.Mutex
	inSig    chan struct{}
	// inDepth counts the waiting inbox items, inLimit bounds them (0: no
	// bound), inHead is the sequence number below which all are done.
	inDepth, inLimit atomic.Int64
	inHead           atomic.Uint64

	fidx atomic.Pointer[fieldIndexes] // field indexes maintained at publish (fieldindex.go)
}

// Name is the layer's name.
func (l *Layer) Name() string { return l.name }

func (l *Layer) close() error {
	l.closed.Store(true)
	close(l.stopGC)
	if l.gcDone != nil {
		<-l.gcDone // a collection in progress ends first
	}
	l.pub.Lock()
	defer l.pub.Unlock()
	l.vis.inflight.Wait() // revisions committed, their fsync under way
	l.backups.Wait()
	// Reads that began before closed was set end first: Badger panics on
	// a read of a closed database. They are short (a records page, a
	// GraphQL request under its time limit); the wait is bounded anyway.
	for deadline := time.Now().Add(closeWait); l.ops.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := l.ops.Load(); n > 0 {
		l.log.Warn("closing the layer with reads still in progress", "reads", n)
	}
	return l.db.Close()
}

// closeWait bounds how long closing a layer waits for reads in progress.
const closeWait = 15 * time.Second

// enter registers a read of the database; it fails with ErrClosed once the
// layer is closing. Every enter that succeeds is paired with exit.
func (l *Layer) enter() error {
	l.ops.Add(1)
	if l.closed.Load() {
		l.ops.Add(-1)
		return ErrClosed
	}
	return nil
}

func (l *Layer) exit() { l.ops.Add(-1) }

// load reads revisions and metadata, and rolls back any staging that a crash
// interrupted: versions above the newest published timestamp were never
// published, so they are restored to their published state.
func (l *Layer) load() error {
	refs, err := l.readRefs()
	if err != nil {
		return err
	}
	l.refs, l.visible = refs, len(refs)
	if err := l.loadPinned(); err != nil {
		return err
	}
	if err := l.loadRetention(); err != nil {
		return err
	}
	if l.eventSeq, err = l.loadSeq(pfxEvent, metaEventSeq); err != nil {
		return err
	}
	if l.auditSeq, err = l.loadSeq(pfxAudit, metaAuditSeq); err != nil {
		return err
	}
	if l.inboxSeq, err = l.lastSeq(pfxInbox); err != nil {
		return err
	}
	if err := l.countInbox(); err != nil {
		return err
	}
	if err := l.loadWebhooks(); err != nil {
		return err
	}
	l.ts = l.db.MaxVersion()
	l.sysTS.Store(l.ts)
	staged, err := l.getLatest(metaKey(metaStaging))
	if err != nil {
		return err
	}
	direct, err := l.getLatest(metaKey(metaPublishing))
	if err != nil {
		return err
	}
	if staged == nil && direct != nil {
		// A large direct publish was cut short: its partial commits
		// were never published.
		l.ts++
		n, err := l.rollbackAbove(l.publishedTS(), l.ts)
		if err != nil {
			return fmt.Errorf("roll back an unpublished webhook batch: %w", err)
		}
		l.log.Warn("rolled back the changes of a webhook batch interrupted before it was published; its webhooks are still in the inbox", "keys", n)
	}
	if direct != nil {
		if err := l.setLatestLocked(func(txn *badger.Txn) error { return txn.Delete(metaKey(metaPublishing)) }); err != nil {
			return err
		}
	}
	if staged != nil {
		// A run was staging when the process stopped: nothing of it was
		// published, so restore its keys to the published state.
		l.ts++
		n, err := l.rollbackAbove(l.publishedTS(), l.ts)
		if err != nil {
			return fmt.Errorf("roll back unpublished changes: %w", err)
		}
		l.log.Warn("rolled back the changes of a run interrupted before it was published", "run", string(staged), "keys", n)
		// Its pending checkpoints and seen markers go too: a run queued
		// again must not resume from a checkpoint whose records were just
		// rolled back.
		if err := l.dropRunLeftovers(string(staged)); err != nil {
			return fmt.Errorf("drop the leftovers of an interrupted run: %w", err)
		}
		txn := l.db.NewTransactionAt(readLatest, true)
		defer txn.Discard()
		if err := txn.Delete(metaKey(metaStaging)); err != nil {
			return err
		}
		if err := txn.CommitAt(l.nextTS(), nil); err != nil {
			return err
		}
	}
	// No run stages when the store opens: what private stagings and
	// pending checkpoints were left behind belongs to runs that will be
	// queued again from their committed checkpoints.
	if err := l.dropKeysLocked([]byte{pfxPrivate}, []byte{pfxPendingCP}); err != nil {
		return fmt.Errorf("drop the leftovers of interrupted runs: %w", err)
	}
	return nil
}

// dropRunLeftovers deletes a run's pending checkpoints and seen markers.
func (l *Layer) dropRunLeftovers(run string) error {
	var keys [][]byte
	err := l.viewLatest(func(txn *badger.Txn) error {
		for _, pfx := range [][]byte{append(strKey(pfxPendingCP, run), 0), append(strKey(pfxSeen, run), 0)} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
			for it.Rewind(); it.Valid(); it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			it.Close()
		}
		return nil
	})
	if err != nil || len(keys) == 0 {
		return err
	}
	wb := l.db.NewWriteBatchAt(l.nextTS())
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// publishedTS is the timestamp of the newest published revision (0: none).
func (l *Layer) publishedTS() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.refs) == 0 {
		return 0
	}
	return l.refs[len(l.refs)-1].ts
}

// nextTS hands out a timestamp for a write that is not staged. Call with
// l.pub held.
func (l *Layer) nextTS() uint64 {
	l.ts++
	return l.ts
}

// commitTime returns a commit time strictly after the newest revision's.
func (l *Layer) commitTime() time.Time {
	now := time.Now().UTC().Truncate(time.Microsecond)
	l.mu.RLock()
	defer l.mu.RUnlock()
	if n := len(l.refs); n > 0 {
		if last := l.refs[n-1].createdAt(); !now.After(last) {
			now = last.Add(time.Microsecond)
		}
	}
	return now
}

// setLatest writes system keys (not versioned by revision) in one commit.
func (l *Layer) setLatest(fn func(txn *badger.Txn) error) error {
	if l.closed.Load() {
		return ErrClosed
	}
	l.pub.Lock()
	defer l.pub.Unlock()
	return l.setLatestLocked(fn)
}

// setLatestLocked is setLatest for callers that hold l.pub (or load).
func (l *Layer) setLatestLocked(fn func(txn *badger.Txn) error) error {
	txn := l.db.NewTransactionAt(readLatest, true)
	defer txn.Discard()
	if err := fn(txn); err != nil {
		return err
	}
	ts := l.nextTS()
	if err := txn.CommitAt(ts, nil); err != nil {
		return err
	}
	l.sysTS.Store(ts)
	return nil
}

// viewCommitted reads system keys as of the last system commit that
// completed. A read at the newest version (viewLatest) may see part of a
// commit being applied, in any order of its keys: logs read by sequence
// number (events) must not, or a reader could see entry N+1 and go on past
// N, which shows up a moment later.
func (l *Layer) viewCommitted(fn func(txn *badger.Txn) error) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.exit()
	txn := l.db.NewTransactionAt(max(l.sysTS.Load(), 1), false)
	defer txn.Discard()
	return fn(txn)
}

// viewLatest reads system keys at their newest version.
func (l *Layer) viewLatest(fn func(txn *badger.Txn) error) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.exit()
	txn := l.db.NewTransactionAt(readLatest, false)
	defer txn.Discard()
	return fn(txn)
}

// rollbackAbove restores every record key that has versions above pub to its
// state at pub, writing at ts. Call with l.pub held (or during load).
func (l *Layer) rollbackAbove(pub, ts uint64) (int, error) {
	return l.rollbackRange(pub, math.MaxUint64, ts)
}

// rollbackRange restores every record key that has a version in (pub, hi]
// to its state at pub, writing at ts. Versions above hi (an open staging's,
// when a direct publish is rolled back below it) stay above the restored
// state. Call with l.pub held (or during load).
func (l *Layer) rollbackRange(pub, hi, ts uint64) (int, error) {
	it := l.db.NewTransactionAt(readLatest, false)
	defer it.Discard()
	old := l.db.NewTransactionAt(pub, false)
	defer old.Discard()
	wb := l.db.NewWriteBatchAt(ts)
	defer wb.Cancel()
	n := 0
	for _, pfx := range []byte{pfxRecord, pfxIndex, pfxSeen, pfxFieldIndex} {
		iter := it.NewIterator(badger.IteratorOptions{AllVersions: true, SinceTs: pub, Prefix: []byte{pfx}})
		var last []byte
		for iter.Rewind(); iter.Valid(); iter.Next() {
			k := iter.Item().Key()
			if v := iter.Item().Version(); v <= pub || v > hi {
				continue
			}
			if last != nil && string(k) == string(last) {
				continue
			}
			last = iter.Item().KeyCopy(nil)
			item, err := old.Get(last)
			switch {
			case errors.Is(err, badger.ErrKeyNotFound):
				err = wb.Delete(last)
			case err != nil:
			default:
				var v []byte
				if v, err = item.ValueCopy(nil); err == nil {
					err = wb.Set(last, v)
				}
			}
			if err != nil {
				iter.Close()
				return n, err
			}
			n++
		}
		iter.Close()
	}
	if err := wb.Flush(); err != nil {
		return n, err
	}
	return n, nil
}

// revisionAt returns the revision a reader should see: n, or when n is 0
// the pinned revision if any, else the newest. It fails with ErrNoRevision
// for a revision that never existed and ErrRevisionGone for one no longer
// kept; with n = 0 and nothing published, ok is false. Only the number,
// timestamp and commit time of the revision are set.
func (l *Layer) revisionAt(n int64) (rev Revision, ok bool, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if n == 0 {
		n = l.pinned
	}
	newest := l.newestVisibleLocked()
	if n == 0 {
		if newest < 0 {
			return Revision{}, false, nil
		}
		return l.refs[newest].revision(), true, nil
	}
	i := l.refIndexLocked(n)
	if newest < 0 || n < 1 || n > l.refs[newest].num {
		return Revision{}, false, fmt.Errorf("%w: %d", ErrNoRevision, n)
	}
	if !l.readableLocked(i, time.Now()) {
		return Revision{}, false, fmt.Errorf("%w: %d (the layer keeps its newest %d, those younger than %s, the pinned one and those being paged)", ErrRevisionGone, n, l.keep, l.keepFor)
	}
	return l.refs[i].revision(), true, nil
}

type badgerLogger struct{ l hclog.Logger }

func (b badgerLogger) Errorf(f string, a ...interface{}) { b.l.Error(fmt.Sprintf(f, a...)) }

// Warningf logs Badger's warnings, except its block-cache advice: Badger
// warns every minute that the block cache "might be too small" when blocks
// live less than 10 s in it and under 40% of reads hit it. Cursor walks over
// a layer larger than the cache read each block once, so they always hit
// about 1% whatever the cache's size, and that is not a fault: measured on
// 100,000 records of 1 KiB, walks read 526-725 k records/s with 24 MiB
// (0.2-0.4% hits), 448-666 k/s with 96 MiB (0.8-0.9% hits), and 175-312 k/s
// without a cache. The warning and the life-expectancy line that follows it
// go to DEBUG.
func (b badgerLogger) Warningf(f string, a ...interface{}) {
	msg := fmt.Sprintf(f, a...)
	if strings.HasPrefix(msg, "Block cache might be too small") || strings.HasPrefix(msg, "Cache life expectancy") {
		b.l.Debug(msg)
		return
	}
	b.l.Warn(msg)
}

func (b badgerLogger) Infof(f string, a ...interface{})  { b.l.Debug(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Debugf(f string, a ...interface{}) { b.l.Trace(fmt.Sprintf(f, a...)) }
