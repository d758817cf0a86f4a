package badger

import (
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"sync"
	"time"

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
// (2 cores, after the same warm-up): peak anonymous RSS 87-97 MiB against
// 64-76 MiB at 100,000, for 50-65% more collections and the same CPU time
// within the noise of the machine (docs/production.md).
//
// When the live heap itself passes that budget (ten thousand connections
// in a layer), the limit follows it at liveHeadroom above the smallest
// live heap of the last five seconds, so that the collector never works
// for long against a limit below what stays live. An operator's GOMEMLIMIT wins: with it set,
// the store leaves the limit alone.

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
// every Store opened with MemoryLimit; stop ends the goroutine that follows
// the live heap (nil when none runs).
var memLimit struct {
	sync.Mutex
	layers int64
	stop   chan struct{}
}

// liveHeadroom is how far above the live heap the limit stays when the
// live heap itself passes the layers' budget (many connections, a big
// request): twice, so the collector then runs no more often than Go's
// default (GOGC=100) makes it. A tighter 1.25 cut the idle RSS of 10,000
// connections from 112 to 73 MB but cost 30% more host CPU per connection
// (connections_10k: 9.2 → 12.3 ms), all of it collection.
const liveHeadroom = 2

// liveEvery is how often the live heap is sampled, and liveWindow how many
// samples the limit follows the smallest of: a working set that stays
// (connections) lifts the limit within seconds, while the builders of one
// compaction, live for a second or two, do not lift it at the moment the
// limit is there to hold.
const (
	liveEvery  = time.Second
	liveWindow = 5
)

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
		if memLimit.stop != nil {
			close(memLimit.stop)
			memLimit.stop = nil
		}
		debug.SetMemoryLimit(math.MaxInt64)
		return
	}
	setMemoryLimit(0)
	if memLimit.stop == nil {
		memLimit.stop = make(chan struct{})
		go followLiveHeap(memLimit.stop)
	}
}

// setMemoryLimit sets the limit to the layers' budget, or to liveHeadroom
// times live, the lasting live heap, when that is more. memLimit is
// locked.
func setMemoryLimit(live int64) {
	limit := MemoryBase + memLimit.layers
	if l := int64(float64(live) * liveHeadroom); l > limit {
		limit = l
	}
	debug.SetMemoryLimit(limit)
}

// followLiveHeap raises (and lowers back) the limit with the smallest live
// heap of the last liveWindow samples, every liveEvery, until stop is
// closed.
func followLiveHeap(stop chan struct{}) {
	t := time.NewTicker(liveEvery)
	defer t.Stop()
	var window [liveWindow]int64
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		window[i%liveWindow] = readLiveHeap()
		if i < liveWindow-1 {
			continue
		}
		memLimit.Lock()
		if memLimit.stop == stop {
			setMemoryLimit(slices.Min(window[:]))
		}
		memLimit.Unlock()
	}
}

// readLiveHeap is the heap the last collection found live, in bytes.
func readLiveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}
