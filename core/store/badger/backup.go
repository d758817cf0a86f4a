package badger

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
)

// A backup is a tar stream, encrypted when the store is (see
// backupcrypt.go), holding for each layer:
//
//	layers/<name>/<n>.kv   the layer's key versions, in parts of about 8 MiB
//	layers/<name>.json     the layer's manifest (backupLayer)
//
// and last manifest.json (backupManifest), which lists every layer. A part
// is a sequence of key versions, each encoded as
//
//	uvarint len(key) key uvarint version flags(1) userMeta(1)
//	uvarint expiresAt uvarint len(value) value
//
// where flags bit 0 marks a delete marker (no value). A layer's backup
// holds every version above the layer's discard timestamp, delete markers
// included, and the newest version at or below it unless that one is a
// delete: exactly what every revision still readable needs. (Badger's own
// Stream.Backup stops at a key's first delete marker, and every record
// update deletes the record's old entry: older revisions then lost records.)
//
// Backups of the previous format, one layers/<name>.badger entry per layer
// holding Badger's backup stream, are still restored.

// backupFormat names the format in manifest.json.
const backupFormat = "synclayer-backup/2"

// backupPartSize is the size above which a layer's part is written out:
// parts are held in memory, never in a file in clear. (A variable for
// tests.)
var backupPartSize = 8 << 20

const (
	// maxBackupKey and maxBackupValue bound what a restore accepts (Badger
	// takes keys up to 65,000 bytes; values never exceed a value log file).
	maxBackupKey   = 65000
	maxBackupValue = 256 << 20
	// flagBackupDelete marks a delete marker in a part.
	flagBackupDelete = 1
	// restoreStamp is written in a restored layer's directory: a second
	// restore of the same backup skips that layer instead of refusing it.
	restoreStamp = "synclayer-restore.json"
	// restoreTmpPrefix starts the temporary directories a restore loads
	// layers into, under layers/ (so that renaming them is atomic).
	restoreTmpPrefix = ".restore-"
)

// backupLayer is a layer's manifest in a backup.
type backupLayer struct {
	Layer string `json:"layer"`
	// Versions is the number of key versions (delete markers included).
	Versions int64 `json:"versions"`
	// Bytes and SHA256 cover the layer's parts, in order.
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	Parts  int    `json:"parts"`
	// SnapshotTS is the timestamp the layer was read at; DiscardTS the
	// oldest one a retained revision reads.
	SnapshotTS uint64 `json:"snapshot_ts"`
	DiscardTS  uint64 `json:"discard_ts"`
	// Revision is the newest published revision in the backup, Pinned the
	// pinned one (0: none).
	Revision int64 `json:"revision"`
	Pinned   int64 `json:"pinned,omitempty"`
}

// backupManifest is the last entry of a backup.
type backupManifest struct {
	Format    string        `json:"format"`
	CreatedAt time.Time     `json:"created_at"`
	Encrypted bool          `json:"encrypted"`
	Layers    []backupLayer `json:"layers"`
}

// LayerNames lists the layers that have a database under the data dir.
func (s *Store) LayerNames() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.opts.Dir, "layers"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && layerName.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Encrypted tells whether the store's backups are encrypted (it has an
// encryption key).
func (s *Store) Encrypted() bool { return len(s.opts.EncryptionKey) > 0 }

// Backup writes every layer of the store to w, each consistent to one
// revision: everything published up to the moment the layer's backup
// starts, and nothing of a run still staging. It may run while the layers
// are in use. When the store has an encryption key, the backup is
// encrypted with a key derived from it.
func (s *Store) Backup(w io.Writer) error {
	names, err := s.LayerNames()
	if err != nil {
		return err
	}
	var enc *backupEncrypter
	if len(s.opts.EncryptionKey) > 0 {
		if enc, err = newBackupEncrypter(w, s.opts.EncryptionKey); err != nil {
			return err
		}
		w = enc
	}
	m := backupManifest{Format: backupFormat, CreatedAt: time.Now().UTC(), Encrypted: enc != nil}
	tw := tar.NewWriter(w)
	for _, name := range names {
		l, err := s.layer(name)
		if err != nil {
			return err
		}
		bl, err := l.backup(tw)
		if err != nil {
			return fmt.Errorf("back up layer %q: %w", name, err)
		}
		m.Layers = append(m.Layers, bl)
	}
	if err := writeTarJSON(tw, "manifest.json", m); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if enc != nil {
		return enc.Close()
	}
	return nil
}

func writeTarJSON(tw *tar.Writer, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), ModTime: time.Now()}); err != nil {
		return err
	}
	_, err = tw.Write(b)
	return err
}

// backup writes the layer's parts and manifest to tw.
func (l *Layer) backup(tw *tar.Writer) (backupLayer, error) {
	// The snapshot: under the publisher lock, everything committed is at
	// or below l.ts and nothing is being committed; a staging writes
	// above it. The iterator, made here too, holds the tables and value
	// log files it reads, so that compactions (and a discard timestamp
	// raised meanwhile) cannot take versions away while it walks them.
	l.pub.Lock()
	if l.closed.Load() {
		l.pub.Unlock()
		return backupLayer{}, ErrClosed
	}
	// Closing the layer waits for the backup, which stops at its next
	// key once the layer is marked closed.
	l.backups.Add(1)
	defer l.backups.Done()
	bl := backupLayer{Layer: l.name, SnapshotTS: l.ts, DiscardTS: l.discardTS}
	// The newest revision committed, visible or about to be (its fsync
	// under way, visible.go): the snapshot holds it, and a restore shows
	// it.
	l.mu.RLock()
	if n := len(l.refs); n > 0 {
		bl.Revision = l.refs[n-1].num
	}
	l.mu.RUnlock()
	bl.Pinned = l.Pinned()
	txn := l.db.NewTransactionAt(bl.SnapshotTS, false)
	it := txn.NewIterator(badger.IteratorOptions{AllVersions: true})
	l.pub.Unlock()
	defer txn.Discard()
	defer it.Close()

	pw := partWriter{tw: tw, name: l.name, sum: sha256.New()}
	var last []byte
	done := false // the rest of this key's versions are not needed
	for it.Rewind(); it.Valid(); it.Next() {
		if l.closed.Load() {
			return bl, ErrClosed
		}
		item := it.Item()
		k := item.Key()
		if last != nil && bytes.Equal(k, last) {
			if done {
				continue
			}
		} else {
			last = append(last[:0], k...)
			done = false
		}
		v := item.Version()
		deleted := item.IsDeletedOrExpired()
		if v <= bl.DiscardTS {
			// The version readers at the discard timestamp see: nothing
			// reads older ones, and a delete needs no marker in a backup
			// restored into an empty database.
			done = true
			if deleted {
				continue
			}
		}
		if err := pw.add(item, deleted); err != nil {
			return bl, err
		}
		if item.DiscardEarlierVersions() {
			done = true
		}
	}
	if err := pw.flush(); err != nil {
		return bl, err
	}
	bl.Versions, bl.Bytes, bl.Parts = pw.versions, pw.bytes, pw.parts
	bl.SHA256 = hex.EncodeToString(pw.sum.Sum(nil))
	if err := writeTarJSON(tw, "layers/"+l.name+".json", bl); err != nil {
		return bl, err
	}
	return bl, nil
}

// partWriter cuts a layer's versions into tar entries.
type partWriter struct {
	tw       *tar.Writer
	name     string
	buf      []byte
	sum      hash.Hash
	versions int64
	bytes    int64
	parts    int
}

func (p *partWriter) add(item *badger.Item, deleted bool) error {
	k := item.Key()
	p.buf = binary.AppendUvarint(p.buf, uint64(len(k)))
	p.buf = append(p.buf, k...)
	p.buf = binary.AppendUvarint(p.buf, item.Version())
	var flags byte
	if deleted {
		flags = flagBackupDelete
	}
	p.buf = append(p.buf, flags, item.UserMeta())
	p.buf = binary.AppendUvarint(p.buf, item.ExpiresAt())
	if deleted {
		p.buf = binary.AppendUvarint(p.buf, 0)
	} else if err := item.Value(func(v []byte) error {
		p.buf = binary.AppendUvarint(p.buf, uint64(len(v)))
		p.buf = append(p.buf, v...)
		return nil
	}); err != nil {
		return fmt.Errorf("read %q at %d: %w", k, item.Version(), err)
	}
	p.versions++
	if len(p.buf) >= backupPartSize {
		return p.flush()
	}
	return nil
}

func (p *partWriter) flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	p.parts++
	name := fmt.Sprintf("layers/%s/%06d.kv", p.name, p.parts)
	if err := p.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(p.buf)), ModTime: time.Now()}); err != nil {
		return err
	}
	if _, err := p.tw.Write(p.buf); err != nil {
		return err
	}
	p.sum.Write(p.buf)
	p.bytes += int64(len(p.buf))
	p.buf = p.buf[:0]
	return nil
}

// ErrBadBackup is wrapped by restore errors about the backup file itself
// (truncated, corrupted, not a synclayer backup).
var ErrBadBackup = errors.New("bad backup")

func badBackup(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadBackup, fmt.Sprintf(format, a...))
}

// Restore loads a backup into the store and returns the names of the
// layers restored. Each layer is loaded into a temporary directory under
// the data dir and checked (its versions and checksum against the backup's
// manifest, its revisions readable); only when every layer of the backup
// is, are they renamed into place. A truncated or corrupted backup, or a
// crash, leaves no partial layer behind; restore can simply be run again.
// A layer of the backup that the store already has is refused, unless a
// restore of this same backup put it there.
func (s *Store) Restore(r io.Reader) ([]string, error) {
	if s.opts.InMemory {
		return nil, errors.New("store: restore needs a data dir")
	}
	layersDir := filepath.Join(s.opts.Dir, "layers")
	if err := removeRestoreLeftovers(layersDir); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	src := io.Reader(br)
	var dec *backupDecrypter
	if encryptedBackup(br) {
		var err error
		if dec, err = newBackupDecrypter(br, s.opts.EncryptionKey); err != nil {
			return nil, err
		}
		src = dec
	}
	rs := &restore{s: s, dir: layersDir, layers: map[string]*restoreLayer{}}
	defer rs.cleanup()
	if err := rs.read(tar.NewReader(src)); err != nil {
		return nil, err
	}
	if dec != nil {
		// Everything after the tar end must still authenticate, up to the
		// final block.
		if _, err := io.Copy(io.Discard, dec); err != nil {
			return nil, err
		}
	}
	return rs.commit()
}

// removeRestoreLeftovers deletes the temporary directories of a restore
// that did not finish.
func removeRestoreLeftovers(layersDir string) error {
	if err := os.MkdirAll(layersDir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(layersDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), restoreTmpPrefix) {
			if err := os.RemoveAll(filepath.Join(layersDir, e.Name())); err != nil {
				return fmt.Errorf("remove what an interrupted restore left: %w", err)
			}
		}
	}
	return nil
}

// restore is one restore in progress.
type restore struct {
	s      *Store
	dir    string
	layers map[string]*restoreLayer
	order  []string
	cur    *restoreLayer
	legacy bool
	// manifest is set once manifest.json was read.
	manifest *backupManifest
}

// restoreLayer is one layer of a restore.
type restoreLayer struct {
	name string
	// tmp is the directory the layer is loaded into ("" when skipped).
	tmp string
	// skip: the layer exists already; its backup is read (to check it
	// against the stamp) but not loaded.
	skip  bool
	stamp backupLayer
	db    *badger.DB
	// kl loads the versions into db: Badger's own restore path, batches
	// straight to its write channel, none of a transaction's bookkeeping
	// (the layer is a temporary directory until the restore commits).
	kl       *badger.KVLoader
	maxValue int64 // Badger's bound on a value (maxValueOf)
	sum      hash.Hash
	bytes    int64
	vers     int64
	parts    int
	done     bool
	info     backupLayer
}

func (rs *restore) read(tr *tar.Reader) error {
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return badBackup("the file is truncated or corrupted (%v)", err)
		}
		if rs.manifest != nil {
			return badBackup("unexpected entry %q after the manifest", h.Name)
		}
		if err := rs.entry(h, tr); err != nil {
			return err
		}
	}
	if rs.legacy {
		for _, name := range rs.order {
			if err := rs.finishLegacy(rs.layers[name]); err != nil {
				return err
			}
		}
		return nil
	}
	if rs.manifest == nil {
		return badBackup("the file is truncated: it ends before its manifest (%d layer(s) read)", len(rs.order))
	}
	if len(rs.manifest.Layers) != len(rs.order) {
		return badBackup("the manifest lists %d layer(s), the file holds %d", len(rs.manifest.Layers), len(rs.order))
	}
	for _, want := range rs.manifest.Layers {
		rl := rs.layers[want.Layer]
		if rl == nil || !rl.done || rl.info != want {
			return badBackup("layer %q does not match the manifest", want.Layer)
		}
	}
	return nil
}

func (rs *restore) entry(h *tar.Header, tr *tar.Reader) error {
	if h.Typeflag != tar.TypeReg {
		return badBackup("unexpected entry %q (not a synclayer backup?)", h.Name)
	}
	if h.Name == "manifest.json" {
		if rs.cur != nil && !rs.cur.done {
			return badBackup("layer %q has no manifest", rs.cur.name)
		}
		var m backupManifest
		if err := readTarJSON(tr, h, &m); err != nil {
			return err
		}
		if m.Format != backupFormat {
			return badBackup("format %q is not %q: restore it with the synclayer version that made it", m.Format, backupFormat)
		}
		rs.manifest = &m
		return nil
	}
	rest, ok := strings.CutPrefix(h.Name, "layers/")
	if !ok {
		return badBackup("unexpected entry %q (not a synclayer backup?)", h.Name)
	}
	if name, ok := strings.CutSuffix(rest, ".badger"); ok && layerName.MatchString(name) {
		// The previous format: Badger's backup stream, no manifest.
		if len(rs.order) > 0 && !rs.legacy {
			return badBackup("unexpected entry %q", h.Name)
		}
		rs.legacy = true
		rl, err := rs.begin(name)
		if err != nil {
			return err
		}
		if rl.skip {
			return nil
		}
		if err := rl.db.Load(tr, 16); err != nil {
			return badBackup("layer %q: the file is truncated or corrupted (%v)", name, err)
		}
		return nil
	}
	if rs.legacy {
		return badBackup("unexpected entry %q", h.Name)
	}
	if name, ok := strings.CutSuffix(rest, ".json"); ok && layerName.MatchString(name) {
		rl := rs.cur
		if rl == nil || rl.name != name || rl.done {
			// A layer without versions has only its manifest.
			var err error
			if rl, err = rs.begin(name); err != nil {
				return err
			}
		}
		if err := readTarJSON(tr, h, &rl.info); err != nil {
			return err
		}
		return rs.finish(rl)
	}
	name, part, ok := strings.Cut(rest, "/")
	n, err := strconv.Atoi(strings.TrimSuffix(part, ".kv"))
	if !ok || !layerName.MatchString(name) || !strings.HasSuffix(part, ".kv") || err != nil {
		return badBackup("unexpected entry %q (not a synclayer backup?)", h.Name)
	}
	rl := rs.cur
	if rl == nil || rl.name != name || rl.done {
		if rl, err = rs.begin(name); err != nil {
			return err
		}
	}
	if n != rl.parts+1 {
		return badBackup("layer %q: part %d follows part %d", name, n, rl.parts)
	}
	rl.parts = n
	return rl.loadPart(tr, h.Size)
}

func readTarJSON(tr *tar.Reader, h *tar.Header, v any) error {
	if h.Size > 1<<20 {
		return badBackup("entry %q is too large (%d bytes)", h.Name, h.Size)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		return badBackup("the file is truncated or corrupted (%v)", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return badBackup("entry %q: %v", h.Name, err)
	}
	return nil
}

// begin starts restoring a layer: into a temporary directory, or (when the
// layer exists with a stamp) just reading it to compare.
func (rs *restore) begin(name string) (*restoreLayer, error) {
	if rs.cur != nil && !rs.cur.done && !rs.legacy {
		return nil, badBackup("layer %q has no manifest", rs.cur.name)
	}
	if _, dup := rs.layers[name]; dup {
		return nil, badBackup("layer %q appears twice", name)
	}
	rl := &restoreLayer{name: name, sum: sha256.New()}
	final := filepath.Join(rs.dir, name)
	if _, err := os.Stat(final); err == nil {
		// Skipped if a restore of this backup put it there and nothing
		// changed it since (a restore cut short while renaming layers into
		// place, run again); refused otherwise.
		stamp, ok := rs.s.restoredUnchanged(name)
		if !ok || rs.legacy {
			return nil, fmt.Errorf("layer %q already exists in %s: restore into a data dir that does not hold it (move %s away first)", name, rs.s.opts.Dir, final)
		}
		rl.skip, rl.stamp = true, stamp
	} else {
		tmp, err := os.MkdirTemp(rs.dir, restoreTmpPrefix+name+"-")
		if err != nil {
			return nil, err
		}
		rl.tmp = tmp
		if rl.db, err = badger.OpenManaged(rs.s.restoreOptions(tmp, name)); err != nil {
			return nil, fmt.Errorf("restore layer %q: %w", name, err)
		}
		if !rs.legacy {
			rl.kl = rl.db.NewKVLoader(maxPendingTxns)
			rl.maxValue = maxValueOf(rl.db)
		}
	}
	rs.layers[name] = rl
	rs.order = append(rs.order, name)
	rs.cur = rl
	return rl, nil
}

// restoreOptions are the Badger options of a layer being restored: those of
// Store.Layer.
func (s *Store) restoreOptions(dir, name string) badger.Options {
	opts := BadgerOptions(dir)
	if len(s.opts.EncryptionKey) > 0 {
		opts = opts.WithEncryptionKey(s.opts.EncryptionKey)
	}
	return opts.WithLogger(badgerLogger{s.log.Named("badger").With("layer", name)})
}

// loadPart reads one part of a layer's versions and writes them, each at
// its own version, delete markers as deletes.
func (rl *restoreLayer) loadPart(r io.Reader, size int64) error {
	cr := &countingReader{r: bufio.NewReaderSize(io.TeeReader(r, rl.sum), 64<<10), left: size}
	for cr.left > 0 {
		kl, err := binary.ReadUvarint(cr)
		if err != nil || kl == 0 || kl > maxBackupKey || int64(kl) > cr.left {
			return rl.corrupt(err)
		}
		key := make([]byte, kl)
		if _, err := io.ReadFull(cr, key); err != nil {
			return rl.corrupt(err)
		}
		version, err := binary.ReadUvarint(cr)
		if err != nil || version == 0 {
			return rl.corrupt(err)
		}
		var fm [2]byte
		if _, err := io.ReadFull(cr, fm[:]); err != nil {
			return rl.corrupt(err)
		}
		expires, err := binary.ReadUvarint(cr)
		if err != nil {
			return rl.corrupt(err)
		}
		vl, err := binary.ReadUvarint(cr)
		if err != nil || vl > maxBackupValue || int64(vl) > cr.left || (fm[0]&flagBackupDelete != 0 && vl != 0) || fm[0]&^flagBackupDelete != 0 {
			return rl.corrupt(err)
		}
		var value []byte
		if vl > 0 {
			value = make([]byte, vl)
			if _, err := io.ReadFull(cr, value); err != nil {
				return rl.corrupt(err)
			}
		}
		rl.vers++
		if rl.skip {
			continue
		}
		// What a transaction would refuse (a KVLoader checks nothing).
		if err := checkWrite(key, value, rl.maxValue); err != nil {
			return badBackup("layer %q holds a version Badger refuses: %v", rl.name, err)
		}
		kv := pb.KV{Key: key, Value: value, Version: version, UserMeta: []byte{fm[1]}, ExpiresAt: expires}
		if fm[0]&flagBackupDelete != 0 {
			kv.Meta = metaDelete
		}
		if err := rl.kl.Set(&kv); err != nil {
			return fmt.Errorf("restore layer %q: %w", rl.name, err)
		}
	}
	rl.bytes += size
	return nil
}

func (rl *restoreLayer) corrupt(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		err = errors.New("a version does not decode")
	}
	return badBackup("layer %q is truncated or corrupted (%v)", rl.name, err)
}

// countingReader reads at most left bytes.
type countingReader struct {
	r    *bufio.Reader
	left int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err == io.EOF && c.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	b, err := c.r.ReadByte()
	if err == nil {
		c.left--
	} else if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return b, err
}

// finish checks a layer against its manifest once all of it is written.
func (rs *restore) finish(rl *restoreLayer) error {
	sum := hex.EncodeToString(rl.sum.Sum(nil))
	switch {
	case rl.info.Layer != rl.name:
		return badBackup("the manifest of layer %q names layer %q", rl.name, rl.info.Layer)
	case rl.info.SHA256 != sum || rl.info.Bytes != rl.bytes || rl.info.Parts != rl.parts:
		return badBackup("layer %q is corrupted: its parts do not match their checksum", rl.name)
	case rl.info.Versions != rl.vers:
		return badBackup("layer %q holds %d versions, its manifest says %d", rl.name, rl.vers, rl.info.Versions)
	}
	if rl.skip {
		if rl.stamp != rl.info {
			return fmt.Errorf("layer %q already exists in %s, from another backup: restore into a data dir that does not hold it", rl.name, rs.s.opts.Dir)
		}
		rl.done = true
		return nil
	}
	err := rl.kl.Finish()
	rl.kl = nil // finished either way: cleanup must not finish it again
	if err != nil {
		return fmt.Errorf("restore layer %q: %w", rl.name, err)
	}
	if err := rs.verify(rl, rl.info.Versions); err != nil {
		return err
	}
	rl.done = true
	return nil
}

func (rs *restore) finishLegacy(rl *restoreLayer) error {
	if rl.skip {
		return nil
	}
	rl.info = backupLayer{Layer: rl.name}
	if err := rs.verify(rl, -1); err != nil {
		return err
	}
	rl.done = true
	return nil
}

// verify checks a loaded layer (versions: how many it must hold, -1: not
// known), settles a run that was staging when the backup was made, and
// closes its database.
func (rs *restore) verify(rl *restoreLayer, versions int64) error {
	db := rl.db
	rl.db = nil
	defer db.Close()
	if versions >= 0 {
		n, err := countVersions(db)
		if err != nil {
			return fmt.Errorf("restore layer %q: %w", rl.name, err)
		}
		if n != versions {
			return badBackup("layer %q: %d versions were loaded, the backup holds %d", rl.name, n, versions)
		}
	}
	if err := dropInterruptedRun(db); err != nil {
		return fmt.Errorf("restore layer %q: %w", rl.name, err)
	}
	l := &Layer{name: rl.name, db: db, log: rs.s.log.With("layer", rl.name), keep: 10, stopGC: make(chan struct{})}
	l.pub.Lock()
	err := l.load()
	l.pub.Unlock()
	if err != nil {
		return badBackup("layer %q does not load: %v", rl.name, err)
	}
	newest, _ := l.Newest()
	if !rs.legacy && (newest.Number != rl.info.Revision || l.Pinned() != rl.info.Pinned) {
		return badBackup("layer %q: restored revision %d (pinned %d), the backup says %d (pinned %d)", rl.name, newest.Number, l.Pinned(), rl.info.Revision, rl.info.Pinned)
	}
	for _, n := range []int64{newest.Number, l.Pinned()} {
		if n == 0 {
			continue
		}
		if _, err := l.Records(Query{Revision: n, Limit: math.MaxInt}, func([]byte) error { return nil }); err != nil {
			return badBackup("layer %q: revision %d is not readable: %v", rl.name, n, err)
		}
	}
	return writeStamp(rl.tmp, rl.info, db.MaxVersion())
}

// stamp is what restoreStamp holds: the layer's manifest in the backup it
// was restored from, and the newest version of the layer as restored.
type stamp struct {
	Backup     backupLayer `json:"backup"`
	MaxVersion uint64      `json:"max_version"`
}

func writeStamp(dir string, info backupLayer, maxVersion uint64) error {
	b, err := json.Marshal(stamp{Backup: info, MaxVersion: maxVersion})
	if err != nil {
		return err
	}
	return writeFileSync(filepath.Join(dir, restoreStamp), b)
}

// restoredUnchanged returns the backup a layer was restored from, when it
// was and nothing has been written to it since.
func (s *Store) restoredUnchanged(name string) (backupLayer, bool) {
	b, err := os.ReadFile(filepath.Join(s.opts.Dir, "layers", name, restoreStamp))
	if err != nil {
		return backupLayer{}, false
	}
	var st stamp
	if json.Unmarshal(b, &st) != nil {
		return backupLayer{}, false
	}
	l, err := s.layer(name)
	if err != nil || l.db.MaxVersion() != st.MaxVersion {
		return backupLayer{}, false
	}
	return st.Backup, true
}

// countVersions counts every version of every key, delete markers included.
func countVersions(db *badger.DB) (int64, error) {
	txn := db.NewTransactionAt(readLatest, false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{AllVersions: true})
	defer it.Close()
	var n int64
	for it.Rewind(); it.Valid(); it.Next() {
		n++
	}
	return n, nil
}

// dropInterruptedRun deletes the pending checkpoints and seen markers of a
// run that was staging when the backup was made (its m/staging marker is
// in the backup, its staged changes are not): nothing of the run was
// published, and a retry must not resume from its checkpoints. The layer's
// load then rolls the staging back as after a crash.
func dropInterruptedRun(db *badger.DB) error {
	txn := db.NewTransactionAt(readLatest, false)
	defer txn.Discard()
	item, err := txn.Get(metaKey(metaStaging))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	run, err := item.ValueCopy(nil)
	if err != nil {
		return err
	}
	var keys [][]byte
	for _, pfx := range [][]byte{append(strKey(pfxPendingCP, string(run)), 0), append(strKey(pfxSeen, string(run)), 0)} {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pfx})
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		it.Close()
	}
	if len(keys) == 0 {
		return nil
	}
	wb := db.NewWriteBatchAt(db.MaxVersion() + 1)
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// commit renames every verified layer into place and opens it.
func (rs *restore) commit() ([]string, error) {
	var restored []string
	for _, name := range rs.order {
		rl := rs.layers[name]
		if rl.skip {
			continue
		}
		if err := syncDir(rl.tmp); err != nil {
			return restored, err
		}
		if err := os.Rename(rl.tmp, filepath.Join(rs.dir, name)); err != nil {
			return restored, fmt.Errorf("restore layer %q: %w", name, err)
		}
		rl.tmp = ""
		restored = append(restored, name)
	}
	if err := syncDir(rs.dir); err != nil {
		return restored, err
	}
	for _, name := range restored {
		l, err := rs.s.layer(name)
		if err != nil {
			return restored, err
		}
		// Opening may have written (settling what the layer's load
		// settles): the stamp names the version the layer is at now.
		if err := writeStamp(filepath.Join(rs.dir, name), rs.layers[name].info, l.db.MaxVersion()); err != nil {
			return restored, err
		}
	}
	return restored, nil
}

// cleanup closes and removes whatever a failed restore loaded.
func (rs *restore) cleanup() {
	for _, rl := range rs.layers {
		if rl.kl != nil {
			rl.kl.Finish() // its batches in flight end before Close
		}
		if rl.db != nil {
			rl.db.Close()
		}
		if rl.tmp != "" {
			os.RemoveAll(rl.tmp)
		}
	}
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
