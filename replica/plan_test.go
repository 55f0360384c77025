package replica

import (
	"slices"
	"strings"
	"testing"
)

// slotsString renders a plan's slots as "primary→node ..." ("-" for none).
func slotsString(p *plan) string {
	var parts []string
	for _, s := range p.slots {
		node := s.node
		if node == "" {
			node = "-"
		}
		parts = append(parts, s.primary+"→"+node)
	}
	return strings.Join(parts, " ")
}

func TestPlans(t *testing.T) {
	prims := []string{"a", "b", "c"}
	fallbacks := []string{"d", "e", "self"}
	cases := []struct {
		name  string
		self  string
		dead  []string
		hints bool
		kind  string // primary | fallback | read
		slots string
		spare []string
		reach [2]int // nodes, primaries
	}{
		{"all alive", "a", nil, true, "primary", "a→a b→b c→c", []string{"d", "e", "self"}, [2]int{3, 3}},
		{"dead primary takes first fallback", "a", []string{"b"}, true, "primary", "a→a b→d c→c", []string{"e", "self"}, [2]int{3, 2}},
		{"dead fallback skipped", "a", []string{"b", "d"}, true, "primary", "a→a b→e c→c", []string{"self"}, [2]int{3, 2}},
		{"self never a spare for its own write", "self", []string{"b", "c", "d"}, true, "primary", "a→a b→e c→-", nil, [2]int{2, 1}},
		{"hints off: dead primary's slot empty", "a", []string{"b"}, false, "primary", "a→a b→- c→c", nil, [2]int{2, 2}},
		{"self is never planned dead", "a", []string{"a", "b"}, true, "primary", "a→a b→d c→c", []string{"e", "self"}, [2]int{3, 2}},
		{"fallback coordinator stands in for the first primary", "self", []string{"a", "b", "c"}, true, "fallback", "a→self b→d c→e", nil, [2]int{3, 0}},
		{"fallback coordinator, others alive", "self", []string{"a"}, true, "fallback", "a→self b→b c→c", []string{"d", "e"}, [2]int{3, 2}},
		{"a read may use self's hints", "self", []string{"a", "b"}, true, "read", "a→d b→e c→c", []string{"self"}, [2]int{3, 1}},
		{"everything dead", "x", []string{"a", "b", "c", "d", "e", "self"}, true, "read", "a→- b→- c→-", nil, [2]int{0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pl := planner{self: tc.self, dead: func(id string) bool { return slices.Contains(tc.dead, id) }, hints: tc.hints}
			var p *plan
			switch tc.kind {
			case "primary":
				p = pl.forPrimary(prims, fallbacks)
			case "fallback":
				p = pl.forFallback(prims, fallbacks)
			case "read":
				p = pl.forRead(prims, fallbacks)
			}
			if got := slotsString(p); got != tc.slots {
				t.Errorf("slots = %s, want %s", got, tc.slots)
			}
			if !slices.Equal(p.spare, tc.spare) {
				t.Errorf("spare = %v, want %v", p.spare, tc.spare)
			}
			if n, pr := p.reach(); n != tc.reach[0] || pr != tc.reach[1] {
				t.Errorf("reach = %d, %d; want %d, %d", n, pr, tc.reach[0], tc.reach[1])
			}
		})
	}
}

func TestPlanSparesAreHandedOutOnce(t *testing.T) {
	p := planner{self: "a", dead: func(string) bool { return false }, hints: true}.forPrimary([]string{"a", "b"}, []string{"c", "d"})
	var got []string
	for f := p.takeSpare(); f != ""; f = p.takeSpare() {
		got = append(got, f)
	}
	if !slices.Equal(got, []string{"c", "d"}) {
		t.Fatalf("spares = %v, want [c d]", got)
	}
}

func TestPlanUnreachable(t *testing.T) {
	dead := func(ids ...string) func(string) bool {
		return func(id string) bool { return slices.Contains(ids, id) }
	}
	prims, fallbacks := []string{"a", "b", "c"}, []string{"d"}
	cases := []struct {
		name        string
		dead        []string
		hints       bool
		need, needP int
		want        string // "" for nil
	}{
		{"quorum, all alive", nil, true, 2, 0, ""},
		{"all with a fallback", []string{"c"}, true, 3, 0, ""},
		{"pw=all refuses a fallback", []string{"c"}, true, 3, 3, "write: 2 of 3 required primaries reachable: nothing was written"},
		{"quorum without hints, two dead", []string{"b", "c"}, false, 2, 0, "write: 1 of 2 required replicas reachable: nothing was written"},
		{"quorum with hints, fallbacks dead too", []string{"b", "c", "d"}, true, 2, 0, "write: 1 of 2 required replicas reachable: nothing was written"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := planner{self: "a", dead: dead(tc.dead...), hints: tc.hints}.forPrimary(prims, fallbacks)
			err := p.unreachable("write", tc.need, tc.needP)
			got := ""
			if err != nil {
				got = err.Error()
				if err.Written {
					t.Errorf("a plan that cannot be met says it wrote: %v", err)
				}
			}
			if got != tc.want {
				t.Errorf("unreachable = %q, want %q", got, tc.want)
			}
		})
	}
}

// readPlan is a plan with the given slots ("primary→node" ..., "-" for
// none).
func readPlan(t *testing.T, slots string) *plan {
	t.Helper()
	p := &plan{}
	for f := range strings.FieldsSeq(slots) {
		prim, node, ok := strings.Cut(f, "→")
		if !ok {
			t.Fatalf("bad slot %q", f)
		}
		if node == "-" {
			node = ""
		}
		p.slots = append(p.slots, slot{primary: prim, node: node})
	}
	return p
}

// orderString renders slot indexes as their nodes.
func orderString(p *plan, idx []int) string {
	var parts []string
	for _, i := range idx {
		parts = append(parts, p.slots[i].node)
	}
	return strings.Join(parts, " ")
}

func TestReadOrder(t *testing.T) {
	cases := []struct {
		name    string
		self    string
		slots   string
		suspect []string
		want    string
	}{
		{"primaries in preference order", "x", "a→a b→b c→c", nil, "a b c"},
		{"self's copy first", "c", "a→a b→b c→c", nil, "c a b"},
		{"self's hints first too", "d", "a→a b→b c→d", nil, "d a b"},
		{"primaries before fallbacks", "x", "a→d b→b c→c", nil, "b c d"},
		{"suspects last, primaries before fallbacks among them", "x", "a→a b→d c→c", []string{"a", "d"}, "c a d"},
		{"suspect self still first", "a", "a→a b→b c→c", []string{"a"}, "a b c"},
		{"slots without a node left out", "x", "a→- b→b c→-", nil, "b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := readPlan(t, tc.slots)
			got := orderString(p, p.readOrder(tc.self, func(id string) bool { return slices.Contains(tc.suspect, id) }))
			if got != tc.want {
				t.Errorf("order = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReadShortfall(t *testing.T) {
	cases := []struct {
		name                string
		need, needP         int
		acks, pAcks         int
		inflight, inflightP int
		more, moreP         int
	}{
		{"start at r=2", 2, 0, 0, 0, 0, 0, 2, 0},
		{"start at pr=2", 2, 2, 0, 0, 0, 0, 2, 2},
		{"start at r=3, pr=1", 3, 1, 0, 0, 0, 0, 3, 1},
		{"enough in flight", 2, 0, 1, 1, 1, 1, 0, 0},
		{"one failed", 2, 0, 1, 1, 0, 0, 1, 0},
		{"met", 2, 0, 2, 2, 0, 0, 0, 0},
		{"met with more in flight", 2, 0, 2, 2, 1, 1, 0, 0},
		{"enough replies but a primary missing", 2, 2, 2, 1, 0, 0, 1, 1},
		{"primary in flight covers it", 2, 2, 1, 1, 1, 1, 0, 0},
		{"a fallback in flight does not cover a primary", 2, 2, 1, 1, 1, 0, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tl := &tally{need: tc.need, needP: tc.needP, acks: tc.acks, pAcks: tc.pAcks}
			more, moreP := readShortfall(tl, tc.inflight, tc.inflightP)
			if more != tc.more || moreP != tc.moreP {
				t.Errorf("shortfall = %d, %d; want %d, %d", more, moreP, tc.more, tc.moreP)
			}
		})
	}
}

func TestPickReads(t *testing.T) {
	cases := []struct {
		name        string
		slots       string
		order       []int
		asked       []int
		more, moreP int
		want        string
	}{
		{"first two", "a→a b→b c→c", []int{0, 1, 2}, nil, 2, 0, "a b"},
		{"in the given order", "a→a b→b c→c", []int{2, 0, 1}, nil, 2, 0, "c a"},
		{"none needed", "a→a b→b c→c", []int{0, 1, 2}, nil, 0, 0, ""},
		{"skips asked slots", "a→a b→b c→c", []int{0, 1, 2}, []int{0, 1}, 1, 0, "c"},
		{"fewer when too few are left", "a→a b→b c→c", []int{0, 1, 2}, []int{0, 1}, 2, 0, "c"},
		{"all asked", "a→a b→b c→c", []int{0, 1, 2}, []int{0, 1, 2}, 1, 0, ""},
		// self (d, holding c's copy) first, but pr=2 needs two primaries.
		{"pr=2 passes over a fallback", "a→a b→b c→d", []int{2, 0, 1}, nil, 2, 2, "a b"},
		{"r=2, pr=1 keeps self's copy", "a→a b→b c→d", []int{2, 0, 1}, nil, 2, 1, "d a"},
		{"r=3, pr=2 takes everything", "a→a b→b c→d", []int{2, 0, 1}, nil, 3, 2, "d a b"},
		{"a suspect primary rather than a fallback for pr", "a→a b→b c→d", []int{0, 2, 1}, []int{0}, 1, 1, "b"},
		{"no primary left: a fallback still counts toward r", "a→a b→e c→d", []int{0, 2, 1}, []int{0}, 1, 1, "d"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := readPlan(t, tc.slots)
			asked := make([]bool, len(p.slots))
			for _, i := range tc.asked {
				asked[i] = true
			}
			if got := orderString(p, pickReads(p.slots, tc.order, asked, tc.more, tc.moreP)); got != tc.want {
				t.Errorf("picked %q, want %q", got, tc.want)
			}
		})
	}
}
