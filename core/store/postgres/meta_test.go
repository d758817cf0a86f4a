package postgres

import (
	"testing"

	"github.com/synclayer/synclayer/core/store"
)

func TestMetaSettings(t *testing.T) {
	s, dsn := openStore(t)
	a, b := sysLayer(t, s, "demo"), sysLayer(t, sysHost(t, dsn), "demo")
	if v, err := a.Meta("k"); err != nil || v != nil {
		t.Fatalf("unset: %q %v", v, err)
	}
	if err := a.SetMeta("k", []byte{0, 1, 2, 0xff}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetMeta("j", []byte("j")); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Meta("k"); err != nil || string(v) != "\x00\x01\x02\xff" {
		t.Fatalf("read on the other host: %q %v", v, err)
	}
	if err := b.SetMeta("k", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.Meta("k"); string(v) != "two" {
		t.Fatalf("overwritten: %q", v)
	}
	if v, _ := sysLayer(t, s, "other").Meta("k"); v != nil {
		t.Fatalf("another layer's setting: %q", v)
	}
	if err := a.DeleteMeta("k", "j", "never-set"); err != nil {
		t.Fatal(err)
	}
	if v, _ := b.Meta("k"); v != nil {
		t.Fatalf("deleted: %q", v)
	}
	if v, _ := b.Meta("j"); v != nil {
		t.Fatalf("deleted: %q", v)
	}
	if err := a.DeleteMeta(); err != nil {
		t.Fatal(err)
	}
}

// A closed layer answers store.ErrClosed, as on the embedded driver.
func TestSystemCallsOnAClosedLayer(t *testing.T) {
	s, _ := openStore(t)
	l := sysLayer(t, s, "demo")
	s.Close()
	for name, err := range map[string]error{
		"Meta":          func() error { _, err := l.Meta("k"); return err }(),
		"SetMeta":       l.SetMeta("k", nil),
		"AppendInbox":   func() error { _, err := l.AppendInbox(store.InboxItem{}); return err }(),
		"Enqueue":       l.Enqueue([]store.Delivery{sysDelivery("evt_1", "app")}),
		"OutboxChanges": func() error { _, _, err := l.OutboxChanges(0); return err }(),
		"AppendEvents":  l.AppendEvents([]store.Event{{Type: "x"}}),
		"Events":        func() error { _, err := l.Events(0, 1); return err }(),
		"PutRun":        l.PutRun(&store.Run{ID: "run_1"}),
		"GetConnection": func() error { _, err := l.GetConnection("a", "b"); return err }(),
	} {
		if err != store.ErrClosed {
			t.Errorf("%s on a closed layer: %v, want store.ErrClosed", name, err)
		}
	}
}
