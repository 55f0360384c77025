package repair

import (
	"math/bits"
	"sync"

	"github.com/cespare/xxhash/v2"

	"github.com/dotkv/dotkv/storage"
)

// Tree shape: storage.Buckets leaves per partition replica (one per key
// bucket), grouped under fanout mid nodes, under one root. Every level
// combines its children with XOR (a "tictac" tree): a write changes one
// key's hash h(key, version), so it XORs old^new into its leaf, that
// leaf's mid node and the root — O(1), no rescan, no rebuild. With 1024
// leaves a partition of 1 M keys holds ~1 000 keys per leaf: comparing two
// replicas costs one round trip per level (roots, mids, leaves, key lists
// of differing leaves) and sends only the differing leaves' keys.
const (
	leafCount = storage.Buckets
	fanout    = 32
	midCount  = leafCount / fanout
)

type tree struct {
	leaf [leafCount]uint64
	mid  [midCount]uint64
	root uint64
}

// Trees holds the Merkle tree of every partition this node stores
// records of. It is safe for concurrent use.
type Trees struct {
	mu    sync.RWMutex
	parts map[uint32]*tree
}

// NewTrees returns empty trees.
func NewTrees() *Trees { return &Trees{parts: map[uint32]*tree{}} }

// keyHash is h(key, version): the hash of a key together with the stored
// encoding of its state (canonical: the store only writes encodings made
// by versioning's encoder). An absent key hashes to 0.
func keyHash(key, raw []byte) uint64 {
	if raw == nil {
		return 0
	}
	// Mix key and state non-linearly: with a plain XOR of the two hashes,
	// two keys swapping their states would leave every tree level equal.
	h := bits.RotateLeft64(xxhash.Sum64(key)*0x9e3779b97f4a7c15^xxhash.Sum64(raw), 31) * 0xbf58476d1ce4e5b9
	if h == 0 {
		h = 1 // 0 means absent
	}
	return h
}

// Observe applies a record change (a storage.RecordObserver).
func (t *Trees) Observe(p uint32, key, old, cur []byte) {
	delta := keyHash(key, old) ^ keyHash(key, cur)
	if delta == 0 {
		return
	}
	b := storage.Bucket(key)
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.parts[p]
	if tr == nil {
		tr = new(tree)
		t.parts[p] = tr
	}
	tr.leaf[b] ^= delta
	tr.mid[b/fanout] ^= delta
	tr.root ^= delta
}

// Rebuild recomputes trees and the tombstone index from the store's
// records, in one scan, replacing what they held, and returns how many
// records it read. Nothing may write while it runs (it runs at start,
// before the node serves).
func Rebuild(store *storage.Store, trees *Trees, tombs *Tombstones) (int, error) {
	fresh := NewTrees()
	freshTombs := NewTombstones()
	n := 0
	err := store.ScanRecords(func(p uint32, key, raw []byte) error {
		fresh.Observe(p, key, nil, raw)
		freshTombs.Observe(p, key, nil, raw)
		n++
		return nil
	})
	if err != nil {
		return 0, err
	}
	trees.mu.Lock()
	trees.parts = fresh.parts
	trees.mu.Unlock()
	tombs.mu.Lock()
	tombs.keys = freshTombs.keys
	tombs.mu.Unlock()
	return n, nil
}

// Root returns the root of a partition (0 when this node stores nothing
// of it).
func (t *Trees) Root(p uint32) uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if tr := t.parts[p]; tr != nil {
		return tr.root
	}
	return 0
}

// Roots returns the roots of the given partitions, in order.
func (t *Trees) Roots(ps []uint32) []uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]uint64, len(ps))
	for i, p := range ps {
		if tr := t.parts[p]; tr != nil {
			out[i] = tr.root
		}
	}
	return out
}

// Mids returns a partition's mid-level hashes.
func (t *Trees) Mids(p uint32) [midCount]uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if tr := t.parts[p]; tr != nil {
		return tr.mid
	}
	return [midCount]uint64{}
}

// Leaves returns the leaf hashes under one mid node of a partition.
func (t *Trees) Leaves(p uint32, mid int) [fanout]uint64 {
	var out [fanout]uint64
	t.mu.RLock()
	defer t.mu.RUnlock()
	if tr := t.parts[p]; tr != nil {
		copy(out[:], tr.leaf[mid*fanout:(mid+1)*fanout])
	}
	return out
}
