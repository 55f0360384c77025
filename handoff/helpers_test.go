package handoff

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/internal/memnet"
	"github.com/dotkv/dotkv/repair"
	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// Tests run real engines on real pebble stores (vfs.NewMem), wired
// through the in-memory network, with a cluster whose view switches a
// partition once its receiver reports it, as gossip would.

const testChange = "join/c/1"

// cluster is the membership change under test: its view is rebuilt
// whenever a receiver marks a partition received.
type cluster struct {
	net *memnet.Network

	mu       sync.Mutex
	cur      *ring.Ring
	next     *ring.Ring
	change   string
	epoch    uint64
	received map[string]map[uint32]bool // change → partitions c reported
	marks    int                        // MarkReceived calls
	dead     map[string]bool
	view     *ring.View
}

// newCluster returns the change from cur's members to next's (Q = 8).
func newCluster(t testing.TB, cur, next []string, n int) *cluster {
	t.Helper()
	rc, err := ring.New(cur, 8, n)
	if err != nil {
		t.Fatal(err)
	}
	rn, err := ring.New(next, 8, n)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{net: memnet.New(1), cur: rc, next: rn, change: testChange,
		received: map[string]map[uint32]bool{}, dead: map[string]bool{}}
	c.rebuild()
	return c
}

// rebuild makes the view of the change from c's state; c.mu is held or
// c is not shared yet.
func (c *cluster) rebuild() {
	c.epoch++
	if c.change == "" {
		c.view = ring.Stable(c.cur, c.epoch)
		return
	}
	got := c.received[c.change]
	c.view = ring.NewView(c.cur, c.next, c.epoch, c.change, func(p uint32, _ string) bool { return got[p] }, nil, nil)
}

func (c *cluster) View() *ring.View {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.view
}

func (c *cluster) Live(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.dead[id]
}

func (c *cluster) setDead(id string, dead bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead[id] = dead
}

// MarkReceived records that the receiver holds p for change.
func (c *cluster) MarkReceived(change string, p uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.marks++
	if c.received[change] == nil {
		c.received[change] = map[uint32]bool{}
	}
	c.received[change][p] = true
	if change == c.change {
		c.rebuild()
	}
}

// receivedBy returns the partitions reported for change, ascending.
func (c *cluster) receivedBy(change string) []uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.received[change]))
}

// endChange makes the view stable (another change, or none, took over).
func (c *cluster) endChange() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.change = ""
	c.rebuild()
}

// receives returns the partitions node receives in the change.
func (c *cluster) receives(node string) []uint32 {
	v := c.View()
	var out []uint32
	for p := range uint32(v.Partitions()) {
		if slices.Contains(v.Receiving(p), node) {
			out = append(out, p)
		}
	}
	return out
}

// node is one node: a store (whose observer feeds anti-entropy's trees),
// an endpoint serving the handoff and anti-entropy RPCs, and an engine.
type node struct {
	id    string
	c     *cluster
	store *storage.Store
	ep    *memnet.Endpoint
	aae   *repair.Engine
	eng   *Engine

	cancel context.CancelFunc
	done   chan struct{}
}

// newNode opens id's store and endpoint; tweak adjusts the engine's
// config (Limit, batches, Peer, Store, Confirm...).
func newNode(t testing.TB, c *cluster, id string, tweak func(*Config)) *node {
	t.Helper()
	trees, tombs := repair.NewTrees(), repair.NewTombstones()
	s, err := storage.Open("db", storage.Options{NodeID: id, FS: vfs.NewMem(), Fsync: storage.FsyncNever,
		CacheSize: 1 << 20, MemTableSize: 4 << 20,
		Observer: func(p uint32, key, old, cur []byte) {
			trees.Observe(p, key, old, cur)
			tombs.Observe(p, key, old, cur)
		}})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{id: id, c: c, store: s, ep: c.net.Listen(id)}
	t.Cleanup(func() { _ = s.Close() })
	t.Cleanup(n.ep.Close) // first: no handler may run once the store closes
	n.aae = repair.NewEngine(repair.EngineConfig{Self: id, Store: s, Trees: trees, Tombs: tombs, Peer: n.ep,
		View: c.View, Dead: func(id string) bool { return !c.Live(id) }, KeysPerSec: 1 << 30})
	n.aae.Register(n.ep)
	n.ep.Handle(repair.MethodMergeStates, repair.HandleMergeStates(s, c.View().PartitionOf))
	n.eng = n.newEngine(t, tweak)
	n.eng.Register(n.ep)
	return n
}

// newEngine returns an engine of n (registered by newNode for the first).
func (n *node) newEngine(t testing.TB, tweak func(*Config)) *Engine {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Self, cfg.Store, cfg.Peer = n.id, n.store, n.ep
	cfg.View, cfg.Live, cfg.MarkReceived = n.c.View, n.c.Live, n.c.MarkReceived
	cfg.Interval = 5 * time.Millisecond
	cfg.CallTimeout = 10 * time.Second
	cfg.Confirm = func(ctx context.Context, peer string, parts []uint32) error {
		_, err := n.aae.ExchangePartitions(ctx, peer, parts)
		return err
	}
	if tweak != nil {
		tweak(&cfg)
	}
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// start runs n's engine until stop (or the test's end).
func (n *node) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan struct{})
	eng, done := n.eng, n.done
	go func() {
		defer close(done)
		eng.Run(ctx)
	}()
	t.Cleanup(n.stop)
}

// stop stops n's engine and waits for Run to return.
func (n *node) stop() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
		n.cancel = nil
	}
}

// fill writes count records of about size bytes into partition p of each
// store given (the same states: replicas in sync), with keys of p.
func fill(t testing.TB, r *ring.Ring, p uint32, count, size int, stores ...*storage.Store) []string {
	t.Helper()
	var keys []string
	val := make([]byte, size)
	for i := 0; len(keys) < count; i++ {
		k := fmt.Appendf(nil, "p%d-k%06d", p, i)
		if r.PartitionOf(k) != p {
			continue
		}
		copy(val, k)
		st, _, err := stores[0].Write(p, k, nil, versioning.Sibling{Value: val, ContentType: "application/octet-stream"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stores[1:] {
			if _, err := s.Merge(p, k, st); err != nil {
				t.Fatal(err)
			}
		}
		keys = append(keys, string(k))
	}
	return keys
}

// dump returns partition p of s: key → stored encoding.
func dump(t testing.TB, s *storage.Store, p uint32) map[string]string {
	t.Helper()
	out := map[string]string{}
	if _, _, err := s.ScanPartition(p, nil, 0, 0, func(key, raw []byte) error {
		out[string(key)] = string(raw)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// samePartition fails the test unless a and b hold the same records of p.
func samePartition(t testing.TB, a, b *storage.Store, p uint32) {
	t.Helper()
	da, db := dump(t, a, p), dump(t, b, p)
	if len(da) == 0 {
		t.Fatalf("partition %d: the source holds nothing", p)
	}
	if !maps.Equal(da, db) {
		missing := 0
		for k, v := range da {
			if db[k] != v {
				missing++
			}
		}
		t.Fatalf("partition %d: %d records on %s, %d on %s, %d differ or missing",
			p, len(da), a.NodeID(), len(db), b.NodeID(), missing)
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (tests run on busy machines and under -race).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// peerFunc adapts a function to Peer.
type peerFunc func(ctx context.Context, node, method string, req []byte) ([]byte, error)

func (f peerFunc) Call(ctx context.Context, node, method string, req []byte) ([]byte, error) {
	return f(ctx, node, method, req)
}

// countingStore counts the records merged into a store.
type countingStore struct {
	*storage.Store
	merges atomic.Int64
}

func (s *countingStore) Merge(p uint32, key []byte, st versioning.State) (versioning.State, error) {
	s.merges.Add(1)
	return s.Store.Merge(p, key, st)
}
