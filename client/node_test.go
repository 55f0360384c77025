package client_test

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/auth"
	"github.com/dotkv/dotkv/handoff"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/transport"
	"github.com/dotkv/dotkv/versioning"
)

// testNode is one dotkv node built from real parts, as api's tests build
// them: pebble on an in-memory filesystem, replica.Local, the api handler,
// served by httptest on 127.0.0.1.
type testNode struct {
	URL     string
	srv     *httptest.Server
	store   *storage.Store
	backend *replica.Coordinator
}

// nodeOptions adjust a test node.
type nodeOptions struct {
	// limits bound the records of client writes (zero: the defaults).
	limits storage.Limits
	// maxValue is api.Config.MaxValue (0: the default).
	maxValue int64
	// tokens, if not "", is an auth token file: access control on.
	tokens string
	// withCluster fills /cluster/status with a transfer, hints and Merkle
	// roots, and turns fault injection on.
	withCluster bool
	// tls serves HTTPS (httptest's certificate).
	tls bool
}

// testSecret signs the contexts of every test node.
var testSecret = func() *versioning.ContextKeys {
	k, err := versioning.NewContextKeys([]byte("client test cluster secret, 32 b"))
	if err != nil {
		panic(err)
	}
	return k
}()

// startNode starts a node; stop it with close. It panics on failure, so
// that examples can use it too.
func startNode(o nodeOptions) *testNode {
	store, err := storage.Open("db", storage.Options{NodeID: "n1", FS: vfs.NewMem(), CacheSize: 1 << 20, MemTableSize: 1 << 20, Limits: o.limits})
	if err != nil {
		panic(err)
	}
	backend, err := replica.NewLocal("n1", store, replica.Config{})
	if err != nil {
		panic(err)
	}
	cfg := api.Config{
		NodeID: "n1", MaxValue: o.maxValue, Cluster: api.SingleNode("n1", "127.0.0.1:8080", backend.View()),
		ContextKeys: func() *versioning.ContextKeys { return testSecret },
	}
	if o.tokens != "" {
		toks, err := auth.Parse(strings.NewReader(o.tokens))
		if err != nil {
			panic(err)
		}
		cfg.Auth = toks
	}
	if o.withCluster {
		cfg.Transfers = fakeTransfers{}
		cfg.Hints = fakeHints{}
		cfg.AAE = fakeAAE{}
		cfg.Faults = transport.NewFilter(nil)
	}
	srv := httptest.NewUnstartedServer(api.New(backend, cfg))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused TLS handshakes
	if o.tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	return &testNode{URL: srv.URL, srv: srv, store: store, backend: backend}
}

// newNode starts a node that is stopped at the end of the test.
func newNode(t *testing.T, o nodeOptions) *testNode {
	t.Helper()
	n := startNode(o)
	t.Cleanup(n.close)
	return n
}

func (n *testNode) close() {
	if n.srv == nil {
		return
	}
	n.srv.Close()
	n.backend.Close()
	if err := n.store.Close(); err != nil {
		panic(err)
	}
	n.srv = nil
}

type fakeTransfers struct{}

func (fakeTransfers) Transfers() []handoff.Transfer {
	return []handoff.Transfer{{Partition: 7, From: "n2", To: "n1", State: "running", Keys: 12, Bytes: 3456}}
}

type fakeHints struct{}

func (fakeHints) HintCounts() map[string]int { return map[string]int{"n3": 4} }

type fakeAAE struct{}

func (fakeAAE) Roots(parts []uint32) []uint64 {
	out := make([]uint64, len(parts))
	for i, p := range parts {
		out[i] = uint64(p) * 0x9e3779b97f4a7c15
	}
	return out
}

// closedURL returns the URL of a loopback port nobody listens on: a
// connection to it is refused. It panics on failure (examples use it).
func closedURL() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	u := "http://" + ln.Addr().String()
	if err := ln.Close(); err != nil {
		panic(err)
	}
	return u
}

// stubNode serves h on httptest, closed at the end of the test.
func stubNode(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
