// Package replica serves client reads and writes: it picks the replicas of
// a key, applies writes with fresh dots, replicates them, and counts
// acknowledgements against the request's levels.
//
// Quorum rules. N is the replication factor, capped at the number of ring
// members (Neff). A level is one, quorum (⌊Neff/2⌋+1), all (Neff) or a
// number k in 1..N; a number above Neff is capped at Neff, so every level
// is satisfiable when every replica answers. A quorum that cannot be met
// fails with an UnavailableError — before anything is written when too
// few replicas are reachable.
//
// Writes. A primary of the key coordinates (the receiving node forwards
// one hop otherwise, retrying another primary only if the request was
// certainly not delivered): it writes locally with a fresh dot of its
// actor (claiming the prefix of its events: it keeps all it issued) and
// sends the new state to the other replicas in parallel; replication
// continues after the client is answered.
//
// Sloppy quorums and hints. Each primary's copy goes to the primary or,
// when it is dead or a send to it fails, to the next free fallback of the
// preference list, which keeps it as a hint naming the primary (never as
// its own data). Fallback acknowledgements count toward W and R, never
// toward PW and PR. A copy nobody took becomes a hint kept by the
// coordinator. When no primary can be reached, the receiving node
// coordinates as a fallback, with a separate actor and exact dots
// (versioning.State.UpdateExact). DisableHints turns all of this off.
//
// Reads ask every holder of a copy and merge the first R answers; every
// contacted replica whose answer differs from the merge of all answers
// gets the merged state (read repair), in the background or, with
// SyncRepair, before the answer. A node that has not joined its cluster
// yet refuses client requests (ErrNotReady).
//
// Limits and shutdown. The store refuses a client write that would leave
// its key beyond its record limits (LimitError, carried back to a
// forwarding node). Close refuses new requests (ErrClosed) and waits for
// those in flight and the replication they started.
//
// Layout. The pure parts are a plan (plan.go: which node holds each
// primary's copy, and the spare fallbacks) and a tally (tally.go: acks and
// primary acks against the levels; met, hopeless, and the typed error). A
// request fails as soon as its tally is hopeless, counting the replies that
// have already arrived. The coordinator (write.go, read.go) is a short
// driver of plan, tally and the Peer transport; handlers.go serves the
// peers' RPCs and wire.go encodes them. The design is in docs/design.md §5.
package replica
