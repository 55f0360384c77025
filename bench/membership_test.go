package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dotkv/dotkv/bench/history"
	"github.com/dotkv/dotkv/client"
)

// TestMembershipCycle walks the membership nemesis's changes from several
// starting sizes: the member count never drops below max(start-1, 3) nor
// exceeds start+1, and every kind of change comes round.
func TestMembershipCycle(t *testing.T) {
	// A leave or remove that would go below the floor becomes a join.
	if nextChange(1, 3, 3) != changeJoin || nextChange(3, 3, 3) != changeJoin || nextChange(1, 4, 3) != changeLeave ||
		nextChange(3, 4, 5) != changeJoin || nextChange(3, 5, 5) != changeRemove {
		t.Fatal("a leave or remove at the floor is not turned into a join")
	}
	for start := 3; start <= 7; start++ {
		floor := max(start-1, 3)
		members := start
		var kinds []string
		seen := map[memberChange]int{}
		for i := range 40 {
			k := nextChange(i, members, start)
			seen[k]++
			kinds = append(kinds, k.String())
			switch k {
			case changeJoin:
				members++
			case changeLeave, changeRemove:
				members--
			case changeReplace:
				if members-1 < 2 {
					t.Fatalf("start %d, change %d: a replace kills one of %d members", start, i, members)
				}
			}
			if members < floor || members > start+1 {
				t.Fatalf("start %d, change %d (%s): %d members, want %d..%d", start, i, k, members, floor, start+1)
			}
		}
		for _, k := range []memberChange{changeJoin, changeLeave, changeRemove, changeReplace} {
			if seen[k] < 8 {
				t.Errorf("start %d: %s %d times in 40 changes: %v", start, k, seen[k], kinds)
			}
		}
		if start == 3 {
			if got, want := strings.Join(kinds[:10], " "), "join leave join remove replace join leave join remove replace"; got != want {
				t.Errorf("from 3 members: %s, want %s", got, want)
			}
		}
	}
}

func view(node string, version uint64, members ...string) *client.ClusterStatus {
	st := &client.ClusterStatus{Node: node}
	st.Ring.Version = version
	for _, m := range members { // "id:status:liveness"
		f := strings.Split(m, ":")
		st.Members = append(st.Members, client.Member{ID: f[0], Status: f[1], Liveness: f[2]})
	}
	return st
}

func TestChangeSettled(t *testing.T) {
	want := map[string]string{"n1": "member", "n2": "member", "n4": "member", "n3": "left"}
	done := []string{"n1:member:alive", "n2:member:alive", "n3:left:dead", "n4:member:alive"}
	withTransfer := view("n2", 7, done...)
	withTransfer.Transfers = append(withTransfer.Transfers, client.Transfer{Partition: 3, From: "n1", To: "n2", State: "running"})
	for _, tc := range []struct {
		name  string
		views []*client.ClusterStatus
		ok    bool
		why   string
	}{
		{"complete", []*client.ClusterStatus{view("n1", 7, done...), view("n2", 7, done...), view("n4", 7, done...)}, true, ""},
		{"still leaving", []*client.ClusterStatus{view("n1", 7, done...),
			view("n2", 6, "n1:member:alive", "n2:member:alive", "n3:leaving:alive", "n4:member:alive")}, false, "n2 sees n3 leaving, want left"},
		{"a member not alive", []*client.ClusterStatus{view("n1", 7, "n1:member:alive", "n2:member:suspect", "n3:left:dead", "n4:member:alive")},
			false, "n1 sees n2 suspect"},
		{"a view lacks the new node", []*client.ClusterStatus{view("n1", 7, "n1:member:alive", "n2:member:alive", "n3:left:dead")},
			false, "n1 does not list n4"},
		{"another entry joining", []*client.ClusterStatus{view("n1", 7, append(slices.Clone(done), "n5:joining:alive")...)},
			false, "n1 sees n5 joining"},
		{"transfers left", []*client.ClusterStatus{view("n1", 7, done...), withTransfer}, false, "n2 has 1 transfers"},
		{"versions differ", []*client.ClusterStatus{view("n1", 7, done...), view("n2", 8, done...)}, false, "n2 is at ring version 8, n1 at 7"},
	} {
		ok, why := changeSettled(tc.views, want)
		if ok != tc.ok || why != tc.why {
			t.Errorf("%s: changeSettled = %v %q, want %v %q", tc.name, ok, why, tc.ok, tc.why)
		}
	}
}

// TestMembershipNeedsSpawnedThree: the membership nemesis refuses a
// cluster it did not spawn and one of fewer than 3 nodes.
func TestMembershipNeedsSpawnedThree(t *testing.T) {
	nodes := func(k int) []*Node {
		var out []*Node
		for i := range k {
			out = append(out, &Node{ID: "n" + string(rune('1'+i)), URL: "http://127.0.0.1:1"})
		}
		return out
	}
	hist := &history.History{}
	for _, tc := range []struct {
		spawned bool
		k       int
		err     string
	}{
		{false, 3, "needs --spawn"},
		{true, 2, "--spawn 3 or more"},
		{true, 3, ""},
	} {
		c := &Cluster{spawned: tc.spawned, members: nodes(tc.k)}
		n, err := NewNemesis(c, []string{"membership"}, time.Second, "filter", 1, hist, time.Now())
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("spawned=%v k=%d: %v", tc.spawned, tc.k, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("spawned=%v k=%d: error %v, want one saying %q", tc.spawned, tc.k, err, tc.err)
		}
		if n != nil {
			_ = n.Close()
		}
	}
}

// TestClusterMembers: Admit and Retire change the members, URLs and the
// final reads' nodes; NodeIDs keeps every node the run had.
func TestClusterMembers(t *testing.T) {
	c := &Cluster{}
	a, b, d := &Node{ID: "n1", URL: "http://a"}, &Node{ID: "n2", URL: "http://b"}, &Node{ID: "n4", URL: "http://d"}
	c.all = []*Node{a, b, d}
	c.Admit(a)
	c.Admit(b)
	c.Admit(b)
	if got := c.URLs(); !slices.Equal(got, []string{"http://a", "http://b"}) {
		t.Fatalf("URLs = %v", got)
	}
	c.Admit(d)
	c.Retire(a)
	if got := c.URLs(); !slices.Equal(got, []string{"http://b", "http://d"}) {
		t.Fatalf("URLs after n1 left = %v", got)
	}
	if ids := c.NodeIDs(); len(ids) != 3 || ids["http://a"] != "n1" {
		t.Fatalf("NodeIDs = %v, want all three nodes", ids)
	}
}

// TestClusterProcesses: a process that exits 0 after ExpectExit (a node
// that left) is no crash, one that exits on its own is; Stop stops and
// waits for every process started, also one no longer a member, and
// starts nothing after.
func TestClusterProcesses(t *testing.T) {
	c := &Cluster{spawned: true, logs: &lockedBuilder{}, dir: t.TempDir(), keep: true}
	mk := func(id, script string) *Node {
		nd := &Node{ID: id, base: []string{"/bin/sh", "-c", script}, tail: &tailWriter{max: 64}}
		c.all = append(c.all, nd)
		return nd
	}
	left := mk("n1", "echo bye; exit 0")
	crashed := mk("n2", "echo boom >&2; exit 3")
	sleeper := mk("n3", "exec sleep 600")
	gone := mk("n4", "exec sleep 600")
	for _, nd := range []*Node{left, crashed, sleeper, gone} {
		if err := c.start(nd); err != nil {
			t.Fatal(err)
		}
		c.Admit(nd)
	}
	left.ExpectExit()
	for _, nd := range []*Node{left, crashed} {
		select {
		case <-nd.Done():
		case <-time.After(time.Minute):
			t.Fatalf("%s did not exit", nd.ID)
		}
	}
	err := c.CheckRunning()
	if err == nil || !strings.Contains(err.Error(), "node n2 exited unexpectedly") || !strings.Contains(err.Error(), "boom") ||
		strings.Contains(err.Error(), "n1") {
		t.Fatalf("CheckRunning = %v, want n2's crash (with its output) only", err)
	}
	if exited, err := left.Exited(); !exited || err != nil {
		t.Fatalf("n1: exited %v, %v", exited, err)
	}
	c.Retire(crashed)
	c.Retire(gone) // no longer a member; its process still runs
	if err := c.CheckRunning(); err != nil {
		t.Fatalf("CheckRunning after n2 retired: %v", err)
	}
	c.Stop()
	for _, nd := range []*Node{sleeper, gone} {
		if exited, _ := nd.Exited(); !exited {
			t.Errorf("%s still runs after Stop", nd.ID)
		}
	}
	if err := c.start(mk("n5", "exit 0")); err == nil {
		t.Error("a node started after Stop")
	}
	if _, err := c.NewNode(); err == nil {
		t.Error("NewNode after Stop")
	}
}

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestWorkloadFollowsTargets: the clients send to the URLs LiveTargets
// returns at each operation; once it names another node only, no
// operation starts on the old one.
func TestWorkloadFollowsTargets(t *testing.T) {
	var hitsA, hitsB atomic.Int64
	handler := func(hits *atomic.Int64) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			if r.Method == http.MethodGet {
				http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
	}
	a, b := httptest.NewServer(handler(&hitsA)), httptest.NewServer(handler(&hitsB))
	defer a.Close()
	defer b.Close()
	var switched atomic.Bool
	var calls atomic.Int64
	live := func() []string {
		if calls.Add(1) > 200 {
			switched.Store(true)
			return []string{b.URL}
		}
		return []string{a.URL}
	}
	hist := &history.History{}
	wl, err := NewWorkload(WorkloadConfig{Targets: []string{a.URL}, LiveTargets: live, Concurrency: 4, Ops: 1000,
		Duration: time.Minute, Keys: 10, Dist: "uniform", Mix: Mix{Read: 50, Write: 45, Delete: 5}, Seed: 1},
		hist, time.Now(), func() string { return "healthy" })
	if err != nil {
		t.Fatal(err)
	}
	wl.Run(context.Background())
	if !switched.Load() || hitsA.Load() == 0 || hitsB.Load() == 0 {
		t.Fatalf("switched %v, hits a=%d b=%d", switched.Load(), hitsA.Load(), hitsB.Load())
	}
	// Each client's operations after its first one on b all go to b.
	onB := map[int]bool{}
	for _, op := range hist.Ops() {
		switch {
		case op.Node == b.URL:
			onB[op.Client] = true
		case onB[op.Client] && op.Kind == history.OpRead:
			t.Fatalf("client %d read from %s after it had moved to %s", op.Client, op.Node, b.URL)
		}
	}
}
