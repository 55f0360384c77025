package versioning

import (
	"cmp"
	"slices"
)

// Dot names one write: the Counter-th event of Actor.
type Dot struct {
	Actor   string
	Counter uint64
}

// Compare orders dots by actor, then counter.
func (d Dot) Compare(o Dot) int {
	if c := cmp.Compare(d.Actor, o.Actor); c != 0 {
		return c
	}
	return cmp.Compare(d.Counter, o.Counter)
}

// Entry is one actor's events in a VersionVector: the contiguous prefix
// 1..Counter plus the single events in Dots. This is the dotted entry of
// the DVV literature, (m, n) meaning {1..m} ∪ {n}, generalised to a few
// extra events. Dots is sorted ascending and every element is greater
// than Counter+1 (an event Counter+1 is folded into the prefix).
type Entry struct {
	Actor   string
	Counter uint64
	Dots    []uint64
}

// VersionVector is a set of events per actor, kept sorted by actor with
// unique actors and non-empty entries. The zero value is the empty
// vector. A VersionVector is immutable by convention: a method's result
// may share entries with its inputs, or be one of them (Join of a vector
// with one it descends).
//
// Extra dots arise only from the context a PUT returns (the client's
// context plus the new write's dot, which must not claim the writer's
// earlier, concurrent dots); they fold into the prefix as soon as the
// vector joins a replica state of that actor.
type VersionVector []Entry

func (v VersionVector) find(actor string) (int, bool) {
	return slices.BinarySearchFunc(v, actor, func(e Entry, a string) int { return cmp.Compare(e.Actor, a) })
}

// Get returns actor's contiguous prefix, 0 if absent.
func (v VersionVector) Get(actor string) uint64 {
	if i, ok := v.find(actor); ok {
		return v[i].Counter
	}
	return 0
}

// Max returns the highest event of actor that v holds, 0 if none.
func (v VersionVector) Max(actor string) uint64 {
	i, ok := v.find(actor)
	if !ok {
		return 0
	}
	if n := len(v[i].Dots); n > 0 {
		return v[i].Dots[n-1]
	}
	return v[i].Counter
}

// Covers reports whether v has seen dot d.
func (v VersionVector) Covers(d Dot) bool {
	i, ok := v.find(d.Actor)
	return ok && v[i].covers(d.Counter)
}

func (e Entry) covers(c uint64) bool {
	if c <= e.Counter {
		return true
	}
	_, ok := slices.BinarySearch(e.Dots, c)
	return ok
}

// Descends reports whether v has seen every event o has (o ⊆ v).
func (v VersionVector) Descends(o VersionVector) bool {
	// Both are sorted by actor: one walk along v finds o's actors.
	i := 0
	for _, oe := range o {
		for i < len(v) && v[i].Actor < oe.Actor {
			i++
		}
		if i == len(v) || v[i].Actor != oe.Actor {
			return false
		}
		ve := v[i]
		// Entries are normalised, so Counter+1 is never among ve.Dots and
		// o's prefix is covered only if it is no longer than v's.
		if oe.Counter > ve.Counter {
			return false
		}
		for _, d := range oe.Dots {
			if !ve.covers(d) {
				return false
			}
		}
	}
	return true
}

// Join returns the union of v and o: the context of a client that has
// seen both.
func (v VersionVector) Join(o VersionVector) VersionVector {
	// When one side has seen everything the other has (equal contexts, or
	// one that supersedes), that side is the union: return it rather than
	// a copy. Both are normalised, so it is the same vector either way.
	if v.Descends(o) {
		return v
	}
	if o.Descends(v) {
		return o
	}
	out := make(VersionVector, 0, max(len(v), len(o)))
	i, j := 0, 0
	for i < len(v) && j < len(o) {
		switch c := cmp.Compare(v[i].Actor, o[j].Actor); {
		case c < 0:
			out = append(out, v[i])
			i++
		case c > 0:
			out = append(out, o[j])
			j++
		default:
			out = append(out, joinEntry(v[i], o[j]))
			i++
			j++
		}
	}
	out = append(out, v[i:]...)
	return append(out, o[j:]...)
}

func joinEntry(a, b Entry) Entry {
	if len(a.Dots) == 0 && len(b.Dots) == 0 {
		return Entry{Actor: a.Actor, Counter: max(a.Counter, b.Counter)}
	}
	e := Entry{Actor: a.Actor, Counter: max(a.Counter, b.Counter)}
	dots := make([]uint64, 0, len(a.Dots)+len(b.Dots))
	dots = append(append(dots, a.Dots...), b.Dots...)
	slices.Sort(dots)
	return e.withDots(slices.Compact(dots))
}

// withDots adds sorted, unique dots to e and normalises it.
func (e Entry) withDots(dots []uint64) Entry {
	out := e
	out.Dots = nil
	for _, d := range dots {
		switch {
		case d <= out.Counter:
		case d == out.Counter+1:
			out.Counter++
		default:
			out.Dots = append(out.Dots, d)
		}
	}
	// Folding may have made later dots contiguous with the prefix.
	k := 0
	for k < len(out.Dots) && out.Dots[k] == out.Counter+1 {
		out.Counter++
		k++
	}
	if k == len(out.Dots) {
		out.Dots = nil
	} else {
		out.Dots = out.Dots[k:]
	}
	return out
}

// AddDot returns v plus the single event d (and nothing else of d's
// actor). This is the context of a version written with context v.
func (v VersionVector) AddDot(d Dot) VersionVector {
	i, ok := v.find(d.Actor)
	if ok && v[i].covers(d.Counter) {
		return v
	}
	if !ok {
		out := make(VersionVector, len(v)+1)
		copy(out, v[:i])
		out[i] = Entry{Actor: d.Actor}.withDot(d.Counter)
		copy(out[i+1:], v[i:])
		return out
	}
	out := make(VersionVector, len(v))
	copy(out, v)
	out[i] = v[i].withDot(d.Counter)
	return out
}

// withDot returns e plus the event c, which e does not cover, normalised.
func (e Entry) withDot(c uint64) Entry {
	out := Entry{Actor: e.Actor, Counter: e.Counter}
	if c == e.Counter+1 {
		// c extends the prefix, which may now reach e's first dots.
		out.Counter = c
		k := 0
		for k < len(e.Dots) && e.Dots[k] == out.Counter+1 {
			out.Counter++
			k++
		}
		if k < len(e.Dots) {
			out.Dots = e.Dots[k:]
		}
		return out
	}
	j, _ := slices.BinarySearch(e.Dots, c)
	out.Dots = make([]uint64, 0, len(e.Dots)+1)
	out.Dots = append(append(append(out.Dots, e.Dots[:j]...), c), e.Dots[j:]...)
	return out
}

// withPrefix returns v with actor's prefix raised to at least n. Only the
// actor itself may claim a prefix of its own events this way: it knows
// every event it has issued for the key.
func (v VersionVector) withPrefix(actor string, n uint64) VersionVector {
	i, ok := v.find(actor)
	out := make(VersionVector, len(v), len(v)+1)
	copy(out, v)
	if ok {
		out[i] = Entry{Actor: actor, Counter: max(out[i].Counter, n)}.withDots(out[i].Dots)
		return out
	}
	return slices.Insert(out, i, Entry{Actor: actor, Counter: n})
}

// Equal reports whether v and o hold the same events.
func (v VersionVector) Equal(o VersionVector) bool {
	return slices.EqualFunc(v, o, func(a, b Entry) bool {
		return a.Actor == b.Actor && a.Counter == b.Counter && slices.Equal(a.Dots, b.Dots)
	})
}
