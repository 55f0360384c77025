package replica

import (
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/dotkv/dotkv/internal/wire"
	"github.com/dotkv/dotkv/ring"
)

// joinViews returns, for a 4-node test cluster whose first three nodes
// are members and n4 joins, the view of the join in progress and a key
// that moves to n4 (its current owners are n1..n3 in some order).
func joinViews(t *testing.T, c *testCluster) (*ring.View, []byte) {
	t.Helper()
	cur, err := ring.New([]string{"n1", "n2", "n3"}, 64, 3)
	if err != nil {
		t.Fatal(err)
	}
	next, err := ring.New([]string{"n1", "n2", "n3", "n4"}, 64, 3)
	if err != nil {
		t.Fatal(err)
	}
	v := ring.NewView(cur, next, 10, "join/n4/1", func(uint32, string) bool { return false }, nil, nil)
	for i := range 100000 {
		k := []byte("k" + strconv.Itoa(i))
		if p := v.PartitionOf(k); slices.Contains(v.Receiving(p), "n4") {
			return v, k
		}
	}
	t.Fatal("no key moves to n4")
	return nil, nil
}

// TestWriteDuringJoinReachesAndCountsTheNewOwner: while n4 receives a
// partition, a write goes to its three current owners and to n4, and
// needs one ack more than its level: the new owner's share.
func TestWriteDuringJoinReachesAndCountsTheNewOwner(t *testing.T) {
	c := newTestCluster(t, 4, Config{DisableHints: true})
	v, k := joinViews(t, c)
	c.setView(v, c.ids...)
	p := v.PartitionOf(k)
	readers := v.Readers(p)
	if _, err := c.put(readers[0], k, "a", nil, WriteOptions{W: Quorum}); err != nil {
		t.Fatal(err)
	}
	c.waitFor("n4 to hold the write", func() bool { return slices.Equal(c.stored("n4", k), []string{"a"}) })

	// Two of the four write owners unreachable: 2 acks, where a
	// quorum write now needs 2 + 1.
	c.net.Isolate("n4", readers[2])
	_, err := c.put(readers[0], k, "b", nil, WriteOptions{W: Quorum})
	var ue *UnavailableError
	if !errors.As(err, &ue) || ue.Required != 3 {
		t.Fatalf("quorum write with the new owner and one reader cut off: %v, want unavailable needing 3", err)
	}
	// With the change complete (n4 received p), the same write meets its
	// quorum among the new owners that answer.
	c.net.Heal()
	done := ring.NewView(v.Current(), v.Target(), 11, v.Change(), func(uint32, string) bool { return true }, nil, nil)
	c.setView(done, c.ids...)
	if got := done.Readers(p); !slices.Contains(got, "n4") || len(got) != 3 {
		t.Fatalf("readers after the switch: %v", got)
	}
}

// TestReceiverNeverAnswersReads: a read is answered by current owners
// only: through the receiving node too, and a read sent to the receiver
// as an owner is refused, not answered "not found".
func TestReceiverNeverAnswersReads(t *testing.T) {
	c := newTestCluster(t, 4, Config{})
	v, k := joinViews(t, c)
	p := v.PartitionOf(k)
	// The value exists on the current owners only (written before the join).
	c.setView(ring.Stable(v.Current(), 9), c.ids...)
	if _, err := c.put(v.Readers(p)[0], k, "old", nil, WriteOptions{W: All}); err != nil {
		t.Fatal(err)
	}
	c.setView(v, c.ids...)
	for range 20 {
		st, err := c.get("n4", k, ReadOptions{R: One})
		if err != nil || !slices.Equal(values(st), []string{"old"}) {
			t.Fatalf("read at r=one through the receiver: %v %v", values(st), err)
		}
	}
	msg := wire.Writer(nil).U64(10).U32(p).Bytes(k).Byte(0)
	if _, err := c.nodes["n4"].coord.handleRead(t.Context(), "n1", msg); !errors.Is(err, errNotOwner) {
		t.Fatalf("read of a receiving partition: %v, want not owner", err)
	}
}

// TestStaleCoordinatorGetsNotOwner: a node whose newer view no longer
// makes it an owner refuses a copy from a coordinator with an older view,
// so the coordinator cannot count it; from a newer view it accepts.
func TestStaleCoordinatorGetsNotOwner(t *testing.T) {
	c := newTestCluster(t, 4, Config{DisableHints: true})
	old, err := ring.New([]string{"n1", "n2", "n3"}, 64, 3)
	if err != nil {
		t.Fatal(err)
	}
	now, err := ring.New([]string{"n1", "n2", "n3", "n4"}, 64, 3)
	if err != nil {
		t.Fatal(err)
	}
	var k []byte
	for i := range 100000 {
		cand := []byte("k" + strconv.Itoa(i))
		p := old.PartitionOf(cand)
		if old.Primaries(p)[0] == "n1" && !now.IsPrimary(p, "n3") && now.IsPrimary(p, "n1") {
			k = cand
			break
		}
	}
	if k == nil {
		t.Fatal("no key that n3 loses")
	}
	c.setView(ring.Stable(old, 10), "n1")
	c.setView(ring.Stable(now, 20), "n2", "n3", "n4")
	_, err = c.put("n1", k, "v", nil, WriteOptions{W: All})
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("w=all through a stale coordinator: %v, want unavailable (n3 is no owner any more)", err)
	}
	if got := c.stored("n3", k); len(got) != 0 {
		t.Fatalf("n3 stored %v for a key it does not own", got)
	}
	// n2, an owner in both views, refuses too: n1's copy lists n1, n2, n3
	// as the write owners, and n2's newer view has n4 among them.
	c.setView(ring.Stable(now, 5), "n3")
	if _, err = c.put("n1", k, "w", nil, WriteOptions{W: All}); !errors.As(err, &ue) {
		t.Fatalf("w=all through a coordinator that misses n4: %v, want unavailable", err)
	}
	// A sender with a newer view than n2's and n3's is trusted.
	c.setView(ring.Stable(now, 5), "n2", "n3")
	if _, err := c.put("n1", k, "x", nil, WriteOptions{W: All}); err != nil {
		t.Fatalf("w=all once n2's and n3's views are the older ones: %v", err)
	}
}

// TestStaleCoordinatorThatLostTheKeyCannotCountItself: a coordinator
// whose stale view still makes it an owner of a key that moved to a new
// node applies the write locally, but the owners with the newer view
// refuse its copies (it planned without the new owner), so neither
// w=quorum nor w=all is acknowledged, and no fallback stands in for them.
func TestStaleCoordinatorThatLostTheKeyCannotCountItself(t *testing.T) {
	c := newTestCluster(t, 4, Config{})
	old, err := ring.New([]string{"n1", "n2", "n3"}, 64, 3)
	if err != nil {
		t.Fatal(err)
	}
	now, err := ring.New([]string{"n1", "n2", "n3", "n4"}, 64, 3)
	if err != nil {
		t.Fatal(err)
	}
	var k []byte
	for i := range 100000 {
		cand := []byte("k" + strconv.Itoa(i))
		if p := now.PartitionOf(cand); !now.IsPrimary(p, "n1") {
			k = cand
			break
		}
	}
	if k == nil {
		t.Fatal("no key that n1 loses")
	}
	c.setView(ring.Stable(old, 10), "n1")
	c.setView(ring.Stable(now, 20), "n2", "n3", "n4")
	for _, w := range []Level{Quorum, All} {
		var ue *UnavailableError
		if _, err := c.put("n1", k, "v", nil, WriteOptions{W: w}); !errors.As(err, &ue) {
			t.Fatalf("w=%v through a coordinator that lost the key: %v, want unavailable", w, err)
		}
	}
	for _, id := range []string{"n2", "n3"} {
		if got := c.stored(id, k); len(got) != 0 {
			t.Fatalf("%s stored %v from a coordinator that missed n4", id, got)
		}
	}
}
