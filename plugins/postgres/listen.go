package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
)

// The `listen` attribute names a channel on which the database announces
// changes (NOTIFY synclayer_changes, 'Customer' — typically from a
// trigger), so that an incremental run starts at once instead of at the
// next schedule.
//
// The plugin side is Watch, below. What the host must add to use it (the
// protocol has no way yet for a plugin to ask for a run) is described in
// this connector's README.md: a server-streamed Watch call that the host
// keeps open per source and turns each event into an incremental run of the
// syncs it names.

// Watch LISTENs on cfg.Listen and calls trigger with the syncs each
// notification asks for: the model named by the payload (or the model whose
// table the payload names), or every sync for an empty or unknown payload.
// It reconnects with backoff after a lost connection, and returns when ctx
// ends (nil) or when cfg has no listen channel.
func Watch(ctx context.Context, cfg *Config, log hclog.Logger, trigger func(syncs []string)) error {
	if cfg.Listen == "" {
		return nil
	}
	wait := 500 * time.Millisecond
	for {
		err := watchOnce(ctx, cfg, log, trigger, func() { wait = 500 * time.Millisecond })
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("listening for notifications failed; retrying", "channel", cfg.Listen, "error", err.Error(), "in", wait.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Minute)
	}
}

// watchOnce listens on one connection until it fails; connected is called
// once LISTEN succeeded.
func watchOnce(ctx context.Context, cfg *Config, log hclog.Logger, trigger func([]string), connected func()) error {
	conn, err := connect(ctx, cfg.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{cfg.Listen}.Sanitize()); err != nil {
		return fmt.Errorf("LISTEN %s: %w", cfg.Listen, err)
	}
	connected()
	log.Debug("listening for notifications", "channel", cfg.Listen)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return ctx.Err()
			}
			return err
		}
		syncs := syncsFor(cfg, n.Payload)
		log.Debug("notification", "channel", n.Channel, "payload", n.Payload, "syncs", syncs)
		trigger(syncs)
	}
}

// syncsFor maps a notification's payload to the syncs to run.
func syncsFor(cfg *Config, payload string) []string {
	if _, ok := cfg.Tables[payload]; ok {
		return []string{payload}
	}
	var byTable []string
	for _, name := range cfg.modelNames() {
		if payload != "" && cfg.Tables[name].Table == payload {
			byTable = append(byTable, name)
		}
	}
	if len(byTable) > 0 {
		return byTable
	}
	return cfg.modelNames()
}
