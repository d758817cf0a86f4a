package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/synclayer/synclayer/core/store"
)

// The reads beside the driver's own publishes and retention.

// setAll publishes, directly, every one of n records of "shop"/"items"
// with value v.
func setAll(t testing.TB, l *Layer, n, v int) store.Revision {
	t.Helper()
	rev, err := setAllErr(l, n, v)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func setAllErr(l *Layer, n, v int) (store.Revision, error) {
	cs := make([]store.Change, n)
	for i := range cs {
		id := fmt.Sprintf("r%03d", i)
		cs[i] = store.Change{Model: "items", ID: id, Data: []byte(fmt.Sprintf(`{"id":%q,"v":%d}`, id, v))}
	}
	return l.PublishChanges(store.PublishInfo{Trigger: "test", Sources: []string{"shop"}}, []store.Batch{{Source: "shop", Changes: cs}})
}

// walkValues walks revision rev (0: the current one) by pages of limit
// and returns the value of each record and the revision walked.
func walkValues(l *Layer, rev int64, limit int) (map[string]int, int64, error) {
	vals := map[string]int{}
	q := store.Query{Revision: rev, Limit: limit}
	for {
		page, err := l.Records(q, func(b []byte) error {
			var r struct {
				ID string `json:"id"`
				V  int    `json:"v"`
			}
			if err := json.Unmarshal(b, &r); err != nil {
				return err
			}
			if _, dup := vals[r.ID]; dup {
				return fmt.Errorf("record %s twice", r.ID)
			}
			vals[r.ID] = r.V
			return nil
		})
		if err != nil {
			return vals, q.Revision, err
		}
		if page.Next == "" {
			return vals, page.Revision.Number, nil
		}
		c, n, err := store.ParsePosition(page.Next)
		if err != nil {
			return vals, n, err
		}
		q.After, q.Revision = &c, n
	}
}

// Every host reads whole revisions while another publishes: a walk by
// page tokens, and a snapshot, see every record at exactly one revision.
func TestHostsReadWholeRevisionsWhilePublishing(t *testing.T) {
	s, dsn := openStore(t)
	l, _ := s.layer("catalog")
	const n = 150
	setAll(t, l, n, 1)
	other, err := Open(context.Background(), Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ol, _ := other.layer("catalog")

	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for v := 2; v <= 25; v++ {
			if _, err := setAllErr(l, n, v); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var mu sync.Mutex
	walked := map[int64]bool{}
	check := func(host string, hl *Layer) {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				if i > 0 {
					return
				}
			default:
			}
			vals, rev, err := walkValues(hl, 0, 37)
			if err != nil {
				t.Errorf("%s: %v", host, err)
				return
			}
			if len(vals) != n {
				t.Errorf("%s: revision %d walked %d records, want %d", host, rev, len(vals), n)
				return
			}
			mu.Lock()
			walked[rev] = true
			mu.Unlock()
			for id, v := range vals {
				if int64(v) != rev {
					t.Errorf("%s: %s of revision %d has the value of revision %d", host, id, rev, v)
					return
				}
			}
			snap, ok, err := hl.OpenSnapshot(0)
			if err != nil || !ok {
				t.Errorf("%s: snapshot: %v %v", host, ok, err)
				return
			}
			sn := snap.Revision().Number
			counts, err := snap.CountRecords()
			if err != nil || len(counts) != 1 || counts[0].Live != n {
				t.Errorf("%s: counts of revision %d: %+v %v", host, sn, counts, err)
			}
			seen := 0
			err = snap.Scan("shop", "items", "", func(r *store.StoredRecord) (bool, error) {
				var p struct{ V int }
				json.Unmarshal(r.Payload, &p)
				if int64(p.V) != sn || r.Revision != sn {
					return false, fmt.Errorf("%s in revision %d: value %d of revision %d", r.ID, sn, p.V, r.Revision)
				}
				seen++
				return true, nil
			})
			snap.Close()
			if err != nil || seen != n {
				t.Errorf("%s: scan of revision %d: %d records, %v", host, sn, seen, err)
				return
			}
		}
	}
	wg.Add(2)
	go check("this host", l)
	go check("another host", ol)
	wg.Wait()
	t.Logf("walked %d revisions of 25", len(walked))
}

// A walk leases its revision against retention: it reads on while it
// pages, and once its lease lapses and retention moves past it, it is gone.
func TestWalkLeaseAgainstRetention(t *testing.T) {
	l := testLayer(t)
	l.SetRetention(1, 0)
	setAll(t, l, 5, 1)
	var first []string
	page, err := l.Records(store.Query{Limit: 2}, func(b []byte) error { first = append(first, string(b)); return nil })
	if err != nil || page.Next == "" {
		t.Fatal(page, err)
	}
	snap, _, err := l.OpenSnapshot(1)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	for v := 2; v <= 4; v++ {
		setAll(t, l, 5, v)
	}
	// Revision 1 is leased: the walk goes on in it.
	c, rev, _ := store.ParsePosition(page.Next)
	vals, _, err := walkValuesFrom(l, rev, &c)
	if err != nil || len(vals) != 3 {
		t.Fatalf("the rest of leased revision 1: %v %v", vals, err)
	}
	for id, v := range vals {
		if v != 1 {
			t.Fatalf("%s: value %d in revision 1", id, v)
		}
	}
	if !snap.Retained() {
		t.Fatal("leased revision 1 not retained")
	}
	if _, _, err := walkValues(l, 2, 2); !errors.Is(err, store.ErrRevisionGone) {
		t.Fatalf("revision 2 (neither newest nor leased): %v", err)
	}
	// The lease lapses; the next publish moves retention past revision 1.
	if _, err := l.s.pool.Exec(context.Background(), `UPDATE synclayer_leases SET expires_at = now() - interval '1 second' WHERE layer_id = $1`, l.id); err != nil {
		t.Fatal(err)
	}
	setAll(t, l, 5, 5)
	if _, _, err := walkValuesFrom(l, rev, &c); !errors.Is(err, store.ErrRevisionGone) {
		t.Fatalf("walk of revision 1 after its lease lapsed: %v", err)
	}
	if snap.Retained() {
		t.Fatal("revision 1 retained after its lease lapsed")
	}
	if err := snap.Scan("shop", "items", "", func(*store.StoredRecord) (bool, error) { return true, nil }); !errors.Is(err, store.ErrRevisionGone) {
		t.Fatalf("scan of a snapshot of revision 1 after retention moved past it: %v", err)
	}
}

func walkValuesFrom(l *Layer, rev int64, after *store.Cursor) (map[string]int, int64, error) {
	vals := map[string]int{}
	_, err := l.Records(store.Query{Revision: rev, After: after}, func(b []byte) error {
		var r struct {
			ID string `json:"id"`
			V  int    `json:"v"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		vals[r.ID] = r.V
		return nil
	})
	return vals, rev, err
}
