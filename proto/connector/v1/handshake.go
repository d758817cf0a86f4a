// Package connectorv1 is version 1 of the wire protocol between the synclayer
// host and its connector plugins: the generated gRPC code, and the go-plugin
// handshake that both sides share. It holds no logic.
package connectorv1

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative connector.proto

// ProtocolVersion is the connector protocol version this package speaks.
// Additive changes that either side may ignore (a new optional call such as
// Watch, a new field) keep the number; only a change that breaks an older
// host or plugin takes a new version, served beside this one.
const ProtocolVersion = 1

// PluginName is the key of the connector in go-plugin's plugin map.
const PluginName = "connector"

// Handshake is the go-plugin handshake shared by the host and every plugin.
// The magic cookie only tells a user who runs a plugin binary by hand that it
// is not meant to be run directly; it is not a security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "SYNCLAYER_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "b4c1a6f0e3d24f7e9a1c5d8b2e6f0a3c",
}

// GRPCPlugin adapts a ConnectorServer (plugin side) or produces a
// ConnectorClient (host side) for go-plugin.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is set on the plugin side only.
	Impl ConnectorServer
}

// GRPCServer registers the connector server with go-plugin's gRPC server.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	RegisterConnectorServer(s, p.Impl)
	return nil
}

// GRPCClient returns a ConnectorClient on the host side.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return NewConnectorClient(c), nil
}

// VersionedPlugins is the plugin map per protocol version, for go-plugin's
// VersionedPlugins on both sides; a future v2 is served beside v1 here.
func VersionedPlugins(server ConnectorServer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		ProtocolVersion: {PluginName: &GRPCPlugin{Impl: server}},
	}
}
