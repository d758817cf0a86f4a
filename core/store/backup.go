package store

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Backups are a tar stream with one entry per layer, layers/<name>.badger,
// each holding Badger's own backup stream of that layer's database (every
// version of every key, so revisions and pins survive a restore).

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

// Backup writes every layer of the store to w.
func (s *Store) Backup(w io.Writer) error {
	names, err := s.LayerNames()
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for _, name := range names {
		l, err := s.Layer(name)
		if err != nil {
			return err
		}
		tmp, err := os.CreateTemp("", "synclayer-backup-")
		if err != nil {
			return err
		}
		err = func() error {
			defer os.Remove(tmp.Name())
			defer tmp.Close()
			stream := l.db.NewStreamAt(readLatest)
			stream.LogPrefix = "synclayer backup"
			if _, err := stream.Backup(tmp, 0); err != nil {
				return fmt.Errorf("back up layer %q: %w", name, err)
			}
			size, err := tmp.Seek(0, io.SeekCurrent)
			if err != nil {
				return err
			}
			if _, err := tmp.Seek(0, io.SeekStart); err != nil {
				return err
			}
			if err := tw.WriteHeader(&tar.Header{Name: "layers/" + name + ".badger", Mode: 0o600, Size: size, ModTime: time.Now()}); err != nil {
				return err
			}
			_, err = io.Copy(tw, tmp)
			return err
		}()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// Restore loads a backup into the store. Every layer in the backup must be
// absent from the store (restore into an empty data dir).
func (s *Store) Restore(r io.Reader) ([]string, error) {
	tr := tar.NewReader(r)
	var restored []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return restored, fmt.Errorf("read backup: %w", err)
		}
		name, ok := strings.CutPrefix(h.Name, "layers/")
		name, ok2 := strings.CutSuffix(name, ".badger")
		if !ok || !ok2 || !layerName.MatchString(name) {
			return restored, fmt.Errorf("read backup: unexpected entry %q (not a synclayer backup?)", h.Name)
		}
		if _, err := os.Stat(filepath.Join(s.opts.Dir, "layers", name)); err == nil {
			return restored, fmt.Errorf("layer %q already exists in %s: restore into an empty data dir", name, s.opts.Dir)
		}
		l, err := s.Layer(name)
		if err != nil {
			return restored, err
		}
		if err := l.db.Load(tr, 64); err != nil {
			return restored, fmt.Errorf("restore layer %q: %w", name, err)
		}
		// Reload what the layer keeps in memory from what was loaded.
		l.pub.Lock()
		err = l.load()
		l.pub.Unlock()
		if err != nil {
			return restored, fmt.Errorf("restore layer %q: %w", name, err)
		}
		restored = append(restored, name)
	}
	return restored, nil
}
