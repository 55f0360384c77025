package ring

import (
	"fmt"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// DefaultPartitions is Q when a cluster is created without a choice.
const DefaultPartitions = 1024

// HashKey returns the key's position on the 64-bit ring.
func HashKey(key []byte) uint64 { return xxhash.Sum64(key) }

// Partitioner maps key hashes to one of Q equal partitions.
type Partitioner struct {
	q     int
	shift uint
}

// NewPartitioner returns a Partitioner for q partitions; q must be a power
// of two between 1 and 2^16.
func NewPartitioner(q int) (Partitioner, error) {
	if q < 1 || q > 1<<16 || q&(q-1) != 0 {
		return Partitioner{}, fmt.Errorf("ring: partition count %d is not a power of two in [1, 65536]", q)
	}
	return Partitioner{q: q, shift: uint(64 - bits.TrailingZeros(uint(q)))}, nil
}

// Partitions returns Q.
func (p Partitioner) Partitions() int { return p.q }

// Of returns the partition of a key hash.
func (p Partitioner) Of(hash uint64) uint32 {
	if p.shift == 64 {
		return 0
	}
	return uint32(hash >> p.shift)
}

// OfKey returns the partition of a key.
func (p Partitioner) OfKey(key []byte) uint32 { return p.Of(HashKey(key)) }
