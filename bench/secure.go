package bench

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"

	"github.com/dotkv/dotkv/certs"
)

// security is what a secured bench cluster (--secure) runs with: a
// throwaway CA and one node certificate for every address the run can
// give a node, an admin bearer token, and a gossip encryption key. Its
// servers get the flags that turn each on; its clients trust the CA and
// send the token.
type security struct {
	args   []string    // server flags
	tls    *tls.Config // clients' TLS: trusts the run's CA
	token  string
	scheme string
}

// benchCertID names the one certificate every bench node presents.
const benchCertID = "bench"

// newSecurity writes the run's CA, certificate, token file and gossip key
// file under dir.
func newSecurity(dir string) (*security, error) {
	dir = filepath.Join(dir, "secure")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Nodes take 127.0.0.(30+k) on Linux (NewNode), 127.0.0.1 elsewhere.
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	if runtime.GOOS == "linux" {
		for k := 31; k <= 254; k++ {
			ips = append(ips, net.IPv4(127, 0, 0, byte(k)))
		}
	}
	if err := certs.GenerateDev(dir, []certs.DevNode{{ID: benchCertID, IPs: ips}}); err != nil {
		return nil, fmt.Errorf("secure bench: certificates: %w", err)
	}
	files := certs.DevFiles(dir, benchCertID)
	conf, err := certs.ClientConfig(files.CA)
	if err != nil {
		return nil, fmt.Errorf("secure bench: %w", err)
	}
	// A gossip key as `dotkv keygen` prints one (the bench imports no
	// server package).
	token, key := make([]byte, 24), make([]byte, 32)
	_, _ = rand.Read(token) // never fails
	_, _ = rand.Read(key)
	s := &security{tls: conf, token: hex.EncodeToString(token), scheme: "https"}
	tokens, gossipKey := filepath.Join(dir, "tokens"), filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(tokens, []byte("# dotkv bench: every client is an admin (faults, leave, remove)\nadmin "+s.token+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(gossipKey, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	s.args = []string{"--tls-cert", files.Cert, "--tls-key", files.Key, "--tls-ca", files.CA,
		"--auth-token-file", tokens, "--gossip-key-file", gossipKey}
	return s, nil
}

// transport returns base with the run's TLS configuration, wrapped to send
// its token (s may be nil: plain HTTP, no token).
func (s *security) transport(base *http.Transport) http.RoundTripper {
	if s == nil {
		return base
	}
	base.TLSClientConfig = s.tls.Clone()
	return bearer{token: "Bearer " + s.token, base: base}
}

// bearer adds an Authorization header to every request.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", b.token)
	return b.base.RoundTrip(r)
}

// CloseIdleConnections closes the wrapped transport's idle connections.
func (b bearer) CloseIdleConnections() {
	if c, ok := b.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// urlScheme is the scheme of the nodes' client API.
func (s *security) urlScheme() string {
	if s == nil {
		return "http"
	}
	return s.scheme
}
