package badger

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A writer flushes in the background (rotate) and goes on applying: a
// record changed again while the flush that wrote it is in flight is
// still stored once, with its last payload, and counted once. Rounds of
// 16,000 records, each followed by a checkpoint, rewrite the same ids: into
// a model that had none (a first run) and one that had them all. A
// round's 32,000 writes fill more than one of Badger's batches, so the
// loader in use sends one of its own while the flush in flight, made to
// start late, has yet to send its last: the writes of a record changed in
// both must still reach Badger in order.
func TestChangesBehindAFlushInFlight(t *testing.T) {
	const ids, rounds = 16000, 3
	beforeFlush = func() { time.Sleep(300 * time.Millisecond) }
	defer func() { beforeFlush = nil }()
	for _, seeded := range []bool{false, true} {
		t.Run(fmt.Sprintf("seeded=%v", seeded), func(t *testing.T) {
			s, l := openLayer(t, t.TempDir())
			defer s.Close()
			if seeded {
				var seed []Change
				for i := 0; i < ids; i++ {
					seed = append(seed, save("M", fmt.Sprint(i), "seed"))
				}
				runChanges(t, l, "run_0", seed...)
			}
			st, err := l.beginStaging("run_1")
			if err != nil {
				t.Fatal(err)
			}
			w := st.writer("shop", WriterOptions{})
			for r := 1; r <= rounds; r++ {
				for lo := 0; lo < ids; lo += 1000 {
					var batch []Change
					for i := lo; i < lo+1000; i++ {
						id := i
						if r%2 == 0 {
							// Backwards: the records the flush in flight
							// still holds come first.
							id = ids - 1 - i
						}
						batch = append(batch, save("M", fmt.Sprint(id), fmt.Sprint(r)))
					}
					if err := w.Apply(batch); err != nil {
						t.Fatal(err)
					}
				}
				if err := w.Checkpoint("s", []byte(fmt.Sprintf(`{"round":%d}`, r))); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if cp, own, err := st.Checkpoint("shop", "s", false); err != nil || !own || string(cp) != fmt.Sprintf(`{"round":%d}`, rounds) {
				t.Fatalf("the run's checkpoint after Close: %s own=%v %v", cp, own, err)
			}
			rev, err := st.Publish(PublishInfo{Trigger: "manual"})
			if err != nil {
				t.Fatal(err)
			}
			want := Counts{Added: ids}
			if seeded {
				want = Counts{Updated: ids}
			}
			if c := rev.Counts["shop"]["M"]; c != want {
				t.Fatalf("counts %+v, want %+v", c, want)
			}
			got, _ := readAll(t, l, Query{Limit: 100000})
			if len(got) != ids {
				t.Fatalf("%d records read, want %d: a record entry outlived its change", len(got), ids)
			}
			for _, r := range got {
				if r.Title != fmt.Sprint(rounds) {
					t.Fatalf("record %s = %q, want %d", r.ID, r.Title, rounds)
				}
			}
		})
	}
}

// A checkpoint is the run's once the changes before it are in the
// database: Checkpoint starts their flush, and the checkpoint is kept when
// that flush ends, not before.
func TestCheckpointWaitsForItsFlush(t *testing.T) {
	s, _, st, w := stagingWriter(t)
	defer s.Close()
	if err := w.Apply([]Change{save("M", "a", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint("s", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if w.inflight == nil || len(w.waiting) != 1 {
		t.Fatalf("checkpoint behind a flush in flight: inflight=%v waiting=%d", w.inflight != nil, len(w.waiting))
	}
	if err := w.settle(); err != nil {
		t.Fatal(err)
	}
	if cp, own, _ := st.Checkpoint("shop", "s", false); !own || string(cp) != `{"n":1}` {
		t.Fatalf("after its flush: %s own=%v", cp, own)
	}
	// Nothing written since: the next checkpoint waits for nothing.
	if err := w.Checkpoint("s", []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	if cp, own, _ := st.Checkpoint("shop", "s", false); !own || string(cp) != `{"n":2}` {
		t.Fatalf("with nothing to flush: %s own=%v", cp, own)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Abort(); err != nil {
		t.Fatal(err)
	}
}

// A checkpoint behind a flush that fails is dropped: a retry resumes from
// the one before it, never past a change that may not be in the database.
func TestCheckpointBehindAFailedFlushIsDropped(t *testing.T) {
	s, _, st, w := stagingWriter(t)
	defer s.Close()
	if err := w.Checkpoint("s", []byte(`{"n":1}`)); err != nil { // nothing to flush: kept at once
		t.Fatal(err)
	}
	if err := w.Apply([]Change{save("M", "a", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint("s", []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	// The flush in flight ends, and is made to have failed.
	if err := <-w.inflight; err != nil {
		t.Fatal(err)
	}
	failed := make(chan error, 1)
	failed <- errors.New("no space left on device")
	w.inflight = failed
	if err := w.settle(); err == nil {
		t.Fatal("settle after a failed flush: no error")
	}
	if cp, own, _ := st.Checkpoint("shop", "s", false); !own || string(cp) != `{"n":1}` {
		t.Fatalf("after a failed flush: %s own=%v, want the checkpoint before it", cp, own)
	}
	w.Close()
	if err := st.Abort(); err != nil {
		t.Fatal(err)
	}
}

// A writer hands its loader to a flush once it holds flushBytes of keys and
// values, however few changes that is: the loader in use and the flush in
// flight bound the records on the heap. In place and privately alike.
func TestLargeRecordsRotateByBytes(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	n := flushBytes/len(big) + 8
	for _, private := range []bool{false, true} {
		t.Run(fmt.Sprintf("private=%v", private), func(t *testing.T) {
			s, l := openLayer(t, t.TempDir())
			defer s.Close()
			defer func(was int) { privateMemBytes = was }(privateMemBytes)
			privateMemBytes = 0 // a private run's changes go to its keys
			if private {
				hold, _ := l.beginStaging("run_hold")
				defer hold.Abort()
			}
			st, err := l.beginStaging("run_1")
			if err != nil {
				t.Fatal(err)
			}
			if st.private != private {
				t.Fatalf("private = %v", st.private)
			}
			w := st.writer("shop", WriterOptions{})
			for i := 0; i < n && w.inflight == nil; i++ {
				if err := w.Apply([]Change{save("M", fmt.Sprint(i), big)}); err != nil {
					t.Fatal(err)
				}
			}
			if w.inflight == nil {
				t.Fatalf("%d records of %d KiB, and no flush in flight", n, len(big)>>10)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := st.Abort(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// stagingWriter opens a layer, begins staging run_1 in place and returns a
// writer of source shop.
func stagingWriter(t *testing.T) (*Store, *Layer, *Staging, *StageWriter) {
	t.Helper()
	s, l := openLayer(t, t.TempDir())
	st, err := l.beginStaging("run_1")
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	return s, l, st, st.writer("shop", WriterOptions{})
}
