package badger

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Badger memory-maps every file it writes: the value log (record payloads),
// the tables of its LSM tree and the write-ahead logs of its memtables. It
// writes through those maps and reads values and blocks from them, so every
// page written or read stays in the host's RSS (RssFile) for as long as the
// file is mapped: ingesting a layer of 1 GB leaves about 1 GB resident, and
// Badger has no option to read or write these files otherwise. The pages are
// file cache, but `ps`, VmHWM and a container's memory accounting count them.
//
// The map trimmer bounds that part: when the process's file-backed RSS goes
// over the budget, it asks the kernel to page out the layers' mapped Badger
// files (madvise MADV_PAGEOUT). Dirty pages (just written) are unmapped and
// stay in the page cache until the kernel writes them back; clean pages are
// dropped, and a later read faults them in again from the page cache or the
// disk. MADV_PAGEOUT is only advice: applied to a range Badger unmapped a
// moment before (and something else mapped since), it cannot change data,
// which MADV_DONTNEED could.

// trimEvery is how often the trimmer looks at the file-backed RSS. At
// 100 ms an ingest of 100 MB/s overshoots the budget by about 10 MB.
const trimEvery = 100 * time.Millisecond

// DefaultMappedBudget is the file-backed RSS above which the store pages
// out the layers' mapped Badger files (Options.MappedBudget).
const DefaultMappedBudget = 128 << 20

// trimmable are the mapped files the trimmer pages out, in the order it
// tries them: the value log first (written once, read by record reads), then
// the tables and the memtables' logs (read by every lookup and compaction).
var trimmable = [][]string{{".vlog"}, {".sst", ".mem"}}

// mapTrimmer pages out the store's mapped files above a budget.
type mapTrimmer struct {
	dir    string // the layers' directory, with a trailing separator
	budget int64
	stop   chan struct{}
	done   chan struct{}
	// trims counts the passes that paged something out (tests).
	trims int
}

func startMapTrimmer(dir string, budget int64) *mapTrimmer {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	t := &mapTrimmer{dir: filepath.Join(abs, "layers") + string(filepath.Separator), budget: budget,
		stop: make(chan struct{}), done: make(chan struct{})}
	go t.loop()
	return t
}

func (t *mapTrimmer) close() {
	close(t.stop)
	<-t.done
}

func (t *mapTrimmer) loop() {
	defer close(t.done)
	tick := time.NewTicker(trimEvery)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		t.trim()
	}
}

// trim pages out mapped files, kind by kind, until the file-backed RSS is
// back under the budget.
func (t *mapTrimmer) trim() {
	for _, suffixes := range trimmable {
		rss, ok := rssFile()
		if !ok || rss <= t.budget {
			return
		}
		if t.pageOut(suffixes) > 0 {
			t.trims++
		}
	}
}

// pageOut advises the kernel to page out every mapping of a layer file
// whose name ends in one of suffixes, and returns how many it advised.
func (t *mapTrimmer) pageOut(suffixes []string) int {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		start, end, path, ok := parseMapsLine(sc.Bytes())
		if !ok || !strings.HasPrefix(path, t.dir) || !hasAnySuffix(path, suffixes) {
			continue
		}
		// Only advice: an error (the range was unmapped meanwhile, or an
		// old kernel without MADV_PAGEOUT) leaves things as they were.
		syscall.Syscall(syscall.SYS_MADVISE, start, end-start, unix.MADV_PAGEOUT)
		n++
	}
	return n
}

func hasAnySuffix(s string, suffixes []string) bool {
	for _, x := range suffixes {
		if strings.HasSuffix(s, x) {
			return true
		}
	}
	return false
}

// parseMapsLine reads "start-end perms offset dev inode path" from a line
// of /proc/self/maps.
func parseMapsLine(line []byte) (start, end uintptr, path string, ok bool) {
	fields := bytes.Fields(line)
	if len(fields) < 6 {
		return 0, 0, "", false
	}
	dash := bytes.IndexByte(fields[0], '-')
	if dash < 0 {
		return 0, 0, "", false
	}
	s, err1 := strconv.ParseUint(string(fields[0][:dash]), 16, 64)
	e, err2 := strconv.ParseUint(string(fields[0][dash+1:]), 16, 64)
	if err1 != nil || err2 != nil || e <= s {
		return 0, 0, "", false
	}
	// A path with spaces spans several fields; " (deleted)" ends it for a
	// removed file, which no suffix matches.
	path = string(bytes.Join(fields[5:], []byte{' '}))
	return uintptr(s), uintptr(e), path, true
}

// rssFile returns the process's file-backed resident memory (RssFile of
// /proc/self/status), in bytes.
func rssFile() (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	i := bytes.Index(b, []byte("RssFile:"))
	if i < 0 {
		return 0, false
	}
	line := b[i+len("RssFile:"):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := bytes.Fields(line)
	if len(f) == 0 {
		return 0, false
	}
	kb, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil {
		return 0, false
	}
	return kb << 10, true
}
