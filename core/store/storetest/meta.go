package storetest

import (
	"testing"

	"github.com/synclayer/synclayer/core/store"
)

// testMeta: small values the host keeps per layer.
func testMeta(t *testing.T, d Driver) {
	// Set, read, replace and delete values by name.
	test(t, d, "SetGetDelete", func(t *testing.T, e *env) {
		l := e.l
		if v, err := l.Meta("absent"); err != nil || v != nil {
			t.Fatalf("an unset value: %q %v", v, err)
		}
		for name, v := range map[string]string{"a": "1", "b": "\x00binary\xff", "c/d": `{"json":true}`} {
			if err := l.SetMeta(name, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		for name, want := range map[string]string{"a": "1", "b": "\x00binary\xff", "c/d": `{"json":true}`} {
			if v, err := l.Meta(name); err != nil || string(v) != want {
				t.Fatalf("meta %q = %q %v, want %q", name, v, err, want)
			}
		}
		if err := l.SetMeta("a", []byte("2")); err != nil {
			t.Fatal(err)
		}
		if v, _ := l.Meta("a"); string(v) != "2" {
			t.Fatalf("replaced value %q", v)
		}
		if err := l.DeleteMeta("a", "c/d", "never-set"); err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]string{"a": "", "b": "\x00binary\xff", "c/d": ""} {
			v, err := l.Meta(name)
			if err != nil || string(v) != want || (want == "" && v != nil) {
				t.Fatalf("after delete, meta %q = %q %v, want %q", name, v, err, want)
			}
		}
	})

	// A revision sets PublishInfo.Meta in its own commit, whichever way it
	// is published: a run (in place, and beside another run), changes
	// outside a run.
	test(t, d, "SetByARevision", func(t *testing.T, e *env) {
		l := e.l
		publish := func(run, name string) {
			t.Helper()
			publishInfo(t, l, run, "shop", store.WriterOptions{},
				store.PublishInfo{Trigger: "manual", Meta: map[string][]byte{name: []byte(run)}}, save("M", run, "t"))
		}
		publish("run_1", "synced/a")
		// A run staging beside another one.
		hold, err := l.BeginStaging("run_hold")
		if err != nil {
			t.Fatal(err)
		}
		publish("run_2", "synced/b")
		if err := hold.Abort(); err != nil {
			t.Fatal(err)
		}
		if _, err := l.PublishChanges(store.PublishInfo{Trigger: "webhook", Sources: []string{"shop"}, Meta: map[string][]byte{"synced/c": []byte("hook")}},
			[]store.Batch{{Source: "shop", Changes: []store.Change{save("M", "w", "t")}}}); err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]string{"synced/a": "run_1", "synced/b": "run_2", "synced/c": "hook"} {
			if v, err := l.Meta(name); err != nil || string(v) != want {
				t.Fatalf("meta %q = %q %v, want %q", name, v, err, want)
			}
		}
	})

	// Values are the layer's own.
	test(t, d, "PerLayer", func(t *testing.T, e *env) {
		other := layerOf(t, e.st, "other")
		if err := e.l.SetMeta("k", []byte("catalog")); err != nil {
			t.Fatal(err)
		}
		if v, err := other.Meta("k"); err != nil || v != nil {
			t.Fatalf("another layer reads %q %v", v, err)
		}
		if err := other.SetMeta("k", []byte("other")); err != nil {
			t.Fatal(err)
		}
		if v, _ := e.l.Meta("k"); string(v) != "catalog" {
			t.Fatalf("catalog's value became %q", v)
		}
	})
}
