// Package versioning implements dotkv's causality tracking: dotted version
// vectors kept as a dotted causal container per key.
//
// A stored key is a State: a set of siblings, each tagged with the dot
// (actor, counter) of the write that made it, plus a causal context — a
// version vector of every dot the state has seen, live or superseded.
//
// Rules (the DVV / dvvset literature, expressed over a causal container):
//
//   - A version vector entry actor→m means "all of actor's writes 1..m".
//     The vector is exact only if every state that learns (actor, m) has
//     also learned every earlier dot that actor issued for the same key.
//     That holds because only the actor itself mints its dots, always on
//     top of its own durable local state, and ships the whole merged state.
//     When that premise fails (a replica lost data), the actor ID must
//     change; see storage's incarnation handling.
//   - Update (a coordinator applying a client write with context C):
//     drop every local sibling whose dot C covers, add the new sibling with
//     a fresh dot, and join C and the new dot into the state's context.
//     A write without a context (C empty) covers nothing: it adds a sibling.
//   - Sync (merging two replica states): keep a sibling if the other side
//     holds it too or has never seen its dot. The contexts join. Sync is
//     commutative, associative and idempotent.
//   - Dots are never reused: Update refuses a dot its state or the client's
//     context already covers (ErrDotReused).
//
// Clients never see dots. A read returns an opaque context token
// (EncodeContext of the merged state's context); a write sends it back.
//
// The package is pure: no I/O, no goroutines, no clocks.
package versioning
