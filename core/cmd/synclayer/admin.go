package main

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/synclayer/synclayer/core/config"
	"github.com/synclayer/synclayer/core/store"
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
func offlineStore(cfgPath, dataDir string) (*store.Store, error) {
	svc := config.Service{DataDir: config.DefaultDataDir}
	if cfgPath != "" {
		cfg, err := loadConfig(cfgPath)
		if err != nil {
			return nil, err
		}
		svc = cfg.Service
	}
	if dataDir != "" {
		svc.DataDir = dataDir
	}
	key, err := encryptionKey(svc)
	if err != nil {
		return nil, err
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "synclayer", Level: hclog.Warn, Output: os.Stderr})
	st, err := store.Open(store.Options{Dir: svc.DataDir, EncryptionKey: key, Logger: log})
	if err != nil {
		return nil, err
	}
	return st, nil
}

func backupCmd() *cobra.Command {
	var cfgPath, dataDir string
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write every layer of a data dir to FILE (stop the host first)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := offlineStore(cfgPath, dataDir)
			if err != nil {
				return err
			}
			defer st.Close()
			tmp := args[0] + ".tmp"
			f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			if err := st.Backup(f); err != nil {
				f.Close()
				os.Remove(tmp)
				if strings.Contains(err.Error(), "lock") {
					return fmt.Errorf("backup: %w (the host is still running: stop it first)", err)
				}
				return fmt.Errorf("backup: %w", err)
			}
			if err := f.Sync(); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := os.Rename(tmp, args[0]); err != nil {
				return err
			}
			names, _ := st.LayerNames()
			fmt.Printf("backed up %d layer(s) to %s\n", len(names), args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "layer file(s) whose service block names the data dir")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the data dir (default ./data, or the configuration's)")
	return cmd
}

func restoreCmd() *cobra.Command {
	var cfgPath, dataDir string
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Load a backup into a data dir that does not hold its layers yet (stop the host first)",
		Args:  cobra.ExactArgs(1),
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
			fmt.Printf("restored %d layer(s): %v\n", len(names), names)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "layer file(s) whose service block names the data dir")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the data dir (default ./data, or the configuration's)")
	return cmd
}
