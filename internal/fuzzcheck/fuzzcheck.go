// Package fuzzcheck holds checks the fuzz targets of several packages
// share: today, that a decoder's allocation stays bounded by its input.
package fuzzcheck

import (
	rtmetrics "runtime/metrics"
	"testing"
)

// Allocs fails t if fn, a decoding of n input bytes, allocates more than
// a few MiB beyond 64 bytes per input byte: a length prefix or count must
// never make a decoder allocate what the input cannot back. Other
// goroutines allocate meanwhile (and small allocations are counted a span
// at a time), so only a bound exceeded on three runs fails.
func Allocs(t testing.TB, what string, n int, fn func()) {
	t.Helper()
	limit := uint64(4<<20 + 64*n)
	var least uint64
	for i := range 3 {
		before := heapAllocs()
		fn()
		grew := heapAllocs() - before
		if i == 0 || grew < least {
			least = grew
		}
		if least <= limit {
			return
		}
	}
	t.Fatalf("%s of %d bytes allocated %d bytes", what, n, least)
}

func heapAllocs() uint64 {
	s := []rtmetrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}
