package ring

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func names(s int) []string {
	ids := make([]string, s)
	for i := range ids {
		ids[i] = "n" + strconv.Itoa(i+1)
	}
	return ids
}

// randomIDs returns s distinct non-empty IDs of random bytes.
func randomIDs(rng *rand.Rand, s int) []string {
	seen := map[string]bool{}
	var ids []string
	for len(ids) < s {
		b := make([]byte, 1+rng.IntN(20))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		if id := string(b); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

func mustNew(t testing.TB, members []string, q, n int) *Ring {
	t.Helper()
	r, err := New(members, q, n)
	if err != nil {
		t.Fatalf("New(%d members, q=%d, n=%d): %v", len(members), q, n, err)
	}
	return r
}

func TestNewRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name       string
		members    []string
		q, n       int
		badMembers bool // the error must wrap ErrBadMembers
	}{
		{"no members", nil, 1024, 3, true},
		{"empty ID", []string{"a", ""}, 1024, 3, true},
		{"duplicate", []string{"a", "b", "a"}, 1024, 3, true},
		{"n = 0", []string{"a"}, 1024, 0, false},
		{"q not a power of two", []string{"a"}, 1000, 3, false},
		{"q = 0", []string{"a"}, 0, 3, false},
	} {
		_, err := New(tc.members, tc.q, tc.n)
		if err == nil {
			t.Errorf("%s: want an error", tc.name)
			continue
		}
		if got := errors.Is(err, ErrBadMembers); got != tc.badMembers {
			t.Errorf("%s: errors.Is(%v, ErrBadMembers) = %v, want %v", tc.name, err, got, tc.badMembers)
		}
	}
}

func TestSingleMemberOwnsEverything(t *testing.T) {
	r := mustNew(t, []string{"solo"}, 64, 3)
	if r.N() != 1 {
		t.Fatalf("N = %d, want 1 (capped at the member count)", r.N())
	}
	for p := range uint32(64) {
		if got := r.Primaries(p); !slices.Equal(got, []string{"solo"}) {
			t.Fatalf("Primaries(%d) = %v", p, got)
		}
		if got := r.Fallbacks(p); len(got) != 0 {
			t.Fatalf("Fallbacks(%d) = %v, want none", p, got)
		}
	}
	if got := len(r.Owned("solo")); got != 64 {
		t.Fatalf("Owned(solo) has %d partitions, want 64", got)
	}
	if r.Owned("other") != nil {
		t.Fatal("Owned(non-member) is not nil")
	}
}

// checkShape asserts the structural guarantees of every preference list,
// independently of Ring.check.
func checkShape(t *testing.T, r *Ring, members []string, n int) {
	t.Helper()
	want := slices.Sorted(slices.Values(members))
	if !slices.Equal(r.Members(), want) {
		t.Fatalf("Members() = %v, want %v", r.Members(), want)
	}
	wantN := min(n, len(members))
	if r.N() != wantN {
		t.Fatalf("N() = %d, want %d", r.N(), wantN)
	}
	owned := map[string][]uint32{}
	for p := range uint32(r.Partitions()) {
		prims, falls, pl := r.Primaries(p), r.Fallbacks(p), r.PreferenceList(p)
		if len(prims) != wantN {
			t.Fatalf("partition %d: %d primaries, want %d", p, len(prims), wantN)
		}
		if !slices.Equal(pl, slices.Concat(prims, falls)) {
			t.Fatalf("partition %d: PreferenceList %v != Primaries %v + Fallbacks %v", p, pl, prims, falls)
		}
		if got := slices.Sorted(slices.Values(pl)); !slices.Equal(got, want) {
			t.Fatalf("partition %d: preference list %q is not a permutation of the members", p, pl)
		}
		for k, m := range pl {
			if r.IsPrimary(p, m) != (k < wantN) {
				t.Fatalf("partition %d: IsPrimary(%q) = %v at position %d", p, m, !(k < wantN), k)
			}
			if k < wantN {
				owned[m] = append(owned[m], p)
			}
		}
		if r.IsPrimary(p, "not a member") {
			t.Fatalf("partition %d: IsPrimary(non-member)", p)
		}
	}
	for _, m := range members {
		if !slices.Equal(r.Owned(m), owned[m]) {
			t.Fatalf("Owned(%q) = %v, want %v", m, r.Owned(m), owned[m])
		}
	}
	if err := r.check(); err != nil {
		t.Fatal(err)
	}
}

// TestRingIsAFunctionOfTheMemberSet builds rings from random member sets
// of 1 to 64 random IDs given in several orders: every order must give the
// same preference list for every partition, and every list must have the
// required shape.
func TestRingIsAFunctionOfTheMemberSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	for round := range rounds {
		s := 1 + rng.IntN(64)
		if round == 0 {
			s = 64
		}
		q := 1 << rng.IntN(11) // 1..1024
		n := 1 + rng.IntN(5)
		ids := randomIDs(rng, s)
		r := mustNew(t, ids, q, n)
		checkShape(t, r, ids, n)
		for range 2 {
			shuffled := slices.Clone(ids)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			r2 := mustNew(t, shuffled, q, n)
			for p := range uint32(q) {
				if a, b := r.PreferenceList(p), r2.PreferenceList(p); !slices.Equal(a, b) {
					t.Fatalf("round %d (S=%d, q=%d, n=%d): partition %d: %q in one order, %q in another", round, s, q, n, p, a, b)
				}
			}
		}
	}
}

// TestPlacementIsStable checks the defining property of the bounded-load
// greedy (place): no member and partition both prefer each other to what
// they got. If a member outscores one of a partition's primaries there, it
// must be at capacity with partitions it scores at least as high on.
// It also checks the order of the primaries after the coordinator and of
// the fallbacks (descending score).
func TestPlacementIsStable(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range []int{2, 3, 4, 5, 7, 10, 16, 32, 50} {
		for _, ids := range [][]string{names(s), randomIDs(rng, s)} {
			const q, n = 1024, 3
			r := mustNew(t, ids, q, n)
			sc := func(m string, p uint32) uint64 { return score(xxhash.Sum64String(m), p) }
			limit := int(capacity(r.N()*q, s))
			for p := range uint32(q) {
				prims := r.Primaries(p)
				weakest := sc(prims[0], p)
				for _, m := range prims[1:] {
					weakest = min(weakest, sc(m, p))
				}
				for _, desc := range [][]string{prims[1:], r.Fallbacks(p)} {
					for k := 1; k < len(desc); k++ {
						if sc(desc[k-1], p) < sc(desc[k], p) {
							t.Fatalf("S=%d partition %d: %q before %q, which scores higher", s, p, desc[k-1], desc[k])
						}
					}
				}
				for _, m := range r.Fallbacks(p) {
					v := sc(m, p)
					if v < weakest {
						continue
					}
					owned := r.Owned(m)
					if len(owned) < limit {
						t.Fatalf("S=%d partition %d: %q outscores a primary and has spare capacity (%d < %d)", s, p, m, len(owned), limit)
					}
					for _, o := range owned {
						if sc(m, o) < v {
							t.Fatalf("S=%d: %q holds partition %d but prefers partition %d, whose weakest primary it outscores", s, m, o, p)
						}
					}
				}
			}
		}
	}
}

func TestCheckCatchesBrokenRings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		want    string // in the error
		corrupt func(r *Ring)
	}{
		{"repeated member", "twice", func(r *Ring) { r.prefs[1] = r.prefs[0] }},
		{"non-member", "non-member", func(r *Ring) { r.prefs[2] = "stranger" }},
		{"Owned disagrees", "Owned", func(r *Ring) { r.owned[0] = r.owned[0][1:] }},
		{"over capacity", "capacity", func(r *Ring) {
			// Hand a's places to b wherever b is only a fallback.
			s := len(r.members)
			for p := range r.Partitions() {
				row := r.prefs[p*s : (p+1)*s]
				ia, ib := slices.Index(row, "a"), slices.Index(row, "b")
				if ia < r.n && ib >= r.n {
					row[ia], row[ib] = row[ib], row[ia]
				}
			}
			r.owned[0], r.owned[1] = nil, nil
			for p := range uint32(r.Partitions()) {
				for i, m := range r.members[:2] {
					if r.IsPrimary(p, m) {
						r.owned[i] = append(r.owned[i], p)
					}
				}
			}
		}},
	} {
		r := mustNew(t, []string{"a", "b", "c", "d", "e"}, 64, 3)
		if err := r.check(); err != nil {
			t.Fatalf("%s: before breaking: %v", tc.name, err)
		}
		tc.corrupt(r)
		if err := r.check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: check() = %v, want an error about %q", tc.name, err, tc.want)
		}
	}
}

// predictableHash reads a key as a decimal number, so a test can place a
// key in the partition of its choice; anything else hashes to 0.
func predictableHash(b []byte) uint64 {
	v, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

func TestInjectedHash(t *testing.T) {
	const q = 1024
	// Member IDs all hash to 0 here: every score ties, and ties must still
	// give a valid, balanced, order-independent ring.
	ids := names(7)
	r, err := NewWithHash(ids, q, 3, predictableHash)
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, r, ids, 3)
	t.Logf("constant member hash: %d of %d slots placed past the capacity, max/mean load %.3f", r.overfull, q*3, maxOverMean(r))
	reversed := slices.Clone(ids)
	slices.Reverse(reversed)
	r2, _ := NewWithHash(reversed, q, 3, predictableHash)
	for p := range uint32(q) {
		if !slices.Equal(r.PreferenceList(p), r2.PreferenceList(p)) {
			t.Fatalf("partition %d differs by member order under a constant hash", p)
		}
	}
	for _, p := range []uint32{0, 1, 7, 512, q - 1} {
		key := strconv.FormatUint(uint64(p)<<54, 10) // partition = hash >> (64 - log2 q)
		if got := r.PartitionOf([]byte(key)); got != p {
			t.Errorf("PartitionOf(%s) = %d, want %d", key, got, p)
		}
	}

	// New is NewWithHash(xxhash), for keys and members alike.
	a := mustNew(t, names(10), q, 3)
	b, _ := NewWithHash(names(10), q, 3, xxhash.Sum64)
	part, _ := NewPartitioner(q)
	for p := range uint32(q) {
		if !slices.Equal(a.PreferenceList(p), b.PreferenceList(p)) {
			t.Fatalf("partition %d: New and NewWithHash(xxhash.Sum64) differ", p)
		}
	}
	for i := range 1000 {
		k := []byte(fmt.Sprint("key-", i))
		if a.PartitionOf(k) != part.OfKey(k) || b.PartitionOf(k) != part.OfKey(k) {
			t.Fatalf("PartitionOf(%s) disagrees with the Partitioner", k)
		}
	}
}

var (
	sinkStrings []string
	sinkBool    bool
	sinkParts   []uint32
	sinkP       uint32
)

func TestLookupsDoNotAllocate(t *testing.T) {
	r := mustNew(t, names(32), 1024, 3)
	key := []byte("user:42")
	allocs := testing.AllocsPerRun(100, func() {
		p := r.PartitionOf(key)
		sinkP = p
		sinkStrings = r.Primaries(p)
		sinkStrings = r.Fallbacks(p)
		sinkStrings = r.PreferenceList(p)
		sinkBool = r.IsPrimary(p, "n17")
		sinkParts = r.Owned("n17")
		sinkStrings = r.Members()
	})
	if allocs != 0 {
		t.Fatalf("lookups allocate %.1f times per run, want 0", allocs)
	}
}

// Appending to a returned slice must not write into the ring.
func TestReturnedSlicesAreCapped(t *testing.T) {
	r := mustNew(t, names(5), 16, 3)
	before := slices.Clone(r.prefs)
	for p := range uint32(16) {
		_ = append(r.Primaries(p), "x")
		_ = append(r.PreferenceList(p), "x")
	}
	for _, m := range r.Members() {
		_ = append(r.Owned(m), 99)
	}
	_ = append(r.Members(), "x")
	if !slices.Equal(r.prefs, before) {
		t.Fatal("append through a returned slice changed the ring")
	}
	if err := r.check(); err != nil {
		t.Fatal(err)
	}
}

// TestCoordinatorAugmentingPath: members 0, 1, 2 (A, B, C), five
// partitions of two primaries, at most ceil(1.06·5/3) = 2 coordinated
// partitions each. The greedy gives A partitions 0 and 1 and B partitions
// 2 and 3, which strands partition 4 = {A, B}; the repair must hand
// partition 0 to C so that A can take 4.
func TestCoordinatorAugmentingPath(t *testing.T) {
	const a, b, c = 0, 1, 2
	prim := []int32{a, c, a, c, b, c, b, c, a, b}
	pair := func(p, m uint32) uint32 { return p*3 + m }
	chosen := []uint32{pair(0, a), pair(1, a), pair(2, b), pair(3, b), pair(4, a), pair(4, b), pair(0, c), pair(1, c), pair(2, c), pair(3, c)}
	leader, over := coordinators(prim, chosen, 5, 2, 3)
	if want := []int32{c, a, b, b, a}; !slices.Equal(leader, want) || over != 0 {
		t.Fatalf("coordinators = %v (%d over the bound), want %v (0)", leader, over, want)
	}
}
