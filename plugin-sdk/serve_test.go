package sdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
	"github.com/synclayer/synclayer/proto/connector/v1/handshake"
)

// The test binary doubles as a plugin: with helperEnv set, TestMain serves
// a connector instead of running tests.
const helperEnv = "SDK_TEST_HELPER_PLUGIN"

// helperConn is the connector of the helper plugin. mode (the helperEnv
// value) changes its Sync: "transient" fails as an upstream 503,
// "huge" saves a 17 MiB record; any other mode saves one record.
type helperConn struct {
	panicInDescribe bool
	mode            string
}

func (c *helperConn) Describe() sdk.Description {
	if c.panicInDescribe {
		panic("describe exploded")
	}
	fmt.Println("a stray print must not break the handshake")
	return sdk.Description{
		Name: "helper", Version: "0.0.1",
		Models: []sdk.Model{{Name: "A"}},
		Syncs:  []sdk.SyncSpec{{Name: "all", Models: []string{"A"}}},
	}
}

func (c *helperConn) Check(ctx context.Context, req *sdk.CheckRequest) error {
	req.Logger.Warn("checking from the plugin", "n", 1)
	return errors.New("unreachable upstream")
}

func (c *helperConn) Sync(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
	req.Logger.Info("syncing")
	switch c.mode {
	case "transient":
		return fmt.Errorf("listing A: %w", &sdk.HTTPError{Method: "GET", URL: "http://upstream/a", StatusCode: 503, Status: "503 Service Unavailable"})
	case "huge":
		return w.Save(ctx, "A", map[string]any{"id": 1, "pad": strings.Repeat("x", 17<<20)})
	}
	pad, _ := req.Checkpoint["pad"].(string)
	return w.Save(ctx, "A", map[string]any{"id": 1, "checkpoint_bytes": len(pad)})
}

func runHelperPlugin() {
	mode := os.Getenv(helperEnv)
	sdk.Serve(&helperConn{panicInDescribe: mode == "panic", mode: mode})
}

func helperCmd(mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

func TestServeByHand(t *testing.T) {
	cmd := helperCmd("1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout: %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "is a synclayer connector plugin") ||
		!strings.Contains(stderr.String(), "synclayer serve --config") {
		t.Errorf("stderr: %s", stderr.String())
	}
}

func TestServePanicAtStartUp(t *testing.T) {
	cmd := helperCmd("panic")
	cmd.Env = append(cmd.Env, connectorv1.MagicCookieKey+"="+connectorv1.MagicCookieValue)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout: %q", stdout.String())
	}
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(stderr.Bytes()), &line); err != nil {
		t.Fatalf("stderr is not one hclog JSON line: %v\n%s", err, stderr.String())
	}
	if line["@level"] != "error" || !strings.Contains(fmt.Sprint(line["error"]), "connector panicked in Describe: describe exploded") {
		t.Fatalf("stderr: %v", line)
	}
}

// syncBuffer is an io.Writer safe for go-plugin's log goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeOverGoPlugin launches the plugin as the host does and talks to
// it through go-plugin.
func TestServeOverGoPlugin(t *testing.T) {
	var hostLog syncBuffer
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake.Config,
		VersionedPlugins: handshake.VersionedPlugins(nil),
		Cmd:              helperCmd("1"),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.New(&hclog.LoggerOptions{Output: &hostLog, Level: hclog.Trace}),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rpc.Dispense(connectorv1.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(connectorv1.ConnectorClient)
	d, err := c.Describe(t.Context(), &connectorv1.DescribeRequest{})
	if err != nil || d.GetName() != "helper" {
		t.Fatalf("Describe: %v %v", err, d)
	}
	chk, err := c.Check(t.Context(), &connectorv1.CheckRequest{Context: &connectorv1.RunContext{Layer: "l", Source: "s"}})
	if err != nil || chk.GetOk() || chk.GetMessage() != "unreachable upstream" {
		t.Fatalf("Check: %v %v", err, chk)
	}
	stream, err := c.Sync(t.Context(), &connectorv1.SyncRequest{Sync: "all", Full: true})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for {
		m, err := stream.Recv()
		if err != nil {
			break
		}
		kinds = append(kinds, fmt.Sprintf("%T", m.GetKind()))
	}
	if strings.Join(kinds, ",") != "*connectorv1.SyncMessage_Log,*connectorv1.SyncMessage_Batch" {
		t.Fatalf("stream: %v", kinds)
	}
	client.Kill()
	// The plugin's stderr hclog line kept its level on the host side.
	if log := hostLog.String(); !strings.Contains(log, "[WARN]  ") || !strings.Contains(log, "checking from the plugin") {
		t.Fatalf("host log:\n%s", log)
	}
}

// TestServeGoPluginServices checks the parts of go-plugin's protocol that
// the SDK serves itself beside the connector: the socket in the folder the
// host names, the health check go-plugin's Ping uses, and the controller's
// Shutdown ending the process gracefully and removing its socket.
func TestServeGoPluginServices(t *testing.T) {
	dir := t.TempDir()
	cmd := helperCmd("1")
	// What go-plugin's client sets with a RunnerFunc.
	cmd.Env = append(cmd.Env, "PLUGIN_UNIX_SOCKET_DIR="+dir)
	var hostLog syncBuffer
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake.Config,
		VersionedPlugins: handshake.VersionedPlugins(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.New(&hclog.LoggerOptions{Output: &hostLog, Level: hclog.Trace}),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		t.Fatal(err)
	}
	addr := client.ReattachConfig().Addr
	if addr.Network() != "unix" || !strings.HasPrefix(addr.String(), dir+string(os.PathSeparator)) {
		t.Fatalf("socket %s %s, want a Unix socket under %s", addr.Network(), addr.String(), dir)
	}
	if err := rpc.Ping(); err != nil {
		t.Fatalf("Ping (go-plugin's health check): %v", err)
	}
	client.Kill()
	if !client.Exited() {
		t.Fatal("the plugin did not exit on Kill")
	}
	if strings.Contains(hostLog.String(), "plugin failed to exit gracefully") {
		t.Fatalf("Shutdown did not end the plugin:\n%s", hostLog.String())
	}
	if _, err := os.Stat(addr.String()); !os.IsNotExist(err) {
		t.Fatalf("the socket is left behind: %v", err)
	}
}

// TestSDKDoesNotLinkGoPlugin keeps go-plugin (and the gRPC reflection,
// net/rpc and encoding/gob it brings) out of plugin binaries: the SDK
// speaks go-plugin's protocol itself (goplugin.go), and linking go-plugin
// cost every plugin start ~1.4 ms of package initialisation.
func TestSDKDoesNotLinkGoPlugin(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to list the SDK's dependencies: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/synclayer/synclayer/plugin-sdk").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(pkg, "github.com/hashicorp/go-plugin"),
			pkg == "google.golang.org/grpc/reflection",
			pkg == "net/rpc", pkg == "encoding/gob":
			t.Errorf("the SDK links %s; plugins would pay its initialisation at every start (see goplugin.go)", pkg)
		}
	}
}
