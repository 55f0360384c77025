package versioning

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// decorate returns a copy of st with sibling payloads varied: empty,
// binary and long values, odd content types, extreme Modified times.
func decorate(rng *rand.Rand, st State) State {
	out := cloneState(st)
	for i := range out.Siblings {
		sib := &out.Siblings[i]
		switch rng.IntN(6) {
		case 0:
			sib.Value = nil
		case 1:
			sib.Value = []byte{}
		case 2:
			sib.Value = make([]byte, rng.IntN(2000))
			for j := range sib.Value {
				sib.Value[j] = byte(rng.Uint32())
			}
		}
		switch rng.IntN(5) {
		case 0:
			sib.ContentType = strings.Repeat("x", MaxContentTypeLen)
		case 1:
			sib.ContentType = "text/plain; charset=\x00\xff"
		}
		switch rng.IntN(5) {
		case 0:
			sib.Modified = math.MinInt64
		case 1:
			sib.Modified = math.MaxInt64
		case 2:
			sib.Modified = -1
		}
	}
	return out
}

// sampleStates returns a deterministic variety of valid states.
func sampleStates(t testing.TB, n int) []State {
	states := []State{{}, {Context: VersionVector{e("a", 1)}}}
	rng := rand.New(rand.NewPCG(5, 5))
	for h := 0; len(states) < n; h++ {
		s := newSim(t, uint64(9000+h), 2+h%4)
		s.collect = func(st State) {
			if rng.IntN(4) == 0 {
				states = append(states, decorate(rng, st))
			}
		}
		runSim(s, 30)
	}
	// Edge values for actors and counters.
	long := strings.Repeat("z", MaxActorLen)
	states = append(states, State{
		Siblings: []Sibling{
			{Dot: Dot{long, 1}, Deleted: true, Modified: math.MinInt64},
			{Dot: Dot{"\u00e9", MaxCounter}, Value: []byte{0}},
		},
		Context: VersionVector{e(long, 1<<61), e("\u00e9", MaxCounter)},
	}, State{
		Siblings: []Sibling{{Dot: Dot{"a", 9}, Value: []byte("x")}, {Dot: Dot{"b", MaxCounter}}},
		Context: VersionVector{
			{Actor: "a", Dots: []uint64{9, 10, 1 << 40}},
			{Actor: "b", Counter: 2, Dots: []uint64{MaxCounter}},
		},
	})
	return states
}

func TestStateRoundTrip(t *testing.T) {
	states := sampleStates(t, 3000)
	var siblings, tombstones, emptyValues, withDots int
	for i, st := range states {
		enc, err := st.MarshalBinary()
		if err != nil {
			t.Fatalf("state %d: MarshalBinary: %v\n%+v", i, err, st)
		}
		got, err := DecodeState(enc)
		if err != nil {
			t.Fatalf("state %d: DecodeState: %v\n%+v\n%x", i, err, st, enc)
		}
		if !got.Equal(st) {
			t.Fatalf("state %d: round trip\n got  %+v\n want %+v", i, got, st)
		}
		checkValid(t, got)
		// The encoding is canonical: re-encoding gives the same bytes.
		if enc2, _ := got.MarshalBinary(); !bytes.Equal(enc, enc2) {
			t.Fatalf("state %d: re-encoding differs:\n %x\n %x", i, enc, enc2)
		}
		// AppendBinary appends; it does not overwrite dst.
		prefix := []byte("prefix")
		app, err := st.AppendBinary(prefix)
		if err != nil || !bytes.Equal(app, append([]byte("prefix"), enc...)) {
			t.Fatalf("state %d: AppendBinary onto a prefix: %x, %v", i, app, err)
		}
		if slices.ContainsFunc(st.Context, func(e Entry) bool { return len(e.Dots) > 0 }) {
			withDots++
		}
		for _, sib := range st.Siblings {
			siblings++
			if sib.Deleted {
				tombstones++
			}
			if len(sib.Value) == 0 {
				emptyValues++
			}
		}
	}
	t.Logf("%d states (%d with extra dots in the context), %d siblings, %d tombstones, %d empty values", len(states), withDots, siblings, tombstones, emptyValues)
	if tombstones == 0 || emptyValues == 0 || siblings < 1000 || withDots < 10 {
		t.Fatal("sample states lack variety")
	}
}

func TestAppendBinaryRejectsInvalidState(t *testing.T) {
	for name, st := range map[string]State{
		"sibling actor not in context": {Siblings: []Sibling{{Dot: Dot{"b", 1}}}, Context: VersionVector{e("a", 1)}},
		"sibling above its context":    {Siblings: []Sibling{{Dot: Dot{"a", 2}}}, Context: VersionVector{e("a", 1)}},
		"no context at all":            {Siblings: []Sibling{{Dot: Dot{"a", 1}}}},
	} {
		if b, err := st.MarshalBinary(); err == nil {
			t.Errorf("%s: MarshalBinary = %x, want an error", name, b)
		}
	}
}

// Whatever AppendBinary encodes, DecodeState must decode: a record the
// node wrote but cannot read back is lost. States beyond the decoder's
// limits must be refused at encoding time instead.
func TestAppendBinaryOnlyEncodesDecodable(t *testing.T) {
	many := make(VersionVector, MaxActors+1)
	for i := range many {
		many[i] = e(fmt.Sprintf("n%05d", i), 1)
	}
	long := strings.Repeat("a", MaxActorLen+1)
	for name, st := range map[string]State{
		"content type too long": {
			Siblings: []Sibling{{Dot: Dot{"a", 1}, ContentType: strings.Repeat("t", MaxContentTypeLen+1)}},
			Context:  VersionVector{e("a", 1)},
		},
		"actor too long": {
			Siblings: []Sibling{{Dot: Dot{long, 1}}},
			Context:  VersionVector{e(long, 1)},
		},
		"too many actors":     {Context: many},
		"too many extra dots": {Context: VersionVector{{Actor: "a", Counter: 1, Dots: manyDots(MaxDots + 1)}}},
		"counter too high":    {Context: VersionVector{e("a", MaxCounter+1)}},
		"extra dot too high":  {Context: VersionVector{{Actor: "a", Counter: 1, Dots: []uint64{MaxCounter + 1}}}},
	} {
		enc, err := st.MarshalBinary()
		if err != nil {
			continue // refused: fine
		}
		if _, err := DecodeState(enc); err != nil {
			t.Errorf("%s: MarshalBinary succeeded but DecodeState fails: %v", name, err)
		}
	}

	// Exactly at the limits, states encode and decode.
	atLimit := strings.Repeat("a", MaxActorLen)
	limits := State{
		Siblings: []Sibling{{Dot: Dot{atLimit, 1}, ContentType: strings.Repeat("t", MaxContentTypeLen)}},
		Context:  append(VersionVector{e(atLimit, 1)}, many[:MaxActors-1]...),
	}
	limits.Context[0].Dots = manyDots(MaxDots)
	checkValid(t, limits)
	enc, err := limits.MarshalBinary()
	if err != nil {
		t.Fatalf("state at the limits: MarshalBinary: %v", err)
	}
	if got, err := DecodeState(enc); err != nil || !got.Equal(limits) {
		t.Fatalf("state at the limits: DecodeState: %v", err)
	}
}

func TestContextRoundTrip(t *testing.T) {
	vectors := []VersionVector{
		nil,
		{},
		{e("a", 1)},
		{e("a", MaxCounter), e("b", 1), e("node-\u00e9", 1<<40)},
		{e(strings.Repeat("x", MaxActorLen), 127), e(strings.Repeat("y", MaxActorLen), 128)},
	}
	for _, st := range sampleStates(t, 500) {
		vectors = append(vectors, st.Context)
	}
	for _, v := range vectors {
		tok := EncodeContext(v)
		if tok == "" {
			t.Fatalf("EncodeContext(%v) is empty", v)
		}
		if strings.ContainsAny(tok, "+/=") {
			t.Fatalf("token %q is not unpadded base64url", tok)
		}
		got, err := DecodeContext(tok)
		if err != nil {
			t.Fatalf("DecodeContext(%q) (from %v): %v", tok, v, err)
		}
		if !got.Equal(v) {
			t.Fatalf("context round trip: %v -> %q -> %v", v, tok, got)
		}
		if err := validVV(got); err != nil {
			t.Fatalf("decoded context invalid: %v", err)
		}
	}
	// The empty string, and blanks, are the empty context.
	for _, tok := range []string{"", " ", "\t\n"} {
		v, err := DecodeContext(tok)
		if err != nil || len(v) != 0 {
			t.Errorf("DecodeContext(%q) = %v, %v; want empty, nil", tok, v, err)
		}
	}
	// Padding and surrounding blanks are tolerated.
	v := VersionVector{e("a", 3)}
	tok := EncodeContext(v)
	for _, variant := range []string{tok + "=", tok + "==", " " + tok + "\n"} {
		if got, err := DecodeContext(variant); err != nil || !got.Equal(v) {
			t.Errorf("DecodeContext(%q) = %v, %v; want %v", variant, got, err, v)
		}
	}
}

func TestContextTokenSize(t *testing.T) {
	for _, n := range []int{1, 3, 10} {
		for _, style := range []struct {
			name    string
			actor   func(i int) string
			counter uint64
		}{
			{"short actors, small counters", func(i int) string { return fmt.Sprintf("n%d", i) }, 100},
			{"16-byte actors, counters ~1e9", func(i int) string { return fmt.Sprintf("node-%02d-3f9a2c1b", i) }, 1_000_000_000},
		} {
			var v VersionVector
			raw := 2 // version byte + count
			for i := range n {
				a := style.actor(i)
				v = append(v, Entry{Actor: a, Counter: style.counter + uint64(i)})
				raw += 1 + len(a) + len(binary.AppendUvarint(nil, style.counter+uint64(i))) + 1
			}
			tok := EncodeContext(v)
			if want := base64.RawURLEncoding.EncodedLen(raw); len(tok) != want {
				t.Errorf("%d actors (%s): token %d bytes, want %d", n, style.name, len(tok), want)
			}
			t.Logf("context token for %2d actors (%s): %3d bytes", n, style.name, len(tok))
			// A PUT response's context: one extra dot beyond a prefix.
			wtok := EncodeContext(v.AddDot(Dot{style.actor(0), style.counter + 1000}))
			t.Logf("  with one extra dot (write context): %3d bytes", len(wtok))
			if len(wtok) <= len(tok) {
				t.Errorf("write context token %d bytes, not longer than %d", len(wtok), len(tok))
			}
		}
	}
}

// manyDots returns n normalised extra dots above a prefix of 1.
func manyDots(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(3 + 2*i)
	}
	return out
}

// raw encoders for hand-made (possibly invalid) encodings.

type rawEntry struct {
	actor   string
	counter uint64
	gaps    []uint64 // extra dots, as encoded: gap to the previous event minus 1
}

type rawSib struct {
	idx, counter uint64
	flags        byte
	modified     int64
	ct, val      string
}

func rawVV(dst []byte, es []rawEntry) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(es)))
	for _, e := range es {
		dst = binary.AppendUvarint(dst, uint64(len(e.actor)))
		dst = append(dst, e.actor...)
		dst = binary.AppendUvarint(dst, e.counter)
		dst = binary.AppendUvarint(dst, uint64(len(e.gaps)))
		for _, g := range e.gaps {
			dst = binary.AppendUvarint(dst, g)
		}
	}
	return dst
}

func rawState(ctx []rawEntry, sibs ...rawSib) []byte {
	b := rawVV([]byte{1}, ctx)
	b = binary.AppendUvarint(b, uint64(len(sibs)))
	for _, s := range sibs {
		b = binary.AppendUvarint(b, s.idx)
		b = binary.AppendUvarint(b, s.counter)
		b = append(b, s.flags)
		b = binary.AppendVarint(b, s.modified)
		b = binary.AppendUvarint(b, uint64(len(s.ct)))
		b = append(b, s.ct...)
		b = binary.AppendUvarint(b, uint64(len(s.val)))
		b = append(b, s.val...)
	}
	return b
}

func rawToken(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestDecodeStateMalformed(t *testing.T) {
	ab := []rawEntry{{"a", 2, nil}, {"b", 1, nil}}
	okSib := rawSib{idx: 0, counter: 2, val: "v"}
	valid := rawState(ab, okSib, rawSib{idx: 1, counter: 1, flags: 1})
	if st, err := DecodeState(valid); err != nil || len(st.Siblings) != 2 {
		t.Fatalf("hand-made valid encoding: %+v, %v", st, err)
	}
	// a: {1,2} ∪ {5, 6}; b: {3}. Siblings a:5 and b:3 are covered.
	dotted := rawState([]rawEntry{{"a", 2, []uint64{2, 0}}, {"b", 0, []uint64{2}}}, rawSib{idx: 0, counter: 5}, rawSib{idx: 1, counter: 3})
	st, err := DecodeState(dotted)
	want := VersionVector{{Actor: "a", Counter: 2, Dots: []uint64{5, 6}}, {Actor: "b", Dots: []uint64{3}}}
	if err != nil || !st.Context.Equal(want) || len(st.Siblings) != 2 {
		t.Fatalf("hand-made encoding with extra dots: %+v, %v; want context %v", st, err, want)
	}
	checkValid(t, st)
	if re, _ := st.MarshalBinary(); !bytes.Equal(re, dotted) {
		t.Fatalf("re-encoding differs: %x vs %x", re, dotted)
	}
	withVersion := func(v byte) []byte { b := bytes.Clone(valid); b[0] = v; return b }

	cases := map[string][]byte{
		"empty":                      nil,
		"version 0":                  withVersion(0),
		"version 2":                  withVersion(2),
		"version 255":                withVersion(255),
		"trailing byte":              append(bytes.Clone(valid), 0),
		"trailing bytes":             append(bytes.Clone(valid), valid...),
		"unsorted actors":            rawState([]rawEntry{{"b", 1, nil}, {"a", 1, nil}}),
		"duplicate actors":           rawState([]rawEntry{{"a", 1, nil}, {"a", 2, nil}}),
		"empty actor":                rawState([]rawEntry{{"", 1, nil}}),
		"actor too long":             rawState([]rawEntry{{strings.Repeat("a", MaxActorLen+1), 1, nil}}),
		"zero counter":               rawState([]rawEntry{{"a", 0, nil}}),
		"sibling counter above ctx":  rawState(ab, rawSib{idx: 0, counter: 3}),
		"sibling counter zero":       rawState(ab, rawSib{idx: 0, counter: 0}),
		"sibling index out of range": rawState(ab, rawSib{idx: 2, counter: 1}),
		"sibling with empty context": rawState(nil, rawSib{idx: 0, counter: 1}),
		"unknown flags":              rawState(ab, rawSib{idx: 0, counter: 1, flags: 2}),
		"siblings unsorted":          rawState(ab, rawSib{idx: 1, counter: 1}, okSib),
		"siblings unsorted counter":  rawState(ab, okSib, rawSib{idx: 0, counter: 1}),
		"duplicate siblings":         rawState(ab, okSib, okSib),
		"content type too long":      rawState(ab, rawSib{idx: 0, counter: 1, ct: strings.Repeat("c", MaxContentTypeLen+1)}),
		"sibling count too large":    append(rawVV([]byte{1}, ab), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"actor count too large":      append([]byte{1}, binary.AppendUvarint(nil, MaxActors+1)...),
		"uvarint overflow":           append([]byte{1}, bytes.Repeat([]byte{0xff}, 11)...),
		"value length past end":      append(rawState(ab, rawSib{idx: 0, counter: 1})[:len(rawState(ab, rawSib{idx: 0, counter: 1}))-1], 5, 'x'),
	}
	// A context that is valid on its own but has too many actors.
	many := make([]rawEntry, MaxActors+1)
	for i := range many {
		many[i] = rawEntry{fmt.Sprintf("n%05d", i), 1, nil}
	}
	cases["more than MaxActors actors"] = rawState(many)
	cases["more than MaxDots dots"] = rawState([]rawEntry{{"a", 1, make([]uint64, MaxDots+1)}})
	cases["MaxDots dots over two actors, plus one"] = rawState([]rawEntry{{"a", 1, make([]uint64, MaxDots/2)}, {"b", 1, make([]uint64, MaxDots/2+1)}})
	cases["first extra dot not normalised"] = rawState([]rawEntry{{"a", 2, []uint64{0}}})
	cases["extra dot overflows"] = rawState([]rawEntry{{"a", math.MaxUint64, []uint64{0}}})
	cases["extra dot gap overflows"] = rawState([]rawEntry{{"a", 2, []uint64{math.MaxUint64 - 1}}})
	cases["dot count past end"] = append(rawVV([]byte{1}, nil)[:1], 1, 1, 'a', 1, 5, 1)
	cases["sibling in a gap of the context"] = rawState([]rawEntry{{"a", 2, []uint64{2}}}, rawSib{idx: 0, counter: 4})

	for name, b := range cases {
		if st, err := DecodeState(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: DecodeState(%x) = %+v, %v; want ErrMalformed", name, b, st, err)
		}
	}

	// Every strict prefix of a valid encoding is truncated.
	encs := [][]byte{valid}
	for _, st := range sampleStates(t, 200)[:200] {
		b, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		encs = append(encs, b)
	}
	for _, enc := range encs {
		for n := range len(enc) {
			if st, err := DecodeState(enc[:n]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeState of %d-byte prefix of %x = %+v, %v; want ErrMalformed", n, enc, st, err)
			}
		}
	}
}

func TestDecodeContextMalformed(t *testing.T) {
	valid := rawVV([]byte{1}, []rawEntry{{"a", 1, nil}, {"b", 7, nil}})
	cases := map[string]string{
		"not base64":         "!!!",
		"std base64 chars":   "AQ+/",
		"padding inside":     "AQ=A",
		"bad length":         "A",
		"no bytes after b64": rawToken([]byte{}) + "==", // trims to "" after padding removal
		"version 0":          rawToken(append([]byte{0}, valid[1:]...)),
		"version 2":          rawToken(append([]byte{2}, valid[1:]...)),
		"state encoding":     rawToken(rawState([]rawEntry{{"a", 1, nil}}, rawSib{idx: 0, counter: 1})),
		"trailing byte":      rawToken(append(bytes.Clone(valid), 0)),
		"unsorted actors":    rawToken(rawVV([]byte{1}, []rawEntry{{"b", 1, nil}, {"a", 1, nil}})),
		"duplicate actors":   rawToken(rawVV([]byte{1}, []rawEntry{{"a", 1, nil}, {"a", 1, nil}})),
		"zero counter":       rawToken(rawVV([]byte{1}, []rawEntry{{"a", 0, nil}})),
		"empty actor":        rawToken(rawVV([]byte{1}, []rawEntry{{"", 3, nil}})),
		"actor too long":     rawToken(rawVV([]byte{1}, []rawEntry{{strings.Repeat("a", MaxActorLen+1), 3, nil}})),
	}
	for n := range len(valid) {
		cases[fmt.Sprintf("truncated to %d bytes", n)] = rawToken(valid[:n])
	}
	for name, tok := range cases {
		if tok == "" {
			continue // the empty token is the empty context
		}
		if v, err := DecodeContext(tok); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: DecodeContext(%q) = %v, %v; want ErrMalformed", name, tok, v, err)
		}
	}
	if v, err := DecodeContext(rawToken(valid)); err != nil || !v.Equal(VersionVector{e("a", 1), e("b", 7)}) {
		t.Fatalf("hand-made valid token: %v, %v", v, err)
	}
}

// DecodeState's result must not alias its input: storage engines reuse
// the buffers they hand out.
func TestDecodeStateDoesNotAlias(t *testing.T) {
	for i, st := range sampleStates(t, 300) {
		enc, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeState(enc)
		if err != nil {
			t.Fatal(err)
		}
		for j := range enc {
			enc[j] ^= 0xff
		}
		if !got.Equal(st) {
			t.Fatalf("state %d: mutating the input changed the decoded state:\n got  %+v\n want %+v", i, got, st)
		}
	}
}

// AppendBinary grows its buffer once, by encodedLenBound: never less than
// the encoding, and more only by the actor indexes' slack.
func TestEncodedLenBound(t *testing.T) {
	for _, x := range []uint64{0, 1, 127, 128, 16383, 16384, 1<<62 - 1, 1 << 62, math.MaxUint64} {
		if got, want := uvarintLen(x), len(binary.AppendUvarint(nil, x)); got != want {
			t.Errorf("uvarintLen(%d) = %d, want %d", x, got, want)
		}
		for _, v := range []int64{int64(x), -int64(x), int64(x) - 1} {
			if got, want := varintLen(v), len(binary.AppendVarint(nil, v)); got != want {
				t.Errorf("varintLen(%d) = %d, want %d", v, got, want)
			}
		}
	}
	for _, v := range []int64{math.MinInt64, math.MaxInt64, -64, -65, 63, 64} {
		if got, want := varintLen(v), len(binary.AppendVarint(nil, v)); got != want {
			t.Errorf("varintLen(%d) = %d, want %d", v, got, want)
		}
	}
	for i, st := range sampleStates(t, 500) {
		enc, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		bound := st.encodedLenBound()
		if slack := bound - len(enc); slack < 0 || slack > len(st.Siblings)*(uvarintLen(uint64(len(st.Context)))-1) {
			t.Fatalf("state %d: bound %d for an encoding of %d bytes", i, bound, len(enc))
		}
	}
}
