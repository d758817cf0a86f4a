package postgres

import (
	"testing"
)

func TestMeta(t *testing.T) {
	s, dsn := openStore(t)
	a, b := layerOf(t, s, "demo"), layerOf(t, otherHost(t, dsn), "demo")
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
	if v, _ := layerOf(t, s, "other").Meta("k"); v != nil {
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
