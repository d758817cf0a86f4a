package plugin

import (
	"sync"

	"google.golang.org/grpc/mem"
)

// BufferPool is the gRPC buffer pool of the host's connections to its
// plugins: gRPC's default tiers, without clearing a buffer it hands out
// again. gRPC's default pool clears them because it cannot know its users.
// Here they are the transport's frame reads and the assembly of received
// messages, which fill every byte of the length they ask for before reading
// it (gRPC's own transport reads its frames into an uncleared pool for that
// reason), and the encoding of sent messages, which writes what it sends.
// Clearing the 1 MiB buffer of each received batch of records was 4-7% of
// the host's CPU in a generator ingest and a re-sync of unchanged records.
//
// The host's main package also makes it gRPC's default
// (experimental.SetDefaultBufferPool, which only an init function may
// call): the proto codec assembles each received message in a buffer of
// the default pool, whatever the connection's.
var BufferPool mem.BufferPool = newDirtyPool(1<<8, 1<<12, 1<<14, 1<<15, 1<<20)

// dirtyPool is a mem.BufferPool of buffers in size tiers that are not
// cleared when reused. A request above the largest tier is allocated.
type dirtyPool struct {
	tiers []dirtyTier
}

type dirtyTier struct {
	size int
	pool sync.Pool
}

// newDirtyPool makes a pool with tiers of the given sizes, ascending.
func newDirtyPool(sizes ...int) *dirtyPool {
	p := &dirtyPool{tiers: make([]dirtyTier, len(sizes))}
	for i, s := range sizes {
		p.tiers[i].size = s
	}
	return p
}

// Get returns a buffer of length bytes (their content is whatever the
// buffer last held).
func (p *dirtyPool) Get(length int) *[]byte {
	for i := range p.tiers {
		t := &p.tiers[i]
		if length > t.size {
			continue
		}
		if b, ok := t.pool.Get().(*[]byte); ok {
			*b = (*b)[:length]
			return b
		}
		b := make([]byte, length, t.size)
		return &b
	}
	b := make([]byte, length)
	return &b
}

// Put gives back a buffer Get returned (or a prefix of it); one of no
// tier's size is left to the collector.
func (p *dirtyPool) Put(b *[]byte) {
	c := cap(*b)
	for i := range p.tiers {
		if c == p.tiers[i].size {
			p.tiers[i].pool.Put(b)
			return
		}
	}
}
