package replica

import (
	"cmp"
	"slices"
	"sync"
)

// slot is one primary's copy of a key in one request, and the node that
// holds it: the primary itself, a fallback standing in for it (holding the
// copy as a hint naming the primary), or nobody ("").
type slot struct {
	primary string
	node    string
}

// direct reports whether the primary itself holds the copy.
func (s slot) direct() bool { return s.node == s.primary }

// plan is a pure assignment of a key's copies to nodes for one request,
// made from the preference list and the failure detector's dead set, plus
// the fallbacks left over, which take a copy whose node fails during the
// request. It is safe for concurrent use by the request's goroutines.
type plan struct {
	slots []slot

	mu    sync.Mutex
	spare []string // unused live fallbacks, in preference-list order
}

// planner makes plans for node self.
type planner struct {
	self  string
	dead  func(id string) bool
	hints bool // sloppy quorums: fallbacks take dead primaries' copies
}

// forPrimary plans a write coordinated by self as a primary of the key:
// each primary holds its own copy unless it is known dead, in which case
// the next live fallback (never self) takes it.
func (pl planner) forPrimary(prims, fallbacks []string) *plan {
	return pl.plan(prims, fallbacks, false, false)
}

// forFallback plans a write coordinated by self when no primary could be
// reached: self holds the first primary's copy as a hint, and the other
// copies are placed as by forPrimary.
func (pl planner) forFallback(prims, fallbacks []string) *plan {
	return pl.plan(prims, fallbacks, true, false)
}

// forRead plans a read: like forPrimary, but self may be among the
// fallbacks (a fallback reads the hints it holds).
func (pl planner) forRead(prims, fallbacks []string) *plan {
	return pl.plan(prims, fallbacks, false, true)
}

func (pl planner) plan(prims, fallbacks []string, standIn, selfSpare bool) *plan {
	p := &plan{slots: make([]slot, len(prims))}
	if pl.hints {
		for _, f := range fallbacks {
			if (f != pl.self || selfSpare) && !pl.dead(f) {
				p.spare = append(p.spare, f)
			}
		}
	}
	for i, prim := range prims {
		p.slots[i].primary = prim
		switch {
		case standIn && i == 0:
			p.slots[i].node = pl.self
		case prim == pl.self || !pl.dead(prim):
			p.slots[i].node = prim
		default:
			p.slots[i].node = p.takeSpare() // "" when hints are off or none is left
		}
	}
	return p
}

// takeSpare hands out the next unused fallback, or "" when none is left.
func (p *plan) takeSpare() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.spare) == 0 {
		return ""
	}
	f := p.spare[0]
	p.spare = p.spare[1:]
	return f
}

// reach returns how many slots have a node, and how many of those are
// held by their primary.
func (p *plan) reach() (nodes, primaries int) {
	for _, s := range p.slots {
		if s.node != "" {
			nodes++
			if s.direct() {
				primaries++
			}
		}
	}
	return nodes, primaries
}

// unreachable returns the error for a request whose levels this plan
// cannot meet even if every planned node acknowledges, or nil.
func (p *plan) unreachable(op string, need, needP int) *UnavailableError {
	nodes, prims := p.reach()
	switch {
	case nodes < need:
		return &UnavailableError{Op: op, Kind: "replicas", Acks: nodes, Required: need}
	case prims < needP:
		return &UnavailableError{Op: op, Kind: "primaries", Acks: prims, Required: needP}
	}
	return nil
}

// readOrder returns the order in which a read asks p's slots, as indexes
// into p.slots: the slot self holds first (reading its own copy costs no
// RPC), then slots held by their primary, then slots held by a fallback,
// and slots held by a suspect node last of all (a paused node would hold
// the read); preference-list order otherwise. Slots without a node are
// left out.
func (p *plan) readOrder(self string, suspect func(id string) bool) []int {
	rank := make([]int, len(p.slots))
	var order []int
	for i, s := range p.slots {
		if s.node == "" {
			continue
		}
		order = append(order, i)
		switch {
		case s.node == self:
			rank[i] = 0
		case suspect(s.node):
			rank[i] = 3
			if !s.direct() {
				rank[i] = 4
			}
		case s.direct():
			rank[i] = 1
		default:
			rank[i] = 2
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(rank[a], rank[b]) })
	return order
}

// readShortfall returns how many more slots a read must ask, and how many
// of those must be held by their primary, for t's levels to be met if
// every read in flight acknowledges: inflight of them, inflightP on a
// primary's own copy.
func readShortfall(t *tally, inflight, inflightP int) (more, moreP int) {
	moreP = max(t.needP-t.pAcks-inflightP, 0)
	more = max(t.need-t.acks-inflight, moreP)
	return more, moreP
}

// pickReads returns the slots a read asks next: from order (readOrder),
// skipping the slots already asked, first the earliest held by their
// primary until moreP of them are taken, then the earliest others until
// more are taken in all; fewer if too few are left. They come in order.
func pickReads(slots []slot, order []int, asked []bool, more, moreP int) []int {
	take := make([]bool, len(slots))
	n := 0
	for _, i := range order {
		if n == moreP || n == more {
			break
		}
		if !asked[i] && slots[i].direct() {
			take[i] = true
			n++
		}
	}
	for _, i := range order {
		if n >= more {
			break
		}
		if !asked[i] && !take[i] {
			take[i] = true
			n++
		}
	}
	var out []int
	for _, i := range order {
		if take[i] {
			out = append(out, i)
		}
	}
	return out
}
