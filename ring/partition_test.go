package ring

import (
	"math"
	"testing"
)

func TestNewPartitionerRejectsNonPowersOfTwo(t *testing.T) {
	for _, q := range []int{0, -1, 3, 1000, 1 << 17} {
		if _, err := NewPartitioner(q); err == nil {
			t.Errorf("NewPartitioner(%d): want error", q)
		}
	}
}

func TestPartitionBoundaries(t *testing.T) {
	for _, q := range []int{1, 2, 1024, 1 << 16} {
		p, err := NewPartitioner(q)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Of(0); got != 0 {
			t.Errorf("q=%d: Of(0) = %d, want 0", q, got)
		}
		if got := p.Of(math.MaxUint64); got != uint32(q-1) {
			t.Errorf("q=%d: Of(max) = %d, want %d", q, got, q-1)
		}
		// The first hash of partition i is i << (64-log2 q).
		if q > 1 {
			step := uint64(math.MaxUint64)/uint64(q) + 1
			if got := p.Of(step); got != 1 {
				t.Errorf("q=%d: Of(%d) = %d, want 1", q, step, got)
			}
			if got := p.Of(step - 1); got != 0 {
				t.Errorf("q=%d: Of(%d) = %d, want 0", q, step-1, got)
			}
		}
	}
}

func TestKeysSpreadOverPartitions(t *testing.T) {
	p, _ := NewPartitioner(64)
	counts := make([]int, 64)
	const n = 64 * 1000
	for i := range n {
		counts[p.OfKey([]byte{byte(i), byte(i >> 8), byte(i >> 16), 'k'})]++
	}
	for i, c := range counts {
		if c < 800 || c > 1200 {
			t.Errorf("partition %d holds %d of %d keys, want about 1000", i, c, n)
		}
	}
}
