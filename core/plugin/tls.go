package plugin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
)

// launchTLS makes the mutual TLS of one plugin launch (see
// connectorv1.ServerCertEnv): a key pair and certificate for the host, one
// for the plugin, the host's TLS configuration trusting only the plugin's
// certificate, and the variables that hand the plugin its own and the
// host's certificate. go-plugin's AutoMTLS does the same with P-521 keys,
// whose generation took ~50 ms of every plugin start on a loaded 2-core
// machine; P-256 takes well under a millisecond and is as strong as the
// connection needs (TLS 1.3, keys that live as long as the process).
func launchTLS() (*tls.Config, []string, error) {
	hostCert, hostKey, err := selfSigned()
	if err != nil {
		return nil, nil, err
	}
	srvCert, srvKey, err := selfSigned()
	if err != nil {
		return nil, nil, err
	}
	pair, err := tls.X509KeyPair(hostCert, hostKey)
	if err != nil {
		return nil, nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(srvCert) {
		return nil, nil, fmt.Errorf("plugin TLS: the server certificate does not parse")
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{pair},
		RootCAs:      roots,
		ServerName:   "localhost",
		MinVersion:   tls.VersionTLS12,
	}
	env := []string{
		connectorv1.ClientCertEnv + "=" + string(hostCert),
		connectorv1.ServerCertEnv + "=" + string(srvCert),
		connectorv1.ServerKeyEnv + "=" + string(srvKey),
	}
	return cfg, env, nil
}

// selfSigned returns a fresh P-256 certificate for "localhost", usable by
// either side of the connection, and its key, both PEM.
func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("plugin TLS: generate key: %w", err)
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("plugin TLS: serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"synclayer"}},
		DNSNames:              []string{"localhost"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("plugin TLS: certificate: %w", err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("plugin TLS: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}
