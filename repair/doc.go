// Package repair makes replicas converge after failures, in the
// background of the request paths (read repair, on the read path, is
// package replica's). It holds:
//
//   - hinted handoff's delivery side (Deliverer): a node that kept hints
//     for a target (because the target did not acknowledge writes) sends
//     them to it in batches as soon as gossip no longer sees it dead, and
//     deletes each hint only after the target acknowledged it — and only
//     if the hint did not change meanwhile (a newer write coalesced into
//     it is delivered on the next round). Delivery is idempotent: the
//     target merges what it receives with versioning.Sync, so a batch
//     delivered twice (a crash between the target's ack and the delete)
//     changes nothing.
//   - the merge_states RPC (MethodMergeStates, HandleMergeStates) that
//     carries those batches and anti-entropy's pushes: key states for the
//     receiver to merge into its records, encoded with internal/wire like
//     every internode message, and refused whole when malformed.
//   - the Merkle trees (Trees): per partition, one leaf per storage key
//     bucket under 32 mid nodes under a root, every level the XOR of the
//     (key, version) hashes below it, so the store's record observer
//     keeps them up to date in O(1) per write.
//   - the tombstone index (Tombstones): the records that hold only
//     tombstones, the candidates for collection, kept by the same
//     observer.
//   - Rebuild, which recomputes the trees and the tombstone index from
//     the store in one scan at start (both live only in memory).
//   - active anti-entropy (Engine): every interval an exchange with the
//     next live peer compares the trees of every partition both replicate,
//     top-down, one round trip per level, and syncs the keys of differing
//     leaves both ways through versioning.Sync, rate-limited and in
//     bounded batches; then tombstone collection deletes tombstone-only
//     records whose grace period has passed and that every other primary
//     of the key holds as tombstones too, or has already dropped.
package repair
