package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/transport"
)

// These tests run real memberlist on real sockets, one loopback IP per
// node (so the fault filter can tell nodes apart by host), with the fast
// tuning. Each test has its own IPs, so they run in parallel.

type testNode struct {
	id     string
	m      *Membership
	filter *transport.Filter
	// hold, while true, stops the node from reporting partitions received
	// (autoReceive), which holds up the change in progress.
	hold *atomic.Bool
}

// testLogger shows warnings and errors with -v; DOTKV_TEST_DEBUG=1 shows
// everything. memberlist's goroutines may still log after Shutdown has
// returned, and writing to t.Output after the test ends panics, so the
// handler goes quiet when the test's cleanups run.
func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("DOTKV_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	g := &logGate{}
	t.Cleanup(g.close) // registered before the node's Close, so runs after it
	return slog.New(gatedHandler{slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}), g})
}

type logGate struct {
	mu     sync.Mutex
	closed bool
}

func (g *logGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
}

type gatedHandler struct {
	slog.Handler
	g *logGate
}

func (h gatedHandler) Handle(ctx context.Context, r slog.Record) error {
	h.g.mu.Lock()
	defer h.g.mu.Unlock()
	if h.g.closed {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h gatedHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return gatedHandler{h.Handler.WithAttrs(a), h.g}
}

func (h gatedHandler) WithGroup(name string) slog.Handler {
	return gatedHandler{h.Handler.WithGroup(name), h.g}
}

// startNode starts a fast-tuned node at ip:0 with its own fault filter.
// It is closed at the end of the test (closing twice is fine).
func startNode(t *testing.T, id, ip string, join []string, store Store) *testNode {
	t.Helper()
	cfg := testConfig(t, id, ip, join, store)
	cfg.NewCluster = len(join) == 0
	n, err := startWith(t, cfg)
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	return n
}

// testConfig is the Config of test node id on ip: Q = 256, N = 3, the
// fast tuning, the test's log.
func testConfig(t *testing.T, id, ip string, join []string, store Store) Config {
	return Config{
		NodeID:     id,
		GossipAddr: ip + ":0",
		HTTPAddr:   ip + ":8080",
		RPCAddr:    ip + ":8081",
		Join:       join,
		Partitions: 256,
		N:          3,
		Store:      store,
		Fast:       true,
		Logger:     testLogger(t),
	}
}

// startWith starts a node from cfg behind a fault filter of its own,
// reporting the partitions it receives as received (see
// autoReceiveUnless); it is closed at the end of the test.
func startWith(t *testing.T, cfg Config) (*testNode, error) {
	t.Helper()
	f := transport.NewFilter(nil)
	cfg.Filter = f
	m, err := Start(cfg)
	if err != nil {
		return nil, err
	}
	f.SetResolver(m.Hosts)
	hold := new(atomic.Bool)
	stop := autoReceiveUnless(m, cfg.NodeID, hold)
	t.Cleanup(func() { stop(); _ = m.Close() })
	return &testNode{id: cfg.NodeID, m: m, filter: f, hold: hold}, nil
}

// autoReceive stands in for the partition transfer engine of a node with
// no data: it reports every partition the node receives as received, so
// that joins and leaves complete. stop ends it and waits.
func autoReceive(m *Membership, id string) (stop func()) { return autoReceiveUnless(m, id, nil) }

// autoReceiveUnless is autoReceive, reporting nothing while hold (if not
// nil) is true.
func autoReceiveUnless(m *Membership, id string, hold *atomic.Bool) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if hold != nil && hold.Load() {
				continue
			}
			v := m.View()
			for p := range uint32(v.Partitions()) {
				if slices.Contains(v.Receiving(p), id) {
					m.MarkReceived(v.Change(), p)
				}
			}
		}
	}()
	return func() { close(quit); <-done }
}

// startCluster starts len(ips) nodes n1, n2, … all joining through n1.
func startCluster(t *testing.T, ips ...string) []*testNode {
	t.Helper()
	nodes := []*testNode{startNode(t, "n1", ips[0], nil, nil)}
	for i, ip := range ips[1:] {
		nodes = append(nodes, startNode(t, fmt.Sprintf("n%d", i+2), ip, []string{nodes[0].m.GossipAddr()}, nil))
	}
	return nodes
}

// waitLimit bounds every wait on a condition. It is generous, so that a
// busy machine does not fail the tests; a wait returns as soon as its
// condition holds.
const waitLimit = time.Minute

// waitFor polls cond until it holds or the deadline passes, and returns
// how long that took (for the log: tests assert no timing).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("after %v: still waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// allSee reports whether every observer sees exactly the targets, all as
// ring members with the given liveness.
func allSee(observers, targets []*testNode, l Liveness) bool {
	for _, o := range observers {
		ms := o.m.Members()
		if len(ms) != len(targets) {
			return false
		}
		for _, tn := range targets {
			mem, ok := o.m.Member(tn.id)
			if !ok || mem.Status != StatusMember || mem.Liveness != l || o.m.Liveness(tn.id) != l {
				return false
			}
		}
	}
	return true
}

func describe(nodes []*testNode) string {
	var s string
	for _, n := range nodes {
		s += fmt.Sprintf("\n  %s: %+v", n.id, n.m.Members())
	}
	return s
}

func TestThreeNodesJoinThroughOneSeed(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, "127.0.0.21", "127.0.0.22", "127.0.0.23")
	took := waitFor(t, waitLimit, "3 alive members everywhere", func() bool {
		return allSee(nodes, nodes, Alive)
	})
	t.Logf("converged in %v", took)

	for _, n := range nodes {
		for _, o := range nodes {
			mem, _ := n.m.Member(o.id)
			if mem.Gossip != o.m.GossipAddr() || mem.HTTP != o.m.cfg.HTTPAddr || mem.RPC != o.m.cfg.RPCAddr {
				t.Errorf("%s sees %s at %+v, want gossip %s", n.id, o.id, mem, o.m.GossipAddr())
			}
			ip, _, _ := net.SplitHostPort(o.m.GossipAddr())
			if got, want := n.m.Hosts(o.id), []string{ip}; !slices.Equal(got, want) {
				t.Errorf("%s: Hosts(%s) = %v, want %v", n.id, o.id, got, want)
			}
		}
	}
	// The ring is a function of the member set: every node built the same.
	ref := nodes[0].m.View()
	if got := ref.Members(); !slices.Equal(got, []string{"n1", "n2", "n3"}) {
		t.Fatalf("ring members %v", got)
	}
	for _, n := range nodes[1:] {
		r := n.m.View()
		for p := range uint32(256) {
			if a, b := ref.Current().PreferenceList(p), r.Current().PreferenceList(p); !slices.Equal(a, b) {
				t.Fatalf("partition %d: n1 has %v, %s has %v", p, a, n.id, b)
			}
		}
	}
}

// TestPartitionDetectedAndHealedAfterGossipToTheDeadTime splits five nodes
// 3|2: each side sees the other dead, and once the partition has outlasted
// GossipToTheDeadTime only the rejoin loop can heal it. Both sides have
// two or more nodes, which confirm each other's suspicions; a node cut off
// alone has no one to, and its suspicions run their longest course
// (TestMemnetPartitionAndHeal covers that, in virtual time).
func TestPartitionDetectedAndHealedAfterGossipToTheDeadTime(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, "127.0.0.24", "127.0.0.25", "127.0.0.26", "127.0.0.43", "127.0.0.44")
	left, right := nodes[:3], nodes[3:]
	waitFor(t, waitLimit, "5 alive members everywhere", func() bool { return allSee(nodes, nodes, Alive) })

	// Each side drops the other's traffic.
	for _, l := range left {
		for _, r := range right {
			l.filter.Block(r.id)
			r.filter.Block(l.id)
		}
	}

	// A node whose probe across the partition fails suspects the other
	// node before anyone can declare it dead; others may learn "dead"
	// directly.
	sawSuspect := map[string]bool{}
	took := waitFor(t, waitLimit, "each side to see the other dead", func() bool {
		done := true
		for _, sides := range [][2][]*testNode{{left, right}, {right, left}} {
			for _, o := range sides[0] {
				for _, x := range sides[1] {
					l := o.m.Liveness(x.id)
					if l == Suspect {
						sawSuspect[o.id+" saw "+x.id] = true
					}
					done = done && l == Dead
				}
			}
		}
		return done
	})
	t.Logf("partition detected on both sides in %v; suspect before dead: %v", took, sawSuspect)
	if len(sawSuspect) == 0 {
		t.Errorf("no node reported a node across the partition suspect before dead")
	}
	// Liveness never changes ownership.
	for _, n := range nodes {
		if got := n.m.View().Members(); !slices.Equal(got, []string{"n1", "n2", "n3", "n4", "n5"}) {
			t.Errorf("%s: ring members during the partition = %v", n.id, got)
		}
		if len(n.m.Members()) != 5 {
			t.Errorf("%s: members during the partition = %v", n.id, n.m.Members())
		}
	}

	// Hold the partition past GossipToTheDeadTime: memberlist then forgets
	// the dead side and stops gossiping to it, so only the rejoin loop
	// can heal it. This sleep is the length of the fault, not a wait.
	// memberlist forgets a dead node at the first wrap of its probe round
	// past GossipToTheDeadTime: within two probe intervals here.
	time.Sleep(testTuning.gossipToTheDeadTime + 3*testTuning.probeInterval)

	for _, n := range nodes {
		n.filter.Heal()
	}
	took = waitFor(t, waitLimit, "all alive after heal", func() bool { return allSee(nodes, nodes, Alive) })
	t.Logf("healed in %v", took)
}

func TestRestartWithSameIdentityRejoinsWithoutSeeds(t *testing.T) {
	t.Parallel()
	fs := vfs.NewMem()
	openStore := func() *storage.Store {
		st, err := storage.Open("n3", storage.Options{NodeID: "n3", FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := openStore()
	n1 := startNode(t, "n1", "127.0.0.27", nil, nil)
	n2 := startNode(t, "n2", "127.0.0.28", []string{n1.m.GossipAddr()}, nil)
	n3 := startNode(t, "n3", "127.0.0.29", []string{n1.m.GossipAddr()}, st)
	nodes := []*testNode{n1, n2, n3}
	waitFor(t, waitLimit, "3 alive members everywhere", func() bool { return allSee(nodes, nodes, Alive) })
	oldAddr := n3.m.GossipAddr()

	if err := n3.m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitLimit, "n3 dead on n1 and n2", func() bool {
		return n1.m.Liveness("n3") == Dead && n2.m.Liveness("n3") == Dead
	})

	// Same identity and data, a new port, no seeds.
	st = openStore()
	t.Cleanup(func() { _ = st.Close() })
	n3 = startNode(t, "n3", "127.0.0.29", nil, st)
	if n3.m.GossipAddr() == oldAddr {
		t.Logf("n3 got its old port %s back", oldAddr)
	}
	// Before any gossip, the persisted state already names its peers.
	if got := n3.m.View().Members(); !slices.Equal(got, []string{"n1", "n2", "n3"}) {
		t.Fatalf("restarted n3's ring before gossip = %v, want the persisted members", got)
	}
	nodes = []*testNode{n1, n2, n3}
	took := waitFor(t, waitLimit, "all alive after restart", func() bool {
		if !allSee(nodes, nodes, Alive) {
			return false
		}
		for _, n := range nodes {
			if mem, _ := n.m.Member("n3"); mem.Gossip != n3.m.GossipAddr() {
				return false
			}
		}
		return true
	})
	t.Logf("restarted n3 rejoined in %v:%s", took, describe(nodes))
}

// crash stops a node the way SIGKILL would, for memberlist: no leave
// message, so peers see it fail rather than leave.
func (m *Membership) crash() {
	m.closeOnce.Do(func() {
		close(m.quit)
		m.closeErr = m.ml.Shutdown()
		m.wg.Wait()
	})
}

func TestCrashedNodeRestartsOnANewPort(t *testing.T) {
	t.Parallel()
	fs := vfs.NewMem()
	st, err := storage.Open("n3", storage.Options{NodeID: "n3", FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	n1 := startNode(t, "n1", "127.0.0.33", nil, nil)
	n2 := startNode(t, "n2", "127.0.0.34", []string{n1.m.GossipAddr()}, nil)
	n3 := startNode(t, "n3", "127.0.0.35", []string{n1.m.GossipAddr()}, st)
	nodes := []*testNode{n1, n2, n3}
	waitFor(t, waitLimit, "3 alive members everywhere", func() bool { return allSee(nodes, nodes, Alive) })

	n3.m.crash()
	waitFor(t, waitLimit, "n3 dead on n1 and n2", func() bool {
		return n1.m.Liveness("n3") == Dead && n2.m.Liveness("n3") == Dead
	})
	// memberlist rejects n3's new address ("conflicting address") until
	// its old incarnation has been dead for DeadNodeReclaimTime; the
	// rejoin loop keeps trying until then.
	n3 = startNode(t, "n3", "127.0.0.35", nil, st)
	nodes = []*testNode{n1, n2, n3}
	took := waitFor(t, waitLimit, "all alive at n3's new address", func() bool {
		if !allSee(nodes, nodes, Alive) {
			return false
		}
		for _, n := range nodes {
			if mem, _ := n.m.Member("n3"); mem.Gossip != n3.m.GossipAddr() {
				return false
			}
		}
		return true
	})
	t.Logf("crashed n3 back in %v", took)
}

func TestStartRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{NodeID: "", GossipAddr: "127.0.0.30:0"},
		{NodeID: "a/b", GossipAddr: "127.0.0.30:0"},
		{NodeID: "n1", GossipAddr: "127.0.0.30"},
		{NodeID: "n1", GossipAddr: "0.0.0.0:0"},
		{NodeID: "n1", GossipAddr: "localhost:0"},
		{NodeID: "n1", GossipAddr: "127.0.0.30:0", HTTPAddr: string(make([]byte, 600))},
	} {
		if m, err := Start(cfg); err == nil {
			_ = m.Close()
			t.Errorf("Start(%+v): want an error", cfg)
		}
	}
	// Bad ring parameters fail before memberlist starts, and leave nothing
	// running.
	if m, err := Start(Config{NodeID: "n1", GossipAddr: "127.0.0.30:0", Partitions: 1000}); err == nil {
		_ = m.Close()
		t.Error("Start with 1000 partitions: want an error")
	}
}

func TestSingleNodeAloneIsItsOwnRing(t *testing.T) {
	// With --new-cluster, a fresh node none of whose seeds answers forms
	// a cluster of its own.
	m, err := Start(Config{NodeID: "solo", GossipAddr: "127.0.0.31:0", Join: []string{"127.0.0.32:1"}, // seed is down
		NewCluster: true, Partitions: 256, N: 3, Fast: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{id: "solo", m: m}
	if !m.Ready() {
		t.Fatal("not ready after forming a cluster")
	}
	if got := n.m.View().Members(); !slices.Equal(got, []string{"solo"}) {
		t.Fatalf("ring = %v", got)
	}
	if n.m.Liveness("solo") != Alive || n.m.Liveness("nobody") != Dead {
		t.Fatalf("liveness: self %s, unknown %s", n.m.Liveness("solo"), n.m.Liveness("nobody"))
	}
	if err := n.m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// recordHandler is a slog handler that reports each record's level.
func recordHandler(f func(level, msg string)) *slog.Logger { return slog.New(funcHandler{f}) }

type funcHandler struct{ f func(level, msg string) }

func (h funcHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h funcHandler) Handle(_ context.Context, r slog.Record) error {
	h.f(r.Level.String(), r.Message)
	return nil
}
func (h funcHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h funcHandler) WithGroup(string) slog.Handler      { return h }

// TestNotReadyUntilTheSeedAnswers: a node whose seed is not up yet must
// not consider its one-member ring the cluster's, and says at INFO level
// that it waits for it; it becomes ready once it has merged a peer's ring
// state.
func TestNotReadyUntilTheSeedAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.41:0")
	if err != nil {
		t.Fatal(err)
	}
	seedAddr := ln.Addr().String()
	_ = ln.Close()
	var waiting atomic.Int32
	late, err := Start(Config{NodeID: "n2", GossipAddr: "127.0.0.42:0", HTTPAddr: "127.0.0.42:8080", RPCAddr: "127.0.0.42:8081",
		Join: []string{seedAddr}, Partitions: 256, N: 3, Fast: true,
		Logger: recordHandler(func(level, msg string) {
			if level == "INFO" && strings.Contains(msg, "waiting for the cluster") {
				waiting.Add(1)
			}
		})})
	if err != nil {
		t.Fatal(err)
	}
	stopReceive := autoReceive(late, "n2")
	defer func() { stopReceive(); _ = late.Close() }()
	if late.Ready() {
		t.Fatal("ready before the seed exists")
	}
	waitFor(t, waitLimit, "n2 to say at INFO level that it waits for its seed", func() bool { return waiting.Load() > 0 })
	f := transport.NewFilter(nil)
	seed, err := Start(Config{NodeID: "n1", GossipAddr: seedAddr, HTTPAddr: "127.0.0.41:8080", RPCAddr: "127.0.0.41:8081",
		Partitions: 256, N: 3, Filter: f, Fast: true, Logger: testLogger(t), NewCluster: true})
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()
	if !seed.Ready() {
		t.Fatal("a node without seeds is not ready")
	}
	waitFor(t, waitLimit, "n2 to join through its late seed", late.Ready)
	if got := late.View().Members(); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Fatalf("n2's ring once ready = %v", got)
	}
}

// TestRestartedNodeServesOnlyAfterHearingFromThePeers: a node restarted
// with its data directory is not ready until a peer's state says it is
// still a member. Removed while it was down, it is refused without ever
// having been ready; when none of its recorded peers answers, it serves
// on its recorded ring.
func TestRestartedNodeServesOnlyAfterHearingFromThePeers(t *testing.T) {
	t.Parallel()
	fs := vfs.NewMem()
	openStore := func() *storage.Store {
		st, err := storage.Open("n3", storage.Options{NodeID: "n3", FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := openStore()
	n1 := startNode(t, "n1", "127.0.0.51", nil, nil)
	n2 := startNode(t, "n2", "127.0.0.52", []string{n1.m.GossipAddr()}, nil)
	n3 := startNode(t, "n3", "127.0.0.53", []string{n1.m.GossipAddr()}, st)
	nodes := []*testNode{n1, n2, n3}
	waitFor(t, waitLimit, "3 alive members everywhere", func() bool { return allSee(nodes, nodes, Alive) })
	n3.m.crash()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Unreachable peers: serve on the recorded ring.
	n1.filter.Block("n3")
	n2.filter.Block("n3")
	st = openStore()
	f := transport.NewFilter(nil)
	m, err := Start(Config{NodeID: "n3", GossipAddr: "127.0.0.53:0", HTTPAddr: "127.0.0.53:8080", RPCAddr: "127.0.0.53:8081",
		Partitions: 256, N: 3, Store: st, Filter: f, Fast: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	f.SetResolver(m.Hosts)
	waitFor(t, waitLimit, "n3 alone to serve on its recorded ring", m.Ready)
	if got := m.View().Members(); !slices.Equal(got, []string{"n1", "n2", "n3"}) {
		t.Fatalf("n3's ring = %v, want the recorded members", got)
	}
	m.crash()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	n1.filter.Heal()
	n2.filter.Heal()

	// Removed while down: refused, never ready.
	waitFor(t, waitLimit, "n3 dead on n1", func() bool { return n1.m.Liveness("n3") == Dead })
	if err := n1.m.Remove("n3", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitLimit, "n3 removed on n1 and n2", func() bool {
		a, _ := n1.m.Member("n3")
		b, _ := n2.m.Member("n3")
		return a.Status == StatusRemoved && b.Status == StatusRemoved
	})
	st = openStore()
	t.Cleanup(func() { _ = st.Close() })
	n3 = startNode(t, "n3", "127.0.0.53", nil, st)
	if n3.m.Ready() {
		t.Fatal("restarted n3 is ready before it heard from a peer")
	}
	waitFor(t, waitLimit, "n3 to be refused", func() bool { return n3.m.Refused() != nil })
	select {
	case <-n3.m.ReadyCh():
		t.Fatal("removed n3 was ready before it was refused")
	default:
	}
	if n3.m.Ready() {
		t.Fatal("refused n3 is ready")
	}
}

// TestOthersCompleteTheLeaveOfANodeThatDied: a leaving node whose final
// "left" never reaches anyone (cut off, then dead) does not hold the
// cluster: once its partitions are with their new owners, the others
// write it left, and a later change can run.
func TestOthersCompleteTheLeaveOfANodeThatDied(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, "127.0.0.46", "127.0.0.47", "127.0.0.48", "127.0.0.49")
	waitFor(t, waitLimit, "4 alive members everywhere", func() bool { return allSee(nodes, nodes, Alive) })
	n4 := nodes[3]
	others := nodes[:3]
	// Until n4 is cut off, its new owners do not report its partitions
	// received, so its leave cannot complete (which it used to do, now
	// and then, before every node had seen it leaving, and the wait below
	// then never ended).
	for _, o := range others {
		o.hold.Store(true)
	}
	if err := n4.m.Leave(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitLimit, "every other node to see n4 leaving", func() bool {
		for _, o := range others {
			if mem, _ := o.m.Member("n4"); mem.Status != StatusLeaving {
				return false
			}
		}
		return true
	})
	for _, o := range others {
		o.filter.Block("n4")
	}
	n4.m.crash()
	for _, o := range others {
		o.hold.Store(false)
	}
	waitFor(t, waitLimit, "every other node to see n4 left and no change", func() bool {
		for _, o := range others {
			if mem, _ := o.m.Member("n4"); mem.Status != StatusLeft || o.m.View().Change() != "" {
				return false
			}
		}
		return true
	})
	// The next change runs.
	n5 := startNode(t, "n5", "127.0.0.50", []string{nodes[0].m.GossipAddr()}, nil)
	waitFor(t, waitLimit, "n5 to join", func() bool {
		mem, _ := nodes[0].m.Member("n5")
		return mem.Status == StatusMember && n5.m.Ready()
	})
}
