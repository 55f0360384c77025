package bench

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
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Node is one dotkv server of a bench cluster.
type Node struct {
	ID   string
	IP   string // its own loopback address (Linux), for partitions
	URL  string // http://ip:port
	args []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	paused bool
}

// Cluster is the set of nodes a bench run drives: spawned processes of
// the dotkv binary, or a running cluster given by URL (then process
// faults are unavailable).
type Cluster struct {
	Nodes   []*Node
	spawned bool
	dir     string
	keep    bool
	logs    io.Writer
	client  *http.Client
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
}

// Spawn starts n `dotkv server` processes that form one cluster, each on
// its own loopback address 127.0.0.(31+i) on Linux, with fault injection
// on, and waits until every node's ring holds every node.
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
	c := &Cluster{spawned: true, keep: o.Keep, logs: o.Logs, client: &http.Client{Timeout: 5 * time.Second}}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "dotkv-bench-")
		if err != nil {
			return nil, err
		}
		c.dir = dir
	} else {
		c.dir, c.keep = o.Dir, true
	}
	var seed string
	for i := range n {
		ip := "127.0.0.1"
		if runtime.GOOS == "linux" {
			ip = "127.0.0." + strconv.Itoa(31+i)
		}
		httpAddr, err := freePort(ip)
		if err != nil {
			c.Stop()
			return nil, err
		}
		gossip, err := freePort(ip)
		if err != nil {
			c.Stop()
			return nil, err
		}
		rpc, err := freePort(ip)
		if err != nil {
			c.Stop()
			return nil, err
		}
		id := "n" + strconv.Itoa(i+1)
		nd := &Node{ID: id, IP: ip, URL: "http://" + httpAddr}
		nd.args = append([]string{"server", "--id", id, "--data", filepath.Join(c.dir, id),
			"--http", httpAddr, "--gossip", gossip, "--rpc", rpc, "--fault-injection", "--log-level", "warn"}, o.Args...)
		if seed != "" {
			nd.args = append(nd.args, "--join", seed)
		} else {
			nd.args, seed = append(nd.args, "--new-cluster"), gossip
		}
		nd.args = append([]string{o.Binary}, nd.args...)
		c.Nodes = append(c.Nodes, nd)
		if err := c.start(nd); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.WaitFormed(ctx, 60*time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Attach uses a running cluster: targets are node base URLs; node IDs
// come from each node's /cluster/status.
func Attach(ctx context.Context, targets []string) (*Cluster, error) {
	c := &Cluster{client: &http.Client{Timeout: 5 * time.Second}, logs: io.Discard}
	for _, t := range targets {
		t = strings.TrimRight(t, "/")
		if !strings.Contains(t, "://") {
			t = "http://" + t
		}
		var st struct {
			Node string `json:"node"`
		}
		if err := c.getJSON(ctx, t+"/cluster/status", &st); err != nil {
			return nil, fmt.Errorf("attach to %s: %w", t, err)
		}
		host := strings.TrimPrefix(t, "http://")
		ip, _, _ := net.SplitHostPort(host)
		c.Nodes = append(c.Nodes, &Node{ID: st.Node, IP: ip, URL: t})
	}
	return c, nil
}

func freePort(ip string) (string, error) {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		return "", fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (c *Cluster) start(nd *Node) error {
	cmd := exec.Command(nd.args[0], nd.args[1:]...)
	cmd.Stdout, cmd.Stderr = c.logs, c.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a Ctrl-C reaches bench, which stops the nodes itself
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", nd.ID, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	nd.mu.Lock()
	nd.cmd, nd.done, nd.paused = cmd, done, false
	nd.mu.Unlock()
	return nil
}

// Spawned reports whether the cluster's processes belong to this run.
func (c *Cluster) Spawned() bool { return c.spawned }

// URLs returns the nodes' base URLs.
func (c *Cluster) URLs() []string {
	out := make([]string, len(c.Nodes))
	for i, nd := range c.Nodes {
		out[i] = nd.URL
	}
	return out
}

// NodeIDs maps base URLs to node IDs.
func (c *Cluster) NodeIDs() map[string]string {
	out := map[string]string{}
	for _, nd := range c.Nodes {
		out[nd.URL] = nd.ID
	}
	return out
}

func (c *Cluster) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

type clusterStatus struct {
	Members []struct {
		ID       string `json:"id"`
		Liveness string `json:"liveness"`
	} `json:"members"`
	Ring struct {
		Members []string `json:"members"`
	} `json:"ring"`
	HintsPending map[string]int `json:"hints_pending"`
}

// WaitFormed waits until every node serves and sees every node alive.
func (c *Cluster) WaitFormed(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, nd := range c.Nodes {
			var st clusterStatus
			if err := c.getJSON(ctx, nd.URL+"/cluster/status", &st); err != nil || len(st.Ring.Members) != len(c.Nodes) {
				ok = false
				break
			}
			for _, m := range st.Members {
				if m.Liveness != "alive" {
					ok = false
				}
			}
			if resp, err := c.client.Get(nd.URL + "/healthz"); err != nil {
				ok = false
			} else {
				resp.Body.Close()
				ok = ok && resp.StatusCode == http.StatusOK
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster of %d did not form within %v", len(c.Nodes), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL to node i and waits for it to exit.
func (c *Cluster) Kill(i int) error {
	nd := c.Nodes[i]
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	nd.mu.Unlock()
	if cmd == nil {
		return errors.New("kill: not a spawned node")
	}
	_ = cmd.Process.Kill()
	<-done
	return nil
}

// Restart starts a killed node again on its data.
func (c *Cluster) Restart(i int) error { return c.start(c.Nodes[i]) }

// Pause sends SIGSTOP to node i; Resume sends SIGCONT.
func (c *Cluster) Pause(i int) error { return c.signal(i, syscall.SIGSTOP, true) }

// Resume continues a paused node.
func (c *Cluster) Resume(i int) error { return c.signal(i, syscall.SIGCONT, false) }

func (c *Cluster) signal(i int, sig syscall.Signal, paused bool) error {
	nd := c.Nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return errors.New("signal: not a spawned node")
	}
	nd.paused = paused
	return nd.cmd.Process.Signal(sig)
}

// Stop ends every spawned process (SIGCONT, SIGTERM, then SIGKILL after
// 15 s) and removes the data unless kept. Safe to call more than once.
func (c *Cluster) Stop() {
	if !c.spawned {
		return
	}
	for _, nd := range c.Nodes {
		nd.mu.Lock()
		if nd.cmd != nil {
			_ = nd.cmd.Process.Signal(syscall.SIGCONT)
			_ = nd.cmd.Process.Signal(syscall.SIGTERM)
		}
		nd.mu.Unlock()
	}
	timeout := time.After(15 * time.Second)
	for _, nd := range c.Nodes {
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
	if !c.keep && c.dir != "" {
		_ = os.RemoveAll(c.dir)
		c.dir = ""
	}
}
