package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// testRevisions: the revision list, retention, leases of cursor walks and
// pins (SPEC §5).
func testRevisions(t *testing.T, d Driver) {
	// What a layer without revisions answers.
	test(t, d, "Empty", func(t *testing.T, e *env) {
		l := e.l
		if _, ok := l.Current(); ok {
			t.Fatal("a current revision before any publish")
		}
		if _, ok := l.Newest(); ok {
			t.Fatal("a newest revision before any publish")
		}
		if revs := l.Revisions(); len(revs) != 0 || l.Pinned() != 0 || l.KeptRevisions() != 0 {
			t.Fatalf("revisions %+v, pinned %d, kept %d", revs, l.Pinned(), l.KeptRevisions())
		}
		if err := l.Pin(1); !errors.Is(err, store.ErrNoRevision) {
			t.Fatalf("pin of a revision that never was: %v", err)
		}
		if was, err := l.Unpin(); err != nil || was != 0 {
			t.Fatalf("unpin with nothing pinned: %d %v", was, err)
		}
		if _, err := l.Records(store.Query{Revision: 1}, func([]byte) error { return nil }); !errors.Is(err, store.ErrNoRevision) {
			t.Fatalf("records of revision 1 of an empty layer: %v", err)
		}
	})

	// The revision list, newest first, holds what each revision was made of.
	test(t, d, "List", func(t *testing.T, e *env) {
		l := e.l
		l.SetRetention(10, 0)
		r1 := publish(t, l, "run_1", "shop", save("M", "a", "1"), save("M", "b", "1"))
		r2 := direct(t, l, "shop", save("M", "a", "2"))
		st, _ := l.BeginStaging("run_3")
		r3, err := st.Publish(store.PublishInfo{Trigger: "config", Sources: []string{"z", "a"}})
		if err != nil {
			t.Fatal(err)
		}
		revs := l.Revisions()
		if len(revs) != 3 {
			t.Fatalf("revisions %+v", revs)
		}
		for i, want := range []store.Revision{r3, r2, r1} {
			got := revs[i]
			if got.Number != want.Number || !got.CreatedAt.Equal(want.CreatedAt) || got.Trigger != want.Trigger || got.Run != want.Run ||
				fmt.Sprint(got.Sources) != fmt.Sprint(want.Sources) || fmt.Sprint(got.Counts) != fmt.Sprint(want.Counts) || got.Pinned {
				t.Fatalf("revision %d listed as %+v, published as %+v", want.Number, got, want)
			}
		}
		if r1.Run != "run_1" || r2.Trigger != "webhook" || fmt.Sprint(r3.Sources) != "[a z]" || r1.Counts["shop"]["M"].Added != 2 {
			t.Fatalf("published revisions %+v %+v %+v", r1, r2, r3)
		}
		for _, get := range []func() (store.Revision, bool){l.Current, l.Newest} {
			if got, ok := get(); !ok || got.Number != 3 || got.Trigger != "config" || fmt.Sprint(got.Sources) != "[a z]" {
				t.Fatalf("current/newest %+v %v", got, ok)
			}
		}
		if n := l.KeptRevisions(); n != 3 {
			t.Fatalf("kept revisions %d", n)
		}
	})

	// Commit times grow strictly with revisions, however fast they come,
	// and are whole microseconds (what records show).
	test(t, d, "CommitTimesIncrease", func(t *testing.T, e *env) {
		l := e.l
		var prev store.Revision
		for i := 1; i <= 20; i++ {
			var r store.Revision
			if i%2 == 0 {
				r = direct(t, l, "shop", save("M", "a", fmt.Sprint(i)))
			} else {
				st, _ := l.BeginStaging(fmt.Sprintf("run_%d", i))
				var err error
				if r, err = st.Publish(store.PublishInfo{Trigger: "manual"}); err != nil {
					t.Fatal(err)
				}
			}
			if r.Number != int64(i) {
				t.Fatalf("revision %d numbered %d", i, r.Number)
			}
			if !r.CreatedAt.Equal(r.CreatedAt.Truncate(time.Microsecond)) {
				t.Fatalf("commit time %s is finer than a microsecond", r.CreatedAt)
			}
			if i > 1 && !r.CreatedAt.After(prev.CreatedAt) {
				t.Fatalf("revision %d at %s, not after revision %d at %s", r.Number, r.CreatedAt, prev.Number, prev.CreatedAt)
			}
			prev = r
		}
	})

	// keep_revisions keeps the newest; a pinned revision is kept and read
	// until unpinned, while syncs go on publishing.
	test(t, d, "RetentionAndPinning", func(t *testing.T, e *env) {
		l := e.l
		l.SetRetention(3, 0)
		for i := 1; i <= 5; i++ {
			publish(t, l, fmt.Sprintf("run_%d", i), "shop", save("M", "a", fmt.Sprint(i)))
		}
		if revs := l.Revisions(); len(revs) != 3 || revs[0].Number != 5 || revs[2].Number != 3 || l.KeptRevisions() != 3 {
			t.Fatalf("revisions %+v, kept %d", revs, l.KeptRevisions())
		}
		if _, err := l.Records(store.Query{Revision: 2}, func([]byte) error { return nil }); !errors.Is(err, store.ErrRevisionGone) {
			t.Fatalf("revision 2: %v, want gone", err)
		}
		if _, err := l.Records(store.Query{Revision: 9}, func([]byte) error { return nil }); !errors.Is(err, store.ErrNoRevision) {
			t.Fatalf("revision 9: %v, want no such revision", err)
		}
		if err := l.Pin(2); !errors.Is(err, store.ErrRevisionGone) {
			t.Fatalf("pin of a revision no longer kept: %v", err)
		}
		if err := l.Pin(6); !errors.Is(err, store.ErrNoRevision) {
			t.Fatalf("pin of a revision not yet published: %v", err)
		}
		if err := l.Pin(3); err != nil {
			t.Fatal(err)
		}
		if l.Pinned() != 3 {
			t.Fatalf("pinned %d", l.Pinned())
		}
		for i := 6; i <= 9; i++ {
			publish(t, l, fmt.Sprintf("run_%d", i), "shop", save("M", "a", fmt.Sprint(i)))
		}
		got, page := readAll(t, l, store.Query{})
		if page.Revision.Number != 3 || got[0].Title != "3" {
			t.Fatalf("a read while 3 is pinned: revision %d, %+v", page.Revision.Number, got)
		}
		if got, page := readAll(t, l, store.Query{Revision: 9}); page.Revision.Number != 9 || got[0].Title != "9" {
			t.Fatalf("revision 9 while 3 is pinned: %d %+v", page.Revision.Number, got)
		}
		revs := l.Revisions()
		if len(revs) != 4 || revs[0].Number != 9 || revs[3].Number != 3 || !revs[3].Pinned || revs[0].Pinned {
			t.Fatalf("revisions while 3 is pinned: %+v", revs)
		}
		if cur, _ := l.Current(); cur.Number != 3 || !cur.Pinned {
			t.Fatalf("current %+v", cur)
		}
		if nw, _ := l.Newest(); nw.Number != 9 {
			t.Fatalf("newest %+v", nw)
		}
		// Pinning another revision moves the pin.
		if err := l.Pin(8); err != nil {
			t.Fatal(err)
		}
		if got, page := readAll(t, l, store.Query{}); page.Revision.Number != 8 || got[0].Title != "8" {
			t.Fatalf("after a pin of 8: revision %d", page.Revision.Number)
		}
		was, err := l.Unpin()
		if err != nil || was != 8 {
			t.Fatalf("unpin = %d, %v", was, err)
		}
		if l.Pinned() != 0 {
			t.Fatalf("pinned after unpin: %d", l.Pinned())
		}
		if got, page := readAll(t, l, store.Query{}); page.Revision.Number != 9 || got[0].Title != "9" {
			t.Fatalf("after unpin: revision %d, %+v", page.Revision.Number, got)
		}
		if _, err := l.Records(store.Query{Revision: 3}, func([]byte) error { return nil }); !errors.Is(err, store.ErrRevisionGone) {
			t.Fatalf("revision 3 after unpin: %v, want gone", err)
		}
		if cur, _ := l.Current(); cur.Number != 9 || cur.Pinned {
			t.Fatalf("current after unpin %+v", cur)
		}
	})

	// A revision that fell out of retention stays gone when retention
	// grows: what it needs may be gone.
	test(t, d, "RaisingKeepDoesNotRevive", func(t *testing.T, e *env) {
		l := e.l
		l.SetRetention(1, 0)
		publish(t, l, "run_1", "shop", save("M", "a", "1"), save("M", "b", "1"))
		publish(t, l, "run_2", "shop", save("M", "a", "2"))
		publish(t, l, "run_3", "shop", save("M", "b", "3"))
		l.SetRetention(10, 0)
		for _, n := range []int64{1, 2} {
			if _, err := l.Records(store.Query{Revision: n}, func([]byte) error { return nil }); !errors.Is(err, store.ErrRevisionGone) {
				t.Fatalf("revision %d after raising keep: %v, want gone", n, err)
			}
		}
		if err := l.Pin(1); !errors.Is(err, store.ErrRevisionGone) {
			t.Fatalf("pin of 1 after raising keep: %v, want gone", err)
		}
		publish(t, l, "run_4", "shop", save("M", "c", "4"))
		if got, _ := readAll(t, l, store.Query{Revision: 3}); len(got) != 2 {
			t.Fatalf("revision 3, kept once keep grew: %+v", got)
		}
		if revs := l.Revisions(); len(revs) != 2 {
			t.Fatalf("revisions %+v", revs)
		}
	})

	// keep_for keeps young revisions readable beyond keep_revisions.
	test(t, d, "KeepFor", func(t *testing.T, e *env) {
		l := e.l
		l.SetRetention(1, time.Hour)
		for i := 1; i <= 5; i++ {
			publish(t, l, fmt.Sprintf("run_%d", i), "shop", save("M", "a", fmt.Sprint(i)))
		}
		if got, _ := readAll(t, l, store.Query{Revision: 1}); len(got) != 1 || got[0].Title != "1" {
			t.Fatalf("revision 1 within keep_for: %+v", got)
		}
		if n := len(l.Revisions()); n != 5 {
			t.Fatalf("%d readable revisions, want 5", n)
		}
		l.SetRetention(1, time.Nanosecond)
		if _, err := l.Records(store.Query{Revision: 4}, func([]byte) error { return nil }); !errors.Is(err, store.ErrRevisionGone) {
			t.Fatalf("revision 4 once keep_for is over: %v, want gone", err)
		}
		if revs := l.Revisions(); len(revs) != 1 || revs[0].Number != 5 {
			t.Fatalf("revisions %+v", revs)
		}
	})

	// A revision a reader is paging stays readable while the walk goes on,
	// however many revisions are published meanwhile; one nobody reads
	// does not.
	test(t, d, "WalkLease", func(t *testing.T, e *env) {
		l := e.l
		l.SetRetention(1, 0)
		var cs []store.Change
		for i := 0; i < 30; i++ {
			cs = append(cs, save("M", fmt.Sprintf("r%02d", i), "1"))
		}
		publish(t, l, "run_0", "shop", cs...)
		q := store.Query{Limit: 10}
		seen := 0
		for page := 0; ; page++ {
			got, p := readAll(t, l, q)
			seen += len(got)
			if p.Revision.Number != 1 {
				t.Fatalf("page %d read revision %d, want 1", page, p.Revision.Number)
			}
			if p.Next == "" {
				break
			}
			for i := 0; i < 5; i++ {
				publish(t, l, fmt.Sprintf("run_%d_%d", page, i), "shop", save("M", "x", fmt.Sprint(page, i)))
			}
			c, rev, err := store.ParsePosition(p.Next)
			if err != nil {
				t.Fatal(err)
			}
			q = store.Query{After: &c, Revision: rev, Limit: 10}
		}
		if seen != 30 {
			t.Fatalf("the walk saw %d records, want 30", seen)
		}
		if _, err := l.Records(store.Query{Revision: 2}, func([]byte) error { return nil }); !errors.Is(err, store.ErrRevisionGone) {
			t.Fatalf("revision 2, which no walk read: %v, want gone", err)
		}
	})

	// Records last changed by revisions no longer kept still render their
	// commit times and numbers, and modified_after still finds them.
	test(t, d, "PrunedRevisionsStillRender", func(t *testing.T, e *env) {
		l := e.l
		l.SetRetention(3, 0)
		first := publish(t, l, "run_0", "shop", save("M", "old", "0"))
		for i := 1; i <= 20; i++ {
			publish(t, l, fmt.Sprintf("run_%d", i), "shop", save("M", "a", fmt.Sprint(i)))
		}
		if revs := l.Revisions(); len(revs) != 3 || revs[0].Number != 21 || revs[0].Counts["shop"]["M"].Updated != 1 {
			t.Fatalf("revisions %+v", revs)
		}
		if n := l.KeptRevisions(); n != 3 {
			t.Fatalf("%d revisions kept, want 3", n)
		}
		got, _ := readAll(t, l, store.Query{Model: "M"})
		want := rendered(first.CreatedAt)
		if len(got) != 2 || got[0].ID != "old" || got[0].str("last_modified_at") != want || got[0].str("first_seen_at") != want || got[0].revision() != 1 {
			t.Fatalf("a record of a pruned revision: %+v, want modified at %s in revision 1", got, want)
		}
		if got, _ := readAll(t, l, store.Query{ModifiedAfter: first.CreatedAt}); len(got) != 2 {
			t.Fatalf("modified_after the first revision: %s", ids(got))
		}
		if got, _ := readAll(t, l, store.Query{ModifiedAfter: first.CreatedAt.Add(time.Nanosecond)}); ids(got) != "a" {
			t.Fatalf("modified_after just after the first revision: %s", ids(got))
		}
		s := snapshot(t, l, 0)
		if r, ok, err := s.Get("shop", "M", "old"); err != nil || !ok || r.Revision != 1 || !r.LastModifiedAt.Equal(first.CreatedAt) {
			t.Fatalf("snapshot of a record of a pruned revision: %+v %v %v", r, ok, err)
		}
	})

	// Pins and unpins carry their outbound events in the same commit.
	test(t, d, "PinAnnouncements", func(t *testing.T, e *env) {
		l := e.l
		l.SetRetention(1, 0)
		publish(t, l, "run_1", "shop", save("M", "a", "1"))
		publish(t, l, "run_2", "shop", save("M", "a", "2"))
		publish(t, l, "run_3", "shop", save("M", "a", "3"))
		if err := l.Pin(1, delivery("evt_gone", "app")); !errors.Is(err, store.ErrRevisionGone) {
			t.Fatalf("pin of a revision no longer kept: %v", err)
		}
		if _, err := l.GetDelivery("evt_gone.app"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a failed pin stored its announcement: %v", err)
		}
		sig := l.OutboxSignal()
		if err := l.Pin(3, delivery("evt_pin", "app"), delivery("evt_pin", "ops")); err != nil {
			t.Fatal(err)
		}
		waitSignal(t, sig, "outbox after a pin")
		ds, err := l.Deliveries("", 10, false)
		if err != nil || deliveryIDs(ds) != "evt_pin.app:pending evt_pin.ops:pending" {
			t.Fatalf("deliveries after a pin: %s %v", deliveryIDs(ds), err)
		}
		sig = l.OutboxSignal()
		var announced int64
		was, err := l.UnpinWith(func(was int64) []store.Delivery {
			announced = was
			return []store.Delivery{delivery(fmt.Sprintf("evt_unpin%d", was), "app")}
		})
		if err != nil || was != 3 || announced != 3 {
			t.Fatalf("unpin = %d (announced %d), %v", was, announced, err)
		}
		waitSignal(t, sig, "outbox after an unpin")
		if d, err := l.GetDelivery("evt_unpin3.app"); err != nil || d.State != store.DeliveryPending {
			t.Fatalf("announcement of the unpin: %+v %v", d, err)
		}
		called := false
		if was, err := l.UnpinWith(func(int64) []store.Delivery { called = true; return nil }); err != nil || was != 0 || called {
			t.Fatalf("unpin with nothing pinned = %d, announce called %v, %v", was, called, err)
		}
	})

	// A pin made on one host holds on every host; an unpin on another
	// ends it everywhere.
	hostsTest(t, d, "AcrossHosts", 2, func(t *testing.T, ls []store.Layer) {
		a, b := ls[0], ls[1]
		publish(t, a, "run_1", "shop", save("M", "a", "1"))
		r2 := publish(t, b, "run_2", "shop", save("M", "a", "2"))
		if err := a.Pin(1); err != nil {
			t.Fatal(err)
		}
		eventually(t, "host b reads the revision host a pinned", func() bool {
			got, page := readAll(t, b, store.Query{})
			cur, _ := b.Current()
			return b.Pinned() == 1 && page.Revision.Number == 1 && len(got) == 1 && got[0].Title == "1" && cur.Number == 1 && cur.Pinned
		})
		r3 := publish(t, b, "run_3", "shop", save("M", "a", "3"))
		if got, page := readAll(t, a, store.Query{}); page.Revision.Number != 1 || got[0].Title != "1" {
			t.Fatalf("host a reads revision %d while 1 is pinned", page.Revision.Number)
		}
		eventually(t, "host a lists host b's revisions", func() bool {
			revs := a.Revisions()
			nw, _ := a.Newest()
			return len(revs) == 3 && revs[0].Number == r3.Number && revs[2].Pinned && nw.Number == r3.Number
		})
		was, err := b.Unpin()
		if err != nil || was != 1 {
			t.Fatalf("unpin on host b = %d, %v", was, err)
		}
		eventually(t, "host a reads the newest once host b unpinned", func() bool {
			_, page := readAll(t, a, store.Query{})
			return a.Pinned() == 0 && page.Revision.Number == r3.Number
		})
		if err := a.Pin(r2.Number); err != nil {
			t.Fatal(err)
		}
		if was, err := b.Unpin(); err != nil || was != r2.Number {
			t.Fatalf("host b unpinned %d right after host a pinned %d: %v", was, r2.Number, err)
		}
	})
}
