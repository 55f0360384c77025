package node_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/dotkv/dotkv/gossip"
	"github.com/dotkv/dotkv/internal/bubble"
	"github.com/dotkv/dotkv/internal/kvtest"
)

// simulate runs a cluster scenario in a testing/synctest bubble, where
// kvtest builds its clusters on the in-memory network (internal/memnet):
// every wait is virtual time, so a busy machine cannot make a failure
// detector or a deadline misfire, and a scenario takes a fraction of its
// real time. A few scenarios run on real sockets too (…OnSockets), and
// those about the fault filter or measuring time only there.
func simulate(t *testing.T, scenario func(t *testing.T)) { bubble.Test(t, scenario) }

func TestMain(m *testing.M) {
	// memberlist's probe goroutines outlive Shutdown by up to a probe
	// interval; goleak retries until its deadline.
	goleak.VerifyTestMain(m)
}

// TestAnyNodeAnswersAnyKey: writes through one node read back through
// every other, and all nodes agree on every key's preference list.
func TestAnyNodeAnswersAnyKey(t *testing.T) { simulate(t, anyNodeAnswersAnyKey) }

func anyNodeAnswersAnyKey(t *testing.T) {
	c := kvtest.NewCluster(t, 5, kvtest.Options{})
	for k := range 40 {
		key := fmt.Sprintf("key-%d", k)
		if r := c.Put(k%5, key, "v-"+key, "", ""); r.Status != http.StatusNoContent {
			t.Fatalf("put %s via n%d: %d %s", key, k%5+1, r.Status, r.Body)
		}
		for i := range 5 {
			if got := c.Get(i, key, ""); got.Status != http.StatusOK || !slices.Equal(got.Values(), []string{"v-" + key}) {
				t.Fatalf("get %s via %s: %d %v", key, c.Nodes[i].ID, got.Status, got.Values())
			}
		}
		want := c.Do(0, http.MethodGet, "/cluster/preflist/"+key, nil, nil)
		for i := 1; i < 5; i++ {
			if got := c.Do(i, http.MethodGet, "/cluster/preflist/"+key, nil, nil); string(got.Body) != string(want.Body) {
				t.Fatalf("preference lists differ for %s: n1 %s, %s %s", key, want.Body, c.Nodes[i].ID, got.Body)
			}
		}
	}
}

// TestConcurrentWritesThroughDifferentCoordinators: two writes with the
// same context through different primaries survive as siblings; a write
// with the merged context resolves them on every replica.
func TestConcurrentWritesThroughDifferentCoordinators(t *testing.T) {
	simulate(t, concurrentWritesThroughDifferentCoordinators)
}

func concurrentWritesThroughDifferentCoordinators(t *testing.T) {
	c := kvtest.NewCluster(t, 3, kvtest.Options{}) // N=3: every node is a primary and coordinates
	r := c.Put(0, "cart", "v1", "", "w=all")
	if r.Status != http.StatusNoContent {
		t.Fatalf("put v1: %d %s", r.Status, r.Body)
	}
	c1 := c.Get(1, "cart", "").Context
	var wg sync.WaitGroup
	for i, v := range []string{"v2", "v3"} {
		wg.Go(func() {
			if r := c.Put(i, "cart", v, c1, "w=all"); r.Status != http.StatusNoContent {
				t.Errorf("put %s via %s: %d %s", v, c.Nodes[i].ID, r.Status, r.Body)
			}
		})
	}
	wg.Wait()
	got := c.Get(2, "cart", "r=all")
	if !slices.Equal(got.Values(), []string{"v2", "v3"}) {
		t.Fatalf("after concurrent writes: %v, want siblings [v2 v3]", got.Values())
	}
	if r := c.Put(2, "cart", "v2+v3", got.Context, "w=all"); r.Status != http.StatusNoContent {
		t.Fatalf("resolving put: %d %s", r.Status, r.Body)
	}
	for i := range 3 {
		if rep := c.Replica(i, "cart"); !slices.Equal(rep.Values(), []string{"v2+v3"}) || len(rep.Siblings) != 1 {
			t.Fatalf("replica %s after resolve: %v", c.Nodes[i].ID, rep.Values())
		}
	}
}

// TestQuorumsWithStoppedNodes checks levels against live replicas.
func TestQuorumsWithStoppedNodes(t *testing.T) { simulate(t, quorumsWithStoppedNodes) }

func quorumsWithStoppedNodes(t *testing.T) {
	c := kvtest.NewCluster(t, 3, kvtest.Options{})
	if r := c.Put(0, "k", "before", "", "w=all"); r.Status != http.StatusNoContent {
		t.Fatalf("put: %d %s", r.Status, r.Body)
	}
	c.Stop(2)
	c.WaitLiveness(0, 2, gossip.Dead, waitLimit)
	c.WaitLiveness(1, 2, gossip.Dead, waitLimit)

	r := c.Put(0, "k", "x", "", "w=all")
	if e := r.JSONError(); r.Status != http.StatusServiceUnavailable || e.Code != "unavailable" || e.Acks != 2 || e.Required != 3 {
		t.Fatalf("w=all with one of three down: %d %s", r.Status, r.Body)
	}
	ctx := c.Get(1, "k", "").Context
	if r := c.Put(1, "k", "latest", ctx, "w=quorum"); r.Status != http.StatusNoContent {
		t.Fatalf("w=quorum with one of three down: %d %s", r.Status, r.Body)
	}
	if r := c.Get(0, "k", "r=all"); r.Status != http.StatusServiceUnavailable || r.JSONError().Required != 3 {
		t.Fatalf("r=all with one of three down: %d %s", r.Status, r.Body)
	}
	// The refused w=all write never reached storage (quorum failed fast);
	// the quorum read sees the latest acknowledged value only.
	if got := c.Get(0, "k", "r=quorum"); got.Status != http.StatusOK || !slices.Equal(got.Values(), []string{"latest"}) {
		t.Fatalf("r=quorum: %d %v, want [latest]", got.Status, got.Values())
	}

	c.Stop(1)
	c.WaitLiveness(0, 1, gossip.Dead, waitLimit)
	r = c.Put(0, "k", "y", "", "w=quorum")
	if e := r.JSONError(); r.Status != http.StatusServiceUnavailable || e.Acks != 1 || e.Required != 2 {
		t.Fatalf("w=quorum with two of three down: %d %s", r.Status, r.Body)
	}
	if r := c.Put(0, "k", "one", "", "w=one"); r.Status != http.StatusNoContent {
		t.Fatalf("w=one with two of three down: %d %s", r.Status, r.Body)
	}
}

// TestRestartedNodeRejoinsWithDataAndIdentity: a stopped node comes back
// with no seeds, finds its peers from its persisted ring, keeps its data.
func TestRestartedNodeRejoinsWithDataAndIdentity(t *testing.T) {
	simulate(t, restartedNodeRejoinsWithDataAndIdentity)
}

// TestRestartedNodeRejoinsOnSockets is the same on real sockets: the node
// binds its old ports again.
func TestRestartedNodeRejoinsOnSockets(t *testing.T) { restartedNodeRejoinsWithDataAndIdentity(t) }

func restartedNodeRejoinsWithDataAndIdentity(t *testing.T) {
	c := kvtest.NewCluster(t, 3, kvtest.Options{})
	if r := c.Put(0, "durable", "v", "", "w=all"); r.Status != http.StatusNoContent {
		t.Fatalf("put: %d %s", r.Status, r.Body)
	}
	actor := c.Nodes[2].Running().Store().Actor()
	c.Stop(2)
	c.WaitLiveness(0, 2, gossip.Dead, waitLimit)
	if got := len(c.Nodes[0].Running().Membership().View().Members()); got != 3 {
		t.Fatalf("a stopped node left the ring: %d members", got)
	}
	c.Restart(2)
	c.WaitAllAlive()
	if got := c.Nodes[2].Running().Store().Actor(); got != actor {
		t.Fatalf("restart changed the actor %s -> %s", actor, got)
	}
	if rep := c.Replica(2, "durable"); !slices.Equal(rep.Values(), []string{"v"}) {
		t.Fatalf("restarted node lost its data: %d %v", rep.Status, rep.Values())
	}
	if got := c.Get(2, "durable", "r=all"); !slices.Equal(got.Values(), []string{"v"}) {
		t.Fatalf("r=all after rejoin: %d %v", got.Status, got.Values())
	}
}

// TestFaultFilterMakesNodeDeadAndHealRevives it.
func TestFaultFilterMakesNodeDeadAndHealRevives(t *testing.T) {
	c := kvtest.NewCluster(t, 3, kvtest.Options{})
	c.Isolate(2)
	for _, i := range []int{0, 1} {
		c.WaitFor(fmt.Sprintf("%s to see n3 suspect or dead", c.Nodes[i].ID), waitLimit, func() bool {
			l := c.Liveness(i, 2)
			return l == gossip.Suspect || l == gossip.Dead
		})
	}
	c.WaitLiveness(0, 2, gossip.Dead, waitLimit)
	// Cut off, n3 cannot reach a write quorum; the others can.
	if r := c.Put(2, "p", "x", "", "w=quorum"); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("w=quorum on the isolated node: %d %s", r.Status, r.Body)
	}
	if r := c.Put(0, "p", "y", "", "w=quorum"); r.Status != http.StatusNoContent {
		t.Fatalf("w=quorum on the majority: %d %s", r.Status, r.Body)
	}
	blocked := c.Do(2, http.MethodGet, "/admin/fault", nil, nil)
	if blocked.Status != http.StatusOK || string(blocked.Body) != `{"blocked":["n1","n2"]}`+"\n" {
		t.Fatalf("GET /admin/fault on n3: %d %s", blocked.Status, blocked.Body)
	}
	c.Heal()
	c.WaitAllAlive()
}

// TestUnavailableWriteSaysWhetherItWrote: a w=all write that cannot get
// every ack answers 503 either "unavailable" (failed fast, nothing written
// anywhere) or "partial_write" (applied and kept by the replicas that
// acknowledged, outcome unknown), and says which truthfully. n3 is cut
// off just before the write; whether the failure detector has noticed
// decides which of the two it is.
func TestUnavailableWriteSaysWhetherItWrote(t *testing.T) {
	c := kvtest.NewCluster(t, 3, kvtest.Options{DisableHints: true})
	c.Isolate(2)
	seen := map[string]bool{}
	for i := 0; i < 20 && !(seen["unavailable"] && seen["partial_write"]); i++ {
		key := fmt.Sprintf("k%d", i)
		r := c.Put(0, key, "v", "", "w=all")
		e := r.JSONError()
		if r.Status != http.StatusServiceUnavailable {
			t.Fatalf("w=all with n3 cut off: %d %s", r.Status, r.Body)
		}
		seen[e.Code] = true
		written := c.Replica(0, key).Status == http.StatusOK
		switch e.Code {
		case "partial_write":
			if !written || !strings.Contains(e.Error, "outcome unknown") {
				t.Fatalf("partial_write, yet n1 (the coordinator) holds %s: %v; error %q", key, written, e.Error)
			}
		case "unavailable":
			if written || !strings.Contains(e.Error, "nothing was written") {
				t.Fatalf("unavailable (nothing written), yet n1 holds %s: %v; error %q", key, written, e.Error)
			}
		default:
			t.Fatalf("w=all with n3 cut off: code %q (%s)", e.Code, r.Body)
		}
		if i == 0 {
			// The rest run once n3 is known dead: they fail fast.
			c.WaitLiveness(0, 2, gossip.Dead, waitLimit)
		}
	}
	if !seen["unavailable"] {
		t.Fatal("no write failed fast once n3 was dead")
	}
	t.Logf("codes seen: %v", seen)
}
