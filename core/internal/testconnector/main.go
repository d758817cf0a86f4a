// Command testconnector is a connector plugin for the host's own tests. It
// speaks the wire protocol directly (not through plugin-sdk), so that it can
// send what a well-behaved connector never would: records of undeclared
// models, records without ids, a crash in the middle of a sync.
//
// Tests build it with `go build -o <tmp>/synclayer-plugin-test` and name it in
// a layer file as plugin = "test". Its config:
//
//	mode      = "ok"        # ok | block | exit | undeclared | noid | env | fail_once |
//	                        # cp_fail_once | notes | delete_by_id |
//	                        # hang | hog | transient | big_batch | many_changes |
//	                        # hang_describe | hang_check | check_fail | unauthorized
//	mode_file = "/path"     # optional: when the file exists, its content is the mode
//	gate      = "/path"     # block: report progress (0 of records), then wait for this file before sending records
//	started   = "/path"     # optional: created when a sync starts
//	records   = 2           # how many Item records a run (or a webhook) sends
//	pid_file  = "/path"     # hang, hog: the pid of the child process is written here
//	hog_mib   = 128         # hog: MiB the child process allocates
//	token     = "secret"    # a sensitive field (for connections): never shown by the host
//
// Modes that misbehave: hang starts a child process, sends one record and
// then never answers again, ignoring cancellation; hog starts a child
// process that takes hog_mib MiB of memory, then waits for cancellation;
// transient fails as the SDK reports an upstream 503; big_batch sends one
// batch of 20 MiB; many_changes one batch of 10,001 changes;
// hang_describe and hang_check never answer Describe (with this config) or
// Check; check_fail makes Check refuse, quoting the token (the host must
// redact it); unauthorized fails syncs as the SDK reports an upstream 401,
// quoting the token too.
//
// Payload webhooks: every request verifies; HandleWebhook sends records
// Item changes, in batches of 1,000, or for a body "raw:<id>:<bytes>" the
// one Item <id> of exactly those bytes.
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
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
	"github.com/synclayer/synclayer/proto/connector/v1/handshake"
)

type config struct {
	Mode     string `json:"mode"`
	ModeFile string `json:"mode_file"`
	Gate     string `json:"gate"`
	Started  string `json:"started"`
	Records  int    `json:"records"`
	PIDFile  string `json:"pid_file"`
	HogMiB   int    `json:"hog_mib"`
	// Token is a sensitive field (connections); Who names whose records
	// these are (it goes into each record); SleepMS slows a run down.
	Token   string `json:"token"`
	Who     string `json:"who"`
	SleepMS int    `json:"sleep_ms"`
}

// childEnv marks the child process hang and hog start: "sleep" or the MiB
// to hold.
const childEnv = "SYNCLAYER_TESTCONNECTOR_CHILD"

// child is the child process of hang and hog: it holds mib MiB (touched,
// so resident) and sleeps. It gives up after a minute by itself, so that a
// host that fails to kill it does not leave it behind for long.
func child(mib int) {
	b := make([]byte, mib<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	time.Sleep(time.Minute)
	b[0] = 2
	os.Exit(0)
}

// startChild starts the child process and writes its pid to pidFile.
func startChild(pidFile string, mib int) error {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+strconv.Itoa(mib))
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait() //nolint:errcheck // reaps it, if it ends first
	return os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
}

func decodeConfig(rc *connectorv1.RunContext) (config, error) {
	var cfg config
	if err := json.Unmarshal(rc.GetConfig(), &cfg); err != nil {
		return cfg, fmt.Errorf("bad config: %w", err)
	}
	if cfg.Records == 0 {
		cfg.Records = 2
	}
	return cfg, nil
}

func items(from, to int) []*connectorv1.Change {
	var changes []*connectorv1.Change
	for i := from; i <= to; i++ {
		id := fmt.Sprint(i)
		changes = append(changes, &connectorv1.Change{Model: "Item", Id: id, Data: []byte(fmt.Sprintf(`{"id":%q,"n":%d}`, id, i))})
	}
	return changes
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
			{Name: "token", Type: str, Sensitive: true},
			{Name: "who", Type: str},
			{Name: "sleep_ms", Type: num},
		},
		Models: []*connectorv1.Model{{Name: "Item", Fields: []*connectorv1.ModelField{{Name: "n", Type: "number"}}}, {Name: "Note"}},
		Syncs:  []*connectorv1.SyncSpec{{Name: "items", Models: []string{"Item", "Note"}, Incremental: true}},
		// Payload webhooks: each brings the configured records.
		Webhooks: true,
	}
}

func (server) Describe(_ context.Context, req *connectorv1.DescribeRequest) (*connectorv1.DescribeResponse, error) {
	if req.GetContext() != nil {
		if cfg, _ := decodeConfig(req.GetContext()); cfg.Mode == "hang_describe" {
			select {}
		}
	}
	return describe(), nil
}

func (server) Check(_ context.Context, req *connectorv1.CheckRequest) (*connectorv1.CheckResponse, error) {
	cfg, _ := decodeConfig(req.GetContext())
	switch {
	case cfg.Mode == "hang_check":
		select {}
	case cfg.Mode == "check_fail":
		// Quotes the token: the host must redact it.
		return &connectorv1.CheckResponse{Ok: false, Message: fmt.Sprintf("upstream refused the token %q (401 Unauthorized)", cfg.Token)}, nil
	case cfg.Token == "bad":
		// What plugin-sdk answers for sdk.ErrUnauthorized.
		return nil, status.Error(codes.Unauthenticated, "the upstream refused the token (401)")
	case strings.HasPrefix(cfg.Token, "refuse"):
		return &connectorv1.CheckResponse{Ok: false, Message: "the account " + cfg.Who + " is suspended"}, nil
	}
	return &connectorv1.CheckResponse{Ok: true}, nil
}

func (server) VerifyWebhook(context.Context, *connectorv1.WebhookRequest) (*connectorv1.VerifyWebhookResponse, error) {
	return &connectorv1.VerifyWebhookResponse{Ok: true}, nil
}

func (server) HandleWebhook(req *connectorv1.WebhookRequest, stream connectorv1.Connector_HandleWebhookServer) error {
	cfg, err := decodeConfig(req.GetContext())
	if err != nil {
		return err
	}
	if rest, ok := strings.CutPrefix(string(req.GetBody()), "raw:"); ok {
		// "raw:<id>:<bytes>": one Item of exactly those bytes.
		id, data, _ := strings.Cut(rest, ":")
		c := &connectorv1.Change{Model: "Item", Id: id, Data: []byte(data)}
		return stream.Send(&connectorv1.SyncMessage{Kind: &connectorv1.SyncMessage_Batch{Batch: &connectorv1.RecordBatch{Changes: []*connectorv1.Change{c}}}})
	}
	for from := 1; from <= cfg.Records; from += 1000 {
		batch := items(from, min(from+999, cfg.Records))
		if err := stream.Send(&connectorv1.SyncMessage{Kind: &connectorv1.SyncMessage_Batch{Batch: &connectorv1.RecordBatch{Changes: batch}}}); err != nil {
			return err
		}
	}
	return nil
}

func (server) Sync(req *connectorv1.SyncRequest, stream connectorv1.Connector_SyncServer) error {
	cfg, err := decodeConfig(req.GetContext())
	if err != nil {
		return err
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
	if cfg.SleepMS > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(cfg.SleepMS) * time.Millisecond):
		}
	}
	if cfg.Token == "bad" {
		return status.Error(codes.Unauthenticated, "GET http://upstream/items: 401 Unauthorized")
	}
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
	case "cp_fail_once":
		// Send two records and a checkpoint, then fail; the retry (mode
		// "resume") continues from the checkpoint.
		if err := send(
			&connectorv1.Change{Model: "Item", Id: "1", Data: []byte(`{"id":"1","n":1}`)},
			&connectorv1.Change{Model: "Item", Id: "2", Data: []byte(`{"id":"2","n":2}`)},
		); err != nil {
			return err
		}
		cp := &connectorv1.Checkpoint{State: []byte(`{"n":2}`)}
		if err := stream.Send(&connectorv1.SyncMessage{Kind: &connectorv1.SyncMessage_Checkpoint{Checkpoint: cp}}); err != nil {
			return err
		}
		if err := os.WriteFile(cfg.ModeFile, []byte("resume"), 0o644); err != nil {
			return err
		}
		return errors.New("failing after a checkpoint on purpose")
	case "resume":
		// Continue after the checkpoint, saying what the host asked for.
		if string(req.GetCheckpoint()) != `{"n":2}` {
			return fmt.Errorf("resume mode got checkpoint %q", req.GetCheckpoint())
		}
		data := fmt.Sprintf(`{"id":"3","n":3,"full":%t,"resume":%t}`, req.GetFull(), req.GetResume())
		if err := send(&connectorv1.Change{Model: "Item", Id: "3", Data: []byte(data)}); err != nil {
			return err
		}
		if err := os.WriteFile(cfg.ModeFile, []byte("ok"), 0o644); err != nil {
			return err
		}
		cp := &connectorv1.Checkpoint{State: []byte(`{"n":3}`)}
		return stream.Send(&connectorv1.SyncMessage{Kind: &connectorv1.SyncMessage_Checkpoint{Checkpoint: cp}})
	case "undeclared":
		return send(
			&connectorv1.Change{Model: "Item", Id: "ok", Data: []byte(`{"id":"ok"}`)},
			&connectorv1.Change{Model: "Ghost", Id: "g1", Data: []byte(`{"id":"g1"}`)},
		)
	case "reserved":
		// The reserved key, spelled with an escape (a decoder reads
		// _metadata).
		return send(
			&connectorv1.Change{Model: "Item", Id: "ok", Data: []byte(`{"id":"ok"}`)},
			&connectorv1.Change{Model: "Item", Id: "r1", Data: []byte(`{"id":"r1","\u005fmetadata":{"source":"x"}}`)},
		)
	case "noid":
		return send(
			&connectorv1.Change{Model: "Item", Id: "ok", Data: []byte(`{"id":"ok"}`)},
			&connectorv1.Change{Model: "Item", Id: "", Data: []byte(`{"title":"no id"}`)},
		)
	case "env":
		b, _ := json.Marshal(map[string]any{"id": "env", "env": os.Environ()})
		return send(&connectorv1.Change{Model: "Item", Id: "env", Data: b})
	case "hang":
		if err := startChild(cfg.PIDFile, 0); err != nil {
			return err
		}
		if err := send(items(1, 1)...); err != nil {
			return err
		}
		select {} // deaf to cancellation
	case "hog":
		if err := startChild(cfg.PIDFile, cfg.HogMiB); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	case "transient":
		// What plugin-sdk answers for an error marked temporary.
		return status.Error(codes.Aborted, "GET http://upstream/items: 503 Service Unavailable")
	case "unauthorized":
		// What plugin-sdk answers for sdk.ErrUnauthorized.
		// It quotes the token: the host must redact it.
		return status.Error(codes.Unauthenticated, fmt.Sprintf("GET http://upstream/items: 401 Unauthorized (token %q)", cfg.Token))
	case "big_batch":
		var changes []*connectorv1.Change
		for i := range 5 {
			data := fmt.Sprintf(`{"id":"%d","pad":%q}`, i, strings.Repeat("x", 4<<20-64))
			changes = append(changes, &connectorv1.Change{Model: "Item", Id: fmt.Sprint(i), Data: []byte(data)})
		}
		return send(changes...)
	case "many_changes":
		return send(items(1, 10_001)...)
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
	changes := items(1, cfg.Records)
	if cfg.Who != "" {
		for _, c := range changes {
			c.Data = []byte(fmt.Sprintf(`{"id":%q,"who":%q}`, c.Id, cfg.Who))
		}
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
	if v := os.Getenv(childEnv); v != "" {
		mib, _ := strconv.Atoi(v)
		child(mib)
	}
	// Exit when the host is gone, as plugin-sdk's Serve does.
	go func(ppid int) {
		for range time.Tick(200 * time.Millisecond) {
			if os.Getppid() != ppid {
				os.Exit(1)
			}
		}
	}(os.Getppid())
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  handshake.Config,
		VersionedPlugins: handshake.VersionedPlugins(server{}),
		GRPCServer:       goplugin.DefaultGRPCServer,
		Logger:           hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Warn}),
	})
}
