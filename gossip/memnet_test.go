package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/dotkv/dotkv/internal/bubble"
	"github.com/dotkv/dotkv/internal/memnet"
)

// TestMemnetPartitionAndHeal runs three Memberships on the in-memory
// network (an injected Transport) in virtual time, with the normal tuning:
// they join through a seed, a partition makes each side see the other
// dead, and after a heal the rejoin loop brings them back together.
func TestMemnetPartitionAndHeal(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		net := memnet.New(1)
		net.SetFaults(memnet.Faults{MinDelay: 100 * time.Microsecond, MaxDelay: time.Millisecond})
		var ms []*Membership
		var stops []func()
		for i := range 3 {
			id := fmt.Sprintf("n%d", i+1)
			cfg := Config{
				NodeID:    id,
				Transport: net.Gossip(id, fmt.Sprintf("10.1.0.%d:7946", i+1)),
				HTTPAddr:  fmt.Sprintf("10.1.0.%d:8080", i+1),
				RPCAddr:   fmt.Sprintf("10.1.0.%d:7947", i+1),
			}
			if i > 0 {
				cfg.Join = []string{"10.1.0.1:7946"}
			} else {
				cfg.NewCluster = true
			}
			m, err := Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			stops = append(stops, autoReceive(m, id))
			if m.GossipAddr() != fmt.Sprintf("10.1.0.%d:7946", i+1) {
				t.Errorf("gossip address %s; want the transport's", m.GossipAddr())
			}
			ms = append(ms, m)
		}
		defer func() {
			for _, stop := range stops {
				stop()
			}
			for _, m := range ms {
				if err := m.Close(); err != nil {
					t.Error(err)
				}
			}
			// memberlist leaves probe goroutines behind Shutdown; virtual
			// time stops when this function returns, so let them finish.
			time.Sleep(time.Minute)
		}()
		waitFor := func(what string, limit time.Duration, cond func() bool) {
			t.Helper()
			deadline := time.Now().Add(limit)
			for !cond() {
				if time.Now().After(deadline) {
					t.Fatalf("timed out after %v (virtual) waiting for %s", limit, what)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		sees := func(i, j int, l Liveness) bool { return ms[i].Liveness(fmt.Sprintf("n%d", j+1)) == l }
		all := func(l Liveness, pairs [][2]int) func() bool {
			return func() bool {
				for _, p := range pairs {
					if !sees(p[0], p[1], l) {
						return false
					}
				}
				return true
			}
		}
		every := [][2]int{{0, 1}, {0, 2}, {1, 0}, {1, 2}, {2, 0}, {2, 1}}

		start := time.Now()
		waitFor("all alive", 30*time.Second, func() bool {
			return all(Alive, every)() && len(ms[0].View().Members()) == 3 && len(ms[2].View().Members()) == 3
		})
		t.Logf("joined after %v (virtual)", time.Since(start))

		net.Partition([]string{"n1", "n2"}, []string{"n3"})
		start = time.Now()
		waitFor("the majority to see n3 dead", time.Minute, all(Dead, [][2]int{{0, 2}, {1, 2}}))
		majority := time.Since(start)
		waitFor("n3 to see the majority dead", time.Minute, all(Dead, [][2]int{{2, 0}, {2, 1}}))
		minority := time.Since(start)
		if !sees(0, 1, Alive) || !sees(1, 0, Alive) {
			t.Error("n1 and n2 stopped seeing each other alive")
		}
		// normalTuning's documented bounds, exact in virtual time: the
		// first failed probe of a node comes within a round of probes (one
		// interval per peer) plus the failing probe's own interval; n1 and
		// n2 confirm each other's suspicion of n3, so it lasts the shortest
		// course (SuspicionMult probe intervals for n ≤ 10); n3 has no one
		// to confirm its suspicions, so they run their longest course
		// (suspicionMax). The view refreshes every refresh interval.
		tu := normalTuning
		if limit := 3*tu.probeInterval + time.Duration(tu.suspicionMult)*tu.probeInterval + tu.refresh; majority > limit {
			t.Errorf("majority saw n3 dead after %v (virtual); want ≤ %v", majority, limit)
		}
		if limit := tu.suspicionMax(3) + 3*tu.probeInterval + tu.probeTimeout + tu.refresh; minority > limit {
			t.Errorf("n3 saw the majority dead after %v (virtual); want ≤ %v", minority, limit)
		}
		t.Logf("partition detected after %v by the majority, %v by the minority (virtual)", majority, minority)

		net.Heal()
		start = time.Now()
		waitFor("all alive again", time.Minute, all(Alive, every))
		t.Logf("healed after %v (virtual)", time.Since(start))
	})
}
