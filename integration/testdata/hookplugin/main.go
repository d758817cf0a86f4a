// Command hookplugin is a connector for the integration tests of triggers
// and failing plugins: payload webhooks checked by a token header, a slow
// webhook handler, a sync that exits the process, one that eats memory, and
// one that hangs.
// The tests build it as synclayer-plugin-hook.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

func main() { sdk.Serve(&hook{}) }

type config struct {
	Token         string `config:"token,sensitive"`
	HandleDelayMS int    `config:"handle_delay_ms"`
	ExitFile      string `config:"exit_file"`
	HogMB         int    `config:"hog_mb"`
	Records       int    `config:"records"`
	Leak          bool   `config:"leak"`
	// FailFile, when it holds a number n > 0, makes the next n webhooks
	// fail as an unavailable upstream would (the file counts down).
	FailFile string `config:"fail_file"`
	// HangFile: while this file exists, a sync saves one record and then
	// never returns nor sends anything, deaf to cancellation.
	HangFile string `config:"hang_file"`
}

type hook struct{}

func (hook) Describe() sdk.Description {
	return sdk.Description{
		Name: "hook", Version: "0.0.1", Config: &config{},
		Models: []sdk.Model{{Name: "Post"}},
		Syncs:  []sdk.SyncSpec{{Name: "posts", Models: []string{"Post"}}},
	}
}

func (hook) Sync(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
	cfg := config{Records: 3}
	if err := req.DecodeConfig(&cfg); err != nil {
		return err
	}
	if cfg.Leak {
		// A careless connector: its secret in its log, its stderr and its
		// error. The host must keep it out of everything it shows.
		req.Logger.Warn("connecting with token " + cfg.Token)
		fmt.Fprintln(os.Stderr, "debug: token="+cfg.Token)
		return fmt.Errorf("upstream refused token %s", cfg.Token)
	}
	if cfg.HogMB > 0 {
		hog := make([][]byte, 0, cfg.HogMB)
		for i := 0; i < cfg.HogMB; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			hog = append(hog, b)
			time.Sleep(2 * time.Millisecond)
		}
		<-ctx.Done()
		return ctx.Err()
	}
	if cfg.HangFile != "" {
		if _, err := os.Stat(cfg.HangFile); err == nil {
			if err := w.Save(ctx, "Post", map[string]any{"id": "hung", "title": "before the hang"}); err != nil {
				return err
			}
			if err := w.Checkpoint(ctx, sdk.Checkpoint{"hung": true}); err != nil { // sends the record
				return err
			}
			select {}
		}
	}
	for i := 0; i < cfg.Records; i++ {
		if cfg.ExitFile != "" && i == 1 {
			if _, err := os.Stat(cfg.ExitFile); err == nil {
				os.Exit(3) // a crash in the middle of a sync
			}
		}
		if err := w.Save(ctx, "Post", map[string]any{"id": fmt.Sprint(i), "title": "polled"}); err != nil {
			return err
		}
	}
	return nil
}

func (hook) VerifyWebhook(ctx context.Context, req *sdk.WebhookRequest) error {
	var cfg config
	if err := req.DecodeConfig(&cfg); err != nil {
		return err
	}
	if req.Header.Get("X-Test-Token") != cfg.Token {
		return errors.New("bad token")
	}
	return nil
}

func (hook) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest, w *sdk.Writer) error {
	var cfg config
	if err := req.DecodeConfig(&cfg); err != nil {
		return err
	}
	if cfg.HandleDelayMS > 0 {
		select {
		case <-time.After(time.Duration(cfg.HandleDelayMS) * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if cfg.FailFile != "" {
		if b, err := os.ReadFile(cfg.FailFile); err == nil {
			var n int
			if fmt.Sscan(string(b), &n); n > 0 {
				if err := os.WriteFile(cfg.FailFile, []byte(fmt.Sprint(n-1)), 0o644); err != nil {
					return err
				}
				return sdk.Transient(errors.New("upstream unavailable (503)"))
			}
		}
	}
	var rec map[string]any
	if err := json.Unmarshal(req.Body, &rec); err != nil {
		return fmt.Errorf("body is not a JSON object: %w", err)
	}
	return w.Save(ctx, "Post", rec)
}
