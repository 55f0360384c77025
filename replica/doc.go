// Package replica serves client reads and writes: it picks the replicas of
// a key, applies writes with fresh dots, and counts acknowledgements
// against the request's quorum.
//
// Quorum rules. N is the replication factor, capped at the number of ring
// members (Neff). A level is one, quorum (⌊Neff/2⌋+1), all (Neff) or a
// number k in 1..N; a number above Neff is capped at Neff, so every level
// is satisfiable when every replica answers. pr / pw count only primary
// replicas. A quorum that cannot be met fails with an UnavailableError.
//
// This version is the single-node path: the ring has one member, the
// local store is the only replica, and every level needs exactly its ack.
package replica
