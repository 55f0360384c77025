package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/dotkv/dotkv/gossip"
	"github.com/dotkv/dotkv/internal/kvtest"
)

func roots(t *testing.T, c *kvtest.Cluster, i int) map[string]string {
	t.Helper()
	r := c.Do(i, http.MethodGet, "/admin/aae", nil, nil)
	var out struct {
		Node  string            `json:"node"`
		Roots map[string]string `json:"roots"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil || r.Status != http.StatusOK {
		t.Fatalf("/admin/aae on %s: %d %s", c.Nodes[i].ID, r.Status, r.Body)
	}
	return out.Roots
}

func TestAAESmoke(t *testing.T) {
	c := kvtest.NewCluster(t, 3, kvtest.Options{DisableHints: true, AAEInterval: 100 * time.Millisecond})
	c.Isolate(2)
	c.WaitLiveness(0, 2, gossip.Dead, 10*time.Second)
	for i := range 300 {
		if r := c.Put(0, fmt.Sprintf("k%d", i), "v", "", ""); r.Status != http.StatusNoContent {
			t.Fatalf("put: %d %s", r.Status, r.Body)
		}
	}
	c.Heal()
	c.WaitAllAlive()
	start := time.Now()
	c.WaitFor("roots to agree", 10*time.Second, func() bool {
		a, b, d := roots(t, c, 0), roots(t, c, 1), roots(t, c, 2)
		if len(a) != 1024 {
			return false
		}
		for p, h := range a {
			if b[p] != h || d[p] != h {
				return false
			}
		}
		return true
	})
	t.Logf("converged %v after heal", time.Since(start))
	for i := range 300 {
		if rep := c.Replica(2, fmt.Sprintf("k%d", i)); rep.Status != http.StatusOK {
			t.Fatalf("n3 lacks k%d after convergence", i)
		}
	}
}
