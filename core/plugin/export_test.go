package plugin

import "crypto/tls"

// LaunchTLS is the mutual TLS of one launch by m, for the external tests:
// the host's configuration and the plugin's variables.
func (m *Manager) LaunchTLS() (*tls.Config, []string, error) {
	return m.certs.launch()
}

// SocketDir is the Manager's socket directory ("" before the first launch
// and after Shutdown).
func (m *Manager) SocketDir() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sockDir
}

// SocketPath is the Unix socket the instance's plugin listens on.
func (i *Instance) SocketPath() string {
	if rc := i.client.ReattachConfig(); rc != nil && rc.Addr != nil {
		return rc.Addr.String()
	}
	return ""
}
