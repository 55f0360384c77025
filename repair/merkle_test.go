package repair

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// TestRebuildMatchesLiveTreesAndTombstones: trees and a tombstone index
// kept up to date by the record observer equal those Rebuild makes from
// storage, after random writes, deletes and record removals, and
// Rebuild replaces what they held before.
func TestRebuildMatchesLiveTreesAndTombstones(t *testing.T) {
	live, liveTombs := NewTrees(), NewTombstones()
	s, err := storage.Open("db", storage.Options{NodeID: "n1", FS: vfs.NewMem(), CacheSize: 1 << 20, MemTableSize: 1 << 20,
		Observer: func(p uint32, key, old, cur []byte) {
			live.Observe(p, key, old, cur)
			liveTombs.Observe(p, key, old, cur)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 5000 {
		k := []byte(fmt.Sprintf("k%d", rng.IntN(1500)))
		p := uint32(rng.IntN(4))
		switch rng.IntN(10) {
		case 0:
			if raw, ok, _ := s.GetRaw(p, k); ok {
				if _, err := s.DeleteIfUnchanged(p, k, raw); err != nil {
					t.Fatal(err)
				}
			}
		case 1, 2: // a client's DELETE: a tombstone covering what it read
			cur, _, err := s.Get(p, k)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Write(p, k, cur.Context, versioning.Sibling{Deleted: true}); err != nil {
				t.Fatal(err)
			}
		default:
			if _, _, err := s.Write(p, k, nil, versioning.Sibling{Value: []byte(fmt.Sprint(i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if liveTombs.Len() == 0 {
		t.Fatal("the writes left no tombstone-only record")
	}

	// Start from contents the store does not hold: Rebuild must drop them.
	rebuilt, rebuiltTombs := NewTrees(), NewTombstones()
	for p := range uint32(12) {
		junk := []byte(fmt.Sprintf("junk%d", p))
		rebuilt.Observe(p, junk, nil, []byte("state"))
		rebuiltTombs.keys[tombKey{p, string(junk)}] = struct{}{}
	}
	n, err := Rebuild(s, rebuilt, rebuiltTombs)
	if err != nil || n == 0 {
		t.Fatalf("rebuild: %d records, %v", n, err)
	}
	for p := range uint32(12) {
		if live.Root(p) != rebuilt.Root(p) || live.Mids(p) != rebuilt.Mids(p) {
			t.Fatalf("partition %d: live tree differs from rebuilt", p)
		}
		for m := range midCount {
			if live.Leaves(p, m) != rebuilt.Leaves(p, m) {
				t.Fatalf("partition %d mid %d: leaves differ", p, m)
			}
		}
	}
	if live.Root(9) != 0 {
		t.Fatal("empty partition has a non-zero root")
	}
	liveSet, rebuiltSet := liveTombs.snapshot(math.MaxInt), rebuiltTombs.snapshot(math.MaxInt)
	slices.SortFunc(liveSet, compareTombKeys)
	slices.SortFunc(rebuiltSet, compareTombKeys)
	if !slices.Equal(liveSet, rebuiltSet) {
		t.Fatalf("tombstone index: live has %d keys, rebuilt %d, or they differ", len(liveSet), len(rebuiltSet))
	}
}

func compareTombKeys(a, b tombKey) int {
	return cmp.Or(cmp.Compare(a.p, b.p), cmp.Compare(a.key, b.key))
}

// TestOneDifferingKeyChangesOnePath: two trees holding the same records
// have equal roots, while one differing key makes exactly one leaf, mid
// and root differ.
func TestOneDifferingKeyChangesOnePath(t *testing.T) {
	a, b := NewTrees(), NewTrees()
	for i := range 2000 {
		k := []byte(fmt.Sprintf("k%d", i))
		a.Observe(1, k, nil, []byte("v"))
		b.Observe(1, k, nil, []byte("v"))
	}
	if a.Root(1) != b.Root(1) {
		t.Fatal("equal contents, different roots")
	}
	k := []byte("k42")
	b.Observe(1, k, []byte("v"), []byte("v2"))
	if a.Root(1) == b.Root(1) {
		t.Fatal("a differing key left the roots equal")
	}
	bucket := int(storage.Bucket(k))
	am, bm := a.Mids(1), b.Mids(1)
	for m := range midCount {
		if (am[m] != bm[m]) != (m == bucket/fanout) {
			t.Fatalf("mid %d differs=%v; the key is under mid %d", m, am[m] != bm[m], bucket/fanout)
		}
	}
	al, bl := a.Leaves(1, bucket/fanout), b.Leaves(1, bucket/fanout)
	for i := range fanout {
		if (al[i] != bl[i]) != (i == bucket%fanout) {
			t.Fatalf("leaf %d differs=%v", i, al[i] != bl[i])
		}
	}
	b.Observe(1, k, []byte("v2"), []byte("v"))
	if a.Root(1) != b.Root(1) {
		t.Fatal("undoing the change did not restore the root")
	}
}

// BenchmarkRebuild measures rebuilding the trees and the tombstone index
// of 1 M records (one partition) from a store on disk.
//
//	go test -run='^$' -bench=Rebuild -benchtime=1x ./repair
func BenchmarkRebuild(b *testing.B) {
	s, err := storage.Open(b.TempDir(), storage.Options{NodeID: "n1", Fsync: storage.FsyncNever})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const keys = 1_000_000
	st, _, _ := s.Write(0, []byte("seed"), nil, versioning.Sibling{Value: make([]byte, 100)})
	for i := range keys {
		if _, err := s.Merge(0, fmt.Appendf(nil, "key-%07d", i), st); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		n, err := Rebuild(s, NewTrees(), NewTombstones())
		if err != nil || n != keys+1 {
			b.Fatalf("rebuilt %d records: %v", n, err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "rebuild-s")
	}
}

// TestSwappedStatesChangeTheRoot: two keys exchanging their states is a
// difference the trees must see.
func TestSwappedStatesChangeTheRoot(t *testing.T) {
	a, b := NewTrees(), NewTrees()
	// Keys in one bucket, so even the leaves would agree if the hash
	// were separable.
	var k1, k2 []byte
	for i := 0; k2 == nil; i++ {
		k := []byte(fmt.Sprintf("k%d", i))
		switch {
		case k1 == nil:
			k1 = k
		case storage.Bucket(k) == storage.Bucket(k1):
			k2 = k
		}
	}
	a.Observe(0, k1, nil, []byte("state-x"))
	a.Observe(0, k2, nil, []byte("state-y"))
	b.Observe(0, k1, nil, []byte("state-y"))
	b.Observe(0, k2, nil, []byte("state-x"))
	if a.Root(0) == b.Root(0) {
		t.Fatal("swapping two keys' states left the root unchanged")
	}
}
