package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/synclayer/synclayer/core/store"
)

// testLayers: the store's layers, each with data of its own, and a closed
// store.
func testLayers(t *testing.T, d Driver) {
	// Layers are created on first use and listed by name.
	test(t, d, "Names", func(t *testing.T, e *env) {
		layerOf(t, e.st, "b_layer")
		layerOf(t, e.st, "a-layer")
		names, err := e.st.LayerNames()
		if err != nil || fmt.Sprint(names) != "[a-layer b_layer catalog]" {
			t.Fatalf("layer names %v %v", names, err)
		}
		if _, err := e.st.Layer("bad name"); err == nil {
			t.Fatal("a layer named with a space")
		}
		if _, err := e.st.Layer(""); err == nil {
			t.Fatal("a layer without a name")
		}
		// A layer opened again is the same data.
		publish(t, e.l, "run_1", "shop", save("M", "a", "1"))
		again := layerOf(t, e.st, layerName)
		if got, _ := readAll(t, again, store.Query{}); ids(got) != "a" {
			t.Fatalf("the layer opened again reads %s", ids(got))
		}
	})

	// Each layer has its own records, revisions, logs, inbox, outbox,
	// runs and connections.
	test(t, d, "Isolation", func(t *testing.T, e *env) {
		a := e.l
		b := layerOf(t, e.st, "other")
		publish(t, a, "run_1", "shop", save("M", "a", "1"))
		if err := a.AppendEvents([]store.Event{{Type: "x"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.AppendInbox(store.InboxItem{Source: "shop", Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if err := a.Enqueue([]store.Delivery{delivery("evt_1", "app")}); err != nil {
			t.Fatal(err)
		}
		if err := a.PutRun(&store.Run{ID: "run_1", State: store.RunQueued}); err != nil {
			t.Fatal(err)
		}
		if err := a.PutConnection(&store.Connection{Source: "crm", ID: "acme", State: "active"}, true); err != nil {
			t.Fatal(err)
		}
		if _, err := a.AddWebhook("cms"); err != nil {
			t.Fatal(err)
		}
		if got, page := readAll(t, b, store.Query{}); len(got) != 0 || page.Revision.Number != 0 {
			t.Fatalf("another layer reads %s at revision %d", ids(got), page.Revision.Number)
		}
		if _, ok := b.Newest(); ok {
			t.Fatal("another layer has a revision")
		}
		if es, _ := b.Events(0, 10); len(es) != 0 {
			t.Fatalf("another layer's events %+v", es)
		}
		if items, _ := b.PendingInbox(0, 10); len(items) != 0 || b.InboxDepth() != 0 {
			t.Fatalf("another layer's inbox %+v", items)
		}
		if ds, _ := b.Deliveries("", 10, false); len(ds) != 0 {
			t.Fatalf("another layer's outbox %s", deliveryIDs(ds))
		}
		if _, err := b.GetRun("run_1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another layer's run: %v", err)
		}
		if _, err := b.GetConnection("crm", "acme"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another layer's connection: %v", err)
		}
		if b.HasWebhooks() {
			t.Fatal("another layer has the webhook")
		}
		// Its own revisions are numbered from 1.
		if r := publish(t, b, "run_1", "shop", save("M", "b", "1")); r.Number != 1 {
			t.Fatalf("the other layer's first revision is %d", r.Number)
		}
		if got, _ := readAll(t, a, store.Query{}); ids(got) != "a" {
			t.Fatalf("catalog reads %s", ids(got))
		}
	})

	// A closed store answers ErrClosed.
	test(t, d, "Closed", func(t *testing.T, e *env) {
		publish(t, e.l, "run_1", "shop", save("M", "a", "1"))
		if err := e.st.Close(); err != nil {
			t.Fatal(err)
		}
		if err := e.st.Close(); err != nil {
			t.Fatalf("a second close: %v", err)
		}
		if _, err := e.st.Layer(layerName); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("layer of a closed store: %v", err)
		}
		if _, err := e.l.Records(store.Query{}, func([]byte) error { return nil }); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("records of a closed store: %v", err)
		}
		if _, err := e.l.BeginStaging("run_2"); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("staging in a closed store: %v", err)
		}
		if _, err := e.l.PublishChanges(store.PublishInfo{Trigger: "webhook"}, nil); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("a publish in a closed store: %v", err)
		}
	})
}
