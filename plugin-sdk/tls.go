package sdk

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"

	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
)

// serverTLS is the plugin's side of the mutual TLS the host set up (see
// connectorv1.ServerCertEnv): its own certificate, and the host's as the
// only client it accepts. The key leaves the environment, so that neither
// the connector nor what it starts sees it. Without these variables (a
// host that uses go-plugin's AutoMTLS) it returns nil, and go-plugin makes
// its own certificate.
func serverTLS() (*tls.Config, error) {
	certPEM, keyPEM := os.Getenv(connectorv1.ServerCertEnv), os.Getenv(connectorv1.ServerKeyEnv)
	os.Unsetenv(connectorv1.ServerKeyEnv)
	os.Unsetenv(connectorv1.ServerCertEnv)
	if certPEM == "" && keyPEM == "" {
		return nil, nil
	}
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return nil, errors.New("plugin TLS: " + connectorv1.ServerCertEnv + " and " + connectorv1.ServerKeyEnv + " are not a certificate and its key: " + err.Error())
	}
	clients := x509.NewCertPool()
	if !clients.AppendCertsFromPEM([]byte(os.Getenv(connectorv1.ClientCertEnv))) {
		return nil, errors.New("plugin TLS: " + connectorv1.ClientCertEnv + " holds no certificate")
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clients,
		MinVersion:   tls.VersionTLS12,
	}, nil
}
