package ring

import "slices"

// View is the ownership a node routes requests by: the current ring and,
// while a membership change is in progress, the target ring and which of
// the target's new owners have received their partitions. It is an
// immutable value, like Ring, and safe for concurrent use.
//
// For each partition:
//   - Readers are the current owners that hold its data: the current
//     ring's primaries, minus nodes that are gone (removed or replaced) and
//     nodes that are still receiving the partition (a node whose data
//     directory was wiped is both a current owner and a receiver). Reads
//     are answered by readers only, so a node without the data never says
//     "not found".
//   - Primaries (the write owners) are the readers followed by the
//     target's owners still receiving the partition: a write goes to both,
//     and Extra of its acknowledgements must come on top of what its level
//     asks of the readers (Cassandra's pending replicas), so that it
//     counts only when its future owners hold it too.
//   - Once every receiver of a partition has it, the partition has
//     switched: its readers and primaries are the target ring's.
//
// Epoch numbers views: it only grows as membership changes, and requests
// between nodes carry it, so that a node whose view is newer can refuse a
// write for a partition it no longer owns ("not owner").
type View struct {
	epoch  uint64
	change string
	cur    *Ring
	next   *Ring // nil when no change is in progress
	gone   []string

	readers, writers, fallbacks [][]string // per partition; nil rows: cur's
	extra                       []uint8
	receiving                   [][]string
	members                     []string
	owned                       map[string][]uint32
}

// Stable returns the view of a ring with no change in progress.
func Stable(r *Ring, epoch uint64) *View {
	return NewView(r, nil, epoch, "", nil, nil, nil)
}

// NewView builds the view of a change from cur to next (nil: none).
// change names the change (receivers report progress under that name).
// received(p, node) reports whether node has received partition p in this
// change; fresh lists nodes that are owners in cur but lost their data (a
// wiped node rejoining under its own ID), which receive every partition
// they own; gone lists nodes that are removed or replaced, which neither
// answer reads nor take writes.
func NewView(cur, next *Ring, epoch uint64, change string, received func(p uint32, node string) bool, fresh, gone []string) *View {
	v := &View{epoch: epoch, change: change, cur: cur, next: next, gone: slices.Clone(gone)}
	q := cur.Partitions()
	changing := next != nil || len(fresh) > 0 || len(gone) > 0
	if next == nil {
		next = cur
	}
	if changing {
		v.readers = make([][]string, q)
		v.writers = make([][]string, q)
		v.fallbacks = make([][]string, q)
		v.extra = make([]uint8, q)
		v.receiving = make([][]string, q)
	}
	if !changing {
		v.members = cur.Members()
		return v // every row is cur's
	}
	seen := map[string]bool{}
	for _, m := range cur.Members() {
		seen[m] = true
	}
	for _, m := range next.Members() {
		seen[m] = true
	}
	for m := range seen {
		if !slices.Contains(gone, m) {
			v.members = append(v.members, m)
		}
	}
	slices.Sort(v.members)
	v.owned = make(map[string][]uint32, len(v.members))
	for p := range uint32(q) {
		v.plan(p, cur, next, received, fresh)
		for _, m := range v.Primaries(p) {
			v.owned[m] = append(v.owned[m], p)
		}
	}
	return v
}

// plan fills partition p's rows.
func (v *View) plan(p uint32, cur, next *Ring, received func(uint32, string) bool, fresh []string) {
	isGone := func(m string) bool { return slices.Contains(v.gone, m) }
	cp := cur.Primaries(p)
	var recv []string
	for _, m := range next.Primaries(p) {
		if isGone(m) || (slices.Contains(cp, m) && !slices.Contains(fresh, m)) {
			continue
		}
		if received == nil || !received(p, m) {
			recv = append(recv, m)
		}
	}
	v.receiving[p] = recv
	if len(recv) == 0 { // switched (or never moved)
		v.readers[p] = slices.DeleteFunc(slices.Clone(next.Primaries(p)), isGone)
		v.writers[p] = v.readers[p]
		v.fallbacks[p] = slices.DeleteFunc(slices.Clone(next.Fallbacks(p)), isGone)
		return
	}
	readers := slices.DeleteFunc(slices.Clone(cp), func(m string) bool { return isGone(m) || slices.Contains(recv, m) })
	writers := slices.Clone(readers)
	for _, m := range recv {
		if !slices.Contains(cp, m) {
			v.extra[p]++
		}
		writers = append(writers, m)
	}
	var fb []string
	for _, m := range next.PreferenceList(p) {
		if !slices.Contains(writers, m) && !isGone(m) {
			fb = append(fb, m)
		}
	}
	for _, m := range cur.Fallbacks(p) {
		if !slices.Contains(writers, m) && !slices.Contains(fb, m) && !isGone(m) {
			fb = append(fb, m)
		}
	}
	v.readers[p], v.writers[p], v.fallbacks[p] = readers, writers, fb
}

// Epoch returns the view's number; a later view of the same cluster has a
// larger one.
func (v *View) Epoch() uint64 { return v.epoch }

// Change names the membership change in progress ("" when none).
func (v *View) Change() string { return v.change }

// Changing reports whether a membership change is in progress.
func (v *View) Changing() bool { return v.receiving != nil }

// Current returns the current ring; Target the ring the change leads to
// (the current one when none is in progress).
func (v *View) Current() *Ring { return v.cur }

// Target returns the ring the change in progress leads to, or the current
// one.
func (v *View) Target() *Ring {
	if v.next == nil {
		return v.cur
	}
	return v.next
}

// Partitions returns Q.
func (v *View) Partitions() int { return v.cur.Partitions() }

// PartitionOf returns the partition of a key.
func (v *View) PartitionOf(key []byte) uint32 { return v.cur.PartitionOf(key) }

// N returns the current ring's replication factor.
func (v *View) N() int { return v.cur.N() }

// Members returns every node of the current and target rings that is not
// gone, sorted.
func (v *View) Members() []string { return v.members }

// Primaries returns p's write owners: its readers, then the nodes still
// receiving it. The slice must not be modified.
func (v *View) Primaries(p uint32) []string {
	if v.writers == nil || int(p) >= len(v.writers) {
		return v.cur.Primaries(p)
	}
	return v.writers[p]
}

// Readers returns the owners of p that hold its data and answer reads.
// The slice must not be modified.
func (v *View) Readers(p uint32) []string {
	if v.readers == nil || int(p) >= len(v.readers) {
		return v.cur.Primaries(p)
	}
	return v.readers[p]
}

// Fallbacks returns the nodes that stand in for p's unreachable owners,
// in order. The slice must not be modified.
func (v *View) Fallbacks(p uint32) []string {
	if v.fallbacks == nil || int(p) >= len(v.fallbacks) {
		return v.cur.Fallbacks(p)
	}
	return v.fallbacks[p]
}

// Extra returns how many acknowledgements a write of p needs on top of
// what its level asks: the receivers of p that are not current owners.
func (v *View) Extra(p uint32) int {
	if v.extra == nil || int(p) >= len(v.extra) {
		return 0
	}
	return int(v.extra[p])
}

// Receiving returns the nodes still receiving p in the change in
// progress. The slice must not be modified.
func (v *View) Receiving(p uint32) []string {
	if v.receiving == nil || int(p) >= len(v.receiving) {
		return nil
	}
	return v.receiving[p]
}

// Moving reports whether p's owners are changing (some node is still
// receiving it).
func (v *View) Moving(p uint32) bool { return len(v.Receiving(p)) > 0 }

// IsPrimary reports whether node is a write owner of p.
func (v *View) IsPrimary(p uint32, node string) bool {
	return slices.Contains(v.Primaries(p), node)
}

// IsReader reports whether node answers reads of p.
func (v *View) IsReader(p uint32, node string) bool {
	return slices.Contains(v.Readers(p), node)
}

// Owned returns the partitions node is a write owner of, ascending. The
// slice must not be modified.
func (v *View) Owned(node string) []uint32 {
	if v.owned == nil {
		return v.cur.Owned(node)
	}
	return v.owned[node]
}

// Gone reports whether node was removed or replaced in this change.
func (v *View) Gone(node string) bool { return slices.Contains(v.gone, node) }
