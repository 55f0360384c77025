package replica

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dotkv/dotkv/storage"
)

// raws returns every node's stored bytes of key.
func (c *testCluster) raws(key []byte) map[string][]byte {
	c.t.Helper()
	out := map[string][]byte{}
	for _, id := range c.ids {
		b, _, err := c.nodes[id].store.GetRaw(c.ring.PartitionOf(key), key)
		if err != nil {
			c.t.Fatal(err)
		}
		out[id] = b
	}
	return out
}

func sameRaws(a, b map[string][]byte) bool {
	for id, v := range a {
		if !bytes.Equal(v, b[id]) {
			return false
		}
	}
	return len(a) == len(b)
}

// TestWritesBeyondTheSiblingBoundAreRefused: the primary that coordinates
// refuses a write that would leave too many siblings, before anything is
// written or replicated, and a forwarded write carries the refusal back
// with its counts; a write with a read's context then resolves the key.
func TestWritesBeyondTheSiblingBoundAreRefused(t *testing.T) {
	c := newLimitedCluster(t, 5, Config{}, storage.Limits{MaxSiblings: 3})
	k := c.keyWhere(func(prims, _ []string) bool { return !slices.Contains(prims, "n1") })
	prims, _ := c.prefs(k)
	for _, via := range []string{prims[0], "n1", prims[1]} { // coordinated, forwarded, coordinated
		if _, err := c.put(via, k, "v-"+via, nil, WriteOptions{W: All}); err != nil {
			t.Fatalf("blind write via %s: %v", via, err)
		}
	}
	before, replicates := c.raws(k), c.calls(methodReplicate)
	for _, via := range []string{"n1", prims[0], prims[2]} {
		_, err := c.put(via, k, "over", nil, WriteOptions{W: All})
		var le *LimitError
		if !errors.As(err, &le) || !errors.Is(err, ErrTooManySiblings) || le.Siblings != 3 || le.Would != 4 || le.Max != 3 {
			t.Fatalf("fourth blind sibling via %s: %v, want a LimitError (3 held, 4 would be, bound 3)", via, err)
		}
	}
	if !sameRaws(before, c.raws(k)) {
		t.Fatal("a refused write changed a replica")
	}
	if got := c.calls(methodReplicate); got != replicates {
		t.Errorf("refused writes sent %d copies", got-replicates)
	}
	st, err := c.get("n1", k, ReadOptions{R: All})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Siblings) != 3 {
		t.Fatalf("read %d siblings, want 3", len(st.Siblings))
	}
	if _, err := c.put("n1", k, "resolved", st.Context, WriteOptions{W: All}); err != nil {
		t.Fatalf("write with the read's context: %v", err)
	}
	for _, id := range prims {
		if got := c.stored(id, k); !slices.Equal(got, []string{"resolved"}) {
			t.Errorf("%s stores %v, want [resolved]", id, got)
		}
	}
}

// TestWritesBeyondTheRecordBoundAreRefused: likewise for the encoded size
// of the record, through a forwarding node.
func TestWritesBeyondTheRecordBoundAreRefused(t *testing.T) {
	c := newLimitedCluster(t, 5, Config{}, storage.Limits{MaxRecordBytes: 2000})
	k := c.keyWhere(func(prims, _ []string) bool { return !slices.Contains(prims, "n1") })
	v := strings.Repeat("x", 1200)
	if _, err := c.put("n1", k, v, nil, WriteOptions{W: All}); err != nil {
		t.Fatal(err)
	}
	before := c.raws(k)
	_, err := c.put("n1", k, v, nil, WriteOptions{W: All})
	var le *LimitError
	if !errors.As(err, &le) || !errors.Is(err, ErrRecordTooLarge) || le.Siblings != 1 || le.Would <= 2000 || le.Max != 2000 {
		t.Fatalf("a second 1200-byte sibling: %v, want a LimitError for the record's bytes", err)
	}
	if !sameRaws(before, c.raws(k)) {
		t.Fatal("a refused write changed a replica")
	}
}
