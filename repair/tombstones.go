package repair

import (
	"sync"

	"github.com/dotkv/dotkv/storage"
	"github.com/dotkv/dotkv/versioning"
)

// Tombstones indexes the records that hold only tombstones: the
// candidates for collection. It is kept up to date by the record observer
// and rebuilt at start, so collection never scans the whole store.
type Tombstones struct {
	mu   sync.Mutex
	keys map[tombKey]struct{}
}

type tombKey struct {
	p   uint32
	key string
}

// NewTombstones returns an empty index.
func NewTombstones() *Tombstones { return &Tombstones{keys: map[tombKey]struct{}{}} }

// Observe updates the index for a record change (a storage.RecordObserver).
func (t *Tombstones) Observe(p uint32, key, _, cur []byte) {
	k := tombKey{p, string(key)}
	only := cur != nil && tombstonesOnly(cur)
	t.mu.Lock()
	defer t.mu.Unlock()
	if only {
		t.keys[k] = struct{}{}
	} else {
		delete(t.keys, k)
	}
}

// Len returns how many tombstone-only records the node holds.
func (t *Tombstones) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.keys)
}

func (t *Tombstones) snapshot(limit int) []tombKey {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]tombKey, 0, min(limit, len(t.keys)))
	for k := range t.keys {
		if len(out) == limit {
			break
		}
		out = append(out, k)
	}
	return out
}

func tombstonesOnly(raw []byte) bool {
	st, err := versioning.DecodeState(raw)
	return err == nil && len(st.Siblings) > 0 && st.Deleted()
}

// Rebuild recomputes trees and the tombstone index from the store in one
// scan, returning how many records it read. Nothing may write meanwhile.
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
