package node_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dotkv/dotkv/gossip"
	"github.com/dotkv/dotkv/handoff"
	"github.com/dotkv/dotkv/internal/kvtest"
	"github.com/dotkv/dotkv/node"
	"github.com/dotkv/dotkv/ring"
)

// Tests of partition transfers and of what holds while they run, on real
// nodes on the in-memory network, in virtual time (see simulate): a
// coordinator cut off from ring updates, a receiver or a source killed
// mid-transfer, a delete during a transfer, a hint for a leaving node,
// and anti-entropy as soon as a partition heals.

// ok2xx reports whether a write was acknowledged.
func ok2xx(status int) bool { return status == http.StatusOK || status == http.StatusNoContent }

// view returns node i's ownership view.
func view(c *kvtest.Cluster, i int) *ring.View { return c.Nodes[i].Running().Membership().View() }

// testRing is the ring dotkv builds for a plain set of members (a join
// or leave without replacement places members under their own IDs).
func testRing(t *testing.T, ids ...string) *ring.Ring {
	t.Helper()
	r, err := ring.New(ids, ring.DefaultPartitions, 3)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// keysIn returns n keys with the given prefix in partition p of r.
func keysIn(r *ring.Ring, p uint32, prefix string, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		k := fmt.Sprintf("%s-%d", prefix, i)
		if r.PartitionOf([]byte(k)) == p {
			out = append(out, k)
		}
	}
	return out
}

// value returns a value of size bytes for key.
func value(key string, size int) string {
	v := "v-" + key + "-"
	return v + strings.Repeat("x", max(size-len(v), 0))
}

// holders returns the nodes of ids whose own record of key holds value.
func holders(c *kvtest.Cluster, ids []string, key, val string) []string {
	var out []string
	for _, id := range ids {
		if rep := c.Replica(c.Index(id), key); rep.Status == http.StatusOK && slices.Contains(rep.Values(), val) {
			out = append(out, id)
		}
	}
	return out
}

// waitChangeDone waits until every running node but those of except sees
// node id with status st and no membership change in progress.
func waitChangeDone(c *kvtest.Cluster, id string, st gossip.Status, except ...int) {
	c.WaitFor(fmt.Sprintf("every node but %v to see %s %s", except, id, st), waitLimit, func() bool {
		for i, nd := range c.Nodes {
			n := nd.Running()
			if n == nil || slices.Contains(except, i) {
				continue
			}
			m, ok := n.Membership().Member(id)
			if !ok || m.Status != st || n.Membership().View().Change() != "" {
				return false
			}
		}
		return true
	})
}

// staleWrite is one write through the coordinator cut off from ring
// updates.
type staleWrite struct {
	key, val, level string
	w               int // acks the level asks of N=3
	status          int
}

// TestStaleCoordinatorNeedsFinalOwners: a coordinator whose gossip of
// ring state is cut (its RPC works, and gossip's probes keep it and its
// peers alive to each other) stays on the ring it had while a fourth
// node joins. A write through it, during the join and after it completed
// everywhere else, at w=quorum or w=all, must either fail or be held by
// W owners of the final ring.
//
// What makes it hold after the join is the replicas' epoch check: a node
// whose newer view no longer makes it an owner of the key answers "not
// owner" to the stale coordinator's copy, which then counts as no ack. For
// a key that n2 or n3 lost to n4, the stale coordinator sends its copies
// to n1, n2 and n3 only (n4 is not in its ring): without the check n2 or
// n3 would acknowledge, the w=all write would be acknowledged with n4,
// an owner of the final ring, holding nothing — the class-"other lost"
// writes below would fail the test. With it the write fails (503).
//
// For a key whose partition the stale coordinator itself lost to n4
// (final owners n2, n3, n4), the coordinator is a reader in its own stale
// view and counts its own copy; n2 and n3 own the key in their new view,
// but the copies list n1, n2 and n3 as the write owners, so they refuse
// them (the stale view misses n4): the write fails. The same refusal
// covers writes during the join that miss a receiver's extra ack.
func TestStaleCoordinatorNeedsFinalOwners(t *testing.T) {
	simulate(t, staleCoordinatorNeedsFinalOwners)
}

func staleCoordinatorNeedsFinalOwners(t *testing.T) {
	// No anti-entropy: a copy reaches a final owner through the write
	// path, the transfer or a hint, not through a later repair that
	// would hide what the acknowledgement promised.
	c := newCluster(t, 3, kvtest.Options{DisableAAE: true})
	stopNode(c, 0)
	cut := c.SeparateGossip(0)
	c.Restart(0)
	c.WaitAllAlive()

	// Data for the join to move, slowly (n4's transfer rate), so that the
	// writer below runs while partitions move.
	base := keyList("base", 300)
	for i, k := range base {
		if r := c.Put(i%3, k, value(k, 8<<10), "", "w=all"); !ok2xx(r.Status) {
			t.Fatalf("put %s: %d %s", k, r.Status, r.Body)
		}
	}
	old := view(c, 0)

	cut.CutRing()
	// n4 joins through n2: n1's gossip streams are cut.
	n4 := c.AddNodeWith("", func(cfg *node.Config) {
		cfg.Join = []string{c.Nodes[1].Running().GossipAddr()}
		cfg.TransferRate = 256 << 10
	})
	c.WaitFor("the join to start on n2", waitLimit, func() bool { return view(c, 1).Change() != "" })

	// The writer: fresh keys through n1, alternately at w=quorum and
	// w=all, until the join completed everywhere but n1 (at most 400).
	var (
		mu     sync.Mutex
		during []staleWrite
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	wg.Go(func() {
		for n := range 400 {
			select {
			case <-stop:
				return
			default:
			}
			sw := staleWrite{key: fmt.Sprintf("during-%03d", n), level: "quorum", w: 2}
			if n%2 == 1 {
				sw.level, sw.w = "all", 3
			}
			sw.val = "v-" + sw.key
			r, err := c.TryPut(0, sw.key, sw.val, "", "w="+sw.level)
			if err != nil {
				t.Error(err)
				return
			}
			sw.status = r.Status
			mu.Lock()
			during = append(during, sw)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond) // pace, not a wait on anything
		}
	})
	waitChangeDone(c, c.Nodes[n4].ID, gossip.StatusMember, 0)
	close(stop)
	wg.Wait()

	// n1 is still on its old ring, and still alive to everyone.
	if v := view(c, 0); v.Epoch() != old.Epoch() || slices.Contains(v.Members(), "n4") {
		t.Fatalf("n1 learned of the join through the cut: epoch %d -> %d, members %v", old.Epoch(), v.Epoch(), v.Members())
	}
	for i := range c.Nodes {
		for j := range c.Nodes {
			if i != j && (i == 0 || j == 0) && (i != 0 || j != n4) && c.Liveness(i, j) != gossip.Alive {
				t.Fatalf("%s sees %s %s: the cut reached gossip's probes", c.Nodes[i].ID, c.Nodes[j].ID, c.Liveness(i, j))
			}
		}
	}
	final := view(c, 1)
	if final.Changing() || !slices.Contains(final.Members(), "n4") {
		t.Fatalf("n2's view after the join: change %q, members %v", final.Change(), final.Members())
	}

	// After the join: keys of every class, by which owner of n1's ring
	// lost the key to n4.
	class := func(key string) string {
		p := final.PartitionOf([]byte(key))
		for _, id := range old.Primaries(p) {
			if !slices.Contains(final.Primaries(p), id) {
				if id == "n1" {
					return "coordinator lost"
				}
				return "other lost"
			}
		}
		return "unmoved"
	}
	levels := []struct {
		level string
		w     int
	}{{"quorum", 2}, {"all", 3}}
	classes := []string{"coordinator lost", "other lost", "unmoved"}
	perSlot := map[string]int{} // class/level → writes
	var after []staleWrite
	for k := 0; len(after) < len(classes)*len(levels)*8; k++ {
		if k > 100000 {
			t.Fatalf("could not find 8 keys of each class and level: %v", perSlot)
		}
		key := fmt.Sprintf("after-%d", k)
		lv := levels[k%len(levels)]
		slot := class(key) + "/" + lv.level
		if perSlot[slot] >= 8 {
			continue
		}
		perSlot[slot]++
		sw := staleWrite{key: key, val: "v-" + key, level: lv.level, w: lv.w}
		sw.status = c.Put(0, sw.key, sw.val, "", "w="+sw.level).Status
		after = append(after, sw)
	}

	// Every acknowledged write is held by W owners of the final ring.
	// Only the write path, the transfer or a hint can have put it there:
	// anti-entropy is off, nothing read it, and the final owners' cleaners
	// keep what they own.
	counts := map[string]int{}
	var bad []string
	check := func(phase string, ws []staleWrite) {
		for _, sw := range ws {
			cl := class(sw.key)
			tag := fmt.Sprintf("%s/%s/w=%s", phase, cl, sw.level)
			if !ok2xx(sw.status) {
				counts[tag+" refused"]++
				continue
			}
			counts[tag+" acknowledged"]++
			owners := final.Primaries(final.PartitionOf([]byte(sw.key)))
			if got := holders(c, owners, sw.key, sw.val); len(got) < sw.w {
				bad = append(bad, fmt.Sprintf("%s %s: acknowledged, final owners %v, held by %v", tag, sw.key, owners, got))
			}
		}
	}
	check("during", during)
	check("after", after)
	tags := make([]string, 0, len(counts))
	for tag, n := range counts {
		tags = append(tags, fmt.Sprintf("%s: %d", tag, n))
	}
	slices.Sort(tags)
	t.Logf("writes through the stale n1: %s", strings.Join(tags, "; "))
	msgs, streams := cut.Dropped()
	t.Logf("the cut dropped %d ring-state messages and %d streams", msgs, streams)
	if counts["after/other lost/w=all refused"] == 0 {
		t.Errorf("no w=all write of a key another node lost was refused: the epoch check did not bite")
	}
	if len(bad) > 0 {
		t.Errorf("%d writes acknowledged by the stale coordinator are held by fewer than W owners of the final ring:\n%s",
			len(bad), strings.Join(bad, "\n"))
	}

	// Once n1 hears of the ring again it catches up, and every
	// acknowledged write reads back at r=all through every node.
	cut.Restore()
	c.WaitFor("n1 to catch up with the ring", waitLimit, func() bool { return view(c, 0).Epoch() == view(c, 1).Epoch() })
	for _, ws := range [][]staleWrite{during, after} {
		for _, sw := range ws {
			if !ok2xx(sw.status) {
				continue
			}
			for i := range c.Nodes {
				if rd := c.Get(i, sw.key, "r=all"); rd.Status != http.StatusOK || !slices.Contains(rd.Values(), sw.val) {
					t.Fatalf("acknowledged %s reads %d %v at r=all via %s", sw.key, rd.Status, rd.Values(), c.Nodes[i].ID)
				}
			}
		}
	}
}

// transferOf returns node i's incoming transfer of partition p, if it is
// running and has one.
func transferOf(c *kvtest.Cluster, i int, p uint32) (handoff.Transfer, bool) {
	n := c.Nodes[i].Running()
	if n == nil {
		return handoff.Transfer{}, false
	}
	for _, tr := range n.Transfers() {
		if tr.Partition == p {
			return tr, true
		}
	}
	return handoff.Transfer{}, false
}

// moving is one partition a join moves to the new node, and the keys
// written to it before the join.
type moving struct {
	p    uint32
	keys []string
	val  map[string]string
	// loser is the current owner that is not an owner of the target ring
	// of change: it keeps the partition's records until the partition
	// switches, and hands them off after.
	loser, change string
}

// transferWatch checks, whenever the test polls it, what must hold while
// partitions move to node n4: a node that answers reads of a watched
// partition for n4 (the partition switched) only does so once n4's
// transfer of it is done, and n4 holds every key of it; and the loser
// keeps every key of it for as long as its own view has the partition
// moving.
type transferWatch struct {
	t        *testing.T
	c        *kvtest.Cluster
	n4       int
	parts    []*moving
	verified map[uint32]bool   // switch seen and n4's copy verified
	pending  map[uint32]bool   // switch seen, n4's copy not verified yet
	seenBy   map[uint32]string // the first node seen with it switched
}

func (w *transferWatch) check() {
	t, c := w.t, w.c
	t.Helper()
	for _, m := range w.parts {
		for i, nd := range c.Nodes {
			// A node not ready yet (n4 itself, starting) routes nothing.
			if n := nd.Running(); n == nil || w.verified[m.p] || !n.Membership().Ready() || !view(c, i).IsReader(m.p, c.Nodes[w.n4].ID) {
				continue
			}
			if !w.pending[m.p] {
				w.seenBy[m.p] = fmt.Sprintf("%s (epoch %d)", nd.ID, view(c, i).Epoch())
				// Read after the view: a transfer done now was done then.
				if tr, ok := transferOf(c, w.n4, m.p); ok && tr.State != handoff.StateDone {
					t.Fatalf("partition %d switched to %s in %s's view while %s's transfer of it is %s (%d keys)",
						m.p, c.Nodes[w.n4].ID, w.seenBy[m.p], c.Nodes[w.n4].ID, tr.State, tr.Keys)
				}
			}
			w.pending[m.p] = true
		}
		if w.pending[m.p] && !w.verified[m.p] && c.Nodes[w.n4].Running() != nil {
			for _, k := range m.keys {
				if rep := c.Replica(w.n4, k); !slices.Contains(rep.Values(), m.val[k]) {
					t.Fatalf("partition %d switched to %s in %s's view, and %s does not hold %s: %d %s",
						m.p, c.Nodes[w.n4].ID, w.seenBy[m.p], c.Nodes[w.n4].ID, k, rep.Status, rep.Body)
				}
			}
			w.verified[m.p] = true
		}
		li := c.Index(m.loser)
		if c.Nodes[li].Running() == nil {
			continue
		}
		for _, k := range []string{m.keys[0], m.keys[len(m.keys)/2], m.keys[len(m.keys)-1]} {
			rep := c.Replica(li, k)
			// Read the view after the record: switches are final, so a
			// partition still moving now was moving when the record was read.
			if v := view(c, li); v.Change() == m.change && v.Moving(m.p) && !slices.Contains(rep.Values(), m.val[k]) {
				t.Fatalf("%s, a source of partition %d, lost %s before the partition switched: %d %s", m.loser, m.p, k, rep.Status, rep.Body)
			}
		}
	}
}

// waitFor waits until cond holds, for at most waitLimit, and runs the
// watch's checks at every poll. It polls every 50 ms: the windows it
// waits for last seconds (of virtual time), and each poll costs real time.
func (w *transferWatch) waitFor(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		w.check()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requireMoving fails unless every running node sees partition p still
// moving to node id, id not answering reads of it and with status st, and
// the change in progress.
func requireMoving(t *testing.T, c *kvtest.Cluster, p uint32, id string, st gossip.Status) {
	t.Helper()
	for i, nd := range c.Nodes {
		if nd.Running() == nil {
			continue
		}
		v := view(c, i)
		m, _ := nd.Running().Membership().Member(id)
		if v.Change() == "" || !slices.Contains(v.Receiving(p), id) || v.IsReader(p, id) || m.Status != st {
			t.Fatalf("%s sees change %q, partition %d receivers %v readers %v, %s %s: want %s still receiving it",
				nd.ID, v.Change(), p, v.Receiving(p), v.Readers(p), id, m.Status, id)
		}
	}
}

// TestTransferSurvivesKilledReceiverAndSource: partition transfers run
// slowly (n4 receives at 256 KiB/s, one partition at a time). During a
// join the receiver, n4, is stopped mid-partition and restarted; during a
// leave that follows, the source of a partition n4 pulls, the leaving
// node itself, is stopped mid-partition and restarted. Meanwhile no
// partition switches to n4 before n4 holds it, n4 stays joining while it
// receives, and the owner that loses a partition keeps its records for
// as long as the partition is moving. The receiver resumes from its
// persisted cursor, the transfer goes on from another source, and in the
// end every key reads back through n4.
func TestTransferSurvivesKilledReceiverAndSource(t *testing.T) {
	simulate(t, transferSurvivesKilledReceiverAndSource)
}

func transferSurvivesKilledReceiverAndSource(t *testing.T) {
	const valueSize = 8 << 10 // a 1 MiB batch holds about 127 of them
	c := newCluster(t, 3, kvtest.Options{TransferLimit: 1, DisableAAE: true})
	vals := map[string]string{}
	write := func(keys []string) {
		t.Helper()
		for _, k := range keys {
			vals[k] = value(k, valueSize)
		}
		if err := parallel(len(keys), 8, func(i int) error {
			r, err := c.TryPut(i%3, keys[i], vals[keys[i]], "", "w=all")
			if err == nil && !ok2xx(r.Status) {
				err = fmt.Errorf("put %s: %d %s", keys[i], r.Status, r.Body)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	lost := func(cur, target *ring.Ring, p uint32) string {
		for _, id := range cur.Primaries(p) {
			if !slices.Contains(target.Primaries(p), id) {
				return id
			}
		}
		return ""
	}

	// Part 1, the join: P1, the first partition n4 receives (transfers run
	// in partition order), holds 300 keys; a few more keys spread.
	three := view(c, 0).Current()
	four := testRing(t, "n1", "n2", "n3", "n4")
	var p1 *moving
	for p := range uint32(three.Partitions()) {
		if l := lost(three, four, p); l != "" {
			p1 = &moving{p: p, loser: l, val: vals}
			break
		}
	}
	p1.keys = keysIn(three, p1.p, fmt.Sprintf("p%d", p1.p), 300)
	spread := keyList("spread", 20)
	write(append(slices.Clone(p1.keys), spread...))
	t.Logf("P1 = partition %d (n4 takes it from %s), 300 keys of %d B", p1.p, p1.loser, valueSize)

	n4 := c.AddNodeWith("", func(cfg *node.Config) { cfg.TransferRate = 256 << 10 })
	w := &transferWatch{t: t, c: c, n4: n4, parts: []*moving{p1}, verified: map[uint32]bool{}, pending: map[uint32]bool{}, seenBy: map[uint32]string{}}
	w.waitFor("the join's target ring on n1", func() bool { return view(c, 0).Change() != "" })
	p1.change = view(c, 0).Change()
	if got := view(c, 0).Target().Primaries(p1.p); !slices.Equal(got, four.Primaries(p1.p)) {
		t.Fatalf("partition %d: target owners %v, the test expected %v", p1.p, got, four.Primaries(p1.p))
	}

	// The receiver stops mid-P1: a batch merged and its cursor persisted,
	// more to come.
	var k1 int64
	w.waitFor("n4 to be mid-way through P1", func() bool {
		tr, ok := transferOf(c, n4, p1.p)
		k1 = tr.Keys
		return ok && tr.State == handoff.StateRunning && tr.Keys > 0 && tr.Keys < int64(len(p1.keys))
	})
	stopNode(c, n4)
	t.Logf("stopped n4 with %d of P1's %d keys received", k1, len(p1.keys))
	requireMoving(t, c, p1.p, "n4", gossip.StatusJoining)
	// Watch the cluster for 2 s (virtual) with n4 down, ten rounds of
	// every node's cleaner: P1 does not switch, and its loser keeps it.
	stopped := time.Now()
	w.waitFor("2 s with n4 down", func() bool {
		requireMoving(t, c, p1.p, "n4", gossip.StatusJoining)
		return time.Since(stopped) >= 2*time.Second
	})
	for _, k := range p1.keys {
		if rep := c.Replica(c.Index(p1.loser), k); !slices.Contains(rep.Values(), vals[k]) {
			t.Fatalf("%s, losing P1 to the stopped n4, lost %s: %d", p1.loser, k, rep.Status)
		}
	}
	for _, k := range p1.keys[:20] {
		if rd := c.Get(0, k, "r=all"); rd.Status != http.StatusOK || !slices.Equal(rd.Values(), []string{vals[k]}) {
			t.Fatalf("read %s at r=all with n4 stopped mid-transfer: %d", k, rd.Status)
		}
	}

	c.Restart(n4)
	if r := c.Do(n4, http.MethodGet, "/healthz", nil, nil); r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "joining") {
		t.Fatalf("restarted n4's /healthz: %d %s, want 503 joining", r.Status, r.Body)
	}
	var k1b int64
	w.waitFor("n4 to finish P1", func() bool {
		tr, ok := transferOf(c, n4, p1.p)
		k1b = tr.Keys
		return ok && tr.State == handoff.StateDone
	})
	t.Logf("restarted n4 received the remaining %d keys of P1", k1b)
	if k1b >= int64(len(p1.keys)) || k1+k1b < int64(len(p1.keys)) {
		t.Fatalf("P1: %d keys before the stop, %d after the restart, of %d: the transfer did not resume from its cursor",
			k1, k1b, len(p1.keys))
	}
	w.waitFor("the join to complete", func() bool {
		for i := range c.Nodes {
			if m, _ := c.Nodes[i].Running().Membership().Member("n4"); m.Status != gossip.StatusMember || view(c, i).Changing() {
				return false
			}
		}
		return true
	})
	if !w.verified[p1.p] {
		t.Fatalf("P1 was never seen switched to n4")
	}
	if r := c.Do(n4, http.MethodGet, "/healthz", nil, nil); r.Status != http.StatusOK {
		t.Fatalf("n4's /healthz after the join: %d %s", r.Status, r.Body)
	}
	// After the switch, P1's loser hands its records off and drops them.
	li := c.Index(p1.loser)
	c.WaitFor(fmt.Sprintf("%s to drop partition %d", p1.loser, p1.p), waitLimit, func() bool {
		return c.Replica(li, p1.keys[0]).Status == http.StatusNotFound && c.Replica(li, p1.keys[len(p1.keys)-1]).Status == http.StatusNotFound
	})

	// Part 2, a leave: n2 leaves, and P2 is a partition n4 receives whose
	// first reader, the source n4 pulls from first, is n2 itself. n2
	// serves any number of transfers at once, so that no "busy" answer
	// sends n4 to another source.
	stopNode(c, 1)
	c.RestartWith(1, func(cfg *node.Config) { cfg.TransferLimit = 16 })
	c.WaitAllAlive()
	three = testRing(t, "n1", "n3", "n4")
	var p2 *moving
	for p := range uint32(four.Partitions()) {
		if cp := four.Primaries(p); cp[0] == "n2" && !slices.Contains(cp, "n4") && p > p1.p {
			p2 = &moving{p: p, loser: "n2", val: vals}
			break
		}
	}
	p2.keys = keysIn(four, p2.p, fmt.Sprintf("p%d", p2.p), 300)
	write(p2.keys)
	t.Logf("P2 = partition %d (owners %v; n4 takes it from the leaving n2)", p2.p, four.Primaries(p2.p))
	// n4's transfer of P2 is listed only while the leave is in progress:
	// it can end, and the whole change with it, between two looks. What n4
	// received is counted apart (no other partition it receives has keys).
	keysBefore := c.Metric(n4, "dotkv_transfer_keys_total")
	changeOver := func() bool { return view(c, n4).Change() != p2.change }
	if r := c.Do(1, http.MethodPost, "/cluster/leave", nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("leave: %d %s", r.Status, r.Body)
	}
	var k2 int64
	w.waitFor("n4 to be mid-way through P2, pulling from n2", func() bool {
		tr, ok := transferOf(c, n4, p2.p)
		k2 = tr.Keys
		return ok && tr.State == handoff.StateRunning && tr.Keys > 0 && tr.Keys < int64(len(p2.keys)) && tr.From == "n2"
	})
	p2.change = view(c, 0).Change()
	w.parts = append(w.parts, p2)
	if got := view(c, 0).Target().Primaries(p2.p); !slices.Equal(got, three.Primaries(p2.p)) {
		t.Fatalf("partition %d: target owners %v, the test expected %v", p2.p, got, three.Primaries(p2.p))
	}
	stopNode(c, 1)
	t.Logf("stopped n2, the source of P2, with %d of P2's %d keys received", k2, len(p2.keys))
	requireMoving(t, c, p2.p, "n4", gossip.StatusMember)
	w.waitFor("n4 to go on with P2 from another source", func() bool {
		tr, ok := transferOf(c, n4, p2.p)
		return ok && tr.From != "n2" && tr.Keys > k2 || !ok && changeOver()
	})
	c.Restart(1)
	w.check()
	if view(c, 1).Moving(p2.p) {
		for _, k := range p2.keys {
			if rep := c.Replica(1, k); !slices.Contains(rep.Values(), vals[k]) {
				t.Fatalf("restarted n2 lost %s of P2 before its switch: %d", k, rep.Status)
			}
		}
	} else {
		t.Logf("P2 switched before n2 was back")
	}
	w.waitFor("n4 to finish P2", func() bool {
		tr, ok := transferOf(c, n4, p2.p)
		return ok && tr.State == handoff.StateDone || !ok && changeOver()
	})
	k2b := int64(c.Metric(n4, "dotkv_transfer_keys_total") - keysBefore)
	// Batches of 8 KiB values hold about 127 keys: at most one is pulled
	// again (if the stop came between its pull and its merge).
	t.Logf("n4 received %d keys of P2 in all", k2b)
	if k2b < int64(len(p2.keys)) || k2b > int64(len(p2.keys))+130 {
		t.Fatalf("P2: %d keys received in all, of %d: the transfer started over or skipped keys", k2b, len(p2.keys))
	}
	w.waitFor("n2 to have left", func() bool {
		for i := range c.Nodes {
			if m, _ := c.Nodes[i].Running().Membership().Member("n2"); m.Status != gossip.StatusLeft || view(c, i).Changing() {
				return false
			}
		}
		return true
	})
	if !w.verified[p2.p] {
		t.Fatalf("P2 was never seen switched to n4")
	}
	stopNode(c, 1)
	for _, k := range append(append(slices.Clone(p1.keys), p2.keys...), spread...) {
		if rd := c.Get(n4, k, "r=all"); rd.Status != http.StatusOK || !slices.Equal(rd.Values(), []string{vals[k]}) {
			t.Fatalf("read %s at r=all through n4 at the end: %d", k, rd.Status)
		}
	}
	for _, k := range append(slices.Clone(p1.keys), p2.keys...) {
		if rep := c.Replica(n4, k); !slices.Equal(rep.Values(), []string{vals[k]}) {
			t.Fatalf("n4's own record of %s: %d %s", k, rep.Status, rep.Body)
		}
	}
}

// TestDeleteDuringTransferStaysDeleted: keys are deleted, each with the
// context a read gave, while a join's transfer runs — in partitions n4
// has received already, is receiving, and has yet to receive. After the
// join they read 404 at r=all through every node; after the owners that
// lost partitions handed their records off and dropped them (the
// cleaner), and after the tombstones were collected (grace 2 s), they
// still do, and no node holds anything for them.
func TestDeleteDuringTransferStaysDeleted(t *testing.T) {
	simulate(t, deleteDuringTransferStaysDeleted)
}

func deleteDuringTransferStaysDeleted(t *testing.T) {
	const valueSize = 16 << 10
	c := newCluster(t, 3, kvtest.Options{TransferLimit: 1, TombstoneGrace: 2 * time.Second})
	// Few keys (every partition that holds one is transferred, and its
	// switch rebuilds every node's view), big enough for the transfer to
	// take a while at n4's rate.
	keys := keyList("del", 160)
	vals := map[string]string{}
	for _, k := range keys {
		vals[k] = value(k, valueSize)
	}
	if err := parallel(len(keys), 8, func(i int) error {
		r, err := c.TryPut(i%3, keys[i], vals[keys[i]], "", "w=all")
		if err == nil && !ok2xx(r.Status) {
			err = fmt.Errorf("put %s: %d %s", keys[i], r.Status, r.Body)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	three := view(c, 0).Current()

	n4 := c.AddNodeWith("", func(cfg *node.Config) { cfg.TransferRate = 64 << 10 })
	// Mid-transfer: n4 received some partitions' records and has more to go.
	c.WaitFor("n4 to be mid-way through its transfers", waitLimit, func() bool {
		var done, left int
		for _, tr := range c.Nodes[n4].Running().Transfers() {
			switch {
			case tr.State == handoff.StateDone && tr.Keys > 0:
				done++
			case tr.State != handoff.StateDone:
				left++
			}
		}
		return done >= 30 && left >= 30
	})

	// Delete every other key through the nodes in turn, each with the
	// context of a read, and note where its partition's transfer stood.
	state := map[uint32]string{}
	for _, tr := range c.Nodes[n4].Running().Transfers() {
		state[tr.Partition] = tr.State
	}
	stood := map[string]int{}
	var deleted, kept []string
	for j, k := range keys {
		if j%2 == 1 {
			kept = append(kept, k)
			continue
		}
		i := (j / 2) % 3
		rd := c.Get(i, k, "r=quorum")
		if rd.Status != http.StatusOK || !slices.Equal(rd.Values(), []string{vals[k]}) {
			t.Fatalf("read %s before deleting it: %d %v", k, rd.Status, rd.Values())
		}
		if r := c.Delete(i, k, rd.Context, "w=quorum"); !ok2xx(r.Status) {
			t.Fatalf("delete %s via %s during the transfer: %d %s", k, c.Nodes[i].ID, r.Status, r.Body)
		}
		deleted = append(deleted, k)
		p := three.PartitionOf([]byte(k))
		switch st, ok := state[p]; {
		case !ok:
			stood["not moving to n4"]++
		case st == handoff.StateDone:
			stood["received by n4"]++
		case st == handoff.StateRunning || st == handoff.StateConfirming:
			stood["being received by n4"]++
		default:
			stood["not received by n4 yet"]++
		}
	}
	t.Logf("deleted %d keys during the transfer; their partitions: %v", len(deleted), stood)
	if stood["received by n4"] == 0 || stood["not received by n4 yet"] == 0 {
		t.Fatalf("the deletes did not straddle the transfer: %v", stood)
	}
	if !view(c, 0).Changing() {
		t.Fatalf("the join completed during the deletes: they did not run during the transfer")
	}

	c.WaitStatus("n4", gossip.StatusMember)
	final := view(c, 0)
	requireDeleted := func(step string) {
		t.Helper()
		for _, k := range deleted {
			for i := range c.Nodes {
				if r := c.Get(i, k, "r=all"); r.Status != http.StatusNotFound {
					t.Fatalf("%s: deleted %s reads %d %s at r=all via %s", step, k, r.Status, r.Body, c.Nodes[i].ID)
				}
			}
		}
		for _, k := range kept {
			if r := c.Get(n4, k, "r=all"); r.Status != http.StatusOK || !slices.Equal(r.Values(), []string{vals[k]}) {
				t.Fatalf("%s: kept %s reads %d %v at r=all via n4", step, k, r.Status, r.Values())
			}
		}
	}
	noValue := func(step string) {
		t.Helper()
		for _, k := range deleted {
			for i := range c.Nodes {
				if rep := c.Replica(i, k); len(rep.Values()) > 0 {
					t.Fatalf("%s: %s holds the deleted %s's value: %s", step, c.Nodes[i].ID, k, rep.Body)
				}
			}
		}
	}
	noValue("after the join")
	requireDeleted("after the join")

	// The owners that lost partitions to n4 hand their records (the
	// tombstones among them) off and drop them; the tombstones are then
	// collected once their grace has passed: no node holds anything for
	// a deleted key, and a node that does not own a kept key holds none.
	c.WaitFor("the cleaner and tombstone collection to empty every node of the deleted keys", waitLimit, func() bool {
		noValue("while the cleaner runs")
		for _, k := range deleted {
			for i := range c.Nodes {
				if c.Replica(i, k).Status != http.StatusNotFound {
					return false
				}
			}
		}
		for _, k := range kept {
			prims := final.Primaries(final.PartitionOf([]byte(k)))
			for i, nd := range c.Nodes {
				if !slices.Contains(prims, nd.ID) && c.Replica(i, k).Status != http.StatusNotFound {
					return false
				}
			}
		}
		return true
	})
	requireDeleted("after the cleaner ran and the tombstones were collected")

	// A few more anti-entropy rounds on every node: nothing comes back.
	var ex []float64
	for i := range c.Nodes {
		ex = append(ex, c.Metric(i, "dotkv_aae_exchanges_total"))
	}
	for i := range c.Nodes {
		waitExchanges(c, i, ex[i], 3)
	}
	noValue("after more anti-entropy")
	for _, k := range deleted {
		for i := range c.Nodes {
			if rep := c.Replica(i, k); rep.Status != http.StatusNotFound {
				t.Fatalf("%s holds %s again after more anti-entropy: %s", c.Nodes[i].ID, k, rep.Body)
			}
		}
	}
	requireDeleted("after more anti-entropy")
}

// TestHintForLeavingNodeReachesNewOwner: n4 is about to leave. A write
// at w=one through n1, whose RPC to n4, to the key's first owner A and to
// its fallback X is cut (gossip is not: nobody is dead), is held by n1
// alone; the copies for A and n4 become hints on n1. n4 leaves: the key's new owner X
// receives the partition from A, which holds nothing of the key, so
// only n4's hint can bring it. Once n4 has left, n1 hands that hint to
// the partition's owners, and X holds the key — before the cut heals.
func TestHintForLeavingNodeReachesNewOwner(t *testing.T) {
	simulate(t, hintForLeavingNodeReachesNewOwner)
}

func hintForLeavingNodeReachesNewOwner(t *testing.T) {
	c := newCluster(t, 4, kvtest.Options{DisableAAE: true})
	const coord, leaving = 0, 3 // n1 coordinates, n4 leaves
	cur := view(c, 0).Current()
	var key, a, x string
	for k := 0; key == ""; k++ {
		cand := fmt.Sprintf("hinted-%d", k)
		prims := cur.Primaries(cur.PartitionOf([]byte(cand)))
		if slices.Contains(prims, "n1") && slices.Contains(prims, "n4") && prims[0] != "n1" && prims[0] != "n4" {
			key, a = cand, prims[0]
			for _, nd := range c.Nodes {
				if !slices.Contains(prims, nd.ID) {
					x = nd.ID
				}
			}
		}
	}
	p := cur.PartitionOf([]byte(key))
	t.Logf("%s: partition %d, owners %v; n4 leaves, %s takes its place", key, p, cur.Primaries(p), x)

	// n1's RPC alone can be cut (its gossip runs under its own ID), and
	// its transfers are paused for now: the leave cannot complete before
	// the test has looked at X.
	stopNode(c, coord)
	c.SeparateGossip(coord)
	c.RestartWith(coord, func(cfg *node.Config) { cfg.TransferLimit = -1 })
	c.WaitAllAlive()
	// X, the key's fallback, is cut off too for the write: no fallback
	// takes a copy, n1 keeps both hints.
	c.Net.Partition([]string{"n1"}, []string{a, "n4", x})

	const val = "written-while-n4-was-unreachable"
	if r := c.Put(coord, key, val, "", "w=one"); r.Status != http.StatusNoContent {
		t.Fatalf("w=one put through n1: %d %s", r.Status, r.Body)
	}
	// The copies fail after the answer (w=one): n1 keeps its hints in the
	// background.
	c.WaitFor("n1 to keep one hint for n4 and one for "+a, waitLimit, func() bool {
		h := c.HintsFor("n4")
		return len(h) == 1 && h["n1"] == 1 && c.HintsPending(coord)[a] == 1
	})
	c.Net.Partition([]string{"n1"}, []string{a, "n4"})
	for _, id := range []string{a, "n4", x} {
		if rep := c.Replica(c.Index(id), key); rep.Status != http.StatusNotFound {
			t.Fatalf("%s holds %s: %d %s", id, key, rep.Status, rep.Body)
		}
	}

	if r := c.Do(leaving, http.MethodPost, "/cluster/leave", nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("leave: %d %s", r.Status, r.Body)
	}
	xi := c.Index(x)
	c.WaitFor(fmt.Sprintf("partition %d to switch to %s", p, x), waitLimit, func() bool { return view(c, xi).IsReader(p, x) })
	if m, _ := c.Nodes[coord].Running().Membership().Member("n4"); m.Status != gossip.StatusLeaving {
		t.Fatalf("n1 sees n4 %s while n1's own transfers are paused", m.Status)
	}
	// The premise: the transfer (from A) did not bring the key to X.
	if rep := c.Replica(xi, key); rep.Status != http.StatusNotFound {
		t.Fatalf("test premise: %s got %s from its transfer: %d %s", x, key, rep.Status, rep.Body)
	}

	// n1's transfers resume (from X: A and n4 are cut from it), the leave
	// completes, and n1 hands n4's hint to the partition's owners: X gets
	// it, while A is still cut off.
	stopNode(c, coord)
	c.RestartWith(coord, func(cfg *node.Config) { cfg.TransferLimit = 0 })
	c.WaitStatus("n4", gossip.StatusLeft)
	c.WaitFor(fmt.Sprintf("%s to hold %s", x, key), waitLimit, func() bool {
		return slices.Equal(c.Replica(xi, key).Values(), []string{val})
	})
	if rep := c.Replica(c.Index(a), key); rep.Status != http.StatusNotFound {
		t.Fatalf("%s, still cut off from n1, holds %s: %d %s", a, key, rep.Status, rep.Body)
	}

	c.Heal()
	stopNode(c, leaving)
	c.WaitHintsDrained(waitLimit)
	final := view(c, 0)
	if owners := final.Primaries(p); slices.Contains(owners, "n4") || !slices.Contains(owners, x) {
		t.Fatalf("partition %d's owners after the leave: %v", p, owners)
	}
	for _, id := range final.Primaries(p) {
		if rep := c.Replica(c.Index(id), key); !slices.Equal(rep.Values(), []string{val}) {
			t.Fatalf("owner %s of %s after the heal: %d %s", id, key, rep.Status, rep.Body)
		}
	}
	if rd := c.Get(xi, key, "r=all"); rd.Status != http.StatusOK || !slices.Equal(rd.Values(), []string{val}) {
		t.Fatalf("read %s at r=all via %s: %d %s", key, x, rd.Status, rd.Body)
	}
}

// TestReplicasIdenticalSoonAfterHeal: with anti-entropy's interval at
// 10 minutes, hints off and nothing read, only the exchange a node starts
// as soon as gossip sees a peer come back can repair a partition's
// divergence within the test. n3 is cut off; both sides take writes the
// other misses (the majority at w=quorum, n3 alone at w=one, some keys
// on both sides); after the heal every partition's Merkle root agrees on
// all three nodes within 10 s (virtual) of gossip seeing everyone alive.
func TestReplicasIdenticalSoonAfterHeal(t *testing.T) { simulate(t, replicasIdenticalSoonAfterHeal) }

func replicasIdenticalSoonAfterHeal(t *testing.T) {
	const interval = 10 * time.Minute
	start := time.Now()
	c := newCluster(t, 3, kvtest.Options{DisableHints: true, AAEInterval: interval})
	c.Isolate(2)
	c.WaitDead([]int{0, 1}, []int{2}, waitLimit)
	c.WaitDead([]int{2}, []int{0, 1}, waitLimit)

	majority := keyList("majority", 300)
	putKeys(t, c, []int{0, 1}, majority, "w=quorum", 8)
	minority := keyList("minority", 300)
	putKeys(t, c, []int{2}, minority, "w=one", 8)
	both := keyList("both", 50) // siblings after the heal
	putKeys(t, c, []int{0}, both, "w=quorum", 8)
	putKeys(t, c, []int{2}, both, "w=one", 8)
	if ok, _, err := c.RootsAgree(); err != nil || ok {
		t.Fatalf("roots agree before the heal (%v): the test would measure nothing", err)
	}
	exchanges := metricSum(c, "dotkv_aae_exchanges_total")

	c.Heal()
	c.WaitAllAlive() // gossip sees everyone alive: the exchanges start now
	took := c.WaitRootsAgree(waitLimit)
	t.Logf("every partition's root equal on all three nodes %v after gossip saw everyone alive (%v after the cluster started; %v more exchanges)",
		took, time.Since(start), metricSum(c, "dotkv_aae_exchanges_total")-exchanges)
	if took > 10*time.Second {
		t.Errorf("roots agreed %v after gossip saw everyone alive, want within 10 s", took)
	}
	if since := time.Since(start); since >= interval {
		t.Fatalf("the test ran %v, past the anti-entropy interval %v: the periodic exchange could explain the convergence", since, interval)
	}
	if rr := metricSum(c, "dotkv_read_repairs_total"); rr != 0 {
		t.Fatalf("%v read repairs: something read", rr)
	}
	// The roots agree because the records do.
	for _, keys := range [][]string{majority[:50], minority[:50], both} {
		requireSame(t, c, 0, 2, keys)
		requireSame(t, c, 1, 2, keys)
	}
	for _, k := range both[:5] {
		if rep := c.Replica(2, k); len(rep.Siblings) != 2 {
			t.Fatalf("%s written on both sides: n3 holds %s, want two siblings", k, rep.Body)
		}
	}
}
