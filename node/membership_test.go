package node_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dotkv/dotkv/gossip"
	"github.com/dotkv/dotkv/internal/kvtest"
)

// acked is what a test's writers had acknowledged: key → value.
type acked struct {
	mu sync.Mutex
	m  map[string]string
}

func (a *acked) set(k, v string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.m[k] = v
}

func (a *acked) snapshot() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]string, len(a.m))
	for k, v := range a.m {
		out[k] = v
	}
	return out
}

// running returns the indexes of the running nodes.
func running(c *kvtest.Cluster) []int {
	var out []int
	for i, nd := range c.Nodes {
		if nd.Running() != nil {
			out = append(out, i)
		}
	}
	return out
}

// checkReads reads every key of want at r=one through every running node:
// none may be missing, nor older than what was acknowledged before.
func checkReads(t *testing.T, c *kvtest.Cluster, step string, want map[string]string) {
	t.Helper()
	for _, i := range running(c) {
		for k, v := range want {
			rd := c.Get(i, k, "r=one")
			if rd.Status != http.StatusOK || !slices.Contains(rd.Values(), v) {
				t.Fatalf("%s: %s read %q at r=one: %d %v, want %q", step, c.Nodes[i].ID, k, rd.Status, rd.Values(), v)
			}
		}
	}
}

// TestMembershipChangesUnderLoad: 3 nodes holding keys written at w=all
// and a writer running throughout; a fourth node joins, one original
// leaves, one is killed and removed, one is stopped and replaced. After
// each step every key reads at r=one through every node with its
// acknowledged value (never 404, never older), and at the end every
// acknowledged write is there at r=all and its records are on its owners
// only.
func TestMembershipChangesUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("membership changes take a while")
	}
	c := kvtest.NewCluster(t, 3, kvtest.Options{TransferLimit: 8})
	const keys = 200
	base := map[string]string{}
	for i := range keys {
		k, v := fmt.Sprintf("k%03d", i), fmt.Sprintf("v%d", i)
		if r := c.Put(i%3, k, v, "", "w=all"); r.Status != http.StatusNoContent && r.Status != http.StatusOK {
			t.Fatalf("put %s: %d %s", k, r.Status, r.Body)
		}
		base[k] = v
	}

	// A writer through every running node, throughout: fresh keys at
	// quorum; what it acknowledged must survive every step. It reaches the
	// nodes by URL (the test changes c.Nodes meanwhile).
	live := &acked{m: map[string]string{}}
	var targets struct {
		sync.Mutex
		urls []string
	}
	setTargets := func() {
		targets.Lock()
		defer targets.Unlock()
		targets.urls = nil
		for _, i := range running(c) {
			targets.urls = append(targets.urls, c.Nodes[i].URL())
		}
	}
	setTargets()
	client := &http.Client{Timeout: 10 * time.Second}
	stop := make(chan struct{})
	var writes atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 0; n < 100000; n++ {
			select {
			case <-stop:
				return
			default:
			}
			targets.Lock()
			urls := targets.urls
			targets.Unlock()
			k := fmt.Sprintf("w%05d", n)
			req, err := http.NewRequest(http.MethodPut, urls[n%len(urls)]+"/kv/"+k+"?w=quorum&timeout=2000", strings.NewReader("x"))
			if err != nil {
				panic(err)
			}
			if resp, err := client.Do(req); err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusOK {
					live.set(k, "x")
					writes.Add(1)
				}
			}
			time.Sleep(2 * time.Millisecond) // pace, not a wait on anything
		}
	})
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	// Join.
	n4 := c.AddNode("")
	setTargets()
	c.WaitStatus(c.Nodes[n4].ID, gossip.StatusMember)
	checkReads(t, c, "after n4 joined", base)

	// Leave: n1 hands everything over and reports left.
	if r := c.Do(0, http.MethodPost, "/cluster/leave", nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("leave: %d %s", r.Status, r.Body)
	}
	c.WaitFor("n1 to have left", 2*time.Minute, func() bool {
		select {
		case <-c.Nodes[0].Running().Left():
			return true
		default:
			return false
		}
	})
	c.WaitStatus("n1", gossip.StatusLeft)
	c.Stop(0)
	setTargets()
	checkReads(t, c, "after n1 left", base)

	// Remove: n2 is killed, then removed; its copies are re-created.
	c.Stop(1)
	setTargets()
	c.WaitLiveness(2, 1, gossip.Dead, time.Minute)
	if r := c.Do(2, http.MethodPost, "/cluster/remove/n2", nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("remove n2: %d %s", r.Status, r.Body)
	}
	c.WaitStatus("n2", gossip.StatusRemoved)
	checkReads(t, c, "after n2 was removed", base)

	// Replace: n3 is stopped and a new node takes over its partitions.
	c.Stop(2)
	setTargets()
	c.WaitLiveness(n4, 2, gossip.Dead, time.Minute)
	n5 := c.AddNode("n3")
	setTargets()
	c.WaitStatus(c.Nodes[n5].ID, gossip.StatusMember)
	c.WaitStatus("n3", gossip.StatusRemoved)
	checkReads(t, c, "after n3 was replaced", base)

	close(stop)
	wg.Wait()
	t.Logf("%d writes acknowledged during the changes", writes.Load())
	all := live.snapshot()
	for k, v := range base {
		all[k] = v
	}
	for k, v := range all {
		rd := c.Get(n4, k, "r=all")
		if rd.Status != http.StatusOK || !slices.Contains(rd.Values(), v) {
			t.Fatalf("acknowledged %q reads %d %v at r=all", k, rd.Status, rd.Values())
		}
	}
	// Records end on their owners only: with two members and N=3 both own
	// everything, so each holds every key.
	for _, i := range running(c) {
		for k := range base {
			if rd := c.Replica(i, k); rd.Status != http.StatusOK {
				t.Fatalf("%s holds no record of %q: %d", c.Nodes[i].ID, k, rd.Status)
			}
		}
	}
}

// TestWipedMemberRejoinsAsItsOwnReplacement: a member whose data
// directory is lost comes back with the flags it always had; it rejoins,
// receives every partition it owns before it answers reads of them, and
// no acknowledged write is lost or reads 404 meanwhile.
func TestWipedMemberRejoinsAsItsOwnReplacement(t *testing.T) {
	c := kvtest.NewCluster(t, 3, kvtest.Options{TransferLimit: 8})
	want := map[string]string{}
	for i := range 100 {
		k, v := fmt.Sprintf("k%03d", i), fmt.Sprintf("v%d", i)
		if r := c.Put(i%3, k, v, "", "w=all"); r.Status != http.StatusNoContent && r.Status != http.StatusOK {
			t.Fatalf("put %s: %d %s", k, r.Status, r.Body)
		}
		want[k] = v
	}
	oldInc := c.Nodes[1].Running().Store().Incarnation()
	c.Stop(1)
	c.RestartWiped(1)
	c.WaitStatus("n2", gossip.StatusMember)
	checkReads(t, c, "after n2 rejoined wiped", want)
	for k := range want {
		if rd := c.Replica(1, k); rd.Status != http.StatusOK {
			t.Fatalf("wiped n2 did not get %q back: %d", k, rd.Status)
		}
	}
	if inc := c.Nodes[1].Running().Store().Incarnation(); inc == oldInc {
		t.Fatalf("wiped n2 kept incarnation %d", inc)
	}
}

// TestRemovedNodeWithOldDataIsRefused: a node removed while it was down
// comes back with its old data directory: the cluster refuses it, it
// serves nothing, and its stale records do not come back.
func TestRemovedNodeWithOldDataIsRefused(t *testing.T) {
	c := kvtest.NewCluster(t, 3, kvtest.Options{TransferLimit: 8})
	if r := c.Put(0, "gone", "old", "", "w=all"); r.Status != http.StatusNoContent && r.Status != http.StatusOK {
		t.Fatalf("put: %d", r.Status)
	}
	c.Stop(2)
	c.WaitLiveness(0, 2, gossip.Dead, time.Minute)
	if r := c.Do(0, http.MethodPost, "/cluster/remove/n3", nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("remove n3: %d %s", r.Status, r.Body)
	}
	c.WaitStatus("n3", gossip.StatusRemoved)
	// Deleted while n3 is out; its old copy must not bring it back.
	rd := c.Get(0, "gone", "r=all")
	if r := c.Delete(0, "gone", rd.Context, "w=all"); r.Status != http.StatusNoContent && r.Status != http.StatusOK {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	c.Restart(2)
	c.WaitFor("n3 to be refused", time.Minute, func() bool { return c.Nodes[2].Running().Membership().Refused() != nil })
	if r := c.Get(2, "gone", "r=one"); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("a refused node answered a read: %d", r.Status)
	}
	if r := c.Get(0, "gone", "r=all"); r.Status != http.StatusNotFound {
		t.Fatalf("deleted key after the removed node came back: %d %v", r.Status, r.Values())
	}
}
