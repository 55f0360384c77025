package versioning

import (
	"testing"
)

// TestRandomHistories is a model checker: random histories of blind
// writes, reads, writes with a (possibly stale) read context or with the
// context a previous write returned (AddDot), tombstones, and
// anti-entropy syncs over 2–5 replicas. After every operation the touched
// replica's siblings must equal the reference model's maximal set exactly,
// and its context must cover exactly the dots the model says it knows.
// Histories end by syncing everyone with everyone; all replicas must then
// be Equal and hold the model's maximal set over all writes.
func TestRandomHistories(t *testing.T) {
	histories, nops := 400, 50
	if testing.Short() {
		histories = 100
	}
	totalWrites, maxSiblings := 0, 0
	ops := map[string]int{}
	for h := range histories {
		seed := uint64(1000 + h)
		s := runHistory(t, seed, nops)
		totalWrites += len(s.sibs)
		maxSiblings = max(maxSiblings, len(s.states[0].Siblings))
		for k, n := range s.ops {
			ops[k] += n
		}
		// No dot is ever issued twice within a key's history.
		seen := map[Dot]bool{}
		for _, sib := range s.sibs {
			if seen[sib.Dot] {
				t.Fatalf("seed %d: dot %v issued twice", seed, sib.Dot)
			}
			seen[sib.Dot] = true
		}
	}
	t.Logf("%d histories, %d writes, up to %d siblings after convergence; ops: %v", histories, totalWrites, maxSiblings, ops)
	for _, k := range []string{"blind write", "read+write", "read", "write with an earlier read", "write with a write's context", "sync", "tombstone"} {
		if ops[k] < 100 {
			t.Errorf("op %q ran only %d times", k, ops[k])
		}
	}
	if maxSiblings < 2 {
		t.Fatalf("histories never produced concurrent siblings; the generator is too tame")
	}
}

// TestRandomHistoriesLong runs fewer, longer histories so that sibling
// sets and contexts grow larger than in the short ones.
func TestRandomHistoriesLong(t *testing.T) {
	n := 20
	if testing.Short() {
		n = 5
	}
	for h := range n {
		runHistory(t, uint64(50_000+h), 300)
	}
}
