package plugin

import "testing"

func TestDirtyPoolTiers(t *testing.T) {
	p := newDirtyPool(256, 4096)
	for _, tc := range []struct{ length, capacity int }{{0, 256}, {1, 256}, {256, 256}, {257, 4096}, {4096, 4096}, {4097, 4097}} {
		b := p.Get(tc.length)
		if len(*b) != tc.length || cap(*b) != tc.capacity {
			t.Errorf("Get(%d): len %d cap %d, want len %d cap %d", tc.length, len(*b), cap(*b), tc.length, tc.capacity)
		}
		p.Put(b)
	}
	// A buffer given back serves the next request of its tier, at the
	// length asked for; one of a size no tier has is not kept.
	b := p.Get(300)
	(*b)[0] = 'x'
	p.Put(b)
	again := p.Get(1000)
	if len(*again) != 1000 || cap(*again) != 4096 {
		t.Fatalf("Get(1000) after a Put: len %d cap %d", len(*again), cap(*again))
	}
	odd := make([]byte, 10, 1000)
	p.Put(&odd) // not kept, no panic
	if got := p.Get(200); cap(*got) != 256 {
		t.Fatalf("Get(200) cap %d, want 256", cap(*got))
	}
}
