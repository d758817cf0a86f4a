package engine

import (
	"context"
	"sync"
)

// limiter bounds the runs in progress: on the host (service
// max_concurrent_runs) and per source (its max_concurrent_runs). A run
// holds its slots while an attempt runs and gives them back while it waits
// to retry, so that a backoff holds no other run up.
type limiter struct {
	mu       sync.Mutex
	host     int
	hostMax  int
	bySource map[*source]int
	// changed is closed (and replaced) whenever slots are given back.
	changed chan struct{}
	// freed is called after slots were given back (wakes the layers).
	freed func()
}

func newLimiter(hostMax int, freed func()) *limiter {
	if hostMax <= 0 {
		hostMax = 1 << 30
	}
	return &limiter{hostMax: hostMax, bySource: map[*source]int{}, changed: make(chan struct{}), freed: freed}
}

func (lm *limiter) fitsLocked(srcs []*source) bool {
	if lm.host >= lm.hostMax {
		return false
	}
	for _, s := range srcs {
		if max := s.cfg.MaxConcurrentRuns; max > 0 && lm.bySource[s] >= max {
			return false
		}
	}
	return true
}

func (lm *limiter) takeLocked(srcs []*source) {
	lm.host++
	for _, s := range srcs {
		lm.bySource[s]++
	}
}

// tryAcquire takes slots for a run of srcs if they are free.
func (lm *limiter) tryAcquire(srcs []*source) bool {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if !lm.fitsLocked(srcs) {
		return false
	}
	lm.takeLocked(srcs)
	return true
}

// acquire waits for slots for a run of srcs.
func (lm *limiter) acquire(ctx context.Context, srcs []*source) error {
	for {
		lm.mu.Lock()
		if lm.fitsLocked(srcs) {
			lm.takeLocked(srcs)
			lm.mu.Unlock()
			return nil
		}
		ch := lm.changed
		lm.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// release gives back the slots of a run of srcs.
func (lm *limiter) release(srcs []*source) {
	lm.mu.Lock()
	lm.host--
	for _, s := range srcs {
		if lm.bySource[s]--; lm.bySource[s] <= 0 {
			delete(lm.bySource, s)
		}
	}
	close(lm.changed)
	lm.changed = make(chan struct{})
	lm.mu.Unlock()
	if lm.freed != nil {
		lm.freed()
	}
}

// hostRoom tells whether the host has a free slot.
func (lm *limiter) hostRoom() bool {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	return lm.host < lm.hostMax
}

// sourceRoom tells whether a source has a free slot.
func (lm *limiter) sourceRoom(s *source) bool {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	return s.cfg.MaxConcurrentRuns <= 0 || lm.bySource[s] < s.cfg.MaxConcurrentRuns
}
