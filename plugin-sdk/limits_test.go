package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	sdk "github.com/synclayer/synclayer/plugin-sdk"
	"github.com/synclayer/synclayer/plugin-sdk/sdktest"
	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
	"github.com/synclayer/synclayer/proto/connector/v1/handshake"
)

// helperClient launches the helper plugin in mode through go-plugin; the
// client takes messages of up to 64 MiB, so that the plugin's own limits
// are what the tests see.
func helperClient(t *testing.T, mode string) connectorv1.ConnectorClient {
	t.Helper()
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake.Config,
		VersionedPlugins: handshake.VersionedPlugins(nil),
		Cmd:              helperCmd(mode),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.NewNullLogger(),
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20))},
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rpc.Dispense(connectorv1.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(connectorv1.ConnectorClient)
}

// drain reads a sync stream to its end: the records, and the final error
// (nil at a clean end).
func drain(stream connectorv1.Connector_SyncClient) ([]*connectorv1.Change, error) {
	var out []*connectorv1.Change
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m.GetBatch().GetChanges()...)
	}
}

// The plugin takes messages of up to 16 MiB from the host (gRPC's default
// is 4 MiB) and sends none larger.
func TestServeMessageLimits(t *testing.T) {
	c := helperClient(t, "1")
	cp, _ := json.Marshal(map[string]string{"pad": strings.Repeat("x", 6<<20)})
	stream, err := c.Sync(t.Context(), &connectorv1.SyncRequest{Sync: "all", Checkpoint: cp})
	if err != nil {
		t.Fatal(err)
	}
	changes, err := drain(stream)
	if err != nil || len(changes) != 1 || !strings.Contains(string(changes[0].GetData()), fmt.Sprintf(`"checkpoint_bytes":%d`, 6<<20)) {
		t.Fatalf("a sync with a 6 MiB checkpoint: %v, %d changes", err, len(changes))
	}

	c = helperClient(t, "huge")
	stream, err = c.Sync(t.Context(), &connectorv1.SyncRequest{Sync: "all"})
	if err != nil {
		t.Fatal(err)
	}
	changes, err = drain(stream)
	if err == nil || len(changes) != 0 || !strings.Contains(err.Error(), "larger than max") {
		t.Fatalf("a 17 MiB record: %v, %d changes; want the plugin's send limit", err, len(changes))
	}
}

// An upstream 5xx or 429, or an error marked with sdk.Transient, reaches
// the host as codes.Aborted: try again later.
func TestTransientErrorsReachTheHost(t *testing.T) {
	c := helperClient(t, "transient")
	stream, err := c.Sync(t.Context(), &connectorv1.SyncRequest{Sync: "all"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = drain(stream)
	if grpcstatus.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "listing A: GET http://upstream/a: 503 Service Unavailable") {
		t.Fatalf("a sync failing on an upstream 503: %v, want codes.Aborted", err)
	}
	c = helperClient(t, "1")
	chk, err := c.Check(t.Context(), &connectorv1.CheckRequest{Context: &connectorv1.RunContext{}})
	if err != nil || chk.GetOk() {
		t.Fatalf("Check: %v %v", err, chk)
	}
}

func TestIsTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("bad config"), false},
		{sdk.Transient(errors.New("connection refused")), true},
		{fmt.Errorf("page 3: %w", sdk.Transient(errors.New("reset"))), true},
		{&sdk.HTTPError{StatusCode: 429}, true},
		{fmt.Errorf("listing: %w", &sdk.HTTPError{StatusCode: 502}), true},
		{&sdk.HTTPError{StatusCode: 501}, false},
		{&sdk.HTTPError{StatusCode: 404}, false},
		{context.Canceled, false},
		{fmt.Errorf("giving up after 4 attempts: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true}}, false},
		{&net.DNSError{Err: "server misbehaving", Name: "api.example", IsTemporary: true}, true},
		{sdk.Transient(&sdk.HTTPError{StatusCode: 400}), true},
	} {
		if got := sdk.IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if sdk.Transient(nil) != nil {
		t.Error("Transient(nil) is not nil")
	}
	inner := errors.New("x")
	if err := sdk.Transient(inner); !errors.Is(err, inner) || err.Error() != "x" {
		t.Errorf("Transient hides its error: %v", err)
	}
}

// plainHookConn takes payload webhooks, for every configuration.
type plainHookConn struct{ conn }

func (c *plainHookConn) Describe() sdk.Description {
	d := c.conn.Describe()
	d.Config = &hookConfig{}
	return d
}

type hookConfig struct {
	Secret string `config:"secret"`
}

func (c *plainHookConn) VerifyWebhook(ctx context.Context, req *sdk.WebhookRequest) error { return nil }

func (c *plainHookConn) HandleWebhook(ctx context.Context, req *sdk.WebhookRequest, w *sdk.Writer) error {
	return w.Save(ctx, "A", map[string]any{"id": "1"})
}

// secretHookConn takes webhooks only when its config has a secret
// (ConnectorWithConfiguredWebhooks).
type secretHookConn struct{ plainHookConn }

func (c *secretHookConn) WebhooksEnabled(ctx context.Context, req *sdk.ConfigRequest) (bool, error) {
	var cfg hookConfig
	if err := req.DecodeConfig(&cfg); err != nil {
		return false, err
	}
	return cfg.Secret != "", nil
}

func TestWebhooksPerConfiguration(t *testing.T) {
	var _ sdk.ConnectorWithConfiguredWebhooks = (*secretHookConn)(nil)
	h := sdktest.New(t, &secretHookConn{})
	d, err := h.Describe(nil)
	if err != nil || !d.Webhooks {
		t.Fatalf("static description: %v, webhooks %v; want webhooks (for some configurations)", err, d != nil && d.Webhooks)
	}
	with := map[string]any{"secret": "s3cret"}
	if d, err := h.Describe(with); err != nil || !d.Webhooks {
		t.Fatalf("with a secret: %v, webhooks %v", err, d != nil && d.Webhooks)
	}
	if d, err := h.Describe(map[string]any{}); err != nil || d.Webhooks {
		t.Fatalf("without a secret: %v, webhooks %v; want none", err, d != nil && d.Webhooks)
	}
	if _, err := h.Describe(map[string]any{"secret": 1, "nope": true}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("a bad configuration: %v", err)
	}
	// A host that asks anyway is refused.
	if err := h.VerifyWebhook(t.Context(), sdktest.WebhookOptions{Config: map[string]any{}, Header: http.Header{}}); err == nil || !strings.Contains(err.Error(), "does not take payload webhooks") {
		t.Errorf("VerifyWebhook without a secret: %v", err)
	}
	if _, err := h.HandleWebhook(t.Context(), sdktest.WebhookOptions{Config: map[string]any{}}); err == nil || !strings.Contains(err.Error(), "does not take payload webhooks") {
		t.Errorf("HandleWebhook without a secret: %v", err)
	}
	if err := h.VerifyWebhook(t.Context(), sdktest.WebhookOptions{Config: with}); err != nil {
		t.Errorf("VerifyWebhook with a secret: %v", err)
	}
	if res, err := h.HandleWebhook(t.Context(), sdktest.WebhookOptions{Config: with}); err != nil || len(res.Changes) != 1 {
		t.Errorf("HandleWebhook with a secret: %v", err)
	}

	// A connector that does not say takes webhooks for every
	// configuration, as before.
	old := sdktest.New(t, &plainHookConn{})
	for _, cfg := range []map[string]any{nil, {}, with} {
		if d, err := old.Describe(cfg); err != nil || !d.Webhooks {
			t.Errorf("ConnectorWithWebhooks alone, config %v: %v, webhooks %v", cfg, err, d != nil && d.Webhooks)
		}
	}
	if err := old.VerifyWebhook(t.Context(), sdktest.WebhookOptions{Config: map[string]any{}}); err != nil {
		t.Errorf("ConnectorWithWebhooks alone: VerifyWebhook %v", err)
	}
	// And a connector without webhooks takes none.
	if d, err := sdktest.New(t, &conn{}).Describe(map[string]any{}); err != nil || d.Webhooks {
		t.Errorf("a connector without webhooks: %v, webhooks %v", err, d != nil && d.Webhooks)
	}
}
