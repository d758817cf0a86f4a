// Package handshake is the hashicorp/go-plugin side of connector protocol
// v1: the handshake configuration and plugin map that the host's go-plugin
// client uses (and a plugin served with go-plugin's own plugin.Serve).
//
// It lives apart from package connectorv1 so that a plugin built with the
// SDK does not link go-plugin: the SDK speaks the plugin side of go-plugin's
// protocol itself (plugin-sdk/goplugin.go), and importing go-plugin alone
// cost a plugin ~1.4 ms of every start (its package initialisation: gRPC
// reflection with protobuf's descriptor packages, net/rpc, encoding/gob).
package handshake

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
)

// Config is the go-plugin handshake shared by the host and every plugin.
// The magic cookie only tells a user who runs a plugin binary by hand that
// it is not meant to be run directly; it is not a security measure.
var Config = plugin.HandshakeConfig{
	ProtocolVersion:  connectorv1.ProtocolVersion,
	MagicCookieKey:   connectorv1.MagicCookieKey,
	MagicCookieValue: connectorv1.MagicCookieValue,
}

// GRPCPlugin adapts a ConnectorServer (plugin side) or produces a
// ConnectorClient (host side) for go-plugin.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is set on the plugin side only.
	Impl connectorv1.ConnectorServer
}

// GRPCServer registers the connector server with go-plugin's gRPC server.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	connectorv1.RegisterConnectorServer(s, p.Impl)
	return nil
}

// GRPCClient returns a ConnectorClient on the host side.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return connectorv1.NewConnectorClient(c), nil
}

// VersionedPlugins is the plugin map per protocol version, for go-plugin's
// VersionedPlugins on both sides; a future v2 is served beside v1 here.
func VersionedPlugins(server connectorv1.ConnectorServer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		connectorv1.ProtocolVersion: {connectorv1.PluginName: &GRPCPlugin{Impl: server}},
	}
}
