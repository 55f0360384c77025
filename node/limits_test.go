package node_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/dotkv/dotkv/internal/kvtest"
)

// limitError is the JSON body of a write refused for a limit.
type limitError struct {
	Error          string `json:"error"`
	Code           string `json:"code"`
	Siblings       int    `json:"siblings"`
	MaxSiblings    int    `json:"max_siblings"`
	RecordBytes    int64  `json:"record_bytes"`
	MaxRecordBytes int64  `json:"max_record_bytes"`
}

// keyAwayFrom returns a key of which node index i is not a primary, and
// the indexes of its primaries.
func keyAwayFrom(t *testing.T, c *kvtest.Cluster, i int, prefix string) (string, []int) {
	t.Helper()
	v := c.Nodes[i].Running().Membership().View()
	for k := range 10000 {
		key := fmt.Sprintf("%s-%d", prefix, k)
		prims := v.Primaries(v.PartitionOf([]byte(key)))
		if slices.Contains(prims, c.Nodes[i].ID) {
			continue
		}
		var idx []int
		for _, id := range prims {
			idx = append(idx, slices.IndexFunc(c.Nodes, func(nd *kvtest.Node) bool { return nd.ID == id }))
		}
		return key, idx
	}
	t.Fatalf("no key away from %s", c.Nodes[i].ID)
	return "", nil
}

// metric returns the value of a sample line of /metrics on node i (0 if
// absent).
func metric(c *kvtest.Cluster, i int, sample string) float64 {
	body := string(c.Do(i, http.MethodGet, "/metrics", nil, nil).Body)
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			_, _ = fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// TestSiblingAndRecordLimits is issue 12's "what must hold" on real nodes,
// with writes through a node that is not a primary of the key (forwarded
// to one) and through the primaries: 150 blind PUTs to one key, the first
// 100 succeed, the rest are 409 too_many_siblings; the key reads 100
// siblings; a write with the read's context succeeds and leaves one. A
// value that would push the record past --max-record is 413 and not
// stored.
func TestSiblingAndRecordLimits(t *testing.T) { simulate(t, siblingAndRecordLimits) }

func siblingAndRecordLimits(t *testing.T) {
	c := kvtest.NewCluster(t, 4, kvtest.Options{MaxRecordBytes: 256 << 10}) // N=3 of 4: one node forwards
	const away = 0
	key, prims := keyAwayFrom(t, c, away, "blind")
	via := append([]int{away}, prims...) // forwarded, then coordinated by each primary
	// w=all: every primary holds every earlier write before the next one is
	// checked (the bound is checked against the coordinator's own copy).
	for i := range 150 {
		r := c.Put(via[i%len(via)], key, fmt.Sprintf("v%d", i), "", "w=all")
		if i < 100 {
			if r.Status != http.StatusNoContent {
				t.Fatalf("blind put %d via %s: %d %s", i, c.Nodes[via[i%len(via)]].ID, r.Status, r.Body)
			}
			continue
		}
		var e limitError
		_ = json.Unmarshal(r.Body, &e)
		if r.Status != http.StatusConflict || e.Code != "too_many_siblings" || e.Siblings != 100 || e.MaxSiblings != 100 ||
			!strings.Contains(e.Error, "context") {
			t.Fatalf("blind put %d via %s: %d %s, want 409 too_many_siblings with siblings 100", i, c.Nodes[via[i%len(via)]].ID, r.Status, r.Body)
		}
	}
	rd := c.Get(away, key, "r=all")
	if rd.Status != http.StatusOK || len(rd.Siblings) != 100 {
		t.Fatalf("read after 150 blind puts: %d, %d siblings, want 100", rd.Status, len(rd.Siblings))
	}
	for _, i := range prims {
		if rep := c.Replica(i, key); len(rep.Siblings) != 100 {
			t.Fatalf("%s holds %d siblings, want 100", c.Nodes[i].ID, len(rep.Siblings))
		}
	}
	if r := c.Put(away, key, "resolved", rd.Context, "w=all"); r.Status != http.StatusNoContent {
		t.Fatalf("put with the read's context via %s: %d %s", c.Nodes[away].ID, r.Status, r.Body)
	}
	if rd := c.Get(away, key, "r=all"); rd.Status != http.StatusOK || !slices.Equal(rd.Values(), []string{"resolved"}) || len(rd.Siblings) != 1 {
		t.Fatalf("after resolving: %d %v", rd.Status, rd.Values())
	}
	for _, i := range prims {
		if rep := c.Replica(i, key); !slices.Equal(rep.Values(), []string{"resolved"}) || len(rep.Siblings) != 1 {
			t.Fatalf("%s holds %v after resolving", c.Nodes[i].ID, rep.Values())
		}
	}
	var refused float64
	for i := range c.Nodes {
		refused += metric(c, i, `dotkv_writes_refused_total{limit="max_siblings"}`)
	}
	if refused != 50 {
		t.Errorf("dotkv_writes_refused_total{limit=\"max_siblings\"} sums to %v over the nodes, want 50", refused)
	}

	// --max-record 256 KiB: two 100 KiB siblings fit, a third does not.
	big, bigPrims := keyAwayFrom(t, c, away, "big")
	value := func(i int) string { return fmt.Sprintf("%d", i) + strings.Repeat("x", 100<<10) }
	for i := range 2 {
		if r := c.Put(bigPrims[i], big, value(i), "", "w=all"); r.Status != http.StatusNoContent {
			t.Fatalf("100 KiB sibling %d: %d %s", i, r.Status, r.Body)
		}
	}
	for _, i := range []int{away, bigPrims[0], bigPrims[2]} {
		r := c.Put(i, big, value(9), "", "w=all")
		var e limitError
		_ = json.Unmarshal(r.Body, &e)
		if r.Status != http.StatusRequestEntityTooLarge || e.Code != "object_too_large" || e.MaxRecordBytes != 256<<10 ||
			e.RecordBytes <= 256<<10 || e.Siblings != 2 {
			t.Fatalf("third 100 KiB sibling via %s: %d %s, want 413 object_too_large", c.Nodes[i].ID, r.Status, r.Body)
		}
	}
	for _, i := range bigPrims {
		if rep := c.Replica(i, big); len(rep.Siblings) != 2 {
			t.Fatalf("%s holds %d siblings of the big key, want the 2 accepted", c.Nodes[i].ID, len(rep.Siblings))
		}
	}
	rd = c.Get(away, big, "r=all")
	if len(rd.Siblings) != 2 {
		t.Fatalf("big key reads %d siblings, want 2", len(rd.Siblings))
	}
	if r := c.Put(away, big, value(3), rd.Context, "w=all"); r.Status != http.StatusNoContent {
		t.Fatalf("replacing both with one value: %d %s", r.Status, r.Body)
	}
}
