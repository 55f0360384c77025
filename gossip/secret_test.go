package gossip

import (
	"bytes"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dotkv/dotkv/internal/bubble"
	"github.com/dotkv/dotkv/internal/memnet"
)

// memStore is a Store in memory.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) GetMeta(name string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[name]
	return bytes.Clone(v), ok, nil
}

func (s *memStore) SetMeta(name string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[name] = bytes.Clone(v)
	return nil
}

func (s *memStore) delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
}

// secretNode is a Membership on memnet that records what OnSecret gave it.
type secretNode struct {
	id      string
	m       *Membership
	store   *memStore
	secrets atomic.Pointer[[][]byte] // the latest OnSecret call
	stop    func()
}

// secretCluster starts Memberships on one memnet network in a synctest
// bubble and closes them at the end.
type secretCluster struct {
	t     *testing.T
	net   *memnet.Network
	nodes []*secretNode
}

func newSecretCluster(t *testing.T) *secretCluster {
	net := memnet.New(1)
	net.SetFaults(memnet.Faults{MinDelay: 100 * time.Microsecond, MaxDelay: time.Millisecond})
	return &secretCluster{t: t, net: net}
}

// start starts node id (i is its address index) on store, joining join.
func (c *secretCluster) start(id string, i int, store *memStore, join []string, configure func(*Config)) *secretNode {
	c.t.Helper()
	n := &secretNode{id: id, store: store}
	cfg := Config{
		NodeID:     id,
		Transport:  c.net.Gossip(id, fmt.Sprintf("10.2.0.%d:7946", i)),
		HTTPAddr:   fmt.Sprintf("10.2.0.%d:8080", i),
		RPCAddr:    fmt.Sprintf("10.2.0.%d:7947", i),
		Join:       join,
		NewCluster: len(join) == 0,
		Store:      store,
		Partitions: 64,
		OnSecret:   func(s [][]byte) { n.secrets.Store(&s) },
	}
	if configure != nil {
		configure(&cfg)
	}
	m, err := Start(cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", id, err)
	}
	n.m, n.stop = m, autoReceive(m, id)
	c.nodes = append(c.nodes, n)
	return n
}

func (n *secretNode) close(t *testing.T) {
	if n.stop != nil {
		n.stop()
		n.stop = nil
		if err := n.m.Close(); err != nil {
			t.Error(err)
		}
	}
}

func (c *secretCluster) close() {
	for _, n := range c.nodes {
		n.close(c.t)
	}
	time.Sleep(time.Minute) // memberlist's probe goroutines outlive Shutdown
}

func (c *secretCluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out (virtual) waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// current returns the secret the node signs with (nil if none).
func (n *secretNode) current() []byte {
	if s := n.secrets.Load(); s != nil {
		return (*s)[0]
	}
	return nil
}

// stored returns the secret recorded in the node's store (nil if none).
func (n *secretNode) stored() []byte {
	b, ok, _ := n.store.GetMeta(secretKey)
	if s, valid := decodeSecret(b); ok && valid {
		return s.key
	}
	return nil
}

// TestJoiningNodesAdoptTheClusterSecret: the first node generates the
// secret, nodes that join adopt and record it, and no node is ready
// before it has it.
func TestJoiningNodesAdoptTheClusterSecret(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		c := newSecretCluster(t)
		defer c.close()
		n1 := c.start("n1", 1, &memStore{}, nil, nil)
		if !n1.m.Ready() || len(n1.current()) != secretLen || !bytes.Equal(n1.stored(), n1.current()) {
			t.Fatalf("the forming node: ready %v, secret %x, recorded %x; want ready with a recorded %d-byte secret",
				n1.m.Ready(), n1.current(), n1.stored(), secretLen)
		}
		var late atomic.Int32 // nodes whose secret was not known when they turned ready
		for i := 2; i <= 3; i++ {
			n := c.start(fmt.Sprintf("n%d", i), i, &memStore{}, []string{"10.2.0.1:7946"}, nil)
			go func() {
				<-n.m.ReadyCh()
				if n.current() == nil {
					late.Add(1)
				}
			}()
		}
		c.waitFor("every node ready and a member", func() bool {
			for _, n := range c.nodes {
				if mem, _ := n.m.Member(n.id); !n.m.Ready() || mem.Status != StatusMember || len(n.m.Members()) != 3 {
					return false
				}
			}
			return true
		})
		synctest.Wait()
		if late.Load() != 0 {
			t.Fatalf("%d joining nodes turned ready before they had the secret", late.Load())
		}
		for _, n := range c.nodes[1:] {
			if !bytes.Equal(n.current(), n1.current()) || !bytes.Equal(n.stored(), n1.current()) {
				t.Errorf("%s: secret %x, recorded %x; want n1's %x", n.id, n.current(), n.stored(), n1.current())
			}
		}
	})
}

// TestExternalSecretIsNeitherGeneratedNorGossiped: nodes given the
// secret (--cluster-secret-file) are ready without one of gossip's, send
// none and record none; a node without it that tries to join them waits,
// neither joined nor ready.
func TestExternalSecretIsNeitherGeneratedNorGossiped(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		c := newSecretCluster(t)
		defer c.close()
		external := func(cfg *Config) { cfg.ExternalSecret = true }
		n1 := c.start("n1", 1, &memStore{}, nil, external)
		n2 := c.start("n2", 2, &memStore{}, []string{"10.2.0.1:7946"}, external)
		c.waitFor("n1 and n2 ready members", func() bool {
			m, _ := n1.m.Member("n2")
			return n2.m.Ready() && m.Status == StatusMember
		})
		for _, n := range []*secretNode{n1, n2} {
			if n.current() != nil || n.stored() != nil {
				t.Errorf("%s: gossip made a secret (%x, recorded %x) with an external one", n.id, n.current(), n.stored())
			}
			if _, s, err := decodeWire(*n.m.local.Load()); err != nil || s != nil {
				t.Errorf("%s: push-pull state carries a secret (%v, %v)", n.id, s, err)
			}
		}
		n3 := c.start("n3", 3, &memStore{}, []string{"10.2.0.1:7946"}, nil)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if _, ok := n1.m.Member("n3"); ok || n3.m.Ready() {
			t.Fatalf("a node without the secret joined a cluster that sends none: ready %v, in n1's view %v", n3.m.Ready(), ok)
		}
	})
}

// TestNodesWithDifferentSecretsKeepTheOlder: nodes whose data directories
// hold ring state but no secret (an older dotkv's) each generate one at
// start; they converge on the older, and the node that gives its own up
// still verifies with it.
func TestNodesWithDifferentSecretsKeepTheOlder(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		c := newSecretCluster(t)
		defer c.close()
		s1, s2 := &memStore{}, &memStore{}
		n1 := c.start("n1", 1, s1, nil, nil)
		n2 := c.start("n2", 2, s2, []string{"10.2.0.1:7946"}, nil)
		c.waitFor("n2 a ready member", func() bool {
			m, _ := n1.m.Member("n2")
			return n2.m.Ready() && m.Status == StatusMember
		})
		n1.close(t)
		n2.close(t)
		s1.delete(secretKey)
		s2.delete(secretKey)
		c.nodes = nil

		n1 = c.start("n1", 1, s1, nil, nil)
		time.Sleep(time.Millisecond) // n2's secret is younger
		n2 = c.start("n2", 2, s2, nil, nil)
		older := n1.current()
		if older == nil || n2.current() == nil || bytes.Equal(older, n2.current()) {
			t.Fatalf("restarted without secrets: n1 %x, n2 %x; want two new secrets", older, n2.current())
		}
		own := n2.current()
		c.waitFor("both on n1's (older) secret", func() bool {
			return bytes.Equal(n2.current(), older) && bytes.Equal(n2.stored(), older)
		})
		if s := *n2.secrets.Load(); len(s) != 2 || !bytes.Equal(s[1], own) {
			t.Errorf("n2's secrets after adopting n1's: %x; want n1's, then its own", s)
		}
		if s := *n1.secrets.Load(); len(s) != 1 || !bytes.Equal(n1.stored(), older) {
			t.Errorf("n1's secrets: %x, recorded %x; want its own alone", s, n1.stored())
		}
	})
}

func TestSecretOrderAndEncoding(t *testing.T) {
	a := clusterSecret{key: bytes.Repeat([]byte{9}, 32), born: 100}
	b := clusterSecret{key: bytes.Repeat([]byte{1}, 32), born: 200}
	c := clusterSecret{key: bytes.Repeat([]byte{2}, 32), born: 200}
	if !a.older(b) || b.older(a) || !b.older(c) || c.older(b) || a.older(a) {
		t.Fatal("older: want the earlier date first, then the smaller bytes")
	}
	var in inbox
	for _, s := range []clusterSecret{c, a, b} {
		in.addState(ringState{}, &s)
	}
	if _, got, _, _, _ := in.take(); got == nil || !got.equal(a) {
		t.Fatalf("the inbox kept %+v; want the oldest", got)
	}
	if got, ok := decodeSecret(a.encode()); !ok || !got.equal(a) {
		t.Fatalf("secret encoding round trip: %+v, %v", got, ok)
	}
	for _, bad := range [][]byte{nil, make([]byte, 8+minSecretLen-1), make([]byte, 7)} {
		if _, ok := decodeSecret(bad); ok {
			t.Errorf("decodeSecret(%d bytes) accepted", len(bad))
		}
	}
	st := ringState{"n1": {Status: StatusMember, Version: 1}}
	s, sec, err := decodeWire(encodeWire(st, &a))
	if err != nil || sec == nil || !sec.equal(a) || !maps.EqualFunc(s, st, func(x, y entry) bool { return compareEntries(x, y) == 0 }) {
		t.Fatalf("wire round trip with a secret: %v %+v %v", s, sec, err)
	}
	if _, sec, _ := decodeWire(encodeState(st)); sec != nil {
		t.Fatal("encodeState carries a secret")
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	st := &memStore{}
	s1, err := LoadOrCreateSecret(st)
	if err != nil || len(s1) != secretLen {
		t.Fatalf("LoadOrCreateSecret = %x, %v", s1, err)
	}
	if s2, err := LoadOrCreateSecret(st); err != nil || !bytes.Equal(s1, s2) {
		t.Fatalf("second LoadOrCreateSecret = %x, %v; want the recorded %x", s2, err, s1)
	}
}
