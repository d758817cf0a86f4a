package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// The `listen` attribute names a channel on which the database announces
// changes (NOTIFY synclayer_changes, 'Customer' — typically from a
// trigger), so that an incremental run starts at once instead of at the
// next schedule. The connector serves it through the protocol's Watch call
// (sdk.ConnectorWithWatch): the host keeps one Watch stream open per source
// whose description says it watches, and turns each event into an
// incremental run of the syncs it names.

var _ sdk.ConnectorWithWatch = (*Postgres)(nil)

// Watch implements sdk.ConnectorWithWatch: it LISTENs on the configured
// channel and asks for a run of the syncs each notification names (see
// syncsFor), with the notification as the reason. It reconnects with
// backoff after a lost connection, and returns nil when ctx ends, or at
// once when the configuration has no listen channel (the SDK does not call
// it then: Configure does not set Watches).
func (p *Postgres) Watch(ctx context.Context, req *sdk.WatchRequest, trigger func(context.Context, ...string) error) error {
	cfg, err := decodeConfig(req.DecodeConfig)
	if err != nil {
		return err
	}
	return listen(ctx, cfg, req.Logger, func(n *pgconn.Notification) error {
		why := sdk.WithTriggerReason(ctx, notifyReason(n))
		return trigger(why, syncsFor(cfg, n.Payload)...)
	})
}

// maxReasonPayload bounds how much of a payload a run's reason quotes.
const maxReasonPayload = 100

// notifyReason renders a notification as the statement that sent it.
func notifyReason(n *pgconn.Notification) string {
	payload := n.Payload
	if len(payload) > maxReasonPayload {
		cut := maxReasonPayload
		for cut > 0 && !isRuneStart(payload[cut]) {
			cut--
		}
		payload = payload[:cut] + "…"
	}
	return fmt.Sprintf("NOTIFY %s, '%s'", n.Channel, strings.ReplaceAll(payload, "'", "''"))
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// fatal marks an error that ends listen instead of a reconnect: the
// trigger failed (the host closed the stream or it broke).
type fatal struct{ err error }

func (f *fatal) Error() string { return f.err.Error() }
func (f *fatal) Unwrap() error { return f.err }

// listen LISTENs on cfg.Listen and calls notify for each notification. It
// reconnects with backoff (0.5s doubling to a minute, reset once LISTEN
// succeeds) after a lost connection, and returns nil when ctx ends or when
// cfg has no listen channel, or notify's error.
func listen(ctx context.Context, cfg *Config, log hclog.Logger, notify func(*pgconn.Notification) error) error {
	if cfg.Listen == "" {
		return nil
	}
	wait := 500 * time.Millisecond
	for {
		err := listenOnce(ctx, cfg, log, notify, func() { wait = 500 * time.Millisecond })
		if ctx.Err() != nil {
			return nil
		}
		var f *fatal
		if errors.As(err, &f) {
			return f.err
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

// listenOnce listens on one connection until it fails; connected is called
// once LISTEN succeeded.
func listenOnce(ctx context.Context, cfg *Config, log hclog.Logger, notify func(*pgconn.Notification) error, connected func()) error {
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
		log.Debug("notification", "channel", n.Channel, "payload", n.Payload)
		if err := notify(n); err != nil {
			return &fatal{err}
		}
	}
}

// syncsFor maps a notification's payload to the syncs to run: the model it
// names, else the models whose table it names (as configured: "orders" or
// "public.orders"), else every sync (an empty or unknown payload).
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
