package badger

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestRetentionAndPinning(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	l.SetKeepRevisions(3)
	for i := 1; i <= 5; i++ {
		runChanges(t, l, fmt.Sprintf("run_%d", i), save("M", "a", fmt.Sprint(i)))
	}
	revs := l.Revisions()
	if len(revs) != 3 || revs[0].Number != 5 || revs[2].Number != 3 {
		t.Fatalf("revisions = %+v", revs)
	}
	if _, err := l.Records(Query{Revision: 2}, func([]byte) error { return nil }); !errors.Is(err, ErrRevisionGone) {
		t.Fatalf("revision 2: %v, want gone", err)
	}
	if _, err := l.Records(Query{Revision: 9}, func([]byte) error { return nil }); !errors.Is(err, ErrNoRevision) {
		t.Fatalf("revision 9: %v, want no revision", err)
	}
	if err := l.Pin(2); !errors.Is(err, ErrRevisionGone) {
		t.Fatalf("pin of a dropped revision: %v", err)
	}
	if err := l.Pin(3); err != nil {
		t.Fatal(err)
	}
	// Syncs go on; readers stay on the pinned revision, which stays kept.
	for i := 6; i <= 9; i++ {
		runChanges(t, l, fmt.Sprintf("run_%d", i), save("M", "a", fmt.Sprint(i)))
	}
	got, page := readAll(t, l, Query{})
	if page.Revision.Number != 3 || got[0].Title != "3" {
		t.Fatalf("pinned read: rev %d, %+v", page.Revision.Number, got)
	}
	revs = l.Revisions()
	if len(revs) != 4 || revs[3].Number != 3 || !revs[3].Pinned {
		t.Fatalf("revisions while pinned = %+v", revs)
	}
	if cur, _ := l.Current(); cur.Number != 3 || !cur.Pinned {
		t.Fatalf("current = %+v", cur)
	}
	was, err := l.Unpin()
	if err != nil || was != 3 {
		t.Fatalf("unpin = %d, %v", was, err)
	}
	got, page = readAll(t, l, Query{})
	if page.Revision.Number != 9 || got[0].Title != "9" {
		t.Fatalf("after unpin: rev %d, %+v", page.Revision.Number, got)
	}
	if _, err := l.Records(Query{Revision: 3}, func([]byte) error { return nil }); !errors.Is(err, ErrRevisionGone) {
		t.Fatalf("revision 3 after unpin: %v, want gone", err)
	}
}

func TestPinSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, l := openLayer(t, dir)
	runChanges(t, l, "run_1", save("M", "a", "1"))
	runChanges(t, l, "run_2", save("M", "a", "2"))
	if err := l.Pin(1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, l = openLayer(t, dir)
	defer s.Close()
	if l.Pinned() != 1 {
		t.Fatalf("pinned after reopen = %d", l.Pinned())
	}
}

// A direct publish (a webhook) lands while a slow run stages changes to the
// same records: override lets the run's change win, ignore_if_modified_after
// keeps the fresher published one. Either way each record appears once.
func TestMergingWithChangesPublishedDuringRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ignore bool
		want   string
	}{{"override", false, "run"}, {"ignore_if_modified_after", true, "webhook"}} {
		t.Run(tc.name, func(t *testing.T) {
			s, l := openLayer(t, t.TempDir())
			defer s.Close()
			runChanges(t, l, "run_1", save("M", "a", "0"), save("M", "b", "0"))

			st, err := l.beginStaging("run_2")
			if err != nil {
				t.Fatal(err)
			}
			w := st.writer("shop", WriterOptions{IgnoreIfModifiedAfter: tc.ignore})
			// The run saw "a" before the webhook changed it...
			if err := w.Apply([]Change{save("M", "a", "run")}); err != nil {
				t.Fatal(err)
			}
			if err := w.Checkpoint("s", []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			rev2, err := l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: "shop", Changes: []Change{save("M", "a", "webhook"), save("M", "b", "webhook"), save("M", "n", "webhook")}}})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := readAll(t, l, Query{}); len(got) != 3 {
				t.Fatalf("after webhook: %+v", got)
			}
			// ...and "b" after it.
			if err := w.Apply([]Change{save("M", "b", "run"), save("M", "n", "run")}); err != nil {
				t.Fatal(err)
			}
			rev3, err := st.Publish(PublishInfo{Trigger: "manual"})
			if err != nil {
				t.Fatal(err)
			}
			if rev2.Number != 2 || rev3.Number != 3 || rev3.TS <= rev2.TS {
				t.Fatalf("revisions %+v %+v", rev2, rev3)
			}
			got, _ := readAll(t, l, Query{})
			if len(got) != 3 {
				t.Fatalf("records appear more than once: %+v", got)
			}
			for _, r := range got {
				if r.Title != tc.want {
					t.Fatalf("record %s = %q, want %q (%+v)", r.ID, r.Title, tc.want, got)
				}
			}
		})
	}
}

func TestRetryResumesStagingAndCountsOnce(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	runChanges(t, l, "run_1", save("M", "old", "0"))
	st, _ := l.beginStaging("run_2")
	w := st.writer("shop", WriterOptions{})
	if err := w.Apply([]Change{save("M", "a", "1"), save("M", "b", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoint("s", []byte(`{"after":"b"}`)); err != nil {
		t.Fatal(err)
	}
	if err := w.Apply([]Change{save("M", "c", "1")}); err != nil { // after the checkpoint
		t.Fatal(err)
	}
	w.Close() // the attempt fails here
	if cp, own, _ := st.Checkpoint("shop", "s", false); !own || string(cp) != `{"after":"b"}` {
		t.Fatalf("resume checkpoint = %s", cp)
	}
	if err := st.NextAttempt(); err != nil {
		t.Fatal(err)
	}
	w = st.writer("shop", WriterOptions{})
	// The retry resumes after b: c again, then d.
	if err := w.Apply([]Change{save("M", "c", "1"), save("M", "d", "1")}); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Publish(PublishInfo{Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["shop"]["M"]; c.Added != 4 || c.Updated != 0 {
		t.Fatalf("counts = %+v", c)
	}
	got, _ := readAll(t, l, Query{})
	if len(got) != 5 {
		t.Fatalf("records = %+v", got)
	}
}

func TestTrackDeletes(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	runChanges(t, l, "run_1", save("M", "a", "1"), save("M", "b", "1"), save("M", "c", "1"), save("N", "x", "1"))
	st, _ := l.beginStaging("run_2")
	w := st.writer("shop", WriterOptions{TrackDeletes: []string{"M"}})
	if err := w.Apply([]Change{save("M", "a", "1"), save("M", "c", "2")}); err != nil {
		t.Fatal(err)
	}
	rev, err := st.Publish(PublishInfo{Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if c := rev.Counts["shop"]["M"]; c.Deleted != 1 || c.Updated != 1 || c.Unchanged != 1 {
		t.Fatalf("counts = %+v", c)
	}
	got, _ := readAll(t, l, Query{Actions: MaskDeleted})
	if len(got) != 1 || got[0].ID != "b" {
		t.Fatalf("deleted = %+v", got)
	}
	// Untracked models are left alone, and a failed run deletes nothing.
	st, _ = l.beginStaging("run_3")
	w = st.writer("shop", WriterOptions{TrackDeletes: []string{"M"}})
	if err := w.Apply([]Change{save("M", "a", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := st.Abort(); err != nil {
		t.Fatal(err)
	}
	got, _ = readAll(t, l, Query{Actions: MaskDeleted})
	if len(got) != 1 {
		t.Fatalf("after a failed run: deleted = %+v", got)
	}
}

func TestBackupRestore(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	runChanges(t, l, "run_1", save("M", "a", "1"), save("M", "b", "1"))
	runChanges(t, l, "run_2", save("M", "a", "2"))
	if err := l.Pin(1); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	s.Close()

	dir := t.TempDir()
	s2, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	names, err := s2.Restore(bytes.NewReader(buf.Bytes()))
	if err != nil || len(names) != 1 || names[0] != "catalog" {
		t.Fatalf("restore = %v, %v", names, err)
	}
	l2, _ := s2.layer("catalog")
	if l2.Pinned() != 1 || len(l2.Revisions()) != 2 {
		t.Fatalf("restored revisions %+v pinned %d", l2.Revisions(), l2.Pinned())
	}
	got, _ := readAll(t, l2, Query{Revision: 2})
	if len(got) != 2 || got[1].Title != "2" {
		t.Fatalf("restored revision 2 = %+v", got)
	}
	// The same restore run again finds the layer as it left it: skipped.
	if names, err := s2.Restore(bytes.NewReader(buf.Bytes())); err != nil || len(names) != 0 {
		t.Fatalf("restore run again = %v, %v", names, err)
	}
	// Once the layer changed, a restore over it is refused.
	runChanges(t, l2, "run_3", save("M", "c", "3"))
	if _, err := s2.Restore(bytes.NewReader(buf.Bytes())); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("restore over an existing layer: %v", err)
	}
}

func TestEncryptionAtRest(t *testing.T) {
	dir := t.TempDir()
	key := []byte("0123456789abcdef0123456789abcdef")
	s, err := Open(Options{Dir: dir, EncryptionKey: key})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.layer("catalog")
	if err != nil {
		t.Fatal(err)
	}
	runChanges(t, l, "run_1", Change{Model: "M", ID: "a", Data: []byte(`{"id":"a","secret":"plaintext-marker-123"}`)})
	s.Close()
	// Nothing on disk holds the payload in clear.
	if found := grepDir(t, dir, []byte("plaintext-marker-123")); found != "" {
		t.Fatalf("payload found in clear in %s", found)
	}
	s, _ = Open(Options{Dir: dir})
	if _, err := s.layer("catalog"); err == nil {
		t.Fatal("opened an encrypted layer without the key")
	}
	s.Close()
	s, _ = Open(Options{Dir: dir, EncryptionKey: key})
	defer s.Close()
	l, err = s.layer("catalog")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := l.Records(Query{}, func([]byte) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("read with key: %d, %v", n, err)
	}
}

func TestAuditLog(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	for _, a := range []string{"revision.pinned", "revision.unpinned"} {
		if _, err := l.AppendAudit(AuditEntry{Action: a}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.Audit(0, 10)
	if err != nil || len(got) != 2 || got[1].Action != "revision.unpinned" || got[0].Layer != "catalog" {
		t.Fatalf("audit = %+v, %v", got, err)
	}
}

// The store writes only valid JSON objects; a bad one fails the change set
// with a clear reason.
func TestApplyRejectsInvalidJSON(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	defer s.Close()
	for _, bad := range []string{`{}{}`, `{"a":1} x }`, `{"a":}`, `[1]`} {
		st, err := l.beginStaging("run_x")
		if err != nil {
			t.Fatal(err)
		}
		w := st.writer("shop", WriterOptions{})
		err = w.Apply([]Change{{Model: "M", ID: "a", Data: []byte(bad)}})
		if err == nil || !strings.Contains(err.Error(), "not a valid JSON object") {
			t.Fatalf("%s: %v", bad, err)
		}
		if err := st.Abort(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.PublishChanges(PublishInfo{Trigger: "webhook"}, []Batch{{Source: "shop", Changes: []Change{{Model: "M", ID: "a", Data: []byte(`{"a":`)}}}}); err == nil {
		t.Fatal("a direct publish stored invalid JSON")
	}
}
