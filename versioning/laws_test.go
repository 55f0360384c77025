package versioning

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// reachable returns states reached by one random history (every replica
// state after every op, every merged read) plus the zero State. States
// from different histories must not be mixed: the same dot means
// different writes in different histories.
func reachable(t *testing.T, seed uint64, ops int) []State {
	t.Helper()
	states := []State{{}}
	rng := rand.New(rand.NewPCG(seed, 1))
	s := newSim(t, seed, 2+rng.IntN(4))
	s.collect = func(st State) { states = append(states, st) }
	runSim(s, ops)
	return states
}

func TestSyncLaws(t *testing.T) {
	histories := 150
	if testing.Short() {
		histories = 40
	}
	checked := 0
	for h := range histories {
		seed := uint64(2000 + h)
		states := reachable(t, seed, 50)
		rng := rand.New(rand.NewPCG(seed, 2))
		pick := func() State { return states[rng.IntN(len(states))] }
		for k := range 60 {
			a, b, c := pick(), pick(), pick()
			fail := func(law string, got, want State) {
				t.Helper()
				t.Fatalf("seed %d, triple %d: %s\n a=%+v\n b=%+v\n c=%+v\n got  %+v\n want %+v", seed, k, law, a, b, c, got, want)
			}
			ab := Sync(a, b)
			checkValid(t, ab)
			if ba := Sync(b, a); !ab.Equal(ba) {
				fail("Sync(a,b) != Sync(b,a)", ab, ba)
			}
			if l, r := Sync(ab, c), Sync(a, Sync(b, c)); !l.Equal(r) {
				fail("Sync(Sync(a,b),c) != Sync(a,Sync(b,c))", l, r)
			}
			if aa := Sync(a, a); !aa.Equal(a) {
				fail("Sync(a,a) != a", aa, a)
			}
			if abb := Sync(ab, b); !abb.Equal(ab) {
				fail("Sync(Sync(a,b),b) != Sync(a,b)", abb, ab)
			}
			if aab := Sync(a, ab); !aab.Equal(ab) {
				fail("Sync(a,Sync(a,b)) != Sync(a,b)", aab, ab)
			}
			if !(State{}).IsZero() || !Sync(State{}, a).Equal(a) || !Sync(a, State{}).Equal(a) {
				fail("zero State is not Sync's identity", Sync(State{}, a), a)
			}
			// The merged context is the join of the inputs' contexts.
			if j := a.Context.Join(b.Context); !ab.Context.Equal(j) {
				t.Fatalf("seed %d: Sync context %v != Join %v", seed, ab.Context, j)
			}
			// Every surviving sibling came from an input.
			for _, sib := range ab.Siblings {
				if !slices.ContainsFunc(a.Siblings, sib.equal) && !slices.ContainsFunc(b.Siblings, sib.equal) {
					t.Fatalf("seed %d: Sync invented sibling %+v", seed, sib)
				}
			}
			checked++
		}
	}
	t.Logf("checked %d triples", checked)
}

// randVV returns a random valid vector over a small actor alphabet, so
// that random vectors overlap; entries sometimes carry extra dots beyond
// their prefix, as write contexts (AddDot) do.
func randVV(rng *rand.Rand) VersionVector {
	var v VersionVector
	for _, a := range []string{"a", "b", "c", "d", "e", "node-1", "node-10"} {
		if rng.IntN(2) == 0 {
			continue
		}
		ent := Entry{Actor: a, Counter: uint64(rng.IntN(4))}
		var dots []uint64
		for d := uint64(1); d <= 9; d++ {
			if rng.IntN(4) == 0 {
				dots = append(dots, d)
			}
		}
		ent = ent.withDots(dots)
		if ent.Counter == 0 && len(ent.Dots) == 0 {
			ent.Counter = 1
		}
		v = append(v, ent)
	}
	return v
}

// events lists every event v holds up to a bound, for comparing vectors
// as sets.
func events(v VersionVector, bound uint64) []Dot {
	var out []Dot
	for _, ent := range v {
		for c := uint64(1); c <= bound; c++ {
			if v.Covers(Dot{ent.Actor, c}) {
				out = append(out, Dot{ent.Actor, c})
			}
		}
	}
	return out
}

func TestJoinLaws(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	actors := []string{"a", "b", "c", "d", "e", "node-1", "node-10", "zz"}
	withDots := 0
	for k := range 5000 {
		a, b, c := randVV(rng), randVV(rng), randVV(rng)
		for _, v := range []VersionVector{a, b, c} {
			if err := validVV(v); err != nil {
				t.Fatalf("generator made an invalid vector %v: %v", v, err)
			}
			if slices.ContainsFunc(v, func(e Entry) bool { return len(e.Dots) > 0 }) {
				withDots++
			}
		}
		where := fmt.Sprintf("case %d: a=%v b=%v c=%v", k, a, b, c)
		ab := a.Join(b)
		if err := validVV(ab); err != nil {
			t.Fatalf("%s: Join invalid: %v", where, err)
		}
		if !ab.Equal(b.Join(a)) {
			t.Fatalf("%s: Join not commutative", where)
		}
		if !ab.Join(c).Equal(a.Join(b.Join(c))) {
			t.Fatalf("%s: Join not associative", where)
		}
		if !a.Join(a).Equal(a) || !ab.Join(b).Equal(ab) {
			t.Fatalf("%s: Join not idempotent", where)
		}
		if !ab.Descends(a) || !ab.Descends(b) {
			t.Fatalf("%s: Join %v does not descend its inputs", where, ab)
		}
		if !a.Descends(a) || !a.Descends(nil) {
			t.Fatalf("%s: Descends not reflexive / empty not bottom", where)
		}
		// a ⊇ b exactly when joining b adds nothing.
		if a.Descends(b) != a.Join(b).Equal(a) {
			t.Fatalf("%s: Descends(b)=%v but Join(b)==a is %v", where, a.Descends(b), a.Join(b).Equal(a))
		}
		// Join is set union and Covers set membership, event by event;
		// Descends is set inclusion.
		incl := true
		for _, actor := range actors {
			for n := uint64(0); n <= 12; n++ {
				d := Dot{actor, n}
				if got, want := ab.Covers(d), a.Covers(d) || b.Covers(d); got != want {
					t.Fatalf("%s: Join covers %v = %v, want %v", where, d, got, want)
				}
				if n > 0 && b.Covers(d) && !a.Covers(d) {
					incl = false
				}
			}
			if m := max(a.Max(actor), b.Max(actor)); ab.Max(actor) != m {
				t.Fatalf("%s: Join Max(%s) = %d, want %d", where, actor, ab.Max(actor), m)
			}
			if a.Get(actor) > a.Max(actor) {
				t.Fatalf("%s: Get(%s) > Max", where, actor)
			}
		}
		if a.Descends(b) != incl {
			t.Fatalf("%s: Descends = %v, set inclusion = %v", where, a.Descends(b), incl)
		}
		// Equal is set equality (vectors are normalised).
		if a.Equal(b) != slices.Equal(events(a, 12), events(b, 12)) {
			t.Fatalf("%s: Equal disagrees with set equality", where)
		}
		// AddDot adds exactly one event.
		d := Dot{actors[rng.IntN(len(actors))], 1 + uint64(rng.IntN(12))}
		ad := a.AddDot(d)
		if err := validVV(ad); err != nil {
			t.Fatalf("%s: AddDot(%v) = %v invalid: %v", where, d, ad, err)
		}
		for _, actor := range actors {
			for n := uint64(1); n <= 12; n++ {
				e := Dot{actor, n}
				if got, want := ad.Covers(e), a.Covers(e) || e == d; got != want {
					t.Fatalf("%s: AddDot(%v) = %v covers %v = %v, want %v", where, d, ad, e, got, want)
				}
			}
		}
		// Join and AddDot must not mutate their inputs.
		a2, c2 := slices.Clone(a), slices.Clone(c)
		for i := range a2 {
			a2[i].Dots = slices.Clone(a2[i].Dots)
		}
		for i := range c2 {
			c2[i].Dots = slices.Clone(c2[i].Dots)
		}
		_ = a.Join(c)
		_ = c.Join(a)
		_ = a.AddDot(d)
		if !a.Equal(a2) || !c.Equal(c2) {
			t.Fatalf("%s: Join/AddDot mutated an input", where)
		}
	}
	if withDots < 1000 {
		t.Fatalf("only %d vectors with extra dots", withDots)
	}
}

func TestVersionVectorBasics(t *testing.T) {
	v := VersionVector{e("a", 3), e("c", 1)}
	for _, tc := range []struct {
		actor string
		want  uint64
	}{{"a", 3}, {"b", 0}, {"c", 1}, {"d", 0}, {"", 0}} {
		if got := v.Get(tc.actor); got != tc.want {
			t.Errorf("Get(%q) = %d, want %d", tc.actor, got, tc.want)
		}
		if got := v.Max(tc.actor); got != tc.want {
			t.Errorf("Max(%q) = %d, want %d", tc.actor, got, tc.want)
		}
	}
	if !v.Covers(Dot{"a", 3}) || v.Covers(Dot{"a", 4}) || v.Covers(Dot{"b", 1}) || !v.Covers(Dot{"a", 0}) {
		t.Errorf("Covers wrong for %v", v)
	}
	if v.Descends(VersionVector{e("b", 1)}) || !v.Descends(VersionVector{e("a", 2)}) || (VersionVector{}).Descends(v) {
		t.Errorf("Descends wrong for %v", v)
	}
	w := v.withPrefix("b", 7)
	if !w.Equal(VersionVector{e("a", 3), e("b", 7), e("c", 1)}) || !v.Equal(VersionVector{e("a", 3), e("c", 1)}) {
		t.Errorf("withPrefix: got %v (receiver now %v)", w, v)
	}
	if w := v.withPrefix("a", 2); !w.Equal(v) {
		t.Errorf("withPrefix lowered a counter: %v", w)
	}
	if d1, d2 := (Dot{"a", 9}), (Dot{"b", 1}); d1.Compare(d2) >= 0 || d2.Compare(d1) <= 0 || d1.Compare(d1) != 0 || (Dot{"a", 1}).Compare(d1) >= 0 {
		t.Errorf("Dot.Compare does not order by actor then counter")
	}

	// Extra dots: a:{1..3, 5, 7}.
	x := v.AddDot(Dot{"a", 5}).AddDot(Dot{"a", 7})
	want := VersionVector{{Actor: "a", Counter: 3, Dots: []uint64{5, 7}}, e("c", 1)}
	if !x.Equal(want) {
		t.Fatalf("AddDot: %v, want %v", x, want)
	}
	if x.Get("a") != 3 || x.Max("a") != 7 || !x.Covers(Dot{"a", 5}) || x.Covers(Dot{"a", 4}) || x.Covers(Dot{"a", 6}) || x.Covers(Dot{"a", 8}) {
		t.Errorf("Get/Max/Covers wrong for %v", x)
	}
	if !x.Descends(v) || v.Descends(x) || x.Descends(VersionVector{e("a", 5)}) || !x.Descends(VersionVector{{Actor: "a", Dots: []uint64{7}}}) {
		t.Errorf("Descends wrong for %v", x)
	}
	// Filling the gap folds the dots into the prefix.
	if y := x.AddDot(Dot{"a", 4}); !y.Equal(VersionVector{{Actor: "a", Counter: 5, Dots: []uint64{7}}, e("c", 1)}) {
		t.Errorf("AddDot(a:4) = %v", y)
	}
	if y := x.Join(VersionVector{e("a", 6)}); !y.Equal(VersionVector{e("a", 7), e("c", 1)}) {
		t.Errorf("Join folding: %v", y)
	}
	if y := x.withPrefix("a", 6); !y.Equal(VersionVector{e("a", 7), e("c", 1)}) {
		t.Errorf("withPrefix folding: %v", y)
	}
	// A dot on an empty vector, at 1 and beyond.
	if y := (VersionVector{}).AddDot(Dot{"q", 1}); !y.Equal(VersionVector{e("q", 1)}) {
		t.Errorf("AddDot(q:1) on empty = %v", y)
	}
	if y := VersionVector(nil).AddDot(Dot{"q", 4}); !y.Equal(VersionVector{{Actor: "q", Dots: []uint64{4}}}) || y.Covers(Dot{"q", 1}) {
		t.Errorf("AddDot(q:4) on empty = %v", y)
	}
}

// e is a plain version vector entry: actor's events 1..n.
func e(actor string, n uint64) Entry { return Entry{Actor: actor, Counter: n} }
