// Package connectorv1 is version 1 of the wire protocol between the synclayer
// host and its connector plugins: the generated gRPC code, and the constants
// of the go-plugin handshake that both sides share. It holds no logic, and
// does not link go-plugin (its configuration for go-plugin is in package
// handshake below).
package connectorv1

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative connector.proto

// ProtocolVersion is the connector protocol version this package speaks.
// Additive changes that either side may ignore (a new optional call such as
// Watch, a new field) keep the number; only a change that breaks an older
// host or plugin takes a new version, served beside this one.
const ProtocolVersion = 1

// PluginName is the key of the connector in go-plugin's plugin map.
const PluginName = "connector"

// The go-plugin magic cookie, in the plugin's environment. It only tells a
// user who runs a plugin binary by hand that it is not meant to be run
// directly; it is not a security measure.
const (
	MagicCookieKey   = "SYNCLAYER_PLUGIN_MAGIC_COOKIE"
	MagicCookieValue = "b4c1a6f0e3d24f7e9a1c5d8b2e6f0a3c"
)
