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
		{"pw=all refuses a fallback", []string{"c"}, true, 3, 3, "write: 2 of 3 required primaries answered"},
		{"quorum without hints, two dead", []string{"b", "c"}, false, 2, 0, "write: 1 of 2 required replicas answered"},
		{"quorum with hints, fallbacks dead too", []string{"b", "c", "d"}, true, 2, 0, "write: 1 of 2 required replicas answered"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := planner{self: "a", dead: dead(tc.dead...), hints: tc.hints}.forPrimary(prims, fallbacks)
			err := p.unreachable("write", tc.need, tc.needP)
			got := ""
			if err != nil {
				got = strings.TrimSuffix(err.Error(), " (outcome unknown: acknowledging replicas keep the write)")
			}
			if got != tc.want {
				t.Errorf("unreachable = %q, want %q", got, tc.want)
			}
		})
	}
}
