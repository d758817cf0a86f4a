package connectorv1

// The mutual TLS of the plugin connection, when the host asks for it
// (SYNCLAYER_PLUGIN_MTLS=1; by default the connection is a Unix socket in a
// directory only the host's user can open, without TLS: see the host's
// core/plugin/sockets.go). The host makes a fresh P-256
// key pair and self-signed certificate for each side of each launch and
// gives the plugin process its own in these variables, beside go-plugin's
// PLUGIN_CLIENT_CERT (the host's certificate, the only client the plugin
// accepts). A plugin that does not read them falls back to go-plugin's
// automatic mTLS: it makes its own P-521 certificate (tens of milliseconds
// of start-up) and sends it in the handshake line, which the host then
// trusts instead.
const (
	// ServerCertEnv holds the plugin's server certificate, PEM.
	ServerCertEnv = "SYNCLAYER_PLUGIN_SERVER_CERT"
	// ServerKeyEnv holds the plugin's server private key, PEM. The plugin
	// removes it from its environment as it starts.
	ServerKeyEnv = "SYNCLAYER_PLUGIN_SERVER_KEY"
	// ClientCertEnv is go-plugin's variable for the host's certificate.
	ClientCertEnv = "PLUGIN_CLIENT_CERT"
)
