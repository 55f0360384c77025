// Package versioning implements dotkv's causality tracking: dotted version
// vectors kept as a dotted causal container per key.
//
// A stored key is a State: a set of siblings, each tagged with the dot
// (actor, counter) of the write that made it, plus a causal context — the
// set of every event the state has seen, live or superseded.
//
// A VersionVector represents such a set of events exactly: per actor a
// contiguous prefix 1..m plus a few single extra events (the dotted entry
// (m, n) of the DVV literature, generalised). Extra events come only from
// the context a PUT returns: the client's context plus the new write's dot,
// which must not claim the writer's earlier dots — those may be concurrent
// siblings the client never saw.
//
// Rules:
//
//   - A coordinator may claim a whole prefix of its own actor: it keeps
//     every event it has issued for the key in its durable local state.
//     When that premise fails (a replica lost data) the actor ID must
//     change; see storage's incarnation handling.
//   - Update (a coordinator applying a client write with context C):
//     drop every local sibling whose dot C covers, add the new sibling with
//     a fresh dot, and join C and the new dot into the state's context.
//     A write without a context (C empty) covers nothing: it adds a sibling.
//     The dot must be above every event of its actor that the state or C
//     holds (ErrDotReused otherwise): dots are never reused.
//   - Sync (merging two replica states): keep a sibling if the other side
//     holds it too or has never seen its dot; the contexts join. Sync is
//     commutative, associative and idempotent.
//
// Clients never see dots. A read returns an opaque context token
// (EncodeContext of the merged state's context); a write sends it back.
//
// The package is pure: no I/O, no goroutines, no clocks. Under -race or
// -tags invariants, every state Update and Sync produce is validated.
package versioning
