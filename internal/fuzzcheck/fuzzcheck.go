// Package fuzzcheck holds checks the fuzz targets of several packages
// share: that a decoder's allocation stays bounded by its input, and
// dumps of what a node stores, to tell what a request changed.
package fuzzcheck

import (
	"bytes"
	rtmetrics "runtime/metrics"
	"slices"
	"testing"

	"github.com/dotkv/dotkv/versioning"
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

// Dump is what a node stores, by name, as stored bytes: a fuzz target
// takes one before and one after a request and compares them.
type Dump map[string][]byte

// Changed returns, sorted, the names whose bytes differ between d and
// after (changed, added or removed).
func (d Dump) Changed(after Dump) []string {
	var out []string
	for k, v := range d {
		if w, ok := after[k]; !ok || !bytes.Equal(v, w) {
			out = append(out, k)
		}
	}
	for k := range after {
		if _, ok := d[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// State returns the state stored under name (zero if absent); one that
// does not decode fails tb.
func (d Dump) State(tb testing.TB, name string) versioning.State {
	tb.Helper()
	raw, ok := d[name]
	if !ok {
		return versioning.State{}
	}
	st, err := versioning.DecodeState(raw)
	if err != nil {
		tb.Fatalf("%s holds an undecodable state: %v", name, err)
	}
	return st
}
