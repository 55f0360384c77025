package transport

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dotkv/dotkv/certs"
)

// devSources generates a dev CA and certificates for ids and returns a
// Source per node.
func devSources(t testing.TB, ids ...string) (string, map[string]*certs.Source) {
	t.Helper()
	dir := t.TempDir()
	nodes := make([]certs.DevNode, len(ids))
	for i, id := range ids {
		nodes[i] = certs.DevNode{ID: id}
	}
	if err := certs.GenerateDev(dir, nodes); err != nil {
		t.Fatal(err)
	}
	srcs := map[string]*certs.Source{}
	for _, id := range ids {
		s, err := certs.NewSource(certs.DevFiles(dir, id), nil)
		if err != nil {
			t.Fatal(err)
		}
		srcs[id] = s
	}
	return dir, srcs
}

// tlsServer starts node b's RPC server over TLS with src; its "echo"
// handler counts its calls.
func tlsServer(t *testing.T, src *certs.Source, log *slog.Logger) (*Server, *atomic.Int32) {
	t.Helper()
	srv, err := NewServer("b", "127.0.0.1:0", nil, log, WithTLS(src.PeerServer()))
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	srv.Handle("echo", func(_ context.Context, from string, req []byte) ([]byte, error) {
		calls.Add(1)
		return append([]byte(from+":"), req...), nil
	})
	srv.Serve()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return srv, &calls
}

// clientOf returns a client of node a calling srv as node b.
func clientOf(t *testing.T, srv *Server, opts ...Option) *Client {
	t.Helper()
	addr := srv.Addr()
	cli := NewClient("a", "", nil, func(id string) (string, bool) { return addr, id == "b" }, opts...)
	t.Cleanup(cli.Close)
	return cli
}

// selfSigned is a self-signed certificate for both server and client
// authentication.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "a"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:         true, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestTLSCall: a client with a certificate from the cluster CA calls a
// method over mutual TLS (1.3, and 1.2).
func TestTLSCall(t *testing.T) {
	_, src := devSources(t, "a", "b")
	srv, calls := tlsServer(t, src["b"], nil)
	tls12 := src["a"].PeerClient()
	tls12.MaxVersion = tls.VersionTLS12
	for i, cfg := range []*tls.Config{src["a"].PeerClient(), tls12} {
		cli := clientOf(t, srv, WithTLS(cfg))
		got, err := callB(cli, "echo")
		if err != nil || string(got) != "a:hi" {
			t.Fatalf("config %d: echo = %q, %v; want a:hi", i, got, err)
		}
	}
	if calls.Load() != 2 || srv.TLSRefused() != 0 {
		t.Fatalf("%d calls, %d refused; want 2 and 0", calls.Load(), srv.TLSRefused())
	}
}

// levelCounter is a slog handler counting records per level.
type levelCounter struct {
	mu     sync.Mutex
	levels map[slog.Level]int
}

func (h *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if strings.Contains(r.Message, "TLS handshake") {
		h.levels[r.Level]++
	}
	return nil
}
func (h *levelCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelCounter) WithGroup(string) slog.Handler      { return h }
func (h *levelCounter) count(l slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.levels[l]
}

// TestTLSRefusesCallersWithoutClusterCertificate: callers without a
// certificate from the cluster CA (none, self-signed, another CA's, not
// TLS at all), and a client that does not trust the server's CA, reach no
// handler; the TLS callers' calls fail as not delivered. The refusals
// are logged at debug level, and at warn level at most once a minute.
func TestTLSRefusesCallersWithoutClusterCertificate(t *testing.T) {
	start := time.Now()
	_, src := devSources(t, "a", "b")
	_, other := devSources(t, "x")
	logs := &levelCounter{levels: map[slog.Level]int{}}
	srv, calls := tlsServer(t, src["b"], slog.New(logs))

	trustAny := func(cert *tls.Certificate) *tls.Config {
		cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		return cfg
	}
	own := selfSigned(t)
	otherCert := func() *tls.Certificate {
		c, err := other["x"].PeerClient().GetClientCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}()
	tls12 := func(cfg *tls.Config) *tls.Config { cfg.MaxVersion = tls.VersionTLS12; return cfg }
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"no certificate", trustAny(nil)},
		{"self-signed", trustAny(&own)},
		{"another CA's", trustAny(otherCert)},
		{"another CA's, TLS 1.2", tls12(trustAny(otherCert))},
		{"another CA's, not trusting the server", other["x"].PeerClient()},
	} {
		cli := clientOf(t, srv, WithTLS(tc.cfg))
		_, err := callB(cli, "echo")
		if err == nil || !NotDelivered(err) {
			t.Errorf("%s: err = %v, NotDelivered = %v; want a not-delivered error", tc.name, err, NotDelivered(err))
		}
	}
	// Without TLS: the server reads no frame from it. (The client cannot
	// tell what the server made of its request.)
	if _, err := callB(clientOf(t, srv), "echo"); err == nil {
		t.Error("a plain client's call succeeded")
	}
	// The server may close the connection as soon as it reads the first
	// bytes, so the writes may fail: only what it answers matters.
	nc, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := outFrame{kind: frameRequest, id: 1, method: "echo", payload: []byte("raw")}
	raw := append(appendHeader(nil, &outFrame{kind: frameHello, payload: helloPayload("a")}), helloPayload("a")...)
	raw = append(appendHeader(raw, &req), req.payload...)
	_, _ = nc.Write(raw)
	if f, err := readFrame(bufio.NewReader(nc)); err == nil {
		t.Errorf("a plain caller got a frame: %+v", f)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("handlers ran %d times for callers without a valid certificate", n)
	}
	// Every caller above fails the server's handshake (the client that
	// refuses the server aborts it): 5 TLS clients, the plain client (one
	// dial or two) and the raw connection. The server counts each after
	// its caller may have returned.
	const want = 7
	for deadline := time.Now().Add(time.Minute); srv.TLSRefused() < want || uint64(logs.count(slog.LevelDebug)) != srv.TLSRefused(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d refusals counted, %d logged at debug level; want at least %d, each logged", srv.TLSRefused(), logs.count(slog.LevelDebug), want)
		}
	}
	if w, most := logs.count(slog.LevelWarn), 1+int(time.Since(start)/refusedWarnEvery); w < 1 || w > most {
		t.Errorf("%d refusals logged at warn level; want 1 to %d", w, most)
	}
	// The server still serves a member.
	if got, err := callB(clientOf(t, srv, WithTLS(src["a"].PeerClient())), "echo"); err != nil || string(got) != "a:hi" {
		t.Fatalf("member after the refusals: %q, %v", got, err)
	}
}

// TestTLSClientRefusesOtherServers: a plain server, or one with a
// certificate from another CA, is not called; the calls are not
// delivered.
func TestTLSClientRefusesOtherServers(t *testing.T) {
	_, src := devSources(t, "a")
	_, other := devSources(t, "b")
	otherSrv, otherCalls := tlsServer(t, other["b"], nil)
	plain, err := NewServer("b", "127.0.0.1:0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var plainCalls atomic.Int32
	plain.Handle("echo", func(context.Context, string, []byte) ([]byte, error) { plainCalls.Add(1); return nil, nil })
	plain.Serve()
	defer plain.Close()
	for name, srv := range map[string]*Server{"another CA's": otherSrv, "plain": plain} {
		_, err := callB(clientOf(t, srv, WithTLS(src["a"].PeerClient())), "echo")
		if err == nil || !NotDelivered(err) {
			t.Errorf("%s server: err = %v, NotDelivered = %v; want a not-delivered error", name, err, NotDelivered(err))
		}
	}
	if otherCalls.Load() != 0 || plainCalls.Load() != 0 {
		t.Fatalf("handlers ran: %d, %d", otherCalls.Load(), plainCalls.Load())
	}
}

// TestTLSServerRotation: after the server's certificate is rotated and
// reloaded, new connections get the new certificate; the established one
// keeps working.
func TestTLSServerRotation(t *testing.T) {
	dir, src := devSources(t, "a", "b")
	srv, _ := tlsServer(t, src["b"], nil)
	// seen records the serial of each server certificate a's clients see.
	var (
		mu   sync.Mutex
		seen []*big.Int
	)
	client := func() *Client {
		cfg := src["a"].PeerClient()
		verify := cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			mu.Lock()
			seen = append(seen, cs.PeerCertificates[0].SerialNumber)
			mu.Unlock()
			return verify(cs)
		}
		return clientOf(t, srv, WithTLS(cfg))
	}
	last := func() *big.Int {
		mu.Lock()
		defer mu.Unlock()
		return seen[len(seen)-1]
	}
	first := client()
	if _, err := callB(first, "echo"); err != nil {
		t.Fatal(err)
	}
	old := src["b"].Leaf().SerialNumber
	if last().Cmp(old) != 0 {
		t.Fatalf("client saw serial %v; want %v", last(), old)
	}
	if err := certs.IssueDev(dir, certs.DevNode{ID: "b"}); err != nil {
		t.Fatal(err)
	}
	if err := src["b"].Reload(); err != nil {
		t.Fatal(err)
	}
	rotated := src["b"].Leaf().SerialNumber
	if _, err := callB(client(), "echo"); err != nil {
		t.Fatal(err)
	}
	if last().Cmp(rotated) != 0 || rotated.Cmp(old) == 0 {
		t.Fatalf("new connection saw serial %v; want the rotated %v (old %v)", last(), rotated, old)
	}
	if _, err := callB(first, "echo"); err != nil {
		t.Fatalf("the connection made before the rotation: %v", err)
	}
}

// TestTLSHandshakeIsNotInTheAcceptLoop: a connection that never starts
// its handshake does not hold up others.
func TestTLSHandshakeIsNotInTheAcceptLoop(t *testing.T) {
	_, src := devSources(t, "a", "b")
	srv, _ := tlsServer(t, src["b"], nil)
	silent, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if got, err := clientOf(t, srv, WithTLS(src["a"].PeerClient())).Call(ctx, "b", "echo", []byte("hi")); err != nil || string(got) != "a:hi" {
		t.Fatalf("call beside a silent connection: %q, %v", got, err)
	}
}

// TestTLSServerConfigIsChecked: a server config without a certificate,
// or one that does not verify callers' certificates, is refused.
func TestTLSServerConfigIsChecked(t *testing.T) {
	_, src := devSources(t, "b")
	for name, cfg := range map[string]*tls.Config{
		"client config":    src["b"].PeerClient(),
		"HTTPS config":     src["b"].HTTPServer(),
		"any client cert":  {GetCertificate: src["b"].HTTPServer().GetCertificate, ClientAuth: tls.RequireAnyClientCert},
		"no certificate":   {ClientAuth: tls.RequireAndVerifyClientCert},
		"optional cert":    {GetCertificate: src["b"].HTTPServer().GetCertificate, ClientAuth: tls.VerifyClientCertIfGiven},
		"requested, as is": {GetCertificate: src["b"].HTTPServer().GetCertificate, ClientAuth: tls.RequestClientCert},
	} {
		if srv, err := NewServer("b", "127.0.0.1:0", nil, nil, WithTLS(cfg)); err == nil {
			_ = srv.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestTLSRefusalIsNotDelivered: with TLS 1.3 the client's
// handshake completes before the server checks its certificate; the
// client learns of the refusal while waiting for the server's hello, so
// no request was written.
func TestTLSRefusalIsNotDelivered(t *testing.T) {
	_, src := devSources(t, "b")
	_, other := devSources(t, "a")
	srv, calls := tlsServer(t, src["b"], nil)
	cfg := other["a"].PeerClient()
	cfg.VerifyConnection = nil // trusts the server, whose CA it does not know
	cfg.MinVersion = tls.VersionTLS13
	cli := clientOf(t, srv, WithTLS(cfg))
	_, err := callB(cli, "echo")
	if err == nil || !NotDelivered(err) || !errors.Is(err, errNotSent) {
		t.Fatalf("err = %v; want not sent", err)
	}
	if !strings.Contains(err.Error(), "server's hello") {
		t.Errorf("err = %v; want the refusal seen while waiting for the server's hello", err)
	}
	if calls.Load() != 0 {
		t.Fatal("the handler ran")
	}
}

// TestTLSHandshakeIsBounded: a connection that does not complete its
// handshake within the hello timeout is closed, and counted as refused.
func TestTLSHandshakeIsBounded(t *testing.T) {
	_, src := devSources(t, "b")
	srv, err := NewServer("b", "127.0.0.1:0", nil, nil, WithTLS(src["b"].PeerServer()))
	if err != nil {
		t.Fatal(err)
	}
	srv.helloTimeout = 50 * time.Millisecond
	srv.Serve()
	defer srv.Close()
	silent, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	_ = silent.SetReadDeadline(time.Now().Add(time.Minute)) // a failure, not a hang
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Fatal("the server wrote to a connection that sent nothing")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept a silent connection for a minute")
	}
	for deadline := time.Now().Add(time.Minute); srv.TLSRefused() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d refusals counted; want 1", srv.TLSRefused())
		}
	}
}

// TestTLSBlockedCallerIsNotAnswered: a server whose filter blocks the
// caller drops the connection after its hello, without answering it: the
// TLS caller's dial fails and its call was not delivered.
func TestTLSBlockedCallerIsNotAnswered(t *testing.T) {
	_, src := devSources(t, "a", "b")
	fb := NewFilter(nil)
	fb.Block("a")
	srv, err := NewServer("b", "127.0.0.1:0", fb, nil, WithTLS(src["b"].PeerServer()))
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	srv.Handle("echo", func(context.Context, string, []byte) ([]byte, error) { calls.Add(1); return nil, nil })
	srv.Serve()
	defer srv.Close()
	cli := clientOf(t, srv, WithTLS(src["a"].PeerClient()))
	if _, err := callB(cli, "echo"); err == nil || !NotDelivered(err) {
		t.Fatalf("blocked caller: err = %v, NotDelivered = %v; want not delivered", err, NotDelivered(err))
	}
	fb.Heal()
	if _, err := callB(cli, "echo"); err != nil || calls.Load() != 1 {
		t.Fatalf("after healing: %v, %d calls", err, calls.Load())
	}
}
