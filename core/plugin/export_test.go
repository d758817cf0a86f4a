package plugin

import "crypto/tls"

// LaunchTLS is the mutual TLS of one launch by m, for the external tests:
// the host's configuration and the plugin's variables.
func (m *Manager) LaunchTLS() (*tls.Config, []string, error) {
	return m.certs.launch()
}
