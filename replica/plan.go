package replica

import (
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
