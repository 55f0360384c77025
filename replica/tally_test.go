package replica

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// reply is one slot's reply in a tally test: "p" a primary acked, "f" a
// fallback acked for a slot planned on a primary, "F" a fallback acked for
// a slot planned on a fallback, "x" a slot planned on a primary failed,
// "X" a slot planned on a fallback failed.
func feed(t *tally, r byte) {
	switch r {
	case 'p':
		t.add(true, true, true)
	case 'f':
		t.add(true, false, true)
	case 'F':
		t.add(true, false, false)
	case 'x':
		t.add(false, false, true)
	case 'X':
		t.add(false, false, false)
	}
}

func TestTally(t *testing.T) {
	cases := []struct {
		name        string
		need, needP int
		reach       [2]int // planned nodes, of which on their primary
		replies     string
		// states before the first reply and after each: m met, h hopeless, . neither
		states string
		err    string // after the last reply, if not met
	}{
		{"quorum of 3, two primary acks", 2, 0, [2]int{3, 3}, "pp", "..m", ""},
		{"quorum, one failure then an ack", 2, 0, [2]int{3, 3}, "xpp", "...m", ""},
		{"quorum, two failures: hopeless at once", 2, 0, [2]int{3, 3}, "xx", "..h", "read: 0 of 2 required replicas answered"},
		{"all, one failure", 3, 0, [2]int{3, 3}, "px", "..h", "read: 1 of 3 required replicas answered"},
		{"fallback acks count toward r", 2, 0, [2]int{3, 1}, "FF", "..m", ""},
		{"pr=2: fallback acks do not count toward it", 2, 2, [2]int{3, 3}, "pfp", "...m", ""},
		{"pr=2: a failed-over slot cannot give a primary ack", 2, 2, [2]int{3, 2}, "pfF", "..hh", "read: 1 of 2 required primaries answered"},
		{"pr=all, a primary fails", 3, 3, [2]int{3, 3}, "x", ".h", "read: 0 of 3 required replicas answered"},
		{"one", 1, 0, [2]int{3, 3}, "p", ".m", ""},
		{"one, everyone fails", 1, 0, [2]int{3, 3}, "xxX", "...h", "read: 0 of 1 required replicas answered"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tl := &tally{op: "read", need: tc.need, needP: tc.needP, pending: tc.reach[0], pendingPrims: tc.reach[1]}
			var states strings.Builder
			state := func() byte {
				switch {
				case tl.met():
					return 'm'
				case tl.hopeless():
					return 'h'
				}
				return '.'
			}
			states.WriteByte(state())
			for i := range len(tc.replies) {
				feed(tl, tc.replies[i])
				states.WriteByte(state())
			}
			if got := states.String(); got != tc.states {
				t.Errorf("states = %q, want %q", got, tc.states)
			}
			if tc.err == "" {
				return
			}
			err := tl.err()
			if err.Error() != tc.err {
				t.Errorf("err = %q, want %q", err, tc.err)
			}
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("err %v does not wrap ErrUnavailable", err)
			}
		})
	}
}

func TestNeeds(t *testing.T) {
	cases := []struct {
		nEff          int
		lvl, primary  Level
		needs, needsP int
	}{
		{3, Default, Default, 2, 0},
		{3, One, Default, 1, 0},
		{3, One, All, 3, 3},
		{3, All, One, 3, 1},
		{2, Number(3), Default, 2, 0},
		{5, Quorum, Number(2), 3, 2},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("n=%d/%v/%v", tc.nEff, tc.lvl, tc.primary), func(t *testing.T) {
			need, needP := needs(tc.nEff, tc.lvl, tc.primary, Quorum)
			if need != tc.needs || needP != tc.needsP {
				t.Errorf("needs = %d, %d; want %d, %d", need, needP, tc.needs, tc.needsP)
			}
		})
	}
}
