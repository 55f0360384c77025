package kvtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dotkv/dotkv/api"
	"github.com/dotkv/dotkv/client"
	"github.com/dotkv/dotkv/gossip"
)

// Helpers for tests of hinted handoff, sloppy quorums and read repair.
// Those named Try… report failures as errors instead of failing the test,
// so they may be called from goroutines other than the test's.

// Index returns the index of the node with ID id, or -1.
func (c *Cluster) Index(id string) int {
	for i, nd := range c.Nodes {
		if nd.ID == id {
			return i
		}
	}
	return -1
}

// TryDo sends a request to node i and reads the whole answer.
func (c *Cluster) TryDo(i int, method, path string, hdr http.Header, body []byte) (Response, error) {
	req, err := http.NewRequest(method, c.Nodes[i].URL()+path, bytes.NewReader(body))
	if err != nil {
		return Response{}, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s on %s: %w", method, path, c.Nodes[i].ID, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s on %s: read body: %w", method, path, c.Nodes[i].ID, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// TryPut is Put for any goroutine.
func (c *Cluster) TryPut(i int, key, value, vctx, q string) (Response, error) {
	hdr := http.Header{"Content-Type": {"text/plain"}}
	if vctx != "" {
		hdr.Set(api.HeaderContext, vctx)
	}
	return c.TryDo(i, http.MethodPut, kvPath(key, q), hdr, []byte(value))
}

// TryReplica returns node i's /debug/replica answer for key, undecoded
// (the body is what byte-for-byte comparisons compare).
func (c *Cluster) TryReplica(i int, key string) (Response, error) {
	return c.TryDo(i, http.MethodGet, "/debug/replica/"+url.PathEscape(key), nil, nil)
}

// SameReplica reports whether nodes i and j hold the same state of key:
// both /debug/replica answers have the same status and, if 200, the same
// body byte for byte. The detail describes the difference.
func (c *Cluster) SameReplica(i, j int, key string) (same bool, detail string, err error) {
	a, err := c.TryReplica(i, key)
	if err != nil {
		return false, "", err
	}
	b, err := c.TryReplica(j, key)
	if err != nil {
		return false, "", err
	}
	if a.Status != b.Status || (a.Status == http.StatusOK && !bytes.Equal(a.Body, b.Body)) {
		return false, fmt.Sprintf("%s: %d %s; %s: %d %s", c.Nodes[i].ID, a.Status, bytes.TrimSpace(a.Body),
			c.Nodes[j].ID, b.Status, bytes.TrimSpace(b.Body)), nil
	}
	return true, "", nil
}

// Status is a decoded /cluster/status.
type Status = client.ClusterStatus

// TryStatus returns node i's /cluster/status.
func (c *Cluster) TryStatus(i int) (Status, error) {
	r, err := c.TryDo(i, http.MethodGet, "/cluster/status", nil, nil)
	if err != nil {
		return Status{}, err
	}
	var st Status
	if r.Status != http.StatusOK {
		return st, fmt.Errorf("/cluster/status on %s: %d %s", c.Nodes[i].ID, r.Status, r.Body)
	}
	if err := json.Unmarshal(r.Body, &st); err != nil {
		return st, fmt.Errorf("/cluster/status on %s: %w: %s", c.Nodes[i].ID, err, r.Body)
	}
	return st, nil
}

// HintsPending returns node i's hints_pending from /cluster/status.
func (c *Cluster) HintsPending(i int) map[string]int {
	c.t.Helper()
	st, err := c.TryStatus(i)
	if err != nil {
		c.t.Fatal(err)
	}
	return st.HintsPending
}

// HintsFor returns, for every running node holding hints for target, how
// many it holds (from /cluster/status).
func (c *Cluster) HintsFor(target string) map[string]int {
	c.t.Helper()
	out := map[string]int{}
	for i, nd := range c.Nodes {
		if nd.Running() == nil {
			continue
		}
		if n := c.HintsPending(i)[target]; n > 0 {
			out[nd.ID] = n
		}
	}
	return out
}

// NoHintsPending reports whether no running node holds any hint, and
// otherwise which node holds how many for whom.
func (c *Cluster) NoHintsPending() (bool, string) {
	c.t.Helper()
	var pending []string
	for i, nd := range c.Nodes {
		if nd.Running() == nil {
			continue
		}
		if h := c.HintsPending(i); len(h) > 0 {
			pending = append(pending, fmt.Sprintf("%s:%v", nd.ID, h))
		}
	}
	return len(pending) == 0, strings.Join(pending, " ")
}

// WaitHintsDrained waits until no running node holds any hint.
func (c *Cluster) WaitHintsDrained(timeout time.Duration) {
	c.t.Helper()
	var last string
	deadline := time.Now().Add(timeout)
	for {
		ok, pending := c.NoHintsPending()
		if ok {
			return
		}
		last = pending
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for hints to drain; pending: %s", timeout, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitDead waits until every observer sees every target dead.
func (c *Cluster) WaitDead(observers, targets []int, timeout time.Duration) {
	c.t.Helper()
	for _, o := range observers {
		for _, t := range targets {
			c.WaitLiveness(o, t, gossip.Dead, timeout)
		}
	}
}

// Preflist is a decoded /cluster/preflist/{key}.
type Preflist = client.Preflist

// Preflist returns key's preference list as node i sees it.
func (c *Cluster) Preflist(i int, key string) Preflist {
	c.t.Helper()
	r := c.Do(i, http.MethodGet, "/cluster/preflist/"+url.PathEscape(key), nil, nil)
	var p Preflist
	if r.Status != http.StatusOK {
		c.t.Fatalf("preflist of %q on %s: %d %s", key, c.Nodes[i].ID, r.Status, r.Body)
	}
	if err := json.Unmarshal(r.Body, &p); err != nil {
		c.t.Fatalf("preflist of %q on %s: %v: %s", key, c.Nodes[i].ID, err, r.Body)
	}
	return p
}

// Metric returns the sum of every sample of the metric name (any labels)
// in node i's /metrics, 0 if there is none.
func (c *Cluster) Metric(i int, name string) float64 {
	c.t.Helper()
	r := c.Do(i, http.MethodGet, "/metrics", nil, nil)
	if r.Status != http.StatusOK {
		c.t.Fatalf("/metrics on %s: %d", c.Nodes[i].ID, r.Status)
	}
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if j := strings.LastIndexByte(rest, ' '); j >= 0 {
			v, err := strconv.ParseFloat(rest[j+1:], 64)
			if err != nil {
				c.t.Fatalf("/metrics on %s: %q: %v", c.Nodes[i].ID, line, err)
			}
			sum += v
		}
	}
	return sum
}

// CloseIdleConnections closes the test client's idle connections. Call it
// before stopping a node that served concurrent requests: the client's
// transport may have dialled connections it never sent a request on, and
// http.Server.Shutdown waits up to 5 s for such never-used ("new")
// connections before it treats them as idle.
func (c *Cluster) CloseIdleConnections() { c.client.CloseIdleConnections() }
