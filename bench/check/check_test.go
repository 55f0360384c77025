package check

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dotkv/dotkv/bench/history"
)

// ckHist builds hand-made histories; times are given in milliseconds.
type ckHist struct{ ops []history.Op }

const ckMs = int64(time.Millisecond)

func (h *ckHist) add(o history.Op) int {
	o.Index = len(h.ops)
	h.ops = append(h.ops, o)
	return o.Index
}

func (h *ckHist) write(key, val string, start, end int64, outcome string, covers ...string) int {
	return h.add(history.Op{Kind: history.OpWrite, Key: key, Value: val, Start: start * ckMs, End: end * ckMs,
		Outcome: outcome, Covers: covers, Status: ckStatus(outcome, 204)})
}

func (h *ckHist) del(key string, start, end int64, outcome string, covers ...string) int {
	return h.add(history.Op{Kind: history.OpDelete, Key: key, Start: start * ckMs, End: end * ckMs,
		Outcome: outcome, Covers: covers, Status: ckStatus(outcome, 204)})
}

func (h *ckHist) read(key string, start, end int64, vals ...string) int {
	st := 200
	switch len(vals) {
	case 0:
		st = 404
	case 1:
	default:
		st = 300
	}
	return h.add(history.Op{Kind: history.OpRead, Key: key, Start: start * ckMs, End: end * ckMs,
		Outcome: history.OK, Values: vals, Status: st})
}

func ckStatus(outcome string, ok int) int {
	switch outcome {
	case history.OK:
		return ok
	case history.Fail:
		return 400
	}
	return 503
}

func ckFinal(vals ...string) FinalState {
	if len(vals) == 0 {
		return FinalState{Status: 404}
	}
	if len(vals) == 1 {
		return FinalState{Status: 200, Values: vals}
	}
	return FinalState{Status: 300, Values: vals}
}

func ckHealthy(endMs int64) []history.Phase {
	return []history.Phase{{Name: "healthy", Start: 0, End: endMs * ckMs}}
}

func ckCheck(t *testing.T, r Report, name string) Check {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, r.Checks)
	return Check{}
}

func ckCounts(t *testing.T, r Report, lost, stale, invalid int) {
	t.Helper()
	if r.LostAcknowledgedWrites != lost || len(r.Lost) != lost {
		t.Errorf("lost = %d %+v, want %d", r.LostAcknowledgedWrites, r.Lost, lost)
	}
	if r.StaleReads != stale {
		t.Errorf("stale = %d %+v, want %d", r.StaleReads, r.Stale, stale)
	}
	if r.InvalidReads != invalid || len(r.Invalid) != invalid {
		t.Errorf("invalid = %d %q, want %d", r.InvalidReads, r.Invalid, invalid)
	}
}

func TestCheckerCleanHistory(t *testing.T) {
	var h ckHist
	// k1: a blind write, a read, a write with its context, a concurrent
	// blind write (two siblings), a resolution covering both.
	h.write("k1", "c1-1", 0, 10, history.OK)
	h.read("k1", 20, 30, "c1-1")
	h.write("k1", "c1-2", 40, 50, history.OK, "c1-1")
	h.write("k1", "c2-1", 45, 55, history.OK)
	h.read("k1", 60, 70, "c1-2", "c2-1")
	h.write("k1", "c1-3", 80, 90, history.OK, "c1-2", "c2-1")
	h.read("k1", 100, 110, "c1-3")
	// A read concurrent with a write may or may not see it.
	h.write("k1", "c2-2", 120, 140, history.OK, "c1-3")
	h.read("k1", 125, 130, "c1-3")
	h.read("k1", 150, 160, "c2-2")
	// k2: written then deleted; reads after see nothing.
	h.write("k2", "c3-1", 0, 10, history.OK)
	h.read("k2", 20, 30, "c3-1")
	h.del("k2", 40, 50, history.OK, "c3-1")
	h.read("k2", 60, 70)
	// k3: read only.
	h.read("k3", 0, 5)

	r := Analyze(h.ops, ckHealthy(200), Options{
		Final: map[string]FinalState{
			"k1": ckFinal("c2-2"),
			"k2": {Status: 404, Tombstones: 1},
			"k3": ckFinal(),
		},
		Strict:             true,
		ConvergenceSeconds: 1.5,
		Config:             map[string]any{"nodes": 3},
	})
	ckCounts(t, r, 0, 0, 0)
	if !r.Passed {
		t.Fatalf("not passed: %+v", r.Checks)
	}
	if len(r.Checks) != 4 {
		t.Errorf("checks = %+v, want 4", r.Checks)
	}
	for _, c := range r.Checks {
		if !c.Passed || c.Detail == "" {
			t.Errorf("check %+v", c)
		}
	}
	if r.Config["nodes"] != 3 || r.ConvergenceSeconds != 1.5 {
		t.Errorf("config %v convergence %v", r.Config, r.ConvergenceSeconds)
	}
	if r.Ops != len(h.ops) || r.OK != len(h.ops) || r.Failed != 0 {
		t.Errorf("ops %d ok %d failed %d", r.Ops, r.OK, r.Failed)
	}
}

func TestCheckerLostWrite(t *testing.T) {
	var h ckHist
	h.write("k1", "c1-1", 0, 10, history.OK)
	lost := h.write("k1", "c2-1", 5, 15, history.OK) // a concurrent sibling
	h.read("k1", 20, 30, "c1-1", "c2-1")
	h.write("k2", "c3-1", 0, 10, history.OK)

	r := Analyze(h.ops, ckHealthy(100), Options{
		Final: map[string]FinalState{"k1": ckFinal("c1-1"), "k2": ckFinal("c3-1")},
	})
	ckCounts(t, r, 1, 0, 0)
	if len(r.Lost) == 1 && r.Lost[0] != (LostWrite{Key: "k1", Value: "c2-1", Op: lost}) {
		t.Errorf("lost = %+v", r.Lost[0])
	}
	if r.Passed || ckCheck(t, r, CheckLost).Passed {
		t.Errorf("passed with a lost write: %+v", r.Checks)
	}
	if d := ckCheck(t, r, CheckLost).Detail; !strings.Contains(d, "1 of 3") {
		t.Errorf("detail %q", d)
	}
}

func TestCheckerLostWriteNoFinalState(t *testing.T) {
	var h ckHist
	h.write("k1", "c1-1", 0, 10, history.OK)
	h.write("k2", "c1-2", 0, 10, history.OK)
	r := Analyze(h.ops, nil, Options{
		Final: map[string]FinalState{"k1": {Status: 503}}, // k2 missing
	})
	ckCounts(t, r, 0, 0, 0)
	c := ckCheck(t, r, CheckLost)
	if c.Passed || r.Passed || !strings.Contains(c.Detail, "k1, k2") {
		t.Errorf("check %+v", c)
	}
}

func TestCheckerSupersededWrites(t *testing.T) {
	t.Run("direct", func(t *testing.T) {
		var h ckHist
		h.write("k", "c1-1", 0, 10, history.OK)
		h.read("k", 20, 30, "c1-1")
		h.write("k", "c2-1", 40, 50, history.OK, "c1-1")
		r := Analyze(h.ops, nil, Options{Final: map[string]FinalState{"k": ckFinal("c2-1")}})
		ckCounts(t, r, 0, 0, 0)
		if !r.Passed {
			t.Errorf("checks %+v", r.Checks)
		}
	})
	t.Run("chain", func(t *testing.T) {
		var h ckHist
		h.write("k", "c1-1", 0, 10, history.OK)
		h.read("k", 20, 30, "c1-1")
		// The middle write's outcome is unknown, yet it was applied: its
		// value was read and covered.
		h.write("k", "c2-1", 40, 50, history.Info, "c1-1")
		h.read("k", 60, 70, "c2-1")
		h.write("k", "c3-1", 80, 90, history.OK, "c2-1")
		r := Analyze(h.ops, nil, Options{Final: map[string]FinalState{"k": ckFinal("c3-1")}})
		ckCounts(t, r, 0, 0, 0)
		// Without the link W2 -> W1, W1 is lost.
		h.ops[2].Covers = nil
		r = Analyze(h.ops, nil, Options{Final: map[string]FinalState{"k": ckFinal("c3-1")}})
		ckCounts(t, r, 1, 0, 0)
	})
	t.Run("own context", func(t *testing.T) {
		// A client reusing the context its PUT returned covers its own write.
		var h ckHist
		h.write("k", "c1-1", 0, 10, history.OK)
		h.write("k", "c1-2", 20, 30, history.OK, "c1-1")
		h.write("k", "c1-3", 40, 50, history.OK, "c1-2")
		r := Analyze(h.ops, nil, Options{Final: map[string]FinalState{"k": ckFinal("c1-3")}})
		ckCounts(t, r, 0, 0, 0)
	})
	for _, outcome := range []string{history.OK, history.Info} {
		t.Run("delete "+outcome, func(t *testing.T) {
			var h ckHist
			h.write("k", "c1-1", 0, 10, history.OK)
			h.read("k", 20, 30, "c1-1")
			h.del("k", 40, 50, outcome, "c1-1")
			for _, f := range []FinalState{ckFinal(), {Status: 404, Tombstones: 1}} {
				r := Analyze(h.ops, nil, Options{Final: map[string]FinalState{"k": f}})
				ckCounts(t, r, 0, 0, 0)
			}
			// The tombstone superseded it, and a later write superseded the
			// tombstone (its read saw no values).
			h.read("k", 60, 70)
			h.write("k", "c2-1", 80, 90, history.OK)
			r := Analyze(h.ops, nil, Options{Final: map[string]FinalState{"k": ckFinal("c2-1")}})
			ckCounts(t, r, 0, 0, 0)
		})
	}
	t.Run("failed delete", func(t *testing.T) {
		var h ckHist
		h.write("k", "c1-1", 0, 10, history.OK)
		h.del("k", 40, 50, history.Fail, "c1-1")
		r := Analyze(h.ops, nil, Options{Final: map[string]FinalState{"k": ckFinal()}})
		ckCounts(t, r, 1, 0, 0)
	})
}

func TestCheckerIndeterminateWrites(t *testing.T) {
	var h ckHist
	h.write("k", "c1-1", 0, 10, history.Fail)
	h.write("k", "c2-1", 0, 10, history.Info)
	h.write("k", "c3-1", 0, 10, history.OK)
	for _, final := range []FinalState{ckFinal("c3-1"), ckFinal("c2-1", "c3-1"), ckFinal("c1-1", "c2-1", "c3-1")} {
		r := Analyze(h.ops, nil, Options{Final: map[string]FinalState{"k": final}})
		ckCounts(t, r, 0, 0, 0)
		if !r.Passed {
			t.Errorf("final %v: checks %+v", final, r.Checks)
		}
		if r.Failed != 2 || r.OK != 1 {
			t.Errorf("failed %d ok %d", r.Failed, r.OK)
		}
	}
}

func TestCheckerStaleReads(t *testing.T) {
	// W1 then W2 (covering W1), both acknowledged; R starts after W2 ended
	// and returns W1's value.
	base := func() (*ckHist, int, int) {
		h := &ckHist{}
		h.write("k", "c1-1", 0, 10, history.OK)
		h.read("k", 12, 18, "c1-1")
		w := h.write("k", "c1-2", 20, 30, history.OK, "c1-1")
		r := h.read("k", 40, 50, "c1-1")
		return h, w, r
	}
	final := map[string]FinalState{"k": ckFinal("c1-2")}

	t.Run("strict healthy", func(t *testing.T) {
		h, w, rd := base()
		r := Analyze(h.ops, ckHealthy(100), Options{Final: final, Strict: true})
		ckCounts(t, r, 0, 1, 0)
		if len(r.Stale) == 1 && r.Stale[0] != (StaleRead{Key: "k", ReadOp: rd, WriteOp: w, Missing: "c1-2"}) {
			t.Errorf("stale = %+v", r.Stale[0])
		}
		if c := ckCheck(t, r, CheckStale); c.Passed || r.Passed {
			t.Errorf("check %+v", c)
		}
	})
	t.Run("no phases", func(t *testing.T) {
		h, _, _ := base()
		r := Analyze(h.ops, nil, Options{Final: final, Strict: true})
		ckCounts(t, r, 0, 1, 0)
	})
	t.Run("write in fault phase, read healthy", func(t *testing.T) {
		h, _, _ := base()
		phases := []history.Phase{
			{Name: "partition", Fault: true, Start: 0, End: 35 * ckMs},
			{Name: "healed", Start: 35 * ckMs, End: 100 * ckMs},
		}
		r := Analyze(h.ops, phases, Options{Final: final, Strict: true})
		ckCounts(t, r, 0, 1, 0)
	})
	t.Run("read in fault phase", func(t *testing.T) {
		h, _, _ := base()
		phases := []history.Phase{
			{Name: "healthy", Start: 0, End: 35 * ckMs},
			{Name: "partition", Fault: true, Start: 35 * ckMs, End: 100 * ckMs},
		}
		r := Analyze(h.ops, phases, Options{Final: final, Strict: true})
		ckCounts(t, r, 0, 0, 0)
	})
	t.Run("not strict", func(t *testing.T) {
		h, _, _ := base()
		r := Analyze(h.ops, ckHealthy(100), Options{Final: final, ConvergenceSeconds: 0})
		ckCounts(t, r, 0, 0, 0)
		for _, c := range r.Checks {
			if c.Name == CheckStale {
				t.Errorf("stale check without Strict")
			}
		}
		if !r.Passed {
			t.Errorf("checks %+v", r.Checks)
		}
	})
	t.Run("read concurrent with the write", func(t *testing.T) {
		h, _, rd := base()
		h.ops[rd].Start = 25 * ckMs
		r := Analyze(h.ops, ckHealthy(100), Options{Final: final, Strict: true})
		ckCounts(t, r, 0, 0, 0)
	})
	for _, outcome := range []string{history.OK, history.Info} {
		t.Run("concurrent superseding write "+outcome, func(t *testing.T) {
			// W3 covers W2 and starts before R ended: R may have missed W2.
			h, _, _ := base()
			h.write("k", "c2-1", 45, 60, outcome, "c1-2")
			r := Analyze(h.ops, ckHealthy(100), Options{
				Final: map[string]FinalState{"k": ckFinal("c2-1")}, Strict: true})
			ckCounts(t, r, 0, 0, 0)
		})
	}
	t.Run("concurrent superseding delete", func(t *testing.T) {
		h, _, _ := base()
		h.del("k", 45, 60, history.Info, "c1-2")
		r := Analyze(h.ops, ckHealthy(100), Options{Final: map[string]FinalState{"k": ckFinal()}, Strict: true})
		ckCounts(t, r, 0, 0, 0)
	})
	t.Run("failed superseding write", func(t *testing.T) {
		h, _, _ := base()
		h.write("k", "c2-1", 45, 60, history.Fail, "c1-2")
		r := Analyze(h.ops, ckHealthy(100), Options{Final: final, Strict: true})
		ckCounts(t, r, 0, 1, 0)
	})
	t.Run("superseding write started after the read", func(t *testing.T) {
		h, _, _ := base()
		h.write("k", "c2-1", 55, 60, history.OK, "c1-2")
		r := Analyze(h.ops, ckHealthy(100), Options{
			Final: map[string]FinalState{"k": ckFinal("c2-1")}, Strict: true})
		ckCounts(t, r, 0, 1, 0)
	})
	t.Run("read returns a successor", func(t *testing.T) {
		h, _, rd := base()
		h.write("k", "c2-1", 35, 45, history.OK, "c1-2")
		h.ops[rd].Values = []string{"c2-1"}
		r := Analyze(h.ops, ckHealthy(100), Options{
			Final: map[string]FinalState{"k": ckFinal("c2-1")}, Strict: true})
		ckCounts(t, r, 0, 0, 0)
	})
	t.Run("read returns a value whose past holds the write", func(t *testing.T) {
		// W3 does not count as a superseding write (it failed), but the
		// read returned its value, whose past holds W2.
		h, _, rd := base()
		h.write("k", "c2-1", 35, 45, history.Fail, "c1-2")
		h.ops[rd].Values = []string{"c2-1"}
		r := Analyze(h.ops, ckHealthy(100), Options{Final: final, Strict: true})
		ckCounts(t, r, 0, 0, 0)
		h.ops[rd].Values = []string{"c1-1"}
		r = Analyze(h.ops, ckHealthy(100), Options{Final: final, Strict: true})
		ckCounts(t, r, 0, 1, 0)
		if len(r.Stale) == 1 && r.Stale[0].Missing != "c1-2" {
			t.Errorf("stale %+v", r.Stale)
		}
	})
	t.Run("sibling missing", func(t *testing.T) {
		// Two concurrent blind writes, both acknowledged before the read.
		h := &ckHist{}
		h.write("k", "c1-1", 0, 10, history.OK)
		h.write("k", "c2-1", 0, 10, history.OK)
		h.read("k", 20, 30, "c1-1", "c2-1")
		h.read("k", 40, 50, "c2-1")
		h.read("k", 60, 70)
		r := Analyze(h.ops, ckHealthy(100), Options{
			Final: map[string]FinalState{"k": ckFinal("c1-1", "c2-1")}, Strict: true})
		ckCounts(t, r, 0, 2, 0)
		if len(r.Stale) != 3 {
			t.Errorf("stale pairs %+v, want 3", r.Stale)
		}
	})
}

func TestCheckerInvalidReads(t *testing.T) {
	t.Run("phantom", func(t *testing.T) {
		var h ckHist
		h.write("k", "c1-1", 0, 10, history.OK)
		h.write("j", "c9-4", 0, 10, history.OK) // another key's value
		rd := h.read("k", 20, 30, "c1-1", "c9-4")
		r := Analyze(h.ops, nil, Options{Final: map[string]FinalState{
			"k": ckFinal("c1-1"), "j": ckFinal("c9-4")}})
		ckCounts(t, r, 0, 0, 1)
		want := fmt.Sprintf("op %d key k: phantom value c9-4", rd)
		if len(r.Invalid) == 1 && r.Invalid[0] != want {
			t.Errorf("invalid %q, want %q", r.Invalid[0], want)
		}
		if c := ckCheck(t, r, CheckValidity); c.Passed || r.Passed {
			t.Errorf("check %+v", c)
		}
	})
	t.Run("phantom in final", func(t *testing.T) {
		var h ckHist
		h.write("k", "c1-1", 0, 10, history.OK)
		r := Analyze(h.ops, nil, Options{Final: map[string]FinalState{
			"k": ckFinal("c1-1", "zz"), "untouched": ckFinal("c1-1")}})
		ckCounts(t, r, 0, 0, 2)
		if len(r.Invalid) == 2 && (r.Invalid[0] != "final key k: phantom value zz" ||
			r.Invalid[1] != "final key untouched: phantom value c1-1") {
			t.Errorf("invalid %q", r.Invalid)
		}
	})
	t.Run("failed write read back", func(t *testing.T) {
		// Validity only asks that some write wrote the value.
		var h ckHist
		h.write("k", "c1-1", 0, 10, history.Info)
		h.read("k", 20, 30, "c1-1")
		r := Analyze(h.ops, nil, Options{Final: map[string]FinalState{"k": ckFinal("c1-1")}})
		ckCounts(t, r, 0, 0, 0)
	})
	deleted := func() *ckHist {
		h := &ckHist{}
		h.write("k", "c1-1", 0, 10, history.OK)
		h.read("k", 12, 18, "c1-1")
		h.write("k", "c1-2", 20, 30, history.OK, "c1-1")
		h.read("k", 32, 38, "c1-2")
		h.del("k", 40, 50, history.OK, "c1-2")
		return h
	}
	t.Run("deleted value read back", func(t *testing.T) {
		h := deleted()
		late := h.read("k", 60, 70, "c1-1") // superseded transitively
		h.read("k", 45, 55, "c1-2")         // concurrent with the delete: fine
		// Without strict quorums a replica may not know of the delete yet:
		// neither invalid nor stale.
		r := Analyze(h.ops, nil, Options{Final: map[string]FinalState{"k": ckFinal()}})
		ckCounts(t, r, 0, 0, 0)
		// With strict quorums and no fault, it is a stale read.
		r = Analyze(h.ops, nil, Options{Strict: true, Final: map[string]FinalState{"k": ckFinal()}})
		ckCounts(t, r, 0, 1, 0)
		if len(r.Stale) != 1 || r.Stale[0].ReadOp != late || r.Stale[0].WriteOp != 4 || !strings.Contains(r.Stale[0].Missing, "delete of c1-1") {
			t.Errorf("stale %+v", r.Stale)
		}
		// In a fault phase it is allowed even under strict quorums.
		faulty := []history.Phase{{Name: "partition-halves", Fault: true, Start: 0, End: 100}}
		r = Analyze(h.ops, faulty, Options{Strict: true, Final: map[string]FinalState{"k": ckFinal()}})
		ckCounts(t, r, 0, 0, 0)
	})
	t.Run("indeterminate delete does not count", func(t *testing.T) {
		h := deleted()
		h.ops[4].Outcome = history.Info
		h.read("k", 60, 70, "c1-2")
		r := Analyze(h.ops, nil, Options{Final: map[string]FinalState{"k": ckFinal("c1-2")}})
		ckCounts(t, r, 0, 0, 0)
	})
	t.Run("resurrected in final", func(t *testing.T) {
		h := deleted()
		r := Analyze(h.ops, nil, Options{Final: map[string]FinalState{"k": ckFinal("c1-2")}})
		ckCounts(t, r, 0, 0, 1)
		if len(r.Invalid) == 1 && !strings.HasPrefix(r.Invalid[0], "final key k: resurrected value c1-2 (superseded by delete op 4") {
			t.Errorf("invalid %q", r.Invalid)
		}
	})
	t.Run("superseded value in final", func(t *testing.T) {
		var h ckHist
		h.write("k", "c1-1", 0, 10, history.OK)
		h.write("k", "c1-2", 20, 30, history.OK, "c1-1")
		r := Analyze(h.ops, nil, Options{Final: map[string]FinalState{"k": ckFinal("c1-1", "c1-2")}})
		ckCounts(t, r, 0, 0, 1)
		// By an indeterminate write: it may not have been applied.
		h.ops[1].Outcome = history.Info
		r = Analyze(h.ops, nil, Options{Final: map[string]FinalState{"k": ckFinal("c1-1", "c1-2")}})
		ckCounts(t, r, 0, 0, 0)
	})
}

func ckNear(a, b float64) bool { return math.Abs(a-b) <= 0.002*math.Max(math.Abs(a), math.Abs(b))+1e-9 }

func TestCheckerPhaseStats(t *testing.T) {
	phases := []history.Phase{
		{Name: "healthy", Start: 100 * ckMs, End: 1100 * ckMs},
		{Name: "partition", Fault: true, Start: 1100 * ckMs, End: 3100 * ckMs,
			Sides: [][]string{{"n1"}, {"n2", "n3"}}},
	}
	nodes := map[string]string{"http://a/": "n1", "http://b": "n2", "http://c": "n3"}
	var ops []history.Op
	add := func(kind, node, level, outcome string, startMs, latMs int64, vals []string, tombs int) {
		ops = append(ops, history.Op{Index: len(ops), Kind: kind, Key: fmt.Sprintf("k%d", len(ops)), Node: node,
			Level: level, Outcome: outcome, Start: startMs * ckMs, End: (startMs + latMs) * ckMs,
			Values: vals, Tombstones: tombs})
	}
	// healthy: 5 OK ops (one starts before the first phase), latencies 1..5 ms.
	add(history.OpRead, "http://a", "r=2", history.OK, 50, 1, nil, 0)
	add(history.OpRead, "http://b", "r=2", history.OK, 200, 2, []string{"x"}, 0)
	add(history.OpRead, "http://c", "r=2", history.OK, 300, 3, []string{"x", "y"}, 1)
	add(history.OpRead, "http://a", "r=2", history.OK, 400, 4, []string{"x"}, 0)
	add(history.OpWrite, "http://b", "w=2", history.OK, 500, 5, nil, 0)
	// partition: n1 side 2 ops, both failed; n2,n3 side 4 ops (one starts
	// after the last phase's end), 3 OK; an op to an unknown node.
	add(history.OpWrite, "http://a", "w=2", history.Info, 1200, 1000, nil, 0)
	add(history.OpRead, "http://a", "r=2", history.Info, 1300, 1000, nil, 0)
	add(history.OpWrite, "http://b", "w=2", history.OK, 1400, 10, nil, 0)
	add(history.OpWrite, "http://c", "w=2", history.Fail, 1500, 10, nil, 0)
	add(history.OpRead, "http://c", "r=2", history.OK, 2500, 20, []string{"x"}, 0)
	add(history.OpRead, "http://b", "r=1", history.OK, 3200, 30, nil, 2)
	add(history.OpRead, "http://z", "", history.OK, 3000, 40, nil, 0)

	r := Analyze(ops, phases, Options{NodeIDs: nodes, Final: map[string]FinalState{}, ConvergenceSeconds: 2})
	if r.Ops != 12 || r.OK != 9 || r.Failed != 3 {
		t.Errorf("ops %d ok %d failed %d", r.Ops, r.OK, r.Failed)
	}
	// 9 OK over 50 ms .. 3230 ms.
	if want := 9 / 3.18; !ckNear(r.ThroughputOpsPerSec, want) {
		t.Errorf("throughput %v, want %v", r.ThroughputOpsPerSec, want)
	}
	if r.LatencyMs.Max != 40 || !ckNear(r.LatencyMs.P50, 5) {
		t.Errorf("overall latency %+v", r.LatencyMs)
	}
	if len(r.Phases) != 2 {
		t.Fatalf("phases %+v", r.Phases)
	}
	h, p := r.Phases[0], r.Phases[1]
	if h.Name != "healthy" || h.Fault || h.Start != 0.1 || h.End != 1.1 || h.Ops != 5 || h.OK != 5 {
		t.Errorf("healthy %+v", h)
	}
	if h.ThroughputOpsPerSec != 5 {
		t.Errorf("healthy throughput %v", h.ThroughputOpsPerSec)
	}
	// rank(q) = int(q/100*5 + 0.5): p50 -> 3rd, p95.. -> 5th.
	if l := h.LatencyMs; !ckNear(l.P50, 3) || !ckNear(l.P95, 5) || !ckNear(l.P99, 5) || !ckNear(l.P999, 5) || l.Max != 5 {
		t.Errorf("healthy latency %+v", l)
	}
	if h.AvailabilityBySide != nil {
		t.Errorf("healthy sides %v", h.AvailabilityBySide)
	}
	if len(h.AvailabilityByLevel) != 2 || h.AvailabilityByLevel["r=2"] != 1 || h.AvailabilityByLevel["w=2"] != 1 {
		t.Errorf("healthy levels %v", h.AvailabilityByLevel)
	}
	if p.Name != "partition" || !p.Fault || p.Ops != 7 || p.OK != 4 {
		t.Errorf("partition %+v", p)
	}
	if p.ThroughputOpsPerSec != 2 {
		t.Errorf("partition throughput %v", p.ThroughputOpsPerSec)
	}
	if l := p.LatencyMs; !ckNear(l.P50, 20) || l.Max != 40 || l.P99 != 40 {
		t.Errorf("partition latency %+v", l)
	}
	if len(p.AvailabilityBySide) != 2 || p.AvailabilityBySide["n1"] != 0 || p.AvailabilityBySide["n2,n3"] != 0.75 {
		t.Errorf("partition sides %v", p.AvailabilityBySide)
	}
	wantLv := map[string]float64{"w=2": 1.0 / 3, "r=2": 0.5, "r=1": 1, "default": 1}
	if len(p.AvailabilityByLevel) != len(wantLv) {
		t.Errorf("partition levels %v", p.AvailabilityByLevel)
	}
	for k, v := range wantLv {
		if !ckNear(p.AvailabilityByLevel[k], v) {
			t.Errorf("partition level %s = %v, want %v", k, p.AvailabilityByLevel[k], v)
		}
	}
	wantSib := map[int]int{0: 2, 1: 3, 3: 1, 2: 1}
	if fmt.Sprint(r.SiblingHistogram) != fmt.Sprint(wantSib) {
		t.Errorf("siblings %v, want %v", r.SiblingHistogram, wantSib)
	}
	// Series by completion second: 0 s: 5 ops (healthy); 1 s: 1400+10,
	// 1500+10 (2 ops, 1 OK); 2 s: 1200+1000, 1300+1000, 2500+20 (3 ops, 1 OK);
	// 3 s: 3000+40, 3200+30 (2 OK).
	want := []Bucket{
		{Second: 0, Ops: 5, OK: 5, P50: 3, P99: 5},
		{Second: 1, Ops: 2, OK: 1, P50: 10, P99: 10},
		{Second: 2, Ops: 3, OK: 1, P50: 20, P99: 20},
		{Second: 3, Ops: 2, OK: 2, P50: 30, P99: 40},
	}
	if len(r.Series) != len(want) {
		t.Fatalf("series %+v", r.Series)
	}
	for i, b := range r.Series {
		w := want[i]
		if b.Second != w.Second || b.Ops != w.Ops || b.OK != w.OK || !ckNear(b.P50, w.P50) || !ckNear(b.P99, w.P99) {
			t.Errorf("bucket %d = %+v, want %+v", i, b, w)
		}
	}
}

func TestCheckerSeriesGap(t *testing.T) {
	ops := []history.Op{
		{Index: 0, Kind: history.OpRead, Key: "k", Outcome: history.OK, Start: 0, End: 500 * ckMs},
		{Index: 1, Kind: history.OpRead, Key: "k", Outcome: history.Info, Start: 2900 * ckMs, End: 3100 * ckMs},
	}
	r := Analyze(ops, nil, Options{})
	if len(r.Series) != 4 || r.Series[1].Ops != 0 || r.Series[3].Ops != 1 || r.Series[3].OK != 0 || r.Series[0].P50 != 500 {
		t.Errorf("series %+v", r.Series)
	}
	if len(r.Phases) != 0 {
		t.Errorf("phases %+v", r.Phases)
	}
}

func TestCheckerPhaseAssignment(t *testing.T) {
	phases := []history.Phase{
		{Name: "a", Start: 100, End: 200},
		{Name: "b", Start: 200, End: 300},
		{Name: "c", Start: 400, End: 500}, // a gap before it
	}
	starts := map[int64]int{0: 0, 100: 0, 199: 0, 200: 1, 299: 1, 340: 1, 360: 2, 450: 2, 500: 2, 9999: 2}
	var ops []history.Op
	var want []int
	for st, p := range starts {
		ops = append(ops, history.Op{Start: st, End: st})
		want = append(want, p)
	}
	got := chkAssignPhases(ops, phases)
	for i := range ops {
		if got[i] != want[i] {
			t.Errorf("op starting at %d: phase %d, want %d", ops[i].Start, got[i], want[i])
		}
	}
}

func TestCheckerConvergence(t *testing.T) {
	for _, tc := range []struct {
		secs, max float64
		pass      bool
	}{
		{-1, 0, false},
		{-1, 10, false},
		{5, 3, false},
		{2, 3, true},
		{0, 0, true},
		{100, 0, true},
	} {
		r := Analyze(nil, nil, Options{ConvergenceSeconds: tc.secs, MaxConvergenceSeconds: tc.max})
		if c := ckCheck(t, r, CheckConvergence); c.Passed != tc.pass || r.Passed != tc.pass {
			t.Errorf("%v/%v: %+v passed %v", tc.secs, tc.max, c, r.Passed)
		}
	}
}

// ckSynthetic simulates a correct store under concurrent clients: each op
// takes effect at its start; reads return the siblings then; writes carry
// the context of a read at their start (or none, for blind writes);
// deletes cover everything.
func ckSynthetic(n, keys int, seed uint64) ([]history.Op, map[string]FinalState) {
	rng := rand.New(rand.NewPCG(seed, 1))
	state := map[string][]string{}
	ops := make([]history.Op, 0, n)
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("k%d", rng.IntN(keys))
		if rng.IntN(10) == 0 {
			key = "hot"
		}
		start := int64(i) * 20 * int64(time.Microsecond)
		o := history.Op{Index: i, Key: key, Client: i % 64, Outcome: history.OK, Start: start,
			End: start + int64(500+rng.IntN(3000))*int64(time.Microsecond), Node: "http://a"}
		cur := state[key]
		switch x := rng.IntN(100); {
		case x < 50:
			o.Kind, o.Values = history.OpRead, append([]string(nil), cur...)
		case x < 85:
			o.Kind, o.Value, o.Covers = history.OpWrite, fmt.Sprintf("c%d-%d", o.Client, i), append([]string(nil), cur...)
			state[key] = []string{o.Value}
		case x < 97:
			o.Kind, o.Value = history.OpWrite, fmt.Sprintf("c%d-%d", o.Client, i)
			state[key] = append(cur[:len(cur):len(cur)], o.Value)
		default:
			o.Kind, o.Covers = history.OpDelete, append([]string(nil), cur...)
			state[key] = nil
		}
		ops = append(ops, o)
	}
	final := map[string]FinalState{}
	for i := range ops {
		final[ops[i].Key] = FinalState{Status: 200, Values: state[ops[i].Key]}
	}
	return ops, final
}

func TestCheckerPerformance(t *testing.T) {
	ops, final := ckSynthetic(100_000, 1000, 7)
	phases := []history.Phase{
		{Name: "healthy", Start: 0, End: ops[len(ops)/2].Start},
		{Name: "partition-halves", Fault: true, Start: ops[len(ops)/2].Start, End: ops[len(ops)-1].End,
			Sides: [][]string{{"n1"}, {"n2", "n3"}}},
	}
	start := time.Now()
	r := Analyze(ops, phases, Options{Final: final, Strict: true,
		NodeIDs: map[string]string{"http://a": "n1"}, ConvergenceSeconds: 1})
	t.Logf("analyzed %d ops over %d keys in %v", len(ops), len(final), time.Since(start))
	ckCounts(t, r, 0, 0, 0)
	if !r.Passed {
		t.Errorf("checks %+v", r.Checks)
	}

	// The same history with one acknowledged write dropped from the final
	// state, and one read missing a value, is caught.
	byKey := map[string][]int{}
	writer := map[string]int{}
	for i := range ops {
		byKey[ops[i].Key] = append(byKey[ops[i].Key], i)
		if ops[i].Kind == history.OpWrite {
			writer[ops[i].Value] = i
		}
	}
	// Lost: a blind write among several final siblings.
	w := -1
	for key, f := range final {
		for j, v := range f.Values {
			if len(f.Values) >= 2 && len(ops[writer[v]].Covers) == 0 {
				w = writer[v]
				final[key] = FinalState{Status: 300, Values: append(append([]string(nil), f.Values[:j]...), f.Values[j+1:]...)}
				break
			}
		}
		if w >= 0 {
			break
		}
	}
	// Stale: a healthy read of one value written before it started, with
	// no other op on the key while it ran.
	rd := -1
	for i := 0; i < len(ops)/2 && rd < 0; i++ {
		o := &ops[i]
		if o.Kind != history.OpRead || len(o.Values) != 1 || o.Key == "hot" || ops[writer[o.Values[0]]].End >= o.Start {
			continue
		}
		quiet := true
		for _, j := range byKey[o.Key] {
			quiet = quiet && (j == i || ops[j].Start < o.Start || ops[j].Start > o.End)
		}
		if quiet {
			rd = i
		}
	}
	if w < 0 || rd < 0 {
		t.Fatalf("no mutation found: w %d rd %d", w, rd)
	}
	ops[rd].Values = nil
	r = Analyze(ops, phases, Options{Final: final, Strict: true, ConvergenceSeconds: 1})
	ckCounts(t, r, 1, 1, 0)
	if len(r.Lost) == 1 && r.Lost[0].Op != w {
		t.Errorf("lost %+v, want op %d", r.Lost, w)
	}
	if len(r.Stale) == 1 && r.Stale[0].ReadOp != rd {
		t.Errorf("stale %+v, want read op %d", r.Stale, rd)
	}
}

func TestAvailabilityBySideAndLevel(t *testing.T) {
	phases := []history.Phase{{Name: "partition-halves", Fault: true, Start: 0, End: 100, Sides: [][]string{{"n1"}, {"n2", "n3"}}}}
	ops := []history.Op{
		{Kind: history.OpWrite, Key: "a", Value: "c1-1", Node: "http://n1", Level: "w=1", Outcome: history.OK, Start: 1, End: 2},
		{Kind: history.OpWrite, Key: "a", Value: "c1-2", Node: "http://n1", Level: "pw=2", Outcome: history.Info, Start: 3, End: 4},
		{Kind: history.OpWrite, Key: "b", Value: "c2-1", Node: "http://n2", Level: "pw=2", Outcome: history.OK, Start: 5, End: 6},
	}
	r := Analyze(ops, phases, Options{NodeIDs: map[string]string{"http://n1": "n1", "http://n2": "n2"},
		Final: map[string]FinalState{"a": {Status: 200, Values: []string{"c1-1"}}, "b": {Status: 200, Values: []string{"c2-1"}}}})
	got := r.Phases[0].AvailabilityBySideAndLevel
	want := map[string]float64{"n1 | w=1": 1, "n1 | pw=2": 0, "n2,n3 | pw=2": 1}
	if len(got) != len(want) {
		t.Fatalf("by side and level = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q = %v, want %v", k, got[k], v)
		}
	}
}
