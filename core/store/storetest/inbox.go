package storetest

import (
	"errors"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// testInbox: the durable inbox of payload webhooks and the trigger
// webhooks (SPEC §7 "Inbound webhooks").
func testInbox(t *testing.T, d Driver) {
	// Items are stored whole and listed in the order they came.
	test(t, d, "AppendAndPending", func(t *testing.T, e *env) {
		l := e.l
		if items, err := l.PendingInbox(0, 10); err != nil || len(items) != 0 || l.InboxDepth() != 0 {
			t.Fatalf("inbox of a new layer: %+v %v depth %d", items, err, l.InboxDepth())
		}
		sig := l.InboxSignal()
		received := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
		first := store.InboxItem{Source: "crm", Connection: "acme", Method: "POST", Path: "/hooks/sources/catalog/crm",
			Header: http.Header{"X-Signature": {"abc"}, "Content-Type": {"application/json"}}, Body: []byte(`{"event":"x"}`), Received: received}
		seq1, err := l.AppendInbox(first)
		if err != nil {
			t.Fatal(err)
		}
		waitSignal(t, sig, "inbox after an append")
		var seqs []uint64
		for i := 0; i < 4; i++ {
			seq, err := l.AppendInbox(store.InboxItem{Source: "shop", Method: "POST", Path: "/p", Body: []byte{byte('a' + i)}})
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, seq)
		}
		prev := seq1
		for _, s := range seqs {
			if s <= prev {
				t.Fatalf("sequence numbers %d then %d", prev, s)
			}
			prev = s
		}
		items, err := l.PendingInbox(0, 10)
		if err != nil || len(items) != 5 {
			t.Fatalf("pending %+v %v", items, err)
		}
		got := items[0]
		first.Seq = seq1
		if !got.Received.Equal(first.Received) {
			t.Fatalf("received at %s, stored as %s", got.Received, first.Received)
		}
		got.Received = first.Received
		if !reflect.DeepEqual(got, first) {
			t.Fatalf("item read back as\n%+v\nstored as\n%+v", got, first)
		}
		if items[1].Received.IsZero() || time.Since(items[1].Received) > time.Hour {
			t.Fatalf("an item without a time was given %s", items[1].Received)
		}
		if l.InboxDepth() != 5 {
			t.Fatalf("depth %d", l.InboxDepth())
		}
		if items, _ := l.PendingInbox(seqs[0], 2); len(items) != 2 || items[0].Seq != seqs[1] || items[1].Seq != seqs[2] || string(items[0].Body) != "b" {
			t.Fatalf("pending after %d, limit 2: %+v", seqs[0], items)
		}
		if items, _ := l.PendingInbox(seqs[3], 10); len(items) != 0 {
			t.Fatalf("pending after the last: %+v", items)
		}
	})

	// Items leave the inbox when dropped or set aside; their state can be
	// updated meanwhile.
	test(t, d, "UpdateDropSetAside", func(t *testing.T, e *env) {
		l := e.l
		var seqs []uint64
		for i := 0; i < 4; i++ {
			seq, err := l.AppendInbox(store.InboxItem{Source: "shop", Body: []byte(`{}`)})
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, seq)
		}
		items, _ := l.PendingInbox(0, 10)
		it := items[1]
		it.Attempts = 3
		if err := l.UpdateInbox(it); err != nil {
			t.Fatal(err)
		}
		if items, _ := l.PendingInbox(seqs[0], 1); len(items) != 1 || items[0].Attempts != 3 || items[0].Seq != seqs[1] {
			t.Fatalf("updated item %+v", items)
		}
		if err := l.SetAsideInbox(it, "the plugin cannot read it"); err != nil {
			t.Fatal(err)
		}
		if err := l.DropInbox(seqs[0], seqs[3]); err != nil {
			t.Fatal(err)
		}
		items, _ = l.PendingInbox(0, 10)
		if len(items) != 1 || items[0].Seq != seqs[2] || l.InboxDepth() != 1 {
			t.Fatalf("left %+v, depth %d", items, l.InboxDepth())
		}
		// Items gone already (dropped, set aside) leave the depth once.
		if err := l.DropInbox(seqs[0], seqs[1], seqs[3]); err != nil {
			t.Fatal(err)
		}
		if err := l.SetAsideInbox(it, "again"); err != nil {
			t.Fatal(err)
		}
		if d := l.InboxDepth(); d != 1 {
			t.Fatalf("depth %d after dropping and setting aside items gone already, want 1", d)
		}
	})

	// The limit bounds the waiting items, also when requests race.
	test(t, d, "Limit", func(t *testing.T, e *env) {
		l := e.l
		l.SetInboxLimit(5)
		var ok, full atomic.Int64
		var wg sync.WaitGroup
		for range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := l.AppendInbox(store.InboxItem{Source: "shop", Body: []byte(`{}`)})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, store.ErrInboxFull):
					full.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 5 || full.Load() != 7 || l.InboxDepth() != 5 {
			t.Fatalf("%d accepted, %d refused, depth %d; want 5, 7, 5", ok.Load(), full.Load(), l.InboxDepth())
		}
		items, _ := l.PendingInbox(0, 10)
		if err := l.DropInbox(items[0].Seq); err != nil {
			t.Fatal(err)
		}
		if _, err := l.AppendInbox(store.InboxItem{Source: "shop", Body: []byte(`{}`)}); err != nil {
			t.Fatalf("an append after a drop freed a place: %v", err)
		}
		if _, err := l.AppendInbox(store.InboxItem{Source: "shop", Body: []byte(`{}`)}); !errors.Is(err, store.ErrInboxFull) {
			t.Fatalf("an append over the limit: %v", err)
		}
		l.SetInboxLimit(0)
		if _, err := l.AppendInbox(store.InboxItem{Source: "shop", Body: []byte(`{}`)}); err != nil {
			t.Fatalf("an append with no limit: %v", err)
		}
	})

	// InboxStats: how many wait and since when; the oldest moves past what
	// InboxProcessed reports handled.
	test(t, d, "Stats", func(t *testing.T, e *env) {
		l := e.l
		if n, oldest, err := l.InboxStats(); err != nil || n != 0 || !oldest.IsZero() {
			t.Fatalf("empty inbox: %d %v %v", n, oldest, err)
		}
		first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		var seqs []uint64
		for i := range 3 {
			seq, err := l.AppendInbox(store.InboxItem{Source: "s", Body: []byte(`{}`), Received: first.Add(time.Duration(i) * time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, seq)
		}
		if n, oldest, err := l.InboxStats(); err != nil || n != 3 || !oldest.Equal(first) {
			t.Fatalf("inbox of 3: %d %v %v, want 3 and %v", n, oldest, err, first)
		}
		if err := l.DropInbox(seqs[0]); err != nil {
			t.Fatal(err)
		}
		if n, oldest, _ := l.InboxStats(); n != 2 || !oldest.Equal(first.Add(time.Minute)) {
			t.Fatalf("after dropping the oldest: %d %v", n, oldest)
		}
		l.InboxProcessed(seqs[1])
		if _, oldest, _ := l.InboxStats(); !oldest.Equal(first.Add(2 * time.Minute)) {
			t.Fatalf("oldest after the second was processed: %v", oldest)
		}
	})

	// Trigger webhooks: random ids of at least 128 bits, listed oldest
	// first, looked up and deleted by id.
	test(t, d, "Webhooks", func(t *testing.T, e *env) {
		l := e.l
		if l.HasWebhooks() || len(l.Webhooks()) != 0 {
			t.Fatal("webhooks in a new layer")
		}
		a, err := l.AddWebhook("cms")
		if err != nil {
			t.Fatal(err)
		}
		b, err := l.AddWebhook("cms")
		if err != nil {
			t.Fatal(err)
		}
		if a.ID == b.ID || len(a.ID) < 22 || a.Name != "cms" || a.Created.IsZero() { // 128 bits take 22 characters of base64, 32 of hex
			t.Fatalf("webhooks %+v %+v", a, b)
		}
		if !l.HasWebhooks() {
			t.Fatal("HasWebhooks after an add")
		}
		if ws := l.Webhooks(); len(ws) != 2 || ws[0].ID != a.ID || ws[1].ID != b.ID {
			t.Fatalf("webhooks %+v", ws)
		}
		if w, ok := l.LookupWebhook(b.ID); !ok || w.ID != b.ID || w.Name != "cms" {
			t.Fatalf("lookup %+v %v", w, ok)
		}
		if _, ok := l.LookupWebhook(b.ID[:len(b.ID)-1]); ok {
			t.Fatal("lookup of a prefix of an id")
		}
		if w, err := l.DeleteWebhook(a.ID); err != nil || w.ID != a.ID {
			t.Fatalf("delete %+v %v", w, err)
		}
		if _, err := l.DeleteWebhook(a.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if _, ok := l.LookupWebhook(a.ID); ok {
			t.Fatal("a deleted webhook is found")
		}
		if _, err := l.DeleteWebhook(b.ID); err != nil {
			t.Fatal(err)
		}
		if l.HasWebhooks() {
			t.Fatal("HasWebhooks once all are deleted")
		}
	})

	// What one host appends, another host lists, signals and consumes.
	hostsTest(t, d, "AcrossHosts", 2, func(t *testing.T, ls []store.Layer) {
		a, b := ls[0], ls[1]
		sig := b.InboxSignal()
		seq, err := a.AppendInbox(store.InboxItem{Source: "shop", Body: []byte(`{"n":1}`)})
		if err != nil {
			t.Fatal(err)
		}
		waitSignal(t, sig, "inbox of host b after host a appended")
		items, err := b.PendingInbox(0, 10)
		if err != nil || len(items) != 1 || items[0].Seq != seq || string(items[0].Body) != `{"n":1}` {
			t.Fatalf("host b's pending inbox %+v %v", items, err)
		}
		seq2, err := b.AppendInbox(store.InboxItem{Source: "shop", Body: []byte(`{"n":2}`)})
		if err != nil || seq2 <= seq {
			t.Fatalf("host b appended %d after host a's %d: %v", seq2, seq, err)
		}
		if _, err := b.PublishChanges(store.PublishInfo{Trigger: "webhook", Consume: []uint64{seq}}, []store.Batch{{Source: "shop", Changes: []store.Change{save("M", "a", "1")}}}); err != nil {
			t.Fatal(err)
		}
		if items, _ := a.PendingInbox(0, 10); len(items) != 1 || items[0].Seq != seq2 {
			t.Fatalf("host a's pending inbox after host b consumed: %+v", items)
		}
		eventually(t, "host a's inbox depth", func() bool { return a.InboxDepth() == 1 })
		// The limit holds over every host.
		a.SetInboxLimit(4)
		b.SetInboxLimit(4)
		var ok atomic.Int64
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := ls[i%2].AppendInbox(store.InboxItem{Source: "shop", Body: []byte(`{}`)})
				if err == nil {
					ok.Add(1)
				} else if !errors.Is(err, store.ErrInboxFull) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 3 {
			t.Fatalf("%d appends accepted over two hosts with 1 waiting and a limit of 4", ok.Load())
		}
		// Trigger webhooks too.
		w, err := a.AddWebhook("cms")
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "host b knows host a's webhook", func() bool { _, ok := b.LookupWebhook(w.ID); return ok && b.HasWebhooks() })
		if _, err := b.DeleteWebhook(w.ID); err != nil {
			t.Fatal(err)
		}
		eventually(t, "host a forgets the webhook host b deleted", func() bool { _, ok := a.LookupWebhook(w.ID); return !ok && !a.HasWebhooks() })
	})
}
