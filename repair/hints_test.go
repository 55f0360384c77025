package repair

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"

	"github.com/dotkv/dotkv/internal/memnet"
	"github.com/dotkv/dotkv/internal/wire"
	"github.com/dotkv/dotkv/ring"
	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, id string) *storage.Store {
	t.Helper()
	s, err := storage.Open("db", storage.Options{NodeID: id, FS: vfs.NewMem(), CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// hintNet puts a holder, n1, and a target, n3, serving its store's
// MethodMergeStates, on an in-memory network, and returns the network and
// the holder's endpoint (the deliverer's Peer).
func hintNet(t *testing.T, target *storage.Store) (*memnet.Network, *memnet.Endpoint) {
	t.Helper()
	net := memnet.New(1)
	holder, tgt := net.Listen("n1"), net.Listen("n3")
	t.Cleanup(holder.Close)
	t.Cleanup(tgt.Close)
	tgt.Handle(MethodMergeStates, HandleMergeStates(target, inPartition7))
	return net, holder
}

// inPartition7 is the partition function of the hint tests' target: they
// keep every key in partition 7.
func inPartition7([]byte) uint32 { return 7 }

// write makes a state for key on a scratch store (as a coordinator would).
func write(t *testing.T, coord *storage.Store, key, value string) versioning.State {
	t.Helper()
	st, _, err := coord.Write(7, []byte(key), nil, versioning.Sibling{Value: []byte(value), ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestDeliverToMergesAndDeletes(t *testing.T) {
	holder, target, coord := open(t, "n1"), open(t, "n3"), open(t, "n2")
	// The target already holds a concurrent version of one key: delivery
	// must merge, not overwrite.
	pre := write(t, open(t, "n4"), "k0", "concurrent")
	if _, err := target.Merge(7, []byte("k0"), pre); err != nil {
		t.Fatal(err)
	}
	want := map[string]versioning.State{}
	for i := range 600 {
		k := fmt.Sprintf("k%d", i)
		st := write(t, coord, k, "v")
		if _, err := holder.PutHint("n3", 7, []byte(k), st); err != nil {
			t.Fatal(err)
		}
		want[k] = st
	}
	want["k0"] = versioning.Sync(want["k0"], pre)
	net, peer := hintNet(t, target)
	d := NewDeliverer(DelivererConfig{Store: holder, Peer: peer, Dead: func(string) bool { return false }, Batch: 100})
	if err := d.DeliverTo(context.Background(), "n3"); err != nil {
		t.Fatal(err)
	}
	if got := net.Stats()[MethodMergeStates].Calls; got != 6 {
		t.Errorf("%d batch calls for 600 hints in batches of 100, want 6", got)
	}
	if d.Delivered() != 600 || len(holder.HintCounts()) != 0 {
		t.Fatalf("delivered %d, pending %v", d.Delivered(), holder.HintCounts())
	}
	for k, st := range want {
		got, found, err := target.Get(7, []byte(k))
		if err != nil || !found || !got.Equal(st) {
			t.Fatalf("target's %s = %+v (found %v, err %v), want %+v", k, got, found, err, st)
		}
	}
	// Delivering the same states again changes nothing (idempotent).
	for k, st := range want {
		if _, err := holder.PutHint("n3", 7, []byte(k), st); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.DeliverTo(context.Background(), "n3"); err != nil {
		t.Fatal(err)
	}
	for k, st := range want {
		if got, _, _ := target.Get(7, []byte(k)); !got.Equal(st) {
			t.Fatalf("redelivery changed %s", k)
		}
	}
}

func TestFailedDeliveryKeepsHints(t *testing.T) {
	holder, target, coord := open(t, "n1"), open(t, "n3"), open(t, "n2")
	for i := range 10 {
		k := fmt.Sprintf("k%d", i)
		if _, err := holder.PutHint("n3", 7, []byte(k), write(t, coord, k, "v")); err != nil {
			t.Fatal(err)
		}
	}
	net, peer := hintNet(t, target)
	net.Isolate("n3")
	d := NewDeliverer(DelivererConfig{Store: holder, Peer: peer, Dead: func(string) bool { return false }})
	if err := d.DeliverTo(context.Background(), "n3"); err == nil {
		t.Fatal("delivery through a failing peer reported success")
	}
	if got := holder.HintCounts()["n3"]; got != 10 || d.Failures() != 1 {
		t.Fatalf("after a failed delivery: %d hints pending, %d failures; want 10, 1", got, d.Failures())
	}
}

// TestHintCoalescedDuringDeliveryIsKept: a write coalesced into a hint
// after the deliverer read it is not deleted with the acknowledged batch.
func TestHintCoalescedDuringDeliveryIsKept(t *testing.T) {
	holder, target, coord := open(t, "n1"), open(t, "n3"), open(t, "n2")
	first := write(t, coord, "k", "v1")
	if _, err := holder.PutHint("n3", 7, []byte("k"), first); err != nil {
		t.Fatal(err)
	}
	second, _, err := coord.Write(7, []byte("k"), first.Context, versioning.Sibling{Value: []byte("v2")})
	if err != nil {
		t.Fatal(err)
	}
	net, peer := hintNet(t, target)
	once := false
	net.OnDeliver(func(_, _, _ string, _ []byte) { // a newer write arrives while the batch is in flight
		if !once {
			once = true
			if _, err := holder.PutHint("n3", 7, []byte("k"), second); err != nil {
				t.Error(err)
			}
		}
	})
	d := NewDeliverer(DelivererConfig{Store: holder, Peer: peer, Dead: func(string) bool { return false }})
	if err := d.DeliverTo(context.Background(), "n3"); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := holder.GetHint("n3", 7, []byte("k")); !ok || !got.Equal(second) {
		t.Fatalf("the coalesced hint was deleted or changed: %+v %v", got, ok)
	}
	net.OnDeliver(nil)
	if err := d.DeliverTo(context.Background(), "n3"); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := target.Get(7, []byte("k")); !got.Equal(second) || len(holder.HintCounts()) != 0 {
		t.Fatalf("second round: target %+v, pending %v", got, holder.HintCounts())
	}
}

func TestRoundSkipsDeadTargetsAndRunDrains(t *testing.T) {
	holder, target, coord := open(t, "n1"), open(t, "n3"), open(t, "n2")
	if _, err := holder.PutHint("n3", 7, []byte("k"), write(t, coord, "k", "v")); err != nil {
		t.Fatal(err)
	}
	var dead atomic.Bool
	dead.Store(true)
	net, peer := hintNet(t, target)
	sig := hintSignal{holder, make(chan struct{}, 1)}
	d := NewDeliverer(DelivererConfig{Store: sig, Peer: peer, Dead: func(string) bool { return dead.Load() }, Interval: time.Millisecond})
	d.round(context.Background())
	if net.Stats()[MethodMergeStates].Calls != 0 || holder.HintCounts()["n3"] != 1 {
		t.Fatal("a round delivered to a dead target")
	}
	dead.Store(false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	<-sig.deleted // Run delivered the hint
	cancel()
	<-done
	if got, _, _ := target.Get(7, []byte("k")); got.IsZero() {
		t.Fatal("the target lacks the delivered hint")
	}
}

// hintSignal is a hint store that reports each hint it deletes.
type hintSignal struct {
	*storage.Store
	deleted chan struct{}
}

func (s hintSignal) DeleteHintIfUnchanged(h storage.Hint) (bool, error) {
	ok, err := s.Store.DeleteHintIfUnchanged(h)
	if ok {
		s.deleted <- struct{}{}
	}
	return ok, err
}

// batchStates makes states to batch: one value, two concurrent siblings,
// and a tombstone.
func batchStates(t *testing.T) []storage.Hint {
	t.Helper()
	a, b := open(t, "n1"), open(t, "n2")
	one := write(t, a, "one", "v1")
	both := versioning.Sync(write(t, a, "both", "va"), write(t, b, "both", "vb"))
	if len(both.Siblings) != 2 {
		t.Fatalf("want two siblings, got %d", len(both.Siblings))
	}
	gone, _, err := a.Write(3, []byte("gone"), one.Context, versioning.Sibling{Deleted: true})
	if err != nil {
		t.Fatal(err)
	}
	return []storage.Hint{
		{Target: "n3", Partition: 7, Key: []byte("one"), State: one},
		{Target: "n3", Partition: 0xfffffffe, Key: []byte("both"), State: both},
		{Target: "n3", Partition: 3, Key: []byte{}, State: gone},
	}
}

// TestBatchRoundTrip: what encodeBatch writes, decodeBatch reads back
// (partitions, keys and states; targets are not sent), in the layout
// count | per hint: u32 partition, length-prefixed key and state.
func TestBatchRoundTrip(t *testing.T) {
	hints := batchStates(t)
	msg, err := encodeBatch(hints)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeBatch(msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(hints) {
		t.Fatalf("decoded %d hints, want %d", len(got), len(hints))
	}
	for i, h := range hints {
		g := got[i]
		if g.Partition != h.Partition || string(g.Key) != string(h.Key) || !g.State.Equal(h.State) || g.Target != "" {
			t.Errorf("hint %d: got %d %q %+v (target %q), want %d %q %+v",
				i, g.Partition, g.Key, g.State, g.Target, h.Partition, h.Key, h.State)
		}
	}

	// The layout, byte for byte, for one hint: nodes of different
	// versions must keep understanding each other.
	enc, err := hints[0].State.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 0, 0, 0, 7, 3, 'o', 'n', 'e', byte(len(enc))}
	if len(enc) >= 0x80 {
		t.Fatalf("state of %d bytes needs a longer length prefix than this test writes", len(enc))
	}
	want = append(want, enc...)
	if one, err := encodeBatch(hints[:1]); err != nil || !bytes.Equal(one, want) {
		t.Errorf("one hint encodes as %x (%v), want %x", one, err, want)
	}

	if empty, err := encodeBatch(nil); err != nil || !bytes.Equal(empty, []byte{0}) {
		t.Errorf("empty batch: %x, %v", empty, err)
	}
	if got, err := decodeBatch([]byte{0}); err != nil || len(got) != 0 {
		t.Errorf("empty batch decodes as %v, %v", got, err)
	}
}

// TestDecodeBatchRefusesMalformed: truncated input, trailing bytes, a
// count the message cannot hold and a state that does not decode are all
// wire.ErrMalformed.
func TestDecodeBatchRefusesMalformed(t *testing.T) {
	good, err := encodeBatch(batchStates(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(good) {
		if _, err := decodeBatch(good[:i]); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("truncated at %d of %d bytes: err %v", i, len(good), err)
		}
	}
	if _, err := decodeBatch(append(slices.Clone(good), 0)); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("trailing byte: err %v", err)
	}
	if _, err := decodeBatch(wire.Writer(nil).Uvarint(1 << 40)); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("huge count: err %v", err)
	}
	badState := wire.Writer(nil).Uvarint(1).U32(1).Bytes([]byte("k")).Bytes([]byte{0xff, 0xff, 0xff})
	if _, err := decodeBatch(badState); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("undecodable state: err %v", err)
	}
}

// TestHandlerRefusesMalformedBatches: the handler refuses a malformed
// batch whole — a good first entry followed by a bad one merges nothing —
// and merges a good one.
func TestHandlerRefusesMalformedBatches(t *testing.T) {
	target := open(t, "n3")
	h := HandleMergeStates(target, func([]byte) uint32 { return 1 })
	st := write(t, open(t, "n2"), "k", "v")
	good, err := encodeBatch([]storage.Hint{{Target: "n3", Partition: 1, Key: []byte("k"), State: st}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(good) {
		if _, err := h(context.Background(), "n1", good[:i]); err == nil {
			t.Fatalf("truncated batch (%d of %d bytes) accepted", i, len(good))
		}
	}
	if _, err := h(context.Background(), "n1", append(slices.Clone(good), 0)); err == nil {
		t.Fatal("trailing bytes accepted")
	}
	enc, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	half := wire.Writer(nil).Uvarint(2).U32(1).Bytes([]byte("k")).Bytes(enc).U32(1).Bytes([]byte("k2")).Bytes([]byte{0xff})
	if _, err := h(context.Background(), "n1", half); err == nil {
		t.Fatal("batch with an undecodable state accepted")
	}
	misplaced := wire.Writer(nil).Uvarint(2).U32(1).Bytes([]byte("k")).Bytes(enc).U32(2).Bytes([]byte("k2")).Bytes(enc)
	if _, err := h(context.Background(), "n1", misplaced); err == nil {
		t.Fatal("batch with a key outside the partition it names accepted")
	}
	if _, found, err := target.Get(1, []byte("k")); err != nil || found {
		t.Fatalf("refused batch merged its first entry (found %v, %v)", found, err)
	}
	if _, err := h(context.Background(), "n1", good); err != nil {
		t.Fatal(err)
	}
	if got, found, err := target.Get(1, []byte("k")); err != nil || !found || !got.Equal(st) {
		t.Fatalf("good batch: got %+v, found %v, %v", got, found, err)
	}
}

// retargetNet is a ring of n1 (the hint holder), n2 and n4 with N = 2;
// n3, the hints' target, was removed. Every node serves
// MethodMergeStates; n1 merges hints for its own partitions locally.
type retargetNet struct {
	net    *aaeNet
	view   *ring.View
	stores map[string]*storage.Store
	d      *Deliverer
}

func newRetargetNet(t *testing.T) *retargetNet {
	t.Helper()
	r, err := ring.New([]string{"n1", "n2", "n4"}, 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	x := &retargetNet{net: newAAENet(), view: ring.Stable(r, 2), stores: map[string]*storage.Store{}}
	var ep *memnet.Endpoint
	for _, id := range []string{"n1", "n2", "n4"} {
		s, e := serveNode(t, x.net, id, r.PartitionOf)
		x.stores[id] = s
		if id == "n1" {
			ep = e
		}
	}
	x.d = NewDeliverer(DelivererConfig{Store: x.stores["n1"], Peer: ep, Dead: x.net.isDead, Batch: 5,
		View: func() *ring.View { return x.view }, Self: "n1", Local: x.stores["n1"]})
	return x
}

// putHints stores hints for target on n1 about n keys, partitioned by the
// view.
func (x *retargetNet) putHints(t *testing.T, target, prefix string, n int) []keyState {
	t.Helper()
	coord := open(t, "w")
	var out []keyState
	for i := range n {
		k := fmt.Sprintf("%s%d", prefix, i)
		p := x.view.PartitionOf([]byte(k))
		st, _, err := coord.Write(p, []byte(k), nil, versioning.Sibling{Value: []byte("v-" + k)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.stores["n1"].PutHint(target, p, []byte(k), st); err != nil {
			t.Fatal(err)
		}
		out = append(out, keyState{k, p, st})
	}
	return out
}

// TestHintsOfRemovedTargetGoToOwners: hints for a node that is no longer
// a member reach every current owner of each hint's partition (this node
// included, merged locally), are deleted, and nothing is sent to the
// removed node; a member's hints still go to it.
func TestHintsOfRemovedTargetGoToOwners(t *testing.T) {
	x := newRetargetNet(t)
	gone := x.putHints(t, "n3", "k", 40)
	member := x.putHints(t, "n2", "m", 3)
	x.d.round(context.Background())
	if pending := x.stores["n1"].HintCounts(); len(pending) != 0 {
		t.Fatalf("hints pending after a round: %v", pending)
	}
	if x.d.Delivered() != uint64(len(gone)+len(member)) {
		t.Fatalf("Delivered = %d, want %d", x.d.Delivered(), len(gone)+len(member))
	}
	local := 0
	for _, ks := range gone {
		for _, o := range x.view.Primaries(ks.p) {
			if o == "n1" {
				local++
			}
			if !holds(t, x.stores[o], ks, ks.st) {
				t.Errorf("owner %s of partition %d lacks %s", o, ks.p, ks.key)
			}
		}
	}
	if local == 0 {
		t.Error("no hint's partition is owned by the holder: the local merge went untested")
	}
	for _, ks := range member {
		if !holds(t, x.stores["n2"], ks, ks.st) {
			t.Errorf("member n2 lacks its hint %s", ks.key)
		}
	}
	x.net.mu.Lock()
	defer x.net.mu.Unlock()
	if x.net.callsTo["n3"] != 0 {
		t.Errorf("%d calls to the removed node", x.net.callsTo["n3"])
	}
}

// TestHintsOfRemovedTargetWaitForOwners: a re-targeted hint stays while
// one of its owners is dead or fails the call, and goes once it is back;
// hints whose owners are all up go at once.
func TestHintsOfRemovedTargetWaitForOwners(t *testing.T) {
	x := newRetargetNet(t)
	hints := x.putHints(t, "n3", "k", 40)
	withN4 := func() (n int) {
		for _, ks := range hints {
			if x.view.IsPrimary(ks.p, "n4") {
				n++
			}
		}
		return n
	}()
	if withN4 == 0 || withN4 == len(hints) {
		t.Fatalf("%d of %d hints' partitions are owned by n4: want some", withN4, len(hints))
	}
	pending := func() int { return x.stores["n1"].HintCounts()["n3"] }

	x.net.setDead("n4", true)
	x.d.round(context.Background())
	if pending() != withN4 {
		t.Fatalf("with n4 dead: %d hints pending, want %d (those n4 owns)", pending(), withN4)
	}
	for _, ks := range hints {
		kept, _, err := x.stores["n1"].GetHint("n3", ks.p, []byte(ks.key))
		if err != nil {
			t.Fatal(err)
		}
		if x.view.IsPrimary(ks.p, "n4") == kept.IsZero() {
			t.Fatalf("%s (n4 owns it: %v): kept %v", ks.key, x.view.IsPrimary(ks.p, "n4"), !kept.IsZero())
		}
	}

	x.net.setDead("n4", false)
	x.net.Isolate("n4")
	failures := x.d.Failures()
	x.d.round(context.Background())
	if pending() != withN4 || x.d.Failures() == failures {
		t.Fatalf("with n4 unreachable: %d hints pending (want %d), failures %d -> %d", pending(), withN4, failures, x.d.Failures())
	}

	x.net.Heal()
	x.d.round(context.Background())
	if pending() != 0 {
		t.Fatalf("after healing: %d hints pending", pending())
	}
	for _, ks := range hints {
		for _, o := range x.view.Primaries(ks.p) {
			if !holds(t, x.stores[o], ks, ks.st) {
				t.Errorf("owner %s of partition %d lacks %s", o, ks.p, ks.key)
			}
		}
	}
}
