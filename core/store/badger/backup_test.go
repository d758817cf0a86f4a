package badger

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// dumpLayer renders what readers of the layer see, byte for byte: every
// record of each query (with its cursor and timestamps), the revisions and
// the pin. Two layers that dump equal serve the same answers.
func dumpLayer(t *testing.T, l *Layer, queries []Query) string {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "pinned=%d\n", l.Pinned())
	for _, r := range l.Revisions() {
		fmt.Fprintf(&b, "revision %d ts=%d at=%s pinned=%v counts=%v\n", r.Number, r.TS, r.CreatedAt.Format(time.RFC3339Nano), r.Pinned, r.Counts)
	}
	for _, q := range queries {
		fmt.Fprintf(&b, "query %+v\n", q)
		q.Limit = 1000
		page, err := l.Records(q, func(rec []byte) error {
			b.Write(rec)
			b.WriteByte('\n')
			return nil
		})
		if err != nil {
			t.Fatalf("query %+v: %v", q, err)
		}
		fmt.Fprintf(&b, "page revision=%d next=%q\n", page.Revision.Number, page.Next)
	}
	return b.String()
}

func backupRestore(t *testing.T, s *Store, opts Options) *Store {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	opts.Dir = t.TempDir()
	s2, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	if _, err := s2.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("restore: %v", err)
	}
	return s2
}

// A backup keeps every version a retained revision reads: a pinned old
// revision serves all of its records after a restore, though later runs
// updated and deleted some of them (each update deletes the record's old
// entry, leaving a delete marker above the version revision 1 reads).
func TestBackupKeepsHistoryOfRetainedRevisions(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	runChanges(t, l, "run_1", save("M", "a", "1"), save("M", "b", "1"), save("M", "c", "1"))
	if err := l.Pin(1); err != nil {
		t.Fatal(err)
	}
	rev2 := runChanges(t, l, "run_2", save("M", "a", "2"), Change{Model: "M", ID: "c", Delete: true})
	runChanges(t, l, "run_3", save("M", "d", "3"))
	if got, _ := readAll(t, l, Query{Revision: 1}); len(got) != 3 {
		t.Fatalf("revision 1 before the backup: %+v", got)
	}
	queries := []Query{
		{Revision: 1}, {Revision: 2}, {Revision: 3},
		{Revision: 3, ModifiedAfter: rev2.CreatedAt},
		{Revision: 2, Actions: MaskDeleted},
		{}, // the pinned revision
	}
	before := dumpLayer(t, l, queries)

	s2 := backupRestore(t, s, Options{})
	l2, err := s2.layer("catalog")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := readAll(t, l2, Query{Revision: 1})
	if len(got) != 3 || got[0].Title != "1" {
		t.Fatalf("restored revision 1 = %+v, want a, b, c as first saved", got)
	}
	got, _ = readAll(t, l2, Query{Revision: 3})
	if len(got) != 4 || got[1].ID != "a" || got[1].Title != "2" {
		t.Fatalf("restored revision 3 = %+v", got)
	}
	if after := dumpLayer(t, l2, queries); after != before {
		t.Fatalf("restored layer answers differently\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// The restored layer goes on: a new run publishes above the restored
	// revisions, with cursors after theirs.
	rev4 := runChanges(t, l2, "run_4", save("M", "b", "4"))
	if rev4.Number != 4 || rev4.TS <= rev2.TS {
		t.Fatalf("revision after restore = %+v", rev4)
	}
	got, _ = readAll(t, l2, Query{Revision: 4})
	if len(got) != 4 || got[3].ID != "b" || got[3].Title != "4" {
		t.Fatalf("revision 4 = %+v", got)
	}
}

// fillLayer publishes a few revisions with updates and deletes, and pins
// the first.
func fillLayer(t *testing.T, l *Layer) {
	t.Helper()
	var changes []Change
	for i := 0; i < 200; i++ {
		changes = append(changes, Change{Model: "M", ID: fmt.Sprintf("r%03d", i), Data: []byte(fmt.Sprintf(`{"id":"r%03d","body":%q}`, i, strings.Repeat("x", 300)))})
	}
	runChanges(t, l, "run_1", changes...)
	if err := l.Pin(1); err != nil {
		t.Fatal(err)
	}
	runChanges(t, l, "run_2", save("M", "r001", "2"), Change{Model: "M", ID: "r002", Delete: true})
}

func assertNoLayerDirs(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "layers"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in the data dir after a failed restore: %s", e.Name())
	}
}

// A truncated or corrupted backup restores nothing: no layer, not even a
// temporary one, and the complete file then restores into the same dir.
// So does a restore that crashed and left its temporary directory.
func TestRestoreIsAtomic(t *testing.T) {
	defer func(n int) { backupPartSize = n }(backupPartSize)
	backupPartSize = 16 << 10 // several parts per layer
	for _, key := range [][]byte{nil, []byte("0123456789abcdef0123456789abcdef")} {
		t.Run(fmt.Sprintf("encrypted=%v", key != nil), func(t *testing.T) {
			s, err := Open(Options{Dir: t.TempDir(), EncryptionKey: key})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, name := range []string{"catalog", "shop"} {
				l, err := s.layer(name)
				if err != nil {
					t.Fatal(err)
				}
				fillLayer(t, l)
			}
			l, _ := s.layer("catalog")
			queries := []Query{{Revision: 1}, {Revision: 2}}
			want := dumpLayer(t, l, queries)
			var buf bytes.Buffer
			if err := s.Backup(&buf); err != nil {
				t.Fatal(err)
			}
			full := buf.Bytes()
			if key != nil && bytes.Contains(full, []byte(strings.Repeat("x", 300))) {
				t.Fatal("an encrypted backup holds a record in clear")
			}

			dir := t.TempDir()
			s2, err := Open(Options{Dir: dir, EncryptionKey: key})
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			// A crash mid-restore left a temporary directory behind.
			if err := os.MkdirAll(filepath.Join(dir, "layers", restoreTmpPrefix+"catalog-123", "junk"), 0o700); err != nil {
				t.Fatal(err)
			}
			// Every cut before the end of the manifest is refused.
			end := bytes.LastIndexByte(full, '}') + 1 // the end of the manifest
			if key != nil {
				end = len(full) - 1
			}
			for _, cut := range []int{100, len(full) / 3, len(full) / 2, end - 700, end - 1} {
				names, err := s2.Restore(bytes.NewReader(full[:cut]))
				if err == nil || !errors.Is(err, ErrBadBackup) {
					t.Fatalf("restore of the first %d of %d bytes = %v, %v; want a bad backup error", cut, len(full), names, err)
				}
				assertNoLayerDirs(t, dir)
			}
			// A changed byte anywhere in a layer is refused.
			for _, at := range []int{len(full) / 4, len(full) / 2} {
				bad := bytes.Clone(full)
				bad[at] ^= 0x20
				if names, err := s2.Restore(bytes.NewReader(bad)); err == nil || !errors.Is(err, ErrBadBackup) {
					t.Fatalf("restore with byte %d changed = %v, %v; want a bad backup error", at, names, err)
				}
				assertNoLayerDirs(t, dir)
			}
			names, err := s2.Restore(bytes.NewReader(full))
			if err != nil || strings.Join(names, ",") != "catalog,shop" {
				t.Fatalf("restore of the whole file = %v, %v", names, err)
			}
			l2, _ := s2.layer("catalog")
			if got := dumpLayer(t, l2, queries); got != want {
				t.Fatalf("restored layer differs\nbefore:\n%s\nafter:\n%s", want, got)
			}
		})
	}
}

// An encrypted backup needs the key it was made with; a plaintext one
// restores into a store with a key.
func TestRestoreEncryptionKeys(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	backupOf := func(key []byte) []byte {
		s, err := Open(Options{Dir: t.TempDir(), EncryptionKey: key})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		l, err := s.layer("catalog")
		if err != nil {
			t.Fatal(err)
		}
		runChanges(t, l, "run_1", save("M", "a", "1"))
		var buf bytes.Buffer
		if err := s.Backup(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	enc, plain := backupOf(key), backupOf(nil)
	restore := func(b, key []byte) error {
		s, err := Open(Options{Dir: t.TempDir(), EncryptionKey: key})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, err = s.Restore(bytes.NewReader(b))
		return err
	}
	if err := restore(enc, nil); !errors.Is(err, ErrBackupKey) || !strings.Contains(err.Error(), "no encryption key") {
		t.Fatalf("encrypted backup, no key: %v", err)
	}
	if err := restore(enc, []byte("fedcba9876543210fedcba9876543210")); !errors.Is(err, ErrBackupKey) || !strings.Contains(err.Error(), "another key") {
		t.Fatalf("encrypted backup, wrong key: %v", err)
	}
	if err := restore(enc, key); err != nil {
		t.Fatalf("encrypted backup, right key: %v", err)
	}
	if err := restore(plain, key); err != nil {
		t.Fatalf("plaintext backup into an encrypted store: %v", err)
	}
	if err := restore([]byte("not a backup at all, just some words in a file"), nil); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("not a backup: %v", err)
	}
}

// A backup taken while a run stages holds none of its changes nor its
// checkpoint; the restored layer settles the run as after a crash: its
// staging marker and seen markers are gone and a new run can stage.
func TestBackupDuringStaging(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	runChanges(t, l, "run_1", save("M", "a", "1"), save("M", "b", "1"))
	st, err := l.beginStaging("run_2")
	if err != nil {
		t.Fatal(err)
	}
	w := st.writer("shop", WriterOptions{TrackDeletes: []string{"M"}})
	if err := w.Apply([]Change{save("M", "a", "2"), save("M", "c", "2")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint("s1", []byte(`{"page":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := w.settle(); err != nil { // the checkpoint's flush, in flight
		t.Fatal(err)
	}
	// A webhook publishes while the run stages: it is in the backup.
	if _, err := l.PublishChanges(PublishInfo{Trigger: "webhook", Sources: []string{"shop"}}, []Batch{{Source: "shop", Changes: []Change{save("M", "d", "w")}}}); err != nil {
		t.Fatal(err)
	}
	// The run's checkpoint is the staging's (in memory), not the store's.
	if cp, own, err := st.Checkpoint("shop", "s1", false); err != nil || !own || string(cp) != `{"page":2}` {
		t.Fatalf("the run's checkpoint: %s own=%v %v", cp, own, err)
	}
	s2 := backupRestore(t, s, Options{})
	l2, _ := s2.layer("catalog")
	got, page := readAll(t, l2, Query{})
	if page.Revision.Number != 2 || len(got) != 3 || got[0].Title != "1" || got[2].ID != "d" {
		t.Fatalf("restored = rev %d %+v; want revision 2 with a=1, b, d", page.Revision.Number, got)
	}
	for _, k := range [][]byte{metaKey(metaStaging), strKey(pfxPendingCP, "run_2", "shop", "s1"), seenKey("run_2", "shop", "M", "a")} {
		if v, err := l2.getLatest(k); v != nil || err != nil {
			t.Fatalf("restored layer still has %q = %q (%v)", k, v, err)
		}
	}
	runChanges(t, l2, "run_3", save("M", "e", "3"))
	if got, _ := readAll(t, l2, Query{}); len(got) != 4 {
		t.Fatalf("after a run on the restored layer: %+v", got)
	}
	// The original run goes on and publishes.
	if _, err := st.Publish(PublishInfo{Trigger: "manual", Sources: []string{"shop"}}); err != nil {
		t.Fatal(err)
	}
}

// A backup taken while webhooks publish is consistent to the newest
// revision it holds: every revision up to it reads the same after a
// restore.
func TestBackupWhilePublishing(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	l.SetKeepRevisions(1000)
	runChanges(t, l, "run_1", save("M", "a", "0"))
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			id := fmt.Sprintf("r%d", i%7)
			if _, err := l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: "shop", Changes: []Change{save("M", id, fmt.Sprint(i)), {Model: "M", ID: fmt.Sprintf("r%d", (i+3)%7), Delete: true}}}}); err != nil {
				done <- err
				return
			}
		}
	}()
	var bufs []*bytes.Buffer
	for i := 0; i < 3; i++ {
		var buf bytes.Buffer
		if err := s.Backup(&buf); err != nil {
			t.Fatal(err)
		}
		bufs = append(bufs, &buf)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, buf := range bufs {
		s2, err := Open(Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s2.Restore(bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatal(err)
		}
		l2, _ := s2.layer("catalog")
		l2.SetKeepRevisions(1000)
		newest, _ := l2.Newest()
		var queries []Query
		for n := int64(1); n <= newest.Number; n++ {
			queries = append(queries, Query{Revision: n})
		}
		got := dumpLayer(t, l2, queries)
		// The original, cut at the restored newest revision.
		want := dumpLayer(t, l, queries)
		want = want[strings.Index(want, "query "):]
		if got = got[strings.Index(got, "query "):]; got != want {
			t.Fatalf("restored revisions 1..%d differ from the original", newest.Number)
		}
		s2.Close()
	}
}

// blockingWriter accepts its first write, then blocks until release.
type blockingWriter struct {
	n       int
	started chan struct{}
	release chan struct{}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.n++
	if w.n == 2 {
		close(w.started)
		<-w.release
	}
	return len(p), nil
}

// Closing the store while a backup reads a layer waits for the backup,
// which stops with ErrClosed instead of reading a closed database.
func TestCloseDuringBackup(t *testing.T) {
	defer func(n int) { backupPartSize = n }(backupPartSize)
	backupPartSize = 1 << 10
	s, l := openLayer(t, t.TempDir())
	fillLayer(t, l)
	w := &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
	backupErr := make(chan error, 1)
	go func() { backupErr <- s.Backup(w) }()
	<-w.started
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close marks the layer closed before it waits for the backup.
	for !l.closed.Load() {
		time.Sleep(time.Millisecond)
	}
	close(w.release)
	if err := <-backupErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("backup during close: %v, want ErrClosed", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// A backup of the previous format (one Badger backup stream per layer)
// still restores.
func TestRestorePreviousFormat(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	runChanges(t, l, "run_1", save("M", "a", "1"), save("M", "b", "1"))
	var stream bytes.Buffer
	if _, err := l.db.NewStreamAt(readLatest).Backup(&stream, 0); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "layers/catalog.badger", Mode: 0o600, Size: int64(stream.Len())}); err != nil {
		t.Fatal(err)
	}
	tw.Write(stream.Bytes())
	tw.Close()
	s2, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if names, err := s2.Restore(bytes.NewReader(buf.Bytes())); err != nil || len(names) != 1 {
		t.Fatalf("restore = %v, %v", names, err)
	}
	l2, _ := s2.layer("catalog")
	if got, _ := readAll(t, l2, Query{}); len(got) != 2 {
		t.Fatalf("restored %+v", got)
	}
	// Cut inside the layer's stream, it leaves nothing. (This format has no
	// manifest: a cut between layers goes unnoticed.)
	s3, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if _, err := s3.Restore(bytes.NewReader(buf.Bytes()[:512+stream.Len()/2])); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("truncated previous-format backup: %v", err)
	}
	assertNoLayerDirs(t, s3.opts.Dir)
}

// A restore loads versions with a KVLoader, which checks nothing a
// transaction would: a backup part holding one of Badger's own keys, or a
// value past a value log file, is refused as a bad backup.
func TestRestoreRefusesWhatATransactionWould(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	version := func(key string, vl int) []byte {
		b := binary.AppendUvarint(nil, uint64(len(key)))
		b = append(b, key...)
		b = binary.AppendUvarint(b, 1)
		b = append(b, 0, 0)
		b = binary.AppendUvarint(b, 0)
		b = binary.AppendUvarint(b, uint64(vl))
		return append(b, make([]byte, vl)...)
	}
	for _, tc := range []struct {
		part     []byte
		maxValue int64
		want     string
	}{
		{version("!badger!head", 4), 1 << 20, badger.ErrInvalidKey.Error()},
		{version("m/x", 64), 32, "a value of 64 bytes"},
	} {
		rs := &restore{s: s, dir: filepath.Join(s.opts.Dir, "layers"), layers: map[string]*restoreLayer{}}
		rl, err := rs.begin("catalog")
		if err != nil {
			t.Fatal(err)
		}
		rl.maxValue = tc.maxValue
		err = rl.loadPart(bytes.NewReader(tc.part), int64(len(tc.part)))
		if !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("part %q: %v, want a bad backup error with %q", tc.part[:16], err, tc.want)
		}
		rs.cleanup()
	}
}
