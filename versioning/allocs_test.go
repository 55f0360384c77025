package versioning

import "testing"

// The request path encodes, decodes and merges states on every write and
// read; these bounds keep their allocations from creeping back. (Under
// -race the invariant checks allocate, so the test runs without it.)
func TestAllocations(t *testing.T) {
	if invariantsEnabled {
		t.Skip("invariant checks allocate")
	}
	st := oneSibling(t)
	enc, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	next, err := st.Update(st.Context, Sibling{Dot: Dot{"node-00-3f9a2c1b", 1_000_001}, Value: []byte("new")})
	if err != nil {
		t.Fatal(err)
	}
	tok := EncodeContext(next.Context)
	keys, err := NewContextKeys([]byte("test cluster secret, 32 bytes..!"))
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("cart")
	signed := keys.Seal(key, next.Context)
	buf := make([]byte, 0, 2*len(enc))
	for _, c := range []struct {
		name string
		max  float64
		f    func()
	}{
		{"MarshalBinary", 1, func() { _, _ = st.MarshalBinary() }},
		{"AppendBinary into room", 0, func() { buf, _ = st.AppendBinary(buf[:0]) }},
		// The copy of the input, the context, its actor IDs, the siblings.
		{"DecodeState", 4, func() { _, _ = DecodeState(enc) }},
		{"Sync with an equal state", 0, func() { _ = Sync(st, st) }},
		{"Sync with a superseding state", 0, func() { _ = Sync(st, next) }},
		{"EncodeContext", 1, func() { _ = EncodeContext(next.Context) }},
		// The decoded bytes, the vector, its actor IDs, the extra dot.
		{"DecodeContext", 4, func() { _, _ = DecodeContext(tok) }},
		// The token string; the keyed HMACs are pooled.
		{"ContextKeys.Seal", 1, func() { _ = keys.Seal(key, next.Context) }},
		// As DecodeContext.
		{"ContextKeys.Open", 4, func() { _, _ = keys.Open(key, signed) }},
	} {
		if got := testing.AllocsPerRun(100, c.f); got > c.max {
			t.Errorf("%s: %v allocations, want at most %v", c.name, got, c.max)
		}
	}
}
