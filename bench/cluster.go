package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dotkv/dotkv/client"
	"github.com/dotkv/dotkv/internal/child"
)

// Node is one dotkv server of a bench cluster.
type Node struct {
	ID     string
	IP     string   // its own loopback address (Linux), for partitions
	URL    string   // http://ip:port
	Gossip string   // its gossip address, a seed for nodes that join later
	base   []string // binary and flags, without --join/--new-cluster/--replace
	first  []string // flags of its first start only (--new-cluster, --replace OLD)
	tail   *tailWriter

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed once the process has exited and been waited for
	exitErr  error         // what Wait returned, once done is closed
	started  bool          // started at least once
	expected bool          // an exit of the running process is expected (killed, left, stopped)
	paused   bool
}

// Cluster is the set of nodes a bench run drives: spawned processes of
// the dotkv binary, or a running cluster given by URL (then process
// faults and membership changes are unavailable).
//
// Its members change under the membership nemesis: Nodes, URLs and the
// workload's targets follow them. It is safe for concurrent use.
type Cluster struct {
	spawned bool
	binary  string
	args    []string // extra server flags of every node
	dir     string
	keep    bool
	logs    io.Writer
	client  *http.Client   // the harness's own requests
	api     *client.Client // over client: status, health, faults, membership changes (with Via)
	sec     *security      // nil: plain HTTP, no token, plain gossip

	mu      sync.Mutex
	members []*Node // current members, in start order
	all     []*Node // every node this run started or attached
	stopped bool
}

// SpawnOptions configure Spawn.
type SpawnOptions struct {
	// Binary is the dotkv executable (default: this process's own).
	Binary string
	// Dir holds the nodes' data; empty means a new temp dir, removed by
	// Stop unless Keep.
	Dir  string
	Keep bool
	// Args are extra server flags for every node (--fsync, --aae-interval…).
	Args []string
	// Logs receives the servers' stderr (default: discarded).
	Logs io.Writer
	// Secure runs every node with TLS (client API and internode RPC, a
	// throwaway CA), bearer tokens (the run's clients hold an admin
	// token) and gossip encryption.
	Secure bool
}

// Spawn starts n `dotkv server` processes that form one cluster, each on
// its own loopback address 127.0.0.(31+i) on Linux, with fault injection
// on, and waits until every node's ring holds every node. The first node
// forms the cluster (--new-cluster); each other one joins through the
// nodes before it once they serve. (Started together, fresh nodes can
// find each other before they find the cluster, and then wait forever.)
func Spawn(ctx context.Context, n int, o SpawnOptions) (*Cluster, error) {
	if o.Binary == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the dotkv binary: %w", err)
		}
		o.Binary = self
	}
	if o.Logs == nil {
		o.Logs = io.Discard
	}
	c := &Cluster{spawned: true, binary: o.Binary, args: o.Args, keep: o.Keep, logs: o.Logs}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "dotkv-bench-")
		if err != nil {
			return nil, err
		}
		c.dir = dir
	} else {
		c.dir, c.keep = o.Dir, true
	}
	if o.Secure {
		sec, err := newSecurity(c.dir)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.sec, c.args = sec, append(slices.Clone(c.args), sec.args...)
	}
	if err := c.newAPI(); err != nil {
		c.Stop()
		return nil, err
	}
	deadline := time.Now().Add(time.Duration(n) * 60 * time.Second)
	for i := range n {
		nd, err := c.NewNode()
		if err != nil {
			c.Stop()
			return nil, err
		}
		if i == 0 {
			nd.first = []string{"--new-cluster"}
		}
		if err := c.start(nd); err != nil {
			c.Stop()
			return nil, err
		}
		if err := c.waitServing(ctx, nd, time.Until(deadline)); err != nil {
			c.Stop()
			return nil, err
		}
		c.Admit(nd)
	}
	if err := c.WaitFormed(ctx, time.Until(deadline)); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// NewNode prepares the next node of a spawned cluster: ID n<k> for the
// k-th node the run starts, its own loopback address 127.0.0.(30+k) on
// Linux, free ports and a data directory of its own. It is not started.
func (c *Cluster) NewNode() (*Node, error) {
	if !c.spawned {
		return nil, errors.New("new node: the cluster was not spawned by this run")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil, errors.New("new node: the cluster is stopped")
	}
	k := len(c.all) + 1
	ip := "127.0.0.1"
	if runtime.GOOS == "linux" {
		if 30+k > 254 {
			return nil, fmt.Errorf("new node: out of loopback addresses (node %d would need 127.0.0.%d)", k, 30+k)
		}
		ip = "127.0.0." + strconv.Itoa(30+k)
	}
	var addrs [3]string
	for j := range addrs {
		a, err := freePort(ip)
		if err != nil {
			return nil, err
		}
		addrs[j] = a
	}
	id := "n" + strconv.Itoa(k)
	nd := &Node{ID: id, IP: ip, URL: c.sec.urlScheme() + "://" + addrs[0], Gossip: addrs[1], tail: &tailWriter{max: 4 << 10}}
	nd.base = append([]string{c.binary, "server", "--id", id, "--data", filepath.Join(c.dir, id),
		"--http", addrs[0], "--gossip", addrs[1], "--rpc", addrs[2], "--fault-injection", "--log-level", "warn"}, c.args...)
	c.all = append(c.all, nd) // reserves the ID and the address; Stop sees it
	return nd, nil
}

// StartJoin starts a node made by NewNode that joins the cluster through
// the current members, replacing the dead member replace if it is not
// empty. It does not make it a member: Admit does, once it is one.
func (c *Cluster) StartJoin(nd *Node, replace string) error {
	if replace != "" {
		nd.mu.Lock()
		nd.first = []string{"--replace", replace}
		nd.mu.Unlock()
	}
	return c.start(nd)
}

// Admit makes nd a current member: the workload sends to it, and final
// reads and convergence include it.
func (c *Cluster) Admit(nd *Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.members, nd) {
		c.members = append(c.members, nd)
	}
}

// Retire takes nd out of the current members (it is leaving, or about to
// be killed and removed or replaced): the workload stops sending to it.
// Its process, if any, is still stopped by Stop.
func (c *Cluster) Retire(nd *Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members = slices.DeleteFunc(c.members, func(x *Node) bool { return x == nd })
}

// Attach uses a running cluster: targets are node base URLs; node IDs
// come from each node's /cluster/status.
func Attach(ctx context.Context, targets []string) (*Cluster, error) {
	c := &Cluster{logs: io.Discard}
	if err := c.newAPI(); err != nil {
		return nil, err
	}
	for _, t := range targets {
		t = strings.TrimRight(t, "/")
		if !strings.Contains(t, "://") {
			t = "http://" + t
		}
		st, err := c.api.Status(ctx, client.Via(t))
		if err != nil {
			return nil, fmt.Errorf("attach to %s: %w", t, err)
		}
		host := strings.TrimPrefix(t, "http://")
		ip, _, _ := net.SplitHostPort(host)
		nd := &Node{ID: st.Node, IP: ip, URL: t}
		c.all = append(c.all, nd)
		c.members = append(c.members, nd)
	}
	return c, nil
}

// newAPI makes the harness's clients: c.client, and c.api over it.
func (c *Cluster) newAPI() error {
	c.client = c.NewHTTPClient(16, 5*time.Second)
	api, err := client.New(client.Config{HTTPClient: c.client})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	c.api = api
	return nil
}

// NewHTTPClient returns a client for the cluster's nodes with up to conns
// connections per node, each request bounded by timeout: with the run's
// TLS configuration and token when it is secured.
func (c *Cluster) NewHTTPClient(conns int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	return &http.Client{Timeout: timeout, Transport: c.sec.transport(tr)}
}

func freePort(ip string) (string, error) {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		return "", fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// seeds returns the gossip addresses of the current members other than
// nd, comma-separated.
func (c *Cluster) seeds(nd *Node) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.members {
		if m != nd && m.Gossip != "" {
			out = append(out, m.Gossip)
		}
	}
	return strings.Join(out, ",")
}

// start starts nd's process: on its first start with its first-start
// flags, and with --join naming the current members (a restarted node
// finds the cluster through whoever is a member now).
func (c *Cluster) start(nd *Node) error {
	args := slices.Clone(nd.base)
	if seeds := c.seeds(nd); seeds != "" {
		args = append(args, "--join", seeds)
	}
	nd.mu.Lock()
	if !nd.started {
		args = append(args, nd.first...)
	}
	nd.mu.Unlock()
	cmd := exec.Command(args[0], args[1:]...)
	logs := io.MultiWriter(c.logs, nd.tail)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = child.Attr() // a Ctrl-C reaches bench, which stops the nodes itself; they stop if bench is killed

	c.mu.Lock() // against Stop: a process started here is one Stop waits for
	defer c.mu.Unlock()
	if c.stopped {
		return fmt.Errorf("start %s: the cluster is stopped", nd.ID)
	}
	if !slices.Contains(c.all, nd) {
		c.all = append(c.all, nd)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", nd.ID, err)
	}
	done := make(chan struct{})
	nd.mu.Lock()
	nd.cmd, nd.done, nd.started, nd.expected, nd.paused, nd.exitErr = cmd, done, true, false, false, nil
	nd.mu.Unlock()
	go func() {
		err := cmd.Wait()
		nd.mu.Lock()
		if nd.done == done {
			nd.exitErr = err
		}
		nd.mu.Unlock()
		close(done)
	}()
	return nil
}

// Exited reports whether nd's process has exited, and with what.
func (nd *Node) Exited() (bool, error) {
	nd.mu.Lock()
	done, err := nd.done, nd.exitErr
	nd.mu.Unlock()
	if done == nil {
		return false, nil
	}
	select {
	case <-done:
		return true, err
	default:
		return false, nil
	}
}

// Done returns a channel closed when nd's current process has exited (nil
// if it was never started).
func (nd *Node) Done() <-chan struct{} {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.done
}

// ExpectExit records that nd's process is about to exit on purpose (it was
// asked to leave), so that its exit is not taken for a crash.
func (nd *Node) ExpectExit() {
	nd.mu.Lock()
	nd.expected = true
	nd.mu.Unlock()
}

// LogTail returns the last lines the node's process wrote.
func (nd *Node) LogTail() string {
	if nd.tail == nil {
		return ""
	}
	return nd.tail.String()
}

// CheckRunning returns an error naming each current member whose process
// exited without being killed, stopped or asked to leave: a crash.
func (c *Cluster) CheckRunning() error {
	var errs []error
	for _, nd := range c.Nodes() {
		nd.mu.Lock()
		expected := nd.expected
		nd.mu.Unlock()
		if exited, err := nd.Exited(); exited && !expected {
			errs = append(errs, fmt.Errorf("node %s exited unexpectedly (%v); its last output:\n%s", nd.ID, exitText(err), nd.LogTail()))
		}
	}
	return errors.Join(errs...)
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Spawned reports whether the cluster's processes belong to this run.
func (c *Cluster) Spawned() bool { return c.spawned }

// Nodes returns the current members, in start order.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.members)
}

// URLs returns the current members' base URLs. The workload asks it
// before every operation, so that it sends to members only.
func (c *Cluster) URLs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.members))
	for i, nd := range c.members {
		out[i] = nd.URL
	}
	return out
}

// NodeIDs maps base URLs to node IDs, for every node the run had: a
// node that has since left still names the side of a partition its
// operations were sent to. Every node has an address of its own, so no
// URL names two nodes.
func (c *Cluster) NodeIDs() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for _, nd := range c.all {
		out[nd.URL] = nd.ID
	}
	return out
}

// status returns the /cluster/status of the node at base.
func (c *Cluster) status(ctx context.Context, base string) (*client.ClusterStatus, error) {
	return c.api.Status(ctx, client.Via(base))
}

// healthy reports whether base answers /healthz with 200.
func (c *Cluster) healthy(ctx context.Context, base string) bool {
	h, err := c.api.Health(ctx, client.Via(base))
	return err == nil && h.Serving()
}

// waitServing waits until nd answers /healthz with 200, failing early if
// its process exits.
func (c *Cluster) waitServing(ctx context.Context, nd *Node, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !c.healthy(ctx, nd.URL) {
		if exited, err := nd.Exited(); exited {
			return fmt.Errorf("%s exited (%s) before it served; its last output:\n%s", nd.ID, exitText(err), nd.LogTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not serve (/healthz) after %v", nd.ID, timeout)
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

// WaitFormed waits until every current member serves (/healthz 200), and
// sees exactly the current members in its ring, each a member and alive.
func (c *Cluster) WaitFormed(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		nodes := c.Nodes()
		ids := make([]string, len(nodes))
		for i, nd := range nodes {
			ids[i] = nd.ID
		}
		slices.Sort(ids)
		why := ""
		for _, nd := range nodes {
			st, err := c.status(ctx, nd.URL)
			if err != nil {
				why = fmt.Sprintf("%s: %v", nd.ID, err)
				break
			}
			ring := slices.Sorted(slices.Values(st.Ring.Members))
			if !slices.Equal(ring, ids) {
				why = fmt.Sprintf("%s's ring holds %v, want %v", nd.ID, ring, ids)
				break
			}
			for _, id := range ids {
				if m, ok := st.Member(id); !ok || m.Liveness != "alive" || m.Status != "member" {
					why = fmt.Sprintf("%s sees %s %s and %s", nd.ID, id, m.Status, m.Liveness)
					break
				}
			}
			if why != "" {
				break
			}
			if !c.healthy(ctx, nd.URL) {
				why = nd.ID + " is not healthy yet"
				break
			}
		}
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster of %d did not form within %v: %s", len(nodes), timeout, why)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// Kill sends SIGKILL to nd and waits for it to exit.
func (c *Cluster) Kill(nd *Node) error {
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	nd.expected = true
	nd.mu.Unlock()
	if cmd == nil {
		return errors.New("kill: not a spawned node")
	}
	_ = cmd.Process.Kill()
	<-done
	return nil
}

// Restart starts a killed node again on its data.
func (c *Cluster) Restart(nd *Node) error { return c.start(nd) }

// Pause sends SIGSTOP to nd.
func (c *Cluster) Pause(nd *Node) error { return c.signal(nd, syscall.SIGSTOP, true) }

// Resume sends SIGCONT to a paused node.
func (c *Cluster) Resume(nd *Node) error { return c.signal(nd, syscall.SIGCONT, false) }

func (c *Cluster) signal(nd *Node, sig syscall.Signal, paused bool) error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return errors.New("signal: not a spawned node")
	}
	nd.paused = paused
	return nd.cmd.Process.Signal(sig)
}

// Stop ends every process the run started — members, nodes that left,
// were removed or replaced — (SIGCONT, SIGTERM, then SIGKILL after 15 s),
// waits for each, and removes the data unless kept. No node can be
// started after it. Safe to call more than once.
func (c *Cluster) Stop() {
	if !c.spawned {
		return
	}
	c.mu.Lock()
	c.stopped = true
	nodes := slices.Clone(c.all)
	c.mu.Unlock()
	for _, nd := range nodes {
		nd.mu.Lock()
		if nd.cmd != nil {
			nd.expected = true
			_ = nd.cmd.Process.Signal(syscall.SIGCONT)
			_ = nd.cmd.Process.Signal(syscall.SIGTERM)
		}
		nd.mu.Unlock()
	}
	timeout := time.After(15 * time.Second)
	for _, nd := range nodes {
		nd.mu.Lock()
		cmd, done := nd.cmd, nd.done
		nd.mu.Unlock()
		if cmd == nil {
			continue
		}
		select {
		case <-done:
		case <-timeout:
			_ = cmd.Process.Kill()
			<-done
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.keep && c.dir != "" {
		_ = os.RemoveAll(c.dir)
		c.dir = ""
	}
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
