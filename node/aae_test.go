package node_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/dotkv/dotkv/internal/kvtest"
)

// Tests of Merkle anti-entropy and tombstone collection on real clusters
// (on the in-memory network, in virtual time: see simulate).
// Hinted handoff is off unless a test says otherwise, so that what
// converges was brought by anti-entropy; no test reads a key through the
// client API before anti-entropy had its chance (a read would repair).

// metricSum returns the sum of metric name over every running node.
func metricSum(c *kvtest.Cluster, name string) float64 {
	var sum float64
	for i, nd := range c.Nodes {
		if nd.Running() != nil {
			sum += c.Metric(i, name)
		}
	}
	return sum
}

// TestAAEConvergesWithoutReads: 10 000 keys written while n3 was cut off
// reach n3 through anti-entropy alone — no hints, no reads — once the
// cluster is whole again. How long that took is logged, not asserted:
// timing figures belong to benchmarks, and a busy machine stretches it.
func TestAAEConvergesWithoutReads(t *testing.T) { simulate(t, aaeConvergesWithoutReads) }

func aaeConvergesWithoutReads(t *testing.T) {
	const interval = 300 * time.Millisecond
	c := newCluster(t, 3, kvtest.Options{N: 3, DisableHints: true, AAEInterval: interval})
	c.Isolate(2)
	c.WaitDead([]int{0, 1}, []int{2}, waitLimit)

	keys := keyList("aae", 10000)
	took := putKeys(t, c, []int{0, 1}, keys, "w=quorum", 32)
	t.Logf("10000 writes (32 writers, w=quorum, n3 cut off, no hints): %v", took)
	for _, k := range keys[:20] {
		if r := c.Replica(2, k); r.Status != http.StatusNotFound {
			t.Fatalf("cut-off n3 holds %s: %d %s", k, r.Status, r.Body)
		}
	}
	if ok, _, err := c.RootsAgree(); err != nil || ok {
		t.Fatalf("roots agree before the heal (%v): the test would measure nothing", err)
	}

	healed := time.Now()
	c.Heal()
	c.WaitAllAlive()
	alive := time.Now()
	converged := c.WaitRootsAgree(waitLimit)
	fromHeal := time.Since(healed)
	t.Logf("heal → all alive %v; all alive → every partition's root equal on all three nodes %v = %.1f anti-entropy intervals (heal → equal %v; race detector %v)",
		alive.Sub(healed), converged, converged.Seconds()/interval.Seconds(), fromHeal, kvtest.RaceEnabled())
	for i := range c.Nodes {
		roots, err := c.TryRoots(i)
		if err != nil {
			t.Fatal(err)
		}
		if len(roots) != 1024 {
			t.Fatalf("%s reports %d partition roots, want 1024 (N=3 of 3 nodes)", c.Nodes[i].ID, len(roots))
		}
	}

	sample := make([]string, 0, 500)
	for i := 0; i < len(keys); i += len(keys) / 500 {
		sample = append(sample, keys[i])
	}
	for _, k := range sample[:20] {
		if r := c.Replica(2, k); !slices.Equal(r.Values(), []string{"v-" + k}) {
			t.Fatalf("n3's %s after convergence: %d %s", k, r.Status, r.Body)
		}
	}
	requireSame(t, c, 0, 2, sample)
	requireSame(t, c, 1, 2, sample)
	if rr := metricSum(c, "dotkv_read_repairs_total"); rr != 0 {
		t.Errorf("%v read repairs: something read", rr)
	}
	t.Logf("anti-entropy repaired %v keys (summed over nodes, both directions counted), %v exchanges",
		metricSum(c, "dotkv_aae_keys_repaired_total"), metricSum(c, "dotkv_aae_exchanges_total"))
}

// watchDeleted polls every node's /debug/replica of key until every node
// holds nothing for it (the tombstone collected everywhere) and returns
// when each node first did. It fails if a node that held the tombstone
// (or nothing) later shows a value: a resurrection. mayLag names the
// node that may still show the deleted value until anti-entropy reaches
// it.
func watchDeleted(t *testing.T, c *kvtest.Cluster, key string, mayLag int, timeout time.Duration) []time.Time {
	t.Helper()
	gone := make([]time.Time, len(c.Nodes))
	caughtUp := make([]bool, len(c.Nodes))
	for i := range caughtUp {
		caughtUp[i] = i != mayLag
	}
	c.WaitFor(key+" to be collected on every node", timeout, func() bool {
		all := true
		for i := range c.Nodes {
			rep := c.Replica(i, key)
			switch {
			case rep.Status == http.StatusNotFound:
				caughtUp[i] = true
				if gone[i].IsZero() {
					gone[i] = time.Now()
				}
				continue
			case rep.Status != http.StatusOK:
				t.Fatalf("/debug/replica/%s on %s: %d %s", key, c.Nodes[i].ID, rep.Status, rep.Body)
			case len(rep.Values()) > 0 && caughtUp[i]:
				t.Fatalf("%s resurrected on %s: %s", key, c.Nodes[i].ID, rep.Body)
			case len(rep.Values()) == 0:
				caughtUp[i] = true
			}
			if !gone[i].IsZero() {
				t.Fatalf("%s came back on %s after it was collected there: %s", key, c.Nodes[i].ID, rep.Body)
			}
			all = false
		}
		return all
	})
	return gone
}

// requireGone fails unless key reads 404 with r=all through every node and
// no node holds anything for it.
func requireGone(t *testing.T, c *kvtest.Cluster, key string) {
	t.Helper()
	for i := range c.Nodes {
		if r := c.Get(i, key, "r=all"); r.Status != http.StatusNotFound {
			t.Fatalf("GET %s r=all via %s: %d %s, want 404", key, c.Nodes[i].ID, r.Status, r.Body)
		}
	}
	for i := range c.Nodes {
		if rep := c.Replica(i, key); rep.Status != http.StatusNotFound {
			t.Fatalf("%s holds %s: %d %s", c.Nodes[i].ID, key, rep.Status, rep.Body)
		}
	}
}

// waitExchanges waits until node i started at least n more anti-entropy
// exchanges than it had at `from` (its dotkv_aae_exchanges_total).
func waitExchanges(c *kvtest.Cluster, i int, from float64, n int) {
	c.WaitFor(fmt.Sprintf("%d anti-entropy rounds on %s", n, c.Nodes[i].ID), waitLimit, func() bool {
		return c.Metric(i, "dotkv_aae_exchanges_total")-from >= float64(n)
	})
}

// TestDeleteDuringPartitionStaysDeleted: a key deleted while one replica
// was cut off (and held the value) is deleted everywhere after the heal,
// its tombstone is collected on every node only once the grace period
// passed, and the value never comes back — not from the node that held
// it, not after that node restarts from its data.
func TestDeleteDuringPartitionStaysDeleted(t *testing.T) {
	const grace = time.Second
	for _, hints := range []bool{false, true} {
		t.Run(map[bool]string{false: "hints-off", true: "hints-on"}[hints], func(t *testing.T) {
			simulate(t, func(t *testing.T) {
				c := newCluster(t, 3, kvtest.Options{N: 3, DisableHints: !hints, AAEInterval: 100 * time.Millisecond, TombstoneGrace: grace})
				const key = "doomed"
				if r := c.Put(0, key, "v", "", "w=all"); r.Status != http.StatusNoContent {
					t.Fatalf("put: %d %s", r.Status, r.Body)
				}
				c.Isolate(2)
				c.WaitDead([]int{0, 1}, []int{2}, waitLimit)
				rd := c.Get(0, key, "r=quorum")
				if rd.Status != http.StatusOK || !slices.Equal(rd.Values(), []string{"v"}) {
					t.Fatalf("read before the delete: %d %s", rd.Status, rd.Body)
				}
				deleted := time.Now()
				if r := c.Delete(0, key, rd.Context, "w=quorum"); r.Status != http.StatusNoContent {
					t.Fatalf("delete with n3 cut off: %d %s", r.Status, r.Body)
				}
				if rep := c.Replica(2, key); !slices.Equal(rep.Values(), []string{"v"}) {
					t.Fatalf("cut-off n3 after the delete: %d %s, want the old value", rep.Status, rep.Body)
				}
				purged := metricSum(c, "dotkv_tombstones_purged_total")

				healed := time.Now()
				c.Heal()
				c.WaitAllAlive()
				gone := watchDeleted(t, c, key, 2, waitLimit)
				for i, at := range gone {
					// The delete's timestamp is taken during the request, after
					// `deleted`, in milliseconds.
					if at.Before(deleted.Add(grace - time.Millisecond)) {
						t.Errorf("%s collected the tombstone %v after the delete, within the grace period of %v", c.Nodes[i].ID, at.Sub(deleted), grace)
					}
				}
				t.Logf("tombstone collected on n1/n2/n3 %v / %v / %v after the delete (heal %v after it; grace %v)",
					gone[0].Sub(deleted).Round(time.Millisecond), gone[1].Sub(deleted).Round(time.Millisecond),
					gone[2].Sub(deleted).Round(time.Millisecond), healed.Sub(deleted).Round(time.Millisecond), grace)
				if got := metricSum(c, "dotkv_tombstones_purged_total") - purged; got < 3 {
					t.Errorf("dotkv_tombstones_purged_total rose by %v over the cluster, want at least 3 (one per replica)", got)
				}
				requireGone(t, c, key)

				// n3 restarts from its data: the key stays gone.
				stopNode(c, 2)
				c.Restart(2)
				c.WaitAllAlive()
				ex := []float64{c.Metric(0, "dotkv_aae_exchanges_total"), c.Metric(1, "dotkv_aae_exchanges_total"), 0}
				for i := range c.Nodes {
					waitExchanges(c, i, ex[i], 3)
				}
				requireGone(t, c, key)
				if ok, detail, err := c.RootsAgree(); err != nil || !ok {
					t.Fatalf("roots after n3's restart: %s %v", detail, err)
				}
			})
		})
	}
}

// TestRolledBackReplicaDoesNotResurrectDelete: n3 receives a delete's
// tombstone, then loses it — it restarts from a copy of its data taken
// before the delete, as after restoring a backup or losing unsynced
// writes — while the other replicas still hold the tombstone. The deleted
// value does not come back: the others keep their tombstones while n3
// holds the value, anti-entropy deletes it again on n3, and only then is
// the tombstone collected.
func TestRolledBackReplicaDoesNotResurrectDelete(t *testing.T) {
	simulate(t, rolledBackReplicaDoesNotResurrectDelete)
}

func rolledBackReplicaDoesNotResurrectDelete(t *testing.T) {
	const grace = time.Second
	c := newCluster(t, 3, kvtest.Options{N: 3, DisableHints: true, AAEInterval: 100 * time.Millisecond, TombstoneGrace: grace})
	const key = "zombie"
	if r := c.Put(0, key, "v", "", "w=all"); r.Status != http.StatusNoContent {
		t.Fatalf("put: %d %s", r.Status, r.Body)
	}
	stopNode(c, 2)
	snap := c.SnapshotData(2) // n3's data, holding the value
	c.Restart(2)
	c.WaitAllAlive()

	c.Isolate(2)
	c.WaitDead([]int{0, 1}, []int{2}, waitLimit)
	rd := c.Get(0, key, "r=quorum")
	if rd.Status != http.StatusOK {
		t.Fatalf("read before the delete: %d %s", rd.Status, rd.Body)
	}
	deleted := time.Now()
	if r := c.Delete(0, key, rd.Context, "w=quorum"); r.Status != http.StatusNoContent {
		t.Fatalf("delete with n3 cut off: %d %s", r.Status, r.Body)
	}
	// Let only n1 and n3 talk: n3 gets the tombstone from n1 by
	// anti-entropy, and no node can collect it (n2 cannot confirm).
	c.Heal()
	c.Partition([]int{0, 2}, []int{1})
	c.WaitFor("n3 to receive the tombstone", waitLimit, func() bool {
		rep := c.Replica(2, key)
		return rep.Status == http.StatusOK && len(rep.Siblings) > 0 && len(rep.Values()) == 0
	})
	// Past the grace period and a few collection rounds, still held
	// everywhere.
	c.WaitFor("the grace period to pass", waitLimit, func() bool { return time.Since(deleted) > grace })
	for _, i := range []int{0, 2} {
		waitExchanges(c, i, c.Metric(i, "dotkv_aae_exchanges_total"), 3)
	}
	for i := range c.Nodes {
		if rep := c.Replica(i, key); rep.Status != http.StatusOK || len(rep.Values()) != 0 {
			t.Fatalf("%s while n2 was cut off: %d %s, want the tombstone", c.Nodes[i].ID, rep.Status, rep.Body)
		}
	}

	stopNode(c, 2)
	c.RestoreData(2, snap)
	c.Restart(2)
	if rep := c.Replica(2, key); !slices.Equal(rep.Values(), []string{"v"}) {
		t.Fatalf("rolled-back n3: %d %s, want the deleted value", rep.Status, rep.Body)
	}
	c.Heal()
	c.WaitAllAlive()
	gone := watchDeleted(t, c, key, 2, waitLimit)
	t.Logf("after the rollback the tombstone was collected on n1/n2/n3 at %v / %v / %v",
		gone[0].Format("15:04:05.000"), gone[1].Format("15:04:05.000"), gone[2].Format("15:04:05.000"))
	requireGone(t, c, key)
}

// TestConcurrentWriteAndDeleteBecomeSiblings: across a partition one
// side overwrites a key and the other deletes it, each with the context it
// read; after the heal anti-entropy leaves both on every node, a JSON read
// shows the value and the tombstone as siblings, and a write with that
// read's context replaces both on every primary.
func TestConcurrentWriteAndDeleteBecomeSiblings(t *testing.T) {
	simulate(t, concurrentWriteAndDeleteBecomeSiblings)
}

func concurrentWriteAndDeleteBecomeSiblings(t *testing.T) {
	c := newCluster(t, 3, kvtest.Options{N: 3, DisableHints: true, AAEInterval: 100 * time.Millisecond})
	const key = "contested"
	if r := c.Put(0, key, "v1", "", "w=all"); r.Status != http.StatusNoContent {
		t.Fatalf("put: %d %s", r.Status, r.Body)
	}
	c.Partition([]int{0}, []int{1, 2})
	// n2 and n3 confirm each other's suspicion of n1 and see it dead
	// soon. n1, alone, has no one to confirm its suspicions of them, which
	// run their longest course (seconds); it need not wait for them: it
	// reads and writes at level 1, which it meets on its own.
	c.WaitDead([]int{1, 2}, []int{0}, waitLimit)

	left := c.Get(0, key, "r=1")
	if left.Status != http.StatusOK || !slices.Equal(left.Values(), []string{"v1"}) {
		t.Fatalf("read on n1's side: %d %s", left.Status, left.Body)
	}
	if r := c.Put(0, key, "v2", left.Context, "w=1"); r.Status != http.StatusNoContent {
		t.Fatalf("overwrite on n1's side: %d %s", r.Status, r.Body)
	}
	right := c.Get(1, key, "r=quorum")
	if right.Status != http.StatusOK || !slices.Equal(right.Values(), []string{"v1"}) {
		t.Fatalf("read on n2's side: %d %s", right.Status, right.Body)
	}
	if r := c.Delete(1, key, right.Context, "w=quorum"); r.Status != http.StatusNoContent {
		t.Fatalf("delete on n2's side: %d %s", r.Status, r.Body)
	}

	c.Heal()
	c.WaitAllAlive()
	waitSame(t, c, 0, 1, []string{key}, waitLimit)
	waitSame(t, c, 0, 2, []string{key}, waitLimit)
	rep := c.Replica(0, key)
	if len(rep.Siblings) != 2 || !slices.Equal(rep.Values(), []string{"v2"}) {
		t.Fatalf("every node's state after anti-entropy: %s, want the value v2 and a tombstone", rep.Body)
	}
	got := c.Get(2, key, "r=all")
	tombs := 0
	for _, s := range got.Siblings {
		if s.Deleted {
			tombs++
		}
	}
	if got.Status != http.StatusOK || len(got.Siblings) != 2 || tombs != 1 || !slices.Equal(got.Values(), []string{"v2"}) {
		t.Fatalf("JSON read r=all: %d %s, want siblings v2 and a tombstone (deleted: true)", got.Status, got.Body)
	}
	if r := c.Put(1, key, "v3", got.Context, "w=all"); r.Status != http.StatusNoContent {
		t.Fatalf("resolving put: %d %s", r.Status, r.Body)
	}
	for _, id := range c.Preflist(0, key).Primaries {
		rep := c.Replica(c.Index(id), key)
		if len(rep.Siblings) != 1 || !slices.Equal(rep.Values(), []string{"v3"}) {
			t.Fatalf("primary %s after the resolving write: %d %s, want only v3", id, rep.Status, rep.Body)
		}
	}
}
