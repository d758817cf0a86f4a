package badger

import (
	"math/rand/v2"
	"testing"
)

// The written-ids filter never forgets an id, and at the size and load of
// a 1,000,000-record run (8 bits per id) few ids it never saw pass.
func TestBloomAtARunsLoad(t *testing.T) {
	const n = 1_000_000
	b := newBloom(1 << 23)
	rng := rand.New(rand.NewPCG(3, 4))
	added := make([]uint64, n)
	for i := range added {
		added[i] = rng.Uint64()
		b.add(added[i])
	}
	for _, h := range added {
		if !b.has(h) {
			t.Fatalf("the filter forgot %x", h)
		}
	}
	fp := 0
	for i := 0; i < n; i++ {
		if b.has(rng.Uint64()) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.04 {
		t.Errorf("false-positive rate %.4f, want at most 0.04", rate)
	} else {
		t.Logf("false-positive rate %.4f", rate)
	}
	var empty bloom
	if empty.has(added[0]) {
		t.Error("a filter never made says it saw an id")
	}
}

func BenchmarkBloomAddHas(b *testing.B) {
	f := newBloom(1 << 23)
	rng := rand.New(rand.NewPCG(5, 6))
	hs := make([]uint64, 1<<20)
	for i := range hs {
		hs[i] = rng.Uint64()
	}
	i := 0
	for b.Loop() {
		h := hs[i&(len(hs)-1)]
		if !f.has(h) {
			f.add(h)
		}
		i++
	}
}
