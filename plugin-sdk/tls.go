package sdk

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
)

// serverTLS is the plugin's side of the mutual TLS the host set up (see
// connectorv1.ServerCertEnv): its own certificate, and the host's as the
// only client it accepts. The key leaves the environment, so that neither
// the connector nor what it starts sees it.
//
// A host that uses go-plugin's AutoMTLS instead sets only the host's
// certificate: the plugin then makes its own key pair and certificate, as
// go-plugin's server does, and certLine is that certificate for the
// handshake line (base64 DER), which the host then trusts. Without any of
// these variables it returns nil: the host asked for no TLS.
func serverTLS() (cfg *tls.Config, certLine string, err error) {
	certPEM, keyPEM := os.Getenv(connectorv1.ServerCertEnv), os.Getenv(connectorv1.ServerKeyEnv)
	os.Unsetenv(connectorv1.ServerKeyEnv)
	os.Unsetenv(connectorv1.ServerCertEnv)
	clientPEM := os.Getenv(connectorv1.ClientCertEnv)
	if certPEM == "" && keyPEM == "" {
		if clientPEM == "" {
			return nil, "", nil
		}
		return autoMTLS(clientPEM)
	}
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return nil, "", errors.New("plugin TLS: " + connectorv1.ServerCertEnv + " and " + connectorv1.ServerKeyEnv + " are not a certificate and its key: " + err.Error())
	}
	cfg, err = acceptOnly(pair, clientPEM)
	return cfg, "", err
}

// acceptOnly is the server configuration with pair, accepting only the
// client certificate clientPEM.
func acceptOnly(pair tls.Certificate, clientPEM string) (*tls.Config, error) {
	clients := x509.NewCertPool()
	if !clients.AppendCertsFromPEM([]byte(clientPEM)) {
		return nil, errors.New("plugin TLS: " + connectorv1.ClientCertEnv + " holds no certificate")
	}
	return &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clients,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// autoMTLS makes the plugin's own P-256 key pair and self-signed
// certificate for "localhost" (go-plugin's AutoMTLS; its own server makes
// a P-521 one) and returns the configuration and the certificate for the
// handshake line.
func autoMTLS(clientPEM string) (*tls.Config, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("plugin TLS: generate key: %w", err)
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, "", fmt.Errorf("plugin TLS: serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"synclayer"}},
		DNSNames:              []string{"localhost"},
		NotBefore:             now.Add(-30 * time.Second),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", fmt.Errorf("plugin TLS: certificate: %w", err)
	}
	cfg, err := acceptOnly(tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, clientPEM)
	if err != nil {
		return nil, "", err
	}
	return cfg, base64.RawStdEncoding.EncodeToString(der), nil
}
