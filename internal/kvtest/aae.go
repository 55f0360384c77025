package kvtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/client"
)

// Helpers for tests of Merkle anti-entropy and tombstone collection.
// Those named Try… report failures as errors, so they may be called from
// goroutines other than the test's.

// TryRoots returns node i's per-partition Merkle roots (/admin/aae):
// partition number → root, for every partition the node replicates.
func (c *Cluster) TryRoots(i int) (map[string]string, error) {
	r, err := c.TryDo(i, http.MethodGet, "/admin/aae", nil, nil)
	if err != nil {
		return nil, err
	}
	var out client.AAE
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("/admin/aae on %s: %d %s", c.Nodes[i].ID, r.Status, r.Body)
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		return nil, fmt.Errorf("/admin/aae on %s: %w: %s", c.Nodes[i].ID, err, r.Body)
	}
	return out.Roots, nil
}

// RootsAgree reports whether, for every partition, every running node
// that replicates it reports the same root; otherwise detail names the
// number of disagreeing partitions and the first few.
func (c *Cluster) RootsAgree() (agree bool, detail string, err error) {
	byPart := map[string]map[string]string{} // partition → node → root
	for i, nd := range c.Nodes {
		if nd.Running() == nil {
			continue
		}
		roots, err := c.TryRoots(i)
		if err != nil {
			return false, "", err
		}
		for p, h := range roots {
			if byPart[p] == nil {
				byPart[p] = map[string]string{}
			}
			byPart[p][nd.ID] = h
		}
	}
	var bad []string
	for p, nodes := range byPart {
		var first string
		for _, h := range nodes {
			if first == "" {
				first = h
			} else if h != first {
				bad = append(bad, p)
				break
			}
		}
	}
	if len(bad) == 0 {
		return true, "", nil
	}
	slices.Sort(bad)
	var ex []string
	for _, p := range bad[:min(3, len(bad))] {
		ex = append(ex, fmt.Sprintf("%s: %v", p, byPart[p]))
	}
	return false, fmt.Sprintf("%d of %d partitions differ, e.g. %s", len(bad), len(byPart), strings.Join(ex, "; ")), nil
}

// WaitRootsAgree polls until RootsAgree holds and returns how long it
// waited.
func (c *Cluster) WaitRootsAgree(timeout time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	var last string
	for {
		ok, detail, err := c.RootsAgree()
		if err != nil {
			c.t.Fatal(err)
		}
		if ok {
			return time.Since(start)
		}
		last = detail
		if time.Since(start) > timeout {
			c.t.Fatalf("timed out after %v waiting for Merkle roots to agree: %s", timeout, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SnapshotData returns a copy of stopped node i's data directory (its
// in-memory filesystem), for RestoreData.
func (c *Cluster) SnapshotData(i int) vfs.FS {
	c.t.Helper()
	nd := c.Nodes[i]
	if nd.Running() != nil {
		c.t.Fatalf("snapshot of %s: the node is running; stop it first", nd.ID)
	}
	return cloneFS(c, nd.fs, nd.cfg.DataDir)
}

// RestoreData replaces stopped node i's data directory with a copy of
// snap (from SnapshotData): on Restart the node comes back with the data
// it held then, as after restoring a backup or losing recent writes.
func (c *Cluster) RestoreData(i int, snap vfs.FS) {
	c.t.Helper()
	nd := c.Nodes[i]
	if nd.Running() != nil {
		c.t.Fatalf("restore of %s: the node is running; stop it first", nd.ID)
	}
	nd.fs = cloneFS(c, snap, nd.cfg.DataDir)
	nd.cfg.FS = nd.fs
}

func cloneFS(c *Cluster, src vfs.FS, dir string) vfs.FS {
	c.t.Helper()
	dst := vfs.NewMem()
	ok, err := vfs.Clone(src, dst, dir, dir)
	if err != nil || !ok {
		c.t.Fatalf("copy data directory %s: copied=%v, %v", dir, ok, err)
	}
	return dst
}

// RaceEnabled reports whether the test binary runs under the race
// detector, which makes request handling several times slower: timing
// bounds may widen under it.
func RaceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
