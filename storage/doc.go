// Package storage is dotkv's durable engine: one pebble database per node.
//
// Key layout by prefix:
//
//	'r' | partition (uint32 BE) | bucket (uint16 BE) | user key
//	                                         → encoded versioning.State
//	'h' | uvarint len(target) | target |
//	      partition (uint32 BE) | user key   → encoded versioning.State (a hint)
//	'm' | name                               → node metadata
//
// so that a partition is one contiguous range, and so is each of its
// Buckets key buckets (the leaves of the anti-entropy Merkle tree). Every read-modify-write of a record runs under a striped
// per-key lock, so concurrent writes to one key serialize while writes to
// different keys proceed (and share pebble's group-committed fsyncs).
//
// Hinted handoff. When a replica (the target) did not acknowledge a
// write, the coordinator keeps the key's state for it as a hint, durable
// like a record (written with the node's fsync mode). Hints are keyed by
// target, then partition and key, so one target's hints are one
// contiguous range that a handoff scans in order; the length before the
// target ID keeps "n1"'s range apart from "n10"'s. Repeated writes to a
// key while its target is down coalesce: PutHint stores versioning.Sync
// of the hint already there and the new state, under a per-hint striped
// lock, so a target is owed one state per key however often the key was
// written. Hints are bounded per target (HintLimits: count and bytes,
// counted in memory and rebuilt from the 'h' range at Open); a new key
// beyond the bound is refused with ErrHintsFull and counted in
// HintOverflows, never dropped silently, and anti-entropy repairs it.
// Merging into an existing hint is always allowed. A delivered hint is
// removed with DeleteHintIfUnchanged, which deletes only if the stored
// bytes are still those the scan read: a hint that coalesced a newer write
// after the scan holds state the target has not acknowledged, and stays.
//
// Record limits. A client write (Write, WriteDeferSync) that would leave
// its key with more siblings or encoded bytes than Limits allows is
// refused with a *LimitError in the same read-modify-write, before it is
// stored and, for siblings, before a dot is issued. Merges of replica
// states are never refused, only counted (LimitCounts).
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
