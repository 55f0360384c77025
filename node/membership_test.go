package node_test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/gossip"
	"github.com/dotkv/dotkv/internal/kvtest"
	"github.com/dotkv/dotkv/node"
	"github.com/dotkv/dotkv/ring"
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

// target is a running node as the test's goroutines reach it: by URL.
// They must not use c.Nodes, which the test changes under them, nor the
// Cluster's helpers, which fail the test. nd is only for diagnostics.
type target struct {
	id, url string
	nd      *kvtest.Node
}

// targets are the running nodes the writer and the reader go through.
type targets struct {
	mu   sync.Mutex
	list []target
}

// set makes the running nodes of c the targets. Only the test's
// goroutine calls it.
func (ts *targets) set(c *kvtest.Cluster) {
	var list []target
	for _, i := range running(c) {
		list = append(list, target{c.Nodes[i].ID, c.Nodes[i].URL(), c.Nodes[i]})
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.list = list
}

func (ts *targets) get() []target {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.list
}

// readKey reads key through the node at base with query q, as JSON, and
// returns the status and the non-deleted sibling values, sorted. A
// request that got no whole answer (a node stopping, a timeout) returns
// status 0 and the error; a 200 whose body does not decode returns 200
// and the error.
func readKey(client *http.Client, base, key, q string) (int, []string, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/kv/"+url.PathEscape(key)+"?"+q, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, nil
	}
	var rd struct {
		Siblings []kvtest.Sibling `json:"siblings"`
	}
	if err := json.Unmarshal(body, &rd); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("decode %s: %w", body, err)
	}
	var vals []string
	for _, s := range rd.Siblings {
		if !s.Deleted {
			vals = append(vals, string(s.Value))
		}
	}
	slices.Sort(vals)
	return resp.StatusCode, vals, nil
}

// replicaStatus returns the status of the node at base's /debug/replica
// answer for key: 200 if it holds a record of it, 404 if not.
func replicaStatus(client *http.Client, base, key string) (int, error) {
	resp, err := client.Get(base + "/debug/replica/" + url.PathEscape(key))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// explain describes, for a failed read of key through tg, how tg routes
// the key (its view of the key's partition) and which of the nodes hold a
// record of it (/debug/replica).
func explain(client *http.Client, tg target, nodes []target, key string) string {
	var b strings.Builder
	if n := tg.nd.Running(); n != nil {
		m := n.Membership()
		v := m.View()
		p := v.PartitionOf([]byte(key))
		fmt.Fprintf(&b, "%s (ready %v) view epoch %d, change %q: partition %d readers %v primaries %v receiving %v fallbacks %v; liveness:",
			tg.id, m.Ready(), v.Epoch(), v.Change(), p, v.Readers(p), v.Primaries(p), v.Receiving(p), v.Fallbacks(p))
		for _, id := range v.Members() {
			fmt.Fprintf(&b, " %s %s", id, m.Liveness(id))
		}
	} else {
		fmt.Fprintf(&b, "%s is stopped", tg.id)
	}
	b.WriteString("; records:")
	for _, o := range nodes {
		st, err := replicaStatus(client, o.url, key)
		fmt.Fprintf(&b, " %s %d", o.id, st)
		if err != nil {
			fmt.Fprintf(&b, " (%v)", err)
		}
	}
	return b.String()
}

// changeTimeout bounds each wait for a membership change, or for the
// cleaner: they take seconds for the test's keys on idle cores, and
// minutes under the race detector or on a loaded machine (2 cores at a
// load of 20: one join took more than 2 minutes, still progressing).
const changeTimeout = 5 * time.Minute

// waitChange waits, up to changeTimeout, until cond holds; if it does not,
// the test fails with what every running node knows of the change in
// progress.
func waitChange(t *testing.T, c *kvtest.Cluster, what string, cond func() bool) {
	t.Helper()
	timeout := changeTimeout
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; the running nodes:\n%s", timeout, what, describeChange(c))
		}
		time.Sleep(10 * time.Millisecond) // poll interval of a condition wait
	}
}

// waitStatus is c.WaitStatus (every running node sees node id with status
// st, and no change in progress) with waitChange's timeout and report.
func waitStatus(t *testing.T, c *kvtest.Cluster, id string, st gossip.Status) {
	t.Helper()
	waitChange(t, c, fmt.Sprintf("every node to see %s %s", id, st), func() bool {
		for _, nd := range c.Nodes {
			n := nd.Running()
			if n == nil {
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

// describeChange reports, for every running node, its view of the
// membership change in progress and its partition transfers.
func describeChange(c *kvtest.Cluster) string {
	var b strings.Builder
	for _, nd := range c.Nodes {
		n := nd.Running()
		if n == nil {
			continue
		}
		m := n.Membership()
		v := m.View()
		moving := 0
		for p := range uint32(v.Partitions()) {
			if v.Moving(p) {
				moving++
			}
		}
		fmt.Fprintf(&b, "%s: ready %v, epoch %d, change %q, %d partitions moving; members:", nd.ID, m.Ready(), v.Epoch(), v.Change(), moving)
		for _, mb := range m.Members() {
			fmt.Fprintf(&b, " %s %s/%s", mb.ID, mb.Status, mb.Liveness)
		}
		states := map[string]int{}
		var open []string
		for _, tr := range n.Transfers() {
			states[tr.State]++
			if tr.State != "done" && len(open) < 5 {
				open = append(open, fmt.Sprintf("%d %s→%s %s (%d keys)", tr.Partition, tr.From, tr.To, tr.State, tr.Keys))
			}
		}
		fmt.Fprintf(&b, "; transfers %v, e.g. %v\n", states, open)
	}
	return b.String()
}

// checkPlacement waits, up to timeout, until every key of keys has a
// record (/debug/replica) on exactly its owners: each owner holds one,
// and every other running node holds none (the cleaner removes the
// records of partitions a node no longer owns). The owners are the
// primaries of the key's partition in the view that every running node
// agrees on; each key has min(N, members) of them, all running. It is
// called with no membership change in progress.
func checkPlacement(t *testing.T, c *kvtest.Cluster, client *http.Client, when string, keys []string, timeout time.Duration) {
	t.Helper()
	nodes := running(c)
	var view *ring.View
	c.WaitFor("every running node to have the same owners for every partition "+when, time.Minute, func() bool {
		view = c.Nodes[nodes[0]].Running().Membership().View()
		for _, i := range nodes[1:] {
			other := c.Nodes[i].Running().Membership().View()
			for p := range uint32(view.Partitions()) {
				if !slices.Equal(view.Primaries(p), other.Primaries(p)) {
					return false
				}
			}
		}
		return true
	})
	if view.Changing() {
		t.Fatalf("%s: checking placement while %q is in progress", when, view.Change())
	}
	copies := min(view.N(), len(view.Members()))
	ids := make([]string, len(nodes))
	urls := make([]string, len(nodes))
	for j, i := range nodes {
		ids[j], urls[j] = c.Nodes[i].ID, c.Nodes[i].URL()
	}
	type check struct {
		key   string
		node  int // index into ids and urls
		owner bool
	}
	var pending []check
	for p := range uint32(view.Partitions()) {
		owners := view.Primaries(p)
		if len(owners) != copies {
			t.Fatalf("%s: partition %d has owners %v, want %d of them", when, p, owners, copies)
		}
		for _, o := range owners {
			if !slices.Contains(ids, o) {
				t.Fatalf("%s: partition %d has owner %s, which is not running (running: %v)", when, p, o, ids)
			}
		}
	}
	for _, k := range keys {
		owners := view.Primaries(view.PartitionOf([]byte(k)))
		for j, id := range ids {
			pending = append(pending, check{k, j, slices.Contains(owners, id)})
		}
	}
	all, total := pending, len(pending)
	deadline := time.Now().Add(timeout)
	// Checks that fail are checked again until they hold; then every
	// check is made once more, at once, and must hold.
	confirming := false
	for {
		wrong := make([]string, len(pending)) // "" once the check holds
		_ = parallel(len(pending), 8, func(i int) error {
			ch := pending[i]
			st, err := replicaStatus(client, urls[ch.node], ch.key)
			switch {
			case err != nil:
				wrong[i] = fmt.Sprintf("%s: /debug/replica/%s: %v", ids[ch.node], ch.key, err)
			case ch.owner && st != http.StatusOK:
				wrong[i] = fmt.Sprintf("owner %s holds no record of %q (%d)", ids[ch.node], ch.key, st)
			case !ch.owner && st != http.StatusNotFound:
				wrong[i] = fmt.Sprintf("%s, not an owner, holds a record of %q (%d)", ids[ch.node], ch.key, st)
			}
			return nil
		})
		var still []check
		var details []string
		for i, w := range wrong {
			if w != "" {
				still = append(still, pending[i])
				details = append(details, w)
			}
		}
		switch {
		case len(still) == 0 && (confirming || len(pending) == total):
			t.Logf("%s: %d keys have %d copies, on exactly their owners (%d checks of %d nodes)", when, len(keys), copies, total, len(ids))
			return
		case len(still) == 0:
			confirming, pending = true, all
			continue
		case confirming:
			t.Fatalf("%s: %d of %d record checks that held failed again; first:\n%s", when, len(still), total,
				strings.Join(details[:min(len(details), 20)], "\n"))
		case time.Now().After(deadline):
			t.Fatalf("%s: after %v, %d of %d record checks still fail; first:\n%s", when, timeout, len(still), total,
				strings.Join(details[:min(len(details), 20)], "\n"))
		}
		pending = still
		time.Sleep(100 * time.Millisecond) // poll interval of a condition wait
	}
}

// TestMembershipChangesUnderLoad: 3 nodes holding 10,000 keys written at
// w=all, a writer and a reader running throughout; a fourth node joins,
// one original leaves, one is killed and removed, one is stopped and
// replaced. Through every step no read of a key acknowledged before the
// step started, at r=one through any running node, answers 404 or
// without its acknowledged value. After the join every key has N copies
// on exactly its owners, and the node that no longer owns it none; at
// the end every acknowledged write is there at r=all and on every
// remaining member (each is an owner of every key).
func TestMembershipChangesUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("membership changes take a while")
	}
	c := kvtest.NewCluster(t, 3, kvtest.Options{TransferLimit: 8})
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	client := &http.Client{Timeout: 30 * time.Second, Transport: tr}
	var ts targets
	ts.set(c)

	// 10,000 keys, as the issue asks. Under the race detector, which
	// makes every request several times slower, 500: `go test -race
	// ./...` (CI) must finish the node package within a few minutes on 2
	// cores; the full size runs without -race.
	nkeys := 10000
	if kvtest.RaceEnabled() {
		nkeys = 500
	}
	base := make(map[string]string, nkeys)
	{
		began := time.Now()
		nodes := ts.get()
		var mu sync.Mutex
		var failed []string
		var retries atomic.Int64
		_ = parallel(nkeys, 8, func(i int) error {
			k, v := fmt.Sprintf("k%05d", i), fmt.Sprintf("v%d", i)
			// A generous timeout, and retries of a 503 (its outcome is
			// unknown; a retry adds at most a sibling of the same value):
			// the base keys are the test's setup, on busy cores.
			var fail string
			for deadline := time.Now().Add(2 * time.Minute); ; retries.Add(1) {
				req, err := http.NewRequest(http.MethodPut, nodes[i%len(nodes)].url+"/kv/"+k+"?w=all&timeout=10000", strings.NewReader(v))
				if err != nil {
					panic(err)
				}
				req.Header.Set("Content-Type", "text/plain")
				resp, err := client.Do(req)
				if err != nil {
					fail = fmt.Sprintf("put %s: %v", k, err)
					break
				}
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusOK {
					fail = ""
					break
				}
				fail = fmt.Sprintf("put %s: %d %s", k, resp.StatusCode, body)
				if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if fail != "" {
				failed = append(failed, fail)
			} else {
				base[k] = v
			}
			return nil
		})
		if len(failed) > 0 {
			t.Fatalf("%d of %d puts at w=all failed; first: %s", len(failed), nkeys, failed[0])
		}
		t.Logf("%d keys written at w=all in %.1fs (%d puts retried after a 503)", nkeys, time.Since(began).Seconds(), retries.Load())
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
		tr.CloseIdleConnections()
	}()

	// A writer through every running node, throughout: fresh keys at
	// quorum; what it acknowledged must survive every step.
	live := &acked{m: map[string]string{}}
	var writes atomic.Int64
	wg.Go(func() {
		for n := 0; n < 100000; n++ {
			select {
			case <-stop:
				return
			default:
			}
			nodes := ts.get()
			k := fmt.Sprintf("w%05d", n)
			req, err := http.NewRequest(http.MethodPut, nodes[n%len(nodes)].url+"/kv/"+k+"?w=quorum&timeout=2000", strings.NewReader("x"))
			if err != nil {
				panic(err)
			}
			if resp, err := client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusOK {
					live.set(k, "x")
					writes.Add(1)
				}
			}
			time.Sleep(2 * time.Millisecond) // pace, not a wait on anything
		}
	})

	// A reader through every running node in turn, throughout: at r=one,
	// every key acknowledged before the current step started (the base
	// keys and the writer's), over and over. Only a 404, or a 200 without
	// the acknowledged value, is a violation: a node being stopped may
	// refuse or time out (503, or no answer).
	type step struct {
		name       string
		keys, vals []string
		passes     atomic.Int64 // full passes over keys
		reads      atomic.Int64
		failed     atomic.Int64 // no whole answer
		mu         sync.Mutex
		other      map[int]int // answers neither 200 nor 404, by status
	}
	var steps []*step
	var cur atomic.Pointer[step]
	var violations struct {
		sync.Mutex
		n     int
		first []string
	}
	start := time.Now()
	begin := func(name string) *step {
		want := live.snapshot()
		for k, v := range base {
			want[k] = v
		}
		st := &step{name: name, keys: slices.Sorted(maps.Keys(want)), other: map[int]int{}}
		for _, k := range st.keys {
			st.vals = append(st.vals, want[k])
		}
		steps = append(steps, st)
		cur.Store(st)
		t.Logf("%.1fs: step %q: %d acknowledged keys", time.Since(start).Seconds(), name, len(st.keys))
		return st
	}
	// Join: afterwards every key has N=3 copies among 4 members, and the
	// original owner that lost it to n4 holds none once the cleaner ran.
	st := begin("n4 joins")
	const maxReads = 5_000_000
	readDeadline := time.Now().Add(20 * time.Minute)
	wg.Go(func() {
		var last *step
		i := 0
		for n := 0; n < maxReads && time.Now().Before(readDeadline); n++ {
			select {
			case <-stop:
				return
			default:
			}
			st := cur.Load()
			if st != last {
				last, i = st, 0
			}
			nodes := ts.get()
			// The pass shifts the node a key is read through.
			tg := nodes[(n+int(st.passes.Load()))%len(nodes)]
			k, v := st.keys[i], st.vals[i]
			status, vals, err := readKey(client, tg.url, k, "r=one&timeout=2000")
			st.reads.Add(1)
			switch {
			case status == 0:
				st.failed.Add(1)
			case status == http.StatusNotFound || (status == http.StatusOK && (err != nil || !slices.Contains(vals, v))):
				violations.Lock()
				violations.n++
				detail := len(violations.first) < 20
				violations.Unlock()
				if !detail {
					break
				}
				now := time.Now()
				msg := fmt.Sprintf("%s (%.3fs): step %q: read of %q (acknowledged %q) at r=one through %s answered %d %q",
					now.Format("15:04:05.000000"), now.Sub(start).Seconds(), st.name, k, v, tg.id, status, vals)
				if err != nil {
					msg += ": " + err.Error()
				}
				msg += "\n\t" + explain(client, tg, nodes, k)
				t.Log(msg)
				violations.Lock()
				violations.first = append(violations.first, msg)
				violations.Unlock()
			case status != http.StatusOK:
				st.mu.Lock()
				st.other[status]++
				st.mu.Unlock()
			}
			if i++; i == len(st.keys) {
				i = 0
				st.passes.Add(1)
			}
		}
	})
	checkViolations := func() {
		t.Helper()
		violations.Lock()
		defer violations.Unlock()
		if violations.n > 0 {
			t.Fatalf("%d reads of acknowledged keys answered 404 or without the acknowledged value; first:\n%s", violations.n, strings.Join(violations.first, "\n"))
		}
	}
	// finish ends a step once the reader has read every key of it once.
	finish := func(st *step) {
		t.Helper()
		c.WaitFor(fmt.Sprintf("the reader to read every key of step %q once", st.name), 5*time.Minute, func() bool {
			violations.Lock()
			defer violations.Unlock()
			return st.passes.Load() > 0 || violations.n > 0
		})
		checkViolations()
		t.Logf("%.1fs: step %q done", time.Since(start).Seconds(), st.name)
	}

	n4 := c.AddNode("")
	ts.set(c)
	waitStatus(t, c, c.Nodes[n4].ID, gossip.StatusMember)
	finish(st)
	{
		want := live.snapshot()
		for k := range base {
			want[k] = ""
		}
		checkPlacement(t, c, client, "after n4 joined", slices.Sorted(maps.Keys(want)), changeTimeout)
	}

	// Leave: n1 hands everything over and reports left.
	st = begin("n1 leaves")
	if r := c.Do(0, http.MethodPost, "/cluster/leave", nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("leave: %d %s", r.Status, r.Body)
	}
	waitChange(t, c, "n1 to have left", func() bool {
		select {
		case <-c.Nodes[0].Running().Left():
			return true
		default:
			return false
		}
	})
	waitStatus(t, c, "n1", gossip.StatusLeft)
	tr.CloseIdleConnections()
	c.Stop(0)
	ts.set(c)
	finish(st)

	// Remove: n2 is killed, then removed; its copies are re-created.
	st = begin("n2 is killed and removed")
	tr.CloseIdleConnections()
	c.Stop(1)
	ts.set(c)
	c.WaitLiveness(2, 1, gossip.Dead, time.Minute)
	if r := c.Do(2, http.MethodPost, "/cluster/remove/n2", nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("remove n2: %d %s", r.Status, r.Body)
	}
	waitStatus(t, c, "n2", gossip.StatusRemoved)
	finish(st)

	// Replace: n3 is stopped and a new node takes over its partitions.
	st = begin("n3 is stopped and replaced")
	tr.CloseIdleConnections()
	c.Stop(2)
	ts.set(c)
	c.WaitLiveness(n4, 2, gossip.Dead, time.Minute)
	n5 := c.AddNode("n3")
	ts.set(c)
	waitStatus(t, c, c.Nodes[n5].ID, gossip.StatusMember)
	waitStatus(t, c, "n3", gossip.StatusRemoved)
	finish(st)

	close(stop)
	wg.Wait()
	checkViolations()
	for _, st := range steps {
		st.mu.Lock()
		t.Logf("step %q: %d acknowledged keys, %d reads at r=one (%d full passes); neither 200 nor 404: %v; %d unanswered",
			st.name, len(st.keys), st.reads.Load(), st.passes.Load(), st.other, st.failed.Load())
		st.mu.Unlock()
	}
	t.Logf("%d writes acknowledged during the changes", writes.Load())

	// Every acknowledged write is there at r=all, through every member.
	all := live.snapshot()
	for k, v := range base {
		all[k] = v
	}
	keys := slices.Sorted(maps.Keys(all))
	nodes := ts.get()
	lost := make([]string, len(keys))
	_ = parallel(len(keys), 8, func(i int) error {
		tg := nodes[i%len(nodes)]
		status, vals, err := readKey(client, tg.url, keys[i], "r=all&timeout=5000")
		if err != nil || status != http.StatusOK || !slices.Contains(vals, all[keys[i]]) {
			lost[i] = fmt.Sprintf("%q (acknowledged %q) through %s at r=all: %d %q %v", keys[i], all[keys[i]], tg.id, status, vals, err)
		}
		return nil
	})
	if lost = slices.DeleteFunc(lost, func(s string) bool { return s == "" }); len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged writes are not read back at r=all; first:\n%s", len(lost), len(keys), strings.Join(lost[:min(len(lost), 20)], "\n"))
	}
	// With two members and N=3, both own every key: each holds it.
	checkPlacement(t, c, client, "at the end", keys, changeTimeout)
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

// TestWipedFirstNodeRestartedWithItsFlags: n1, which formed the cluster
// (--new-cluster, no --join), loses its data directory and is restarted
// with the same flags. It forms a cluster alone until it hears from the
// others, then rejoins as its own replacement: every write acknowledged
// before, and while it was alone, reads at r=all afterwards, every key
// reads at r=one through every node, and it has a new incarnation.
func TestWipedFirstNodeRestartedWithItsFlags(t *testing.T) {
	c := kvtest.NewCluster(t, 3, kvtest.Options{TransferLimit: 8})
	want := map[string]string{}
	for i := range 100 {
		k, v := fmt.Sprintf("k%03d", i), fmt.Sprintf("v%d", i)
		if r := c.Put(i%3, k, v, "", "w=all"); r.Status != http.StatusNoContent && r.Status != http.StatusOK {
			t.Fatalf("put %s: %d %s", k, r.Status, r.Body)
		}
		want[k] = v
	}
	oldInc := c.Nodes[0].Running().Store().Incarnation()
	c.Stop(0)
	c.RestartWith(0, func(cfg *node.Config) {
		if !cfg.NewCluster || len(cfg.Join) != 0 {
			t.Fatalf("n1's flags: new cluster %v, join %v; want --new-cluster and no --join", cfg.NewCluster, cfg.Join)
		}
		cfg.FS = vfs.NewMem()
	})
	// Writes through n1 at once: acknowledged while it is alone or after
	// it rejoined, they must survive either way.
	for i := range 20 {
		k := fmt.Sprintf("alone%02d", i)
		if r := c.Put(0, k, "a", "", "w=one"); r.Status == http.StatusNoContent || r.Status == http.StatusOK {
			want[k] = "a"
		}
	}
	c.WaitFor("n1 to have rejoined everywhere", 2*time.Minute, func() bool {
		for _, nd := range c.Nodes {
			m := nd.Running().Membership()
			if e, ok := m.Member("n1"); !ok || e.Status != gossip.StatusMember || m.View().Change() != "" || len(m.View().Members()) != 3 {
				return false
			}
		}
		return true
	})
	for k, v := range want {
		if rd := c.Get(1, k, "r=all"); rd.Status != http.StatusOK || !slices.Contains(rd.Values(), v) {
			t.Fatalf("acknowledged %q reads %d %v at r=all after n1 rejoined", k, rd.Status, rd.Values())
		}
	}
	checkReads(t, c, "after the wiped n1 rejoined", want)
	if inc := c.Nodes[0].Running().Store().Incarnation(); inc == oldInc {
		t.Fatalf("wiped n1 kept incarnation %d", inc)
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
	select {
	case <-c.Nodes[2].Running().Membership().ReadyCh():
		t.Fatal("the removed n3 was ready (served) before it was refused")
	default:
	}
	if r := c.Get(2, "gone", "r=one"); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("a refused node answered a read: %d", r.Status)
	}
	if r := c.Get(0, "gone", "r=all"); r.Status != http.StatusNotFound {
		t.Fatalf("deleted key after the removed node came back: %d %v", r.Status, r.Values())
	}
}
