package gossip

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/memberlist"

	"github.com/dotkv/dotkv/storage"
)

// Gossip encryption on real memberlist and real loopback sockets, with
// the fast tuning, on 127.0.0.60–.75 (each test its own IPs). A node is
// kept out when memberlist refuses what it sends; the tests wait for
// evidence of that in the logs (logTap) rather than for a time.

// logTap records every log record of a node, debug included, as
// "LEVEL message key=value ...", and passes it on to the test's log.
type logTap struct {
	mu    sync.Mutex
	lines []string
}

func (tp *logTap) count(match func(line string) bool) int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	n := 0
	for _, l := range tp.lines {
		if match(l) {
			n++
		}
	}
	return n
}

func (tp *logTap) matching(match func(line string) bool) []string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	var out []string
	for _, l := range tp.lines {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}

type tapHandler struct {
	inner slog.Handler
	tap   *logTap
}

func (h tapHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h tapHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.tap.mu.Lock()
	h.tap.lines = append(h.tap.lines, b.String())
	h.tap.mu.Unlock()
	if h.inner.Enabled(ctx, r.Level) {
		return h.inner.Handle(ctx, r)
	}
	return nil
}

func (h tapHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return tapHandler{h.inner.WithAttrs(a), h.tap}
}

func (h tapHandler) WithGroup(name string) slog.Handler {
	return tapHandler{h.inner.WithGroup(name), h.tap}
}

// What the taps look for. memberlist logs "[ERR] memberlist: failed to
// receive: <why> from=<ip:port>" for a stream it refuses, "[ERR]
// memberlist: Decrypt packet failed: ..." for a packet, and "[DEBUG]
// memberlist: Stream connection from=<ip:port>" for every stream it
// accepts; logWriter turns the [ERR] into ERROR.
func refusedFrom(ip string) func(string) bool {
	return func(l string) bool { return strings.HasPrefix(l, "ERROR") && strings.Contains(l, "from="+ip+":") }
}

func cryptError(l string) bool {
	return strings.HasPrefix(l, "ERROR") && strings.Contains(strings.ToLower(l), "crypt")
}

func streamFrom(ips []string) func(string) bool {
	return func(l string) bool {
		return strings.Contains(l, "Stream connection") && slices.ContainsFunc(ips, func(ip string) bool {
			return strings.Contains(l, "from="+ip+":")
		})
	}
}

func joinFailed(l string) bool { return strings.Contains(l, "gossip: rejoin failed") }

func mismatchWarned(l string) bool { return strings.Contains(l, msgKeyMismatch) }

// keyNode is a node of these tests.
type keyNode struct {
	*testNode
	ip  string
	tap *logTap
}

// startKeyed starts a node as startNode does, with gossip keys (nil:
// plain gossip) and a log tap, and returns Start's error.
func startKeyed(t *testing.T, id, ip string, join []string, keys [][]byte, store Store, newCluster bool) (*keyNode, error) {
	t.Helper()
	tap := &logTap{}
	cfg := testConfig(t, id, ip, join, store)
	cfg.NewCluster, cfg.Keys = newCluster, keys
	cfg.Logger = slog.New(tapHandler{testLogger(t).Handler(), tap})
	n, err := startWith(t, cfg)
	if err != nil {
		return nil, err
	}
	return &keyNode{testNode: n, ip: ip, tap: tap}, nil
}

func mustStartKeyed(t *testing.T, id, ip string, join []string, keys [][]byte, store Store, newCluster bool) *keyNode {
	t.Helper()
	n, err := startKeyed(t, id, ip, join, keys, store, newCluster)
	if err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	return n
}

func newKey(t *testing.T) []byte {
	t.Helper()
	s, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testNodes(nodes []*keyNode) []*testNode {
	out := make([]*testNode, len(nodes))
	for i, n := range nodes {
		out[i] = n.testNode
	}
	return out
}

func ids(nodes []*keyNode) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.id
	}
	slices.Sort(out)
	return out
}

func memberIDs(m *Membership) []string {
	var out []string
	for _, mem := range m.Members() {
		out = append(out, mem.ID)
	}
	return out
}

// waitConverged waits until every node sees every node an alive member,
// and is ready.
func waitConverged(t *testing.T, nodes []*keyNode) {
	t.Helper()
	took := waitFor(t, waitLimit, "every node a ready, alive member everywhere", func() bool {
		for _, n := range nodes {
			if !n.m.Ready() {
				return false
			}
		}
		return allSee(testNodes(nodes), testNodes(nodes), Alive)
	})
	t.Logf("%d nodes converged in %v", len(nodes), took)
}

// waitStreams waits until every node has accepted more streams (push-pull
// exchanges, TCP probes) from the others: gossip under the current keys
// went on for a while.
func waitStreams(t *testing.T, nodes []*keyNode, more int) {
	t.Helper()
	var ips []string
	for _, n := range nodes {
		ips = append(ips, n.ip)
	}
	base := make([]int, len(nodes))
	for i, n := range nodes {
		base[i] = n.tap.count(streamFrom(ips))
	}
	waitFor(t, waitLimit, "streams between the nodes", func() bool {
		for i, n := range nodes {
			if n.tap.count(streamFrom(ips)) < base[i]+more {
				return false
			}
		}
		return true
	})
}

// assertKeptOut checks that nodes started with Join = [good[0]] under
// other gossip keys never become members, and never even known to
// memberlist. "Never" is established thus: memberlist learns of a node
// only from a message it decrypted, and a new member spreads through the
// cluster within a few gossip and push-pull rounds. So the test waits
// until each bad node has made several complete join attempts (its own
// log) which the seed refused (the seed's log, by the bad node's IP), and
// then until every good node has accepted several more push-pull
// streams from the others; by then anything that got in would be
// everywhere. It then checks both sides' views.
func assertKeptOut(t *testing.T, good []*keyNode, bad ...*keyNode) {
	t.Helper()
	const attempts = 5
	seed := good[0]
	took := waitFor(t, waitLimit, "refused join attempts", func() bool {
		for _, b := range bad {
			if b.tap.count(joinFailed) < attempts || b.tap.count(mismatchWarned) == 0 || seed.tap.count(refusedFrom(b.ip)) < attempts {
				return false
			}
		}
		return true
	})
	t.Logf("%d join attempts of each of %v refused in %v; e.g. %q", attempts, ids(bad), took, seed.tap.matching(refusedFrom(bad[0].ip))[0])
	waitStreams(t, good, 3)

	want := ids(good)
	for _, g := range good {
		if got := memberIDs(g.m); !slices.Equal(got, want) {
			t.Errorf("%s: members %v, want %v", g.id, got, want)
		}
		for _, b := range bad {
			if slices.ContainsFunc(g.m.ml.Members(), func(n *memberlist.Node) bool { return n.Name == b.id }) {
				t.Errorf("%s: memberlist lists %s", g.id, b.id)
			}
			// Hosts covers every node memberlist ever reported, dead ones
			// included.
			if h := g.m.Hosts(b.id); h != nil || g.m.Liveness(b.id) != Dead {
				t.Errorf("%s knows %s: hosts %v, liveness %s", g.id, b.id, h, g.m.Liveness(b.id))
			}
		}
	}
	for _, b := range bad {
		if b.m.Ready() {
			t.Errorf("%s is ready", b.id)
		}
		if n := b.m.ml.NumMembers(); n != 1 {
			t.Errorf("%s: memberlist has %d members, want itself alone", b.id, n)
		}
		for _, g := range good {
			if _, ok := b.m.Member(g.id); ok || b.m.Hosts(g.id) != nil {
				t.Errorf("%s knows %s", b.id, g.id)
			}
		}
	}
}

// TestGossipKeyClusterFormsAndKeepsOthersOut: three nodes with the same
// key form a cluster; a node with another key and a node with none,
// started to join it, never get in.
func TestGossipKeyClusterFormsAndKeepsOthersOut(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	n1 := mustStartKeyed(t, "n1", "127.0.0.60", nil, [][]byte{k}, nil, true)
	join := []string{n1.m.GossipAddr()}
	n2 := mustStartKeyed(t, "n2", "127.0.0.61", join, [][]byte{k}, nil, false)
	n3 := mustStartKeyed(t, "n3", "127.0.0.62", join, [][]byte{k}, nil, false)
	good := []*keyNode{n1, n2, n3}
	waitConverged(t, good)
	for _, n := range good {
		if got := n.m.keyring.GetKeys(); len(got) != 1 || !slices.Equal(got[0], k) {
			t.Fatalf("%s: keyring has %d keys, or not k", n.id, len(got))
		}
	}

	other := mustStartKeyed(t, "x1", "127.0.0.63", join, [][]byte{testKey(0x5a, 16)}, nil, false)
	none := mustStartKeyed(t, "x2", "127.0.0.64", join, nil, nil, false)
	assertKeptOut(t, good, other, none)
	for _, n := range good {
		if l := n.tap.matching(func(l string) bool { return cryptError(l) && !refusedFrom(other.ip)(l) && !refusedFrom(none.ip)(l) }); len(l) > 0 {
			t.Errorf("%s refused messages from a cluster member: %q", n.id, l)
		}
	}
}

// TestGossipKeyNewClusterRefusesToFormBesideAnotherKey: a fresh node with
// --new-cluster whose --join address answers under another key (or
// encryption setting) does not form a cluster of its own: Start fails.
// With the right key it joins. SetKeys refuses to turn encryption on or
// off.
func TestGossipKeyNewClusterRefusesToFormBesideAnotherKey(t *testing.T) {
	t.Parallel()
	k1, k2 := newKey(t), newKey(t)
	keyed := mustStartKeyed(t, "n1", "127.0.0.65", nil, [][]byte{k1}, nil, true)
	plain := mustStartKeyed(t, "p1", "127.0.0.74", nil, nil, nil, true)
	for _, c := range []struct {
		id     string
		to     *keyNode
		keys   [][]byte
		reason string
	}{
		{"x1", keyed, [][]byte{k2}, "it gossips under another key"},
		{"x2", keyed, nil, "it encrypts gossip and this node has no key"},
		{"x3", plain, [][]byte{k1}, "this node encrypts gossip and it does not"},
	} {
		n, err := startKeyed(t, c.id, "127.0.0.75", []string{c.to.m.GossipAddr()}, c.keys, nil, true)
		if err == nil {
			t.Errorf("%s (joining %s): started (ready %v, ring %v); want ErrKeyMismatch", c.id, c.to.id, n.m.Ready(), n.m.View().Members())
			_ = n.m.Close()
			continue
		}
		if !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s (joining %s): %v; want ErrKeyMismatch saying %q", c.id, c.to.id, err, c.reason)
		}
		t.Logf("%s: %v", c.id, err)
		if h := c.to.m.Hosts(c.id); h != nil {
			t.Errorf("%s knows %s: %v", c.to.id, c.id, h)
		}
	}

	j := mustStartKeyed(t, "j1", "127.0.0.75", []string{keyed.m.GossipAddr()}, [][]byte{k1}, nil, true)
	waitConverged(t, []*keyNode{keyed, j})
	if got := j.m.View().Members(); !slices.Equal(got, []string{"j1", "n1"}) {
		t.Errorf("j1's ring %v, want it joined to n1's", got)
	}

	if err := plain.m.SetKeys([][]byte{k1}); !errors.Is(err, ErrEncryptionChange) {
		t.Errorf("SetKeys on a plain node: %v, want ErrEncryptionChange", err)
	}
	if err := keyed.m.SetKeys(nil); !errors.Is(err, ErrEncryptionChange) {
		t.Errorf("SetKeys(nil) on an encrypted node: %v, want ErrEncryptionChange", err)
	}
	if err := keyed.m.SetKeys([][]byte{testKey(1, 20)}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("SetKeys with a 20-byte key: %v, want ErrInvalidConfig", err)
	}
	if got := keyed.m.keyring.GetKeys(); len(got) != 1 || !slices.Equal(got[0], k1) {
		t.Errorf("refused SetKeys changed the keyring: %d keys", len(got))
	}
}

// TestGossipKeyRotation rotates a running cluster from k1 to k2 with
// SetKeys on every node at each step ([k1 k2], [k2 k1], [k2]), waiting
// for gossip between the steps: no node refuses a single message, the
// members stay alive, a node with k2 alone then joins, and a node with k1
// alone cannot.
func TestGossipKeyRotation(t *testing.T) {
	t.Parallel()
	k1, k2 := newKey(t), newKey(t)
	n1 := mustStartKeyed(t, "n1", "127.0.0.66", nil, [][]byte{k1}, nil, true)
	join := []string{n1.m.GossipAddr()}
	n2 := mustStartKeyed(t, "n2", "127.0.0.67", join, [][]byte{k1}, nil, false)
	n3 := mustStartKeyed(t, "n3", "127.0.0.68", join, [][]byte{k1}, nil, false)
	nodes := []*keyNode{n1, n2, n3}
	waitConverged(t, nodes)

	for _, keys := range [][][]byte{{k1, k2}, {k2, k1}, {k2}} {
		for _, n := range nodes {
			if err := n.m.SetKeys(keys); err != nil {
				t.Fatalf("%s: SetKeys: %v", n.id, err)
			}
			got := n.m.keyring.GetKeys()
			if len(got) != len(keys) || !slices.Equal(got[0], keys[0]) {
				t.Fatalf("%s: keyring has %d keys after SetKeys of %d, or the wrong primary", n.id, len(got), len(keys))
			}
		}
		waitStreams(t, nodes, 3)
		waitConverged(t, nodes)
	}
	for _, n := range nodes {
		if l := n.tap.matching(cryptError); len(l) > 0 {
			t.Errorf("%s refused messages during the rotation: %q", n.id, l)
		}
	}
	if err := n1.m.SetKeys([][]byte{k2}); err != nil { // SIGHUP, file unchanged
		t.Errorf("SetKeys with the current keys: %v", err)
	}

	n4 := mustStartKeyed(t, "n4", "127.0.0.69", join, [][]byte{k2}, nil, false)
	nodes = append(nodes, n4)
	waitConverged(t, nodes)
	old := mustStartKeyed(t, "n5", "127.0.0.70", join, [][]byte{k1}, nil, false)
	assertKeptOut(t, nodes, old)
}

// TestGossipKeyRestartedNodeWithAnotherKeyDoesNotServe: a member
// restarted with its data directory but another key hears its recorded
// peers answer under their key; it must not take that for "none
// answered" and serve alone on its recorded ring. Restarted with the
// cluster's key, it rejoins.
func TestGossipKeyRestartedNodeWithAnotherKeyDoesNotServe(t *testing.T) {
	t.Parallel()
	k1, k2 := newKey(t), newKey(t)
	fs := vfs.NewMem()
	openStore := func() *storage.Store {
		st, err := storage.Open("n3", storage.Options{NodeID: "n3", FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := openStore()
	n1 := mustStartKeyed(t, "n1", "127.0.0.71", nil, [][]byte{k1}, nil, true)
	join := []string{n1.m.GossipAddr()}
	n2 := mustStartKeyed(t, "n2", "127.0.0.72", join, [][]byte{k1}, nil, false)
	n3 := mustStartKeyed(t, "n3", "127.0.0.73", join, [][]byte{k1}, st, false)
	waitConverged(t, []*keyNode{n1, n2, n3})
	n3.m.crash()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitLimit, "n3 dead on n1 and n2", func() bool {
		return n1.m.Liveness("n3") == Dead && n2.m.Liveness("n3") == Dead
	})

	st = openStore()
	n3 = mustStartKeyed(t, "n3", "127.0.0.73", nil, [][]byte{k2}, st, false)
	waitFor(t, waitLimit, "n3's rejoin attempts refused", func() bool {
		return n3.tap.count(mismatchWarned) > 0 && n3.tap.count(joinFailed) >= 6 &&
			n1.tap.count(refusedFrom(n3.ip)) >= 2 && n2.tap.count(refusedFrom(n3.ip)) >= 2
	})
	if n3.m.Ready() {
		t.Fatal("n3, restarted with another key, serves on its recorded ring")
	}
	select {
	case <-n3.m.ReadyCh():
		t.Fatal("n3, restarted with another key, was ready")
	default:
	}
	if n1.m.Liveness("n3") != Dead || n2.m.Liveness("n3") != Dead {
		t.Fatalf("n3 with another key is %s on n1, %s on n2", n1.m.Liveness("n3"), n2.m.Liveness("n3"))
	}
	n3.m.crash()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore()
	t.Cleanup(func() { _ = st.Close() })
	n3 = mustStartKeyed(t, "n3", "127.0.0.73", nil, [][]byte{k1}, st, false)
	waitConverged(t, []*keyNode{n1, n2, n3})
}
