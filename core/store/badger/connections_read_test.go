package badger

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// publishKeys stages and publishes one run writing changes under source
// keys: changes["crm\x1facme"] = [...].
func publishKeys(t *testing.T, l *Layer, changes map[string][]Change) Revision {
	t.Helper()
	st, err := l.beginStaging(fmt.Sprintf("run_%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	for key, cs := range changes {
		if err := st.writer(key, WriterOptions{}).Apply(cs); err != nil {
			t.Fatal(err)
		}
	}
	rev, err := st.Publish(PublishInfo{Trigger: "manual", Sources: []string{"crm"}})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func snapshotAt(t *testing.T, l *Layer, rev int64) *Snapshot {
	t.Helper()
	s, ok, err := l.openSnapshot(rev)
	if err != nil || !ok {
		t.Fatalf("snapshot %d: %v %v", rev, ok, err)
	}
	t.Cleanup(s.Close)
	return s
}

// connRecords seeds source "crm" with records of its own and of three
// connections, models M and N interleaved, and a source "crm2" whose name
// starts like it.
func connRecords(t *testing.T, l *Layer) Revision {
	put := func(model, id, color string) Change {
		return Change{Model: model, ID: id, Data: []byte(fmt.Sprintf(`{"id":%q,"color":%q}`, id, color))}
	}
	return publishKeys(t, l, map[string][]Change{
		"crm":                          {put("M", "own1", "red")},
		SourceKey("crm", "acme"):       {put("M", "1", "red"), put("M", "2", "blue"), put("N", "n1", "red"), put("M", "3", "red")},
		SourceKey("crm", "beta"):       {put("N", "n1", "red")}, // no M at all
		SourceKey("crm", "c.d"):        {put("M", "1", "red"), put("M", "9", "green")},
		SourceKey("crm", "acme-corp"):  {put("M", "1", "blue")},
		"crm2":                         {put("M", "x", "red")},
		SourceKey("crm2", "acme"):      {put("M", "y", "red")},
		SourceKey("crmx", "something"): {put("M", "z", "red")},
	})
}

func scanAll(t *testing.T, s *Snapshot, source, model, afterConn, afterID string, stopAfter int) []string {
	t.Helper()
	var got []string
	err := s.ScanConnections(source, model, afterConn, afterID, func(r *StoredRecord) (bool, error) {
		if r.Source != source || r.Model != model || !strings.Contains(string(r.Payload), `"`+r.ID+`"`) {
			return false, fmt.Errorf("record %+v", r)
		}
		got = append(got, r.Connection+"/"+r.ID)
		return stopAfter == 0 || len(got) < stopAfter, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// ScanConnections lists a model over the source's own records and every
// connection's, in (connection, id) order, and resumes after any record.
func TestScanConnections(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	t.Cleanup(func() { s.Close() }) // after the snapshots close
	connRecords(t, l)
	snap := snapshotAt(t, l, 0)
	want := []string{"/own1", "acme/1", "acme/2", "acme/3", "acme-corp/1", "c.d/1", "c.d/9"}
	if got := scanAll(t, snap, "crm", "M", "", "", 0); !reflect.DeepEqual(got, want) {
		t.Fatalf("scan: %v, want %v", got, want)
	}
	for i, pos := range want {
		conn, id, _ := strings.Cut(pos, "/")
		if got := scanAll(t, snap, "crm", "M", conn, id, 0); !reflect.DeepEqual(got, want[i+1:]) && !(len(got) == 0 && i == len(want)-1) {
			t.Errorf("after %s: %v, want %v", pos, got, want[i+1:])
		}
	}
	// Resuming after a record that is gone, or in a connection without it.
	if got := scanAll(t, snap, "crm", "M", "acme", "2a", 0); !reflect.DeepEqual(got, want[3:]) {
		t.Errorf("after acme/2a: %v", got)
	}
	if got := scanAll(t, snap, "crm", "M", "b", "", 0); !reflect.DeepEqual(got, want[5:]) {
		t.Errorf("after connection b: %v", got)
	}
	if got := scanAll(t, snap, "crm", "M", "", "", 2); !reflect.DeepEqual(got, want[:2]) {
		t.Errorf("stopped: %v", got)
	}
	if got := scanAll(t, snap, "crm", "N", "", "", 0); !reflect.DeepEqual(got, []string{"acme/n1", "beta/n1"}) {
		t.Errorf("model N: %v", got)
	}
	if got := scanAll(t, snap, "crm2", "M", "", "", 0); !reflect.DeepEqual(got, []string{"/x", "acme/y"}) {
		t.Errorf("crm2: %v", got)
	}
	// Scan reads one connection's records by its source key.
	var one []string
	if err := snap.Scan(SourceKey("crm", "acme"), "M", "1", func(r *StoredRecord) (bool, error) {
		one = append(one, r.Connection+"/"+r.ID)
		return true, nil
	}); err != nil || !reflect.DeepEqual(one, []string{"acme/2", "acme/3"}) {
		t.Errorf("scan of acme: %v %v", one, err)
	}
	// A deleted record is left out.
	publishKeys(t, l, map[string][]Change{SourceKey("crm", "acme"): {{Model: "M", ID: "2", Delete: true}}})
	if got := scanAll(t, snapshotAt(t, l, 0), "crm", "M", "", "", 0); !reflect.DeepEqual(got, []string{"/own1", "acme/1", "acme/3", "acme-corp/1", "c.d/1", "c.d/9"}) {
		t.Errorf("after delete: %v", got)
	}
}

// Counts are per (source, model) over every connection, and say which
// models' records belong to connections.
func TestCountRecordsOverConnections(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	t.Cleanup(func() { s.Close() }) // after the snapshots close
	r1 := connRecords(t, l)
	publishKeys(t, l, map[string][]Change{
		SourceKey("crm", "acme"): {{Model: "M", ID: "2", Delete: true}, {Model: "M", ID: "4", Data: []byte(`{}`)}},
		SourceKey("crm", "new"):  {{Model: "N", ID: "n1", Data: []byte(`{}`)}},
	})
	want := "[{crm M 7 1 true} {crm N 3 0 true} {crm2 M 2 0 true} {crmx M 1 0 true}]"
	snap := snapshotAt(t, l, 0)
	got, err := snap.CountRecords()
	if err != nil || fmt.Sprint(got) != want {
		t.Fatalf("counts: %v %v, want %s", got, err, want)
	}
	old := snapshotAt(t, l, r1.Number)
	base, err := old.CountRecords()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(base) != "[{crm M 7 0 true} {crm N 2 0 true} {crm2 M 2 0 true} {crmx M 1 0 true}]" {
		t.Errorf("counts of revision 1: %v", base)
	}
	derived, err := snap.countChanges(old, base)
	if err != nil || fmt.Sprint(derived) != want {
		t.Errorf("derived counts: %v %v, want %s", derived, err, want)
	}
	per, err := snap.CountSource(SourceKey("crm", "acme"))
	if err != nil || fmt.Sprint(per) != "[{crm M 3 1 true} {crm N 1 0 true}]" {
		t.Errorf("counts of acme: %v %v", per, err)
	}
}

// A field index covers the records of every connection of its source:
// built over existing ones, kept at publish, looked up per connection or
// over all of them, dropped with its source's.
func TestFieldIndexOverConnections(t *testing.T) {
	s, l := openLayer(t, t.TempDir())
	t.Cleanup(func() { s.Close() }) // after the snapshots close
	connRecords(t, l)
	if err := l.SetFieldIndexes([]FieldIndex{{Source: "crm", Model: "M", Field: "color"}}); err != nil { // built over what is there
		t.Fatal(err)
	}
	check := func(snap *Snapshot, key, color string, want ...string) {
		t.Helper()
		ids, _, err := snap.Lookup(key, "M", "color", []any{color}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want = []string{}
		}
		if ids == nil {
			ids = []string{}
		}
		if !reflect.DeepEqual(ids, want) {
			t.Errorf("%q color=%s: %v, want %v", key, color, ids, want)
		}
	}
	all := func(snap *Snapshot, values ...any) string {
		t.Helper()
		keys, _, err := snap.LookupConnections("crm", "M", "color", values, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(keys)
	}
	snap := snapshotAt(t, l, 0)
	check(snap, "crm", "red", "own1")
	check(snap, SourceKey("crm", "acme"), "red", "1", "3")
	check(snap, SourceKey("crm", "acme"), "blue", "2")
	check(snap, SourceKey("crm", "acme-corp"), "blue", "1")
	check(snap, SourceKey("crm", "c.d"), "blue")
	if got := all(snap, "red", "blue"); got != "[{ own1} {acme 1} {acme 2} {acme 3} {acme-corp 1} {c.d 1}]" {
		t.Errorf("every connection: %s", got)
	}
	if !snap.Indexed(SourceKey("crm", "acme"), "M", "color") || snap.Indexed("crm2", "M", "color") {
		t.Error("Indexed of a connection follows its source's index")
	}
	// Kept at publish: an update, a delete, a new connection.
	publishKeys(t, l, map[string][]Change{
		SourceKey("crm", "acme"): {{Model: "M", ID: "1", Data: []byte(`{"color":"blue"}`)}, {Model: "M", ID: "3", Delete: true}},
		SourceKey("crm", "zed"):  {{Model: "M", ID: "1", Data: []byte(`{"color":"red"}`)}},
	})
	snap2 := snapshotAt(t, l, 0)
	check(snap2, SourceKey("crm", "acme"), "red")
	check(snap2, SourceKey("crm", "acme"), "blue", "1", "2")
	check(snap2, SourceKey("crm", "zed"), "red", "1")
	if got := all(snap2, "red"); got != "[{ own1} {c.d 1} {zed 1}]" {
		t.Errorf("every connection after changes: %s", got)
	}
	if got := all(snap, "red"); got != "[{ own1} {acme 1} {acme 3} {c.d 1}]" {
		t.Errorf("the older revision reads its own index: %s", got)
	}
	// Dropped: no entry of any connection is left.
	if err := l.SetFieldIndexes(nil); err != nil {
		t.Fatal(err)
	}
	n := 0
	txn := l.db.NewTransactionAt(readLatest, false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxFieldIndex}})
	for it.Rewind(); it.Valid(); it.Next() {
		n++
	}
	it.Close()
	if n != 0 {
		t.Errorf("%d field index keys left after the drop", n)
	}
}
