// Command testconnector is a connector plugin for the host's own tests. It
// speaks the wire protocol directly (not through plugin-sdk), so that it can
// send what a well-behaved connector never would: records of undeclared
// models, records without ids, a crash in the middle of a sync.
//
// Tests build it with `go build -o <tmp>/synclayer-plugin-test` and name it in
// a layer file as plugin = "test". Its config:
//
//	mode      = "ok"        # ok | block | exit | undeclared | noid | env | fail_once | notes | delete_by_id
//	mode_file = "/path"     # optional: when the file exists, its content is the mode
//	gate      = "/path"     # block: report progress (0 of records), then wait for this file before sending records
//	started   = "/path"     # optional: created when a sync starts
//	records   = 2           # how many Item records a run sends
//
// Models: Item, Note. Syncs: items (Item, Note). Only the modes notes (the
// Items of ok, then Notes n1 and n2) and delete_by_id (deletes of n1, 1 and
// zz by id alone, with no model) send Notes or touch them.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
)

type config struct {
	Mode     string `json:"mode"`
	ModeFile string `json:"mode_file"`
	Gate     string `json:"gate"`
	Started  string `json:"started"`
	Records  int    `json:"records"`
}

type server struct {
	connectorv1.UnimplementedConnectorServer
}

func describe() *connectorv1.DescribeResponse {
	str := []byte(`"string"`)
	num := []byte(`"number"`)
	return &connectorv1.DescribeResponse{
		Name:            "test",
		Version:         "0.0.1",
		ProtocolVersion: connectorv1.ProtocolVersion,
		Config: []*connectorv1.ConfigField{
			{Name: "mode", Type: str, Required: true},
			{Name: "mode_file", Type: str},
			{Name: "gate", Type: str},
			{Name: "started", Type: str},
			{Name: "records", Type: num},
		},
		Models: []*connectorv1.Model{{Name: "Item", Fields: []*connectorv1.ModelField{{Name: "n", Type: "number"}}}, {Name: "Note"}},
		Syncs:  []*connectorv1.SyncSpec{{Name: "items", Models: []string{"Item", "Note"}, Incremental: true}},
	}
}

func (server) Describe(context.Context, *connectorv1.DescribeRequest) (*connectorv1.DescribeResponse, error) {
	return describe(), nil
}

func (server) Check(context.Context, *connectorv1.CheckRequest) (*connectorv1.CheckResponse, error) {
	return &connectorv1.CheckResponse{Ok: true}, nil
}

func (server) Sync(req *connectorv1.SyncRequest, stream connectorv1.Connector_SyncServer) error {
	var cfg config
	if err := json.Unmarshal(req.GetContext().GetConfig(), &cfg); err != nil {
		return fmt.Errorf("bad config: %w", err)
	}
	if cfg.Records == 0 {
		cfg.Records = 2
	}
	mode := cfg.Mode
	if cfg.ModeFile != "" {
		if b, err := os.ReadFile(cfg.ModeFile); err == nil {
			mode = strings.TrimSpace(string(b))
		}
	}
	if cfg.Started != "" {
		if err := os.WriteFile(cfg.Started, []byte(req.Sync), 0o644); err != nil {
			return err
		}
	}
	ctx := stream.Context()
	send := func(changes ...*connectorv1.Change) error {
		return stream.Send(&connectorv1.SyncMessage{Kind: &connectorv1.SyncMessage_Batch{Batch: &connectorv1.RecordBatch{Changes: changes}}})
	}
	switch mode {
	case "exit":
		os.Exit(3)
	case "fail_once":
		// Send a record, fail, and behave from now on (needs mode_file).
		if err := send(&connectorv1.Change{Model: "Item", Id: "1", Data: []byte(`{"id":"1","n":1}`)}); err != nil {
			return err
		}
		if err := os.WriteFile(cfg.ModeFile, []byte("ok"), 0o644); err != nil {
			return err
		}
		return errors.New("failing once on purpose")
	case "undeclared":
		return send(
			&connectorv1.Change{Model: "Item", Id: "ok", Data: []byte(`{"id":"ok"}`)},
			&connectorv1.Change{Model: "Ghost", Id: "g1", Data: []byte(`{"id":"g1"}`)},
		)
	case "noid":
		return send(
			&connectorv1.Change{Model: "Item", Id: "ok", Data: []byte(`{"id":"ok"}`)},
			&connectorv1.Change{Model: "Item", Id: "", Data: []byte(`{"title":"no id"}`)},
		)
	case "env":
		b, _ := json.Marshal(map[string]any{"id": "env", "env": os.Environ()})
		return send(&connectorv1.Change{Model: "Item", Id: "env", Data: b})
	case "block":
		// Report where it stands (nothing done yet) before waiting.
		if err := stream.Send(&connectorv1.SyncMessage{Kind: &connectorv1.SyncMessage_Progress{
			Progress: &connectorv1.Progress{Model: "Item", Done: 0, Total: int64(cfg.Records)}}}); err != nil {
			return err
		}
		for {
			if _, err := os.Stat(cfg.Gate); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	case "delete_by_id":
		return send(
			&connectorv1.Change{Id: "n1", Delete: true},
			&connectorv1.Change{Id: "1", Delete: true},
			&connectorv1.Change{Id: "zz", Delete: true},
		)
	case "ok", "notes":
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	var changes []*connectorv1.Change
	for i := 1; i <= cfg.Records; i++ {
		id := fmt.Sprint(i)
		changes = append(changes, &connectorv1.Change{Model: "Item", Id: id, Data: []byte(fmt.Sprintf(`{"id":%q,"n":%d}`, id, i))})
	}
	if mode == "notes" {
		for _, id := range []string{"n1", "n2"} {
			changes = append(changes, &connectorv1.Change{Model: "Note", Id: id, Data: []byte(fmt.Sprintf(`{"id":%q}`, id))})
		}
	}
	if err := send(changes...); err != nil {
		return err
	}
	cp, _ := json.Marshal(map[string]int{"n": cfg.Records})
	return stream.Send(&connectorv1.SyncMessage{Kind: &connectorv1.SyncMessage_Checkpoint{Checkpoint: &connectorv1.Checkpoint{State: cp}}})
}

func main() {
	// Exit when the host is gone, as plugin-sdk's Serve does.
	go func(ppid int) {
		for range time.Tick(200 * time.Millisecond) {
			if os.Getppid() != ppid {
				os.Exit(1)
			}
		}
	}(os.Getppid())
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  connectorv1.Handshake,
		VersionedPlugins: connectorv1.VersionedPlugins(server{}),
		GRPCServer:       goplugin.DefaultGRPCServer,
		Logger:           hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Warn}),
	})
}
