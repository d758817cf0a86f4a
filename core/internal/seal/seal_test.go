package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	s, err := New([]byte("a service key"))
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"token":"sk_live_123"}`)
	sealed := s.Seal(plain, []byte("crm/acme"))
	if bytes.Contains(sealed, []byte("sk_live_123")) {
		t.Fatal("sealed value holds the plaintext")
	}
	got, err := s.Open(sealed, []byte("crm/acme"))
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s.Open(sealed, []byte("crm/globex")); !errors.Is(err, ErrOpen) {
		t.Fatalf("opened with another connection's name: %v", err)
	}
	other, _ := New([]byte("another key"))
	if _, err := other.Open(sealed, []byte("crm/acme")); !errors.Is(err, ErrOpen) {
		t.Fatalf("opened with another key: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := s.Open(sealed, []byte("crm/acme")); !errors.Is(err, ErrOpen) {
		t.Fatalf("opened an altered value: %v", err)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	k1, created, err := LoadOrCreateKey(dir)
	if err != nil || !created || len(k1) != 64 {
		t.Fatalf("create: %q %v %v", k1, created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v", fi.Mode(), err)
	}
	k2, created, err := LoadOrCreateKey(dir)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("load: %v %v", created, err)
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o644)
	if _, _, err := LoadOrCreateKey(dir); err == nil {
		t.Fatal("a world-readable key file was accepted")
	}
}
