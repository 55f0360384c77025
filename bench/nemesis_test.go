package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// connected reports whether a and b can talk under blocks (blocks are
// symmetric for every shape).
func connected(blocks [][]int, a, b int) bool {
	return a == b || (!slices.Contains(blocks[a], b) && !slices.Contains(blocks[b], a))
}

func TestPartitionShapes(t *testing.T) {
	for k := 3; k <= 9; k++ {
		perm := rand.New(rand.NewPCG(uint64(k), 1)).Perm(k)
		for _, f := range []string{"partition-halves", "isolate-one", "bridge", "majority-ring"} {
			blocks, sides := partitionShape(f, perm)
			for a := range k {
				for _, b := range blocks[a] {
					if !slices.Contains(blocks[b], a) {
						t.Fatalf("%s k=%d: %d blocks %d but not the other way", f, k, a, b)
					}
				}
			}
			switch f {
			case "partition-halves", "isolate-one":
				if len(sides) != 2 || len(sides[0])+len(sides[1]) != k {
					t.Fatalf("%s k=%d: sides %v", f, k, sides)
				}
				for _, a := range sides[0] {
					for _, b := range sides[1] {
						if connected(blocks, a, b) {
							t.Fatalf("%s k=%d: %d and %d on different sides can talk", f, k, a, b)
						}
					}
					for _, b := range sides[0] {
						if !connected(blocks, a, b) {
							t.Fatalf("%s k=%d: %d and %d on one side cannot talk", f, k, a, b)
						}
					}
				}
				if f == "isolate-one" && len(sides[0]) != 1 {
					t.Fatalf("isolate-one k=%d isolated %v", k, sides[0])
				}
			case "bridge":
				bridge := perm[k/2]
				for x := range k {
					if !connected(blocks, bridge, x) {
						t.Fatalf("bridge k=%d: the bridge %d cannot reach %d", k, bridge, x)
					}
				}
				if connected(blocks, sides[0][0], sides[1][0]) && k > 3 {
					t.Fatalf("bridge k=%d: the halves can talk directly", k)
				}
			case "majority-ring":
				majority := k/2 + 1
				seen := map[string]bool{}
				for a := range k {
					var view []int
					for b := range k {
						if connected(blocks, a, b) {
							view = append(view, b)
						}
					}
					if len(view) < majority {
						t.Fatalf("majority-ring k=%d: node %d sees %d nodes, not a majority", k, a, len(view))
					}
					key := ""
					for _, v := range view {
						key += string(rune('a' + v))
					}
					if k >= 5 && seen[key] {
						t.Fatalf("majority-ring k=%d: two nodes see the same majority %v", k, view)
					}
					seen[key] = true
				}
			}
		}
	}
}

func TestParseMix(t *testing.T) {
	m, err := ParseMix("r:50, w:45,d:5")
	if err != nil || m != (Mix{50, 45, 5}) {
		t.Fatalf("ParseMix = %+v, %v", m, err)
	}
	for _, bad := range []string{"", "r:0,w:0", "x:5", "r:-1", "r50"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted", bad)
		}
	}
}
