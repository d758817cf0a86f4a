package engine

import (
	"context"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/config"
)

// The host's and each source's max_concurrent_runs hold; a slot given back
// wakes a waiting acquire and calls freed.
func TestLimiterHoldsHostAndSourceLimits(t *testing.T) {
	freed := 0
	lm := newLimiter(3, func() { freed++ })
	a := &source{cfg: &config.Source{Name: "a", MaxConcurrentRuns: 2}}
	b := &source{cfg: &config.Source{Name: "b", MaxConcurrentRuns: 2}}
	if !lm.tryAcquire([]*source{a}) || !lm.tryAcquire([]*source{a}) {
		t.Fatal("a's first two runs refused")
	}
	if lm.tryAcquire([]*source{a}) || lm.sourceRoom(a) {
		t.Fatal("a third run of a went past its max_concurrent_runs = 2")
	}
	if !lm.tryAcquire([]*source{b}) {
		t.Fatal("b refused while the host had room")
	}
	if lm.hostRoom() || lm.tryAcquire([]*source{b}) {
		t.Fatal("a fourth run went past the host's max_concurrent_runs = 3")
	}
	got := make(chan error, 1)
	go func() { got <- lm.acquire(context.Background(), []*source{b}) }()
	select {
	case err := <-got:
		t.Fatalf("acquire returned before a slot was free: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	lm.release([]*source{a})
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if freed != 1 {
		t.Fatalf("freed called %d times, want 1", freed)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := lm.acquire(ctx, []*source{a}); err == nil {
		t.Fatal("acquire on a full host ignored its cancelled context")
	}
}
