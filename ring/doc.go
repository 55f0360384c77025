// Package ring places keys on partitions and partitions on nodes.
//
// The 64-bit hash space (xxhash of the key) is split into Q fixed, equal
// partitions, Q a power of two: partition = hash >> (64 - log2 Q). A
// partition is the unit of placement, Merkle trees, hints and handoff.
// The package is pure: no I/O, no goroutines, no clocks.
package ring
