package plugin_test

import (
	"bufio"
	"crypto/tls"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/synclayer/synclayer/core/plugin"
	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
)

// A plugin built with the SDK serves with the certificate the host made for
// it (no P-521 certificate of its own in the handshake line) and accepts
// only the host's certificate as a client.
func TestPluginServesTheHostsCertificate(t *testing.T) {
	m := plugin.NewManager(plugin.Options{SearchPaths: []string{binDir}, MutualTLS: true})
	cfg, env, err := m.LaunchTLS()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "synclayer-plugin-files"))
	cmd.Env = append(env, connectorv1.MagicCookieKey+"="+connectorv1.MagicCookieValue, "PLUGIN_PROTOCOL_VERSIONS=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	// core|protocol|network|address|grpc|server certificate
	parts := strings.Split(strings.TrimSpace(line), "|")
	if len(parts) < 5 || parts[2] != "unix" {
		t.Fatalf("handshake line %q", line)
	}
	if len(parts) > 5 && parts[5] != "" {
		t.Fatalf("the plugin made its own certificate instead of the host's: %q", line)
	}
	dial := func(c *tls.Config) error {
		raw, err := net.DialTimeout("unix", parts[3], 10*time.Second)
		if err != nil {
			return err
		}
		defer raw.Close()
		c = c.Clone()
		c.NextProtos = []string{"h2"} // gRPC's ALPN
		conn := tls.Client(raw, c)
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := conn.Handshake(); err != nil {
			return err
		}
		// TLS 1.3 reports a refused client certificate on the first read.
		conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
		_, err = conn.Read(make([]byte, 1))
		return err
	}
	if err := dial(cfg); err != nil {
		t.Fatalf("the host's TLS configuration: %v", err)
	}
	anon := cfg.Clone()
	anon.Certificates = nil
	if err := dial(anon); err == nil {
		t.Fatal("the plugin accepted a client without the host's certificate")
	}
	// Another host process (another Manager) has its own certificate.
	other, _, err := plugin.NewManager(plugin.Options{MutualTLS: true}).LaunchTLS()
	if err != nil {
		t.Fatal(err)
	}
	if err := dial(other); err == nil {
		t.Fatal("the plugin accepted another host's certificate")
	}
	// The host trusts each launch's plugin certificate only: the next
	// launch's configuration refuses this plugin as a server.
	next, _, err := m.LaunchTLS()
	if err != nil {
		t.Fatal(err)
	}
	if err := dial(next); err == nil {
		t.Fatal("another launch's configuration trusted this plugin's certificate")
	}
}

// Every launch hands its plugin a key never handed out before, whether it
// was made ahead or on the spot, and the same host certificate.
func TestLaunchCertificatesAreFresh(t *testing.T) {
	m := plugin.NewManager(plugin.Options{MutualTLS: true})
	keys := map[string]bool{}
	var host string
	for i := 0; i < 20; i++ {
		_, env, err := m.LaunchTLS()
		if err != nil {
			t.Fatal(err)
		}
		vars := map[string]string{}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
		key := vars[connectorv1.ServerKeyEnv]
		if !strings.Contains(key, "PRIVATE KEY") || keys[key] {
			t.Fatalf("launch %d: plugin key missing or handed out before", i)
		}
		keys[key] = true
		if host == "" {
			host = vars[connectorv1.ClientCertEnv]
		}
		if vars[connectorv1.ClientCertEnv] != host || !strings.Contains(host, "CERTIFICATE") {
			t.Fatalf("launch %d: the host certificate changed within one Manager", i)
		}
		if strings.Contains(vars[connectorv1.ClientCertEnv], "PRIVATE") {
			t.Fatal("the host's key was handed to a plugin")
		}
	}
}
