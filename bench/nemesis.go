package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dotkv/dotkv/bench/history"
	"github.com/dotkv/dotkv/client"
)

// Fault names accepted by --nemesis.
var FaultNames = []string{"partition-halves", "isolate-one", "majority-ring", "bridge", "kill", "pause", "membership"}

// Nemesis injects faults into a cluster: each fault on for an interval,
// then healed for an interval, cycling through the configured faults.
// Partitions go through the nodes' fault filter (mode "filter") or
// iptables DROP rules between the nodes' own addresses (mode "iptables").
//
// The membership nemesis (needs --spawn, at least 3 nodes) cycles through
// membership changes under the workload instead of faults: join a new
// node, leave one, join, kill one and remove it, kill one and replace it
// with a new node, and again. From k nodes that is k+1, k, k+1, k, k: the
// cluster never has fewer than max(k-1, 3) members (N=3). Each change is
// a phase ("join n4", "leave n2", "remove n3", "replace n1 by n6") that
// lasts until every live member sees it complete (bounded by
// MembershipStepTimeout), then a healed phase of the interval. New nodes
// get the next ID and loopback address and the same server flags.
//
// Join and leave phases are not faults (Fault false): every node is up,
// a write counts its level over a partition's current owners (plus one
// ack per owner still receiving it), and reads ask the current owners
// only, so under strict quorums (--pr, --pw) a read still intersects
// every write acknowledged before it began, and the checker's stale-read
// check holds dotkv to that. The one window dotkv documents — a transfer
// copies from one current owner, and a write that owner had missed
// reaches the new owner only by repair, so right after the switch a read
// of new-owner copies can miss it — shows there as stale reads, which is
// what the check is for. (A request sent to the leaving node once its
// server has exited fails: availability, not staleness.) Remove and
// replace phases are faults (Fault true): they start by killing a node,
// and until the change completes the cluster runs with a member dead, as
// during the kill fault.
type Nemesis struct {
	c        *Cluster
	faults   []string
	interval time.Duration
	mode     string
	rng      *rand.Rand
	hist     *history.History
	t0       time.Time
	ipt      *iptables

	// Membership changes: the number of members the run started with,
	// the changes made so far, the bound on each, and the context that
	// Abort ends (a change outlives the run's context, not an abort).
	startMembers int
	changes      int
	stepTimeout  time.Duration
	hard         context.Context
	abort        context.CancelFunc

	limit    int           // faults to inject (0: until ctx ends)
	finished chan struct{} // closed once limit faults were injected and healed

	mu     sync.Mutex
	phase  history.Phase
	active func(context.Context) error // heals the active fault
}

// NewNemesis prepares a nemesis; faults may be empty (no faults).
func NewNemesis(c *Cluster, faults []string, interval time.Duration, mode string, seed uint64, hist *history.History, t0 time.Time) (*Nemesis, error) {
	for _, f := range faults {
		if !slices.Contains(FaultNames, f) {
			return nil, fmt.Errorf("unknown nemesis %q (want none or %s)", f, strings.Join(FaultNames, ", "))
		}
		if (f == "kill" || f == "pause") && !c.Spawned() {
			return nil, fmt.Errorf("nemesis %s needs --spawn (it signals processes)", f)
		}
		if f == "membership" && !c.Spawned() {
			return nil, errors.New("nemesis membership needs --spawn (it starts and kills servers)")
		}
		if f == "membership" && len(c.Nodes()) < minMembers {
			return nil, fmt.Errorf("nemesis membership needs --spawn %d or more (N=3; it keeps at least %d members)", minMembers, minMembers)
		}
	}
	n := &Nemesis{c: c, faults: faults, interval: interval, mode: mode, rng: rand.New(rand.NewPCG(seed, 1)), hist: hist, t0: t0,
		startMembers: len(c.Nodes()), stepTimeout: MembershipStepTimeout}
	n.hard, n.abort = context.WithCancel(context.Background())
	n.finished = make(chan struct{})
	if mode == "iptables" {
		n.ipt = &iptables{}
		if err := n.ipt.setup(); err != nil {
			return nil, err
		}
	}
	n.phase = history.Phase{Name: "healthy", Start: 0}
	return n, nil
}

// IptablesUsable reports whether iptables mode can work here: root, an
// iptables binary, and the right to change rules (a container may list
// rules but not add any) — probed by creating and removing a chain.
func IptablesUsable() bool {
	if os.Geteuid() != 0 {
		return false
	}
	const probe = "DOTKV-PROBE"
	_ = exec.Command("iptables", "-X", probe).Run() // left over from an interrupted probe
	if exec.Command("iptables", "-N", probe).Run() != nil {
		return false
	}
	return exec.Command("iptables", "-X", probe).Run() == nil
}

// Phase returns the name of the current phase.
func (n *Nemesis) Phase() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.phase.Name
}

func (n *Nemesis) now() int64 { return int64(time.Since(n.t0)) }

// enter closes the current phase and opens the next.
func (n *Nemesis) enter(p history.Phase) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.phase.End = n.now()
	n.hist.AddPhase(n.phase)
	p.Start = n.phase.End
	n.phase = p
}

// Run injects faults until ctx is done, then heals whatever is active and
// closes the last phase. Always heals, also on errors.
func (n *Nemesis) Run(ctx context.Context) error {
	defer func() { _ = n.Close() }()
	if len(n.faults) == 0 {
		<-ctx.Done()
		return nil
	}
	for i := 0; ; i++ {
		if !sleepCtx(ctx, n.interval) {
			return nil
		}
		if n.limit > 0 && i == n.limit {
			close(n.finished) // the last fault has had its healed interval
			<-ctx.Done()
			return nil
		}
		f := n.faults[i%len(n.faults)]
		if f == "membership" {
			if err := n.membershipStep(); err != nil {
				return fmt.Errorf("nemesis membership: %w", err)
			}
			n.enter(history.Phase{Name: "healed"})
			continue
		}
		p, heal, err := n.start(ctx, f)
		if err != nil {
			return fmt.Errorf("nemesis %s: %w", f, err)
		}
		n.mu.Lock()
		n.active = heal
		n.mu.Unlock()
		n.enter(p)
		ok := sleepCtx(ctx, n.interval)
		if err := n.healActive(); err != nil {
			return fmt.Errorf("heal %s: %w", f, err)
		}
		n.enter(history.Phase{Name: "healed"})
		if !ok {
			return nil
		}
	}
}

func (n *Nemesis) healActive() error {
	n.mu.Lock()
	heal := n.active
	n.active = nil
	n.mu.Unlock()
	if heal == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return heal(ctx)
}

// SetLimit makes Run inject k faults (membership changes count as faults),
// each followed by its healed interval, and then close Finished; k ≤ 0
// means no limit. Call it before Run.
func (n *Nemesis) SetLimit(k int) { n.limit = max(k, 0) }

// Finished returns a channel closed once the nemesis has injected and
// healed as many faults as SetLimit asked for (never without a limit or
// without faults).
func (n *Nemesis) Finished() <-chan struct{} { return n.finished }

// SetMembershipTimeout bounds each membership change (default
// MembershipStepTimeout); a change not complete by then fails the run.
func (n *Nemesis) SetMembershipTimeout(d time.Duration) {
	if d > 0 {
		n.stepTimeout = d
	}
}

// Abort cuts short a membership change in progress (Ctrl-C): Run
// returns at once instead of waiting for it to complete.
func (n *Nemesis) Abort() { n.abort() }

// Close heals any active fault, records the last phase and removes the
// iptables chain. Safe to call more than once.
func (n *Nemesis) Close() error {
	n.abort()
	err := n.healActive()
	n.mu.Lock()
	if n.phase.End == 0 {
		n.phase.End = n.now()
		// The run ending right at a heal leaves an empty last phase: drop it.
		if n.phase.End-n.phase.Start > int64(10*time.Millisecond) || len(n.hist.Phases()) == 0 {
			n.hist.AddPhase(n.phase)
		}
	}
	n.mu.Unlock()
	if n.ipt != nil {
		err = errors.Join(err, n.ipt.cleanup())
		n.ipt = nil
	}
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// start begins fault f and returns its phase and how to heal it.
func (n *Nemesis) start(ctx context.Context, f string) (history.Phase, func(context.Context) error, error) {
	nodes := n.c.Nodes()
	ids := make([]string, len(nodes))
	for i, nd := range nodes {
		ids[i] = nd.ID
	}
	k := len(ids)
	switch f {
	case "kill", "pause":
		nd := nodes[n.rng.IntN(k)]
		name := f + " " + nd.ID
		if f == "kill" {
			if err := n.c.Kill(nd); err != nil {
				return history.Phase{}, nil, err
			}
			return history.Phase{Name: name, Fault: true}, func(context.Context) error { return n.c.Restart(nd) }, nil
		}
		if err := n.c.Pause(nd); err != nil {
			return history.Phase{}, nil, err
		}
		return history.Phase{Name: name, Fault: true}, func(context.Context) error { return n.c.Resume(nd) }, nil
	}
	blocks, sides := partitionShape(f, n.rng.Perm(k))
	if err := n.partition(ctx, nodes, blocks); err != nil {
		return history.Phase{}, nil, err
	}
	var sideNames [][]string
	for _, side := range sides {
		sideNames = append(sideNames, names(ids, side))
	}
	return history.Phase{Name: f, Fault: true, Sides: sideNames}, func(ctx context.Context) error { return n.healPartition(ctx, nodes) }, nil
}

// partitionShape computes partition f over the nodes in perm's order:
// blocks[i] lists the nodes node i may not talk to, and sides the groups
// whose members can talk (nil for majority-ring, which has no sides).
func partitionShape(f string, perm []int) (blocks [][]int, sides [][]int) {
	k := len(perm)
	blocks = make([][]int, k)
	split := func(a, b []int) {
		for _, x := range a {
			blocks[x] = append(blocks[x], b...)
		}
		for _, y := range b {
			blocks[y] = append(blocks[y], a...)
		}
	}
	switch f {
	case "partition-halves":
		split(perm[:k/2], perm[k/2:])
		sides = [][]int{perm[:k/2], perm[k/2:]}
	case "isolate-one":
		split(perm[:1], perm[1:])
		sides = [][]int{perm[:1], perm[1:]}
	case "bridge": // two halves, one node in both
		mid := k / 2
		a, b := perm[:mid], perm[mid+1:]
		split(a, b)
		sides = [][]int{append(slices.Clone(a), perm[mid]), append(slices.Clone(b), perm[mid])}
	case "majority-ring": // each node sees a majority, no two the same one
		reach := (k/2 + 1) / 2 // neighbours on each side
		for i := range k {
			for j := range k {
				if d := min((i-j+k)%k, (j-i+k)%k); d > reach {
					blocks[perm[i]] = append(blocks[perm[i]], perm[j])
				}
			}
		}
	}
	return blocks, sides
}

func names(ids []string, idx []int) []string {
	out := make([]string, len(idx))
	for i, x := range idx {
		out[i] = ids[x]
	}
	slices.Sort(out)
	return out
}

// partition applies blocks over nodes (blocks index into nodes).
func (n *Nemesis) partition(ctx context.Context, nodes []*Node, blocks [][]int) error {
	ids := make([]string, len(nodes))
	for i, nd := range nodes {
		ids[i] = nd.ID
	}
	if n.mode == "iptables" {
		for i, bs := range blocks {
			for _, j := range bs {
				if err := n.ipt.drop(nodes[i].IP, nodes[j].IP); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for i, bs := range blocks {
		if len(bs) == 0 {
			continue
		}
		block := names(ids, bs)
		if err := n.fault(ctx, func(via client.Option) error { _, err := n.c.api.Block(ctx, block, via); return err }, nodes[i].URL); err != nil {
			return err
		}
	}
	return nil
}

// healPartition heals a partition of nodes.
func (n *Nemesis) healPartition(ctx context.Context, nodes []*Node) error {
	if n.mode == "iptables" {
		return n.ipt.flush()
	}
	var errs []error
	for _, nd := range nodes {
		errs = append(errs, n.fault(ctx, func(via client.Option) error { _, err := n.c.api.Heal(ctx, nil, via); return err }, nd.URL))
	}
	return errors.Join(errs...)
}

// fault calls a node's /admin/fault (call, via the node at base),
// retrying briefly (a restarting or busy node may not answer at once).
func (n *Nemesis) fault(ctx context.Context, call func(via client.Option) error, base string) error {
	var last error
	for attempt := 0; attempt < 20; attempt++ {
		if last = call(client.Via(base)); last == nil {
			return nil
		}
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return ctx.Err()
		}
	}
	return last
}

// iptables manages a chain of dotkv's own, hooked into OUTPUT (loopback
// traffic passes OUTPUT once), so that cleanup removes exactly our rules.
type iptables struct{}

const chain = "DOTKV-BENCH"

func ipt(args ...string) error {
	out, err := exec.Command("iptables", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (iptables) setup() error {
	_ = ipt("-N", chain) // exists already after an interrupted run: fine, flushed below
	if err := ipt("-F", chain); err != nil {
		return err
	}
	if ipt("-C", "OUTPUT", "-j", chain) != nil {
		return ipt("-I", "OUTPUT", "-j", chain)
	}
	return nil
}

func (iptables) drop(from, to string) error {
	return ipt("-A", chain, "-s", from, "-d", to, "-j", "DROP")
}

func (iptables) flush() error { return ipt("-F", chain) }

func (iptables) cleanup() error {
	var errs []error
	for ipt("-C", "OUTPUT", "-j", chain) == nil {
		if err := ipt("-D", "OUTPUT", "-j", chain); err != nil {
			errs = append(errs, err)
			break
		}
	}
	errs = append(errs, ipt("-F", chain), ipt("-X", chain))
	return errors.Join(errs...)
}
