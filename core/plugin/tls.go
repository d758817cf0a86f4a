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
	"sync"
	"sync/atomic"
	"time"

	connectorv1 "github.com/synclayer/synclayer/proto/connector/v1"
)

// launchCerts makes the mutual TLS of plugin launches when
// Options.MutualTLS asks for it (see connectorv1.ServerCertEnv, and
// sockets.go for why it is off by default). go-plugin's AutoMTLS makes a P-521 key pair
// on each side of every launch, whose generation took ~50 ms of every plugin
// start on a loaded 2-core machine; here the keys are P-256 (as strong as
// the connection needs: TLS 1.3 over a local socket, keys that live as long
// as the process) and none is made on a launch's critical path:
//
//   - the host's own key pair and certificate, the client side of every
//     connection, is made once per Manager. Plugins only ever see its
//     certificate; its key stays in the host's memory.
//   - each launch gets a fresh key pair and certificate for the plugin (the
//     server side), and the host trusts only that certificate for that
//     launch: a plugin cannot pose as another. The next launch's pair is
//     made ahead, in the background, once the launch that took the last
//     one has connected to its plugin.
//
// Both cost ~0.2 ms each of CPU, which a launch no longer waits for.
type launchCerts struct {
	hostOnce sync.Once
	host     tls.Certificate
	hostPEM  []byte
	hostErr  error

	// spare holds at most one plugin certificate made ahead; refilling
	// is set while a goroutine makes the next one.
	spare     chan serverCert
	refilling atomic.Bool
}

// serverCert is a plugin's certificate and key, PEM, and the certificate
// parsed, for the host's pool of that launch (parsed ahead with the rest,
// off the launch's path).
type serverCert struct {
	cert, key []byte
	leaf      *x509.Certificate
}

// newServerCert makes a plugin certificate.
func newServerCert() (serverCert, error) {
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return serverCert{}, err
	}
	b, _ := pem.Decode(certPEM)
	if b == nil {
		return serverCert{}, fmt.Errorf("plugin TLS: the server certificate does not parse")
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return serverCert{}, fmt.Errorf("plugin TLS: the server certificate does not parse: %w", err)
	}
	return serverCert{certPEM, keyPEM, leaf}, nil
}

func newLaunchCerts() *launchCerts {
	return &launchCerts{spare: make(chan serverCert, 1)}
}

// prepare makes the host's certificate and the first plugin certificate in
// the background, so that even the first launch finds them ready.
func (c *launchCerts) prepare() {
	if c.refilling.CompareAndSwap(false, true) {
		go func() {
			c.hostOnce.Do(c.makeHost)
			c.refill()
		}()
	}
}

func (c *launchCerts) makeHost() {
	certPEM, keyPEM, err := selfSigned()
	if err == nil {
		c.host, err = tls.X509KeyPair(certPEM, keyPEM)
	}
	c.hostPEM, c.hostErr = certPEM, err
}

// refill makes one plugin certificate into spare; refilling is set by the
// caller and cleared here.
func (c *launchCerts) refill() {
	defer c.refilling.Store(false)
	if sc, err := newServerCert(); err == nil {
		select {
		case c.spare <- sc:
		default:
		}
	}
}

// next returns a plugin certificate never handed out before: the spare one
// when it is ready, else a new one. The launch that took it calls
// replenish once connected.
func (c *launchCerts) next() (serverCert, error) {
	select {
	case sc := <-c.spare:
		return sc, nil
	default:
	}
	return newServerCert()
}

// replenish starts making the next spare certificate unless one is ready
// or being made. A launch calls it once its plugin has answered the
// handshake (or failed to), not when it takes its certificate: the ~0.3
// ms of CPU would otherwise run while the new process starts, competing
// with it for the cores (on a loaded 2-core machine a start to its first
// Describe answer took 0.1-0.2 ms less this way).
func (c *launchCerts) replenish() {
	if len(c.spare) == 0 && c.refilling.CompareAndSwap(false, true) {
		go c.refill()
	}
}

// launch returns the host's TLS configuration for one launch, trusting
// only that launch's plugin certificate, and the variables that hand the
// plugin its own certificate and key and the host's certificate.
func (c *launchCerts) launch() (*tls.Config, []string, error) {
	c.hostOnce.Do(c.makeHost)
	if c.hostErr != nil {
		return nil, nil, c.hostErr
	}
	srv, err := c.next()
	if err != nil {
		return nil, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(srv.leaf)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{c.host},
		RootCAs:      roots,
		ServerName:   "localhost",
		MinVersion:   tls.VersionTLS12,
		// X25519 alone, rather than Go's default X25519MLKEM768 first:
		// the hybrid post-quantum exchange cost ~0.4 ms more of every
		// plugin start (measured), and guards against recording the
		// traffic now to decrypt it later, which on this channel (a
		// Unix socket between the host and its own child process) only
		// someone able to read both processes' memory could do anyway.
		// The exchange stays ephemeral ECDH: forward secrecy is kept.
		CurvePreferences: []tls.CurveID{tls.X25519},
	}
	env := []string{
		connectorv1.ClientCertEnv + "=" + string(c.hostPEM),
		connectorv1.ServerCertEnv + "=" + string(srv.cert),
		connectorv1.ServerKeyEnv + "=" + string(srv.key),
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
