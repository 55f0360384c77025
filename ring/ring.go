package ring

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// ErrBadMembers is wrapped by New when the member list is empty or holds
// an empty or repeated ID.
var ErrBadMembers = errors.New("invalid member set")

// Ring is the placement of Q partitions on a set of members: for each
// partition a preference list holding every member once, the first N of
// them the partition's primaries (replicas), the first primary its
// preferred coordinator, and the rest its fallbacks in order.
//
// A Ring is an immutable value, a function of the member set, q, n and the
// hash alone: every node that knows the same members builds the same ring,
// whatever the order it learnt them in. It is rebuilt on membership change
// (join, leave, remove), never on failure. It is safe for concurrent use.
//
// Lookups do not allocate: the slices they return are views of the Ring's
// own storage and must not be modified (appending to them is safe).
type Ring struct {
	part    Partitioner
	hash    func([]byte) uint64 // nil: xxhash, called directly
	n       int
	members []string         // sorted by token (the ID unless replaced)
	byName  []string         // the same IDs, sorted
	tokens  []string         // tokens[i]: members[i]'s placement token
	index   map[string]int32 // member → position in members
	prefs   []string         // Q rows of len(members)
	owned   [][]uint32       // by member index, ascending
	// overfull counts the primaries and coordinators placed past their
	// bounds; zero unless member hashes collide (see place).
	overfull int
}

// New builds the ring for the given member IDs (any order, at least one,
// no duplicates), q partitions (a power of two) and replication factor n
// (at least 1; capped at the number of members). Keys and member IDs are
// hashed with xxhash.
func New(members []string, q, n int) (*Ring, error) {
	return build(members, q, n, nil, nil)
}

// NewWithTokens is New where a member may be placed under another name,
// its token: token(id) returns it ("" or id: the member's own ID). A node
// that replaces another takes the old one's token, and so exactly the
// partitions the old one had. Tokens must be distinct.
func NewWithTokens(members []string, token func(id string) string, q, n int) (*Ring, error) {
	return build(members, q, n, nil, token)
}

// NewWithHash is New with an injected 64-bit hash, used both for keys
// (PartitionOf) and for member IDs. A nil hash means xxhash.
func NewWithHash(members []string, q, n int, hash func([]byte) uint64) (*Ring, error) {
	return build(members, q, n, hash, nil)
}

func build(members []string, q, n int, hash func([]byte) uint64, token func(string) string) (*Ring, error) {
	part, err := NewPartitioner(q)
	if err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("ring: replication factor %d is below 1", n)
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("ring: no members: %w", ErrBadMembers)
	}
	// Pair ids p·S+i must fit in a uint32.
	if uint64(len(members))*uint64(q) > 1<<31 {
		return nil, fmt.Errorf("ring: %d members × %d partitions is too large", len(members), q)
	}
	sorted := slices.Clone(members)
	slices.Sort(sorted)
	for i, id := range sorted {
		if id == "" {
			return nil, fmt.Errorf("ring: empty member ID: %w", ErrBadMembers)
		}
		if i > 0 && sorted[i-1] == id {
			return nil, fmt.Errorf("ring: duplicate member %q: %w", id, ErrBadMembers)
		}
	}
	s := len(sorted)
	tokens := make([]string, s)
	for i, id := range sorted {
		tokens[i] = id
		if token != nil && token(id) != "" {
			tokens[i] = token(id)
		}
	}
	// Place by token: a member's position (which breaks score ties) and
	// seed come from its token, so a replacement lands where its
	// predecessor was.
	byToken := make([]int, s)
	for i := range byToken {
		byToken[i] = i
	}
	slices.SortFunc(byToken, func(a, b int) int { return strings.Compare(tokens[a], tokens[b]) })
	r := &Ring{
		part:    part,
		hash:    hash,
		n:       min(n, s),
		members: make([]string, s),
		byName:  sorted[:s:s],
		tokens:  make([]string, s),
		index:   make(map[string]int32, s),
	}
	seeds := make([]uint64, s)
	for i, k := range byToken {
		id, tok := sorted[k], tokens[k]
		if i > 0 && r.tokens[i-1] == tok {
			return nil, fmt.Errorf("ring: token %q used twice: %w", tok, ErrBadMembers)
		}
		r.members[i], r.tokens[i] = id, tok
		r.index[id] = int32(i)
		if hash == nil {
			seeds[i] = xxhash.Sum64String(tok)
		} else {
			seeds[i] = hash([]byte(tok))
		}
	}

	pl := place(seeds, q, r.n)
	r.overfull = pl.overfull
	r.prefs = make([]string, len(pl.prefs))
	for k, i := range pl.prefs {
		r.prefs[k] = r.members[i]
	}
	load := make([]int, s)
	for p := range q {
		for _, i := range pl.prefs[p*s : p*s+r.n] {
			load[i]++
		}
	}
	backing := make([]uint32, q*r.n)
	r.owned = make([][]uint32, s)
	off := 0
	for i, l := range load {
		r.owned[i] = backing[off : off : off+l]
		off += l
	}
	for p := range q {
		for _, i := range pl.prefs[p*s : p*s+r.n] {
			r.owned[i] = append(r.owned[i], uint32(p))
		}
	}

	if invariantsEnabled {
		if err := r.check(); err != nil {
			panic("ring invariant broken: " + err.Error())
		}
	}
	return r, nil
}

// Members returns the member IDs, sorted.
func (r *Ring) Members() []string { return r.byName }

// Token returns the placement token of member id (its own ID unless it
// replaced another node), or "" if id is not a member.
func (r *Ring) Token(id string) string {
	i, ok := r.index[id]
	if !ok {
		return ""
	}
	return r.tokens[i]
}

// Partitions returns Q.
func (r *Ring) Partitions() int { return r.part.Partitions() }

// N returns the effective replication factor: min(n, number of members).
func (r *Ring) N() int { return r.n }

// PartitionOf returns the partition of a key. It does not allocate, but
// the compiler sees key escape (an injected hash could keep it): pass a
// slice the caller already holds rather than a fresh []byte(s).
func (r *Ring) PartitionOf(key []byte) uint32 {
	if r.hash == nil {
		return r.part.OfKey(key)
	}
	return r.part.Of(r.hash(key))
}

// row returns partition p's preference list, or nil if p ≥ Q: a
// partition number from the network or from stored records must not crash
// a node.
func (r *Ring) row(p uint32) []string {
	s := len(r.members)
	lo := int(p) * s
	if lo+s > len(r.prefs) {
		return nil
	}
	return r.prefs[lo : lo+s : lo+s]
}

// Primaries returns the N distinct members that replicate partition p
// (none if p ≥ Q). The first is the preferred coordinator; the rest
// follow by descending HRW score. The slice must not be modified.
func (r *Ring) Primaries(p uint32) []string {
	row := r.row(p)
	if row == nil {
		return nil
	}
	return row[:r.n:r.n]
}

// Fallbacks returns every member that is not a primary of p, by
// descending HRW score for p: the order in which they stand in for
// unreachable primaries. The slice must not be modified.
func (r *Ring) Fallbacks(p uint32) []string {
	row := r.row(p)
	if row == nil {
		return nil
	}
	return row[r.n:]
}

// PreferenceList returns Primaries(p) followed by Fallbacks(p): every
// member exactly once. The slice must not be modified.
func (r *Ring) PreferenceList(p uint32) []string { return r.row(p) }

// IsPrimary reports whether node is one of partition p's primaries.
func (r *Ring) IsPrimary(p uint32, node string) bool {
	for _, m := range r.Primaries(p) {
		if m == node {
			return true
		}
	}
	return false
}

// Owned returns the partitions node is a primary of, ascending, or nil if
// node is not a member. The slice must not be modified.
func (r *Ring) Owned(node string) []uint32 {
	i, ok := r.index[node]
	if !ok {
		return nil
	}
	return r.owned[i]
}

// check verifies the ring's invariants: every preference list holds every
// member once, Owned agrees with Primaries, and (unless the placement
// reported otherwise) no member replicates or coordinates more partitions
// than its bound.
func (r *Ring) check() error {
	s, q := len(r.members), r.Partitions()
	if !slices.IsSorted(r.tokens) || !slices.IsSorted(r.byName) || len(r.prefs) != s*q || r.n < 1 || r.n > s {
		return fmt.Errorf("ring: malformed: %d members, %d entries, N=%d", s, len(r.prefs), r.n)
	}
	seen := make([]uint32, s) // seen[i] == p+1: member i listed for p
	load, leads := make([]int, s), make([]int, s)
	for p := range uint32(q) {
		for k, m := range r.PreferenceList(p) {
			i, ok := r.index[m]
			switch {
			case !ok:
				return fmt.Errorf("ring: partition %d lists non-member %q", p, m)
			case seen[i] == p+1:
				return fmt.Errorf("ring: partition %d lists %q twice", p, m)
			}
			seen[i] = p + 1
			if k < r.n {
				load[i]++
			}
			if k == 0 {
				leads[i]++
			}
		}
	}
	limit, leadLimit := int(capacity(r.n*q, s)), int(capacity(q, s))
	for i, m := range r.members {
		o := r.owned[i]
		if len(o) != load[i] || !slices.IsSorted(o) {
			return fmt.Errorf("ring: Owned(%q) has %d partitions, want %d ascending", m, len(o), load[i])
		}
		for _, p := range o {
			if !r.IsPrimary(p, m) {
				return fmt.Errorf("ring: Owned(%q) holds %d, which it is not a primary of", m, p)
			}
		}
		if r.overfull == 0 && load[i] > limit {
			return fmt.Errorf("ring: %q is a primary of %d partitions, over the capacity %d", m, load[i], limit)
		}
		if r.overfull == 0 && leads[i] > leadLimit {
			return fmt.Errorf("ring: %q coordinates %d partitions, over the bound %d", m, leads[i], leadLimit)
		}
	}
	return nil
}
