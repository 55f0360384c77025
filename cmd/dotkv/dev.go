package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dotkv/dotkv/certs"
	"github.com/dotkv/dotkv/storage"
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run a local dotkv cluster on loopback, data under ./dotkv-data",
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
		Action: func(c *cli.Context) error {
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
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			nodes := devLayout(n, c.String("data"), c.Int("port"), c.Int("gossip-port"))
			o := devOptions{fsync: c.String("fsync"), faults: c.Bool("fault-injection"), sizes: sizes}
			if c.Bool("tls") {
				if o.tlsDir, err = devCertificates(c.String("data"), nodes); err != nil {
					return cli.Exit(err.Error(), exitError)
				}
			}
			return runDev(ctx, c.App.Writer, self, nodes, o)
		},
	}
}

// devNode is where one node of a dev cluster listens.
type devNode struct {
	id, data, http, gossip string
}

// devLayout gives node I its own loopback address 127.0.0.(10+I) on Linux
// (so the fault filter and iptables can tell nodes apart), or 127.0.0.1
// with distinct ports elsewhere.
func devLayout(n int, data string, httpPort, gossipPort int) []devNode {
	nodes := make([]devNode, n)
	for i := range nodes {
		id := "n" + strconv.Itoa(i+1)
		nodes[i] = devNode{id: id, data: filepath.Join(data, id)}
		ip, hp, gp := "127.0.0."+strconv.Itoa(11+i), httpPort, gossipPort
		if runtime.GOOS != "linux" {
			ip, hp, gp = "127.0.0.1", httpPort+1+i, gossipPort+2*i
		}
		nodes[i].http = net.JoinHostPort(ip, strconv.Itoa(hp))
		nodes[i].gossip = net.JoinHostPort(ip, strconv.Itoa(gp))
	}
	return nodes
}

// devProc is one running node process.
type devProc struct {
	id   string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// devOptions are the servers' flags a dev cluster chooses.
type devOptions struct {
	fsync  string
	faults bool
	sizes  []string // --cache-size and --memtable-size
	tlsDir string   // the certificates (devCertificates); "" without TLS
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
		return "", fmt.Errorf("dev --tls: %w", err)
	}
	return dir, nil
}

// scheme is the URL scheme of the nodes' client API.
func (o devOptions) scheme() string {
	if o.tlsDir != "" {
		return "https"
	}
	return "http"
}

func runDev(ctx context.Context, out io.Writer, bin string, nodes []devNode, o devOptions) error {
	var procs []*devProc
	exited := make(chan string, len(nodes))
	defer func() { stopAll(procs) }()
	for _, nd := range nodes {
		args := []string{"server", "--id", nd.id, "--data", nd.data, "--http", nd.http,
			"--gossip", nd.gossip, "--fsync", o.fsync, "--log-level", "warn"}
		if nd.id == nodes[0].id {
			args = append(args, "--new-cluster") // the others join it
		} else {
			args = append(args, "--join", nodes[0].gossip)
		}
		if o.faults {
			args = append(args, "--fault-injection")
		}
		if o.tlsDir != "" {
			f := certs.DevFiles(o.tlsDir, nd.id)
			args = append(args, "--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA)
		}
		args = append(args, o.sizes...)
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches dev, which stops the nodes
		if err := cmd.Start(); err != nil {
			return cli.Exit(fmt.Sprintf("start %s: %v", nd.id, err), exitError)
		}
		p := &devProc{id: nd.id, cmd: cmd, done: make(chan struct{})}
		procs = append(procs, p)
		go func() {
			_ = cmd.Wait()
			close(p.done)
			exited <- p.id
		}()
	}
	client := &http.Client{Timeout: time.Second}
	curl, cliFlags := "curl", ""
	if o.tlsDir != "" {
		ca := certs.DevFiles(o.tlsDir, nodes[0].id).CA
		conf, err := certs.ClientConfig(ca)
		if err != nil {
			return cli.Exit(err.Error(), exitError)
		}
		client.Transport = &http.Transport{TLSClientConfig: conf}
		curl, cliFlags = "curl --cacert "+ca, " --ca "+ca
	}
	defer client.CloseIdleConnections()
	if err := waitReady(ctx, client, o.scheme(), nodes, exited); err != nil {
		return cli.Exit(err.Error(), exitError)
	}
	fmt.Fprintf(out, "dotkv dev: %d node(s)\n\n  %-4s  %-24s  %-18s  %s\n", len(nodes), "NODE", "HTTP", "GOSSIP", "DATA")
	for _, nd := range nodes {
		fmt.Fprintf(out, "  %-4s  %-24s  %-18s  %s\n", nd.id, o.scheme()+"://"+nd.http, nd.gossip, nd.data)
	}
	fmt.Fprintf(out, "\nTry:  %s -i -X PUT --data-binary hello %s://%s/kv/greeting\n", curl, o.scheme(), nodes[0].http)
	fmt.Fprintf(out, "      %s -i %s://%s/kv/greeting\n", curl, o.scheme(), nodes[len(nodes)-1].http)
	fmt.Fprintf(out, "      go run ./cmd/dotkv status --addr %s://%s%s\n", o.scheme(), nodes[0].http, cliFlags)
	fmt.Fprintln(out, "Stop with Ctrl-C (data stays in "+filepath.Dir(nodes[0].data)+").")
	for running := len(procs); ; {
		select {
		case <-ctx.Done():
			stopAll(procs)
			procs = nil
			fmt.Fprintln(out, "dotkv dev: stopped cleanly")
			return nil
		case id := <-exited:
			i := slices.IndexFunc(procs, func(p *devProc) bool { return p.id == id })
			if !procs[i].cmd.ProcessState.Success() {
				return cli.Exit(fmt.Sprintf("node %s exited unexpectedly (%v); stopping the others", id, procs[i].cmd.ProcessState), exitError)
			}
			// A node exits 0 once it has left the cluster (dotkv leave).
			if running--; running == 0 {
				fmt.Fprintf(out, "dotkv dev: node %s exited cleanly; no node is left\n", id)
				return nil
			}
			fmt.Fprintf(out, "dotkv dev: node %s exited cleanly (it left the cluster, or was stopped); the others keep running\n", id)
		}
	}
}

// waitReady polls every node until it serves (/healthz) and its ring
// holds every node of the dev cluster, so the first request a user sends
// meets the whole cluster.
func waitReady(ctx context.Context, client *http.Client, scheme string, nodes []devNode, exited <-chan string) error {
	deadline := time.Now().Add(30 * time.Second)
	ready := func(nd devNode) bool {
		resp, err := client.Get(scheme + "://" + nd.http + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
		var st struct {
			Ring struct {
				Members []string `json:"members"`
			} `json:"ring"`
		}
		resp, err = client.Get(scheme + "://" + nd.http + "/cluster/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&st) == nil && len(st.Ring.Members) == len(nodes)
	}
	for _, nd := range nodes {
		for !ready(nd) {
			select {
			case id := <-exited:
				return fmt.Errorf("node %s exited during start-up (is %s or %s in use?)", id, nd.http, nd.gossip)
			case <-ctx.Done():
				return errors.New("interrupted during start-up")
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("node %s did not join a %d-node ring on %s within 30 s", nd.id, len(nodes), nd.http)
			}
		}
	}
	return nil
}

// stopAll sends SIGTERM to every node still running and waits for all of
// them, killing those that take longer than 15 s.
func stopAll(procs []*devProc) {
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	timeout := time.After(15 * time.Second)
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
