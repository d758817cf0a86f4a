package badger

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseMapsLine(t *testing.T) {
	start, end, path, ok := parseMapsLine([]byte("7f3a1c000000-7f3a2c000000 rw-s 00000000 fd:01 1234    /data/layers/a b/000001.vlog"))
	if !ok || start != 0x7f3a1c000000 || end != 0x7f3a2c000000 || path != "/data/layers/a b/000001.vlog" {
		t.Fatalf("got %x %x %q %v", start, end, path, ok)
	}
	for _, bad := range []string{"", "7f3a1c000000-7f3a2c000000 rw-p 00000000 00:00 0", "zz-7f rw-s 0 fd:01 1 /x.vlog", "20-10 rw-s 0 fd:01 1 /x.vlog"} {
		if _, _, _, ok := parseMapsLine([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// residentKB sums the resident pages of this process's mappings of files
// under dir whose name ends in suffix (/proc/self/smaps).
func residentKB(t *testing.T, dir, suffix string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kb int64
	match := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if _, _, path, ok := parseMapsLine([]byte(line)); ok {
			match = strings.HasPrefix(path, dir) && strings.HasSuffix(path, suffix)
			continue
		}
		if match && strings.HasPrefix(line, "Rss:") {
			n, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			kb += n
		}
	}
	return kb
}

// The trimmer pages out what Badger wrote through its value-log map, and
// the values read back intact afterwards (from the page cache or disk).
func TestMapTrimmerPagesOutValueLog(t *testing.T) {
	dir := t.TempDir()
	// Trimming by the ticker is off: the test calls pageOut itself.
	s, err := Open(Options{Dir: dir, MappedBudget: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := s.layer("trim")
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 4096, 4096
	value := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, size) }
	wb := l.db.NewWriteBatchAt(1)
	for i := 0; i < n; i++ {
		if err := wb.Set([]byte(fmt.Sprintf("k%06d", i)), value(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	// Dirty pages cannot be paged out before they are written back: on a
	// busy machine the writeback may lag, so write them back first.
	if err := l.db.Sync(); err != nil {
		t.Fatal(err)
	}
	layers, _ := filepath.Abs(filepath.Join(dir, "layers"))
	before := residentKB(t, layers, ".vlog")
	if before < n*size/1024/2 {
		t.Fatalf("value log resident %d KiB after writing %d KiB: the test no longer sees Badger's map", before, n*size/1024)
	}
	// A budget of one byte: any file-backed RSS is over it.
	tr := &mapTrimmer{dir: layers + "/", budget: 1}
	tr.trim()
	if tr.trims == 0 {
		t.Fatal("nothing paged out under " + layers)
	}
	// Paging out is advice the kernel takes page by page: on a busy
	// machine some pages are busy (under writeback, just touched) at the
	// first pass and go at a later one, as the ticker would do.
	// What was written must go (what else the map holds resident, the
	// kernel may keep: it was 0 to 100% of the written size here).
	written := int64(n * size / 1024)
	after := residentKB(t, layers, ".vlog")
	for pass := 1; pass < 20 && before-after < written/2; pass++ {
		time.Sleep(50 * time.Millisecond)
		tr.trim()
		after = residentKB(t, layers, ".vlog")
	}
	if before-after < written/2 {
		t.Fatalf("value log resident %d KiB before, %d KiB after paging out 20 times: less than half of the %d KiB written went", before, after, written)
	}
	txn := l.db.NewTransactionAt(1, false)
	defer txn.Discard()
	for i := 0; i < n; i += 97 {
		item, err := txn.Get([]byte(fmt.Sprintf("k%06d", i)))
		if err != nil {
			t.Fatal(err)
		}
		v, err := item.ValueCopy(nil)
		if err != nil || !bytes.Equal(v, value(i)) {
			t.Fatalf("value %d after paging out: %v, %d bytes", i, err, len(v))
		}
	}
}

// Under its budget the trimmer leaves the maps alone; the budget counts the
// whole process's file-backed RSS.
func TestMapTrimmerBudget(t *testing.T) {
	rss, ok := rssFile()
	if !ok || rss <= 0 {
		t.Fatalf("RssFile unreadable: %d %v", rss, ok)
	}
	tr := &mapTrimmer{dir: t.TempDir() + "/", budget: rss * 4}
	tr.trim()
	if tr.trims != 0 {
		t.Fatal("trimmed under the budget")
	}
}
