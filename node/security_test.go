package node_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/certs"
	"github.com/dotkv/dotkv/gossip"
	"github.com/dotkv/dotkv/node"
	"github.com/dotkv/dotkv/repair"
	"github.com/dotkv/dotkv/transport"
)

// Tokens of the secure cluster's token file.
const (
	readToken  = "read-token-0123456789"
	writeToken = "write-token-0123456789"
	adminToken = "admin-token-0123456789"
)

// secureCluster is three nodes on real sockets (127.0.251.x) with TLS,
// access tokens and gossip encryption on, as `dotkv server` runs them
// with --tls-*, --auth-token-file and --gossip-key-file.
type secureCluster struct {
	t      *testing.T
	dir    string
	nodes  []*node.Node
	cfgs   []node.Config
	client *http.Client // trusts the cluster CA
	logs   []*lineLog
}

func newSecureCluster(t *testing.T) *secureCluster {
	t.Helper()
	c := &secureCluster{t: t, dir: t.TempDir()}
	var devs []certs.DevNode
	for i := range 3 {
		devs = append(devs, certs.DevNode{ID: fmt.Sprintf("n%d", i+1), IPs: []net.IP{net.ParseIP(fmt.Sprintf("127.0.251.%d", 11+i))}})
	}
	if err := certs.GenerateDev(filepath.Join(c.dir, "tls"), devs); err != nil {
		t.Fatal(err)
	}
	c.writeFile("tokens", "# roles\nread "+readToken+"\nwrite "+writeToken+"\nadmin "+adminToken+"\n")
	key, err := gossip.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	c.writeFile("gossip.key", key+"\n")
	conf, err := certs.ClientConfig(certs.DevFiles(filepath.Join(c.dir, "tls"), "n1").CA)
	if err != nil {
		t.Fatal(err)
	}
	c.client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: conf}}
	t.Cleanup(c.client.CloseIdleConnections)
	var seed string
	for i, d := range devs {
		ip := d.IPs[0].String()
		log := &lineLog{}
		cfg := node.Config{
			ID: d.ID, DataDir: "data", FS: vfs.NewMem(), FastGossip: true, Fsync: 0,
			HTTPAddr: ip + ":0", GossipAddr: ip + ":0", RPCAddr: ip + ":0",
			TLS:           certs.DevFiles(filepath.Join(c.dir, "tls"), d.ID),
			AuthTokenFile: filepath.Join(c.dir, "tokens"),
			GossipKeyFile: filepath.Join(c.dir, "gossip.key"),
			Logger:        slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		}
		if i == 0 {
			cfg.AdminHTTPAddr = ip + ":0"
			cfg.NewCluster = true
		} else {
			cfg.Join = []string{seed}
		}
		n, err := node.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		if i == 0 {
			seed = n.GossipAddr()
		}
		c.nodes, c.cfgs, c.logs = append(c.nodes, n), append(c.cfgs, cfg), append(c.logs, log)
	}
	waitFor(t, "every node to see the three members alive", func() bool {
		for _, n := range c.nodes {
			if !n.Membership().Ready() || len(n.Membership().View().Members()) != 3 {
				return false
			}
			for _, m := range devs {
				if n.Membership().Liveness(m.ID) != gossip.Alive {
					return false
				}
			}
		}
		return true
	})
	return c
}

func (c *secureCluster) writeFile(name, content string) {
	c.t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, name), []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// do sends a request to node i's client API over HTTPS with token ("":
// none) and returns the status and body.
func (c *secureCluster) do(i int, method, path, token, body string) (int, string) {
	c.t.Helper()
	return doWith(c.t, c.client, method, "https://"+c.nodes[i].HTTPAddr()+path, token, body)
}

func doWith(t *testing.T, client *http.Client, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// lineLog is a concurrency-safe log sink a test can search.
type lineLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lineLog) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), substr)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSecureCluster: with TLS, tokens and gossip encryption on, a client
// that trusts the CA and holds a token reads and writes at w=all (so the
// internode RPC works over mutual TLS); plain HTTP is refused; no token
// is 401 and a read token writing 403; /debug/ and /admin/ live on the
// admin address alone; a reloaded token file takes effect.
func TestSecureCluster(t *testing.T) {
	c := newSecureCluster(t)

	// Plain HTTP to the HTTPS port is refused, and stores nothing.
	plain := &http.Client{Timeout: time.Minute}
	defer plain.CloseIdleConnections()
	if code, body := doWith(t, plain, http.MethodPut, "http://"+c.nodes[0].HTTPAddr()+"/kv/plain", writeToken, "x"); code < 400 {
		t.Fatalf("plain HTTP PUT: %d %s", code, body)
	}
	// A client that does not trust the CA cannot connect.
	untrusting := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}}
	defer untrusting.CloseIdleConnections()
	if _, err := untrusting.Get("https://" + c.nodes[0].HTTPAddr() + "/healthz"); err == nil {
		t.Fatal("a client that does not trust the CA connected")
	}

	if code, _ := c.do(0, http.MethodGet, "/healthz", "", ""); code != http.StatusOK {
		t.Fatalf("/healthz without a token: %d; want 200", code)
	}
	if code, body := c.do(0, http.MethodPut, "/kv/k", "", "v"); code != http.StatusUnauthorized {
		t.Fatalf("PUT without a token: %d %s; want 401", code, body)
	}
	if code, body := c.do(1, http.MethodPut, "/kv/k", readToken, "v"); code != http.StatusForbidden {
		t.Fatalf("PUT with a read token: %d %s; want 403", code, body)
	}
	if code, body := c.do(2, http.MethodPut, "/kv/k?w=all", writeToken, "v1"); code != http.StatusNoContent {
		t.Fatalf("PUT w=all with a write token: %d %s", code, body)
	}
	for i := range c.nodes {
		if code, body := c.do(i, http.MethodGet, "/kv/k?r=all", readToken, ""); code != http.StatusOK || body != "v1" {
			t.Fatalf("GET r=all through n%d with a read token: %d %q", i+1, code, body)
		}
	}
	if code, _ := c.do(0, http.MethodGet, "/kv/plain?r=all", readToken, ""); code != http.StatusNotFound {
		t.Fatalf("the plain HTTP PUT was stored: GET answers %d", code)
	}

	// An RPC peer without a certificate of the cluster CA calls nothing:
	// neither over plain TCP nor with a certificate of another CA.
	rogueDir := filepath.Join(c.dir, "rogue")
	if err := certs.GenerateDev(rogueDir, []certs.DevNode{{ID: "n9", IPs: []net.IP{net.ParseIP("127.0.251.19")}}}); err != nil {
		t.Fatal(err)
	}
	rogue, err := certs.NewSource(certs.DevFiles(rogueDir, "n9"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rpcAddr := c.nodes[0].RPCAddr()
	resolve := func(string) (string, bool) { return rpcAddr, true }
	// (A plain client cannot tell that the server refused its request, so
	// its failure is "outcome unknown"; one with a certificate learns it
	// from the handshake.)
	for _, x := range []struct {
		name         string
		opt          transport.Option
		notDelivered bool
	}{
		{"plain TCP", transport.WithTLS(nil), false},
		{"a certificate of another CA", transport.WithTLS(rogue.PeerClient()), true},
	} {
		cl := transport.NewClient("n2", "127.0.251.19", nil, resolve, x.opt)
		for _, method := range []string{"read", repair.MethodMergeStates} {
			_, err := cl.Call(context.Background(), "n1", method, nil)
			if err == nil || (x.notDelivered && !transport.NotDelivered(err)) {
				t.Errorf("RPC %s with %s: err %v; want a failure (not delivered: %v)", method, x.name, err, x.notDelivered)
			}
		}
		cl.Close()
	}
	if code, body := c.do(0, http.MethodGet, "/metrics", readToken, ""); code != http.StatusOK ||
		!strings.Contains(body, "dotkv_rpc_tls_refused_total") || strings.Contains(body, "dotkv_rpc_tls_refused_total 0\n") {
		t.Errorf("/metrics does not count the refused handshakes: %d", code)
	}

	// /debug/ and /admin/ are served on the admin address only, to admins.
	if code, _ := c.do(0, http.MethodGet, "/debug/pprof/", adminToken, ""); code != http.StatusNotFound {
		t.Fatalf("/debug/pprof/ on the client address: %d; want 404", code)
	}
	admin := "https://" + c.nodes[0].AdminHTTPAddr()
	if code, _ := doWith(t, c.client, http.MethodGet, admin+"/debug/pprof/", writeToken, ""); code != http.StatusForbidden {
		t.Fatalf("/debug/pprof/ on the admin address with a write token: %d; want 403", code)
	}
	if code, _ := doWith(t, c.client, http.MethodGet, admin+"/debug/pprof/", adminToken, ""); code != http.StatusOK {
		t.Fatalf("/debug/pprof/ on the admin address with an admin token: %d; want 200", code)
	}

	// A new token file, reloaded (SIGHUP): the write token is gone, a new one works.
	c.writeFile("tokens", "read "+readToken+"\nwrite new-write-token-0123456789\nadmin "+adminToken+"\n")
	for _, n := range c.nodes {
		if err := n.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	if code, _ := c.do(0, http.MethodPut, "/kv/k", writeToken, "v2"); code != http.StatusUnauthorized {
		t.Fatalf("PUT with a removed token after reload: %d; want 401", code)
	}
	if code, body := c.do(0, http.MethodPut, "/kv/k2?w=all", "new-write-token-0123456789", "v"); code != http.StatusNoContent {
		t.Fatalf("PUT with the new token after reload: %d %s", code, body)
	}
	// A broken file keeps the tokens in use.
	c.writeFile("tokens", "superuser nope\n")
	if err := c.nodes[0].Reload(); err == nil {
		t.Fatal("reload of a broken token file succeeded")
	}
	if code, _ := c.do(0, http.MethodGet, "/kv/k2", readToken, ""); code != http.StatusOK {
		t.Fatalf("GET after a failed reload: %d; want 200 (old tokens kept)", code)
	}
}

// TestNodeWithAnotherGossipKeyCannotJoin: a node whose gossip key is not
// the cluster's is refused at every attempt and never becomes a member,
// nor ready. Once the cluster has rotated to its key (key files rewritten
// and reloaded, as on SIGHUP: [old new], [new old], [new]), it joins.
func TestNodeWithAnotherGossipKeyCannotJoin(t *testing.T) {
	c := newSecureCluster(t)
	oldKey, err := os.ReadFile(filepath.Join(c.dir, "gossip.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := gossip.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	c.writeFile("other.key", key+"\n")
	ip := "127.0.251.14"
	if err := certs.IssueDev(filepath.Join(c.dir, "tls"), certs.DevNode{ID: "n4", IPs: []net.IP{net.ParseIP(ip)}}); err != nil {
		t.Fatal(err)
	}
	cfg := c.cfgs[1]
	cfg.ID, cfg.FS, cfg.Join, cfg.NewCluster = "n4", vfs.NewMem(), []string{c.nodes[0].GossipAddr()}, false
	cfg.HTTPAddr, cfg.GossipAddr, cfg.RPCAddr = ip+":0", ip+":0", ip+":0"
	cfg.TLS = certs.DevFiles(filepath.Join(c.dir, "tls"), "n4")
	cfg.GossipKeyFile = filepath.Join(c.dir, "other.key")
	log := &lineLog{}
	cfg.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n4, err := node.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n4.Close()
	waitFor(t, "n4 to be refused three times and to say why", func() bool {
		return log.count("rejoin failed") >= 3 && log.count("gossips under another key") >= 1
	})
	if n4.Membership().Ready() {
		t.Fatal("n4, under another gossip key, is ready")
	}
	for i, n := range c.nodes {
		if _, ok := n.Membership().Member("n4"); ok || len(n.Membership().View().Members()) != 3 {
			t.Fatalf("n%d lists n4 (under another gossip key): %v", i+1, n.Membership().View().Members())
		}
	}
	if code, body := doWith(t, c.client, http.MethodGet, "https://"+n4.HTTPAddr()+"/kv/k", readToken, ""); code != http.StatusServiceUnavailable {
		t.Fatalf("GET through n4: %d %s; want 503 (not ready)", code, body)
	}

	old := strings.TrimSpace(string(oldKey))
	for _, keys := range []string{old + "\n" + key, key + "\n" + old, key} {
		c.writeFile("gossip.key", keys+"\n")
		for _, n := range c.nodes {
			if err := n.Reload(); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "n4 to join once the cluster uses its key", func() bool {
		_, ok := c.nodes[0].Membership().Member("n4")
		return ok && n4.Membership().Ready()
	})
}
