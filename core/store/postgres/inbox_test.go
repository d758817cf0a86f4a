package postgres

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/store"
)

// Items come back as appended, in order, from any host; attempts are kept;
// set aside and dropped items leave the queue.
func TestInboxAppendReadUpdateDrop(t *testing.T) {
	s, dsn := openStore(t)
	l := sysLayer(t, s, "demo")
	received := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	first := store.InboxItem{Source: "crm", Connection: "acme", Method: "POST", Path: "/hooks/demo/crm/acme",
		Header: http.Header{"X-Signature": {"sha256=abc"}}, Body: []byte(`{"a":1}`), Received: received}
	var seqs []uint64
	for i, it := range []store.InboxItem{first, {Source: "shop", Body: []byte(`{"b":2}`)}, {Source: "shop"}} {
		seq, err := l.AppendInbox(it)
		if err != nil {
			t.Fatal(err)
		}
		if seq != uint64(i+1) {
			t.Fatalf("item %d got seq %d", i, seq)
		}
		seqs = append(seqs, seq)
	}
	other := sysLayer(t, sysHost(t, dsn), "demo")
	items, err := other.PendingInbox(0, 10)
	if err != nil || len(items) != 3 {
		t.Fatalf("pending: %+v, %v", items, err)
	}
	got := items[0]
	if got.Seq != 1 || got.Source != "crm" || got.Connection != "acme" || got.Method != "POST" || got.Path != first.Path ||
		got.Header.Get("X-Signature") != "sha256=abc" || string(got.Body) != `{"a":1}` || !got.Received.Equal(received) {
		t.Fatalf("first item read back: %+v", got)
	}
	if items[1].Received.IsZero() || len(items[2].Body) != 0 {
		t.Fatalf("defaults: %+v %+v", items[1], items[2])
	}
	if page, err := other.PendingInbox(1, 1); err != nil || len(page) != 1 || page[0].Seq != 2 {
		t.Fatalf("after 1, limit 1: %+v, %v", page, err)
	}
	if n := other.InboxDepth(); n != 3 {
		t.Fatalf("depth %d, want 3", n)
	}

	items[1].Attempts = 2
	if err := l.UpdateInbox(items[1]); err != nil {
		t.Fatal(err)
	}
	if page, _ := other.PendingInbox(1, 1); page[0].Attempts != 2 || string(page[0].Body) != `{"b":2}` {
		t.Fatalf("updated item: %+v", page[0])
	}
	if err := l.SetAsideInbox(items[0], "the connector refused it"); err != nil {
		t.Fatal(err)
	}
	if err := l.DropInbox(seqs[2]); err != nil {
		t.Fatal(err)
	}
	if items, _ := other.PendingInbox(0, 10); len(items) != 1 || items[0].Seq != 2 {
		t.Fatalf("after setting one aside and dropping one: %+v", items)
	}
	if n := other.InboxDepth(); n != 1 {
		t.Fatalf("depth %d, want 1", n)
	}
	var reason string
	if err := s.pool.QueryRow(t.Context(), `SELECT reason FROM synclayer_inbox_set_aside WHERE seq = 1`).Scan(&reason); err != nil || reason != "the connector refused it" {
		t.Fatalf("set aside: %q, %v", reason, err)
	}
	// An update of an item handled meanwhile does not bring it back.
	if err := l.UpdateInbox(items[2]); err != nil {
		t.Fatal(err)
	}
	if n := l.InboxDepth(); n != 1 {
		t.Fatalf("an update brought a dropped item back: depth %d", n)
	}
	// The set-aside item goes with the event retention.
	if _, err := l.PruneEvents(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM synclayer_inbox_set_aside`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("set-aside items after pruning: %d, %v", n, err)
	}
}

// As badger's: the count and the oldest waiting item's time.
func TestInboxStats(t *testing.T) {
	s, _ := openStore(t)
	l := sysLayer(t, s, "cat")
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
	n, oldest, err := l.InboxStats()
	if err != nil || n != 3 || !oldest.Equal(first) {
		t.Fatalf("inbox of 3: %d %v %v, want 3 and %v", n, oldest, err, first)
	}
	if err := l.DropInbox(seqs[0]); err != nil {
		t.Fatal(err)
	}
	if n, oldest, _ := l.InboxStats(); n != 2 || !oldest.Equal(first.Add(time.Minute)) {
		t.Fatalf("after dropping the oldest: %d %v", n, oldest)
	}
	// Once the loop has handled the second, the third is the oldest that
	// waits.
	l.InboxProcessed(seqs[1])
	l.InboxProcessed(seqs[0]) // never back
	if _, oldest, _ := l.InboxStats(); !oldest.Equal(first.Add(2 * time.Minute)) {
		t.Fatalf("after processing up to the second: %v", oldest)
	}
	s.Close()
	if _, _, err := l.InboxStats(); err != store.ErrClosed {
		t.Fatalf("stats of a closed layer: %v", err)
	}
}

// The limit counts the layer's waiting items; room comes back as they go.
func TestInboxLimit(t *testing.T) {
	s, _ := openStore(t)
	l := sysLayer(t, s, "demo")
	l.SetInboxLimit(2)
	for range 2 {
		if _, err := l.AppendInbox(store.InboxItem{Source: "s"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.AppendInbox(store.InboxItem{Source: "s"}); !errors.Is(err, store.ErrInboxFull) {
		t.Fatalf("third item at limit 2: %v", err)
	}
	if err := l.DropInbox(1); err != nil {
		t.Fatal(err)
	}
	seq, err := l.AppendInbox(store.InboxItem{Source: "s"})
	if err != nil {
		t.Fatal(err)
	}
	// A refused item takes no number.
	if seq != 3 {
		t.Fatalf("seq after a refusal: %d, want 3", seq)
	}
	// Another layer has its own room; no limit, no bound.
	other := sysLayer(t, s, "other")
	other.SetInboxLimit(0)
	for range 5 {
		if _, err := other.AppendInbox(store.InboxItem{Source: "s"}); err != nil {
			t.Fatal(err)
		}
	}
}

// Two hosts taking webhooks at once never hold more than the limit
// between them, and refuse only beyond it.
func TestInboxLimitHoldsAcrossHosts(t *testing.T) {
	s, dsn := openStore(t)
	hosts := []*Layer{sysLayer(t, s, "demo"), sysLayer(t, sysHost(t, dsn), "demo")}
	const limit, tries = 25, 80
	for _, l := range hosts {
		l.SetInboxLimit(limit)
	}
	var accepted, refused atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		l := hosts[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range tries / 8 {
				_, err := l.AppendInbox(store.InboxItem{Source: "s", Body: []byte(`{}`)})
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, store.ErrInboxFull):
					refused.Add(1)
				default:
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if accepted.Load() != limit || refused.Load() != tries-limit {
		t.Fatalf("accepted %d and refused %d of %d at limit %d", accepted.Load(), refused.Load(), tries, limit)
	}
	for i, l := range hosts {
		if n := l.InboxDepth(); n != limit {
			t.Fatalf("host %d counts %d waiting, want %d", i, n, limit)
		}
	}
}

// Appends from two hosts at once take numbers in commit order: a reader
// following the inbox by number meets every item, never one below what it
// has read.
func TestInboxReadersNeverSkipAcrossHosts(t *testing.T) {
	s, dsn := openStore(t)
	hosts := []*Layer{sysLayer(t, s, "demo"), sysLayer(t, sysHost(t, dsn), "demo")}
	const writers, each = 4, 40
	var wg sync.WaitGroup
	for w := range writers {
		l := hosts[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := l.AppendInbox(store.InboxItem{Source: fmt.Sprint(w), Body: []byte(fmt.Sprint(i))}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var after uint64
	for after < writers*each && !t.Failed() {
		items, err := hosts[0].PendingInbox(after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.Seq != after+1 {
				t.Fatalf("read item %d after %d: item %d was skipped", it.Seq, after, after+1)
			}
			after = it.Seq
		}
	}
	wg.Wait()
}

// An item appended on one host fires every host's inbox signal; its own
// host's before AppendInbox returns.
func TestInboxSignalOnEveryHost(t *testing.T) {
	s, dsn := openStore(t)
	a, b := sysLayer(t, s, "demo"), sysLayer(t, sysHost(t, dsn), "demo")
	here, there := a.InboxSignal(), b.InboxSignal()
	if sysSignalled(here) || sysSignalled(there) {
		t.Fatal("signalled before any append")
	}
	if _, err := a.AppendInbox(store.InboxItem{Source: "s"}); err != nil {
		t.Fatal(err)
	}
	if !sysSignalled(here) {
		t.Fatal("the appending host's signal is still open after AppendInbox returned")
	}
	if next := a.InboxSignal(); next == here {
		t.Fatal("the closed signal is handed out again")
	}
	sysWaitSignal(t, there, "the other host's inbox after an append")
}

// Trigger webhooks: added on one host, known on every host at once.
func TestTriggerWebhooks(t *testing.T) {
	s, dsn := openStore(t)
	a, b := sysLayer(t, s, "demo"), sysLayer(t, sysHost(t, dsn), "demo")
	if b.HasWebhooks() || len(b.Webhooks()) != 0 {
		t.Fatal("webhooks in a new layer")
	}
	w1, err := a.AddWebhook("github")
	if err != nil {
		t.Fatal(err)
	}
	w2, err := a.AddWebhook("stripe")
	if err != nil {
		t.Fatal(err)
	}
	if len(w1.ID) != 2*webhookIDBytes || w1.ID == w2.ID {
		t.Fatalf("ids %q %q", w1.ID, w2.ID)
	}
	if !b.HasWebhooks() {
		t.Fatal("the other host does not see the added webhooks")
	}
	if got, ok := b.LookupWebhook(w1.ID); !ok || got != w1 {
		t.Fatalf("lookup on the other host: %+v %v, want %+v", got, ok, w1)
	}
	if _, ok := b.LookupWebhook(w1.ID[:len(w1.ID)-1]); ok {
		t.Fatal("a truncated id was found")
	}
	if ws := b.Webhooks(); len(ws) != 2 || ws[0] != w1 || ws[1] != w2 {
		t.Fatalf("webhooks oldest first: %+v", ws)
	}
	if _, ok := sysLayer(t, s, "other").LookupWebhook(w1.ID); ok {
		t.Fatal("another layer knows the webhook")
	}
	if got, err := b.DeleteWebhook(w1.ID); err != nil || got != w1 {
		t.Fatalf("delete: %+v %v", got, err)
	}
	if _, err := a.DeleteWebhook(w1.ID); err != store.ErrNotFound {
		t.Fatalf("delete twice: %v", err)
	}
	if _, ok := a.LookupWebhook(w1.ID); ok {
		t.Fatal("a deleted webhook is found on the other host")
	}
	if _, err := a.DeleteWebhook(w2.ID); err != nil {
		t.Fatal(err)
	}
	if a.HasWebhooks() {
		t.Fatal("webhooks left after deleting them all")
	}
}

// BenchmarkAppendInbox appends payload webhooks from many goroutines of
// two hosts: the appends of a layer take turns on its inbox counter, so
// this is the layer's webhook intake (with the test server's fsync off:
// a durable server adds its commit flush to every turn).
func BenchmarkAppendInbox(b *testing.B) {
	s, dsn := openStore(b)
	hosts := []*Layer{sysLayer(b, s, "demo"), sysLayer(b, sysHost(b, dsn), "demo")}
	body := []byte(`{"event":"contact.updated","id":"12345","fields":{"email":"a@example.com"}}`)
	var n atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		l := hosts[n.Add(1)%2]
		for pb.Next() {
			if _, err := l.AppendInbox(store.InboxItem{Source: "crm", Body: body}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// The depth is appended minus removed, whatever removes an item and
// however often: an item removed twice, or never there, counts once or
// not at all.
func TestInboxDepthCountsEachRemovalOnce(t *testing.T) {
	s, dsn := openStore(t)
	a, b := sysLayer(t, s, "demo"), sysLayer(t, sysHost(t, dsn), "demo")
	var seqs []uint64
	for range 6 {
		seq, err := a.AppendInbox(store.InboxItem{Source: "s"})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	var wg sync.WaitGroup
	for _, l := range []*Layer{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.DropInbox(seqs[0], seqs[1], 999); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := b.SetAsideInbox(store.InboxItem{Seq: seqs[2]}, "bad"); err != nil {
		t.Fatal(err)
	}
	if err := a.SetAsideInbox(store.InboxItem{Seq: seqs[2]}, "bad"); err != nil {
		t.Fatal(err)
	}
	if n := b.InboxDepth(); n != 3 {
		t.Fatalf("depth %d, want 3", n)
	}
	var rows int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM synclayer_inbox`).Scan(&rows); err != nil || rows != 3 {
		t.Fatalf("rows %d, %v", rows, err)
	}
	a.SetInboxLimit(4)
	b.SetInboxLimit(4)
	if _, err := a.AppendInbox(store.InboxItem{Source: "s"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppendInbox(store.InboxItem{Source: "s"}); !errors.Is(err, store.ErrInboxFull) {
		t.Fatalf("a fifth item at limit 4: %v", err)
	}
}

// An append's commit waits for the WAL flush even on a server set not to
// wait (the test server runs with synchronous_commit off): the setting
// is raised in the append's transaction, and only there.
func TestAppendInboxCommitsDurably(t *testing.T) {
	s, _ := openStore(t)
	l := sysLayer(t, s, "demo")
	ctx := t.Context()
	var server string
	if err := s.pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&server); err != nil {
		t.Fatal(err)
	}
	if server != "off" {
		t.Fatalf("the test server's synchronous_commit is %q; this test needs it off", server)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var inTx string
	if _, err := tx.Exec(ctx, durableCommit); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&inTx); err != nil || inTx != "on" {
		t.Fatalf("synchronous_commit in the append's transaction: %q, %v", inTx, err)
	}
	tx.Rollback(ctx)
	if _, err := l.AppendInbox(store.InboxItem{Source: "s"}); err != nil {
		t.Fatal(err)
	}
	if err := s.pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&server); err != nil || server != "off" {
		t.Fatalf("the append changed the session's setting to %q (%v)", server, err)
	}
}
