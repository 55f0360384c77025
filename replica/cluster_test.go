package replica

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/internal/memnet"
	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// A test cluster of coordinators: one real pebble store (vfs.NewMem) per
// node, wired through memnet, with a shared ring and a failure detector
// the test sets by hand (dead and suspect are what gossip would say; the
// network's reachability is what is true).
type testCluster struct {
	t     *testing.T
	net   *memnet.Network
	ring  *ring.Ring
	nodes map[string]*testNode
	ids   []string

	mu      sync.Mutex
	dead    map[string]bool
	suspect map[string]bool
	views   map[string]*ring.View // per node; nil: a stable view of ring
}

type testNode struct {
	id    string
	fs    vfs.FS
	store *storage.Store
	ep    *memnet.Endpoint
	coord *Coordinator
}

// view is one node's Cluster: the shared ring and failure detector.
type view struct {
	c     *testCluster
	id    string
	ready bool
}

func (v view) View() *ring.View {
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	if rv := v.c.views[v.id]; rv != nil {
		return rv
	}
	return ring.Stable(v.c.ring, 1)
}

// setView makes nodes route by rv.
func (c *testCluster) setView(rv *ring.View, ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.views == nil {
		c.views = map[string]*ring.View{}
	}
	for _, id := range ids {
		c.views[id] = rv
	}
}
func (v view) Ready() bool { return v.ready }
func (v view) Dead(id string) bool {
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	return v.c.dead[id]
}
func (v view) Suspect(id string) bool {
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	return v.c.suspect[id]
}

func newTestCluster(t *testing.T, size int, cfg Config) *testCluster {
	t.Helper()
	return newLimitedCluster(t, size, cfg, storage.Limits{})
}

// newLimitedCluster is newTestCluster with the stores' record limits lim.
func newLimitedCluster(t *testing.T, size int, cfg Config, lim storage.Limits) *testCluster {
	t.Helper()
	c := &testCluster{t: t, net: memnet.New(1), nodes: map[string]*testNode{}, dead: map[string]bool{}, suspect: map[string]bool{}}
	for i := range size {
		c.ids = append(c.ids, "n"+strconv.Itoa(i+1))
	}
	var err error
	if c.ring, err = ring.New(c.ids, 64, 3); err != nil {
		t.Fatal(err)
	}
	for _, id := range c.ids {
		nd := &testNode{id: id, fs: vfs.NewMem()}
		if nd.store, err = storage.Open("data", storage.Options{NodeID: id, FS: nd.fs, Fsync: storage.FsyncNever, Limits: lim}); err != nil {
			t.Fatal(err)
		}
		nd.ep = c.net.Listen(id)
		if nd.coord, err = NewCoordinator(id, nd.store, view{c: c, id: id, ready: true}, nd.ep, cfg); err != nil {
			t.Fatal(err)
		}
		nd.coord.Register(nd.ep)
		c.nodes[id] = nd
	}
	t.Cleanup(c.close)
	return c
}

// close stops the nodes from the outside in: endpoints (no new calls,
// in-flight handlers done), coordinators (background replication), stores.
func (c *testCluster) close() {
	for _, nd := range c.nodes {
		nd.ep.Close()
	}
	for _, nd := range c.nodes {
		nd.coord.Close()
	}
	for _, nd := range c.nodes {
		if err := nd.store.Close(); err != nil {
			c.t.Errorf("close %s: %v", nd.id, err)
		}
	}
}

func (c *testCluster) setDead(ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		c.dead[id] = true
	}
}

func (c *testCluster) setSuspect(ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		c.suspect[id] = true
	}
}

// key returns a key whose primaries are exactly prims, in that order.
func (c *testCluster) key(prims ...string) []byte {
	c.t.Helper()
	for i := range 100000 {
		k := []byte("k" + strconv.Itoa(i))
		if slices.Equal(c.ring.Primaries(c.ring.PartitionOf(k)), prims) {
			return k
		}
	}
	c.t.Fatalf("no key with primaries %v", prims)
	return nil
}

// keyWhere returns a key whose preference list satisfies ok.
func (c *testCluster) keyWhere(ok func(prims, fallbacks []string) bool) []byte {
	c.t.Helper()
	for i := range 100000 {
		k := []byte("k" + strconv.Itoa(i))
		p := c.ring.PartitionOf(k)
		if ok(c.ring.Primaries(p), c.ring.Fallbacks(p)) {
			return k
		}
	}
	c.t.Fatal("no key with the wanted preference list")
	return nil
}

func (c *testCluster) prefs(key []byte) (prims, fallbacks []string) {
	p := c.ring.PartitionOf(key)
	return c.ring.Primaries(p), c.ring.Fallbacks(p)
}

// values returns the live sibling values in st, sorted.
func values(st versioning.State) []string {
	var out []string
	for _, s := range st.Siblings {
		if !s.Deleted {
			out = append(out, string(s.Value))
		}
	}
	slices.Sort(out)
	return out
}

// stored returns node id's own record of key (no quorum).
func (c *testCluster) stored(id string, key []byte) []string {
	c.t.Helper()
	st, _, err := c.nodes[id].store.Get(c.ring.PartitionOf(key), key)
	if err != nil {
		c.t.Fatal(err)
	}
	return values(st)
}

// hinted returns the values node holder keeps for target as a hint of key.
func (c *testCluster) hinted(holder, target string, key []byte) []string {
	c.t.Helper()
	st, _, err := c.nodes[holder].store.GetHint(target, c.ring.PartitionOf(key), key)
	if err != nil {
		c.t.Fatal(err)
	}
	return values(st)
}

// hintHolders returns, for key, "holder>target" for every hint in the cluster.
func (c *testCluster) hintHolders(key []byte) []string {
	var out []string
	for _, h := range c.ids {
		for _, tg := range c.ids {
			if len(c.hinted(h, tg, key)) > 0 {
				out = append(out, h+">"+tg)
			}
		}
	}
	return out
}

func (c *testCluster) put(via string, key []byte, value string, ctx versioning.VersionVector, o WriteOptions) (versioning.VersionVector, error) {
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.nodes[via].coord.Put(rctx, key, ctx, versioning.Sibling{Value: []byte(value), ContentType: "text/plain"}, o)
}

func (c *testCluster) get(via string, key []byte, o ReadOptions) (versioning.State, error) {
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.nodes[via].coord.Get(rctx, key, o)
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (it returns as soon as cond holds).
func (c *testCluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *testCluster) calls(method string) int { return c.net.Stats()[method].Calls }

func (c *testCluster) String() string { return fmt.Sprintf("cluster %v", c.ids) }
