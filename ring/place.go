package ring

import (
	"math/bits"
	"slices"
)

// The capacity factor c is capNum/capDen: no member is a primary of more
// than ceil(c·N·Q/S) partitions. It is a ratio of integers, not a float64,
// so that every node computes the same capacity on every architecture.
//
// c trades balance against movement. Measured over S = 3..32, Q = 1024,
// N = 3 and 40 ID sets (worst max/mean replica load; worst replicas moved
// by a join over the newcomer's fair share N·Q/(S+1)):
//
//	c     max/mean  join/ideal
//	1.03  1.04      1.38
//	1.05  1.06      1.33
//	1.06  1.07      1.28
//	1.08  1.09      1.25
//	1.10  1.11      1.21  (over the 1.10 target of docs/design.md §3.4)
//
// 1.06 keeps a margin under both limits (1.10 and 1.5).
const (
	capNum = 106
	capDen = 100
)

// capacity returns ceil(c·slots/s), in int64 arithmetic so that 32-bit
// platforms agree with 64-bit ones.
func capacity(slots, s int) int32 {
	num, den := int64(capNum)*int64(slots), int64(capDen)*int64(s)
	return int32((num + den - 1) / den)
}

// score is the rendezvous (HRW) score of a member, given by its seed (the
// hash of its ID), for partition p: the splitmix64 output at p+1 of the
// stream seeded by the member. Mixing here, rather than hashing ID and
// partition together, makes scores uniform even under an injected test hash
// that is not, and hashes each ID once instead of Q times.
func score(seed uint64, p uint32) uint64 {
	x := seed + uint64(p+1)*0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// placement is place's result, in member indices.
type placement struct {
	// prefs holds Q rows of S: row p is partition p's preference list,
	// the N primaries first (the coordinator, then by descending score),
	// then every other member by descending score.
	prefs []int32
	// overfull is the number of primaries, and of coordinators, placed
	// past their bound. Zero in every case measured; see place.
	overfull int
}

// place assigns every partition N of the S members (seeds[i] is member i's
// hash) and orders the rest. See the package comment for the method and why.
//
// It runs in O(S·Q): one bucket sort of the S·Q (partition, member) pairs
// by score, then linear passes over that order.
func place(seeds []uint64, q, n int) placement {
	s := len(seeds)
	scores := make([]uint64, s*q) // pair id p·S+i → score of member i for partition p
	for p := range q {
		row := scores[p*s : (p+1)*s]
		for i, seed := range seeds {
			row[i] = score(seed, uint32(p))
		}
	}
	order := byScoreDesc(scores)
	us := uint32(s)

	// Primaries: walk all pairs from the highest score down, and take a
	// pair if its partition still needs a replica and its member is under
	// capacity. The result is the stable assignment of the bounded-load
	// problem: no member and partition both prefer each other (score) to
	// what they got.
	limit := capacity(n*q, s)
	load := make([]int32, s)
	count := make([]int32, q)
	prim := make([]int32, q*n)       // row p: partition p's primaries, in the order taken
	chosen := make([]uint32, 0, q*n) // the pairs taken, by descending score
	for _, id := range order {
		p, i := id/us, int32(id%us)
		if int(count[p]) < n && load[i] < limit {
			prim[int(p)*n+int(count[p])] = i
			count[p]++
			load[i]++
			if chosen = append(chosen, id); len(chosen) == q*n {
				break
			}
		}
	}

	// rank row p: every member by descending score for partition p. The
	// global order visits each partition's pairs in that order.
	rank := make([]int32, s*q)
	filled := make([]int32, q)
	for _, id := range order {
		p := id / us
		rank[int(p)*s+int(filled[p])] = int32(id % us)
		filled[p]++
	}

	// A partition is left short only if every member outside it is at
	// capacity. With real hashes and the slack c leaves, that never
	// happened in any measured ring, but colliding member hashes can do it,
	// so fill such slots past the capacity with the least-loaded member
	// (the best-ranked of those).
	pl := placement{prefs: make([]int32, s*q)}
	for p := range q {
		for int(count[p]) < n {
			best := int32(-1)
			for _, i := range rank[p*s : (p+1)*s] {
				if (best < 0 || load[i] < load[best]) && !containsIdx(prim[p*n:p*n+int(count[p])], i) {
					best = i
				}
			}
			prim[p*n+int(count[p])] = best
			count[p]++
			load[best]++
			pl.overfull++
		}
	}

	leader, over := coordinators(prim, chosen, q, n, s)
	pl.overfull += over

	// Preference lists: coordinator, other primaries, then the fallbacks,
	// each group by descending score.
	mark := make([]int32, s) // mark[i] == p+1: member i is a primary of p
	for p := range q {
		for _, i := range prim[p*n : (p+1)*n] {
			mark[i] = int32(p + 1)
		}
		out := pl.prefs[p*s : (p+1)*s]
		out[0] = leader[p]
		k, f := 1, n
		for _, i := range rank[p*s : (p+1)*s] {
			switch {
			case i == leader[p]:
			case mark[i] == int32(p+1):
				out[k] = i
				k++
			default:
				out[f] = i
				f++
			}
		}
	}
	return pl
}

// coordinators picks each partition's preferred coordinator among its
// primaries (prim, Q rows of N), spreading coordination as evenly as
// replication: no member coordinates more than ceil(c·Q/S) partitions.
//
// It walks the chosen (partition, member) pairs from the highest score
// down, as place does, and takes a pair if the partition has no
// coordinator yet and the member is under the bound. With only N
// candidates per partition that greedy strands a few partitions, all of
// whose primaries are at the bound (up to 13 of 1024 at S = 32, which
// would put a member at 1.2× the mean). Each stranded partition is then
// given one by an augmenting path, as in bipartite matching: a breadth-
// first search through "member m, a primary of p, hands a partition it
// coordinates to another of that partition's primaries" to a member
// under the bound. Only if no such path exists does the partition take
// its least-loaded primary.
func coordinators(prim []int32, chosen []uint32, q, n, s int) (leader []int32, over int) {
	limit := capacity(q, s)
	leads := make([]int32, s)
	leader = make([]int32, q)
	for p := range leader {
		leader[p] = -1
	}
	for _, id := range chosen {
		p, i := id/uint32(s), int32(id%uint32(s))
		if leader[p] < 0 && leads[i] < limit {
			leader[p] = i
			leads[i]++
		}
	}
	if !slices.Contains(leader, -1) {
		return leader, 0
	}

	// owns[off[i]:off[i+1]]: the partitions member i is a primary of.
	off := make([]int32, s+1)
	for _, i := range prim {
		off[i+1]++
	}
	for i := range s {
		off[i+1] += off[i]
	}
	owns := make([]int32, len(prim))
	fill := slices.Clone(off[:s])
	for k, i := range prim {
		owns[fill[i]] = int32(k / n)
		fill[i]++
	}

	// The search reached partition p from partition parent[p], one of
	// whose primaries, via[p], coordinates p. parent[p] == -1: not reached.
	parent, via := make([]int32, q), make([]int32, q)
	queue := make([]int32, 0, q)
	for p0 := range q {
		if leader[p0] >= 0 {
			continue
		}
		for p := range parent {
			parent[p] = -1
		}
		parent[p0] = int32(p0) // the root
		queue = append(queue[:0], int32(p0))
		found := false
		for h := 0; h < len(queue) && !found; h++ {
			p := int(queue[h])
			for _, m := range prim[p*n : (p+1)*n] {
				if m == leader[p] {
					continue
				}
				if leads[m] < limit {
					// Augment: m takes p; each partition on the path back
					// passes its coordinator down towards p0.
					leads[m]++
					for cur, next := p, m; ; {
						leader[cur] = next
						if cur == p0 {
							break
						}
						cur, next = int(parent[cur]), via[cur]
					}
					found = true
					break
				}
				for _, p2 := range owns[off[m]:off[m+1]] {
					if leader[p2] == m && parent[p2] < 0 {
						parent[p2], via[p2] = int32(p), m
						queue = append(queue, p2)
					}
				}
			}
		}
		if !found {
			best := prim[p0*n]
			for _, i := range prim[p0*n+1 : (p0+1)*n] {
				if leads[i] < leads[best] {
					best = i
				}
			}
			leader[p0] = best
			leads[best]++
			over++
		}
	}
	return leader, over
}

func containsIdx(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// byScoreDesc returns the pair ids 0..len(scores)-1 ordered by descending
// score, equal scores by ascending id. It is a bucket sort on the top bits
// of the score, about one pair per bucket, then an insertion sort within
// each bucket: linear time for uniform scores, where a comparison sort of
// the 65,536 pairs of a 64-member ring took several times longer.
func byScoreDesc(scores []uint64) []uint32 {
	b := min(max(bits.Len(uint(len(scores))), 1), 20)
	shift := 64 - b
	key := func(id uint32) uint64 { return ^scores[id] } // ascending key = descending score
	start := make([]int32, 1<<b+1)
	for id := range scores {
		start[key(uint32(id))>>shift+1]++
	}
	for k := 1; k < len(start); k++ {
		start[k] += start[k-1]
	}
	next := make([]int32, 1<<b)
	copy(next, start)
	order := make([]uint32, len(scores))
	for id := range scores {
		k := key(uint32(id)) >> shift
		order[next[k]] = uint32(id)
		next[k]++
	}
	// Ids enter each bucket ascending, and the insertion sort is stable.
	for k := 0; k < 1<<b; k++ {
		bucket := order[start[k]:start[k+1]]
		for j := 1; j < len(bucket); j++ {
			id := bucket[j]
			v := key(id)
			m := j
			for ; m > 0 && key(bucket[m-1]) > v; m-- {
				bucket[m] = bucket[m-1]
			}
			bucket[m] = id
		}
	}
	return order
}
