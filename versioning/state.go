package versioning

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"slices"
)

// ErrDotReused reports an attempt to issue a dot that the state or the
// client's context has already seen. Issuing it would let the new value be
// mistaken for an old one and silently dropped (Riak's kv679).
var ErrDotReused = errors.New("versioning: dot already issued")

// ErrUnissuedDot reports a client context naming an event of the
// coordinator's own actor that the coordinator never issued: the token was
// forged or corrupted, and honouring it would move the actor's counter.
var ErrUnissuedDot = errors.New("context names a write this node never issued")

// Sibling is one concurrent version of a key: a value or a tombstone.
type Sibling struct {
	// Dot identifies the write that made this sibling.
	Dot Dot
	// Value is the client's bytes (empty for a tombstone).
	Value []byte
	// ContentType is the client's Content-Type, kept verbatim.
	ContentType string
	// Deleted marks a tombstone written by DELETE.
	Deleted bool
	// Modified is the coordinator's wall clock at the write, in Unix
	// milliseconds. Informational only: it never decides which sibling wins.
	Modified int64
}

func (s Sibling) equal(o Sibling) bool {
	return s.Dot == o.Dot && s.Deleted == o.Deleted && s.Modified == o.Modified &&
		s.ContentType == o.ContentType && bytes.Equal(s.Value, o.Value)
}

// State is everything a replica stores for one key: the live siblings,
// sorted by dot, and the causal context (every dot this state has seen).
// Every sibling's dot is covered by Context. The zero State is "nothing
// known". States are immutable by convention: Update and Sync return new
// States that may share value bytes, sibling slices and contexts with
// their inputs (Sync of a state with an equal or superseding one returns
// that state's siblings and context).
type State struct {
	Siblings []Sibling
	Context  VersionVector
}

// IsZero reports whether the state knows nothing at all.
func (s State) IsZero() bool { return len(s.Siblings) == 0 && len(s.Context) == 0 }

// Deleted reports whether the key reads as absent: no sibling is a value.
// A deleted state may still hold tombstones and a context.
func (s State) Deleted() bool {
	for _, sib := range s.Siblings {
		if !sib.Deleted {
			return false
		}
	}
	return true
}

// Equal reports whether two states hold the same siblings and context.
func (s State) Equal(o State) bool {
	return s.Context.Equal(o.Context) && slices.EqualFunc(s.Siblings, o.Siblings, Sibling.equal)
}

// Update applies a client write at the coordinating replica: sib (with a
// fresh dot) replaces every sibling that ctx covers, and stays concurrent
// with the rest. ctx is the context the client read (empty for a blind
// write). s must be the complete local state of the replica whose actor
// issues sib.Dot: the new context claims every earlier event of that
// actor, which is true only where the actor keeps all it has issued. It
// returns ErrDotReused unless sib.Dot is above every event of its actor
// that s or ctx has seen.
func (s State) Update(ctx VersionVector, sib Sibling) (State, error) {
	return s.update(ctx, sib, true)
}

// UpdateExact is Update for an actor that does not keep everything it
// issued for the key (a node coordinating as a fallback, whose earlier
// writes of the key live in hints it may have handed off): the new context
// gains only the new dot, never a prefix of the actor's events, so no
// earlier write of the actor can be mistaken for a superseded one. s may
// be any state, including the zero State.
func (s State) UpdateExact(ctx VersionVector, sib Sibling) (State, error) {
	return s.update(ctx, sib, false)
}

func (s State) update(ctx VersionVector, sib Sibling, claimPrefix bool) (State, error) {
	if sib.Dot.Actor == "" || sib.Dot.Counter == 0 {
		return State{}, fmt.Errorf("versioning: invalid dot %q:%d", sib.Dot.Actor, sib.Dot.Counter)
	}
	if sib.Dot.Counter <= max(s.Context.Max(sib.Dot.Actor), ctx.Max(sib.Dot.Actor)) {
		return State{}, fmt.Errorf("update with dot %s:%d: %w", sib.Dot.Actor, sib.Dot.Counter, ErrDotReused)
	}
	out := State{Siblings: make([]Sibling, 0, len(s.Siblings)+1)}
	if claimPrefix {
		out.Context = s.Context.Join(ctx).withPrefix(sib.Dot.Actor, sib.Dot.Counter)
	} else {
		out.Context = s.Context.Join(ctx).AddDot(sib.Dot)
	}
	for _, old := range s.Siblings {
		if !ctx.Covers(old.Dot) {
			out.Siblings = append(out.Siblings, old)
		}
	}
	i, _ := slices.BinarySearchFunc(out.Siblings, sib.Dot, func(e Sibling, d Dot) int { return e.Dot.Compare(d) })
	out.Siblings = slices.Insert(out.Siblings, i, sib)
	return mustValid(out, "Update"), nil
}

// Sync merges two replica states: a sibling survives if the other side
// holds it too or has never seen its dot. Sync is commutative, associative
// and idempotent, so replicas may exchange states in any order, any number
// of times, and converge.
func Sync(a, b State) State {
	if a.IsZero() {
		return b
	}
	if b.IsZero() {
		return a
	}
	out := State{Context: a.Context.Join(b.Context)}
	// Pick the survivors first: when they are all of a's siblings, or all
	// of b's (merging an equal state, or one whose write supersedes the
	// other's), the result shares that slice instead of copying it.
	type pick struct {
		i   int
		inA bool
	}
	var buf [16]pick
	picks := buf[:0]
	fromA := 0
	for i, inA := range survivors(a, b) {
		picks = append(picks, pick{i, inA})
		if inA {
			fromA++
		}
	}
	switch {
	case fromA == len(a.Siblings) && len(picks) == fromA:
		out.Siblings = a.Siblings
	case fromA == 0 && len(picks) == len(b.Siblings):
		out.Siblings = b.Siblings
	default:
		out.Siblings = make([]Sibling, len(picks))
		for k, p := range picks {
			if p.inA {
				out.Siblings[k] = a.Siblings[p.i]
			} else {
				out.Siblings[k] = b.Siblings[p.i]
			}
		}
	}
	return mustValid(out, "Sync")
}

// survivors yields, in dot order, the siblings Sync keeps: a sibling
// survives if the other side holds it too or has never seen its dot. It
// yields (i, true) for a.Siblings[i], which b may hold too, and (j, false)
// for b.Siblings[j], which only b holds.
func survivors(a, b State) iter.Seq2[int, bool] {
	return func(yield func(int, bool) bool) {
		i, j := 0, 0
		for i < len(a.Siblings) || j < len(b.Siblings) {
			var c int
			switch {
			case i == len(a.Siblings):
				c = 1
			case j == len(b.Siblings):
				c = -1
			default:
				c = a.Siblings[i].Dot.Compare(b.Siblings[j].Dot)
			}
			switch {
			case c == 0: // both hold it
				if !yield(i, true) {
					return
				}
				i++
				j++
			case c < 0: // only a holds it: keep unless b has seen (and dropped) it
				if !b.Context.Covers(a.Siblings[i].Dot) && !yield(i, true) {
					return
				}
				i++
			default:
				if !a.Context.Covers(b.Siblings[j].Dot) && !yield(j, false) {
					return
				}
				j++
			}
		}
	}
}
