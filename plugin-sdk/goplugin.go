package sdk

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/signal"
	"os/user"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
)

// The plugin side of hashicorp/go-plugin's protocol, which the host's
// go-plugin client drives, spoken here without linking go-plugin. Linking
// it cost every plugin start ~1.4 ms on a 2-core machine (its package
// initialisation and the code it maps: gRPC reflection with protobuf's
// descriptor packages, net/rpc, encoding/gob, yamux), measured against a
// bare gRPC server with and without a blank import of go-plugin; a start
// is held to 3× a trivial exec (BENCH.md plugin_start_ratio).
//
// What go-plugin v1's server does, this does the same way: it listens on
// a fresh Unix socket (in $PLUGIN_UNIX_SOCKET_DIR when the host sets it,
// group-writable for $PLUGIN_UNIX_SOCKET_GROUP), prints the handshake
// line "core|app|unix|address|grpc|cert" on stdout, and serves the
// connector beside go-plugin's own services: the health check, the
// controller (Shutdown stops the server, then the process exits), the
// stdio stream and the broker. The connector never writes through those
// two: what it prints to os.Stdout or os.Stderr after the handshake is
// discarded, as go-plugin's client, which the host gives no writers for
// them, discarded it; its logs go through the SDK's logger. The plugin
// ignores SIGINT (the host stops it). gRPC reflection is not served.
const (
	// goPluginCoreVersion is go-plugin's core protocol version, the
	// handshake line's first field.
	goPluginCoreVersion = 1
	// goPluginHealthService is the service go-plugin's Ping checks.
	goPluginHealthService = "plugin"
)

// serveGoPlugin serves srv until the host shuts it down (nil) or the
// server fails.
func serveGoPlugin(log hclog.Logger, tlsConfig *tls.Config, certLine string, srv connectorv1.ConnectorServer, opts []grpc.ServerOption) error {
	l, err := goPluginListener()
	if err != nil {
		return fmt.Errorf("listening for the host: %w", err)
	}
	defer l.Close()
	if tlsConfig != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	s := grpc.NewServer(opts...)
	hs := health.NewServer()
	hs.SetServingStatus(goPluginHealthService, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	registerGoPluginServices(s)
	connectorv1.RegisterConnectorServer(s, srv)

	if _, err := fmt.Fprintf(os.Stdout, "%d|%d|%s|%s|grpc|%s\n", goPluginCoreVersion, connectorv1.ProtocolVersion,
		l.Addr().Network(), l.Addr().String(), certLine); err != nil {
		return fmt.Errorf("writing the handshake: %w", err)
	}
	_ = os.Stdout.Sync()
	go warmWire()

	interrupts := make(chan os.Signal, 1)
	signal.Notify(interrupts, os.Interrupt)
	go func() {
		for range interrupts {
			log.Trace("plugin received an interrupt, ignoring it: the host stops its plugins")
		}
	}()
	if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		os.Stdout, os.Stderr = null, null
	}
	return s.Serve(l)
}

// goPluginListener listens on a new Unix socket named as go-plugin names
// it. The socket file is removed when the listener closes.
func goPluginListener() (net.Listener, error) {
	f, err := os.CreateTemp(os.Getenv("PLUGIN_UNIX_SOCKET_DIR"), "plugin")
	if err != nil {
		return nil, err
	}
	path := f.Name()
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if g := os.Getenv("PLUGIN_UNIX_SOCKET_GROUP"); g != "" {
		if err := groupWritable(path, g); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// groupWritable gives the socket to group (a name or a gid), mode 0660.
func groupWritable(path, group string) error {
	gid, err := strconv.Atoi(group)
	if err != nil {
		g, err := user.LookupGroup(group)
		if err != nil {
			return fmt.Errorf("PLUGIN_UNIX_SOCKET_GROUP %q: %w", group, err)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return fmt.Errorf("PLUGIN_UNIX_SOCKET_GROUP %q: gid %q: %w", group, g.Gid, err)
		}
	}
	if err := os.Chown(path, -1, gid); err != nil {
		return err
	}
	return os.Chmod(path, 0o660)
}

// registerGoPluginServices registers go-plugin's controller, stdio and
// broker services (package plugin of go-plugin's protocol). Their
// messages are go-plugin's Empty, or ones this side neither sends nor
// reads: they are received as emptypb.Empty, their fields skipped.
func registerGoPluginServices(s *grpc.Server) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "plugin.GRPCController",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Shutdown",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				if err := dec(new(emptypb.Empty)); err != nil {
					return nil, err
				}
				// As go-plugin's: stop at once (its graceful stop
				// would wait for the host's own streams to end).
				go s.Stop()
				return new(emptypb.Empty), nil
			},
		}},
	}, struct{}{})
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "plugin.GRPCStdio",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "StreamStdio",
			ServerStreams: true,
			Handler: func(_ any, ss grpc.ServerStream) error {
				if err := ss.RecvMsg(new(emptypb.Empty)); err != nil {
					return err
				}
				// Nothing is forwarded (see above): hold the
				// stream open until the host closes it.
				<-ss.Context().Done()
				return nil
			},
		}},
	}, struct{}{})
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "plugin.GRPCBroker",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "StartStream",
			ServerStreams: true,
			ClientStreams: true,
			Handler: func(_ any, ss grpc.ServerStream) error {
				// Connectors open no brokered connections: read
				// (and drop) whatever the host sends until it
				// closes the stream.
				for {
					if err := ss.RecvMsg(new(emptypb.Empty)); err != nil {
						return nil
					}
				}
			},
		}},
	}, struct{}{})
}

// warmWire runs the protobuf code of the host's first call (Describe) once
// while the host reads the handshake line and connects: a message type's
// marshalling is set up on its first use, and the code it runs is paged
// in then; done here, beside the host's work, it is off the first call's
// path (~0.1-0.3 ms of a start on a 2-core machine). Nothing of the
// connector runs.
func warmWire() {
	res := &connectorv1.DescribeResponse{
		Name: "warm", Version: "0", ProtocolVersion: connectorv1.ProtocolVersion,
		Config: []*connectorv1.ConfigField{{Name: "f", Type: []byte(`"string"`), Required: true}},
		Models: []*connectorv1.Model{{Name: "M", Fields: []*connectorv1.ModelField{{Name: "f"}}}},
		Syncs:  []*connectorv1.SyncSpec{{Name: "s", Models: []string{"M"}}},
	}
	if b, err := proto.Marshal(res); err == nil {
		_ = proto.Unmarshal(b, new(connectorv1.DescribeResponse))
	}
	req := &connectorv1.DescribeRequest{Context: &connectorv1.RunContext{Layer: "l", Source: "s", Config: []byte("{}")}}
	if b, err := proto.Marshal(req); err == nil {
		_ = proto.Unmarshal(b, new(connectorv1.DescribeRequest))
	}
}
