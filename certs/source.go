package certs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWatchInterval is Watch's polling interval when given none.
const DefaultWatchInterval = 10 * time.Second

// expiryWarning is how close to its expiry a loaded certificate is
// logged as a warning.
const expiryWarning = 30 * 24 * time.Hour

// Source is a node's current TLS material, loaded from Files. Its
// configs read the material at each handshake, so Reload (or Watch)
// takes effect for new connections without rebuilding anything. It is
// safe for concurrent use.
type Source struct {
	files Files
	log   *slog.Logger
	mu    sync.Mutex // serialises loads, so an older read never replaces a newer one
	cur   atomic.Pointer[material]
	polls atomic.Uint64 // Watch's polls (tests wait on it)
}

// material is one consistent load of the three files.
type material struct {
	cert   *tls.Certificate // Leaf is set
	pool   *x509.CertPool
	cas    int               // certificates in pool
	digest [sha256.Size]byte // of the files' contents, as loaded
	// peerServer is PeerServer's per-handshake config for this material.
	peerServer *tls.Config
}

// NewSource loads files (which must all be set) and returns a Source
// serving them. log (nil discards) receives the loads and reloads.
func NewSource(files Files, log *slog.Logger) (*Source, error) {
	if !files.Enabled() {
		return nil, errNoFiles
	}
	if err := files.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{files: files, log: log}
	m, err := load(files)
	if err != nil {
		return nil, err
	}
	s.cur.Store(m)
	s.logLoaded("tls: certificates loaded", m)
	return s, nil
}

// Files returns the files s loads.
func (s *Source) Files() Files { return s.files }

// Leaf returns the current certificate of the node (parsed; do not
// modify it).
func (s *Source) Leaf() *x509.Certificate { return s.cur.Load().cert.Leaf }

// Reload reads the files again and, if they hold a valid key pair
// certified by the CA they name, makes them current for new handshakes.
// On error the previous material stays current, and the error names the
// file at fault. Reload logs its outcome (an error at level Error).
func (s *Source) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := load(s.files)
	if err != nil {
		s.log.Error("tls: reload failed; keeping the previous certificates", "err", err)
		return err
	}
	s.cur.Store(m)
	s.logLoaded("tls: certificates reloaded", m)
	return nil
}

// Watch polls the files every interval (DefaultWatchInterval if ≤ 0) and
// reloads them when their contents differ from the current material's
// and have stayed the same for one interval (so that a rotation that
// writes the files one after the other, or a file still being written,
// is not loaded half done), until ctx ends; it then returns. The caller
// runs it on a goroutine of its own. Contents that failed to load are
// not retried (nor logged again) until they change again; Reload can
// still be called at any time.
func (s *Source) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var (
		seen   string // the state (digest or read error) of the previous poll
		failed string // the state that last failed to load
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.polls.Add(1)
		var state string
		certPEM, keyPEM, caPEM, err := read(s.files)
		if err != nil {
			state = err.Error()
		} else {
			d := digest(certPEM, keyPEM, caPEM)
			if d == s.cur.Load().digest {
				seen, failed = "", ""
				continue
			}
			state = hex.EncodeToString(d[:])
		}
		if state != seen { // changed since the last poll: let it settle
			seen = state
			continue
		}
		if state == failed {
			continue
		}
		if err := s.Reload(); err != nil {
			failed = state
		} else {
			failed = ""
		}
	}
}

func (s *Source) logLoaded(msg string, m *material) {
	leaf := m.cert.Leaf
	s.log.Info(msg, "cert", s.files.Cert, "subject", leaf.Subject.String(),
		"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC(), "ca", s.files.CA, "ca_certs", m.cas)
	if left := time.Until(leaf.NotAfter); left < expiryWarning {
		s.log.Warn("tls: the node's certificate expires soon", "cert", s.files.Cert, "not_after", leaf.NotAfter.UTC(), "left", left.Round(time.Minute))
	}
}

// HTTPServer returns the config of the client API's HTTPS listener: the
// current certificate, no client certificate asked for.
func (s *Source) HTTPServer() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.certificate,
	}
}

// PeerServer returns the config of the internode RPC listener: the
// current certificate, and a client certificate required and verified
// against the current CA pool (for client authentication). Session
// tickets are off, so that each connection is verified in full against
// the CA current at its handshake (internode connections are long-lived;
// resumption would save little).
func (s *Source) PeerServer() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS12,
		ClientAuth:             tls.RequireAndVerifyClientCert,
		SessionTicketsDisabled: true,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load().peerServer, nil
		},
	}
}

// PeerClient returns the config of internode RPC connections: it presents
// the current certificate and verifies the server's chain against the
// current CA pool (for server authentication). Host names and IP SANs are
// not checked (see the package documentation: peers are dialled at
// addresses gossip announces, and the CA is the identity), hence
// InsecureSkipVerify, with the verification done by VerifyConnection.
func (s *Source) PeerClient() *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		InsecureSkipVerify:   true, // VerifyConnection verifies the chain
		GetClientCertificate: s.clientCertificate,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return s.cur.Load().verifyPeer(cs.PeerCertificates, x509.ExtKeyUsageServerAuth)
		},
	}
}

// Client returns a config for clients of the client API (the CLI, the
// bench tool): it trusts the CA pool current when Client is called
// (RootCAs; the usual host name or IP verification applies) and presents
// the current certificate if a server asks for one. A long-lived client
// calls Client again to trust a reloaded CA.
func (s *Source) Client() *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		RootCAs:              s.cur.Load().pool,
		GetClientCertificate: s.clientCertificate,
	}
}

// ClientConfig returns a config for a client of the client API that has
// only the cluster CA's file (no certificate of its own): it trusts those
// CAs, with the usual host name or IP verification.
func ClientConfig(caFile string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("certs: read the CA: %w", err)
	}
	pool, _, err := parseCA(caFile, caPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

func (s *Source) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load().cert, nil
}

func (s *Source) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return s.cur.Load().cert, nil
}

// verifyPeer verifies a peer's chain (leaf first, as sent) against the
// CA pool for usage.
func (m *material) verifyPeer(chain []*x509.Certificate, usage x509.ExtKeyUsage) error {
	if len(chain) == 0 {
		return errors.New("certs: the peer presented no certificate")
	}
	opts := x509.VerifyOptions{Roots: m.pool, KeyUsages: []x509.ExtKeyUsage{usage}}
	if len(chain) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range chain[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := chain[0].Verify(opts); err != nil {
		return fmt.Errorf("certs: peer certificate %q (serial %s) is not valid for this cluster's CA: %w",
			chain[0].Subject.String(), chain[0].SerialNumber.Text(16), err)
	}
	return nil
}

// read returns the three files' contents.
func read(f Files) (certPEM, keyPEM, caPEM []byte, err error) {
	if certPEM, err = os.ReadFile(f.Cert); err != nil {
		return nil, nil, nil, fmt.Errorf("certs: read the certificate: %w", err)
	}
	if keyPEM, err = os.ReadFile(f.Key); err != nil {
		return nil, nil, nil, fmt.Errorf("certs: read the key: %w", err)
	}
	if caPEM, err = os.ReadFile(f.CA); err != nil {
		return nil, nil, nil, fmt.Errorf("certs: read the CA: %w", err)
	}
	return certPEM, keyPEM, caPEM, nil
}

// digest identifies the three files' contents.
func digest(parts ...[]byte) [sha256.Size]byte {
	h := sha256.New()
	for _, p := range parts {
		_ = binary.Write(h, binary.BigEndian, uint64(len(p)))
		h.Write(p)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// load reads and checks the three files.
func load(f Files) (*material, error) {
	certPEM, keyPEM, caPEM, err := read(f)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: certificate %s with key %s: %w", f.Cert, f.Key, err)
	}
	if pair.Leaf == nil { // GODEBUG x509keypairleaf=0
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certs: certificate %s: %w", f.Cert, err)
		}
	}
	pool, n, err := parseCA(f.CA, caPEM)
	if err != nil {
		return nil, err
	}
	m := &material{cert: &pair, pool: pool, cas: n, digest: digest(certPEM, keyPEM, caPEM)}
	// The node's certificate serves both ends of internode connections:
	// refuse one its peers would refuse.
	chain := make([]*x509.Certificate, 0, len(pair.Certificate))
	chain = append(chain, pair.Leaf)
	for i, der := range pair.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certs: certificate %s, intermediate %d: %w", f.Cert, i+1, err)
		}
		chain = append(chain, c)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if err := m.verifyPeer(chain, usage); err != nil {
			return nil, fmt.Errorf("certs: certificate %s is not usable with CA %s (it must be signed by it, unexpired, and allow server and client authentication): %w", f.Cert, f.CA, errors.Unwrap(err))
		}
	}
	m.peerServer = &tls.Config{
		MinVersion:             tls.VersionTLS12,
		Certificates:           []tls.Certificate{pair},
		ClientAuth:             tls.RequireAndVerifyClientCert,
		ClientCAs:              pool,
		SessionTicketsDisabled: true,
	}
	return m, nil
}

// parseCA parses every CERTIFICATE block of a CA file.
func parseCA(path string, data []byte) (*x509.CertPool, int, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := bytes.TrimSpace(data); len(rest) > 0; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, 0, fmt.Errorf("certs: CA %s, certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("certs: CA %s holds no PEM CERTIFICATE block", path)
	}
	return pool, n, nil
}
