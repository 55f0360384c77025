package versioning

import (
	"fmt"
	"slices"
)

// Validate checks the invariants of a state: the context is normalised
// (actors strictly ascending, entries non-empty, extra dots ascending and
// above prefix+1), siblings are in strictly ascending dot order, and the
// context covers every sibling's dot.
func (s State) Validate() error {
	if err := s.Context.Validate(); err != nil {
		return err
	}
	for i, sib := range s.Siblings {
		if i > 0 && s.Siblings[i-1].Dot.Compare(sib.Dot) >= 0 {
			return fmt.Errorf("versioning: siblings not in strictly ascending dot order at %d", i)
		}
		if sib.Dot.Actor == "" || sib.Dot.Counter == 0 {
			return fmt.Errorf("versioning: sibling %d has invalid dot %q:%d", i, sib.Dot.Actor, sib.Dot.Counter)
		}
		if !s.Context.Covers(sib.Dot) {
			return fmt.Errorf("versioning: sibling dot %s:%d not covered by the context", sib.Dot.Actor, sib.Dot.Counter)
		}
	}
	return nil
}

// Validate checks that v is normalised.
func (v VersionVector) Validate() error {
	for i, e := range v {
		switch {
		case e.Actor == "":
			return fmt.Errorf("versioning: empty actor at %d", i)
		case i > 0 && v[i-1].Actor >= e.Actor:
			return fmt.Errorf("versioning: actors not strictly ascending at %d", i)
		case e.Counter == 0 && len(e.Dots) == 0:
			return fmt.Errorf("versioning: empty entry for %q", e.Actor)
		case len(e.Dots) > 0 && e.Dots[0] <= e.Counter+1:
			return fmt.Errorf("versioning: entry %q not normalised", e.Actor)
		case !slices.IsSorted(e.Dots) || len(slices.Compact(slices.Clone(e.Dots))) != len(e.Dots):
			return fmt.Errorf("versioning: entry %q dots not strictly ascending", e.Actor)
		}
	}
	return nil
}

// mustValid panics if invariants are enabled and s is invalid.
func mustValid(s State, op string) State {
	if invariantsEnabled {
		if err := s.Validate(); err != nil {
			panic(fmt.Sprintf("versioning invariant broken by %s: %v", op, err))
		}
	}
	return s
}
