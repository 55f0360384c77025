package repair

import (
	"sync"

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
