package ring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"
)

// The placement targets of docs/design.md §3.4, for N = 3 and Q = 1024.
const (
	testQ       = 1024
	testN       = 3
	maxLoadRate = 1.10 // max/mean replica load, S = 3..32
	maxMoveRate = 1.3  // replicas moved by one join or leave / N·Q/(S+1)
)

// idSet is a list of member IDs; a cluster of S members is its first S.
type idSet struct {
	name string
	ids  []string
}

func testIDSets() []idSet {
	const size = 65
	sets := []idSet{{name: "n1..", ids: names(size)}}
	var addrs []string
	for i := range size {
		addrs = append(addrs, fmt.Sprintf("10.0.%d.%d:7946", i/8, 10+i%8))
	}
	sets = append(sets, idSet{"addresses", addrs})
	for seed := range uint64(3) {
		rng := rand.New(rand.NewPCG(seed, 99))
		seen := map[string]bool{}
		var ids []string
		for len(ids) < size {
			const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-"
			b := make([]byte, 4+rng.IntN(13))
			for i := range b {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
			if !seen[string(b)] {
				seen[string(b)] = true
				ids = append(ids, string(b))
			}
		}
		sets = append(sets, idSet{"random-" + strconv.FormatUint(seed, 10), ids})
	}
	return sets
}

// ringCache shares rings between the balance, movement and table tests:
// builds dominate their run time under -race.
var ringCache = map[string]*Ring{}

func cachedRing(t testing.TB, set idSet, s int) *Ring {
	k := set.name + "/" + strconv.Itoa(s)
	if r, ok := ringCache[k]; ok {
		return r
	}
	r := mustNew(t, set.ids[:s], testQ, testN)
	ringCache[k] = r
	return r
}

// loads returns how many partitions each member is a primary of, and how
// many it is the first primary (preferred coordinator) of.
func loads(r *Ring) (replicas, coordinators []int) {
	for _, m := range r.Members() {
		replicas = append(replicas, len(r.Owned(m)))
	}
	coord := map[string]int{}
	for p := range uint32(r.Partitions()) {
		coord[r.Primaries(p)[0]]++
	}
	for _, m := range r.Members() {
		coordinators = append(coordinators, coord[m])
	}
	return replicas, coordinators
}

func maxOverMean(r *Ring) float64 {
	l, _ := loads(r)
	return float64(slices.Max(l)) * float64(len(l)) / float64(r.N()*r.Partitions())
}

// moved counts the (partition, replica) slots whose member changed from a
// to b: for each partition, the primaries of b that were not primaries in a.
func moved(a, b *Ring) int {
	m := 0
	for p := range uint32(a.Partitions()) {
		for _, node := range b.Primaries(p) {
			if !a.IsPrimary(p, node) {
				m++
			}
		}
	}
	return m
}

// idealMove is the fair share of the member that joins an S-member
// cluster (or leaves an S+1-member one): N·Q/(S+1).
func idealMove(s int) float64 { return float64(testN*testQ) / float64(s+1) }

func TestReplicaLoadIsBalanced(t *testing.T) {
	worst, worstAt := 0.0, ""
	for _, set := range testIDSets() {
		for s := 3; s <= 32; s++ {
			r := cachedRing(t, set, s)
			if r.overfull != 0 {
				t.Errorf("%s, S=%d: %d primaries or coordinators placed past their bound", set.name, s, r.overfull)
			}
			if got := maxOverMean(r); got > maxLoadRate {
				t.Errorf("%s, S=%d: max/mean replica load %.3f > %.2f", set.name, s, got, maxLoadRate)
			} else if got > worst {
				worst, worstAt = got, fmt.Sprintf("%s, S=%d", set.name, s)
			}
		}
	}
	t.Logf("worst max/mean replica load %.3f (%s)", worst, worstAt)
}

// TestCoordinatorsAreSpread: the first primary of each partition, which
// coordinates its requests, is as evenly spread as the replicas.
func TestCoordinatorsAreSpread(t *testing.T) {
	worst := 0.0
	for _, set := range testIDSets() {
		for s := 3; s <= 32; s++ {
			r := cachedRing(t, set, s)
			_, c := loads(r)
			got := float64(slices.Max(c)) * float64(s) / testQ
			if got > maxLoadRate {
				t.Errorf("%s, S=%d: max/mean coordinated partitions %.3f > %.2f", set.name, s, got, maxLoadRate)
			}
			worst = max(worst, got)
		}
	}
	t.Logf("worst max/mean coordinated partitions %.3f", worst)
}

func TestJoinAndLeaveMoveLittle(t *testing.T) {
	worstJoin, worstLeave := 0.0, 0.0
	for k, set := range testIDSets() {
		rng := rand.New(rand.NewPCG(uint64(k), 5))
		for s := 3; s <= 31; s++ {
			small, big := cachedRing(t, set, s), cachedRing(t, set, s+1)
			ideal := idealMove(s)
			join := float64(moved(small, big)) / ideal
			if join > maxMoveRate {
				t.Errorf("%s: join %d → %d moves %.2f× the ideal %.0f replicas", set.name, s, s+1, join, ideal)
			}
			// The newest member leaves (the join undone), then, in two
			// of the sets, a random one.
			leavers := map[string]*Ring{set.ids[s]: small}
			if k < 2 {
				i := rng.IntN(s + 1)
				leavers[set.ids[i]] = mustNew(t, slices.Concat(set.ids[:i], set.ids[i+1:s+1]), testQ, testN)
			}
			leave := 0.0
			for id, after := range leavers {
				rate := float64(moved(big, after)) / ideal
				if rate > maxMoveRate {
					t.Errorf("%s: %q leaving %d → %d moves %.2f× the ideal %.0f replicas", set.name, id, s+1, s, rate, ideal)
				}
				leave = max(leave, rate)
			}
			worstJoin, worstLeave = max(worstJoin, join), max(worstLeave, leave)
		}
	}
	t.Logf("worst moved / ideal: join %.3f, leave %.3f", worstJoin, worstLeave)
}

// TestPlacementTable logs, for a few cluster sizes, the balance and
// movement figures the package comment quotes (worst over the ID sets),
// and the time to build a ring (inflated by -race and invariant checks).
func TestPlacementTable(t *testing.T) {
	sizes := []int{3, 5, 10, 32}
	if !testing.Short() {
		sizes = append(sizes, 64)
	}
	t.Logf("Q=%d N=%d; worst over %d ID sets of each figure", testQ, testN, len(testIDSets()))
	t.Logf("%4s %9s %9s %11s %13s %7s %12s %12s %10s", "S", "max/mean", "min/mean", "coord max/m", "join moved", "ideal", "join/ideal", "leave/ideal", "build")
	for _, s := range sizes {
		maxM, minM, coordM, joinMoved, join, leave := 0.0, 2.0, 0.0, 0, 0.0, 0.0
		for _, set := range testIDSets() {
			r, next := cachedRing(t, set, s), cachedRing(t, set, s+1)
			l, c := loads(r)
			mean := float64(testN*testQ) / float64(s)
			maxM = max(maxM, float64(slices.Max(l))/mean)
			minM = min(minM, float64(slices.Min(l))/mean)
			coordM = max(coordM, float64(slices.Max(c))*float64(s)/testQ)
			j := moved(r, next)
			joinMoved = max(joinMoved, j)
			join = max(join, float64(j)/idealMove(s))
			leave = max(leave, float64(moved(next, r))/idealMove(s))
		}
		ids := testIDSets()[0].ids[:s]
		build := time.Duration(1 << 62)
		for range 5 {
			start := time.Now()
			mustNew(t, ids, testQ, testN)
			build = min(build, time.Since(start))
		}
		t.Logf("%4d %9.3f %9.3f %11.3f %13d %7.0f %12.3f %12.3f %10v", s, maxM, minM, coordM, joinMoved, idealMove(s), join, leave, build.Round(time.Microsecond))
	}
}

// BenchmarkNew times a ring build and reports its balance and the
// movement of the next join, for the "n1.." IDs.
func BenchmarkNew(b *testing.B) {
	set := testIDSets()[0]
	for _, s := range []int{3, 5, 10, 32, 64} {
		b.Run(fmt.Sprintf("S=%d", s), func(b *testing.B) {
			var r *Ring
			for b.Loop() {
				r = mustNew(b, set.ids[:s], testQ, testN)
			}
			next := mustNew(b, set.ids[:s+1], testQ, testN)
			b.ReportMetric(maxOverMean(r), "max/mean")
			b.ReportMetric(float64(moved(r, next))/idealMove(s), "joinmoved/ideal")
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	r := mustNew(b, names(32), testQ, testN)
	key := []byte("user:42")
	for b.Loop() {
		p := r.PartitionOf(key)
		sinkStrings = r.PreferenceList(p)
		sinkBool = r.IsPrimary(p, "n17")
	}
}
