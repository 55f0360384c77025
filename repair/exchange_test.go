package repair

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dotkv/dotkv/internal/wire"
	"github.com/dotkv/dotkv/ring"
)

// TestExchangePartitionsSyncsExactlyTheGivenPartitions: with one replica
// per partition the two nodes share nothing, so Exchange compares
// nothing; ExchangePartitions compares and syncs, in both directions,
// the partitions it is given and no other.
func TestExchangePartitionsSyncsExactlyTheGivenPartitions(t *testing.T) {
	net := newAAENet()
	r, err := ring.New([]string{"a", "b"}, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	clk := newTestClock(time.Now())
	a := newAAENode(t, net, "a", r, clk, time.Hour)
	b := newAAENode(t, net, "b", r, clk, time.Hour)

	onA, onB := map[uint32][]string{}, map[uint32][]string{}
	for i := range 400 {
		key := fmt.Sprintf("k%03d", i)
		p := r.PartitionOf([]byte(key))
		if i%2 == 0 {
			a.merge(t, r, key, valueState("a.1", uint64(i+1), []byte(key), 1))
			onA[p] = append(onA[p], key)
		} else {
			b.merge(t, r, key, valueState("b.1", uint64(i+1), []byte(key), 1))
			onB[p] = append(onB[p], key)
		}
	}
	before := diffRoots(r, a, b)
	if st := exchange(t, a, "b"); st.Partitions != 0 || st.KeysRepaired != 0 {
		t.Fatalf("Exchange of nodes sharing no partition: %+v", st)
	}
	if got := diffRoots(r, a, b); got != before {
		t.Fatalf("Exchange changed %d partitions' roots", before-got)
	}

	parts := []uint32{3, 7}
	want := len(onA[3]) + len(onB[3]) + len(onA[7]) + len(onB[7])
	st, err := a.eng.ExchangePartitions(context.Background(), "b", parts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Partitions != 2 || st.DifferingPartitions != 2 || st.KeysRepaired != want {
		t.Fatalf("stats %+v: want 2 partitions, both differing, %d keys repaired", st, want)
	}
	for p := range uint32(16) {
		keys := slices.Concat(onA[p], onB[p])
		for _, key := range keys {
			_, okA := a.raw(t, r, key)
			_, okB := b.raw(t, r, key)
			if synced := okA && okB; synced != slices.Contains(parts, p) {
				t.Fatalf("partition %d key %s: on a %v, on b %v", p, key, okA, okB)
			}
		}
	}
	if got := diffRoots(r, a, b); got != before-2 {
		t.Fatalf("%d partitions differ after the exchange, want %d", got, before-2)
	}
	if st, err := a.eng.ExchangePartitions(context.Background(), "b", parts); err != nil || st.DifferingPartitions != 0 {
		t.Fatalf("second exchange: %+v, %v", st, err)
	}
}

// TestExchangeWhenAPeerComesBack: with an interval far longer than the
// test, an engine exchanges with a peer as soon as gossip stops seeing it
// dead, so a write the peer missed while cut off reaches it.
func TestExchangeWhenAPeerComesBack(t *testing.T) {
	net := newAAENet()
	r, err := ring.New([]string{"a", "b"}, 8, 2)
	if err != nil {
		t.Fatal(err)
	}
	clk := newTestClock(time.Now())
	a := newAAENode(t, net, "a", r, clk, time.Hour)
	b := newAAENode(t, net, "b", r, clk, time.Hour)
	a.eng.cfg.Interval = time.Hour
	net.setDead("b", true)
	a.merge(t, r, "missed", valueState("a.1", 1, []byte("v"), 1))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.eng.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// Let the engine see b dead before it comes back.
	deadline := time.Now().Add(time.Minute)
	for a.eng.returnedChecks() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the engine never looked at its peers")
		}
		time.Sleep(time.Millisecond)
	}
	net.setDead("b", false)
	for len(b.get(t, r, "missed").Siblings) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("b never got the write it missed")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestQueriesRefuseOutOfRangePartitions: anti-entropy queries naming a
// partition the ring does not have, or more entries than the ring could
// need, are refused before any reply is built (a reply grows by up to 256
// bytes an entry).
func TestQueriesRefuseOutOfRangePartitions(t *testing.T) {
	net := newAAENet()
	r, err := ring.New([]string{"a", "b"}, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	a := newAAENode(t, net, "a", r, newTestClock(time.Now()), time.Hour)
	parts := func(ps ...uint32) []byte {
		w := wire.Writer(nil).Uvarint(uint64(len(ps)))
		for _, p := range ps {
			w = w.U32(p)
		}
		return w
	}
	many := make([]uint32, 16+1) // partition 0, more times than the ring has partitions
	for name, h := range map[string]func(context.Context, string, []byte) ([]byte, error){
		"roots": a.eng.handleRoots, "mids": a.eng.handleMids,
	} {
		if _, err := h(t.Context(), "b", parts(3)); err != nil {
			t.Fatalf("%s of partition 3: %v", name, err)
		}
		for _, req := range [][]byte{parts(16), parts(3, 1<<31), parts(many...)} {
			if out, err := h(t.Context(), "b", req); err == nil {
				t.Fatalf("%s of %d bytes: answered %d bytes, want refused", name, len(req), len(out))
			}
		}
	}
	for name, h := range map[string]func(context.Context, string, []byte) ([]byte, error){
		"leaves": a.eng.handleLeaves, "keys": a.eng.handleKeys,
	} {
		if _, err := h(t.Context(), "b", wire.Writer(nil).Uvarint(1).U32(3).Uvarint(0)); err != nil {
			t.Fatalf("%s of partition 3: %v", name, err)
		}
		if _, err := h(t.Context(), "b", wire.Writer(nil).Uvarint(1).U32(16).Uvarint(0)); err == nil {
			t.Fatalf("%s of partition 16 of a 16-partition ring answered", name)
		}
	}
}
