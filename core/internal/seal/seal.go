// Package seal encrypts small secrets at rest (connection configs) with
// AES-256-GCM under a key derived from the service's encryption_key, or
// from a key file the host creates in its data directory.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// version prefixes every sealed value, so that the format can change.
const version = 1

// KeyFile is the name of the key file the host creates in its data
// directory when no encryption_key is set.
const KeyFile = "connections.key"

// Sealer seals and opens values. It is safe for concurrent use.
type Sealer struct{ aead cipher.AEAD }

// New derives the sealing key from secret (any length; HKDF-SHA256).
func New(secret []byte) (*Sealer, error) {
	if len(secret) == 0 {
		return nil, errors.New("seal: empty key")
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "synclayer connections v1 aes-256-gcm", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plain; ad (e.g. the connection's name) is authenticated
// with it, so a sealed value cannot be moved to another connection.
func (s *Sealer) Seal(plain, ad []byte) []byte {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = version
	if _, err := rand.Read(out[1:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return s.aead.Seal(out, out[1:], plain, ad)
}

// ErrOpen is returned for a value that does not open: another key, or
// altered.
var ErrOpen = errors.New("seal: the value does not decrypt with this key (was encryption_key changed?)")

// Open decrypts a value made by Seal with the same ad.
func (s *Sealer) Open(sealed, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// LoadOrCreateKey returns the secret of the key file in dir, creating it
// (32 random bytes, hex, mode 0600) when missing; created tells whether it
// did.
func LoadOrCreateKey(dir string) (secret []byte, created bool, err error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		k := strings.TrimSpace(string(b))
		if len(k) < 32 {
			return nil, false, fmt.Errorf("seal: key file %s is too short", path)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return nil, false, fmt.Errorf("seal: key file %s is readable by others (mode %o); chmod 600 it", path, fi.Mode().Perm())
		}
		return []byte(k), false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, false, err
	}
	k := hex.EncodeToString(raw[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) { // another process made it first
			return LoadOrCreateKey(dir)
		}
		return nil, false, err
	}
	if _, err := f.WriteString(k + "\n"); err != nil {
		f.Close()
		return nil, false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, false, err
	}
	if err := f.Close(); err != nil {
		return nil, false, err
	}
	return []byte(k), true, nil
}
