// Package memnet is an in-memory network for cluster tests: node-to-node
// RPC (this file) and memberlist gossip (gossip.go) between nodes in one
// process, with seeded faults (drops, delays) and partitions, and no
// kernel sockets.
//
// Every delay is a time.Timer, so a cluster on memnet runs under
// testing/synctest's virtual time.
//
// # Reachability
//
// Partition(groups...) splits the named node IDs into groups: two IDs in
// different groups cannot reach each other. An ID named in no group is not
// partitioned: it reaches everyone (so Partition([]string{"n1"},
// []string{"n2"}) cuts only the n1–n2 link). Each Partition call replaces
// the previous partition. Isolate(ids...) cuts each given ID from every
// other ID, on top of the partition. Partitions and isolation refuse
// traffic (calls fail at once, as with a fault filter or a rejecting
// firewall); Blackhole(ids...) cuts IDs off silently instead (messages are
// lost, callers wait for their timeouts). Heal undoes all three. A node
// always reaches itself.
//
// # RPC semantics (matching package transport)
//
//   - A call from or to an unreachable, unknown or closed endpoint, or to
//     one that does not serve yet (Bind), fails at once with an error for
//     which transport.NotDelivered is true (it wraps transport.ErrBlocked or
//     transport.ErrUnknownPeer, or is a refused dial).
//   - A request or reply lost to Faults.Drop, or to a partition made while
//     it was in flight, is an outcome-unknown loss: the caller waits for its
//     context and gets an error wrapping ctx.Err() (not NotDelivered).
//   - A handler error comes back as a *transport.RemoteError (Status 500),
//     an unknown method as one with Status 404, wrapped as the real client
//     wraps them.
//   - Request and reply bytes are copied across the boundary.
//   - Each delivered request runs its handler in its own goroutine owned by
//     the receiving endpoint; Endpoint.Close waits for them. The handler's
//     context carries no values from the caller and is cancelled when the
//     caller's context is done (as a dropped HTTP connection would).
//   - A call without a deadline gets 5s, as transport.Client gives it.
package memnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/dotkv/dotkv/transport"
)

// Faults are the random faults applied to every message (RPC requests and
// replies, gossip packets, stream writes).
type Faults struct {
	// Drop is the probability that a message is lost.
	Drop float64
	// MinDelay and MaxDelay bound the uniformly random one-way delay of
	// each message.
	MinDelay, MaxDelay time.Duration
}

// ErrClosed is wrapped (with transport.ErrUnknownPeer) by calls to or from
// a closed endpoint.
var ErrClosed = errors.New("memnet: endpoint closed")

// ErrLost is wrapped (with the caller's ctx.Err()) by calls whose request
// or reply was lost.
var ErrLost = errors.New("memnet: message lost")

// ErrTooLarge is wrapped by calls whose reply is over
// transport.MaxMessage: the real client would truncate it (its
// LimitReader), and the caller would fail to decode it. A request over the
// limit gets the real server's answer: a *transport.RemoteError 400.
var ErrTooLarge = errors.New("memnet: message over transport.MaxMessage")

// ErrPeerClosed is wrapped by calls whose destination closed after the
// request left: the outcome is unknown, as after a connection reset.
var ErrPeerClosed = errors.New("memnet: peer closed during the call")

// Network is one in-memory network. Its methods are safe for concurrent
// use.
type Network struct {
	mu struct {
		sync.Mutex
		rng        *rand.Rand
		faults     Faults
		group      map[string]int // node ID → partition group; absent: none
		isolated   map[string]bool
		blackholed map[string]bool
		onDeliver  func(from, to, method string, req []byte)
		endpoints  map[string]*Endpoint
		onCall     func(from, to, method string)
		stats      map[string]*MethodStats
		gossip     gossipState
		listeners  listenerState
	}
}

// MethodStats counts one RPC method's calls.
type MethodStats struct {
	Calls     int // Call invocations
	Blocked   int // failed at once: unreachable, unknown or closed peer
	Lost      int // request or reply lost (drop, or partition in flight)
	Delivered int // handler invoked
	// MaxRequest and MaxReply are the largest request and reply bytes
	// seen (sent, and returned by the handler).
	MaxRequest, MaxReply int
}

// New returns a network with no faults and no partition whose random
// faults draw from a math/rand/v2 PCG source seeded with seed.
func New(seed uint64) *Network {
	n := &Network{}
	n.mu.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n.mu.endpoints = map[string]*Endpoint{}
	n.mu.stats = map[string]*MethodStats{}
	return n
}

// SetFaults sets the random faults for messages sent from now on.
func (n *Network) SetFaults(f Faults) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.faults = f
}

// Partition splits the network: IDs in different groups cannot reach each
// other; IDs in no group reach everyone. It replaces any earlier partition
// (Isolate'd IDs stay isolated). Gossip streams it cuts are broken.
func (n *Network) Partition(groups ...[]string) {
	n.mu.Lock()
	n.mu.group = map[string]int{}
	for i, g := range groups {
		for _, id := range g {
			n.mu.group[id] = i
		}
	}
	n.breakStreams()
}

// Isolate cuts each given ID from every other ID. Gossip streams it cuts
// are broken.
func (n *Network) Isolate(ids ...string) {
	n.mu.Lock()
	if n.mu.isolated == nil {
		n.mu.isolated = map[string]bool{}
	}
	for _, id := range ids {
		n.mu.isolated[id] = true
	}
	n.breakStreams()
}

// Blackhole cuts each given ID from every other ID silently, as a
// powered-off machine or a firewall that drops packets: RPC requests and
// replies to or from it are lost (callers wait for their context), gossip
// packets vanish, stream dials time out, and open streams break.
func (n *Network) Blackhole(ids ...string) {
	n.mu.Lock()
	if n.mu.blackholed == nil {
		n.mu.blackholed = map[string]bool{}
	}
	for _, id := range ids {
		n.mu.blackholed[id] = true
	}
	n.breakStreams()
}

// Heal removes the partition, every isolation and every blackhole.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.group = nil
	n.mu.isolated = nil
	n.mu.blackholed = nil
}

// Reachable reports whether a message from a can reach b now.
func (n *Network) Reachable(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.reachableLocked(a, b)
}

func (n *Network) reachableLocked(a, b string) bool {
	if a == b {
		return true
	}
	if n.mu.isolated[a] || n.mu.isolated[b] || n.mu.blackholed[a] || n.mu.blackholed[b] {
		return false
	}
	ga, oka := n.mu.group[a]
	gb, okb := n.mu.group[b]
	return !oka || !okb || ga == gb
}

// silentLocked reports whether traffic between a and b is silently lost
// (a blackhole) rather than refused.
func (n *Network) silentLocked(a, b string) bool {
	return a != b && (n.mu.blackholed[a] || n.mu.blackholed[b])
}

// OnCall sets a hook called (in the caller's goroutine, before any fault
// applies) for every RPC Call; nil removes it. The hook must not call back
// into the network.
func (n *Network) OnCall(fn func(from, to, method string)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.onCall = fn
}

// OnDeliver sets a hook called with each request delivered to a handler,
// just before the handler runs (in the handler's goroutine, with a copy of
// the request); nil removes it.
func (n *Network) OnDeliver(fn func(from, to, method string, req []byte)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.onDeliver = fn
}

// Stats returns a copy of the per-method RPC counters.
func (n *Network) Stats() map[string]MethodStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]MethodStats, len(n.mu.stats))
	for m, s := range n.mu.stats {
		out[m] = *s
	}
	return out
}

func (n *Network) statLocked(method string) *MethodStats {
	s := n.mu.stats[method]
	if s == nil {
		s = &MethodStats{}
		n.mu.stats[method] = s
	}
	return s
}

// fate draws one message's fate under the current faults: lost, or
// delivered after delay.
func (n *Network) fate() (lost bool, delay time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fateLocked()
}

func (n *Network) fateLocked() (lost bool, delay time.Duration) {
	f := n.mu.faults
	if f.Drop > 0 && n.mu.rng.Float64() < f.Drop {
		return true, 0
	}
	delay = f.MinDelay
	if span := f.MaxDelay - f.MinDelay; span > 0 {
		delay += time.Duration(n.mu.rng.Int64N(int64(span) + 1))
	}
	return false, max(delay, 0)
}

// Listen returns node id's RPC endpoint. It panics if id already has a
// live (not closed) endpoint; after Close, id may Listen again (a restart).
func (n *Network) Listen(id string) *Endpoint {
	e := n.Bind(id)
	e.Serve()
	return e
}

// Bind is Listen for an endpoint that does not serve yet: until Serve,
// calls to it fail at once as not delivered (a *net.OpError "dial" wrapping
// ErrRefused, as a refused connection), so that a node can register its
// handlers first. It can make calls at once.
func (n *Network) Bind(id string) *Endpoint {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.mu.endpoints[id]; ok {
		panic(fmt.Sprintf("memnet: %s is already listening", id))
	}
	e := &Endpoint{net: n, id: id}
	e.mu.handlers = map[string]transport.Handler{}
	n.mu.endpoints[id] = e
	return e
}

// Serve starts serving a Bind'ed endpoint (Listen'ed ones serve already).
func (e *Endpoint) Serve() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.serving = true
}

// Endpoint is one node's RPC endpoint: it serves the node's handlers and
// makes its outgoing calls.
type Endpoint struct {
	net *Network
	id  string
	wg  sync.WaitGroup // in-flight handlers
	mu  struct {
		sync.Mutex
		handlers map[string]transport.Handler
		serving  bool
		closed   bool
	}
}

// ID returns the endpoint's node ID.
func (e *Endpoint) ID() string { return e.id }

// Addr returns a display address for the endpoint ("memnet/<id>").
func (e *Endpoint) Addr() string { return "memnet/" + e.id }

// Handle registers fn for method (replacing any earlier handler).
func (e *Endpoint) Handle(method string, fn transport.Handler) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.handlers[method] = fn
}

// StopServing stops serving, as a real RPC server's Close does, but keeps
// the endpoint's own calls working (a node that stops accepting requests
// still finishes those in flight, which call other nodes): later calls to
// it fail as not delivered (a refused dial), calls already on their way
// as ErrPeerClosed (outcome unknown). It waits for in-flight handlers.
// Close then ends the endpoint's calls too.
func (e *Endpoint) StopServing() {
	e.mu.Lock()
	e.mu.serving = false
	e.mu.Unlock()
	e.wg.Wait()
}

// Close stops serving: later calls to or from it fail as not delivered. It
// waits for in-flight handlers. Closing twice is a no-op.
func (e *Endpoint) Close() {
	e.mu.Lock()
	already := e.mu.closed
	e.mu.closed = true
	e.mu.Unlock()
	if !already {
		e.net.mu.Lock()
		if e.net.mu.endpoints[e.id] == e {
			delete(e.net.mu.endpoints, e.id)
		}
		e.net.mu.Unlock()
	}
	e.wg.Wait()
}

// start registers one handler run for method; ok is false if the endpoint
// is closed or stopped serving.
func (e *Endpoint) start(method string) (h transport.Handler, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closed || !e.mu.serving {
		return nil, false
	}
	e.wg.Add(1)
	return e.mu.handlers[method], true
}

func (e *Endpoint) isServing() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mu.serving
}

func (e *Endpoint) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.mu.closed
}

type result struct {
	reply []byte
	err   error
}

// Call invokes method on node to with req, under the network's partitions
// and faults (see the package comment for the error semantics).
func (e *Endpoint) Call(ctx context.Context, to, method string, req []byte) ([]byte, error) {
	n := e.net
	wrap := func(err error) error { return fmt.Errorf("call %s on %s: %w", method, to, err) }
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}

	n.mu.Lock()
	if hook := n.mu.onCall; hook != nil {
		hook(e.id, to, method)
	}
	st := n.statLocked(method)
	st.Calls++
	st.MaxRequest = max(st.MaxRequest, len(req))
	dst := n.mu.endpoints[to]
	switch {
	case e.isClosed():
		st.Blocked++
		n.mu.Unlock()
		return nil, wrap(fmt.Errorf("caller %s: %w: %w", e.id, ErrClosed, transport.ErrUnknownPeer))
	case dst == nil:
		st.Blocked++
		n.mu.Unlock()
		return nil, wrap(transport.ErrUnknownPeer)
	case !dst.isServing():
		st.Blocked++
		n.mu.Unlock()
		return nil, wrap(&net.OpError{Op: "dial", Net: "memnet", Addr: Addr(dst.Addr()), Err: ErrRefused})
	case !n.reachableLocked(e.id, to) && !n.silentLocked(e.id, to):
		st.Blocked++
		n.mu.Unlock()
		return nil, wrap(transport.ErrBlocked)
	}
	lost, delay := n.fateLocked()
	lost = lost || n.silentLocked(e.id, to)
	onDeliver := n.mu.onDeliver
	n.mu.Unlock()

	lose := func() ([]byte, error) {
		n.mu.Lock()
		n.statLocked(method).Lost++
		n.mu.Unlock()
		<-ctx.Done()
		return nil, wrap(fmt.Errorf("%w: %w", ErrLost, ctx.Err()))
	}
	if lost {
		return lose()
	}
	if err := sleep(ctx, delay); err != nil {
		return nil, wrap(err)
	}
	if !n.Reachable(e.id, to) {
		return lose() // partitioned while in flight
	}

	h, ok := dst.start(method)
	if !ok {
		return nil, wrap(ErrPeerClosed)
	}
	n.mu.Lock()
	n.statLocked(method).Delivered++
	n.mu.Unlock()
	done := make(chan result, 1)
	// The handler's context carries the caller's deadline, as the real
	// transport's does, and ends when the caller gives up.
	dl, _ := ctx.Deadline()
	hctx, hcancel := context.WithDeadline(context.Background(), dl)
	stop := context.AfterFunc(ctx, hcancel)
	go func() {
		defer dst.wg.Done()
		defer hcancel()
		var r result
		switch {
		case len(req) > transport.MaxMessage: // the server's MaxBytesReader
			r.err = &transport.RemoteError{Status: 400, Msg: "read request: http: request body too large"}
		case h == nil:
			r.err = &transport.RemoteError{Status: 404, Msg: "unknown method " + method}
		case !time.Now().Before(dl): // the real server drops work that arrives late
			r.err = &transport.RemoteError{Status: 504, Msg: "deadline passed before the request was handled"}
		default:
			req := clone(req)
			if onDeliver != nil {
				onDeliver(e.id, to, method, req)
			}
			r.reply, r.err = h(hctx, e.id, req)
			if r.err != nil {
				r.reply, r.err = nil, &transport.RemoteError{Status: 500, Msg: strings.TrimSpace(r.err.Error())}
			}
			r.reply = append([]byte{}, r.reply...) // never nil, as io.ReadAll
		}
		done <- r
	}()

	var r result
	select {
	case r = <-done:
		stop()
		n.mu.Lock()
		st := n.statLocked(method)
		st.MaxReply = max(st.MaxReply, len(r.reply))
		n.mu.Unlock()
	case <-ctx.Done():
		return nil, wrap(ctx.Err())
	}

	lost, delay = n.fate()
	if lost {
		return lose()
	}
	if err := sleep(ctx, delay); err != nil {
		return nil, wrap(err)
	}
	if !n.Reachable(to, e.id) {
		return lose()
	}
	if r.err != nil {
		return nil, wrap(r.err)
	}
	if len(r.reply) > transport.MaxMessage {
		return nil, wrap(fmt.Errorf("reply of %d bytes: %w", len(r.reply), ErrTooLarge))
	}
	return r.reply, nil
}

// sleep waits d, or returns ctx.Err() if ctx is done first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}
