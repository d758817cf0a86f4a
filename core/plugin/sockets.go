package plugin

import (
	"fmt"
	"os"
)

// The plugin connection's security. Each plugin listens on a Unix socket
// in a directory the Manager makes for its plugins alone, mode 0700, owned
// by the host's user: no other user can reach a socket inside it (a
// connect needs search permission on every directory of the path), and
// root can anyway. That is the whole of what a local channel between a
// process and its own child can be protected against: a process of the
// same user may read the plugin's environment (/proc/PID/environ, where
// the launch's TLS key is handed over) and memory, so mutual TLS on this
// socket adds no protection the directory does not give, and it cost each
// plugin start ~2 ms of TLS handshake (BENCH.md plugin_start_ratio).
// Options.MutualTLS keeps it for those who want it anyway.
//
// The directory lives under $TMPDIR (a Unix socket's path is limited to
// 107 bytes: a data dir may be deeper) and is removed on Shutdown.

// socketDir returns the Manager's socket directory, made on first use.
func (m *Manager) socketDir() (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", fmt.Errorf("plugin manager is shut down")
	}
	if m.sockDir != "" {
		return m.sockDir, nil
	}
	dir, err := os.MkdirTemp("", "synclayer-plugins-") // mode 0700
	if err != nil {
		return "", fmt.Errorf("making the plugins' socket directory (set TMPDIR to a writable directory): %w", err)
	}
	// The socket's name adds "/plugin" and ten digits (go-plugin's
	// naming): refuse a directory that leaves no room, rather than let
	// every start fail with EINVAL.
	if len(dir)+len("/plugin")+10 > 107 {
		os.Remove(dir)
		return "", fmt.Errorf("the plugins' socket directory %s is too deep for a Unix socket's path (107 bytes): set TMPDIR to a shorter path", dir)
	}
	m.sockDir = dir
	return dir, nil
}

// removeSocketDir removes the socket directory (Shutdown, once every
// plugin is stopped).
func (m *Manager) removeSocketDir() {
	m.mu.Lock()
	dir := m.sockDir
	m.sockDir = ""
	m.mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
	}
}
