package badger

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// An encrypted backup is a header followed by AES-256-GCM chunks:
//
//	magic(8) "SLBKAES1" | salt(32) | key check(16)
//	chunk*: ciphertext of 64 KiB of the tar stream, then its 16-byte tag
//	final chunk: ciphertext of the last 0 to 64 KiB - 1 bytes, then its tag
//
// The data key and the key check are derived from the store's encryption
// key with HKDF-SHA256 and the per-backup random salt. Chunk i is sealed
// with the nonce (i as 11 bytes big-endian, final flag) and the header as
// additional data: chunks cannot be reordered, dropped or moved to another
// backup, and a file cut at any point fails (the final flag is missing).

const (
	backupMagic     = "SLBKAES1"
	backupSaltLen   = 32
	backupCheckLen  = 16
	backupHeaderLen = len(backupMagic) + backupSaltLen + backupCheckLen
	backupChunk     = 64 << 10
	backupTagLen    = 16
)

// ErrBackupKey is returned when a backup cannot be decrypted with the
// store's encryption key (or the store has none).
var ErrBackupKey = errors.New("backup encryption key")

// backupKeys derives the data key and the key check of a backup.
func backupKeys(secret, salt []byte) (cipher.AEAD, []byte, error) {
	key, err := hkdf.Key(sha256.New, secret, salt, "synclayer backup v1 aes-256-gcm", 32)
	if err != nil {
		return nil, nil, err
	}
	check, err := hkdf.Key(sha256.New, secret, salt, "synclayer backup v1 key check", backupCheckLen)
	if err != nil {
		return nil, nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, err
	}
	return aead, check, nil
}

func backupNonce(n uint64, final bool) []byte {
	nonce := make([]byte, 12)
	binary.BigEndian.PutUint64(nonce[3:11], n)
	if final {
		nonce[11] = 1
	}
	return nonce
}

// backupEncrypter encrypts a backup as it is written. Close writes the
// final chunk.
type backupEncrypter struct {
	w      io.Writer
	aead   cipher.AEAD
	header []byte
	buf    []byte
	out    []byte
	n      uint64
	closed bool
}

func newBackupEncrypter(w io.Writer, secret []byte) (*backupEncrypter, error) {
	salt := make([]byte, backupSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	aead, check, err := backupKeys(secret, salt)
	if err != nil {
		return nil, err
	}
	header := make([]byte, 0, backupHeaderLen)
	header = append(header, backupMagic...)
	header = append(header, salt...)
	header = append(header, check...)
	if _, err := w.Write(header); err != nil {
		return nil, err
	}
	return &backupEncrypter{w: w, aead: aead, header: header, buf: make([]byte, 0, backupChunk), out: make([]byte, 0, backupChunk+backupTagLen)}, nil
}

func (e *backupEncrypter) Write(p []byte) (int, error) {
	if e.closed {
		return 0, errors.New("store: write to a closed backup")
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), backupChunk-len(e.buf))
		e.buf = append(e.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(e.buf) == backupChunk {
			if err := e.seal(false); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (e *backupEncrypter) seal(final bool) error {
	e.out = e.aead.Seal(e.out[:0], backupNonce(e.n, final), e.buf, e.header)
	e.n++
	e.buf = e.buf[:0]
	_, err := e.w.Write(e.out)
	return err
}

// Close writes the final chunk (it does not close the underlying writer).
func (e *backupEncrypter) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	return e.seal(true)
}

// encryptedBackup tells whether a backup starts with the encrypted header.
func encryptedBackup(br *bufio.Reader) bool {
	b, _ := br.Peek(len(backupMagic))
	return string(b) == backupMagic
}

// backupDecrypter reads an encrypted backup, failing on a wrong key, a
// changed byte or a missing end.
type backupDecrypter struct {
	r      io.Reader
	aead   cipher.AEAD
	header []byte
	in     []byte
	plain  []byte
	off    int
	n      uint64
	done   bool
	err    error
}

func newBackupDecrypter(r io.Reader, secret []byte) (*backupDecrypter, error) {
	header := make([]byte, backupHeaderLen)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, badBackup("the file is truncated: it ends inside the encryption header")
	}
	if len(secret) == 0 {
		return nil, fmt.Errorf("%w: the backup is encrypted and no encryption key is set: restore with service.encryption_key set to the key of the host that made it", ErrBackupKey)
	}
	salt := header[len(backupMagic) : len(backupMagic)+backupSaltLen]
	aead, check, err := backupKeys(secret, salt)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(check, header[len(backupMagic)+backupSaltLen:]) {
		return nil, fmt.Errorf("%w: the backup was encrypted with another key: restore with service.encryption_key set to the key of the host that made it", ErrBackupKey)
	}
	return &backupDecrypter{r: r, aead: aead, header: header, in: make([]byte, backupChunk+backupTagLen)}, nil
}

func (d *backupDecrypter) Read(p []byte) (int, error) {
	for d.off == len(d.plain) {
		if d.err != nil {
			return 0, d.err
		}
		if d.done {
			return 0, io.EOF
		}
		d.err = d.next()
	}
	n := copy(p, d.plain[d.off:])
	d.off += n
	return n, nil
}

// next reads and opens the next chunk.
func (d *backupDecrypter) next() error {
	n, err := io.ReadFull(d.r, d.in)
	final := false
	switch {
	case err == nil:
	case errors.Is(err, io.ErrUnexpectedEOF):
		final = true
	case errors.Is(err, io.EOF):
		return badBackup("the file is truncated: it ends without its final encrypted block")
	default:
		return err
	}
	if n < backupTagLen {
		return badBackup("the file is truncated: it ends inside an encrypted block")
	}
	plain, err := d.aead.Open(d.plain[:0], backupNonce(d.n, final), d.in[:n], d.header)
	if err != nil {
		if final {
			return badBackup("the file is truncated or corrupted: encrypted block %d does not authenticate", d.n)
		}
		return badBackup("the file is corrupted: encrypted block %d does not authenticate", d.n)
	}
	d.n++
	d.plain, d.off, d.done = plain, 0, final
	return nil
}
