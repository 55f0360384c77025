// Package transport owns node-to-node communication: the internode RPC
// client and server, and the fault filter every node-to-node path goes
// through (docs/design.md §9.2 and §9.3).
//
// # Protocol
//
// A Client keeps one TCP connection per peer and multiplexes every call to
// that peer on it: each request is a frame with a call ID, the method, the
// caller's deadline and the body; replies come back in any order with the
// same ID (frame.go has the layout). One writer goroutine per connection
// coalesces whatever frames are queued into a single write. The server
// hands each request to an idle handler goroutine (or starts one; they live
// across calls, so their stacks are grown once) and queues the reply on
// the same connection.
//
// Semantics kept from the HTTP/1.1 transport this replaced:
//   - A call is "not delivered" (NotDelivered) only when its request
//     certainly never left: a blocked or unknown peer, a refused dial, a
//     request still queued when the connection failed or the call ended.
//     A connection that fails before a request was written is redialled
//     once. Anything else is outcome unknown.
//   - Messages are bounded by MaxMessage (64 MiB); handler errors come
//     back as *RemoteError.
//   - Outgoing connections use the node's own RPC host as their source
//     address, so iptables rules between node addresses apply.
//
// New: a request carries its deadline (the caller's context deadline, as
// Unix time) and the server drops one that arrives after it, unhandled
// (a 504 RemoteError) — a request held up by TCP retransmission across a
// partition is not applied long after its caller gave up. This assumes
// the nodes' clocks agree to well within request timeouts (NTP; on one
// host they are the same clock). The handler's context carries the same
// deadline and ends when the caller's connection does. A call's own
// cancellation before its deadline is not sent to the server. At most
// 4096 calls are in flight per connection; further callers wait. A call
// that times out on a connection from which nothing was read during its
// whole life closes that connection, so that a silently cut link is
// redialled rather than queued on.
//
// # TLS
//
// With WithTLS (certs.Source.PeerServer for the server,
// certs.Source.PeerClient for the client), connections are mutual TLS:
// each end verifies the other's certificate against the cluster CA. The
// server runs the handshake in the connection's goroutine within the
// hello timeout, and reads nothing before it succeeds, so a caller
// without a certificate from the CA reaches no handler; refusals are
// counted (TLSRefused) and logged at debug level, at warn level at most
// once a minute. A TLS server answers the caller's hello with its own and
// the client sends no request before that answer (with TLS 1.3 the
// client's handshake completes before the server has checked the
// client's certificate): a failed handshake or hello exchange is a failed
// dial, not delivered. Certificates reloaded by the Source apply to new
// connections; established ones keep theirs.
//
// # Frame sizes
//
// The hello, read before the caller is known, is at most 268 bytes. A
// body over 1 MiB is read into a buffer that grows as its bytes arrive,
// so a frame's declared size alone cannot make the reader allocate more
// than about 1 MiB.
//
// # Why a protocol of our own
//
// Measured on one loopback micro-benchmark (1 KiB request echoed, one
// client shared by 1, 8 or 64 callers, 2 cores; the table is in
// docs/design.md §9.2), CPU per call summed over both sides: HTTP/1.1
// 93–116 µs, gRPC (raw bytes codec, one HTTP/2 connection) 76–117 µs,
// storj.io/drpc 73–90 µs (it runs one call at a time per connection), and
// this protocol 13–39 µs, with 17 allocations per call against 96 (HTTP)
// and ~150 (gRPC). gRPC's HTTP/2 framing, flow control and per-stream
// goroutines bring nothing dotkv uses (streaming, metadata, service
// descriptors). The protocol is small (frame.go, conn.go) and its failure
// semantics are exactly the ones the replica layer depends on.
//
// # Fault filter
//
// The filter drops all traffic to and from blocked peers. RPC traffic is
// filtered by node ID (the caller names itself in its connection's hello)
// and by address; memberlist packets and streams are filtered by host, so
// fault injection needs every node on its own loopback address (127.0.0.11,
// .12, ...), as `dotkv dev` and the test harness arrange. A server drops a
// blocked caller's connection without answering, as a cut link would.
package transport
