package node_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dotkv/dotkv/gossip"
	"github.com/dotkv/dotkv/internal/kvtest"
	"github.com/dotkv/dotkv/node"
	"github.com/dotkv/dotkv/versioning"
)

// TestContextsAreBoundToKeyAndCluster (issue 12, part 2): a context token
// is accepted only for the key it was read for and by the cluster that
// signed it, through every node, before anything is written or any dot
// counter moves; a node that joins adopts the cluster's secret.
func TestContextsAreBoundToKeyAndCluster(t *testing.T) { simulate(t, contextsAreBoundToKeyAndCluster) }

func contextsAreBoundToKeyAndCluster(t *testing.T) {
	c := kvtest.NewCluster(t, 3, kvtest.Options{}) // N=3: every node is a primary and coordinates
	put := func(i int, key, value, vctx string) kvtest.Response {
		t.Helper()
		r := c.Put(i, key, value, vctx, "w=all")
		if r.Status != http.StatusNoContent {
			t.Fatalf("put %s=%s via %s: %d %s", key, value, c.Nodes[i].ID, r.Status, r.Body)
		}
		return r
	}
	// refused checks that a write of key with token through every node
	// is a 400 bad_context saying why, and changes no replica of key.
	refused := func(what, key, token, says string) {
		t.Helper()
		before := replicas(t, c, key)
		for i := range c.Nodes {
			for _, r := range []kvtest.Response{c.Put(i, key, "evil", token, "w=all"), c.Delete(i, key, token, "w=all")} {
				if e := r.JSONError(); r.Status != http.StatusBadRequest || e.Code != "bad_context" || !strings.Contains(e.Error, says) {
					t.Fatalf("%s through %s: %d %s; want 400 bad_context saying %q", what, c.Nodes[i].ID, r.Status, r.Body, says)
				}
			}
		}
		if after := replicas(t, c, key); !slices.Equal(after, before) {
			t.Fatalf("%s changed %s:\nbefore %q\nafter  %q", what, key, before, after)
		}
	}

	// B has two concurrent siblings, written through n2 and n3. The
	// counters are node-wide, so A's context, read after B's writes,
	// covers B's dots: accepted for B, it would drop both.
	put(1, "B", "b2", "")
	put(2, "B", "b3", "")
	put(0, "A", "a1", "")
	put(1, "A", "a2", c.Get(0, "A", "r=all").Context)
	put(2, "A", "a3", c.Get(0, "A", "r=all").Context)
	ctxA := c.Get(0, "A", "r=all").Context
	refused("A's context sent to B", "B", ctxA, "read for another key")
	if got := c.Get(0, "B", "r=all").Values(); !slices.Equal(got, []string{"b2", "b3"}) {
		t.Fatalf("B = %v; want its two siblings", got)
	}

	// A context of another cluster, for the same key.
	o := kvtest.NewCluster(t, 1, kvtest.Options{})
	if r := o.Put(0, "B", "other", "", ""); r.Status != http.StatusNoContent {
		t.Fatalf("put B in the other cluster: %d %s", r.Status, r.Body)
	}
	refused("another cluster's context", "B", o.Get(0, "B", "").Context, "not signed by this cluster")

	// Forged contexts claim counter 1,000,000 of every node's actor (which
	// honoured would move the node's counter past it, for every key).
	// Each node's last counter, from a write it just coordinated:
	last := make([]versioning.Dot, len(c.Nodes))
	for i := range c.Nodes {
		key := "probe-" + c.Nodes[i].ID
		put(i, key, "p", "")
		last[i] = ownDot(t, c, i, key)
	}
	var forged versioning.VersionVector
	for _, d := range last {
		forged = append(forged, versioning.Entry{Actor: d.Actor, Counter: 1_000_000})
	}
	slices.SortFunc(forged, func(a, b versioning.Entry) int { return strings.Compare(a.Actor, b.Actor) })
	wrongKeys, err := versioning.NewContextKeys([]byte("a secret the attacker made up..."))
	if err != nil {
		t.Fatal(err)
	}
	ctxB := c.Get(0, "B", "r=all").Context
	refused("an unsigned forged context", "B", versioning.EncodeContext(forged), "read the key again")
	refused("a context forged under a made-up secret", "B", wrongKeys.Seal([]byte("B"), forged), "not signed by this cluster")
	refused("B's context with its vector altered", "B", alterVector(t, ctxB), "not signed by this cluster")
	refused("B's context with its MAC altered", "B", flipByte(t, ctxB, -1), "not signed by this cluster")
	for i := range c.Nodes {
		key := "after-" + c.Nodes[i].ID
		put(i, key, "p", "")
		if got, want := ownDot(t, c, i, key), (versioning.Dot{Actor: last[i].Actor, Counter: last[i].Counter + 1}); got != want {
			t.Errorf("%s's next write after the forged contexts has dot %v; want the next unused counter, %v", c.Nodes[i].ID, got, want)
		}
	}
	// B's own context still resolves B, through any node.
	put(2, "B", "b23", ctxB)
	if got := c.Get(1, "B", "r=all").Values(); !slices.Equal(got, []string{"b23"}) {
		t.Fatalf("B after a write with its own context = %v; want [b23]", got)
	}

	// A node that joins adopts the cluster's secret: a context read
	// through n1 works through n4, and one read through n4 through n1.
	c.AddNode("")
	c.WaitStatus("n4", gossip.StatusMember)
	put(3, "A", "a4", c.Get(0, "A", "r=all").Context)
	if got := c.Get(0, "A", "r=all").Values(); !slices.Equal(got, []string{"a4"}) {
		t.Fatalf("A after a write through n4 with n1's context = %v; want [a4]", got)
	}
	put(0, "A", "a5", c.Get(3, "A", "r=all").Context)
	if got := c.Get(3, "A", "r=all").Values(); !slices.Equal(got, []string{"a5"}) {
		t.Fatalf("A after a write through n1 with n4's context = %v; want [a5]", got)
	}
	// It recorded the secret: after a restart, it still verifies.
	c.Stop(3)
	c.Restart(3)
	c.WaitFor("n4 ready again", time.Minute, func() bool { return c.Nodes[3].Running().Membership().Ready() })
	put(3, "A", "a6", c.Get(0, "A", "r=all").Context)
	refused("another cluster's context, after n4's restart", "B", o.Get(0, "B", "").Context, "not signed by this cluster")
}

// TestClusterSecretFile: with Config.ClusterSecrets (--cluster-secret-file)
// the file's secret signs, gossip's is not used, and a previous secret
// still verifies during a rotation.
func TestClusterSecretFile(t *testing.T) { simulate(t, clusterSecretFile) }

func clusterSecretFile(t *testing.T) {
	c := kvtest.NewCluster(t, 3, kvtest.Options{})
	put := func(i int, key, value, vctx string) kvtest.Response {
		t.Helper()
		r := c.Put(i, key, value, vctx, "w=all")
		if r.Status != http.StatusNoContent {
			t.Fatalf("put %s=%s via %s: %d %s", key, value, c.Nodes[i].ID, r.Status, r.Body)
		}
		return r
	}
	put(0, "k", "v1", "")
	generated := c.Get(0, "k", "r=all").Context
	s1, s2 := []byte("the first secret of the file...."), []byte("the second secret of the file...")
	restartAll := func(secrets ...[]byte) {
		t.Helper()
		for i := range c.Nodes {
			c.Stop(i)
		}
		for i := range c.Nodes {
			c.RestartWith(i, func(cfg *node.Config) { cfg.ClusterSecrets = secrets })
		}
		c.WaitFor("every node ready", time.Minute, func() bool {
			for _, nd := range c.Nodes {
				if !nd.Running().Membership().Ready() {
					return false
				}
			}
			return true
		})
	}
	restartAll(s1)
	for i := range c.Nodes {
		if r := c.Put(i, "k", "v2", generated, "w=all"); r.Status != http.StatusBadRequest {
			t.Fatalf("the generated secret's context through %s with the file's secret: %d %s; want 400", c.Nodes[i].ID, r.Status, r.Body)
		}
	}
	ctx1 := c.Get(1, "k", "r=all").Context
	put(2, "k", "v2", ctx1)
	ctx1 = c.Get(1, "k", "r=all").Context

	// Rotation: the new secret signs, the previous one still verifies.
	restartAll(s2, s1)
	put(0, "k", "v3", ctx1)
	if got := c.Get(1, "k", "r=all").Values(); !slices.Equal(got, []string{"v3"}) {
		t.Fatalf("k after a write with the previous secret's context = %v; want [v3]", got)
	}
	ctx2 := c.Get(1, "k", "r=all").Context
	restartAll(s2)
	put(2, "k", "v4", ctx2)
	for i := range c.Nodes {
		if r := c.Put(i, "k", "v5", ctx1, "w=all"); r.Status != http.StatusBadRequest {
			t.Fatalf("a context of the dropped secret through %s: %d %s; want 400", c.Nodes[i].ID, r.Status, r.Body)
		}
	}
}

// replicas returns every running node's /debug/replica answer for key.
func replicas(t *testing.T, c *kvtest.Cluster, key string) []string {
	t.Helper()
	var out []string
	for i, nd := range c.Nodes {
		if nd.Running() == nil {
			continue
		}
		r, err := c.TryReplica(i, key)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strconv.Itoa(r.Status)+" "+string(r.Body))
	}
	return out
}

// ownDot returns the dot of node i's own sibling of key, in its replica.
func ownDot(t *testing.T, c *kvtest.Cluster, i int, key string) versioning.Dot {
	t.Helper()
	r, err := c.TryReplica(i, key)
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("replica of %s on %s: %d %s %v", key, c.Nodes[i].ID, r.Status, r.Body, err)
	}
	var st struct {
		Siblings []struct {
			Dot string `json:"dot"`
		} `json:"siblings"`
	}
	if err := json.Unmarshal(r.Body, &st); err != nil || len(st.Siblings) != 1 {
		t.Fatalf("replica of %s on %s: %s (%v): want one sibling", key, c.Nodes[i].ID, r.Body, err)
	}
	actor, counter, _ := strings.Cut(st.Siblings[0].Dot, ":")
	n, err := strconv.ParseUint(counter, 10, 64)
	if err != nil || !strings.HasPrefix(actor, c.Nodes[i].ID+".") {
		t.Fatalf("replica of %s on %s: dot %q: want one of %s's actor", key, c.Nodes[i].ID, st.Siblings[0].Dot, c.Nodes[i].ID)
	}
	return versioning.Dot{Actor: actor, Counter: n}
}

// flipByte returns token with one bit of its byte at i (negative: from
// the end) flipped.
func flipByte(t *testing.T, token string, i int) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		t.Fatal(err)
	}
	if i < 0 {
		i += len(raw)
	}
	raw[i] ^= 1
	return base64.RawURLEncoding.EncodeToString(raw)
}

// alterVector returns token with its first actor ID changed (byte 3:
// after the format, the number of actors and the ID's length), its MAC
// unchanged.
func alterVector(t *testing.T, token string) string {
	t.Helper()
	return flipByte(t, token, 3)
}
