// Command watchconn is a plugin-sdk connector for core/plugin's Watch tests:
// it asks for a run of sync "a" every 50ms. Its config:
//
//	watch      = true   # Configure's Watches: without it the host's Watch is refused
//	end_after  = 0      # when positive: Watch returns nil after that many events
//	fail_after = 0      # when positive: Watch fails after that many events
//	exit_after = 0      # when positive: the process exits after that many events
//
// Models A and B, syncs a and b; Sync writes nothing.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
)

// Config is the test connector's configuration.
type Config struct {
	Watch     bool `config:"watch"`
	EndAfter  int  `config:"end_after"`
	FailAfter int  `config:"fail_after"`
	ExitAfter int  `config:"exit_after"`
}

// Conn is the test connector.
type Conn struct{}

// Describe implements sdk.Connector.
func (Conn) Describe() sdk.Description {
	return sdk.Description{Name: "watch", Version: "0.0.1", Config: (*Config)(nil)}
}

// Configure implements sdk.ConnectorWithConfiguredModels.
func (Conn) Configure(_ context.Context, req *sdk.ConfigRequest) (*sdk.Description, error) {
	var cfg Config
	if err := req.DecodeConfig(&cfg); err != nil {
		return nil, err
	}
	return &sdk.Description{
		Models:  []sdk.Model{{Name: "A"}, {Name: "B"}},
		Syncs:   []sdk.SyncSpec{{Name: "a", Models: []string{"A"}, Incremental: true}, {Name: "b", Models: []string{"B"}}},
		Watches: cfg.Watch,
	}, nil
}

// Sync implements sdk.Connector.
func (Conn) Sync(context.Context, *sdk.SyncRequest, *sdk.Writer) error { return nil }

// Watch implements sdk.ConnectorWithWatch.
func (Conn) Watch(ctx context.Context, req *sdk.WatchRequest, trigger func(context.Context, ...string) error) error {
	var cfg Config
	if err := req.DecodeConfig(&cfg); err != nil {
		return err
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := trigger(sdk.WithTriggerReason(ctx, fmt.Sprintf("tick %d", n)), "a"); err != nil {
			return err
		}
		switch n {
		case cfg.EndAfter:
			return nil
		case cfg.FailAfter:
			return errors.New("the upstream's change feed is gone")
		case cfg.ExitAfter:
			os.Exit(3)
		}
	}
}

func main() { sdk.Serve(Conn{}) }
