// Package handoff holds partition transfers for elastic membership: a node
// that receives a partition in a membership change (ring.View.Receiving)
// pulls its records from a current owner in cursor-paged, acknowledged
// batches, merges them into its store, confirms the copy with a Merkle
// exchange with the source (and, best effort, every other current owner),
// and then reports the partition as received so gossip can
// switch it to its new owners. The Engine runs the receiving side and
// serves the pulling RPC; Transfer describes a transfer for status pages.
package handoff
