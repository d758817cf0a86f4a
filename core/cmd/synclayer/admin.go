package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	badgerstore "github.com/synclayer/synclayer/core/store/badger"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/synclayer/synclayer/core/config"
)

func (c *client) pinCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pin LAYER REVISION",
		Short: "Serve REVISION to readers until unpin (syncs go on publishing)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil || n < 1 {
				return fmt.Errorf("REVISION must be a revision number, got %q", args[1])
			}
			if err := c.do("PUT", "/v1/layers/"+url.PathEscape(args[0])+"/pin", map[string]int64{"revision": n}, nil); err != nil {
				return err
			}
			fmt.Printf("%s: revision %d pinned\n", args[0], n)
			return nil
		},
	}
}

func (c *client) unpinCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unpin LAYER",
		Short: "Serve the newest revision again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Unpinned *int64 `json:"unpinned"`
			}
			if err := c.do("DELETE", "/v1/layers/"+url.PathEscape(args[0])+"/pin", nil, &out); err != nil {
				return err
			}
			if out.Unpinned == nil {
				fmt.Printf("%s: no revision was pinned\n", args[0])
			} else {
				fmt.Printf("%s: revision %d unpinned; readers see the newest revision\n", args[0], *out.Unpinned)
			}
			return nil
		},
	}
}

// offlineStore opens the data dir named by --data-dir, else by the
// configuration's service block. The host must not be running: Badger
// allows one process per database.
func offlineStore(cfgPath, dataDir string) (*badgerstore.Store, error) {
	svc := config.Service{DataDir: config.DefaultDataDir}
	if cfgPath != "" {
		cfg, err := loadConfig(cfgPath)
		if err != nil {
			return nil, err
		}
		svc = cfg.Service
	}
	if svc.Store.Driver == config.StorePostgres && dataDir == "" {
		return nil, errors.New(`the store is PostgreSQL (driver = "postgres"), which synclayer does not back up itself: back up the database with pg_dump, and restore it with pg_restore`)
	}
	if dataDir != "" {
		svc.DataDir = dataDir
	}
	key, err := encryptionKey(svc)
	if err != nil {
		return nil, err
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "synclayer", Level: hclog.Warn, Output: os.Stderr})
	st, err := badgerstore.Open(badgerstore.Options{Dir: svc.DataDir, EncryptionKey: key, Logger: log})
	if err != nil {
		return nil, err
	}
	return st, nil
}

func backupCmd() *cobra.Command {
	var cfgPath, dataDir string
	var offline bool
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write every layer to FILE: from the host at --addr when one answers, else from the data dir",
		Long: `Write a backup of every layer to FILE (first to FILE.tmp, renamed when complete).

When a host answers at --addr (env SYNCLAYER_ADDR; the admin token comes from
SYNCLAYER_TOKEN), it makes the backup while it runs: each layer consistent to
one revision. Otherwise the data dir (--data-dir, or the configuration's) is
read directly (always, with --offline); the host must then be stopped. The
backup is encrypted when the service has an encryption key.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, _ := cmd.Flags().GetString("addr")
			if !offline && addr != "" && hostAnswers(addr) {
				return onlineBackup(addr, os.Getenv("SYNCLAYER_TOKEN"), args[0])
			}
			st, err := offlineStore(cfgPath, dataDir)
			if err != nil {
				return err
			}
			defer st.Close()
			names, err := st.LayerNames()
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			err = writeAtomically(args[0], func(f *os.File) error { return st.Backup(f) })
			if err != nil {
				if strings.Contains(err.Error(), "lock") {
					return fmt.Errorf("backup: %w (a host is using the data dir: point --addr at it to back it up while it runs, or stop it)", err)
				}
				return fmt.Errorf("backup: %w", err)
			}
			fmt.Printf("backed up %d layer(s) %v from the data dir to %s%s\n", len(names), names, args[0], encryptedNote(st.Encrypted()))
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "layer file(s) whose service block names the data dir (and the encryption key)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the data dir (default ./data, or the configuration's)")
	cmd.Flags().BoolVar(&offline, "offline", false, "read the data dir even if a host answers at --addr")
	cmd.Flags().String("addr", defaultAddr(), "address of the running host to back up (env SYNCLAYER_ADDR); the token comes from SYNCLAYER_TOKEN")
	return cmd
}

func encryptedNote(encrypted bool) string {
	if encrypted {
		return " (encrypted with a key derived from service.encryption_key)"
	}
	return ""
}

// hostAnswers tells whether a synclayer host answers at addr.
func hostAnswers(addr string) bool {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(strings.TrimRight(addr, "/") + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// backupStallTimeout ends an online backup whose host sends nothing for
// this long.
const backupStallTimeout = 5 * time.Minute

// onlineBackup downloads a backup from the running host at addr.
func onlineBackup(addr, token, file string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(addr, "/")+"/v1/backup", nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// No overall timeout: a backup takes as long as the data needs; a
	// host that stops sending is given up on after backupStallTimeout.
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: backupStallTimeout}}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("backup from the host at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &eb) == nil && eb.Error.Message != "" {
			msg = eb.Error.Message
		}
		if resp.StatusCode == http.StatusUnauthorized {
			msg += " (set SYNCLAYER_TOKEN to the host's admin token)"
		}
		return fmt.Errorf("backup from the host at %s: HTTP %d: %s", addr, resp.StatusCode, msg)
	}
	body := &stallReader{r: resp.Body, timer: time.AfterFunc(backupStallTimeout, cancel)}
	defer body.timer.Stop()
	err = writeAtomically(file, func(f *os.File) error {
		_, err := io.Copy(f, body)
		return err
	})
	if err != nil {
		return fmt.Errorf("backup from the host at %s: %w (the host's log says why; nothing was written to %s)", addr, err, file)
	}
	layers := resp.Header.Get("X-Synclayer-Layers")
	n := 0
	if layers != "" {
		n = len(strings.Split(layers, ","))
	}
	fmt.Printf("backed up %d layer(s) [%s] from the host at %s to %s%s\n", n, strings.ReplaceAll(layers, ",", " "), addr, file, encryptedNote(resp.Header.Get("X-Synclayer-Backup-Encrypted") == "true"))
	return nil
}

// stallReader pushes its timer back on every read that returns data.
type stallReader struct {
	r     io.Reader
	timer *time.Timer
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.timer.Reset(backupStallTimeout)
	}
	return n, err
}

// writeAtomically writes FILE.tmp with fn, syncs it and renames it to
// file; on an error it removes FILE.tmp.
func writeAtomically(file string, fn func(f *os.File) error) error {
	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = fn(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(file)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func restoreCmd() *cobra.Command {
	var cfgPath, dataDir string
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Load a backup into a data dir that does not hold its layers yet (stop the host first)",
		Long: `Load a backup into a data dir that does not hold its layers yet; stop the host first.

Each layer is loaded into a temporary directory under the data dir and checked
against the backup's manifest (versions, checksum, revisions readable); only
when every layer is, are they moved into place. A truncated or corrupted file,
or a crash, leaves no partial layer: run the restore again. An encrypted backup
needs the service.encryption_key of the host that made it (--config).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := offlineStore(cfgPath, dataDir)
			if err != nil {
				return err
			}
			defer st.Close()
			names, err := st.Restore(f)
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			if len(names) == 0 {
				fmt.Println("nothing to restore: every layer of the backup is already in the data dir, as a restore of this backup left it")
				return nil
			}
			fmt.Printf("restored %d layer(s): %v\n", len(names), names)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "layer file(s) whose service block names the data dir")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the data dir (default ./data, or the configuration's)")
	return cmd
}
