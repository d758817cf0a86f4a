package badger

import (
	"bytes"
	"fmt"
	"testing"
)

// Micro-benchmarks of the store's hot paths; `make bench` measures the
// whole product.

func benchPayload(i, version int) []byte {
	b := fmt.Appendf(nil, `{"id":"item-%09d","version":%d,"data":"`, i, version)
	for len(b) < 1022 {
		b = append(b, byte('a'+(i+len(b))%26))
	}
	return append(b, `"}`...)
}

func benchChanges(from, n, version int) []Change {
	cs := make([]Change, n)
	for i := range cs {
		cs[i] = Change{Model: "Item", ID: fmt.Sprintf("item-%09d", from+i), Data: benchPayload(from+i, version)}
	}
	return cs
}

// stageAll stages n records in batches of 1000 and publishes them.
func stageAll(b *testing.B, l *Layer, run string, n, version int) Revision {
	st, err := l.beginStaging(run)
	if err != nil {
		b.Fatal(err)
	}
	w := st.writer("gen", WriterOptions{})
	for i := 0; i < n; i += 1000 {
		if err := w.Apply(benchChanges(i, min(1000, n-i), version)); err != nil {
			b.Fatal(err)
		}
	}
	rev, err := st.Publish(PublishInfo{Trigger: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return rev
}

// BenchmarkIngestFresh: records into an empty model (no read per record).
func BenchmarkIngestFresh(b *testing.B) {
	s, l := openLayerB(b)
	defer s.Close()
	b.SetBytes(1024)
	b.ResetTimer()
	stageAll(b, l, "run_1", b.N, 0)
}

// BenchmarkResyncUnchanged: every record compared by hash, nothing written.
func BenchmarkResyncUnchanged(b *testing.B) {
	s, l := openLayerB(b)
	defer s.Close()
	stageAll(b, l, "run_1", b.N, 0)
	b.SetBytes(1024)
	b.ResetTimer()
	rev := stageAll(b, l, "run_2", b.N, 0)
	b.StopTimer()
	if c := rev.Counts["gen"]["Item"]; c.Unchanged != int64(b.N) {
		b.Fatalf("counts %+v", c)
	}
}

// BenchmarkResyncChanged: every record changed (read, compare, rewrite).
func BenchmarkResyncChanged(b *testing.B) {
	s, l := openLayerB(b)
	defer s.Close()
	stageAll(b, l, "run_1", b.N, 0)
	b.SetBytes(1024)
	b.ResetTimer()
	stageAll(b, l, "run_2", b.N, 1)
}

// BenchmarkReadRecords: a cursor walk rendering every record's JSON.
func BenchmarkReadRecords(b *testing.B) {
	s, l := openLayerB(b)
	defer s.Close()
	stageAll(b, l, "run_1", b.N, 0)
	b.SetBytes(1024)
	b.ResetTimer()
	n := 0
	var after *Cursor
	for {
		page, err := l.Records(Query{After: after, Limit: 10000}, func([]byte) error { n++; return nil })
		if err != nil {
			b.Fatal(err)
		}
		if page.Next == "" {
			break
		}
		c, _, _ := ParsePosition(page.Next)
		after = &c
	}
	if n != b.N {
		b.Fatalf("read %d of %d", n, b.N)
	}
}

func openLayerB(b *testing.B) (*Store, *Layer) {
	s, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	l, err := s.layer("bench")
	if err != nil {
		b.Fatal(err)
	}
	return s, l
}

// BenchmarkRestore: a backup of b.N records (two runs: every record
// written twice, so versions and delete markers too) restored into an
// empty data dir. Reported per record of the layer.
func BenchmarkRestore(b *testing.B) {
	s, l := openLayerB(b)
	stageAll(b, l, "run_1", b.N, 0)
	stageAll(b, l, "run_2", b.N, 1)
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		b.Fatal(err)
	}
	s.Close()
	s2, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s2.Close()
	b.SetBytes(1024)
	b.ResetTimer()
	if _, err := s2.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		b.Fatal(err)
	}
}
