package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// recordsState is a layer's state for records, revisions, staging and
// snapshots (owned by records*.go, stage.go, publish.go, revisions.go).
// It caches nothing another host could change: revisions, pins and
// retention's discard point are read from the database, so every host
// sees the same at once. What it holds is this host's retention settings
// (each host is given the same configuration) and the pruner.
type recordsState struct {
	mu sync.Mutex
	// keep and keepFor are the retention settings (SetRetention).
	keep    int
	keepFor time.Duration

	// prune wakes the pruner (pruneLoop); stop ends it, done tells it
	// ended.
	prune chan struct{}
	stop  chan struct{}
	done  chan struct{}
	// settle asks the pruner to vacuum and analyze the record table
	// after a large publish (settleRecords).
	settle chan struct{}
	// settles counts the publishes that asked for it (tests).
	settles atomic.Int64
	// bg counts the drops of published runs' staged rows under way.
	bg sync.WaitGroup
}

func (r *recordsState) open(ctx context.Context, l *Layer) error {
	r.keep = defaultKeep
	r.prune, r.stop, r.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	r.settle = make(chan struct{}, 1)
	go l.pruneLoop()
	// Versions an earlier host's pruner had not reached yet.
	r.prune <- struct{}{}
	return nil
}

func (r *recordsState) close() {
	if r.stop == nil {
		return
	}
	close(r.stop)
	<-r.done
	r.bg.Wait()
}

func (r *recordsState) notified(l *Layer, kind, payload string) {}

// recClosed is store.ErrClosed once the store is closed.
func (l *Layer) recClosed() error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.s.closed {
		return store.ErrClosed
	}
	return nil
}

// defaultKeep is keep_revisions until SetRetention says otherwise (the
// embedded driver's default too).
const defaultKeep = 10

// published wakes the pruner after a commit that may have moved the
// discard point.
func (l *Layer) afterPublish() {
	select {
	case l.rec.prune <- struct{}{}:
	default:
	}
}
