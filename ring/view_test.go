package ring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestViewNeverLeavesAPartitionShortOfOwners: for random clusters, every
// kind of change (join, leave, remove, replace, a wiped member rejoining)
// and every stage of its transfers (no partition received, some, all),
// each partition keeps at least min(N, members) write owners and at
// least one reader; readers never include a node still receiving the
// partition or one that is gone; the extra acks are the receivers that
// are not current owners; and once everything is received the view is
// the target ring's, minus the gone.
func TestViewNeverLeavesAPartitionShortOfOwners(t *testing.T) {
	const q, n = 64, 3
	rng := rand.New(rand.NewPCG(7, 11))
	kinds := []string{"join", "leave", "remove", "replace", "wiped"}
	for round := range 60 {
		s := 1 + rng.IntN(9) // 1..9 members before the change
		ids := names(s + 1)
		curIDs := ids[:s]
		kind := kinds[round%len(kinds)]
		if s == 1 {
			kind = "join" // a lone member can't leave, be removed or be refilled
		}
		x := curIDs[rng.IntN(s)]
		var nextIDs, fresh, gone []string
		tokens := map[string]string{}
		switch kind {
		case "join":
			nextIDs = ids[:s+1]
		case "leave", "remove":
			nextIDs = slices.DeleteFunc(slices.Clone(curIDs), func(m string) bool { return m == x })
			if kind == "remove" {
				gone = []string{x}
			}
		case "replace":
			y := "new-" + x
			nextIDs = append(slices.DeleteFunc(slices.Clone(curIDs), func(m string) bool { return m == x }), y)
			tokens[y] = x
			gone = []string{x}
		case "wiped":
			nextIDs, fresh = curIDs, []string{x}
		}
		token := func(id string) string {
			if t, ok := tokens[id]; ok {
				return t
			}
			return id
		}
		cur, err := NewWithTokens(curIDs, token, q, n)
		if err != nil {
			t.Fatal(err)
		}
		next, err := NewWithTokens(nextIDs, token, q, n)
		if err != nil {
			t.Fatal(err)
		}
		want := min(n, len(nextIDs))
		for _, share := range []float64{0, 0.5, 1} {
			name := fmt.Sprintf("round %d: %s %s, %d → %d members, %.0f%% received", round, kind, x, s, len(nextIDs), share*100)
			received := map[[2]string]bool{}
			recv := func(p uint32, node string) bool {
				k := [2]string{fmt.Sprint(p), node}
				if _, ok := received[k]; !ok {
					received[k] = rng.Float64() < share
				}
				return received[k]
			}
			v := NewView(cur, next, uint64(round+1), kind, recv, fresh, gone)
			if v.Epoch() != uint64(round+1) || v.Change() != kind {
				t.Fatalf("%s: epoch %d change %q", name, v.Epoch(), v.Change())
			}
			for p := range uint32(q) {
				readers, writers, receiving := v.Readers(p), v.Primaries(p), v.Receiving(p)
				if len(writers) < want {
					t.Fatalf("%s: partition %d has %d write owners %v, want ≥ %d", name, p, len(writers), writers, want)
				}
				if len(readers) == 0 {
					t.Fatalf("%s: partition %d has no reader (writers %v)", name, p, writers)
				}
				extra := 0
				for _, m := range receiving {
					if slices.Contains(readers, m) {
						t.Fatalf("%s: partition %d: %s reads while it receives", name, p, m)
					}
					if !slices.Contains(writers, m) {
						t.Fatalf("%s: partition %d: receiver %s takes no writes", name, p, m)
					}
					if !slices.Contains(cur.Primaries(p), m) {
						extra++
					}
				}
				if v.Extra(p) != extra {
					t.Fatalf("%s: partition %d: extra %d, want %d", name, p, v.Extra(p), extra)
				}
				for _, g := range gone {
					if slices.Contains(writers, g) || slices.Contains(v.Fallbacks(p), g) {
						t.Fatalf("%s: partition %d: gone %s still owns or stands in", name, p, g)
					}
				}
				if len(receiving) == 0 {
					target := slices.DeleteFunc(slices.Clone(next.Primaries(p)), func(m string) bool { return slices.Contains(gone, m) })
					if !slices.Equal(readers, target) || !slices.Equal(writers, target) {
						t.Fatalf("%s: partition %d switched to readers %v writers %v, want %v", name, p, readers, writers, target)
					}
				}
				if share == 1 && len(receiving) > 0 {
					t.Fatalf("%s: partition %d still receiving %v with everything received", name, p, receiving)
				}
			}
		}
	}
}

// TestOutOfRangePartitionHasNoOwners: a partition number past Q (from the
// network or a stored record) has no owners, in a ring and in a view of a
// change, instead of crashing the node that looks it up.
func TestOutOfRangePartitionHasNoOwners(t *testing.T) {
	cur := mustNew(t, names(3), 64, 3)
	next := mustNew(t, names(4), 64, 3)
	for _, p := range []uint32{64, 1000, 1<<32 - 1} {
		if got := cur.Primaries(p); got != nil {
			t.Fatalf("ring: primaries of partition %d = %v", p, got)
		}
		if got := cur.Fallbacks(p); got != nil {
			t.Fatalf("ring: fallbacks of partition %d = %v", p, got)
		}
		for _, v := range []*View{Stable(cur, 1), NewView(cur, next, 2, "join", nil, nil, nil)} {
			if v.Primaries(p) != nil || v.Readers(p) != nil || v.Fallbacks(p) != nil || v.Receiving(p) != nil || v.Extra(p) != 0 || v.IsPrimary(p, "n1") {
				t.Fatalf("view %q: partition %d has owners", v.Change(), p)
			}
		}
	}
}
