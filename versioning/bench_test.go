package versioning

import (
	"bytes"
	"fmt"
	"testing"
)

// benchStates builds, for n actors: a coordinator state holding one
// sibling from each actor (so its context has n actors), the context of
// a client that read it, the client's new sibling, and another replica's
// state with one more write, concurrent with the client's.
func benchStates(tb testing.TB, n int) (base State, ctx VersionVector, sib Sibling, other State) {
	tb.Helper()
	value := bytes.Repeat([]byte("v"), 100)
	actor := func(i int) string { return fmt.Sprintf("node-%02d", i) }
	for i := range n {
		var err error
		base, err = base.Update(nil, Sibling{Dot: Dot{actor(i), uint64(1000 + i)}, Value: value, ContentType: "text/plain", Modified: 1_700_000_000_000})
		if err != nil {
			tb.Fatal(err)
		}
	}
	ctx = base.Context
	// Another node (node-01) wrote at the other replica; the client's write
	// goes through node-00.
	other, err := base.Update(nil, Sibling{Dot: Dot{actor(1), 5000}, Value: value, Modified: 1_700_000_000_001})
	if err != nil {
		tb.Fatal(err)
	}
	sib = Sibling{Dot: Dot{actor(0), 6000}, Value: value, ContentType: "text/plain", Modified: 1_700_000_000_002}
	return base, ctx, sib, other
}

func BenchmarkUpdateSyncEncode(b *testing.B) {
	for _, n := range []int{1, 3, 10} {
		b.Run(fmt.Sprintf("actors=%d", n), func(b *testing.B) {
			base, ctx, sib, other := benchStates(b, n)
			if len(base.Context) != n || len(base.Siblings) != n {
				b.Fatalf("base state has %d actors, %d siblings; want %d", len(base.Context), len(base.Siblings), n)
			}
			var buf []byte
			var merged State
			b.ReportAllocs()
			for b.Loop() {
				s, err := base.Update(ctx, sib)
				if err != nil {
					b.Fatal(err)
				}
				merged = Sync(s, other)
				if buf, err = merged.AppendBinary(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(EncodeContext(ctx))), "ctx-bytes")
			b.ReportMetric(float64(len(buf)), "state-bytes")
			b.ReportMetric(float64(len(merged.Siblings)), "siblings")
		})
	}
}

func BenchmarkDecodeState(b *testing.B) {
	for _, n := range []int{1, 3, 10} {
		b.Run(fmt.Sprintf("actors=%d", n), func(b *testing.B) {
			base, ctx, sib, other := benchStates(b, n)
			s, err := base.Update(ctx, sib)
			if err != nil {
				b.Fatal(err)
			}
			enc, err := Sync(s, other).MarshalBinary()
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeState(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeContext(b *testing.B) {
	for _, n := range []int{1, 3, 10} {
		b.Run(fmt.Sprintf("actors=%d", n), func(b *testing.B) {
			base, _, _, _ := benchStates(b, n)
			tok := EncodeContext(base.Context)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeContext(tok); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(tok)), "ctx-bytes")
		})
	}
}
