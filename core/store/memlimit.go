package store

import (
	"math"
	"os"
	"runtime/debug"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// The host's memory, as the Go runtime counts it, is a fixed part of its
// own (HTTP server, plugin connections, run state) plus, for each open
// layer, what its Badger database keeps: memtables, block and index
// caches, and the table builders of its compactions. The builders are the
// part that grows with a layer's size: a compaction of a bigger tree
// splits into more ranges and keeps up to 8 + 5 tables in the making at
// once, each builder a buffer of twice the table size; Badger also pools
// up to 8 used builders' buffers for reuse. None of that is an option. On
// a 1,000,000-record ingest they held 32-48 MiB at the peak against 8 MiB
// at 100,000, and Go's collector, pacing on the live heap, let the peak
// anonymous RSS follow: 121-131 MiB against 65-71 MiB (bench rss_growth
// 1.6-1.9).
//
// With Options.MemoryLimit, the store keeps the process's Go soft memory
// limit (runtime/debug.SetMemoryLimit) at MemoryBase plus LayerMemory for
// every open layer: the collector then runs more often once the heap
// nears what the layers need, and returns freed memory to the system
// sooner, rather than letting compaction garbage pile up. It is a soft
// limit: live data above it is never refused, Go only spends more (at most
// about half the CPU) collecting. Measured on the 1,000,000-record ingest
// (2 cores): peak anonymous RSS 93 MiB against 65 MiB at 100,000 (1.43),
// for ~15% more CPU over the whole ingest.
//
// An operator's GOMEMLIMIT wins: with it set, the store leaves the limit
// alone.

// MemoryBase is the host's memory outside its layers' databases, the fixed
// part of the soft memory limit (see Options.MemoryLimit).
const MemoryBase = 32 << 20

// LayerMemory is the memory one layer opened with opts counts for in the
// soft memory limit: all its memtables, its block and index caches, and
// one table builder (twice a table) per compactor.
func LayerMemory(opts badger.Options) int64 {
	return int64(opts.NumMemtables)*opts.MemTableSize +
		opts.BlockCacheSize + opts.IndexCacheSize +
		int64(opts.NumCompactors)*2*opts.BaseTableSize
}

// memLimit is the process-wide sum of the open layers' LayerMemory, over
// every Store opened with MemoryLimit.
var memLimit struct {
	sync.Mutex
	layers int64
}

// addLayerMemory adds n bytes (negative: removes) to the open layers'
// memory and sets the soft memory limit accordingly; with no layer left it
// lifts the limit. It does nothing when the operator set GOMEMLIMIT.
func addLayerMemory(n int64) {
	if os.Getenv("GOMEMLIMIT") != "" || n == 0 {
		return
	}
	memLimit.Lock()
	defer memLimit.Unlock()
	memLimit.layers += n
	if memLimit.layers <= 0 {
		memLimit.layers = 0
		debug.SetMemoryLimit(math.MaxInt64)
		return
	}
	debug.SetMemoryLimit(MemoryBase + memLimit.layers)
}
