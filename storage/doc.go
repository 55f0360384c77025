// Package storage is dotkv's durable engine: one pebble database per node.
//
// Key layout by prefix:
//
//	'r' | partition (uint32 BE) | user key   → encoded versioning.State
//	'm' | name                               → node metadata
//
// so that a partition is one contiguous range (for Merkle rebuilds and
// handoff). Every read-modify-write of a record runs under a striped
// per-key lock, so concurrent writes to one key serialize while writes to
// different keys proceed (and share pebble's group-committed fsyncs).
//
// Dot safety. A node's actor ID is its node ID plus an incarnation, a
// random number created with the data directory. Counters for new dots
// come from one node-wide counter leased in blocks whose upper bound is
// always synced before any dot from the block is used, so a dot is never
// issued twice — not after a restart, not when a key has no local state.
// When the previous process stopped uncleanly while running with
// --fsync never, recent records may be lost locally although replicas
// already hold them; the node then takes a new incarnation (a new actor),
// so that its next writes cannot be mistaken for the lost ones (Riak's
// kv679). With --fsync always every record is synced before it is
// acknowledged or shipped, and the incarnation is kept.
package storage
