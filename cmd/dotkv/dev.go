package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dotkv/dotkv/certs"
	"github.com/dotkv/dotkv/internal/child"
	"github.com/dotkv/dotkv/storage"
)

// Files a running dev keeps in its data directory.
const (
	devLockFile    = "dev.lock" // flock'ed by the running dev for its whole life
	devStateFile   = "dev.json" // devState: the dev and its nodes
	devControlFile = "dev.sock" // unix socket of restart requests
)

// Time limits of a dev cluster.
const (
	devReadyTimeout   = 60 * time.Second // a node to serve and see the whole ring
	devStopTimeout    = 15 * time.Second // SIGTERM to SIGKILL
	devRequestTimeout = 2 * time.Minute  // `dotkv dev restart` waiting for its answer
	devTailLines      = 8                // lines of a node's output kept for its exit report
)

const devDescription = `dev starts --nodes "dotkv server" processes on loopback (127.0.0.11, .12, ...
on Linux), waits until they form one ring and prints their addresses and pids.

A node that exits (a crash, kill -9, a leave) is reported with how it exited
and the last lines of its output; the other nodes keep running. Bring it back
with "dotkv dev restart NODE" from another terminal (dev prints the exact
command, and the node's own command line to run it by hand). SIGINT, SIGTERM
and SIGHUP (closing the terminal) stop every node, then dev; SIGINT and SIGHUP
are left alone if dev starts with them ignored (nohup, "&" in a script).

While it runs, dev holds DATA/dev.lock (a second dev on the same data refuses
to start, as does one whose addresses are taken), describes itself in
DATA/dev.json (its pid, its control socket, and each node's pid, status and
exact command line) and listens for restart requests on DATA/dev.sock.`

func devCommand() *cli.Command {
	return &cli.Command{
		Name:        "dev",
		Usage:       "run a local dotkv cluster on loopback, data under ./dotkv-data",
		Description: devDescription,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes", Usage: "number of nodes", Value: 3},
			&cli.StringFlag{Name: "data", Usage: "data directory (node I uses DIR/nI)", Value: "dotkv-data"},
			&cli.StringFlag{Name: "fsync", Usage: "always or never", Value: "always"},
			&cli.StringFlag{Name: "cache-size", Usage: "pebble block cache of each node, e.g. 256MiB; by default an eighth of memory (or of a lower cgroup limit) split between the nodes, within 64MiB..1GiB each"},
			&cli.StringFlag{Name: "memtable-size", Usage: "size of each pebble memtable of each node, e.g. 64MiB",
				DefaultText: storage.FormatSize(storage.DefaultMemTableSize)},
			&cli.BoolFlag{Name: "fault-injection", Usage: "enable /admin/fault on every node"},
			&cli.BoolFlag{Name: "tls", Usage: "serve HTTPS and mutual-TLS RPC with a throwaway CA and node certificates, made under DATA/tls on the first start (clients: --ca DATA/tls/ca.pem)"},
			&cli.IntFlag{Name: "port", Usage: "HTTP port of every node (Linux; elsewhere node I uses port+I)", Value: 8080},
			&cli.IntFlag{Name: "gossip-port", Usage: "gossip port (RPC uses it + 1; elsewhere node I uses port+2I)", Value: 7946},
		},
		Subcommands: []*cli.Command{devRestartCommand()},
		Action:      devAction,
	}
}

// devAction runs `dotkv dev`.
func devAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return cli.Exit(fmt.Sprintf("dev: unknown command %q (dev takes flags, or: dev restart NODE)", c.Args().First()), exitError)
	}
	n := c.Int("nodes")
	if n < 1 || n > 32 {
		return cli.Exit(fmt.Sprintf("--nodes %d: want 1..32", n), exitError)
	}
	if f := c.String("fsync"); f != "always" && f != "never" {
		return cli.Exit(fmt.Sprintf("--fsync %q: want always or never", f), exitError)
	}
	cache, memtable, err := sizeFlags(c)
	if err != nil {
		return cli.Exit(err.Error(), exitError)
	}
	if cache == 0 { // the nodes share this machine's memory
		cache = storage.DefaultCacheSize(n)
	}
	sizes := []string{"--cache-size", strconv.FormatInt(cache, 10)}
	if memtable != 0 {
		sizes = append(sizes, "--memtable-size", strconv.FormatInt(memtable, 10))
	}
	self, err := os.Executable()
	if err != nil {
		return cli.Exit("find own binary: "+err.Error(), exitError)
	}
	o := devOptions{
		nodes: n, data: c.String("data"), port: c.Int("port"), gossipPort: c.Int("gossip-port"),
		fsync: c.String("fsync"), faults: c.Bool("fault-injection"), tls: c.Bool("tls"), sizes: sizes,
	}
	if err := runDev(c.Context, c.App.Writer, c.App.ErrWriter, self, o); err != nil {
		return cli.Exit("dev: "+err.Error(), exitError)
	}
	return nil
}

// devNode is where one node of a dev cluster listens and how it is run.
type devNode struct {
	id     string
	data   string // its data directory, absolute
	shown  string // its data directory as the user named it (for the banner)
	http   string // client API HOST:PORT
	gossip string // gossip HOST:PORT (TCP and UDP)
	rpc    string // internode RPC HOST:PORT: the server's default, gossip port + 1
	argv   []string
}

// devLayout gives node I its own loopback address 127.0.0.(10+I) on Linux
// (so the fault filter and iptables can tell nodes apart), or 127.0.0.1
// with distinct ports elsewhere. data is the absolute data directory,
// shown the one the user named.
func devLayout(n int, data, shown string, httpPort, gossipPort int) []devNode {
	nodes := make([]devNode, n)
	for i := range nodes {
		id := "n" + strconv.Itoa(i+1)
		nodes[i] = devNode{id: id, data: filepath.Join(data, id), shown: filepath.Join(shown, id)}
		ip, hp, gp := "127.0.0."+strconv.Itoa(11+i), httpPort, gossipPort
		if runtime.GOOS != "linux" {
			ip, hp, gp = "127.0.0.1", httpPort+1+i, gossipPort+2*i
		}
		nodes[i].http = net.JoinHostPort(ip, strconv.Itoa(hp))
		nodes[i].gossip = net.JoinHostPort(ip, strconv.Itoa(gp))
		nodes[i].rpc = net.JoinHostPort(ip, strconv.Itoa(gp+1))
	}
	return nodes
}

// devOptions are the layout of a dev cluster and the servers' flags it
// chooses.
type devOptions struct {
	nodes      int
	data       string // as the user named it
	port       int    // --port
	gossipPort int    // --gossip-port
	fsync      string
	faults     bool
	tls        bool
	sizes      []string // --cache-size and --memtable-size
	tlsDir     string   // the certificates (devCertificates), set by runDev; "" without TLS
}

// scheme is the URL scheme of the nodes' client API.
func (o devOptions) scheme() string {
	if o.tls {
		return "https"
	}
	return "http"
}

// setArgv sets the command line of every node: bin server ..., the first
// node forming the cluster, the others joining it.
func (o devOptions) setArgv(bin string, nodes []devNode) {
	for i := range nodes {
		nd := &nodes[i]
		nd.argv = []string{bin, "server", "--id", nd.id, "--data", nd.data, "--http", nd.http,
			"--gossip", nd.gossip, "--fsync", o.fsync, "--log-level", "warn"}
		if i == 0 {
			nd.argv = append(nd.argv, "--new-cluster") // the others join it
		} else {
			nd.argv = append(nd.argv, "--join", nodes[0].gossip)
		}
		if o.faults {
			nd.argv = append(nd.argv, "--fault-injection")
		}
		if o.tlsDir != "" {
			f := certs.DevFiles(o.tlsDir, nd.id)
			nd.argv = append(nd.argv, "--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA)
		}
		nd.argv = append(nd.argv, o.sizes...)
	}
}

// devCertificates makes, on the first start with --tls, a throwaway CA and
// a certificate for each node under data/tls, and keeps them afterwards
// (clients keep trusting the same CA); a node that has none yet gets one
// from the CA there. It returns the directory.
func devCertificates(data string, nodes []devNode) (string, error) {
	dir := filepath.Join(data, "tls")
	var missing []certs.DevNode
	for _, nd := range nodes {
		host, _, _ := net.SplitHostPort(nd.http)
		if _, err := os.Stat(certs.DevFiles(dir, nd.id).Cert); err != nil {
			missing = append(missing, certs.DevNode{ID: nd.id, IPs: []net.IP{net.ParseIP(host)}})
		}
	}
	var err error
	switch _, statErr := os.Stat(filepath.Join(dir, certs.DevCAFile)); {
	case len(missing) == 0:
	case statErr != nil:
		err = certs.GenerateDev(dir, missing)
	default:
		err = certs.IssueDev(dir, missing...)
	}
	if err != nil {
		return "", fmt.Errorf("--tls: %w", err)
	}
	return dir, nil
}

// devSignals are the signals that stop a dev cluster: SIGTERM, and SIGINT
// and SIGHUP unless dev was started with them ignored (nohup, or a
// background job of a script), which it respects.
func devSignals() []os.Signal {
	sigs := []os.Signal{syscall.SIGTERM}
	for _, s := range []os.Signal{os.Interrupt, syscall.SIGHUP} {
		if !signal.Ignored(s) {
			sigs = append(sigs, s)
		}
	}
	return sigs
}

// runDev runs a dev cluster of the binary bin until a signal (devSignals)
// or parent ends it, then stops every node. It refuses at once, starting
// nothing, if another dev runs on its data directory or the nodes'
// addresses are taken. Reports go to out, the nodes' output to logs.
func runDev(parent context.Context, out, logs io.Writer, bin string, o devOptions) error {
	// Signals first: one during start-up stops what has started.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, devSignals()...)
	defer signal.Stop(sigs)
	// A write to a closed pipe (dotkv dev | tee, then the terminal closes)
	// must fail rather than kill dev before it stops its nodes.
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	defer signal.Stop(pipes)
	ctx, cancel := context.WithCancelCause(parent)
	var sigWG sync.WaitGroup
	defer sigWG.Wait()
	defer cancel(nil)
	sigWG.Go(func() {
		select {
		case s := <-sigs:
			cancel(devStopped{s})
		case <-ctx.Done():
		}
	})

	abs, err := filepath.Abs(o.data)
	if err != nil {
		return fmt.Errorf("data directory %s: %w", o.data, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}
	lock, err := lockDevData(abs)
	if err != nil {
		return err
	}
	defer lock.Close() // releases the flock, after the state file is gone
	nodes := devLayout(o.nodes, abs, o.data, o.port, o.gossipPort)
	o.setArgv(bin, nodes)
	c := &devCluster{
		bin: bin, data: abs, shown: o.data, nodes: nodes, opts: o,
		out: &lockedWriter{w: out}, logs: &lockedWriter{w: logs}, control: devControlPath(abs),
		exits: make(chan *devProc), stopped: make(chan struct{}), procs: make(map[string]*devProc),
	}
	// Describe this dev at once, so that a second one, refused by the
	// lock, can name it.
	if err := c.saveState(); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(abs, devStateFile))
	if err := checkFree(nodes, "stop that first, or choose other ports with --port and --gossip-port"); err != nil {
		return err
	}
	if err := c.setUpTLS(); err != nil {
		return err
	}
	defer c.client.CloseIdleConnections()
	defer c.stop(ctx) // after the control server has stopped (defers run last first)

	started := make([]*devProc, len(c.nodes))
	for i := range c.nodes {
		if started[i], err = c.start(&c.nodes[i]); err != nil {
			return err
		}
	}
	if err := c.waitReady(ctx, started, true); err != nil {
		return err
	}
	ln, err := listenControl(c.control)
	if err != nil {
		return err
	}
	var ctlWG sync.WaitGroup
	defer func() { // before the nodes are stopped
		ln.Close()
		cancel(nil) // ends restarts under way
		ctlWG.Wait()
	}()
	ctlWG.Go(func() { c.serveControl(ctx, ln, &ctlWG) })
	c.printBanner(started)
	for {
		select {
		case <-ctx.Done():
			var s devStopped
			if errors.As(context.Cause(ctx), &s) {
				fmt.Fprintf(c.out, "dotkv dev: %v: stopping the nodes\n", s.Signal)
			}
			return nil // the defers stop the control server and the nodes
		case p := <-c.exits:
			c.reportExit(p)
		}
	}
}

// setUpTLS makes the certificates of a dev --tls (devCertificates), puts
// them on the nodes' command lines, and sets up the client that probes
// the nodes, trusting the dev CA.
func (c *devCluster) setUpTLS() error {
	c.client = &http.Client{Timeout: time.Second}
	if !c.opts.tls {
		return nil
	}
	var err error
	if c.opts.tlsDir, err = devCertificates(c.data, c.nodes); err != nil {
		return err
	}
	c.opts.setArgv(c.bin, c.nodes)
	conf, err := certs.ClientConfig(c.caFile())
	if err != nil {
		return fmt.Errorf("--tls: %w", err)
	}
	c.client.Transport = &http.Transport{TLSClientConfig: conf}
	return nil
}

// caFile is the dev CA's certificate ("" without TLS).
func (c *devCluster) caFile() string {
	if c.opts.tlsDir == "" {
		return ""
	}
	return certs.DevFiles(c.opts.tlsDir, c.nodes[0].id).CA
}

// printBanner tells the user where the nodes are and what to try.
func (c *devCluster) printBanner(procs []*devProc) {
	scheme, first, last := c.opts.scheme(), c.nodes[0], c.nodes[len(c.nodes)-1]
	curl, cliFlags := "curl", ""
	if ca := c.caFile(); ca != "" {
		curl, cliFlags = "curl --cacert "+ca, " --ca "+ca
	}
	var b strings.Builder
	fmt.Fprintf(&b, "dotkv dev: %d node(s)\n\n  %-4s  %-24s  %-18s  %-16s  %s\n", len(c.nodes), "NODE", "HTTP", "GOSSIP", "DATA", "PID")
	for i, nd := range c.nodes {
		fmt.Fprintf(&b, "  %-4s  %-24s  %-18s  %-16s  %d\n", nd.id, scheme+"://"+nd.http, nd.gossip, nd.shown, procs[i].cmd.Process.Pid)
	}
	fmt.Fprintf(&b, "\nTry:  %s -i -X PUT --data-binary hello %s://%s/kv/greeting\n", curl, scheme, first.http)
	fmt.Fprintf(&b, "      %s -i %s://%s/kv/greeting\n", curl, scheme, last.http)
	fmt.Fprintf(&b, "      go run ./cmd/dotkv status --addr %s://%s%s\n", scheme, first.http, cliFlags)
	fmt.Fprintf(&b, "Break it: kill -9 %d (%s); the others keep serving. Bring it back with\n", procs[len(procs)-1].cmd.Process.Pid, last.id)
	fmt.Fprintf(&b, "      %s\n", c.restartCommand(last.id))
	fmt.Fprintf(&b, "Stop with Ctrl-C (data stays in %s).\n", c.shown)
	io.WriteString(c.out, b.String())
}

// devStopped is the cause of a dev's end: the signal it got.
type devStopped struct{ os.Signal }

func (s devStopped) Error() string { return "got " + s.Signal.String() }

// devCluster is a running dev cluster: its nodes, their processes and the
// files that describe it.
type devCluster struct {
	bin     string
	data    string // absolute
	shown   string // as the user named it
	control string // unix socket of restart requests
	nodes   []devNode
	opts    devOptions
	out     *lockedWriter // reports
	logs    *lockedWriter // the nodes' output
	client  *http.Client  // readiness probes

	exits    chan *devProc  // a node's process has exited (received by runDev's loop)
	stopped  chan struct{}  // closed once every node has stopped: exit watchers send no more
	watchers sync.WaitGroup // one per process, until it has exited and been reported

	restartMu sync.Mutex // one restart at a time

	mu      sync.Mutex
	procs   map[string]*devProc // the latest process of each node
	closing bool                // stopping: start no process
}

// devProc is one process of a node.
type devProc struct {
	node   *devNode
	cmd    *exec.Cmd
	output *nodeOutput
	done   chan struct{} // closed when the process has exited
	exit   string        // how it exited (ProcessState); valid after done

	// planned (under devCluster.mu): dev stops it itself (a restart or the
	// end of dev), so its exit is not reported as a death.
	planned bool
}

// exited reports whether the process has exited.
func (p *devProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// node returns the node called id, or nil.
func (c *devCluster) node(id string) *devNode {
	for i := range c.nodes {
		if c.nodes[i].id == id {
			return &c.nodes[i]
		}
	}
	return nil
}

// start starts a process of node nd and a goroutine that waits for it.
func (c *devCluster) start(nd *devNode) (*devProc, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil, errors.New("dev is stopping")
	}
	p := &devProc{node: nd, output: &nodeOutput{w: c.logs}, done: make(chan struct{})}
	p.cmd = exec.Command(nd.argv[0], nd.argv[1:]...)
	// The node's configuration is its command line alone: dev's own
	// DOTKV_* variables (DOTKV_JOIN, DOTKV_CONFIG...) would reach its servers.
	p.cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "DOTKV_") })
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	p.cmd.WaitDelay = time.Second    // the output pipe, should the server leave a child holding it
	p.cmd.SysProcAttr = child.Attr() // Ctrl-C reaches dev, which stops the nodes; they stop if dev is killed
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", nd.id, err)
	}
	c.procs[nd.id] = p
	c.watchers.Go(func() {
		err := p.cmd.Wait()
		p.output.flush()
		p.exit = describeExit(p.cmd.ProcessState, err)
		close(p.done)
		select {
		case c.exits <- p:
		case <-c.stopped:
		}
	})
	c.saveStateLocked()
	return p, nil
}

// describeExit says how a process ended: "exit status 2", "signal: killed".
func describeExit(st *os.ProcessState, err error) string {
	if st == nil {
		return err.Error()
	}
	return st.String()
}

// waitReady polls each node of procs until it serves (/healthz) and its
// ring holds every node of the dev cluster, and, if settled, until no
// change of that ring is under way either (devCluster.ready), so that the
// first request a user sends meets the whole cluster. It fails if one of
// them exits meanwhile, naming it, how it exited and its last lines.
func (c *devCluster) waitReady(ctx context.Context, procs []*devProc, settled bool) error {
	exited := func() error {
		for _, q := range procs {
			if q.exited() {
				return fmt.Errorf("node %s (%s, gossip %s) exited during start-up: %s%s",
					q.node.id, q.node.http, q.node.gossip, q.exit, indent(q.output.last()))
			}
		}
		return nil
	}
	deadline := time.Now().Add(devReadyTimeout)
	for _, p := range procs {
		for {
			why := c.ready(ctx, p.node, settled)
			if why == "" {
				break
			}
			if err := exited(); err != nil {
				return err
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("node %s (%s) not ready within %v: %s", p.node.id, p.node.http, devReadyTimeout, why)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("interrupted while %s was starting", p.node.id)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	// What answered must have been these processes, not the nodes of
	// another cluster on the same addresses while these failed to bind.
	return exited()
}

// ready returns "" once nd serves (/healthz) and its ring holds every
// node and, if settled, once no ring change is under way as nd sees it
// (every member applied the ring's version, none is joining or leaving,
// no partition transfer is pending: a write then needs no acks beyond its
// level); otherwise what it waits for.
func (c *devCluster) ready(ctx context.Context, nd *devNode, settled bool) string {
	get := func(path string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.opts.scheme()+"://"+nd.http+path, nil)
		if err != nil {
			return nil, err
		}
		return c.client.Do(req)
	}
	resp, err := get("/healthz")
	if err != nil {
		return "it does not answer: " + err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "/healthz answers " + resp.Status
	}
	var st struct {
		Members []struct {
			ID          string `json:"id"`
			Status      string `json:"status"`
			RingVersion uint64 `json:"ring_version"`
		} `json:"members"`
		Ring struct {
			Members []string `json:"members"`
			Version uint64   `json:"version"`
		} `json:"ring"`
		Transfers []struct {
			State string `json:"state"`
		} `json:"transfers"`
	}
	resp, err = get("/cluster/status")
	if err != nil {
		return "/cluster/status: " + err.Error()
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return "/cluster/status: " + err.Error()
	}
	if len(st.Ring.Members) != len(c.nodes) {
		return fmt.Sprintf("its ring has %d of the %d nodes", len(st.Ring.Members), len(c.nodes))
	}
	if !settled {
		return ""
	}
	for _, m := range st.Members {
		if m.Status != "member" || m.RingVersion != st.Ring.Version {
			return fmt.Sprintf("the ring is changing (%s is %s, at ring version %d of %d)", m.ID, m.Status, m.RingVersion, st.Ring.Version)
		}
	}
	for _, t := range st.Transfers {
		if t.State != "done" {
			return "partition transfers are under way"
		}
	}
	return ""
}

// reportExit tells the user that a node's process has exited, unless dev
// stopped it itself, and how to bring it back.
func (c *devCluster) reportExit(p *devProc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.saveStateLocked()
	if p.planned {
		return
	}
	var running []string
	for _, nd := range c.nodes {
		if q := c.procs[nd.id]; q != nil && !q.exited() {
			running = append(running, nd.id)
		}
	}
	others := "no node is running now"
	switch len(running) {
	case 0:
	case 1:
		others = running[0] + " keeps running"
	default:
		others = strings.Join(running[:len(running)-1], ", ") + " and " + running[len(running)-1] + " keep running"
	}
	how := "died: " + p.exit
	if p.cmd.ProcessState != nil && p.cmd.ProcessState.Success() {
		how = "exited cleanly (it left the cluster, or was stopped)"
	}
	fmt.Fprintf(c.out, "dotkv dev: %s (pid %d) %s; %s.\n", p.node.id, p.cmd.Process.Pid, how, others)
	// A killed node wrote nothing about its death; one that exited may
	// well have said why.
	if !killedBySignal(p.cmd.ProcessState) {
		if lines := p.output.last(); len(lines) > 0 {
			fmt.Fprintf(c.out, "  its last lines:%s\n", indent(lines))
		}
	}
	fmt.Fprintf(c.out, "  restart it:  %s\n", c.restartCommand(p.node.id))
	fmt.Fprintf(c.out, "  or by hand:  %s\n", shellJoin(p.node.argv))
	fmt.Fprintf(c.out, "               (dev then neither watches nor stops it)\n")
}

// allRunning reports whether every node runs.
func (c *devCluster) allRunning() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nd := range c.nodes {
		if p := c.procs[nd.id]; p == nil || p.exited() {
			return false
		}
	}
	return true
}

// killedBySignal reports whether a process was ended by a signal.
func killedBySignal(st *os.ProcessState) bool {
	if st == nil {
		return false
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// restartCommand is the command that asks this dev to restart node id.
func (c *devCluster) restartCommand(id string) string {
	return shellJoin([]string{c.bin, "dev", "restart", "--data", c.data, id})
}

// restart stops node id if it runs and starts it again, waiting until it
// serves. It returns what happened, for the user.
func (c *devCluster) restart(ctx context.Context, id string) (string, error) {
	nd := c.node(id)
	if nd == nil {
		ids := make([]string, len(c.nodes))
		for i := range c.nodes {
			ids[i] = c.nodes[i].id
		}
		return "", fmt.Errorf("no node %q in this dev cluster (it runs %s)", id, strings.Join(ids, ", "))
	}
	c.restartMu.Lock()
	defer c.restartMu.Unlock()
	c.mu.Lock()
	old := c.procs[id]
	running := old != nil && !old.exited() && !c.closing
	if running {
		old.planned = true
	}
	c.mu.Unlock()
	if running {
		fmt.Fprintf(c.out, "dotkv dev: stopping %s (pid %d) to restart it\n", id, old.cmd.Process.Pid)
		stopProcs([]*devProc{old})
	}
	if err := checkFree([]devNode{*nd}, "stop that first"); err != nil {
		return "", err
	}
	p, err := c.start(nd)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(c.out, "dotkv dev: restarting %s (pid %d)\n", id, p.cmd.Process.Pid)
	// Settled, too, unless another node is down: a transfer to it would
	// wait for it.
	if err := c.waitReady(ctx, []*devProc{p}, c.allRunning()); err != nil {
		return "", err
	}
	c.mu.Lock()
	c.saveStateLocked()
	c.mu.Unlock()
	msg := fmt.Sprintf("%s restarted (pid %d); it serves %s://%s", id, p.cmd.Process.Pid, c.opts.scheme(), nd.http)
	fmt.Fprintf(c.out, "dotkv dev: %s\n", msg)
	return msg, nil
}

// stop stops every node (SIGTERM, then SIGKILL after devStopTimeout) and
// waits for them and their watchers.
func (c *devCluster) stop(ctx context.Context) {
	c.mu.Lock()
	c.closing = true
	var procs []*devProc
	for _, p := range c.procs {
		p.planned = true
		procs = append(procs, p)
	}
	c.mu.Unlock()
	stopProcs(procs)
	close(c.stopped)
	c.watchers.Wait()
	var s devStopped
	if errors.As(context.Cause(ctx), &s) {
		fmt.Fprintln(c.out, "dotkv dev: stopped cleanly")
	}
}

// stopProcs sends SIGTERM to every process still running and waits for
// all of them, killing those that take longer than devStopTimeout.
func stopProcs(procs []*devProc) {
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	timeout := time.After(devStopTimeout)
	for _, p := range procs {
		select {
		case <-p.done:
		case <-timeout:
			for _, q := range procs {
				_ = q.cmd.Process.Kill()
			}
			<-p.done
		}
	}
}

// devState is DATA/dev.json, what a running dev tells other processes
// (dotkv dev restart, a second dotkv dev, scripts) about itself.
type devState struct {
	PID     int            `json:"pid"`     // of the dev process
	Data    string         `json:"data"`    // the data directory, absolute
	Control string         `json:"control"` // unix socket taking restart requests
	Nodes   []devNodeState `json:"nodes"`
}

// devNodeState is one node in DATA/dev.json.
type devNodeState struct {
	ID     string   `json:"id"`
	HTTP   string   `json:"http"` // URL of its client API
	Gossip string   `json:"gossip"`
	PID    int      `json:"pid,omitempty"` // of its latest process, if any
	Status string   `json:"status"`        // not started, running, or how it exited
	Argv   []string `json:"argv"`          // its exact command line
}

// saveState writes DATA/dev.json.
func (c *devCluster) saveState() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.saveStateLocked()
}

// saveStateLocked writes DATA/dev.json (in full, by a rename, so readers
// never see half of it); c.mu is held.
func (c *devCluster) saveStateLocked() error {
	st := devState{PID: os.Getpid(), Data: c.data, Control: c.control}
	for _, nd := range c.nodes {
		ns := devNodeState{ID: nd.id, HTTP: c.opts.scheme() + "://" + nd.http, Gossip: nd.gossip, Status: "not started", Argv: nd.argv}
		if p := c.procs[nd.id]; p != nil {
			ns.PID, ns.Status = p.cmd.Process.Pid, "running"
			if p.exited() {
				ns.Status = p.exit
			}
		}
		st.Nodes = append(st.Nodes, ns)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", devStateFile, err)
	}
	path := filepath.Join(c.data, devStateFile)
	if err := os.WriteFile(path+".tmp", append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return err
	}
	return nil
}

// readDevState reads DATA/dev.json.
func readDevState(data string) (devState, error) {
	var st devState
	b, err := os.ReadFile(filepath.Join(data, devStateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(data, devStateFile), err)
	}
	return st, nil
}

// lockDevData takes DATA/dev.lock for this dev's life, or says which dev
// holds it.
func lockDevData(data string) (*os.File, error) {
	path := filepath.Join(data, devLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return f, nil
	}
	f.Close()
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The holder writes dev.json right after taking the lock; give it a
	// moment should we have come in between.
	var st devState
	for range 20 {
		if st, err = readDevState(data); err == nil && processAlive(st.PID) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || !processAlive(st.PID) {
		return nil, fmt.Errorf("another dotkv dev runs on %s (it holds %s); stop it first, or give this one another --data", data, path)
	}
	var addrs []string
	for _, nd := range st.Nodes {
		addrs = append(addrs, nd.ID+" "+nd.HTTP)
	}
	return nil, fmt.Errorf("another dotkv dev (pid %d) runs on %s, with %s; stop it first (Ctrl-C in its terminal, or kill %d), or give this one another --data",
		st.PID, data, strings.Join(addrs, ", "), st.PID)
}

// processAlive reports whether a process pid exists.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// checkFree makes sure nothing listens on the nodes' addresses (HTTP and
// RPC over TCP, gossip over TCP and UDP), naming the process that does
// when it can; advice ends the message saying one does.
func checkFree(nodes []devNode, advice string) error {
	for _, nd := range nodes {
		for _, a := range []struct{ what, network, addr string }{
			{"HTTP", "tcp", nd.http}, {"gossip", "tcp", nd.gossip}, {"gossip", "udp", nd.gossip}, {"RPC", "tcp", nd.rpc},
		} {
			var l io.Closer
			var err error
			if a.network == "udp" {
				l, err = net.ListenPacket(a.network, a.addr)
			} else {
				l, err = net.Listen(a.network, a.addr)
			}
			if err == nil {
				l.Close()
				continue
			}
			msg := fmt.Sprintf("%s's %s address %s (%s) cannot be used: %v", nd.id, a.what, a.addr, a.network, err)
			if errors.Is(err, syscall.EADDRINUSE) {
				msg = fmt.Sprintf("%s's %s address %s (%s) is in use", nd.id, a.what, a.addr, a.network)
				if h := addrHolder(nd); h != "" {
					msg += " by " + h
				}
				msg += "; " + advice
			}
			return errors.New(msg)
		}
	}
	return nil
}

// addrHolder describes the process, other than this one, whose command
// line gives one of nd's addresses as a listen address ("pid 7 (dotkv
// server --id n1 --data d/n1), a node of dotkv dev pid 5"), or "" if it
// finds none. It reads /proc, so finds nothing where there is none.
func addrHolder(nd devNode) string {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		argv := procArgv(pid)
		found, ours := false, false
		for i := 0; i+1 < len(argv); i++ {
			switch argv[i] {
			case "--http", "--gossip", "--rpc":
				found = found || argv[i+1] == nd.http || argv[i+1] == nd.gossip || argv[i+1] == nd.rpc
			case "--data":
				ours = argv[i+1] == nd.data
			}
		}
		if !found {
			continue
		}
		words := append([]string{filepath.Base(argv[0])}, argv[1:min(len(argv), 6)]...)
		desc := fmt.Sprintf("pid %d (%s)", pid, strings.Join(words, " "))
		if pargv := procArgv(procParent(pid)); len(pargv) > 1 && pargv[1] == "dev" {
			desc += fmt.Sprintf(", a node of dotkv dev pid %d", procParent(pid))
		} else if ours {
			desc += fmt.Sprintf(", left behind by a dotkv dev that was killed or by a restart by hand (kill %d)", pid)
		}
		return desc
	}
	return ""
}

// procArgv is the command line of process pid, from /proc (nil if gone).
func procArgv(pid int) []string {
	if pid <= 0 {
		return nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// procParent is the parent pid of process pid, from /proc (0 if unknown).
func procParent(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// devControlPath is the control socket of a dev on data: DATA/dev.sock,
// or, where that path is too long for a unix socket (104 bytes on some
// systems), one in the temporary directory named after data.
func devControlPath(data string) string {
	p := filepath.Join(data, devControlFile)
	if len(p) < 100 {
		return p
	}
	h := fnv.New64a()
	h.Write([]byte(data))
	return filepath.Join(os.TempDir(), fmt.Sprintf("dotkv-dev-%x.sock", h.Sum64()))
}

// listenControl listens on the control socket path, replacing one a dev
// that was killed left behind (this dev holds the lock: no other uses it).
func listenControl(path string) (net.Listener, error) {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// devRequest is a request on the control socket, one JSON line.
type devRequest struct {
	Restart string `json:"restart"` // the node to restart
}

// devResponse answers a devRequest, one JSON line.
type devResponse struct {
	OK      bool   `json:"ok"`
	Message string `json:"message"`
}

// serveControl answers requests on ln, each connection in a goroutine of
// wg, until ln is closed.
func (c *devCluster) serveControl(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				fmt.Fprintf(c.out, "dotkv dev: control socket: %v; restart requests are no longer taken\n", err)
			}
			return
		}
		wg.Go(func() {
			defer conn.Close()
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			var req devRequest
			resp := devResponse{OK: true}
			if err := json.NewDecoder(conn).Decode(&req); err != nil {
				resp = devResponse{Message: "bad request: " + err.Error()}
			} else if resp.Message, err = c.restart(ctx, req.Restart); err != nil {
				resp = devResponse{Message: fmt.Sprintf("restart %s: %v", req.Restart, err)}
			}
			_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_ = json.NewEncoder(conn).Encode(resp)
		})
	}
}

// devRestartCommand is `dotkv dev restart NODE`: it asks the dev running
// on --data, through its control socket, to restart a node.
func devRestartCommand() *cli.Command {
	return &cli.Command{
		Name:      "restart",
		Usage:     "restart a node of the running dotkv dev (say, one you killed)",
		ArgsUsage: "NODE",
		Description: `restart asks the dotkv dev running on --data (found through DATA/dev.json;
--data may come before or after NODE) to restart NODE: to start it again if it has exited, or to stop and start it
if it runs. It waits until the node serves and exits 0, or prints why not
and exits 2.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "data directory of the running dev", Value: "dotkv-data"},
		},
		Action: func(c *cli.Context) error {
			data := c.String("data")
			if l := c.Lineage(); !c.IsSet("data") && len(l) > 1 && l[1].IsSet("data") {
				data = l[1].String("data") // dotkv dev --data DIR restart NODE
			}
			node, data, err := restartArgs(c.Args().Slice(), data)
			if err != nil {
				return cli.Exit("dev restart: "+err.Error(), exitError)
			}
			msg, err := requestRestart(data, node)
			if err != nil {
				return cli.Exit("dev restart: "+err.Error(), exitError)
			}
			fmt.Fprintln(c.App.Writer, msg)
			return nil
		},
	}
}

// restartArgs returns the node that args (what follows `dotkv dev restart`
// and its flags) name, and the data directory: data, unless --data
// follows the node (as other commands take flags after their arguments).
func restartArgs(args []string, data string) (node, dir string, err error) {
	dir = data
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case (a == "--data" || a == "-data") && i+1 < len(args):
			i++
			dir = args[i]
		case strings.HasPrefix(a, "--data=") || strings.HasPrefix(a, "-data="):
			_, dir, _ = strings.Cut(a, "=")
		case node == "" && !strings.HasPrefix(a, "-"):
			node = a
		default:
			return "", "", fmt.Errorf("unexpected %q: want one node and --data DIR, e.g. dotkv dev restart n3", a)
		}
	}
	if node == "" {
		return "", "", errors.New("want one node, e.g. dotkv dev restart n3")
	}
	return node, dir, nil
}

// requestRestart asks the dev running on data to restart node id and
// returns its answer.
func requestRestart(data, id string) (string, error) {
	st, err := readDevState(data)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no dotkv dev runs on %s (it has no %s)", data, devStateFile)
	}
	if err != nil {
		return "", err
	}
	conn, err := net.DialTimeout("unix", st.Control, 5*time.Second)
	if err != nil {
		if !processAlive(st.PID) {
			return "", fmt.Errorf("no dotkv dev runs on %s (pid %d of %s is gone)", data, st.PID, devStateFile)
		}
		return "", fmt.Errorf("dotkv dev pid %d on %s takes no requests (still starting?): %w", st.PID, data, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(devRequestTimeout))
	if err := json.NewEncoder(conn).Encode(devRequest{Restart: id}); err != nil {
		return "", fmt.Errorf("ask dotkv dev pid %d: %w", st.PID, err)
	}
	var resp devResponse
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return "", fmt.Errorf("no answer from dotkv dev pid %d: %w", st.PID, err)
	}
	if !resp.OK {
		return "", errors.New(resp.Message)
	}
	return resp.Message, nil
}

// lockedWriter serializes writes to w (the nodes share dev's stderr) and
// ignores its errors: a node must never block on, or fail at, its output
// because dev's terminal has gone.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(p)
	return len(p), nil
}

// nodeOutput passes a node's output on to w in whole lines (so that the
// nodes' lines do not mix) and keeps its last devTailLines lines.
type nodeOutput struct {
	w       io.Writer
	mu      sync.Mutex
	partial []byte   // the start of a line
	tail    []string // the last complete lines
}

func (o *nodeOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.partial = append(o.partial, p...)
	if i := bytes.LastIndexByte(o.partial, '\n'); i >= 0 {
		_, _ = o.w.Write(o.partial[:i+1])
		o.keep(string(o.partial[:i]))
		o.partial = append(o.partial[:0], o.partial[i+1:]...)
	}
	if len(o.partial) > 64<<10 { // a line without end: pass it on anyway
		o.flushLocked()
	}
	return len(p), nil
}

// keep adds the lines of s to the tail.
func (o *nodeOutput) keep(s string) {
	o.tail = append(o.tail, strings.Split(s, "\n")...)
	if n := len(o.tail); n > devTailLines {
		o.tail = append(o.tail[:0], o.tail[n-devTailLines:]...)
	}
}

// flush passes on the last line if it has no end (the process has exited).
func (o *nodeOutput) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.flushLocked()
}

func (o *nodeOutput) flushLocked() {
	if len(o.partial) == 0 {
		return
	}
	_, _ = o.w.Write(append(o.partial, '\n'))
	o.keep(string(o.partial))
	o.partial = o.partial[:0]
}

// last returns the last lines of the output.
func (o *nodeOutput) last() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.tail...)
}

// indent formats lines one per line, indented, after a newline (or as ""
// for none).
func indent(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("\n    " + l)
	}
	return b.String()
}

// shellJoin quotes args for a POSIX shell where they need it.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = a
		if a == "" || strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,", r))
		}) >= 0 {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
