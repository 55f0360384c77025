package node_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/dotkv/dotkv/gossip"
	"github.com/dotkv/dotkv/internal/bubble"
	"github.com/dotkv/dotkv/internal/kvtest"
)

// TestClusterOnMemnetInVirtualTime runs a whole three-node cluster —
// pebble, memberlist, RPC and the HTTP API — on the in-memory network
// inside a synctest bubble: every wait below is virtual time.
func TestClusterOnMemnetInVirtualTime(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		start := time.Now()
		c := kvtest.NewCluster(t, 3, kvtest.Options{MemNet: true, Seed: 1})
		t.Logf("cluster up after %v (virtual)", time.Since(start))
		for i, nd := range c.Nodes {
			if nd.Running().Filter() != nil {
				t.Errorf("%s has a fault filter on an injected network", nd.ID)
			}
			if got, want := nd.Running().GossipAddr(), fmt.Sprintf("127.0.0.%d:7946", 11+i); got != want {
				t.Errorf("%s gossips at %s, want %s", nd.ID, got, want)
			}
		}
		for k := range 10 {
			key := fmt.Sprintf("key-%d", k)
			if r := c.Put(k%3, key, "v-"+key, "", "w=all"); r.Status != http.StatusNoContent {
				t.Fatalf("put %s: %d %s", key, r.Status, r.Body)
			}
			for i := range 3 {
				if rep := c.Replica(i, key); !slices.Equal(rep.Values(), []string{"v-" + key}) {
					t.Fatalf("%s's replica of %s: %d %v", c.Nodes[i].ID, key, rep.Status, rep.Values())
				}
			}
		}
		if st := c.Net.Stats()["replicate"]; st.Delivered < 20 {
			t.Errorf("replicate RPCs %+v; want the w=all writes' 20 deliveries at least", st)
		}

		c.Isolate(2)
		c.WaitDead([]int{0, 1}, []int{2}, time.Minute)
		c.WaitDead([]int{2}, []int{0, 1}, time.Minute)
		t.Logf("isolation detected after %v (virtual)", time.Since(start))
		if r := c.Put(2, "p", "x", "", "w=quorum"); r.Status != http.StatusServiceUnavailable {
			t.Fatalf("w=quorum on the isolated node: %d %s", r.Status, r.Body)
		}
		if r := c.Put(0, "p", "y", "", "w=quorum"); r.Status != http.StatusNoContent {
			t.Fatalf("w=quorum on the majority: %d %s", r.Status, r.Body)
		}
		c.Heal()
		c.WaitAllAlive()

		// A stopped node comes back on the same in-memory addresses, with
		// its data, and finds its peers from its persisted ring.
		c.Stop(1)
		c.WaitLiveness(0, 1, gossip.Dead, time.Minute)
		c.Restart(1)
		c.WaitAllAlive()
		if rep := c.Replica(1, "key-0"); !slices.Equal(rep.Values(), []string{"v-key-0"}) {
			t.Fatalf("restarted n2 lost its data: %d %v", rep.Status, rep.Values())
		}
		t.Logf("done after %v (virtual)", time.Since(start))
	})
}
