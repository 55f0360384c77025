// Package kvtest runs real dotkv clusters inside one test process: real
// pebble (on vfs.NewMem), real memberlist and RPC, either on real sockets,
// each node on its own loopback address so the fault filter can partition
// them, or (Options.MemNet) on an in-memory network, internal/memnet,
// which makes the partitions and faults and runs under testing/synctest.
// Helpers wait for conditions with deadlines; none sleeps and hopes.
package kvtest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/memberlist"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/client"
	"github.com/dotkv/dotkv/gossip"
	"github.com/dotkv/dotkv/internal/memnet"
	"github.com/dotkv/dotkv/node"
	"github.com/dotkv/dotkv/replica"
	"github.com/dotkv/dotkv/storage"
)

// Options configure a test cluster.
type Options struct {
	// N, R, W are the cluster defaults (3, quorum, quorum).
	N    int
	R, W replica.Level
	// Fsync defaults to never (tests do not measure durability here).
	Fsync storage.FsyncMode
	// DisableHints turns off sloppy quorums and hinted handoff.
	DisableHints bool
	// MaxHints bounds hints per target (0 = unbounded).
	MaxHints int
	// DisableAAE turns anti-entropy off; AAEInterval defaults to 200 ms
	// in tests; TombstoneGrace to the node default (1 h).
	DisableAAE     bool
	AAEInterval    time.Duration
	TombstoneGrace time.Duration
	// MemNet runs the cluster on an in-memory network (Cluster.Net,
	// seeded with Seed) instead of sockets: RPC, gossip and the client
	// API. Partition, Isolate and Heal then act on the network, and the
	// nodes have no fault filter. A cluster created inside a
	// testing/synctest bubble is always on memnet (sockets would stop the
	// bubble's clock), and runs on virtual time. The network starts with
	// LANLatency (set other faults with Cluster.Net.SetFaults).
	MemNet bool
	Seed   uint64
	// TransferLimit is every node's --transfer-limit (0: the default).
	TransferLimit int
	// MaxSiblings and MaxRecordBytes are every node's --max-siblings and
	// --max-record (0: the defaults, 100 and 16 MiB).
	MaxSiblings    int
	MaxRecordBytes int64
}

// LANLatency is the memnet clusters' initial one-way message delay: so
// that internode work takes (virtual) time, as on a LAN, and a test can
// observe a cluster mid-way through it (e.g. mid hint delivery).
var LANLatency = memnet.Faults{MinDelay: 100 * time.Microsecond, MaxDelay: 500 * time.Microsecond}

// Cluster is a running test cluster.
type Cluster struct {
	seq   int // the third octet of the nodes' loopback IPs
	t     testing.TB
	opts  Options
	Nodes []*Node
	// Net is the in-memory network with Options.MemNet, else nil.
	Net    *memnet.Network
	client *http.Client
}

// Node is one member of a test cluster; it survives Stop/Restart with its
// data (its in-memory filesystem) and addresses.
type Node struct {
	ID  string
	IP  string
	fs  vfs.FS
	cfg node.Config
	mu  sync.Mutex
	n   *node.Node // nil while stopped
}

// clusterSeq gives each cluster in the process its own 127.0.X.0/24.
var clusterSeq atomic.Int32

// NewCluster starts size nodes joined through the first one and waits
// until every node sees every other alive.
func NewCluster(t testing.TB, size int, opts Options) *Cluster {
	t.Helper()
	seq := 100 + clusterSeq.Add(1)%150
	if inBubble() {
		opts.MemNet = true
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	// The client's timeout only stops a request that would hang: above
	// every request timeout the API accepts (api.MaxTimeout).
	c := &Cluster{t: t, opts: opts, client: &http.Client{Timeout: api.MaxTimeout + 10*time.Second, Transport: tr}}
	if opts.MemNet {
		c.Net = memnet.New(opts.Seed)
		c.Net.SetFaults(LANLatency)
		tr.DialContext = c.Net.DialContext
		seq = 0 // the network is the cluster's own: no clash with others
	}
	t.Cleanup(c.Close)
	c.seq = int(seq)
	var seed string
	for i := range size {
		nd := c.newNode(i)
		if seed != "" {
			nd.cfg.Join = []string{seed}
		} else {
			nd.cfg.NewCluster = true
		}
		c.Nodes = append(c.Nodes, nd)
		c.start(nd)
		if seed == "" {
			seed = nd.n.GossipAddr()
		}
	}
	c.WaitAllAlive()
	return c
}

// newNode returns the i-th node (0-based: "n<i+1>"), not started.
func (c *Cluster) newNode(i int) *Node {
	opts := c.opts
	nd := &Node{ID: "n" + strconv.Itoa(i+1), IP: fmt.Sprintf("127.0.%d.%d", c.seq, 11+i), fs: vfs.NewMem()}
	{
		nd.cfg = node.Config{
			ID: nd.ID, DataDir: "data", FS: nd.fs,
			HTTPAddr:   net.JoinHostPort(nd.IP, "0"),
			GossipAddr: net.JoinHostPort(nd.IP, "0"),
			RPCAddr:    net.JoinHostPort(nd.IP, "0"),
			N:          opts.N, R: opts.R, W: opts.W,
			Fsync: opts.Fsync, FaultInjection: true, FastGossip: true,
			DisableHints: opts.DisableHints, MaxHints: opts.MaxHints, HintInterval: 50 * time.Millisecond,
			DisableAAE: opts.DisableAAE, AAEInterval: cmp.Or(opts.AAEInterval, 200*time.Millisecond),
			TombstoneGrace: opts.TombstoneGrace, TransferLimit: opts.TransferLimit,
			MaxSiblings: opts.MaxSiblings, MaxRecordBytes: opts.MaxRecordBytes,
			CleanupInterval: 200 * time.Millisecond,
		}
		if c.Net != nil {
			nd.cfg.Network = memNetwork{c.Net, nd.IP}
			nd.cfg.FaultInjection = false
		}
	}
	return nd
}

// AddNode starts a new, empty node that joins through the first running
// node (replacing the dead node replace, if not ""), and returns its
// index. It does not wait for the join to complete.
func (c *Cluster) AddNode(replace string) int {
	c.t.Helper()
	nd := c.newNode(len(c.Nodes))
	for _, o := range c.Nodes {
		if o.Running() != nil {
			nd.cfg.Join = append(nd.cfg.Join, o.Running().GossipAddr())
			break
		}
	}
	nd.cfg.Replace = replace
	c.Nodes = append(c.Nodes, nd)
	c.start(nd)
	return len(c.Nodes) - 1
}

// WaitStatus waits until every running node sees node id with status st
// and no membership change in progress.
func (c *Cluster) WaitStatus(id string, st gossip.Status) {
	c.t.Helper()
	c.WaitFor(fmt.Sprintf("every node to see %s %s", id, st), 2*time.Minute, func() bool {
		for _, a := range c.Nodes {
			n := a.Running()
			if n == nil {
				continue
			}
			m, ok := n.Membership().Member(id)
			if !ok || m.Status != st || n.Membership().View().Change() != "" {
				return false
			}
		}
		return true
	})
}

func (c *Cluster) start(nd *Node) {
	c.t.Helper()
	n, err := node.Start(nd.cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", nd.ID, err)
	}
	// Keep the bound addresses, so a restart comes back where it was.
	nd.cfg.HTTPAddr, nd.cfg.GossipAddr, nd.cfg.RPCAddr = n.HTTPAddr(), n.GossipAddr(), n.RPCAddr()
	nd.mu.Lock()
	nd.n = n
	nd.mu.Unlock()
}

// Close stops every running node. Idle client connections are closed
// first, so the nodes' graceful shutdown does not wait on them.
func (c *Cluster) Close() {
	c.client.CloseIdleConnections()
	var wg sync.WaitGroup
	for _, nd := range c.Nodes {
		wg.Go(func() { nd.stop(c.t) })
	}
	wg.Wait()
	c.client.CloseIdleConnections()
	if c.Net != nil && inBubble() {
		// memberlist's Shutdown returns before its probe goroutines
		// (waiting for an ack timeout) are done, and a synctest bubble's
		// clock stops when the test's goroutine returns: let them finish.
		time.Sleep(time.Minute)
	}
}

// inBubble reports whether the caller runs in a testing/synctest bubble:
// a bubble's clock starts at midnight UTC 2000-01-01 (testing/synctest's
// documentation), and no test runs for a year of virtual time.
func inBubble() bool { return time.Now().Before(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)) }

func (nd *Node) stop(t testing.TB) {
	nd.mu.Lock()
	n := nd.n
	nd.n = nil
	nd.mu.Unlock()
	if n != nil {
		if err := n.Close(); err != nil {
			t.Errorf("stop %s: %v", nd.ID, err)
		}
	}
}

// Running returns the node's live parts, or nil while it is stopped.
func (nd *Node) Running() *node.Node {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.n
}

// URL returns the node's HTTP base URL.
func (nd *Node) URL() string { return "http://" + nd.cfg.HTTPAddr }

// Stop shuts node i (0-based) down cleanly; it stays in the ring.
func (c *Cluster) Stop(i int) { c.Nodes[i].stop(c.t) }

// Restart starts a stopped node again on its old data and addresses, with
// no join seeds: it must find its peers from its persisted ring state.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	nd := c.Nodes[i]
	nd.cfg.Join = nil
	c.start(nd)
}

// RestartWiped starts a stopped node again on its old addresses with an
// empty data directory and the flags it always had: joining through the
// running nodes.
func (c *Cluster) RestartWiped(i int) {
	c.t.Helper()
	nd := c.Nodes[i]
	nd.fs = vfs.NewMem()
	nd.cfg.FS = nd.fs
	nd.cfg.NewCluster = false
	nd.cfg.Join = nil
	for _, o := range c.Nodes {
		if o.Running() != nil {
			nd.cfg.Join = append(nd.cfg.Join, o.Running().GossipAddr())
		}
	}
	c.start(nd)
}

// Partition splits the cluster into groups of node indexes: every node
// blocks every node outside its own group. Nodes in no group are left
// alone. With sockets, blocks add up until Heal; on memnet, a partition
// replaces the previous one (Isolate'd nodes stay isolated).
func (c *Cluster) Partition(groups ...[]int) {
	if c.Net != nil {
		ids := make([][]string, len(groups))
		for g, members := range groups {
			for _, i := range members {
				ids[g] = append(ids[g], c.Nodes[i].ID)
			}
		}
		c.Net.Partition(ids...)
		return
	}
	group := map[int]int{}
	for g, members := range groups {
		for _, i := range members {
			group[i] = g
		}
	}
	for i, nd := range c.Nodes {
		gi, ok := group[i]
		if !ok || nd.Running() == nil {
			continue
		}
		for j, other := range c.Nodes {
			if gj, ok := group[j]; ok && gj != gi {
				nd.Running().Filter().Block(other.ID)
			}
		}
	}
}

// Isolate cuts node i off from every other node.
func (c *Cluster) Isolate(i int) {
	if c.Net != nil {
		c.Net.Isolate(c.Nodes[i].ID)
		return
	}
	var rest []int
	for j := range c.Nodes {
		if j != i {
			rest = append(rest, j)
		}
	}
	c.Partition([]int{i}, rest)
}

// Heal removes every block on every running node (on memnet: every
// partition and isolation).
func (c *Cluster) Heal() {
	if c.Net != nil {
		c.Net.Heal()
		return
	}
	for _, nd := range c.Nodes {
		if n := nd.Running(); n != nil {
			n.Filter().Heal()
		}
	}
}

// WaitFor polls cond until it holds or the deadline passes.
func (c *Cluster) WaitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Liveness returns how observer (index) sees target (index).
func (c *Cluster) Liveness(observer, target int) gossip.Liveness {
	n := c.Nodes[observer].Running()
	if n == nil {
		return ""
	}
	return n.Membership().Liveness(c.Nodes[target].ID)
}

// WaitLiveness waits until observer sees target with liveness l.
func (c *Cluster) WaitLiveness(observer, target int, l gossip.Liveness, timeout time.Duration) {
	c.t.Helper()
	c.WaitFor(fmt.Sprintf("%s to see %s %s", c.Nodes[observer].ID, c.Nodes[target].ID, l), timeout,
		func() bool { return c.Liveness(observer, target) == l })
}

// WaitAllAlive waits until every running node sees every running node
// alive and every node a member of its ring (every join completed).
func (c *Cluster) WaitAllAlive() {
	c.t.Helper()
	c.WaitFor("every running node to see every running node alive and a member", time.Minute, func() bool {
		for i, a := range c.Nodes {
			if a.Running() == nil {
				continue
			}
			m := a.Running().Membership()
			if v := m.View(); len(v.Members()) != len(c.Nodes) || v.Change() != "" {
				return false
			}
			for _, b := range c.Nodes {
				if mb, ok := m.Member(b.ID); !ok || mb.Status != gossip.StatusMember {
					return false
				}
			}
			for j, b := range c.Nodes {
				if b.Running() != nil && c.Liveness(i, j) != gossip.Alive {
					return false
				}
			}
		}
		return true
	})
}

// Response is an HTTP answer, read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Context returns the X-Dotkv-Context header.
func (r Response) Context() string { return r.Header.Get(api.HeaderContext) }

// JSONError decodes an error body (client.ErrorBody), with 0 for a
// missing acks or required.
func (r Response) JSONError() (e struct {
	Error, Code    string
	Acks, Required int
}) {
	var b client.ErrorBody
	_ = json.Unmarshal(r.Body, &b)
	e.Error, e.Code = b.Error, b.Code
	if b.Acks != nil {
		e.Acks = *b.Acks
	}
	if b.Required != nil {
		e.Required = *b.Required
	}
	return e
}

// Do sends a request to node i.
func (c *Cluster) Do(i int, method, path string, hdr http.Header, body []byte) Response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.Nodes[i].URL()+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s on %s: %v", method, path, c.Nodes[i].ID, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s on %s: read body: %v", method, path, c.Nodes[i].ID, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// Put writes value to key through node i with context vctx ("" for none)
// and query parameters q (e.g. "w=all").
func (c *Cluster) Put(i int, key, value, vctx, q string) Response {
	c.t.Helper()
	hdr := http.Header{"Content-Type": {"text/plain"}}
	if vctx != "" {
		hdr.Set(api.HeaderContext, vctx)
	}
	return c.Do(i, http.MethodPut, kvPath(key, q), hdr, []byte(value))
}

// Delete deletes key through node i with context vctx.
func (c *Cluster) Delete(i int, key, vctx, q string) Response {
	c.t.Helper()
	hdr := http.Header{}
	if vctx != "" {
		hdr.Set(api.HeaderContext, vctx)
	}
	return c.Do(i, http.MethodDelete, kvPath(key, q), hdr, nil)
}

// Sibling is one sibling of a JSON read.
type Sibling = client.SiblingJSON

// Read is a decoded JSON read: the answer, and its body (a
// client.ReadJSON) decoded if 200.
type Read struct {
	Response
	Context  string
	Siblings []Sibling
}

// decode decodes the body of a 200 read into rd.
func (rd *Read) decode() error {
	var js client.ReadJSON
	if err := json.Unmarshal(rd.Body, &js); err != nil {
		return err
	}
	rd.Context, rd.Siblings = js.Context, js.Siblings
	return nil
}

// Values returns the non-deleted sibling values, sorted.
func (r Read) Values() []string {
	var out []string
	for _, s := range r.Siblings {
		if !s.Deleted {
			out = append(out, string(s.Value))
		}
	}
	slices.Sort(out)
	return out
}

// Get reads key through node i as JSON with query q (e.g. "r=all").
func (c *Cluster) Get(i int, key, q string) Read {
	c.t.Helper()
	resp := c.Do(i, http.MethodGet, kvPath(key, q), http.Header{"Accept": {"application/json"}}, nil)
	rd := Read{Response: resp}
	if resp.Status == http.StatusOK {
		if err := rd.decode(); err != nil {
			c.t.Fatalf("decode read of %q: %v: %s", key, err, resp.Body)
		}
	}
	return rd
}

// Replica returns node i's own stored state of key (/debug/replica), or
// a Read with Status 404.
func (c *Cluster) Replica(i int, key string) Read {
	c.t.Helper()
	resp := c.Do(i, http.MethodGet, "/debug/replica/"+url.PathEscape(key), nil, nil)
	rd := Read{Response: resp}
	if resp.Status == http.StatusOK {
		if err := rd.decode(); err != nil {
			c.t.Fatalf("decode replica of %q: %v", key, err)
		}
	}
	return rd
}

func kvPath(key, q string) string {
	p := "/kv/" + url.PathEscape(key)
	if q != "" {
		p += "?" + q
	}
	return p
}

// memNetwork adapts a memnet.Network to node.Network for the node at ip:
// gossip at ip:7946, RPC advertised as ip:7947, the client API at ip:8080.
type memNetwork struct {
	net *memnet.Network
	ip  string
}

func (m memNetwork) RPC(id string) (node.RPCEndpoint, error) {
	return memEndpoint{m.net.Bind(id), net.JoinHostPort(m.ip, "7947")}, nil
}

func (m memNetwork) Gossip(id string) (memberlist.NodeAwareTransport, error) {
	return m.net.Gossip(id, net.JoinHostPort(m.ip, "7946")), nil
}

func (m memNetwork) HTTP(string) (net.Listener, error) {
	return m.net.ListenStream(net.JoinHostPort(m.ip, "8080"))
}

type memEndpoint struct {
	*memnet.Endpoint
	addr string
}

func (e memEndpoint) Addr() string { return e.addr }
