package versioning

// This file holds the random-history simulator shared by the property,
// law, scenario, codec and fuzz tests. It drives real States through
// Update and Sync and, next to them, a reference model that tracks
// explicit causal histories (sets of write IDs) instead of version vectors.

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// bitset is a set of write IDs.
type bitset []uint64

func (b bitset) has(i int) bool {
	w := i / 64
	return w < len(b) && b[w]&(1<<(uint(i)%64)) != 0
}

func (b bitset) with(i int) bitset {
	out := b.or(nil)
	for len(out) <= i/64 {
		out = append(out, 0)
	}
	out[i/64] |= 1 << (uint(i) % 64)
	return out
}

// or returns a new set b ∪ o.
func (b bitset) or(o bitset) bitset {
	out := make(bitset, max(len(b), len(o)))
	copy(out, b)
	for i, w := range o {
		out[i] |= w
	}
	return out
}

func (b bitset) members() []int {
	var out []int
	for wi, w := range b {
		for w != 0 {
			t := bits.TrailingZeros64(w)
			out = append(out, wi*64+t)
			w &^= 1 << uint(t)
		}
	}
	return out
}

// savedRead is what a client holds after reading (or after a write's
// response): the context token it got (already decoded, as a coordinator
// would) and, for the model, the write IDs that context stands for.
type savedRead struct {
	ctx   VersionVector
	known bitset
	from  []int // replicas read; {-1-w} for the response to write w
}

// sim is one random history of one key over R replicas.
type sim struct {
	tb   testing.TB
	seed uint64
	rng  *rand.Rand

	actors  []string
	states  []State
	known   []bitset          // per replica: write IDs seen (Known_X)
	counter map[string]uint64 // node-global counter per actor

	hist   []bitset    // per write ID: hist(w)
	sibs   []Sibling   // per write ID: what was written
	byDot  map[Dot]int // dot -> write ID
	issued map[string][]uint64
	reads  []savedRead
	log    []string
	ops    map[string]int // how often each kind of op ran

	// collect, if set, receives every state the history reaches
	// (replica states after each op and merged read states).
	collect func(State)
}

func newSim(tb testing.TB, seed uint64, replicas int) *sim {
	s := &sim{
		tb:      tb,
		seed:    seed,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		states:  make([]State, replicas),
		known:   make([]bitset, replicas),
		counter: map[string]uint64{},
		byDot:   map[Dot]int{},
		issued:  map[string][]uint64{},
		ops:     map[string]int{},
	}
	for i := range replicas {
		s.actors = append(s.actors, string(rune('a'+i)))
		// Node-global counters: other keys have already used some dots.
		s.counter[s.actors[i]] = uint64(s.rng.IntN(3)) * uint64(s.rng.IntN(1000))
	}
	return s
}

func (s *sim) fatalf(format string, args ...any) {
	s.tb.Helper()
	tail := s.log
	if len(tail) > 25 {
		tail = tail[len(tail)-25:]
	}
	s.tb.Fatalf("seed %d, after %d ops (last: %s):\n%s", s.seed, len(s.log), strings.Join(tail, "; "), fmt.Sprintf(format, args...))
}

func (s *sim) record(st State) {
	if s.collect != nil {
		s.collect(st)
	}
}

var contentTypes = []string{"", "text/plain", "application/json; charset=utf-8", "application/octet-stream"}

func (s *sim) randModified() int64 {
	switch s.rng.IntN(6) {
	case 0:
		return 0
	case 1:
		return math.MinInt64
	case 2:
		return math.MaxInt64
	case 3:
		return -s.rng.Int64N(1 << 40)
	case 4:
		return s.rng.Int64()
	default:
		return 1_700_000_000_000 + s.rng.Int64N(1<<32)
	}
}

// nextDot mints a fresh dot for replica x: the node-global counter, which
// sometimes skips ahead (writes to other keys), never at or below what
// the replica's state has seen for the actor.
func (s *sim) nextDot(x int) Dot {
	a := s.actors[x]
	s.counter[a]++
	if s.rng.IntN(4) == 0 {
		s.counter[a] += uint64(s.rng.IntN(5))
	}
	if c := s.states[x].Context.Max(a); s.counter[a] <= c {
		s.counter[a] = c + 1
	}
	return Dot{a, s.counter[a]}
}

// expected is the model's live set for a known set: the writes that no
// other known write has in its history.
func (s *sim) expected(known bitset) []int {
	// killed = ∪ over known w' of hist(w') \ {w'}; live = known \ killed.
	killed := make(bitset, len(known))
	for _, w2 := range known.members() {
		for i, word := range s.hist[w2] {
			if i < len(killed) {
				if i == w2/64 {
					word &^= 1 << (uint(w2) % 64)
				}
				killed[i] |= word
			}
		}
	}
	var out []int
	for _, w := range known.members() {
		if !killed.has(w) {
			out = append(out, w)
		}
	}
	return out
}

// ids maps st's siblings back to write IDs, checking each sibling is
// exactly what was written.
func (s *sim) ids(st State) []int {
	s.tb.Helper()
	var out []int
	for _, sib := range st.Siblings {
		id, ok := s.byDot[sib.Dot]
		if !ok {
			s.fatalf("sibling with unknown dot %v", sib.Dot)
		}
		if !sib.equal(s.sibs[id]) {
			s.fatalf("sibling %v differs from write w%d: got %+v want %+v", sib.Dot, id, sib, s.sibs[id])
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// checkValid asserts the State invariants: siblings strictly sorted by
// dot, every sibling covered by the context, context sorted with unique
// actors and positive counters.
func checkValid(tb testing.TB, st State) {
	tb.Helper()
	if err := validState(st); err != nil {
		tb.Fatalf("invalid state %+v: %v", st, err)
	}
	if err := st.Validate(); err != nil {
		tb.Fatalf("State.Validate rejects a valid state %+v: %v", st, err)
	}
}

func validState(st State) error {
	if err := validVV(st.Context); err != nil {
		return err
	}
	for i, sib := range st.Siblings {
		if sib.Dot.Actor == "" || sib.Dot.Counter == 0 {
			return fmt.Errorf("sibling %d has invalid dot %v", i, sib.Dot)
		}
		if !st.Context.Covers(sib.Dot) {
			return fmt.Errorf("sibling %v not covered by context %v", sib.Dot, st.Context)
		}
		if i > 0 && st.Siblings[i-1].Dot.Compare(sib.Dot) >= 0 {
			return fmt.Errorf("siblings not strictly sorted at %d", i)
		}
	}
	return nil
}

func validVV(v VersionVector) error {
	for i, e := range v {
		if e.Actor == "" || (e.Counter == 0 && len(e.Dots) == 0) {
			return fmt.Errorf("bad entry %v", e)
		}
		if i > 0 && v[i-1].Actor >= e.Actor {
			return fmt.Errorf("actors not strictly sorted at %d", i)
		}
		for k, d := range e.Dots {
			if d <= e.Counter+1 || (k > 0 && e.Dots[k-1] >= d) {
				return fmt.Errorf("entry %v not normalised", e)
			}
		}
	}
	return nil
}

// check asserts replica x agrees with the model: its siblings are exactly
// the maximal known writes, and its context covers exactly the known
// writes' dots.
func (s *sim) check(x int) {
	s.tb.Helper()
	st := s.states[x]
	if err := validState(st); err != nil {
		s.fatalf("replica %s: %v", s.actors[x], err)
	}
	s.checkAgainst(fmt.Sprintf("replica %s", s.actors[x]), st, s.known[x])
}

func (s *sim) checkAgainst(what string, st State, known bitset) {
	s.tb.Helper()
	got := s.ids(st)
	want := s.expected(known)
	if !slices.Equal(got, want) {
		s.fatalf("%s: siblings %v, model expects %v (known %v)", what, fmtIDs(got), fmtIDs(want), fmtIDs(known.members()))
	}
	s.checkContext(what, st.Context, known)
}

func fmtIDs(ids []int) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("w%d", id)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func cloneState(st State) State {
	out := State{Siblings: slices.Clone(st.Siblings), Context: slices.Clone(st.Context)}
	for i := range out.Siblings {
		out.Siblings[i].Value = slices.Clone(out.Siblings[i].Value)
	}
	return out
}

// write applies a client write at replica x with read r (nil: blind).
func (s *sim) write(x int, r *savedRead, tomb bool) {
	s.tb.Helper()
	d := s.nextDot(x)
	if _, dup := s.byDot[d]; dup {
		s.fatalf("dot %v issued twice", d)
	}
	id := len(s.sibs)
	sib := Sibling{Dot: d, ContentType: contentTypes[s.rng.IntN(len(contentTypes))], Modified: s.randModified(), Deleted: tomb}
	if !tomb {
		sib.Value = []byte(fmt.Sprintf("w%d", id))
	}
	var ctx VersionVector
	known := bitset(nil)
	desc := fmt.Sprintf("w%d=%s:%d@%s blind", id, d.Actor, d.Counter, s.actors[x])
	if r != nil {
		ctx, known = r.ctx, r.known
		names := make([]string, len(r.from))
		for i, y := range r.from {
			if y < 0 {
				names[i] = fmt.Sprintf("w%d's response", -1-y)
				continue
			}
			names[i] = s.actors[y]
		}
		desc = fmt.Sprintf("w%d=%s:%d@%s ctx(read %v)", id, d.Actor, d.Counter, s.actors[x], names)
	}
	if tomb {
		desc += " tombstone"
	}
	s.log = append(s.log, desc)

	before := cloneState(s.states[x])
	ns, err := s.states[x].Update(ctx, sib)
	if err != nil {
		s.fatalf("Update(%v, %v): %v", ctx, d, err)
	}
	if !s.states[x].Equal(before) {
		s.fatalf("Update mutated its receiver")
	}
	// Reissuing any dot this actor issued before must be refused, with
	// or without the client's context.
	if old := s.issued[d.Actor]; len(old) > 0 {
		od := Dot{d.Actor, old[s.rng.IntN(len(old))]}
		osib := sib
		osib.Dot = od
		if _, err := ns.Update(ctx, osib); !errors.Is(err, ErrDotReused) {
			s.fatalf("Update with reused dot %v: err = %v, want ErrDotReused", od, err)
		}
		if _, err := s.states[x].Update(nil, osib); !errors.Is(err, ErrDotReused) {
			s.fatalf("Update with reused dot %v (blind): err = %v, want ErrDotReused", od, err)
		}
	}
	// Any dot at or below the highest event of its actor that the state
	// or the client's context holds is refused, covered or not.
	if m := max(s.states[x].Context.Max(d.Actor), ctx.Max(d.Actor)); m > 0 {
		osib := sib
		osib.Dot = Dot{d.Actor, 1 + s.rng.Uint64N(m)}
		if _, err := s.states[x].Update(ctx, osib); !errors.Is(err, ErrDotReused) {
			s.fatalf("Update with dot %v at or below max %d: err = %v, want ErrDotReused", osib.Dot, m, err)
		}
	}
	// The new dot itself is now used.
	if _, err := ns.Update(nil, sib); !errors.Is(err, ErrDotReused) {
		s.fatalf("Update with the just-used dot %v: err = %v, want ErrDotReused", d, err)
	}

	s.issued[d.Actor] = append(s.issued[d.Actor], d.Counter)
	s.byDot[d] = id
	s.sibs = append(s.sibs, sib)
	s.hist = append(s.hist, known.with(id))
	s.known[x] = s.known[x].or(s.hist[id])
	s.states[x] = ns
	s.record(ns)
	s.check(x)

	// The PUT response's context: what the client read plus its own
	// write, and nothing else (not the writer's concurrent siblings).
	// Keep it for a later write by the same client.
	if s.rng.IntN(3) == 0 {
		wctx := ctx.AddDot(d)
		if err := validVV(wctx); err != nil {
			s.fatalf("AddDot(%v, %v) = %v: %v", ctx, d, wctx, err)
		}
		wctx = s.viaToken(wctx)
		s.checkContext(fmt.Sprintf("write context of w%d", id), wctx, s.hist[id])
		s.reads = append(s.reads, savedRead{ctx: wctx, known: s.hist[id], from: []int{-1 - id}})
	}
}

// writeAsFallback is a write coordinated by replica x while it is not a
// primary of the key: it holds none of the key's state as a primary, so
// it builds the new version on the zero State with UpdateExact under its
// fallback actor (x + ".f", sharing x's node-global counter), and the
// result reaches replica y by Sync, as a delivered hint would.
func (s *sim) writeAsFallback(x, y int, r *savedRead, tomb bool) {
	s.tb.Helper()
	a := s.actors[x]
	fa := a + ".f"
	s.counter[a]++
	var ctx VersionVector
	known := bitset(nil)
	if r != nil {
		ctx, known = r.ctx, r.known
	}
	if c := ctx.Max(fa); s.counter[a] <= c {
		s.counter[a] = c + 1
	}
	d := Dot{fa, s.counter[a]}
	if _, dup := s.byDot[d]; dup {
		s.fatalf("dot %v issued twice", d)
	}
	id := len(s.sibs)
	sib := Sibling{Dot: d, ContentType: "text/plain", Deleted: tomb}
	if !tomb {
		sib.Value = []byte(fmt.Sprintf("w%d", id))
	}
	s.log = append(s.log, fmt.Sprintf("w%d=%s:%d fallback@%s -> %s", id, d.Actor, d.Counter, a, s.actors[y]))
	ns, err := State{}.UpdateExact(ctx, sib)
	if err != nil {
		s.fatalf("UpdateExact(%v, %v): %v", ctx, d, err)
	}
	if below := (Dot{fa, d.Counter - 1}); below.Counter > 0 && !ctx.Covers(below) && ns.Context.Covers(below) {
		s.fatalf("UpdateExact claimed %v, which neither its dot nor the client's context holds: %v", below, ns.Context)
	}
	s.byDot[d] = id
	s.sibs = append(s.sibs, sib)
	s.hist = append(s.hist, known.with(id))
	s.states[y] = Sync(s.states[y], ns)
	s.known[y] = s.known[y].or(s.hist[id])
	s.record(s.states[y])
	s.check(y)
	if s.rng.IntN(3) == 0 {
		wctx := s.viaToken(ctx.AddDot(d))
		s.reads = append(s.reads, savedRead{ctx: wctx, known: s.hist[id], from: []int{-1 - id}})
	}
}

// viaToken sends ctx through the client token and back.
func (s *sim) viaToken(ctx VersionVector) VersionVector {
	s.tb.Helper()
	tok := EncodeContext(ctx)
	got, err := DecodeContext(tok)
	if err != nil {
		s.fatalf("DecodeContext(EncodeContext(%v)): %v", ctx, err)
	}
	if !got.Equal(ctx) {
		s.fatalf("context token round trip: %v -> %q -> %v", ctx, tok, got)
	}
	return got
}

// checkContext asserts ctx covers exactly the dots of the known writes.
func (s *sim) checkContext(what string, ctx VersionVector, known bitset) {
	s.tb.Helper()
	for d, id := range s.byDot {
		if ctx.Covers(d) != known.has(id) {
			s.fatalf("%s: context %v covers %v = %v, but model knows w%d = %v", what, ctx, d, ctx.Covers(d), id, known.has(id))
		}
	}
}

// read merges the states of the given replicas, as a client (or the
// coordinator on its behalf) does, and checks the merged read against the
// model. The context goes through the client token and back.
func (s *sim) read(from []int) savedRead {
	s.tb.Helper()
	var merged State
	var known bitset
	for _, y := range from {
		merged = Sync(merged, s.states[y])
		known = known.or(s.known[y])
	}
	names := make([]string, len(from))
	for i, y := range from {
		names[i] = s.actors[y]
	}
	s.log = append(s.log, fmt.Sprintf("read %v", names))
	if err := validState(merged); err != nil {
		s.fatalf("read %v: %v", names, err)
	}
	s.checkAgainst(fmt.Sprintf("read %v", names), merged, known)
	s.record(merged)
	return savedRead{ctx: s.viaToken(merged.Context), known: known, from: from}
}

func (s *sim) sync(x, y int) {
	s.tb.Helper()
	s.log = append(s.log, fmt.Sprintf("sync %s<-%s", s.actors[x], s.actors[y]))
	s.states[x] = Sync(s.states[x], s.states[y])
	s.known[x] = s.known[x].or(s.known[y])
	s.record(s.states[x])
	s.check(x)
}

func (s *sim) randSubset() []int {
	n := len(s.states)
	perm := s.rng.Perm(n)
	return perm[:1+s.rng.IntN(n)]
}

// step performs one random operation.
func (s *sim) step() {
	s.tb.Helper()
	n := len(s.states)
	x := s.rng.IntN(n)
	tomb := s.rng.IntN(8) == 0
	if tomb {
		s.ops["tombstone"]++
	}
	switch p := s.rng.IntN(100); {
	case p < 10: // blind write
		s.ops["blind write"]++
		s.write(x, nil, tomb)
	case p < 15: // a write coordinated by a fallback, with a read's context or blind
		s.ops["fallback write"]++
		var r *savedRead
		if len(s.reads) > 0 && s.rng.IntN(3) > 0 {
			r = &s.reads[s.rng.IntN(len(s.reads))]
		}
		s.writeAsFallback(x, s.rng.IntN(n), r, tomb)
	case p < 50: // read then write with that context
		s.ops["read+write"]++
		r := s.read(s.randSubset())
		s.write(x, &r, tomb)
	case p < 60: // read now, write later (possibly several times)
		s.ops["read"]++
		r := s.read(s.randSubset())
		s.reads = append(s.reads, r)
	case p < 70: // write with an earlier, possibly stale, read
		if len(s.reads) == 0 {
			s.write(x, nil, tomb)
			return
		}
		r := s.reads[s.rng.IntN(len(s.reads))]
		if r.from[0] < 0 {
			s.ops["write with a write's context"]++
		} else {
			s.ops["write with an earlier read"]++
		}
		s.write(x, &r, tomb)
	default: // anti-entropy
		s.ops["sync"]++
		y := s.rng.IntN(n)
		s.sync(x, y)
		if s.rng.IntN(2) == 0 {
			s.sync(y, x)
		}
	}
}

// converge syncs every replica with every other for a few rounds and
// asserts they all end Equal and hold the model's maximal set.
func (s *sim) converge() {
	s.tb.Helper()
	s.log = append(s.log, "converge")
	var all bitset
	for _, k := range s.known {
		all = all.or(k)
	}
	for range 2 {
		for x := range s.states {
			for y := range s.states {
				s.states[x] = Sync(s.states[x], s.states[y])
				s.known[x] = s.known[x].or(s.known[y])
			}
		}
	}
	for x := range s.states {
		if !s.states[x].Equal(s.states[0]) {
			s.fatalf("after converging, replica %s = %+v differs from %s = %+v", s.actors[x], s.states[x], s.actors[0], s.states[0])
		}
		s.check(x)
	}
	s.checkAgainst("converged", s.states[0], all)
	s.record(s.states[0])
}

// runHistory runs one random history of n ops and returns the sim.
func runHistory(tb testing.TB, seed uint64, ops int) *sim {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	s := newSim(tb, seed, 2+rng.IntN(4))
	return runSim(s, ops)
}

func runSim(s *sim, ops int) *sim {
	s.tb.Helper()
	for range ops {
		s.step()
	}
	s.converge()
	return s
}
