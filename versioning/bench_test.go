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

// oneSibling returns the state a key holds after one 1 KiB write through
// a node: one sibling, a one-actor context. It is the common case on the
// request path (store reads and writes, replication messages).
func oneSibling(tb testing.TB) State {
	tb.Helper()
	st, err := State{}.Update(nil, Sibling{
		Dot:         Dot{"node-00-3f9a2c1b", 1_000_000},
		Value:       bytes.Repeat([]byte("v"), 1024),
		ContentType: "application/octet-stream",
		Modified:    1_700_000_000_000,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// BenchmarkState1KiB measures each codec and merge step alone on a
// one-sibling 1 KiB state: encode (into a fresh buffer, as the store
// does), append (into a reused one), decode, Sync with an equal state (a
// replica merging what it holds), Sync with a newer state (a replica
// merging a write that supersedes its copy) and Update (a coordinator's
// write over its copy, with the context the client read).
func BenchmarkState1KiB(b *testing.B) {
	st := oneSibling(b)
	enc, err := st.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	next, err := st.Update(st.Context, Sibling{Dot: Dot{"node-00-3f9a2c1b", 1_000_001}, Value: st.Siblings[0].Value, ContentType: "application/octet-stream"})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.MarshalBinary(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		buf := make([]byte, 0, len(enc))
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			if buf, err = st.AppendBinary(buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeState(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sync-equal", func(b *testing.B) {
		other, err := DecodeState(enc)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if len(Sync(st, other).Siblings) != 1 {
				b.Fatal("Sync lost the sibling")
			}
		}
	})
	b.Run("sync-newer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if s := Sync(st, next); len(s.Siblings) != 1 || s.Siblings[0].Dot != next.Siblings[0].Dot {
				b.Fatal("Sync kept the superseded sibling")
			}
		}
	})
	b.Run("update", func(b *testing.B) {
		sib := next.Siblings[0]
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.Update(st.Context, sib); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkContextRoundTrip encodes and decodes the token a PUT returns
// (one actor's prefix plus the new write's dot) and the one a GET of a
// one-sibling key returns (one actor's prefix).
func BenchmarkContextRoundTrip(b *testing.B) {
	read := oneSibling(b).Context
	write := read.AddDot(Dot{"node-00-3f9a2c1b", 1_000_005})
	for _, c := range []struct {
		name string
		vv   VersionVector
	}{{"read", read}, {"write", write}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, err := DecodeContext(EncodeContext(c.vv))
				if err != nil || len(got) != 1 {
					b.Fatalf("round trip: %v, %v", got, err)
				}
			}
			b.ReportMetric(float64(len(EncodeContext(c.vv))), "ctx-bytes")
		})
	}
}

// BenchmarkAddDot makes the context a PUT returns: the client's context
// plus the new write's dot, for a client that read the key (prefix), and
// one that wrote it blind (empty context).
func BenchmarkAddDot(b *testing.B) {
	read := oneSibling(b).Context
	dot := Dot{"node-00-3f9a2c1b", 1_000_005}
	for _, c := range []struct {
		name string
		vv   VersionVector
	}{{"read", read}, {"blind", nil}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !c.vv.AddDot(dot).Covers(dot) {
					b.Fatal("AddDot lost the dot")
				}
			}
		})
	}
}

// BenchmarkContextSealOpen signs the token a PUT returns (Seal: the
// vector, the key's hash and an HMAC-SHA256) and verifies it (Open), the
// MAC's cost on every request that carries or returns a context.
func BenchmarkContextSealOpen(b *testing.B) {
	keys, err := NewContextKeys([]byte("a 32-byte cluster secret, for us."))
	if err != nil {
		b.Fatal(err)
	}
	key := []byte("user:1234567890")
	vv := oneSibling(b).Context.AddDot(Dot{"node-00-3f9a2c1b", 1_000_005})
	token := keys.Seal(key, vv)
	b.Run("seal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = keys.Seal(key, vv)
		}
		b.ReportMetric(float64(len(token)), "ctx-bytes")
	})
	b.Run("open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := keys.Open(key, token); err != nil {
				b.Fatal(err)
			}
		}
	})
}
