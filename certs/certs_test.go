package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// patience bounds every wait for a condition: generous, for a busy
// machine under -race; a passing test never waits for it.
const patience = 30 * time.Second

// devDir generates a dev CA and certificates for ids in a new directory.
func devDir(t *testing.T, ids ...string) string {
	t.Helper()
	dir := t.TempDir()
	nodes := make([]DevNode, len(ids))
	for i, id := range ids {
		nodes[i] = DevNode{ID: id, IPs: []net.IP{net.ParseIP("127.0.0.21")}}
	}
	if err := GenerateDev(dir, nodes); err != nil {
		t.Fatal(err)
	}
	return dir
}

func source(t *testing.T, files Files, log *slog.Logger) *Source {
	t.Helper()
	s, err := NewSource(files, log)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// outcome is what one end of a handshake saw.
type outcome struct {
	err  error
	peer *x509.Certificate // the other end's leaf
}

// handshake runs a TLS server with sc and a client with cc over a
// loopback TCP connection. The server writes a byte once its handshake
// succeeds and the client reads it, so that a client certificate the
// server refuses fails the client too (with TLS 1.3 the client's
// handshake completes before the server has checked its certificate).
func handshake(t *testing.T, sc, cc *tls.Config) (srv, cli outcome) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan outcome, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			done <- outcome{err: err}
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(patience))
		tc := tls.Server(nc, sc)
		if err := tc.Handshake(); err != nil {
			done <- outcome{err: err}
			return
		}
		var o outcome
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			o.peer = certs[0]
		}
		_, o.err = tc.Write([]byte{1})
		done <- o
		_, _ = io.Copy(io.Discard, tc) // until the client closes
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(patience))
	tc := tls.Client(nc, cc)
	if cli.err = tc.Handshake(); cli.err == nil {
		cli.peer = tc.ConnectionState().PeerCertificates[0]
		_, cli.err = tc.Read(make([]byte, 1))
	}
	_ = nc.Close()
	return <-done, cli
}

func TestFilesValidate(t *testing.T) {
	for _, tc := range []struct {
		f       Files
		enabled bool
		errHas  []string
	}{
		{Files{}, false, nil},
		{Files{Cert: "c", Key: "k", CA: "a"}, true, nil},
		{Files{Cert: "c"}, true, []string{"--tls-key and --tls-ca are not set"}},
		{Files{Cert: "c", Key: "k"}, true, []string{"--tls-ca is not set"}},
		{Files{CA: "a"}, true, []string{"--tls-cert and --tls-key are not set"}},
	} {
		if tc.f.Enabled() != tc.enabled {
			t.Errorf("%+v: Enabled = %v", tc.f, !tc.enabled)
		}
		err := tc.f.Validate()
		if (err != nil) != (tc.errHas != nil) {
			t.Errorf("%+v: Validate = %v", tc.f, err)
			continue
		}
		for _, s := range tc.errHas {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%+v: Validate = %q; want it to say %q", tc.f, err, s)
			}
		}
	}
	if _, err := NewSource(Files{}, nil); err == nil {
		t.Error("NewSource with no files succeeded")
	}
	if _, err := NewSource(Files{Cert: "c"}, nil); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Errorf("NewSource with one file: %v", err)
	}
}

func TestGenerateDev(t *testing.T) {
	dir := t.TempDir()
	ip := net.ParseIP("127.0.0.21")
	if err := GenerateDev(dir, []DevNode{{ID: "n1", IPs: []net.IP{ip, net.ParseIP("127.0.0.1")}}, {ID: "n2"}}); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"ca.pem": 0o644, "ca-key.pem": 0o600, "n1.pem": 0o644, "n1-key.pem": 0o600, "n2.pem": 0o644, "n2-key.pem": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v; want %v", name, fi.Mode().Perm(), mode)
		}
	}
	f := DevFiles(dir, "n1")
	if f != (Files{Cert: filepath.Join(dir, "n1.pem"), Key: filepath.Join(dir, "n1-key.pem"), CA: filepath.Join(dir, "ca.pem")}) {
		t.Errorf("DevFiles = %+v", f)
	}
	leaf := source(t, f, nil).Leaf()
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key %T; want ECDSA P-256", leaf.PublicKey)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || !leaf.IPAddresses[1].Equal(ip) {
		t.Errorf("IP SANs %v; want 127.0.0.1 and %v once each", leaf.IPAddresses, ip)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "localhost" {
		t.Errorf("DNS SANs %v; want localhost", leaf.DNSNames)
	}
	if leaf.Subject.CommonName != "n1" {
		t.Errorf("subject %v", leaf.Subject)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 360*24*time.Hour || life > 370*24*time.Hour {
		t.Errorf("valid for %v; want about a year", life)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		pool, _, err := parseCA(f.CA, mustRead(t, f.CA))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}, DNSName: "127.0.0.21"}); err != nil {
			t.Errorf("usage %v: %v", usage, err)
		}
	}
	for _, id := range []string{"", "../x", "a/b", "ca", "ca-key", strings.Repeat("x", 65)} {
		if err := GenerateDev(t.TempDir(), []DevNode{{ID: id}}); err == nil {
			t.Errorf("GenerateDev accepted node ID %q", id)
		}
	}
	if err := IssueDev(t.TempDir(), DevNode{ID: "n3"}); err == nil || !strings.Contains(err.Error(), "ca.pem") {
		t.Errorf("IssueDev without a CA: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPeerHandshake: two nodes of one CA authenticate each other, each
// seeing the other's certificate.
func TestPeerHandshake(t *testing.T) {
	dir := devDir(t, "a", "b")
	a, b := source(t, DevFiles(dir, "a"), nil), source(t, DevFiles(dir, "b"), nil)
	srv, cli := handshake(t, b.PeerServer(), a.PeerClient())
	if srv.err != nil || cli.err != nil {
		t.Fatalf("server: %v; client: %v", srv.err, cli.err)
	}
	if srv.peer.Subject.CommonName != "a" || cli.peer.Subject.CommonName != "b" {
		t.Errorf("server saw %v, client saw %v", srv.peer.Subject, cli.peer.Subject)
	}
	// Peers are dialled by IP from gossip: no name is checked, whatever
	// address the server is reached at.
	if cli.peer.SerialNumber.Cmp(b.Leaf().SerialNumber) != 0 {
		t.Errorf("client saw serial %v; want %v", cli.peer.SerialNumber, b.Leaf().SerialNumber)
	}
}

// trustAll is s's peer client config with no verification of the server:
// to test what the server accepts.
func trustAll(s *Source) *tls.Config {
	cfg := s.PeerClient()
	cfg.VerifyConnection = nil
	return cfg
}

// TestOtherCAIsRefused: a certificate from another CA is refused by a
// peer server (as a client's) and by a peer client (as a server's), and
// a peer that presents no certificate is refused too.
func TestOtherCAIsRefused(t *testing.T) {
	dir, other := devDir(t, "a", "b"), devDir(t, "x")
	a, b, x := source(t, DevFiles(dir, "a"), nil), source(t, DevFiles(dir, "b"), nil), source(t, DevFiles(other, "x"), nil)

	srv, cli := handshake(t, b.PeerServer(), trustAll(x))
	if srv.err == nil || cli.err == nil {
		t.Fatalf("client of another CA: server: %v; client: %v; want both to fail", srv.err, cli.err)
	}
	var ua x509.UnknownAuthorityError
	if !errors.As(srv.err, &ua) && !strings.Contains(srv.err.Error(), "unknown authority") {
		t.Errorf("server's error %v; want an unknown authority", srv.err)
	}

	srv, cli = handshake(t, x.PeerServer(), a.PeerClient())
	if cli.err == nil || !strings.Contains(cli.err.Error(), "not valid for this cluster's CA") {
		t.Errorf("server of another CA: client: %v; want refused", cli.err)
	}
	if srv.err == nil {
		t.Error("server of another CA: its handshake succeeded")
	}

	noCert := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	if srv, cli = handshake(t, b.PeerServer(), noCert); srv.err == nil || cli.err == nil {
		t.Errorf("client without a certificate: server: %v; client: %v; want both to fail", srv.err, cli.err)
	}

	// Under TLS 1.2 too (the client learns of the refusal in its handshake).
	tls12 := a.PeerClient()
	tls12.MaxVersion = tls.VersionTLS12
	if srv, cli = handshake(t, b.PeerServer(), tls12); srv.err != nil || cli.err != nil {
		t.Errorf("TLS 1.2: server: %v; client: %v", srv.err, cli.err)
	}
	tls12 = x.PeerClient()
	tls12.MaxVersion = tls.VersionTLS12
	if srv, cli = handshake(t, b.PeerServer(), tls12); srv.err == nil || cli.err == nil {
		t.Errorf("TLS 1.2, client of another CA: server: %v; client: %v; want both to fail", srv.err, cli.err)
	}
}

// TestHTTPS: the client API's config serves HTTPS that Client and
// ClientConfig trust, verifying the IP the server is reached at; a
// client of another CA does not trust it.
func TestHTTPS(t *testing.T) {
	dir, other := devDir(t, "a"), devDir(t, "x")
	a := source(t, DevFiles(dir, "a"), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{
		TLSConfig: a.HTTPServer(),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.TLS == nil || len(r.TLS.PeerCertificates) != 0 {
				http.Error(w, "want TLS without a client certificate", 500)
			}
		}),
		ErrorLog: log.New(io.Discard, "", 0), // the refused clients' handshakes
	}
	served := make(chan error, 1)
	go func() { served <- hs.ServeTLS(ln, "", "") }()
	defer func() {
		_ = hs.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
	}()
	fromCA, err := ClientConfig(DevFiles(dir, "a").CA)
	if err != nil {
		t.Fatal(err)
	}
	get := func(cfg *tls.Config, url string) error {
		tr := &http.Transport{TLSClientConfig: cfg}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: patience}).Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			body, _ := io.ReadAll(resp.Body)
			return errors.New(resp.Status + ": " + string(body))
		}
		if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
			return errors.New("not TLS ≥ 1.2")
		}
		return nil
	}
	url := "https://" + ln.Addr().String() + "/"
	if err := get(a.Client(), url); err != nil {
		t.Errorf("Client: %v", err)
	}
	if err := get(fromCA, url); err != nil {
		t.Errorf("ClientConfig: %v", err)
	}
	x := source(t, DevFiles(other, "x"), nil)
	if err := get(x.Client(), url); err == nil {
		t.Error("a client of another CA trusted the server")
	}
	// The certificate names 127.0.0.1, not 127.0.0.2: reaching the same
	// listener under a name it does not carry fails verification.
	named := a.Client()
	named.ServerName = "example.com"
	if err := get(named, url); err == nil || !strings.Contains(err.Error(), "example.com") {
		t.Errorf("wrong server name: %v; want a verification error", err)
	}
}

// TestReload: a rotated certificate is served by new handshakes after
// Reload (not before); files that do not load leave the previous
// material in use, with an error naming the file.
func TestReload(t *testing.T) {
	dir := devDir(t, "a", "b")
	a, b := source(t, DevFiles(dir, "a"), nil), source(t, DevFiles(dir, "b"), nil)
	old := b.Leaf().SerialNumber
	if err := IssueDev(dir, DevNode{ID: "b"}); err != nil {
		t.Fatal(err)
	}
	if _, cli := handshake(t, b.PeerServer(), a.PeerClient()); cli.err != nil || cli.peer.SerialNumber.Cmp(old) != 0 {
		t.Fatalf("before Reload: serial %v, %v; want the old %v", cli.peer.SerialNumber, cli.err, old)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	rotated := b.Leaf().SerialNumber
	if rotated.Cmp(old) == 0 {
		t.Fatal("Reload kept the old certificate")
	}
	for _, cfg := range []*tls.Config{b.PeerServer(), b.HTTPServer()} {
		if _, cli := handshake(t, cfg, a.PeerClient()); cli.err != nil || cli.peer.SerialNumber.Cmp(rotated) != 0 {
			t.Errorf("after Reload: serial %v, %v; want the new %v", cli.peer.SerialNumber, cli.err, rotated)
		}
	}
	// The client side presents the rotated certificate too.
	if srv, _ := handshake(t, a.PeerServer(), b.PeerClient()); srv.err != nil || srv.peer.SerialNumber.Cmp(rotated) != 0 {
		t.Errorf("b as a client: serial %v, %v; want %v", srv.peer.SerialNumber, srv.err, rotated)
	}

	files := DevFiles(dir, "b")
	good := mustRead(t, files.Cert)
	for _, tc := range []struct {
		name, path string
		data       []byte
		errHas     []string
	}{
		{"garbage certificate", files.Cert, []byte("not a certificate"), []string{files.Cert}},
		{"certificate of another key", files.Cert, mustRead(t, DevFiles(dir, "a").Cert), []string{files.Cert, files.Key}},
		{"truncated key", files.Key, mustRead(t, files.Key)[:40], []string{files.Key}},
		{"CA without a certificate", files.CA, []byte("-----BEGIN NOTHING-----\n-----END NOTHING-----\n"), []string{files.CA}},
		{"CA of another cluster", files.CA, mustRead(t, DevFiles(devDir(t, "x"), "x").CA), []string{files.Cert, files.CA, "unknown authority"}},
		{"missing file", files.Cert, nil, []string{files.Cert}},
	} {
		prev := mustRead(t, tc.path)
		if tc.data == nil {
			if err := os.Remove(tc.path); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(tc.path, tc.data, 0o600); err != nil {
			t.Fatal(err)
		}
		err := b.Reload()
		if err == nil {
			t.Errorf("%s: Reload succeeded", tc.name)
		}
		for _, s := range tc.errHas {
			if err != nil && !strings.Contains(err.Error(), s) {
				t.Errorf("%s: Reload: %v; want it to name %s", tc.name, err, s)
			}
		}
		if _, cli := handshake(t, b.PeerServer(), a.PeerClient()); cli.err != nil || cli.peer.SerialNumber.Cmp(rotated) != 0 {
			t.Errorf("%s: handshake after the failed Reload: serial %v, %v; want the previous %v", tc.name, cli.peer.SerialNumber, cli.err, rotated)
		}
		if err := os.WriteFile(tc.path, prev, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(mustRead(t, files.Cert), good) || b.Reload() != nil {
		t.Fatal("the restored files do not load")
	}
}

// TestReloadCA: the CA pool is read at each handshake: a client of
// another CA is refused until the server's CA file also holds that CA
// and is reloaded.
func TestReloadCA(t *testing.T) {
	dir, other := devDir(t, "b"), devDir(t, "x")
	b, x := source(t, DevFiles(dir, "b"), nil), source(t, DevFiles(other, "x"), nil)
	if srv, _ := handshake(t, b.PeerServer(), trustAll(x)); srv.err == nil {
		t.Fatal("a client of another CA was accepted")
	}
	ca := DevFiles(dir, "b").CA
	bundle := append(mustRead(t, ca), mustRead(t, DevFiles(other, "x").CA)...)
	if err := os.WriteFile(ca, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if srv, _ := handshake(t, b.PeerServer(), trustAll(x)); srv.err != nil || srv.peer.Subject.CommonName != "x" {
		t.Fatalf("after adding its CA: %v", srv.err)
	}
	// And the peer client verifies servers against the bundle too.
	if _, cli := handshake(t, x.PeerServer(), b.PeerClient()); cli.err == nil {
		// x does not trust b's CA, so x's server refuses b; b's client
		// side must have accepted x's certificate to get that far.
		t.Fatal("x's server accepted a client of a CA it does not trust")
	} else if strings.Contains(cli.err.Error(), "not valid for this cluster's CA") {
		t.Fatalf("b's client refused x's server after adding x's CA: %v", cli.err)
	}
}

// logRecorder is a slog handler that keeps every record's message.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

func (r *logRecorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds, failing t after patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(patience); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", patience, what)
		}
	}
}

// TestWatch: Watch reloads files that changed, keeps the previous
// material for files that do not load (reporting them once), and
// returns when its context ends.
func TestWatch(t *testing.T) {
	dir := devDir(t, "b")
	rec := &logRecorder{}
	b := source(t, DevFiles(dir, "b"), slog.New(rec))
	ctx, cancel := context.WithCancel(context.Background())
	watching := make(chan struct{})
	go func() { defer close(watching); b.Watch(ctx, 5*time.Millisecond) }()
	defer func() { cancel(); <-watching }()

	old := b.Leaf().SerialNumber
	if err := IssueDev(dir, DevNode{ID: "b"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rotated certificate", func() bool { return b.Leaf().SerialNumber.Cmp(old) != 0 })
	rotated := b.Leaf().SerialNumber
	if n := rec.count("tls: certificates reloaded"); n != 1 {
		t.Errorf("%d reloads logged; want 1", n)
	}

	cert := DevFiles(dir, "b").Cert
	good := mustRead(t, cert)
	if err := os.WriteFile(cert, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// (The rotation above may have been seen half done, which counts as
	// a failure of its own.)
	const failed = "tls: reload failed; keeping the previous certificates"
	before := rec.count(failed)
	waitFor(t, "the failed reload", func() bool { return rec.count(failed) > before })
	// Later polls see the same broken file and neither reload nor log.
	polls := b.polls.Load()
	waitFor(t, "more polls", func() bool { return b.polls.Load() >= polls+3 })
	if n := rec.count(failed) - before; n != 1 {
		t.Errorf("the broken file was reported %d times; want once", n)
	}
	if b.Leaf().SerialNumber.Cmp(rotated) != 0 {
		t.Fatal("a broken file replaced the current certificate")
	}
	// Fixed: the next change loads.
	if err := os.WriteFile(cert, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := IssueDev(dir, DevNode{ID: "b"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second rotation", func() bool { return b.Leaf().SerialNumber.Cmp(rotated) != 0 })
	cancel()
	select {
	case <-watching:
	case <-time.After(patience):
		t.Fatal("Watch did not return after its context ended")
	}
}

// TestSelfCheck: a Source refuses a certificate its CA did not sign, or
// one that does not allow client authentication, at start as at reload.
func TestSelfCheck(t *testing.T) {
	dir, other := devDir(t, "a"), devDir(t, "x")
	f := DevFiles(dir, "a")
	f.CA = DevFiles(other, "x").CA
	if _, err := NewSource(f, nil); err == nil || !strings.Contains(err.Error(), f.Cert) {
		t.Errorf("certificate of another CA: %v", err)
	}
	// A server-only certificate signed by the right CA.
	ca, caKey, err := loadDevCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{NotBefore: ca.NotBefore, NotAfter: ca.NotAfter, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := sign(tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f = DevFiles(dir, "a")
	if err := os.WriteFile(f.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewSource(f, nil); err == nil || !strings.Contains(err.Error(), "client authentication") {
		t.Errorf("server-only certificate: %v", err)
	}
}
