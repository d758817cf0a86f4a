package badger

import (
	"math"
	"runtime/debug"
	"testing"
)

// With MemoryLimit, the soft memory limit follows the open layers: the
// fixed part plus each layer's Badger memory, and no limit once the store
// is closed.
func TestMemoryLimitFollowsLayers(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(math.MaxInt64)
	s, err := Open(Options{Dir: t.TempDir(), MemoryLimit: true, MappedBudget: -1})
	if err != nil {
		t.Fatal(err)
	}
	per := LayerMemory(BadgerOptions(t.TempDir()))
	if per < 64<<20 || per > 128<<20 {
		t.Fatalf("LayerMemory = %d MiB: memtables, caches and builders of today's options are 72 MiB", per>>20)
	}
	for i, name := range []string{"a", "b"} {
		if _, err := s.layer(name); err != nil {
			t.Fatal(err)
		}
		if got, want := debug.SetMemoryLimit(-1), int64(MemoryBase)+int64(i+1)*per; got != want {
			t.Fatalf("after opening %d layers the limit is %d, want %d", i+1, got, want)
		}
	}
	// Opening a layer again counts it once.
	if _, err := s.layer("a"); err != nil {
		t.Fatal(err)
	}
	if got, want := debug.SetMemoryLimit(-1), int64(MemoryBase)+2*per; got != want {
		t.Fatalf("after reopening a layer the limit is %d, want %d", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("after Close the limit is %d, want none", got)
	}
}

// An operator's GOMEMLIMIT wins; a store without MemoryLimit leaves the
// limit alone.
func TestMemoryLimitLeftAlone(t *testing.T) {
	defer debug.SetMemoryLimit(math.MaxInt64)
	for _, c := range []struct {
		env string
		on  bool
	}{{"1GiB", true}, {"", false}} {
		t.Setenv("GOMEMLIMIT", c.env)
		debug.SetMemoryLimit(math.MaxInt64)
		s, err := Open(Options{Dir: t.TempDir(), MemoryLimit: c.on, MappedBudget: -1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.layer("a"); err != nil {
			t.Fatal(err)
		}
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
			t.Fatalf("GOMEMLIMIT=%q, MemoryLimit=%v: the store set a limit of %d", c.env, c.on, got)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A live heap above the layers' budget lifts the limit to liveHeadroom
// above it, and the limit comes back to the budget when it shrinks.
func TestMemoryLimitFollowsALargeLiveHeap(t *testing.T) {
	defer debug.SetMemoryLimit(math.MaxInt64)
	memLimit.Lock()
	defer memLimit.Unlock()
	saved := memLimit.layers
	defer func() { memLimit.layers = saved }()
	memLimit.layers = 72 << 20
	setMemoryLimit(400 << 20)
	if got, want := debug.SetMemoryLimit(-1), int64(800<<20); got != want {
		t.Fatalf("live heap 400 MiB: limit %d MiB, want %d", got>>20, want>>20)
	}
	setMemoryLimit(10 << 20)
	if got, want := debug.SetMemoryLimit(-1), int64(MemoryBase+72<<20); got != want {
		t.Fatalf("live heap 10 MiB: limit %d MiB, want the budget %d", got>>20, want>>20)
	}
}
