// Package transport owns node-to-node communication: the internode RPC
// client and server, and the fault filter every node-to-node path goes
// through (docs/design.md §9.2 and §9.3).
//
// The filter drops all traffic to and from blocked peers. RPC traffic is
// filtered by node ID (the caller names itself in a header); memberlist
// packets and streams are filtered by host, so fault injection needs every
// node on its own loopback address (127.0.0.11, .12, ...), as `dotkv dev`
// and the test harness arrange.
package transport
