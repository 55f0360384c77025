package versioning

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func val(v string, d Dot) Sibling {
	return Sibling{Dot: d, Value: []byte(v), ContentType: "text/plain"}
}

func tomb(d Dot) Sibling { return Sibling{Dot: d, Deleted: true} }

// values returns the sibling values in dot order; tombstones show as "†".
func values(s State) []string {
	var out []string
	for _, sib := range s.Siblings {
		if sib.Deleted {
			out = append(out, "†")
			continue
		}
		out = append(out, string(sib.Value))
	}
	return out
}

func mustUpdate(t *testing.T, s State, ctx VersionVector, sib Sibling) State {
	t.Helper()
	out, err := s.Update(ctx, sib)
	if err != nil {
		t.Fatalf("Update(%v, %v): %v", ctx, sib.Dot, err)
	}
	checkValid(t, out)
	return out
}

func wantValues(t *testing.T, what string, s State, want ...string) {
	t.Helper()
	if got := values(s); !slices.Equal(got, want) {
		t.Fatalf("%s: siblings %q, want %q (state %+v)", what, got, want, s)
	}
}

// The seed example: clients C and D write concurrently (no context)
// through replica B; both values survive as siblings. A client that read
// both then writes with that context, and the key collapses to its value.
func TestScenarioConcurrentBlindWritesThenResolve(t *testing.T) {
	var a, b State
	b = mustUpdate(t, b, nil, val("from-C", Dot{"b", 1}))
	b = mustUpdate(t, b, nil, val("from-D", Dot{"b", 2}))
	wantValues(t, "B after C and D", b, "from-C", "from-D")
	if !b.Context.Equal(VersionVector{e("b", 2)}) {
		t.Fatalf("context %v, want b:2", b.Context)
	}

	// Replicate to A; a read from A and B shows both.
	a = Sync(a, b)
	read := Sync(a, b)
	wantValues(t, "read", read, "from-C", "from-D")

	// The client resolves through A with the read's context (via the token).
	ctx, err := DecodeContext(EncodeContext(read.Context))
	if err != nil {
		t.Fatal(err)
	}
	a = mustUpdate(t, a, ctx, val("resolved", Dot{"a", 1}))
	wantValues(t, "A after resolve", a, "resolved")

	// B learns it by anti-entropy, in either direction.
	wantValues(t, "B<-A", Sync(b, a), "resolved")
	wantValues(t, "A<-B", Sync(a, b), "resolved")
	if !Sync(a, b).Equal(Sync(b, a)) {
		t.Fatal("Sync not commutative")
	}
}

// Two writes with the same context through the same replica are
// concurrent: both survive. A write with the merged context replaces both.
func TestScenarioSameContextTwiceSameReplica(t *testing.T) {
	var a State
	a = mustUpdate(t, a, nil, val("v1", Dot{"a", 1}))
	c1 := a.Context // the client read v1
	a = mustUpdate(t, a, c1, val("v2", Dot{"a", 2}))
	wantValues(t, "after v2", a, "v2")
	a = mustUpdate(t, a, c1, val("v3", Dot{"a", 3}))
	wantValues(t, "after v3 with the same context", a, "v2", "v3")
	// The counter-based context says a:3; both v2 and v3 are covered by
	// it, and v1 is long gone.
	a = mustUpdate(t, a, a.Context, val("v4", Dot{"a", 4}))
	wantValues(t, "after v4 with merged context", a, "v4")
}

// The context a PUT returns is what the client read plus its own write.
// Writing again with it replaces the client's own earlier value but not a
// concurrent write another client made through the same replica in
// between — even though that write's dot is lower than the new one's.
func TestScenarioWriteContextKeepsConcurrentSibling(t *testing.T) {
	var a State
	a = mustUpdate(t, a, nil, val("v1", Dot{"a", 1}))
	c1 := a.Context

	// Client P writes v2 with C1 and gets back C1 + a:2.
	a = mustUpdate(t, a, c1, val("v2", Dot{"a", 2}))
	pctx := c1.AddDot(Dot{"a", 2})
	// Client Q writes v3 with C1, concurrently with v2.
	a = mustUpdate(t, a, c1, val("v3", Dot{"a", 3}))
	wantValues(t, "after v2 and v3", a, "v2", "v3")
	// Client R blind-writes v4; its response context is just a:4.
	a = mustUpdate(t, a, nil, val("v4", Dot{"a", 4}))
	rctx := VersionVector(nil).AddDot(Dot{"a", 4})
	if rctx.Covers(Dot{"a", 1}) || !rctx.Covers(Dot{"a", 4}) {
		t.Fatalf("blind write's context %v", rctx)
	}

	// P's token survives the round trip with its extra dot.
	tok := EncodeContext(pctx)
	got, err := DecodeContext(tok)
	if err != nil || !got.Equal(pctx) {
		t.Fatalf("token %q decodes to %v, %v; want %v", tok, got, err, pctx)
	}
	if !pctx.Covers(Dot{"a", 2}) || pctx.Covers(Dot{"a", 3}) || pctx.Covers(Dot{"a", 4}) {
		t.Fatalf("write context %v must cover a:1,a:2 only", pctx)
	}

	// P updates its own value: v2 goes, v3 and v4 stay.
	a = mustUpdate(t, a, got, val("v5", Dot{"a", 5}))
	wantValues(t, "P rewrites with its write context", a, "v3", "v4", "v5")
	// R deletes its own value through another replica that has a's state.
	b := Sync(State{}, a)
	b = mustUpdate(t, b, rctx, tomb(Dot{"b", 1}))
	wantValues(t, "R deletes v4 at B", b, "v3", "v5", "†")
	wantValues(t, "A<-B", Sync(a, b), "v3", "v5", "†")
	// The replica context is a plain prefix again once the dots fold in.
	if m := Sync(a, b).Context; !m.Equal(VersionVector{e("a", 5), e("b", 1)}) {
		t.Fatalf("merged context %v", m)
	}
}

// A write without a context on an existing key adds a sibling and never
// replaces anything, even on a replica that has seen many writes.
func TestScenarioBlindWriteAddsSibling(t *testing.T) {
	var a State
	a = mustUpdate(t, a, nil, val("x", Dot{"a", 1}))
	a = mustUpdate(t, a, a.Context, val("y", Dot{"a", 2}))
	wantValues(t, "after y", a, "y")
	a = mustUpdate(t, a, nil, val("z", Dot{"a", 3}))
	wantValues(t, "blind write", a, "y", "z")
	a = mustUpdate(t, a, VersionVector{}, val("w", Dot{"a", 4}))
	wantValues(t, "blind write, empty non-nil ctx", a, "y", "z", "w")
}

// A context from a read elsewhere covers dots the coordinator has not
// seen yet; the write supersedes them once the states meet.
func TestScenarioContextFromOtherReplica(t *testing.T) {
	var a, b State
	b = mustUpdate(t, b, nil, val("old-b", Dot{"b", 1}))
	a = mustUpdate(t, a, nil, val("old-a", Dot{"a", 1}))
	ctx := b.Context // client read only B
	a = mustUpdate(t, a, ctx, val("new", Dot{"a", 2}))
	// The write did not see old-a: it stays. old-b is unknown locally.
	wantValues(t, "A", a, "old-a", "new")
	if !a.Context.Covers(Dot{"b", 1}) {
		t.Fatalf("A's context %v should cover the read's b:1", a.Context)
	}
	wantValues(t, "A<-B", Sync(a, b), "old-a", "new")
	wantValues(t, "B<-A", Sync(b, a), "old-a", "new")
}

func TestUpdateDotReuse(t *testing.T) {
	var a State
	a = mustUpdate(t, a, nil, val("v1", Dot{"a", 5}))
	a = mustUpdate(t, a, nil, val("v2", Dot{"a", 6}))
	b := mustUpdate(t, State{}, nil, val("vb", Dot{"b", 1}))

	for _, tc := range []struct {
		name string
		s    State
		ctx  VersionVector
		dot  Dot
	}{
		{"dot of a live sibling", a, nil, Dot{"a", 6}},
		{"dot below the context, never issued for this key", a, nil, Dot{"a", 2}},
		{"dot covered by the state although ctx is empty", a, VersionVector{}, Dot{"a", 5}},
		{"dot covered only by the client's ctx", b, a.Context, Dot{"a", 6}},
		{"zero state, dot covered by the client's ctx", State{}, a.Context, Dot{"a", 5}},
		{"zero state, dot covered by ctx of another actor's read", State{}, Sync(a, b).Context, Dot{"b", 1}},
		// A dot below the highest event the client's context holds for
		// the actor, though not itself covered: minting must go above.
		{"dot in a gap below ctx's extra dot", b, VersionVector{{Actor: "a", Dots: []uint64{9}}}, Dot{"a", 4}},
		{"dot equal to ctx's extra dot", State{}, VersionVector{{Actor: "a", Counter: 1, Dots: []uint64{9}}}, Dot{"a", 9}},
	} {
		before := cloneState(tc.s)
		out, err := tc.s.Update(tc.ctx, val("again", tc.dot))
		if !errors.Is(err, ErrDotReused) {
			t.Errorf("%s: Update(%v, %v) err = %v, want ErrDotReused", tc.name, tc.ctx, tc.dot, err)
		}
		if !out.IsZero() {
			t.Errorf("%s: Update returned a non-zero state %+v with its error", tc.name, out)
		}
		if !tc.s.Equal(before) {
			t.Errorf("%s: failed Update mutated the state", tc.name)
		}
	}

	// Invalid dots are errors, but not reuse.
	for _, d := range []Dot{{"", 1}, {"a", 0}, {"zz", 0}} {
		_, err := a.Update(nil, val("x", d))
		if err == nil || errors.Is(err, ErrDotReused) {
			t.Errorf("Update with invalid dot %v: err = %v, want a non-reuse error", d, err)
		}
	}
}

// A replica with no local state for the key (the zero State) but a
// node-global counter that is already high mints above its counter.
// Update accepts that dot, and refuses any dot the client's context shows
// as issued (or lower than one it shows).
func TestUpdateNoLocalState(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	counter := map[string]uint64{"a": 1000 + rng.Uint64N(1000), "b": rng.Uint64N(50)}
	mint := func(actor string) Dot { counter[actor]++; return Dot{actor, counter[actor]} }

	// Fresh owner: A has never stored the key, B has v1.
	b := mustUpdate(t, State{}, nil, val("v1", mint("b")))
	ctx := b.Context // client read v1 from B
	var a State
	if _, err := a.Update(ctx, val("x", Dot{"b", counter["b"]})); !errors.Is(err, ErrDotReused) {
		t.Fatalf("zero state, dot covered by ctx %v: err = %v, want ErrDotReused", ctx, err)
	}
	fresh := mint("a")
	a = mustUpdate(t, a, ctx, val("v2", fresh))
	wantValues(t, "A", a, "v2")
	wantValues(t, "B<-A", Sync(b, a), "v2")
	wantValues(t, "A<-B", Sync(a, b), "v2")

	// Lost state: A wrote v3, B replicated it, then A's copy is gone
	// (zero State) while its counter survives. A client that read v3 from
	// B sends a context naming A's dot; reissuing it, or anything below
	// it, is refused.
	a = mustUpdate(t, a, nil, val("v3", mint("a")))
	b = Sync(b, a)
	a = State{}
	ctx = b.Context
	for _, d := range []Dot{{"a", counter["a"]}, {"a", counter["a"] - 1}, {"a", 1}} {
		if _, err := a.Update(ctx, val("x", d)); !errors.Is(err, ErrDotReused) {
			t.Fatalf("zero state, dot %v at or below ctx %v: err = %v, want ErrDotReused", d, ctx, err)
		}
	}
	// With a context that does not name A (a blind write), the reuse
	// cannot be seen here: freshness is the node-global counter's job.
	// A minted dot above the counter is accepted. (Here ctx names every
	// dot A issued for the key, so the prefix Update claims for A is true;
	// in general a replica that lost data must change its actor ID.)
	fresh = mint("a")
	if ctx.Covers(fresh) || fresh.Counter <= ctx.Max("a") {
		t.Fatalf("minted dot %v is not fresh for %v", fresh, ctx)
	}
	a = mustUpdate(t, a, ctx, val("v4", fresh))
	wantValues(t, "A after losing its state", a, "v4")
	wantValues(t, "B<-A", Sync(b, a), "v4")

	// Over random histories (where replicas mint from node-global
	// counters) no dot is issued twice; the simulator asserts that on
	// every write, and here we re-check across whole histories.
	for h := range 50 {
		s := runHistory(t, uint64(7000+h), 60)
		seen := map[Dot]bool{}
		for _, sib := range s.sibs {
			if seen[sib.Dot] {
				t.Fatalf("seed %d: dot %v issued twice", 7000+h, sib.Dot)
			}
			seen[sib.Dot] = true
		}
		if len(seen) == 0 {
			t.Fatalf("seed %d: history issued no dots", 7000+h)
		}
	}
}

func TestTombstones(t *testing.T) {
	if !(State{}).Deleted() {
		t.Error("zero State should read as deleted (absent)")
	}
	var a State
	a = mustUpdate(t, a, nil, val("v1", Dot{"a", 1}))
	if a.Deleted() {
		t.Error("state with a value reads as deleted")
	}

	// A tombstone written with the read context supersedes what was read.
	read := a
	a = mustUpdate(t, a, read.Context, tomb(Dot{"a", 2}))
	wantValues(t, "after delete", a, "†")
	if !a.Deleted() {
		t.Error("state holding only a tombstone should be Deleted")
	}
	if !a.Context.Equal(VersionVector{e("a", 2)}) {
		t.Errorf("context after delete: %v", a.Context)
	}

	// Concurrently, replica B wrote a value without seeing the delete.
	b := mustUpdate(t, Sync(State{}, read), read.Context, val("v2", Dot{"b", 1}))
	wantValues(t, "B", b, "v2")
	for _, m := range []State{Sync(a, b), Sync(b, a)} {
		wantValues(t, "value and tombstone after Sync", m, "†", "v2")
		if m.Deleted() {
			t.Error("state with a value and a tombstone should not be Deleted")
		}
	}

	// Two concurrent tombstones: still deleted.
	c := mustUpdate(t, Sync(State{}, read), read.Context, tomb(Dot{"c", 1}))
	m := Sync(a, c)
	wantValues(t, "two tombstones", m, "†", "†")
	if !m.Deleted() {
		t.Error("state with only tombstones should be Deleted")
	}

	// A write with the merged context replaces tombstones and values alike.
	m = Sync(m, b)
	m = mustUpdate(t, m, m.Context, val("v3", Dot{"a", 3}))
	wantValues(t, "after resolving", m, "v3")
	m = mustUpdate(t, m, m.Context, tomb(Dot{"a", 4}))
	if !m.Deleted() || len(m.Siblings) != 1 {
		t.Errorf("after final delete: %+v", m)
	}
}
