package repair

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dotkv/dotkv/internal/memnet"
	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// Tests of stranded-record cleanup: a real pebble store holding records
// of partitions its node does not own, and owners serving
// MethodMergeStates on the in-memory network.

// serveNode opens id's store and serves its MethodMergeStates on net, for
// keys placed by partitionOf.
func serveNode(t *testing.T, net *aaeNet, id string, partitionOf func([]byte) uint32) (*storage.Store, *memnet.Endpoint) {
	t.Helper()
	s := open(t, id)
	ep := net.Listen(id)
	t.Cleanup(ep.Close) // before the store closes: no handler may run then
	ep.Handle(MethodMergeStates, HandleMergeStates(s, partitionOf))
	return s, ep
}

// keyState is a record a test puts on a node.
type keyState struct {
	key string
	p   uint32
	st  versioning.State
}

// putRecords writes n keys (prefix0, prefix1, ...) on a scratch
// coordinator and merges them into s, partitioned by v.
func putRecords(t *testing.T, s *storage.Store, v *ring.View, prefix string, n int) []keyState {
	t.Helper()
	coord := open(t, "w")
	var out []keyState
	for i := range n {
		k := fmt.Sprintf("%s%d", prefix, i)
		p := v.PartitionOf([]byte(k))
		st, _, err := coord.Write(p, []byte(k), nil, versioning.Sibling{Value: []byte("v-" + k)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Merge(p, []byte(k), st); err != nil {
			t.Fatal(err)
		}
		out = append(out, keyState{k, p, st})
	}
	return out
}

// holds reports whether s holds exactly st for ks's key.
func holds(t *testing.T, s *storage.Store, ks keyState, st versioning.State) bool {
	t.Helper()
	got, found, err := s.Get(ks.p, []byte(ks.key))
	if err != nil {
		t.Fatal(err)
	}
	return found && got.Equal(st)
}

// has reports whether s holds a record of ks's key.
func has(t *testing.T, s *storage.Store, ks keyState) bool {
	t.Helper()
	_, found, err := s.Get(ks.p, []byte(ks.key))
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// cleanCluster is node a, holding records, and owners b and c of a
// three-node ring with N = 2: each partition a does not own is owned by
// both b and c.
type cleanCluster struct {
	net    *aaeNet
	view   *ring.View
	stores map[string]*storage.Store
	a      *Cleaner
}

func newCleanCluster(t *testing.T, batch int) *cleanCluster {
	t.Helper()
	r, err := ring.New([]string{"a", "b", "c"}, 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	c := &cleanCluster{net: newAAENet(), view: ring.Stable(r, 1), stores: map[string]*storage.Store{}}
	var ep *memnet.Endpoint
	for _, id := range []string{"a", "b", "c"} {
		s, e := serveNode(t, c.net, id, r.PartitionOf)
		c.stores[id] = s
		if id == "a" {
			ep = e
		}
	}
	c.a, err = NewCleaner(CleanerConfig{Self: "a", Store: c.stores["a"], Peer: ep,
		View: func() *ring.View { return c.view }, Dead: c.net.isDead, Batch: batch})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// split returns the records of partitions a owns and of those it does
// not.
func (c *cleanCluster) split(recs []keyState) (owned, stranded []keyState) {
	for _, ks := range recs {
		if c.view.IsPrimary(ks.p, "a") {
			owned = append(owned, ks)
		} else {
			stranded = append(stranded, ks)
		}
	}
	return owned, stranded
}

func TestCleanerHandsStrandedRecordsToEveryOwner(t *testing.T) {
	c := newCleanCluster(t, 7)
	recs := putRecords(t, c.stores["a"], c.view, "k", 100)
	owned, stranded := c.split(recs)
	if len(owned) == 0 || len(stranded) < 20 {
		t.Fatalf("%d owned and %d stranded records: want some of each", len(owned), len(stranded))
	}
	moved, err := c.a.Round(context.Background())
	if err != nil || moved != len(stranded) || c.a.Moved() != uint64(len(stranded)) {
		t.Fatalf("Round moved %d (Moved %d), err %v; want %d", moved, c.a.Moved(), err, len(stranded))
	}
	for _, ks := range stranded {
		if has(t, c.stores["a"], ks) {
			t.Errorf("a still holds %s of partition %d, which it does not own", ks.key, ks.p)
		}
		for _, o := range c.view.Primaries(ks.p) {
			if !holds(t, c.stores[o], ks, ks.st) {
				t.Errorf("owner %s of partition %d lacks %s", o, ks.p, ks.key)
			}
		}
	}
	for _, ks := range owned {
		if !holds(t, c.stores["a"], ks, ks.st) {
			t.Errorf("a lost %s of partition %d, which it owns", ks.key, ks.p)
		}
	}
	calls := c.net.Stats()[MethodMergeStates].Calls
	if moved, err := c.a.Round(context.Background()); err != nil || moved != 0 {
		t.Fatalf("second round moved %d, err %v", moved, err)
	}
	if got := c.net.Stats()[MethodMergeStates].Calls; got != calls {
		t.Errorf("second round made %d merge calls with nothing stranded", got-calls)
	}
}

func TestCleanerKeepsRecordsUntilEveryOwnerAcknowledged(t *testing.T) {
	c := newCleanCluster(t, 0)
	_, stranded := c.split(putRecords(t, c.stores["a"], c.view, "k", 60))
	keptAll := func(when string) {
		t.Helper()
		for _, ks := range stranded {
			if !holds(t, c.stores["a"], ks, ks.st) {
				t.Fatalf("%s: a dropped %s", when, ks.key)
			}
		}
		if c.a.Moved() != 0 {
			t.Fatalf("%s: Moved = %d", when, c.a.Moved())
		}
	}

	// An owner gossip sees dead: the records wait, and nobody is called.
	c.net.setDead("c", true)
	if moved, err := c.a.Round(context.Background()); err != nil || moved != 0 {
		t.Fatalf("round with owner c dead moved %d, err %v", moved, err)
	}
	keptAll("owner c dead")
	if calls := c.net.Stats()[MethodMergeStates].Calls; calls != 0 {
		t.Fatalf("%d merge calls while an owner of every stranded partition is dead", calls)
	}

	// An owner that gossip sees alive but cannot be reached: b takes the
	// records, c does not acknowledge, a keeps them.
	c.net.setDead("c", false)
	c.net.Isolate("c")
	if moved, err := c.a.Round(context.Background()); err == nil || moved != 0 {
		t.Fatalf("round with owner c unreachable moved %d, err %v; want 0 and an error", moved, err)
	}
	keptAll("owner c unreachable")

	c.net.Heal()
	if moved, err := c.a.Round(context.Background()); err != nil || moved != len(stranded) {
		t.Fatalf("round after healing moved %d, err %v; want %d", moved, err, len(stranded))
	}
	for _, ks := range stranded {
		if has(t, c.stores["a"], ks) || !holds(t, c.stores["b"], ks, ks.st) || !holds(t, c.stores["c"], ks, ks.st) {
			t.Fatalf("after healing: %s not moved to b and c", ks.key)
		}
	}
}

// TestCleanerKeepsRecordRewrittenDuringHandOff: a record that changes
// while its batch is in flight holds state the owners have not
// acknowledged, so it stays until a later round hands it off.
func TestCleanerKeepsRecordRewrittenDuringHandOff(t *testing.T) {
	c := newCleanCluster(t, 0)
	_, stranded := c.split(putRecords(t, c.stores["a"], c.view, "k", 40))
	ks := stranded[0]
	newer, _, err := open(t, "w2").Write(ks.p, []byte(ks.key), ks.st.Context, versioning.Sibling{Value: []byte("newer")})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	c.net.OnDeliver(func(_, _, _ string, req []byte) {
		batch, err := decodeBatch(req)
		if err != nil {
			t.Error(err)
			return
		}
		if slices.ContainsFunc(batch, func(h storage.Hint) bool { return string(h.Key) == ks.key }) {
			once.Do(func() { // a write of the key lands on a meanwhile
				if _, err := c.stores["a"].Merge(ks.p, []byte(ks.key), newer); err != nil {
					t.Error(err)
				}
			})
		}
	})
	if moved, err := c.a.Round(context.Background()); err != nil || moved != len(stranded)-1 {
		t.Fatalf("Round moved %d, err %v; want %d", moved, err, len(stranded)-1)
	}
	if !holds(t, c.stores["a"], ks, newer) {
		t.Fatal("the record rewritten during its hand-off was deleted")
	}
	c.net.OnDeliver(nil)
	if moved, err := c.a.Round(context.Background()); err != nil || moved != 1 {
		t.Fatalf("second round moved %d, err %v; want 1", moved, err)
	}
	for _, o := range c.view.Primaries(ks.p) {
		if !holds(t, c.stores[o], ks, newer) {
			t.Errorf("owner %s lacks the rewritten record", o)
		}
	}
	if has(t, c.stores["a"], ks) {
		t.Error("a still holds the rewritten record after handing it off")
	}
}

// TestCleanerLeavesMovingPartitionsAlone: while d joins, the partitions
// it is receiving keep a's records (the transfer reads from their current
// owners); once they switch, a hands them to the new owners.
func TestCleanerLeavesMovingPartitionsAlone(t *testing.T) {
	cur, err := ring.New([]string{"a", "b", "c"}, 32, 2)
	if err != nil {
		t.Fatal(err)
	}
	next, err := ring.New([]string{"a", "b", "c", "d"}, 32, 2)
	if err != nil {
		t.Fatal(err)
	}
	changing := ring.NewView(cur, next, 2, "join-d", func(uint32, string) bool { return false }, nil, nil)
	done := ring.NewView(cur, next, 3, "join-d", func(uint32, string) bool { return true }, nil, nil)
	net := newAAENet()
	stores := map[string]*storage.Store{}
	var ep *memnet.Endpoint
	for _, id := range []string{"a", "b", "c", "d"} {
		s, e := serveNode(t, net, id, cur.PartitionOf)
		stores[id] = s
		if id == "a" {
			ep = e
		}
	}
	var view atomic.Pointer[ring.View]
	view.Store(changing)
	cl, err := NewCleaner(CleanerConfig{Self: "a", Store: stores["a"], Peer: ep, View: view.Load, Dead: net.isDead})
	if err != nil {
		t.Fatal(err)
	}

	// moving: partitions a does not own whose owners change; lost: those
	// a owns until d takes them over.
	var moving, settled, lost []keyState
	for _, ks := range putRecords(t, stores["a"], changing, "k", 200) {
		switch {
		case done.IsPrimary(ks.p, "a"):
		case changing.IsPrimary(ks.p, "a"):
			lost = append(lost, ks)
		case changing.Moving(ks.p):
			moving = append(moving, ks)
		default:
			settled = append(settled, ks)
		}
	}
	if len(moving) == 0 || len(settled) == 0 {
		t.Fatalf("%d records in moving and %d in settled partitions a does not own: want some of each", len(moving), len(settled))
	}

	if moved, err := cl.Round(context.Background()); err != nil || moved != len(settled) {
		t.Fatalf("round during the change moved %d, err %v; want %d", moved, err, len(settled))
	}
	for _, ks := range append(moving, lost...) {
		if !holds(t, stores["a"], ks, ks.st) {
			t.Fatalf("a handed off %s of moving partition %d", ks.key, ks.p)
		}
		for _, id := range []string{"b", "c", "d"} {
			if has(t, stores[id], ks) {
				t.Fatalf("%s received %s of moving partition %d from the cleaner", id, ks.key, ks.p)
			}
		}
	}

	view.Store(done)
	if moved, err := cl.Round(context.Background()); err != nil || moved != len(moving)+len(lost) {
		t.Fatalf("round after the switch moved %d, err %v; want %d", moved, err, len(moving)+len(lost))
	}
	for _, ks := range append(moving, lost...) {
		if has(t, stores["a"], ks) {
			t.Errorf("a still holds %s after its partition switched", ks.key)
		}
		for _, o := range done.Primaries(ks.p) {
			if !holds(t, stores[o], ks, ks.st) {
				t.Errorf("new owner %s of partition %d lacks %s", o, ks.p, ks.key)
			}
		}
	}
}

// deleteSignal is a store that reports each record it deletes.
type deleteSignal struct {
	*storage.Store
	deleted chan struct{}
}

func (s deleteSignal) DeleteIfUnchanged(p uint32, key, raw []byte) (bool, error) {
	ok, err := s.Store.DeleteIfUnchanged(p, key, raw)
	if ok {
		s.deleted <- struct{}{}
	}
	return ok, err
}

func TestCleanerRunHandsOffAndStops(t *testing.T) {
	c := newCleanCluster(t, 0)
	_, stranded := c.split(putRecords(t, c.stores["a"], c.view, "k", 30))
	sig := deleteSignal{c.stores["a"], make(chan struct{}, len(stranded))}
	ep := c.net.Bind("a2") // a second endpoint of a's
	t.Cleanup(ep.Close)
	cl, err := NewCleaner(CleanerConfig{Self: "a", Store: sig, Peer: ep,
		View: func() *ring.View { return c.view }, Dead: c.net.isDead, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { cl.Run(ctx); close(stopped) }()
	for range stranded {
		<-sig.deleted
	}
	cancel()
	<-stopped
	if cl.Moved() != uint64(len(stranded)) {
		t.Fatalf("Moved = %d, want %d", cl.Moved(), len(stranded))
	}
}

func TestNewCleanerValidates(t *testing.T) {
	s := open(t, "a")
	ep := memnet.New(1).Bind("a")
	t.Cleanup(ep.Close)
	ok := CleanerConfig{Self: "a", Store: s, Peer: ep,
		View: func() *ring.View { return nil }, Dead: func(string) bool { return false }}
	cl, err := NewCleaner(ok)
	if err != nil {
		t.Fatal(err)
	}
	if def := DefaultCleanerConfig(); cl.cfg.Interval != def.Interval || cl.cfg.Batch != def.Batch || cl.cfg.CallTimeout != def.CallTimeout {
		t.Errorf("zero fields not defaulted: %+v", cl.cfg)
	}
	if moved, err := cl.Round(context.Background()); err != nil || moved != 0 {
		t.Errorf("round without a view moved %d, err %v", moved, err)
	}
	for name, mod := range map[string]func(*CleanerConfig){
		"no self":          func(c *CleanerConfig) { c.Self = "" },
		"no store":         func(c *CleanerConfig) { c.Store = nil },
		"no view":          func(c *CleanerConfig) { c.View = nil },
		"negative batch":   func(c *CleanerConfig) { c.Batch = -1 },
		"negative timeout": func(c *CleanerConfig) { c.CallTimeout = -1 },
	} {
		bad := ok
		mod(&bad)
		if _, err := NewCleaner(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
