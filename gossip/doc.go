// Package gossip is a node's view of the cluster: who is in the ring
// (membership) and who is reachable right now (liveness). It runs
// hashicorp/memberlist (SWIM gossip, joins, failure detection) and keeps,
// on top of it, a replicated ring state (docs/design.md §8).
//
// # Ring state
//
// The ring state maps node ID → {status, version, HTTP, RPC and gossip
// addresses}. Merges keep, per node, the entry with the higher version
// (ties broken by a fixed order on the contents), so the state is a CRDT:
// merging commutes, associates and is idempotent, and it is safe to merge
// whatever arrives, in any order, any number of times. It spreads through
// memberlist's push-pull (LocalState / MergeRemoteState: full state, on
// join and every PushPullInterval) and through broadcasts of each changed
// entry piggybacked on gossip, for speed. Every change is persisted
// (Store metadata "gossip/ring") and the state is loaded at Start, so a
// restarted node knows the ring, and its peers' addresses, before it has
// talked to anyone.
//
// A node writes its own entry (addresses, status, the partitions it has
// received in the change in progress, the ring version it applied); an
// operator's remove, a replacement, and the completion of a removal
// write the entry of a node that is gone.
//
// # Membership changes
//
// Joining, leaving, removed (leaving and gone) and replaced nodes are
// pending changes; one runs at a time, the earliest requested first
// (plan.go). Its view (ring.View) has the current ring (members and
// leaving nodes) and the target ring; a partition whose owners change
// switches to the target's once every new owner reported it received,
// and the change completes when all have: the joiner becomes a member,
// the leaver left, the removed node removed. Gen counts the ownership
// changes of an entry, and the sum of Gens is the view's epoch, which
// requests carry. A node started with no ring state waits to learn the
// cluster's before it claims its entry (joining; as its own replacement
// if the cluster knew it as a member; as Config.Replace's replacement),
// or forms a new cluster only with Config.NewCluster when no Join
// address answers. Liveness never moves ownership: a dead node keeps its
// partitions until it is removed.
//
// # Liveness
//
// Alive, suspect or dead, from memberlist. Dead means memberlist declared
// the node dead or left, or does not know it. Suspect means memberlist
// has not, but this node's latest direct probe of it failed. memberlist
// v0.7.0 offers no race-free way to read its own suspect state (Members
// returns pointers into structs it rewrites under its lock, memberlist
// issue #306, and no callback fires on alive→suspect), so gossip reads
// only node names from Members, copies node data inside the event
// callbacks, and learns probe outcomes from the PingDelegate and the
// DisableTcpPingsForNode hook. Liveness(id) is an atomic load and a map
// lookup.
//
// # Healing
//
// memberlist stops probing and gossiping to a dead node after
// GossipToTheDeadTime, so a long partition would never heal by itself.
// A rejoin loop joins, periodically, the seeds when this node is alone
// and every ring member that is not alive, at its last known gossip
// address. A restarted node needs no seeds: its persisted ring state
// names its old peers. DeadNodeReclaimTime lets a node that crashed come
// back on a new port.
//
// # Faults
//
// Every memberlist packet and stream passes through a decorator of
// memberlist's NetTransport that drops traffic to and from the hosts of
// nodes the transport.Filter blocks, and that makes outgoing TCP
// connections from the node's own gossip IP, so that iptables rules
// between per-node loopback addresses cut them too.
//
// # Encryption
//
// With Config.Keys (--gossip-key-file), memberlist encrypts every packet
// and stream with AES-GCM under the primary key and accepts only what one
// of the keys decrypts; a node with another key, or none, cannot join,
// and a fresh node with Config.NewCluster refuses to form a cluster of
// its own when its Join addresses answer under another key
// (ErrKeyMismatch). SetKeys rotates the keys of a running node
// (keys.go). Everything gossip sends, ring state and the cluster secret
// included, is then encrypted. Without keys gossip is plain text, and
// the cluster secret crosses the network readable (secret.go).
//
// # Concurrency
//
// One goroutine owns the ring state and everything derived from it;
// memberlist's callbacks hand it their observations through an inbox and
// never block or call back into memberlist (docs/design.md §8.6). It
// publishes immutable snapshots (ring, members with liveness, encoded
// state) through atomic pointers. Close stops and waits for every
// goroutine gossip started.
package gossip
