package gossip

import (
	"slices"
	"testing"
)

func st(entries map[string]entry) ringState { return ringState(entries) }

// TestPlanChanges: the pure ownership plan of ring states: which change
// runs (one at a time, earliest first), the current and target rings, and
// the per-partition switch once receivers report.
func TestPlanChanges(t *testing.T) {
	member := entry{Status: StatusMember, Gen: 1}
	base := map[string]entry{"a": member, "b": member, "c": member}
	with := func(extra map[string]entry) ringState {
		s := ringState{}
		for k, v := range base {
			s[k] = v
		}
		for k, v := range extra {
			s[k] = v
		}
		return s
	}
	cases := []struct {
		name                string
		s                   ringState
		change              string // "" none
		cur, target         []string
		gone                []string
		receiversIncludeNew string
	}{
		{name: "stable", s: with(nil), cur: []string{"a", "b", "c"}, target: []string{"a", "b", "c"}},
		{name: "join", s: with(map[string]entry{"d": {Status: StatusJoining, Gen: 1, Queued: 5}}),
			change: "join/d/5", cur: []string{"a", "b", "c"}, target: []string{"a", "b", "c", "d"}, receiversIncludeNew: "d"},
		{name: "two joins queue: earliest first", s: with(map[string]entry{
			"d": {Status: StatusJoining, Gen: 1, Queued: 9}, "e": {Status: StatusJoining, Gen: 1, Queued: 3}}),
			change: "join/e/3", cur: []string{"a", "b", "c"}, target: []string{"a", "b", "c", "e"}, receiversIncludeNew: "e"},
		{name: "leave", s: with(map[string]entry{"c": {Status: StatusLeaving, Gen: 2, Queued: 4}}),
			change: "leave/c/4", cur: []string{"a", "b", "c"}, target: []string{"a", "b"}},
		{name: "remove", s: with(map[string]entry{"c": {Status: StatusLeaving, Gone: true, Gen: 2, Queued: 4}}),
			change: "remove/c/4", cur: []string{"a", "b", "c"}, target: []string{"a", "b"}, gone: []string{"c"}},
		{name: "replace", s: with(map[string]entry{
			"c": {Status: StatusLeaving, Gone: true, Gen: 2, Queued: 4},
			"z": {Status: StatusJoining, Replaces: "c", Token: "c", Gen: 1, Queued: 4}}),
			change: "join/z/4", cur: []string{"a", "b", "c"}, target: []string{"a", "b", "z"}, gone: []string{"c"}, receiversIncludeNew: "z"},
		{name: "replaced node seen before its replacement: no removal", s: with(map[string]entry{
			"c": {Status: StatusLeaving, Gone: true, ReplacedBy: "z", Gen: 2, Queued: 4}}),
			cur: []string{"a", "b", "c"}, target: []string{"a", "b", "c"}},
		{name: "wiped member rejoins as itself", s: with(map[string]entry{"b": {Status: StatusJoining, Replaces: "b", Gen: 3, Queued: 6}}),
			change: "join/b/6", cur: []string{"a", "b", "c"}, target: []string{"a", "b", "c"}, receiversIncludeNew: "b"},
		{name: "left and removed own nothing", s: with(map[string]entry{"x": {Status: StatusLeft, Gen: 4}, "y": {Status: StatusRemoved, Gen: 4}}),
			cur: []string{"a", "b", "c"}, target: []string{"a", "b", "c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, c, err := tc.s.plan("a", 64, 3)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.Change(); got != tc.change || (c == nil) != (tc.change == "") {
				t.Fatalf("change %q (%v), want %q", got, c, tc.change)
			}
			if got := v.Current().Members(); !slices.Equal(got, tc.cur) {
				t.Errorf("current %v, want %v", got, tc.cur)
			}
			if got := v.Target().Members(); !slices.Equal(got, tc.target) {
				t.Errorf("target %v, want %v", got, tc.target)
			}
			if v.Epoch() != tc.s.epoch() {
				t.Errorf("epoch %d, want %d", v.Epoch(), tc.s.epoch())
			}
			receivers := map[string]bool{}
			for p := range uint32(64) {
				for _, m := range v.Receiving(p) {
					receivers[m] = true
				}
				for _, g := range tc.gone {
					if slices.Contains(v.Primaries(p), g) || slices.Contains(v.Readers(p), g) {
						t.Fatalf("partition %d: gone %s still an owner", p, g)
					}
				}
				// Never fewer owners than min(N, members) answer reads.
				if n := len(v.Readers(p)) + len(v.Receiving(p)); n < min(3, len(tc.target)) {
					t.Fatalf("partition %d: %d readers + receivers", p, n)
				}
			}
			if tc.receiversIncludeNew != "" && !receivers[tc.receiversIncludeNew] {
				t.Errorf("%s receives nothing", tc.receiversIncludeNew)
			}
			if tc.change == "" && len(receivers) > 0 {
				t.Errorf("receivers %v with no change", receivers)
			}
		})
	}
}

// TestPlanSwitchesPerPartition: a partition switches to its new owners
// once its receiver reports it, and the change completes when all have.
func TestPlanSwitchesPerPartition(t *testing.T) {
	s := ringState{"a": {Status: StatusMember, Gen: 1}, "b": {Status: StatusMember, Gen: 1},
		"c": {Status: StatusMember, Gen: 1}, "d": {Status: StatusJoining, Gen: 1, Queued: 1}}
	v, c, err := s.plan("a", 64, 3)
	if err != nil {
		t.Fatal(err)
	}
	var moving []uint32
	for p := range uint32(64) {
		if v.Moving(p) {
			moving = append(moving, p)
			if v.IsReader(p, "d") || !v.IsPrimary(p, "d") || v.Extra(p) != 1 {
				t.Fatalf("partition %d while d receives: readers %v, writers %v, extra %d", p, v.Readers(p), v.Primaries(p), v.Extra(p))
			}
		}
	}
	if len(moving) == 0 || complete(v) {
		t.Fatal("nothing moves to d")
	}
	bits := make([]byte, 8)
	bits[moving[0]/8] |= 1 << (moving[0] % 8)
	d := s["d"]
	d.Change, d.Received, d.Gen = c.ID, bits, d.Gen+1
	s["d"] = d
	v2, _, err := s.plan("a", 64, 3)
	if err != nil {
		t.Fatal(err)
	}
	if v2.Epoch() <= v.Epoch() {
		t.Fatalf("epoch %d after a report, was %d", v2.Epoch(), v.Epoch())
	}
	p := moving[0]
	if v2.Moving(p) || !v2.IsReader(p, "d") || v2.Extra(p) != 0 {
		t.Fatalf("partition %d after d reported it: readers %v extra %d", p, v2.Readers(p), v2.Extra(p))
	}
	if len(moving) > 1 && !v2.Moving(moving[1]) {
		t.Fatalf("partition %d switched without a report", moving[1])
	}
	for _, q := range moving {
		bits[q/8] |= 1 << (q % 8)
	}
	d.Received = bits
	s["d"] = d
	v3, _, _ := s.plan("a", 64, 3)
	if !complete(v3) {
		t.Fatal("not complete with every partition reported")
	}
}
